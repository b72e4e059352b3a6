/*
 * HTTP/1.x awareness on inbound connections: per-request authorization
 * (403 for a denied request, the connection kept when the protocol allows),
 * the caller's identity in x-forwarded-client-cert (a client-sent one is
 * stripped), and response tracking so an injected answer lands in order.
 * Anything that is not HTTP/1.x turns the connection opaque: bytes pass
 * as they are.
 *
 * Requests flow net -> app: conn.c hands their plaintext to l7_down(),
 * which writes what the app should get into out.  Responses flow app ->
 * net: conn.c shows them to l7_up_scan() and sends them unchanged, and asks
 * l7_inject_ready() before reading more from the app.
 */
#ifndef LDMESH_L7_H
#define LDMESH_L7_H

#include <stddef.h>
#include <stdint.h>

#include "http1.h"

struct ldmeshd;
struct conn;

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
	char inject[256]; /* a response of ours (403, 400) for the client */
	uint32_t inject_len;
	uint64_t requests, denied;
	int64_t held_since; /* first line still undecided since (ms), 0: not */
};

/* Allocates the HTTP state of an inbound connection; NULL on no memory. */
struct l7 *l7_new(size_t buffer_size);
void l7_free(struct l7 *h); /* NULL is a no-op */

/*
 * Consumes request bytes from c->down.buf[off..len) into h->out (what the
 * app receives).  May turn the connection opaque, hold input while a denied
 * request waits for its turn, queue an injected response, or close c.
 */
void l7_down(struct ldmeshd *d, struct conn *c);

/* Follows the app's responses in buf (sent on unchanged). */
void l7_up_scan(struct ldmeshd *d, struct conn *c, const char *buf, size_t len);

/*
 * The client has said part of a first line and gone quiet for long enough
 * that it is not an HTTP request (a short token protocol waiting for an
 * answer).  Turns the connection opaque, handing the held bytes on.  Ports
 * with HTTP rules never get here: they wait for a whole head.
 */
void l7_detect_timeout(struct ldmeshd *d, struct conn *c);
#define L7_DETECT_MS 200

/* 1 when an injected response may go to the client now. */
int l7_inject_ready(const struct l7 *h);

#endif
