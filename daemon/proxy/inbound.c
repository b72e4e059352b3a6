/*
 * Inbound connections: detection (TLS or plaintext), admission by policy,
 * the dial to the app's Unix listener or the same-pod hand-over, the
 * preamble.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "ldmesh/addrname.h"
#include "proxy/proxy.h"
#include "policy/policy.h"
#include "proxy/conn_internal.h"
#include "proxy/stage.h"
#include "transport/h2link.h"
#include "transport/tls.h"
#include "util/log.h"

/* ---- inbound ------------------------------------------------------------- */

/* Room kept in front of sniffed plaintext for the preamble. */

/*
 * A same-pod connection: the preamble goes to the app's listener with the
 * accepted TCP socket attached, and the daemon lets go of both.  The app's
 * accept() puts the socket in place of the Unix connection (shim/
 * hook_accept.c), so its bytes never pass through here.
 */
static void hand_over_socket(struct proxy *d, struct conn *c)
{
	struct ldm_preamble pre;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = &pre, .iov_len = sizeof(pre)};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *cm;
	ssize_t n;

	memset(&pre, 0, sizeof(pre));
	pre.magic = LDM_PREAMBLE_MAGIC;
	pre.version = LDM_PROTO_VERSION;
	pre.conn_id = c->cookie;
	pre.peer = c->peer;
	pre.local = c->local;
	memset(&u, 0, sizeof(u));
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &c->n_fd, sizeof(int));
	/* A fresh Unix connection has room for one small message: this send
	 * does not wait. */
	n = sendmsg(c->a_fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n != (ssize_t)sizeof(pre)) {
		char peer[80];
		addr_format(&c->peer, peer, sizeof(peer));
		log_warn("same-pod connection from %s: handing the socket to the app failed: %s",
			 peer, n < 0 ? strerror(errno) : "short send");
		conn_close(d, c, 1);
		return;
	}
	d->stats.same_pod_handed_total++;
	/* Ours was only a second reference: closing it sends nothing. */
	close(c->n_fd);
	c->n_fd = -1;
	conn_close(d, c, 0);
}

void app_dial_done(struct proxy *d, struct conn *c, int res)
{
	struct ldm_preamble pre;
	size_t idlen = strlen(c->peer_id), held = c->down.len;

	if (res < 0) {
		char peer[80];
		addr_format(&c->peer, peer, sizeof(peer));
		log_warn("inbound from %s: app listener unreachable: %s", peer, strerror(-res));
		if (c->via_link) {
			/* The client's connect() fails as it would without us. */
			links_answer(d, c, h2link_status_of_errno(-ECONNREFUSED));
			conn_close(d, c, 0);
			return;
		}
		conn_close(d, c, 1);
		return;
	}
	if (c->via_link) {
		links_answer(d, c, 200);
	}
	if (c->hand_socket) {
		hand_over_socket(d, c);
		return;
	}
	if (c->same_pod) {
		d->stats.same_pod_proxied_total++; /* a shim that cannot take it */
	}
	if (conn_alloc_bufs(d, c) < 0) {
		conn_close(d, c, 1);
		return;
	}
	/* The preamble is the first thing the app reads; it goes out on its
	 * own (down_deliver), and plaintext the client already sent (held at
	 * PREAMBLE_ROOM by the detection read) follows through the HTTP layer
	 * like any other request bytes. */
	memset(&pre, 0, sizeof(pre));
	pre.magic = LDM_PREAMBLE_MAGIC;
	pre.version = LDM_PROTO_VERSION;
	pre.id_len = (uint16_t)idlen;
	pre.conn_id = c->cookie;
	pre.peer = c->peer;
	pre.local = c->local;
	c->ctl_out = malloc(sizeof(pre) + idlen);
	if (!c->ctl_out) {
		conn_close(d, c, 1);
		return;
	}
	memcpy(c->ctl_out, &pre, sizeof(pre));
	memcpy(c->ctl_out + sizeof(pre), c->peer_id, idlen);
	c->ctl_out_len = sizeof(pre) + idlen;
	c->ctl_out_off = 0;
	{
		/* A fresh connection has room for it: sent now, it is there
		 * when the app's accept() looks (the pump sends any rest). */
		ssize_t n = send(c->a_fd, c->ctl_out, c->ctl_out_len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			c->ctl_out_off = (size_t)n;
		}
	}
	c->down.off = held ? (uint32_t)PREAMBLE_ROOM : 0;
	c->down.len = held ? (uint32_t)(PREAMBLE_ROOM + held) : 0;
	c->state = CS_PROXY;
	conn_tel_open(d, c);
	if (held) {
		stage_wants(d, c);
	}
	pump_both(d, c);
}

static void connect_app(struct proxy *d, struct conn *c)
{
	int r;

	c->state = CS_APP_DIAL;
	/* A Unix connect finishes at once unless the app's backlog is full.
	 * Finished here, the preamble follows before the daemon returns to
	 * its loop, so the app's accept() (the shim waits PREAMBLE_WAIT_MS
	 * for it) never depends on how long a loop turn takes under a burst
	 * of thousands of connections. */
	r = connect(c->a_fd, (struct sockaddr *)&c->dial_sa, c->dial_len) < 0 ? -errno : 0;
	if (r != -EAGAIN && r != -EINPROGRESS) {
		c->deadline_ms = 0;
		app_dial_done(d, c, r);
		return;
	}
	c->deadline_ms = now_ms() + d->cfg->connect_timeout_ms;
	if (d->loop->ops->connect(d->loop, c->a_fd, (struct sockaddr *)&c->dial_sa, c->dial_len,
				  ud_make(UD_APP_DIAL, c->slot, c->gen)) < 0) {
		conn_close(d, c, 1);
		return;
	}
	c->inflight++;
}

/*
 * The connection-level policy decision, once the caller's identity is known
 * (after the handshake, or none for plaintext).  When rules for this port
 * look at requests, the decision waits for each HTTP request instead.
 */
static void inbound_admit(struct proxy *d, struct conn *c)
{
	struct policy_request req = {0};
	struct policy_result res;

	if (port_opaque(d, c->local.port)) {
		/* Opaque port: no HTTP layer, bytes pass as they are from the
		 * first one; the config refuses request rules here. */
		c->l7_done = 1;
		d->stats.opaque_inbound_total++;
	}
	req.principal = c->peer_id;
	req.port = ntohs(c->local.port);
	policy_decide(d->policy, POLICY_AT_CONNECT, &req, &res);
	if (res.decision == POLICY_PENDING && c->l7_done) {
		/* Cannot happen with a valid config: never pass it undecided. */
		log_warn("inbound connection to opaque port %u: rules need requests; closing",
			 req.port);
		conn_close(d, c, 1);
		return;
	}
	if (res.decision == POLICY_PENDING) {
		c->l7_policy = 1;
	} else {
		conn_authz(d, c, &req, &res);
		if (res.decision == POLICY_DENY) {
			char peer[80];
			addr_format(&c->peer, peer, sizeof(peer));
			log_info("inbound connection from %s (%s) to port %u denied by %s", peer,
				 c->peer_id[0] ? c->peer_id : "no identity", req.port, res.rule);
			if (c->via_link) {
				/* 403: the client's connect() fails with EACCES. */
				links_answer(d, c, h2link_status_of_errno(-EACCES));
				conn_close(d, c, 0);
				return;
			}
			if (c->tls) {
				/* close_notify before any ticket tells a meshed client it
				 * was refused; flushed, then reset. */
				tls_transport_goodbye(c->net);
				flush_then_reset(d, c);
				return;
			}
			conn_close(d, c, 1);
			return;
		}
		if (res.rule) {
			snprintf(c->rule, sizeof(c->rule), "%s", res.rule);
		}
	}
	if (c->tls && !c->via_link && tls_transport_admit(c->net) < 0) {
		conn_close(d, c, 1);
		return;
	}
	connect_app(d, c);
}

void inbound_authenticated(struct proxy *d, struct conn *c)
{
	inbound_admit(d, c);
}

static const struct config_port_mtls *port_conf(const struct proxy *d, uint16_t port_net)
{
	const struct config *cfg = d->cfg;
	uint16_t port = ntohs(port_net);
	size_t i;

	for (i = 0; i < cfg->n_inbound_ports; i++) {
		if (cfg->inbound_ports[i].port == port) {
			return &cfg->inbound_ports[i];
		}
	}
	return NULL;
}

int port_opaque(const struct proxy *d, uint16_t port_net)
{
	const struct config_port_mtls *p = port_conf(d, port_net);

	return p && p->opaque;
}

enum config_mtls port_mtls(const struct proxy *d, uint16_t port_net)
{
	const struct config_port_mtls *p = port_conf(d, port_net);

	return p ? p->mtls : d->cfg->inbound_mtls;
}

void detect_done(struct proxy *d, struct conn *c, int res)
{
	const uint8_t *first = (const uint8_t *)c->down.buf + PREAMBLE_ROOM;
	char peer[80];

	c->down.rpending = 0;
	if (c->detect_expired && res < 0) {
		/* Cancelled after the detection timeout: nothing was said. */
		c->down.len = 0;
		d->stats.plaintext_accepted_total++;
		inbound_admit(d, c);
		return;
	}
	if (res <= 0) {
		conn_close(d, c, res < 0);
		return;
	}
	addr_format(&c->peer, peer, sizeof(peer));
	if (tls_looks_like_client_hello(first, (size_t)res)) {
		c->tls = tls_conn_new(d->id->tls, 1, NULL, NULL);
		if (!c->tls || tls_conn_feed(c->tls, first, (size_t)res) < 0 ||
		    start_tls(d, c, 1) < 0) {
			conn_close(d, c, 1);
			return;
		}
		handshake_begin(d, c);
		return;
	}
	if (port_mtls(d, c->local.port) == CONFIG_MTLS_STRICT) {
		log_warn("inbound plaintext connection from %s refused: port %u requires mTLS",
			 peer, ntohs(c->local.port));
		d->stats.plaintext_refused_total++;
		conn_close(d, c, 1);
		return;
	}
	/* Permissive: an unmeshed client, no identity. */
	d->stats.plaintext_accepted_total++;
	c->down.len = (uint32_t)res;
	inbound_admit(d, c);
}

/* The client said nothing in time.  Strict: give up.  Permissive: it may be
 * waiting for a server that speaks first; cancel the read and hand it to
 * the app as plaintext when the cancellation reports back. */
void detect_timeout(struct proxy *d, struct conn *c)
{
	if (port_mtls(d, c->local.port) == CONFIG_MTLS_STRICT) {
		char peer[80];
		addr_format(&c->peer, peer, sizeof(peer));
		log_info("inbound connection from %s sent nothing; closing", peer);
		conn_close(d, c, 1);
		return;
	}
	c->detect_expired = 1;
	c->net->ops->cancel_read(c->net);
}

/*
 * Names our end after the TCP addresses, so an app that passes the accepted
 * fd to an exec'd child (sshd does) can still get them (addrname.h).
 */
static void bind_inbound_name(const struct conn *c)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char *p = sun.sun_path + 1;
	size_t left = sizeof(sun.sun_path) - 1;
	int w;

	w = snprintf(p, left, LDM_NAME_IN "%x%x-", (unsigned)getpid(), c->gen);
	w += addrname_put(p + w, left - (size_t)w, &c->peer);
	w += snprintf(p + w, left - (size_t)w, "-");
	w += addrname_put(p + w, left - (size_t)w, &c->local);
	if (w > 0 && (size_t)w < left) {
		/* Best effort: without the name only exec'd children lose out. */
		bind(c->a_fd, (struct sockaddr *)&sun,
		     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)w));
	}
}

/* What every inbound connection to listener slot has: its listener, our
 * id for it, and the app's Unix listener as the dial target. */
static void inbound_to_listener(struct proxy *d, struct conn *c, int slot)
{
	const struct listener *l = &d->listeners[slot];
	struct sockaddr_un *sun;
	size_t nlen;

	c->listener_slot = slot;
	c->pid = l->pid;
	/* Our own id for LDM_OP_RESET; the top bit keeps it apart from shim
	 * cookies, which never set it (see shim/link.c), the loop's index
	 * (bits 56..62) from another loop's connection in the same slot. */
	c->cookie = (1ULL << 63) | ((uint64_t)(d->worker & 0x7f) << 56) | ((uint64_t)c->gen << 24) |
		    c->slot;
	d->stats.inbound_total++;
	memset(&c->dial_sa, 0, sizeof(c->dial_sa));
	sun = (struct sockaddr_un *)&c->dial_sa;
	sun->sun_family = AF_UNIX;
	nlen = strnlen(l->name, sizeof(l->name));
	memcpy(sun->sun_path + 1, l->name, nlen);
	c->dial_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + nlen);
}

void conn_start_inbound(struct proxy *d, int tcp_fd, int listener_slot)
{
	struct listener *l = &d->listeners[listener_slot];
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct conn *c;
	int u, one = 1;

	u = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u < 0) {
		log_warn("inbound: socket: %s", strerror(errno));
		close(tcp_fd);
		return;
	}
	c = conn_new(d, CONN_INBOUND, u);
	if (!c) {
		log_warn("inbound: connection limit reached, refusing");
		close(u);
		close(tcp_fd);
		return;
	}
	c->n_fd = tcp_fd;
	conn_transports_init(d, c);
	inbound_to_listener(d, c, listener_slot);
	if (getpeername(tcp_fd, (struct sockaddr *)&ss, &len) == 0) {
		addr_from_sockaddr((struct sockaddr *)&ss, len, &c->peer);
	}
	len = sizeof(ss);
	if (getsockname(tcp_fd, (struct sockaddr *)&ss, &len) == 0) {
		addr_from_sockaddr((struct sockaddr *)&ss, len, &c->local);
	}
	bind_inbound_name(c);

	/* Inside the pod: one trust zone, the app gets the client as it is,
	 * with no detection, mTLS, policy or HTTP layer (docs/security.md). */
	if (podaddr_is_local(&d->pod, &c->peer, now_ms())) {
		c->same_pod = 1;
		c->l7_done = 1;
		c->hand_socket = (uint8_t)l->takes_socket;
		connect_app(d, c);
		return;
	}
	setsockopt(tcp_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	if (!d->id->tls || port_mtls(d, c->local.port) == CONFIG_MTLS_DISABLE) {
		/* No detection: server-speaks-first protocols start at once. */
		inbound_admit(d, c);
		return;
	}
	/* Plain buffers first: the sniffed bytes may be the app's plaintext. */
	if (conn_alloc_bufs(d, c) < 0) {
		conn_close(d, c, 1);
		return;
	}
	c->state = CS_DETECT;
	c->deadline_ms = now_ms() + (port_mtls(d, c->local.port) == CONFIG_MTLS_PERMISSIVE
					     ? DETECT_TIMEOUT_MS
					     : d->cfg->connect_timeout_ms);
	if (transport_read(c->net, c->down.buf + PREAMBLE_ROOM, c->bufsize - PREAMBLE_ROOM) !=
	    -EINPROGRESS) {
		conn_close(d, c, 1);
		return;
	}
	c->down.rpending = 1;
}

/* The listener an inbound connection to local goes to, or -1. */
static int listener_for(struct proxy *d, const struct ldm_addr *local)
{
	static const uint8_t any[16];
	int i;

	for (i = 0; i < LISTENERS_MAX; i++) {
		const struct listener *l = &d->listeners[i];
		if (!l->used || l->closing || l->addr.port != local->port) {
			continue;
		}
		if (!memcmp(l->addr.addr, any, l->addr.family == AF_INET6 ? 16 : 4) ||
		    (l->addr.family == local->family &&
		     !memcmp(l->addr.addr, local->addr, local->family == AF_INET6 ? 16 : 4))) {
			return i;
		}
	}
	return -1;
}

/* Forwarded: for="ip:port" (RFC 7239; HBONE sends the client's address). */
static int parse_forwarded(const char *v, struct ldm_addr *out)
{
	char buf[80];
	const char *p = strstr(v, "for=");
	size_t n;

	if (!p) {
		return -EINVAL;
	}
	p += 4;
	if (*p == '"') {
		p++;
	}
	n = strcspn(p, "\";, ");
	if (n == 0 || n >= sizeof(buf)) {
		return -EINVAL;
	}
	memcpy(buf, p, n);
	buf[n] = 0;
	return config_parse_hostport(buf, out);
}

void inbound_link_stream(struct proxy *d, struct plink *ml, struct transport *st,
			 const struct ldm_addr *peer, const char *peer_id)
{
	struct ldm_addr local, from;
	struct conn *c;
	char who[80];
	int slot, u;

	addr_format(peer, who, sizeof(who));
	if (config_parse_hostport(h2stream_authority(st), &local) < 0) {
		log_info("link from %s (%s): CONNECT to \"%s\" refused: not an ip:port", who,
			 peer_id, h2stream_authority(st));
		h2stream_respond(st, h2link_status_of_errno(-EINVAL));
		st->ops->destroy(st);
		return;
	}
	slot = podaddr_is_local(&d->pod, &local, now_ms()) ? listener_for(d, &local) : -1;
	if (slot < 0) {
		/* Not a listener we hold: whatever is there (a server outside
		 * the mesh, or nothing) answers the client's own connection. */
		log_debug("link from %s (%s): CONNECT to %s: not a listener of ours", who, peer_id,
			  h2stream_authority(st));
		h2stream_respond(st, h2link_status_of_errno(-EXDEV));
		st->ops->destroy(st);
		return;
	}
	/* The client's own address, as its daemon says; only its port is
	 * taken on trust: the address must be the link's. */
	if (parse_forwarded(h2stream_forwarded(st), &from) < 0 || !addr_same_ip(&from, peer)) {
		from = *peer;
	}
	u = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u < 0) {
		log_warn("inbound: socket: %s", strerror(errno));
	}
	c = u < 0 ? NULL : conn_new(d, CONN_INBOUND, u);
	if (!c) {
		if (u >= 0) {
			log_warn("inbound over a link: connection limit reached, refusing");
			close(u);
		}
		h2stream_respond(st, 503);
		st->ops->destroy(st);
		return;
	}
	c->n_fd = -1;
	conn_transports_init(d, c);
	transport_set_owner(st, conn_transport_event, c);
	c->net = st;
	c->via_link = 1;
	c->plink = ml;
	links_conn_added(ml);
	inbound_to_listener(d, c, slot);
	d->listeners[slot].accepted++;
	c->peer = from;
	c->local = local;
	c->peer_id = peer_id;
	c->tls = links_engine(ml);
	bind_inbound_name(c);
	inbound_admit(d, c);
}
