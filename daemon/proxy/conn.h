/*
 * Per-connection state.  One struct conn for everything the daemon holds a
 * connection for: a shim handoff being read, an outbound or inbound proxied
 * connection, a listener's registration link, a control-socket client.
 * The state field is written only in conn.c and handoff.c.
 *
 * Ownership: a_fd, n_fd and app_end_fd are owned; bufs is owned; lst is
 * borrowed (the listener outlives its connections' use of it).
 */
#ifndef LDMESH_CONN_H
#define LDMESH_CONN_H

#include <stdint.h>
#include <sys/socket.h>

#include "ldmesh/proto.h"
#include "telemetry/accesslog.h"
#include "util/addr.h"
#include "transport/stream.h"
#include "util/clock.h"

struct proxy;
struct l7;
struct tel_series;
struct plink;
struct route;

enum conn_kind {
	CONN_HANDOFF, /* reading a shim header */
	CONN_OUTBOUND, /* app -> daemon -> remote */
	CONN_INBOUND, /* remote -> daemon -> app */
	CONN_LINK, /* a listener's registration link */
	CONN_CTL, /* a control-socket client */
	CONN_ADMIN, /* an HTTP client of the admin listener */
	CONN_UPSTREAM, /* daemon -> a service endpoint, for requests routed one by one (route.h) */
	CONN_KINDS,
};

enum conn_state {
	CS_HEADER, /* handoff: waiting for the header */
	CS_DIAL, /* outbound: connecting the app's socket */
	CS_FILLER, /* outbound: discarding the shim's filler */
	CS_DETECT, /* inbound: waiting for the first bytes (TLS or not) */
	CS_TLS_HS, /* TLS handshake with the peer daemon */
	CS_APP_DIAL, /* inbound: connecting to the app's Unix listener */
	CS_PROXY, /* bytes flow both ways */
	CS_LINK, /* link: waiting for end-of-file */
	CS_CTL_READ, /* ctl: reading the request */
	CS_CTL_WRITE, /* ctl/admin: writing the answer */
	CS_CLOSING, /* waiting for in-flight operations, then freed */
};

/* What the write outstanding on a pipe's destination carries. */
enum pipe_write {
	PW_BYTES, /* the pipe's own buffer */
	PW_PREAMBLE, /* inbound: the preamble, first thing the app reads */
	PW_STAGE, /* what the HTTP stage made of the input (stage.h) */
	PW_INJECT, /* an answer of ours for the client (a 403) */
};

/* One direction of a proxied connection: src -> buf -> dst. */
struct pipe {
	char *buf; /* borrowed from conn->bufs */
	uint32_t len, off; /* bytes in buf; bytes already sent */
	uint8_t eof; /* src said end-of-file */
	uint8_t shut; /* dst's direction ended (shutdown) */
	uint8_t shutting; /* asked to end, not yet on the wire */
	uint8_t rpending, spending;
	uint8_t wfrom; /* enum pipe_write, while spending */
	struct transport *src, *dst; /* borrowed from the conn */
	uint64_t bytes;
};

struct conn {
	uint32_t gen;
	uint32_t slot;
	enum conn_kind kind;
	enum conn_state state;
	int a_fd; /* Unix socket to the app (handoff/ctl/link socket) */
	int n_fd; /* TCP socket to the network */
	int app_end_fd; /* outbound: the app's end of a_fd, until the dial ends */
	int inflight; /* operations the loop still owns */
	int abort; /* closing because of an error: reset the TCP side */
	int close_errno; /* the OS error it ended with, 0: none (tcp_close_total{errno}) */
	struct pipe up; /* app -> network */
	struct pipe down; /* network -> app */
	char *bufs; /* 2 * bufsize, while not parked */
	uint32_t bufsize; /* buffer_size when it started: a reload changes
			   * new connections only */

	/* A proxied connection is two transports (transport/transport.h):
	 * the app end, and the network end (the TCP stream, or TLS over
	 * it).  The pump moves bytes between them. */
	struct proxy *d; /* for transport events */
	struct stream app_io; /* over a_fd */
	struct stream net_io; /* over n_fd */
	struct transport *app; /* &app_io.t; NULL until set up */
	struct transport *net; /* &net_io.t, or TLS over it (owned) */
	struct tls_conn *tls; /* the TLS engine of net (of its link's, borrowed,
			       * for a stream), NULL for plaintext */
	struct plink *plink; /* the link net is a stream on (or waits for) */
	uint8_t via_link; /* net is (or will be) a stream on plink */
	uint8_t retried; /* its stream was refused once (GOAWAY) and retried */
	uint8_t exdev_fallback; /* dialled direct: the peer daemon had no listener there */
	uint8_t flush_then_reset; /* refused or failed: reset once net has flushed */
	uint8_t tls_wanted; /* outbound to a mesh destination, with an identity */
	uint8_t in_mesh; /* outbound: destination in mesh_networks or services */
	uint8_t detect_expired; /* permissive detection timed out */
	uint8_t l7_policy; /* inbound: decide each HTTP request */
	uint8_t l7_done; /* inbound: proved not HTTP; raw from now on */
	uint8_t same_pod; /* both ends inside the pod: no mTLS, policy or HTTP layer */
	uint8_t hand_socket; /* inbound same-pod: give the app the TCP socket itself */
	uint8_t parked; /* enum park_state: idle, buffers given back */
	struct l7 *l7; /* owned: HTTP state (inbound; outbound for metrics) */
	struct tel_series *tel; /* borrowed: TCP metrics series, set once proxying */
	char rule[64]; /* inbound: the policy rule that admitted it, "" for none */
	uint64_t http_requests; /* HTTP requests seen, for the access log */
	const char *pin; /* borrowed from the config: pinned peer identity */
	struct bal_endpoint *bal; /* outbound to a service: the endpoint (a reference) */
	struct ldm_addr svc_addr; /* outbound to a service: the address the app dialled */
	int64_t dial_start_us; /* outbound to a service: when this endpoint's dial began */
	int16_t svc; /* the balancer's service, -1 for none */
	uint8_t bal_tries; /* endpoints tried after the first */
	struct route *rt; /* owned: outbound to a service, requests routed one by one */
	/* upstream: the routed connection using it (slot, gen; gen 0: none,
	 * pooled), and the pool's list while idle */
	uint32_t owner_slot, owner_gen;
	struct conn *pool_next, *pool_prev;
	int64_t pooled_ms; /* upstream: idle in the pool since, 0: not pooled */
	uint8_t borrowing; /* upstream: closed with an operation on its owner's memory */
	uint8_t late_dial; /* outbound: dialled after the app's connect() succeeded (route.c) */

	uint64_t cookie; /* outbound: the shim's id; link: listener id */
	uint32_t pid; /* the app's pid, when known */
	uint32_t filler_left;
	uint32_t sndbuf;
	int32_t app_fd_num; /* outbound: the app's fd number at connect() */
	struct ldm_addr peer; /* the remote TCP address */
	struct ldm_addr local; /* our TCP address */
	/* SPIFFE ID of the peer, "" if none; borrowed from tls (which lives as
	 * long as the conn), so a connection does not carry 2 KiB for it. */
	const char *peer_id;
	struct sockaddr_storage dial_sa; /* connect() target; must outlive the op */
	socklen_t dial_len;
	int listener_slot; /* inbound/link: which listener */

	/* handoff / ctl input */
	struct ldm_handoff hdr;
	uint32_t hdr_got;
	struct msghdr msg;
	struct iovec iov;
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} cmsg;
	int hfds[4]; /* owned: fds received with a handoff header */
	int nhfds;
	uint32_t peer_uid;
	char *ctl_in; /* owned, LDM_CTL_MAX_REQUEST + 1 */
	uint32_t ctl_got;
	char *ctl_out; /* owned: ctl/admin answer; inbound: the preamble */
	size_t ctl_out_len, ctl_out_off;
	int ctl_json;

	int64_t started_ms, last_ms, deadline_ms; /* deadline 0: none */
};

/* user_data: operation tag, conn slot and generation. */
enum ud_tag {
	UD_HANDOFF_ACCEPT = 1,
	UD_CTL_ACCEPT,
	UD_LISTENER_ACCEPT,
	UD_HDR_RECV,
	UD_DIAL,
	UD_APP_DIAL,
	UD_APP_RECV, /* the app end's stream (app_io) */
	UD_APP_SEND,
	UD_APP_POLL,
	UD_NET_RECV, /* the network end's stream (net_io) */
	UD_NET_SEND,
	UD_NET_POLL,
	UD_LINK_RECV,
	UD_CTL_RECV,
	UD_CTL_SEND,
	UD_ADMIN_ACCEPT,
	UD_ADMIN_RECV,
	UD_ADMIN_SEND,
	UD_PLINK_ACCEPT, /* links between daemons (links.c) */
	UD_PLINK_DIAL,
	UD_PLINK_RECV,
	UD_PLINK_SEND,
	UD_PLINK_POLL,
	UD_PLINK_KICK,
	UD_WORKER_WAKE, /* another event loop has mail for this one (ldmeshd.c) */
	UD_TAG_COUNT,
};

enum park_state {
	PARK_NO,
	PARK_CANCELLING, /* reads cancelled, waiting for their completions */
	PARK_PARKED, /* no buffers; a poll on each side */
};

static inline uint64_t ud_make(enum ud_tag tag, uint32_t slot, uint32_t gen)
{
	return ((uint64_t)tag << 56) | ((uint64_t)(slot & 0xffffff) << 32) | gen;
}
static inline enum ud_tag ud_tag(uint64_t ud)
{
	return (enum ud_tag)(ud >> 56);
}
static inline uint32_t ud_slot(uint64_t ud)
{
	return (uint32_t)(ud >> 32) & 0xffffff;
}
static inline uint32_t ud_gen(uint64_t ud)
{
	return (uint32_t)ud;
}

/* Allocates a conn of `kind` owning a_fd; NULL when out of slots or memory. */
struct conn *conn_new(struct proxy *d, enum conn_kind kind, int a_fd);
/* Looks up the conn a completion belongs to; NULL when stale. */
struct conn *conn_from_ud(struct proxy *d, uint64_t ud);
/* Marks c closing and cancels its operations; it is freed by conn_reap(). */
void conn_close(struct proxy *d, struct conn *c, int abort);
/* Frees closing conns with nothing in flight.  Called once per loop turn. */
void conn_reap(struct proxy *d);
/* Dispatches a completion for a conn-owned operation: the connection
 * core's own, or to the handler the module that queued it registered. */
void conn_complete(struct proxy *d, struct conn *c, enum ud_tag tag, int res);

/*
 * A completion handler for an operation another module queues on a conn
 * it owns (the shim's handoff header, a control request, an admin
 * request).  The module registers it when it opens, so the connection
 * core calls down into the loop and never up into its users.
 */
typedef void (*conn_done_fn)(struct proxy *d, struct conn *c, int res);
void conn_set_handler(struct proxy *d, enum ud_tag tag, conn_done_fn fn);

/* Told every outbound dial's outcome (0 or -errno), for whoever answers
 * the shim's questions about it (handoff.c registers it). */
typedef void (*conn_dial_fn)(struct proxy *d, const struct conn *c, int err);
void conn_set_dial_observer(struct proxy *d, conn_dial_fn fn);
/* Queues an operation on behalf of c, counting it in flight. */
int conn_submit_recv(struct proxy *d, struct conn *c, int fd, void *buf, size_t len,
		     enum ud_tag tag);
int conn_submit_send(struct proxy *d, struct conn *c, int fd, const void *buf, size_t len,
		     enum ud_tag tag);

struct strbuf;
/* Sends the text in b (taken over) as c's answer with tag; when it is all
 * out the connection is shut down and closed. */
void conn_send_answer(struct proxy *d, struct conn *c, struct strbuf *b, enum ud_tag tag);

/* Outbound: start dialing after a CONNECT handoff (owns both fds). */
void conn_start_outbound(struct proxy *d, struct conn *c, int tcp_fd, int app_end_fd);
/* Inbound: a TCP connection accepted on a listener. */
void conn_start_inbound(struct proxy *d, int tcp_fd, int listener_slot);
/* Hands quiet, undecided first lines on as opaque bytes (l7.h). */
void conn_detect_sweep(struct proxy *d, int64_t now);
/* Applies timeouts; called about once a second. */
void conn_sweep(struct proxy *d, int64_t now);

const char *conn_kind_name(enum conn_kind k);

/* What the access log says about c (telemetry/accesslog.h). */
static inline void conn_log_view(const struct conn *c, struct accesslog_conn *v)
{
	v->inbound = c->kind == CONN_INBOUND;
	v->peer = &c->peer;
	v->local = &c->local;
	v->peer_id = c->peer_id;
	v->tls = c->tls != NULL;
	v->started_ms = c->started_ms;
	v->bytes_in = c->down.bytes;
	v->bytes_out = c->up.bytes;
	v->rule = c->rule;
	v->error = c->abort;
}

#endif
