/*
 * HTTP/1.x on inbound connections; see l7.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l7.h"
#include "ldmeshd.h"
#include "log.h"

/* Room for one rewritten head beyond a buffer of body bytes. */
#define OUT_SLACK (HTTP1_MAX_HEAD + 2 * LDM_PEER_ID_MAX + 256)

struct l7 *l7_new(size_t buffer_size)
{
	struct l7 *h = calloc(1, sizeof(*h));

	if (!h) {
		return NULL;
	}
	h->out_cap = (uint32_t)(buffer_size + OUT_SLACK);
	h->out = malloc(h->out_cap);
	if (!h->out) {
		free(h);
		return NULL;
	}
	http1_init(&h->req, HTTP1_REQUEST);
	http1_init(&h->resp, HTTP1_RESPONSE);
	return h;
}

void l7_free(struct l7 *h)
{
	if (!h) {
		return;
	}
	http1_fini(&h->req);
	http1_fini(&h->resp);
	free(h->out);
	free(h);
}

int l7_inject_ready(const struct l7 *h)
{
	return h->inject_len && h->answered >= h->forwarded && http1_idle(&h->resp);
}

static void queue_inject(struct l7 *h, int code, const char *reason, const char *body, int close)
{
	int n = snprintf(h->inject, sizeof(h->inject),
			 "HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %zu\r\n"
			 "%s\r\n%s",
			 code, reason, strlen(body), close ? "connection: close\r\n" : "", body);

	h->inject_len = n > 0 && (size_t)n < sizeof(h->inject) ? (uint32_t)n : 0;
	h->close_after = (uint8_t)close;
	/* Nothing more is read from the client until this answer is out. */
	h->hold = 1;
}

static int out_put(struct l7 *h, const char *buf, size_t len)
{
	if (!len) {
		return 0; /* buf may be NULL then */
	}
	if (h->out_len + len > h->out_cap) {
		return -ENOSPC;
	}
	memcpy(h->out + h->out_len, buf, len);
	h->out_len += (uint32_t)len;
	return 0;
}

/* A request head: decide, then pass it on with the caller's identity. */
static int on_request(struct ldmeshd *d, struct conn *c, struct l7 *h)
{
	static const char *const drop[] = {"x-forwarded-client-cert", NULL};
	const struct http1_head *hd = &h->req.head;
	const struct tls_svid_info *own = d->tls ? tls_ctx_info(d->tls) : NULL;
	char xfcc[2 * LDM_PEER_ID_MAX + 64] = "";
	int n;

	h->requests++;
	if (c->l7_policy) {
		struct policy_request req = {0};
		struct policy_result res;

		req.principal = c->peer_id;
		req.port = ntohs(c->local.port);
		req.method = hd->method;
		req.path = hd->path;
		req.host = hd->host[0] ? hd->host : NULL;
		policy_eval(d->policy, &req, &res);
		policy_account(d, &req, &res);
		if (res.decision == POLICY_DENY) {
			char peer[80];
			addr_format(&c->peer, peer, sizeof(peer));
			log_info("request %s %s from %s (%s) on port %u denied by %s", hd->method,
				 hd->path, peer, c->peer_id[0] ? c->peer_id : "no identity",
				 req.port, res.rule);
			h->denied++;
			/* The body is dropped; keep the connection unless the client
			 * might still hold its body back (100-continue) or switches
			 * protocols. */
			h->skip_body = 1;
			queue_inject(h, 403, "Forbidden", "access denied\n",
				     hd->expect_continue || hd->upgrade || hd->conn_close);
			return 0;
		}
	}
	/* Like Istio: the identity the mesh verified, and nothing a client
	 * could have written itself. */
	if (c->peer_id[0]) {
		snprintf(xfcc, sizeof(xfcc), "x-forwarded-client-cert: By=%s;URI=%s\r\n",
			 own ? own->id : "", c->peer_id);
	}
	n = http1_rewrite_head(&h->req, drop, xfcc[0] ? xfcc : NULL, h->out + h->out_len,
			       h->out_cap - h->out_len);
	if (n < 0) {
		return n;
	}
	h->out_len += (uint32_t)n;
	h->skip_body = 0;
	h->forwarded++;
	http1_note_request_method(&h->resp, hd->method);
	return 0;
}

void l7_down(struct ldmeshd *d, struct conn *c)
{
	struct l7 *h = c->l7;
	struct pipe *p = &c->down;

	for (;;) {
		size_t consumed = 0, avail = p->len - p->off, room = h->out_cap - h->out_len;
		enum http1_event ev;

		if (!avail || h->hold || h->opaque || room <= OUT_SLACK) {
			if (!h->opaque && !h->requests && h->req.raw_len && !h->held_since &&
			    !c->l7_policy) {
				h->held_since = now_ms();
				d->l7_detect_armed = 1;
			}
			return;
		}
		/* Body bytes fit in what is left beyond room for one head. */
		if (avail > room - OUT_SLACK) {
			avail = room - OUT_SLACK;
		}
		ev = http1_feed(&h->req, p->buf + p->off, avail, &consumed);
		switch (ev) {
		case HTTP1_MORE:
			p->off += (uint32_t)consumed;
			break;
		case HTTP1_HEAD:
			p->off += (uint32_t)consumed;
			h->held_since = 0;
			if (on_request(d, c, h) < 0) {
				conn_close(d, c, 1);
				return;
			}
			break;
		case HTTP1_BODY:
			if (!h->skip_body) {
				out_put(h, p->buf + p->off, consumed);
			}
			p->off += (uint32_t)consumed;
			break;
		case HTTP1_OPAQUE:
			if (c->l7_policy) {
				char peer[80];
				addr_format(&c->peer, peer, sizeof(peer));
				log_info("non-HTTP traffic from %s on port %u, where HTTP rules "
					 "apply; "
					 "closing",
					 peer, ntohs(c->local.port));
				conn_close(d, c, 1);
				return;
			}
			/* Bytes held while deciding go first; the rest passes raw. */
			out_put(h, h->req.raw, h->req.raw_len);
			h->opaque = 1;
			return;
		case HTTP1_ERROR:
		default: {
			char peer[80];
			int big = h->req.error && strstr(h->req.error, "too large");
			addr_format(&c->peer, peer, sizeof(peer));
			log_info("malformed HTTP request from %s: %s", peer,
				 h->req.error ? h->req.error : "?");
			p->off = p->len; /* nothing more from this client is used */
			queue_inject(h, big ? 431 : 400,
				     big ? "Request Header Fields Too Large" : "Bad Request",
				     "bad request\n", 1);
			return;
		}
		}
	}
}

void l7_detect_timeout(struct ldmeshd *d, struct conn *c)
{
	struct l7 *h = c->l7;
	size_t consumed = 0;

	h->held_since = 0;
	http1_set_opaque(&h->req);
	if (http1_feed(&h->req, "", 0, &consumed) == HTTP1_OPAQUE) {
		out_put(h, h->req.raw, h->req.raw_len);
	}
	h->opaque = 1;
}

void l7_up_scan(struct ldmeshd *d, struct conn *c, const char *buf, size_t len)
{
	struct l7 *h = c->l7;
	size_t off = 0;

	while (off < len && !h->resp_broken && !h->opaque) {
		size_t consumed = 0;
		enum http1_event ev = http1_feed(&h->resp, buf + off, len - off, &consumed);

		switch (ev) {
		case HTTP1_HEAD:
			if (h->resp.head.status >= 200 || h->resp.head.status == 101) {
				h->answered++;
			}
			if (h->resp.head.upgrade) {
				/* 101 or a 2xx to CONNECT: a tunnel from here on. */
				http1_set_opaque(&h->req);
				h->opaque = 1;
			}
			break;
		case HTTP1_OPAQUE:
			/* The server spoke first and it is not HTTP. */
			if (!h->forwarded) {
				h->opaque = 1;
			} else {
				h->resp_broken = 1;
			}
			return;
		case HTTP1_ERROR:
			h->resp_broken = 1;
			log_debug("conn %u: app response not HTTP/1 (%s); no longer tracked",
				  c->slot, h->resp.error ? h->resp.error : "?");
			return;
		default:
			break;
		}
		off += consumed;
	}
}
