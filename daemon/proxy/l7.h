/*
 * HTTP/1.x awareness.  On inbound connections: per-request authorization
 * (403 for a denied request, the connection kept when the protocol allows),
 * the caller's identity in x-forwarded-client-cert (a client-sent one is
 * stripped), and response tracking so an injected answer lands in order.
 * On both directions: request metrics (request head to response head) and
 * the access log's request lines.  Anything that is not HTTP/1.x turns the
 * connection opaque: bytes pass as they are.
 *
 * Inbound requests flow net -> app: conn.c hands their plaintext to
 * l7_down(), which writes what the app should get into out.  Inbound
 * responses flow app -> net: conn.c shows them to l7_responses() and sends
 * them unchanged, and asks l7_inject_ready() before reading more from the
 * app.  Outbound connections get a scan-only l7 (no out buffer, bytes are
 * never changed or held): requests are shown to l7_out_requests() and
 * responses to l7_responses() as they pass.
 */
#ifndef LDMESH_L7_H
#define LDMESH_L7_H

#include <stddef.h>
#include <stdint.h>

#include "proto/http1.h"
#include "proxy/l7_h2.h"

struct proxy;
struct conn;
struct tel_series;

/* A request waiting for its response head (FIFO: HTTP/1 answers in order). */
struct l7_pending {
	int64_t start_us;
	struct tel_series *series; /* NULL when request metrics are off */
	struct tel_series *route; /* route_*: the rule that decided, or NULL */
	char method[16];
	char *path, *authority; /* owned; only while the access log is on */
	char *rule; /* owned; the policy rule that allowed it, NULL for none */
	uint8_t h2c_stripped; /* its h2c upgrade was removed (upgrade.h) */
};

struct l7 {
	struct http1_stream req, resp;
	char *out; /* owned: bytes for the app, out_cap */
	uint32_t out_len, out_off, out_cap;
	uint32_t forwarded; /* request heads passed to the app */
	uint32_t answered; /* final response heads the app sent */
	uint8_t opaque; /* not (or no longer) HTTP: raw bytes both ways */
	uint8_t skip_body; /* dropping the body of a denied request */
	uint8_t hold; /* a denied request waits for earlier responses */
	uint8_t resp_broken; /* response framing lost: deny by closing */
	uint8_t close_after; /* end the connection once inject is out */
	uint8_t upgrade_removed; /* the last request forwarded lost every upgrade token */
	uint8_t await_h2c; /* an h2c upgrade request went on: its answer decides what follows */
	char inject[256]; /* a response of ours (403, 400) for the client */
	uint32_t inject_len;
	uint64_t requests, denied;
	int64_t held_since; /* first line still undecided since (ms), 0: not */
	int64_t head_since; /* a request head is arriving since (ms), 0: not */

	uint8_t scan_only; /* outbound: follow the traffic, never change it */
	uint8_t metrics, logging; /* fixed at creation, so the FIFO stays in step */
	struct l7_pending *pend; /* owned ring of pend_cap */
	uint16_t pend_head, pend_n, pend_cap;
	struct tel_series *last; /* the series of the last request's authority */
	struct l7_h2 *h2; /* owned: HTTP/2 on this connection (l7_h2.h), NULL for HTTP/1 */
};

/*
 * Allocates the HTTP state of a connection; NULL on no memory.  out_size 0
 * makes a scan-only state (outbound); inbound passes the buffer size.
 */
struct l7 *l7_new(struct proxy *d, size_t out_size);
/* Counts requests still unanswered as failures ("no_response") and frees;
 * NULL is a no-op. */
void l7_finish(struct proxy *d, struct conn *c, struct l7 *h);
void l7_free(struct l7 *h); /* NULL is a no-op */

/* 1 between exchanges: nothing held, pending or half-parsed, so the state
 * can be dropped and made again (l7_new) at the next byte. */
int l7_idle(const struct l7 *h);

/* An idle connection frees the out buffer (empty then) and gets it back
 * before any input is handled; untrim returns 0 or -ENOMEM. */
void l7_trim(struct l7 *h);
int l7_untrim(struct l7 *h);

/*
 * Consumes request bytes from c->down.buf[off..len) into h->out (what the
 * app receives).  May turn the connection opaque, hold input while a denied
 * request waits for its turn, or queue an injected response.  Returns
 * -errno when c must be closed (a denied non-HTTP connection, no memory):
 * the caller closes it; this layer never does.
 */
int l7_down(struct proxy *d, struct conn *c);

/* Follows responses in buf (sent on unchanged): the app's on an inbound
 * connection, the server's on an outbound one.  -errno: close c. */
int l7_responses(struct proxy *d, struct conn *c, const char *buf, size_t len);

/* Outbound: follows the app's requests in buf (sent on unchanged). */
void l7_out_requests(struct proxy *d, struct conn *c, const char *buf, size_t len);

/* 1 once a scan-only state has nothing more to follow (not HTTP, upgraded,
 * or framing lost): the caller finishes and drops it. */
static inline int l7_scan_over(const struct l7 *h)
{
	return h->scan_only && (h->opaque || h->resp_broken);
}

/*
 * The client has said part of a first line and gone quiet for long enough
 * that it is not an HTTP request (a short token protocol waiting for an
 * answer).  Turns the connection opaque, handing the held bytes on.  Ports
 * with HTTP rules never get here: they wait for a whole head.  -errno: a
 * port with HTTP rules denied it as non-HTTP; close c.
 */
int l7_detect_timeout(struct proxy *d, struct conn *c);
#define L7_DETECT_MS 200

/* 1 when an injected response may go to the client now. */
int l7_inject_ready(const struct l7 *h);

/* 1 while an answer of ours (HTTP/1 or HTTP/2) waits for the client. */
static inline int l7_has_inject(const struct l7 *h)
{
	return h->inject_len || (h->h2 && (h->h2->inject_len || h->h2->sending));
}

/* For l7_h2.c: the request series of an authority, and an access-log line. */
struct tel_series *l7_series_for(struct proxy *d, struct conn *c, struct l7 *h,
				 const char *authority);
struct tel_series *l7_route_for(struct proxy *d, struct conn *c, struct l7 *h,
				const char *authority, const char *rule);
void l7_log_request(struct proxy *d, struct conn *c, const struct l7_pending *p,
		    const char *authority, int status, int64_t latency_us, const char *error);

#endif
