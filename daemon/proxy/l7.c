/*
 * HTTP/1.x awareness: inbound policy and identity headers, request metrics
 * and access log lines on both directions; see l7.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry/accesslog.h"
#include "proxy/l7.h"
#include "proto/upgrade.h"
#include "proxy/proxy.h"
#include "proxy/conn_internal.h"
#include "telemetry/telemetry.h"
#include "util/log.h"

/* Room for one rewritten head beyond a buffer of body bytes. */
#define OUT_SLACK (HTTP1_MAX_HEAD + 2 * LDM_PEER_ID_MAX + 256)

struct l7 *l7_new(struct proxy *d, size_t out_size)
{
	struct l7 *h = calloc(1, sizeof(*h));

	if (!h) {
		return NULL;
	}
	if (out_size) {
		h->out_cap = (uint32_t)(out_size + OUT_SLACK);
		h->out = malloc(h->out_cap);
		if (!h->out) {
			free(h);
			return NULL;
		}
	} else {
		h->scan_only = 1;
	}
	h->metrics = (uint8_t)(d->cfg->http_metrics != 0);
	h->logging = (uint8_t)accesslog_on(d->alog);
	http1_init(&h->req, HTTP1_REQUEST);
	http1_init(&h->resp, HTTP1_RESPONSE);
	return h;
}

int l7_idle(const struct l7 *h)
{
	/* HTTP/2 keeps its header tables for the connection's life. */
	return !h->h2 && http1_idle(&h->req) && http1_idle(&h->resp) && !h->pend_n && !h->opaque &&
	       !h->resp_broken && !h->inject_len && !h->hold && !h->skip_body && !h->out_len &&
	       h->forwarded == h->answered && !h->held_since && !h->head_since;
}

void l7_trim(struct l7 *h)
{
	if (h->h2) {
		l7_h2_trim(h->h2);
	}
	http1_trim(&h->req);
	http1_trim(&h->resp);
	if (h->out && h->out_len == 0) {
		free(h->out);
		h->out = NULL;
		h->out_off = 0;
	}
}

int l7_untrim(struct l7 *h)
{
	if (!h->out && h->out_cap) {
		h->out = malloc(h->out_cap);
		if (!h->out) {
			return -ENOMEM;
		}
	}
	return 0;
}

static void pending_release(struct l7_pending *p)
{
	free(p->path);
	free(p->authority);
	free(p->rule);
	p->path = p->authority = p->rule = NULL;
}

void l7_free(struct l7 *h)
{
	if (!h) {
		return;
	}
	while (h->pend_n) {
		pending_release(&h->pend[h->pend_head]);
		h->pend_head = (uint16_t)((h->pend_head + 1) % h->pend_cap);
		h->pend_n--;
	}
	free(h->pend);
	if (h->h2) {
		l7_h2_finish(NULL, NULL, h->h2); /* uncounted: no connection to count on */
	}
	http1_fini(&h->req);
	http1_fini(&h->resp);
	free(h->out);
	free(h);
}

/* ---- request metrics and access log ------------------------------------- */

struct tel_series *l7_series_for(struct proxy *d, struct conn *c, struct l7 *h,
				 const char *authority)
{
	if (!h->metrics || !c->tel) {
		return NULL;
	}
	if (!h->last || strcmp(h->last->authority, authority)) {
		h->last = tel_http_series(d->tel, c->tel, authority);
	}
	return h->last;
}

/* Policy rules are the routes (route_*): one series per authority and rule. */
struct tel_series *l7_route_for(struct proxy *d, struct conn *c, struct l7 *h,
				const char *authority, const char *rule)
{
	if (!h->metrics || !c->tel || !rule) {
		return NULL;
	}
	return tel_route_series(d->tel, c->tel->dir, authority[0] ? authority : c->tel->target_addr,
				rule);
}

void l7_log_request(struct proxy *d, struct conn *c, const struct l7_pending *p,
		    const char *authority, int status, int64_t latency_us, const char *error)
{
	struct accesslog_http r = {
		.authority = authority,
		.method = p->method,
		.path = p->path,
		.rule = p->rule,
		.error = error,
		.upgrade = p->h2c_stripped ? "h2c-stripped" : NULL,
		.status = status,
		.latency_ms = (double)latency_us / 1000.0,
	};

	{
		struct accesslog_conn v;

		conn_log_view(c, &v);
		accesslog_http(d->alog, &v, &r);
	}
}

/* A request head that goes on to the server: its response is awaited. */
static void track_request(struct proxy *d, struct conn *c, struct l7 *h,
			  const struct http1_head *hd, const char *rule)
{
	struct l7_pending *p;

	c->http_requests++;
	if (!h->metrics && !h->logging) {
		return;
	}
	if (h->pend_n == h->pend_cap) {
		/* The response side fails past HTTP1_MAX_PIPELINE anyway. */
		uint16_t cap = h->pend_cap ? (uint16_t)(h->pend_cap * 2) : 4, i;
		struct l7_pending *np;

		if (h->pend_cap >= HTTP1_MAX_PIPELINE) {
			return;
		}
		np = calloc(cap, sizeof(*np));
		if (!np) {
			return;
		}
		for (i = 0; i < h->pend_n; i++) {
			np[i] = h->pend[(h->pend_head + i) % h->pend_cap];
		}
		free(h->pend);
		h->pend = np;
		h->pend_cap = cap;
		h->pend_head = 0;
	}
	p = &h->pend[(h->pend_head + h->pend_n) % h->pend_cap];
	memset(p, 0, sizeof(*p));
	p->start_us = tel_now_us();
	p->series = l7_series_for(d, c, h, hd->host);
	if (p->series) {
		p->series->requests++;
	}
	p->route = l7_route_for(d, c, h, hd->host, rule);
	if (p->route) {
		p->route->requests++;
	}
	snprintf(p->method, sizeof(p->method), "%s", hd->method);
	if (h->logging) {
		p->path = strdup(hd->path);
		p->authority = strdup(hd->host);
		p->rule = rule ? strdup(rule) : NULL;
	}
	h->pend_n++;
}

/* The next response head (final: >= 200 or 101), or code 0 for none. */
static void track_response(struct proxy *d, struct conn *c, struct l7 *h, int code,
			   const char *error)
{
	struct l7_pending *p;
	int64_t lat;

	if (!h->pend_n) {
		return;
	}
	p = &h->pend[h->pend_head];
	lat = tel_now_us() - p->start_us;
	if (p->series) {
		tel_response(p->series, code, lat);
	}
	if (c->bal && code) {
		balancer_observe(c->bal, lat, p->start_us + lat); /* a service's endpoint */
	}
	if (p->route) {
		tel_response(p->route, code, lat);
	}
	if (h->logging) {
		l7_log_request(d, c, p, p->authority, code, lat, error);
	}
	pending_release(p);
	h->pend_head = (uint16_t)((h->pend_head + 1) % h->pend_cap);
	h->pend_n--;
}

void l7_finish(struct proxy *d, struct conn *c, struct l7 *h)
{
	if (!h) {
		return;
	}
	while (h->pend_n) {
		track_response(d, c, h, 0, "no_response");
	}
	l7_h2_finish(d, c, h->h2);
	h->h2 = NULL;
	l7_free(h);
}

/* A request we answered ourselves (403): counted and logged at once. */
static void answered_by_us(struct proxy *d, struct conn *c, struct l7 *h,
			   const struct http1_head *hd, int code, const char *rule)
{
	struct l7_pending p = {0};
	struct tel_series *s = l7_series_for(d, c, h, hd->host),
			  *r = l7_route_for(d, c, h, hd->host, rule);

	c->http_requests++;
	if (s) {
		s->requests++;
		tel_response(s, code, 0);
	}
	if (r) {
		r->requests++;
		tel_response(r, code, 0);
	}
	if (h->logging) {
		snprintf(p.method, sizeof(p.method), "%s", hd->method);
		p.path = (char *)hd->path;
		p.rule = (char *)rule;
		l7_log_request(d, c, &p, hd->host, code, 0, "denied");
	}
}

int l7_inject_ready(const struct l7 *h)
{
	return h->inject_len && h->answered >= h->forwarded && http1_idle(&h->resp);
}

/* The held bytes and those at buf begin with the HTTP/2 preface's line. */
static int preface_follows(const struct http1_stream *s, const char *buf, size_t n)
{
	char probe[16];
	size_t have = s->raw_len < sizeof(probe) ? s->raw_len : sizeof(probe);

	if (have) {
		memcpy(probe, s->raw, have);
	}
	if (have < sizeof(probe)) {
		size_t more = sizeof(probe) - have < n ? sizeof(probe) - have : n;
		memcpy(probe + have, buf, more);
		have += more;
	}
	return l7_h2_is_preface(probe, have);
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
static int on_request(struct proxy *d, struct conn *c, struct l7 *h)
{
	static const char *const drop[] = {"x-forwarded-client-cert", NULL};
	static const char *const drop_h2c[] = {"x-forwarded-client-cert", "upgrade", "connection",
					       "http2-settings", NULL};
	const struct http1_head *hd = &h->req.head;
	const struct tls_svid_info *own = d->id->tls ? tls_ctx_info(d->id->tls) : NULL;
	char extra[2 * LDM_PEER_ID_MAX + 64 + 2048]; /* only extra[0..used) is read */
	const char *rule = c->rule[0] ? c->rule : NULL;
	int n, h2c = 0, all_gone = 0, follow_h2c;
	size_t used = 0;

	extra[0] = '\0';
	h->requests++;
	if (c->l7_policy) {
		struct policy_request req = {0};
		struct policy_result res;

		req.principal = c->peer_id;
		req.port = ntohs(c->local.port);
		req.method = hd->method;
		req.path = hd->path;
		req.host = hd->host[0] ? hd->host : NULL;
		policy_decide(d->policy, POLICY_AT_REQUEST, &req, &res);
		conn_authz(d, c, &req, &res);
		if (res.decision == POLICY_DENY) {
			char peer[80];
			addr_format(&c->peer, peer, sizeof(peer));
			log_info("request %s %s from %s (%s) on port %u denied by %s", hd->method,
				 hd->path, peer, c->peer_id[0] ? c->peer_id : "no identity",
				 req.port, res.rule);
			h->denied++;
			answered_by_us(d, c, h, hd, 403, res.rule);
			/* The body is dropped; keep the connection unless the client
			 * might still hold its body back (100-continue) or switches
			 * protocols. */
			h->skip_body = 1;
			queue_inject(h, 403, "Forbidden", "access denied\n",
				     hd->expect_continue || hd->upgrade || hd->conn_close);
			return 0;
		}
		rule = res.rule;
	} else if (rule) {
		/* Decided for the connection: that rule allowed each request. */
		conn_authz_tel(d, c, 1, rule, 1);
	}
	/* Like Istio: the identity the mesh verified, and nothing a client
	 * could have written itself. */
	if (c->peer_id[0]) {
		n = snprintf(extra, 2 * LDM_PEER_ID_MAX + 64,
			     "x-forwarded-client-cert: By=%s;URI=%s\r\n", own ? own->id : "",
			     c->peer_id);
		used = n > 0 ? strlen(extra) : 0;
	}
	/* An h2c upgrade without a body is followed: its answer decides
	 * whether HTTP/2 comes next, which is then read stream by stream.
	 * With a body, where requests are decided one by one, the upgrade is
	 * removed (upgrade.h): the mesh does not hold a body back. */
	follow_h2c =
		hd->upgrade && !hd->chunked && hd->content_length <= 0 && upgrade_asks_h2c(&h->req);
	if (c->l7_policy && hd->upgrade && !follow_h2c) {
		h2c = upgrade_strip_h2c(&h->req, extra + used, sizeof(extra) - used, &all_gone);
		if (h2c < 0) {
			return h2c;
		}
	}
	n = http1_rewrite_head(&h->req, h2c ? drop_h2c : drop, extra[0] ? extra : NULL,
			       h->out + h->out_len, h->out_cap - h->out_len);
	if (n < 0) {
		return n;
	}
	if (h2c) {
		char peer[80];

		d->stats.h2c_upgrades_stripped_total++;
		addr_format(&c->peer, peer, sizeof(peer));
		log_info("request %s %s from %s (%s) on port %u: h2c upgrade removed (HTTP/2 after "
			 "it would not be decided per request)",
			 hd->method, hd->path, peer, c->peer_id[0] ? c->peer_id : "no identity",
			 ntohs(c->local.port));
	}
	h->upgrade_removed = (uint8_t)(h2c && all_gone);
	h->await_h2c = (uint8_t)follow_h2c;
	h->out_len += (uint32_t)n;
	h->skip_body = 0;
	h->forwarded++;
	http1_note_request_method(&h->resp, hd->method);
	track_request(d, c, h, hd, rule);
	if (h2c && h->pend_n) {
		h->pend[(h->pend_head + h->pend_n - 1) % h->pend_cap].h2c_stripped = 1;
	}
	return 0;
}

/*
 * The bytes of a connection whose requests were to be decided one by one
 * are not HTTP/1.x (HTTP/2, gRPC, TLS, a server speaking first, noise).
 * The connection-level decision applies, the same one `policy check`
 * gives without a method; it is final either way.  Returns 0 when allowed
 * (the caller turns the connection opaque) or -EACCES after closing c.
 */
static int not_http(struct proxy *d, struct conn *c, const char *what)
{
	struct policy_request req = {0};
	struct policy_result res;
	char peer[80];

	req.principal = c->peer_id;
	req.port = ntohs(c->local.port);
	policy_decide(d->policy, POLICY_NOT_HTTP, &req, &res);
	conn_authz(d, c, &req, &res);
	addr_format(&c->peer, peer, sizeof(peer));
	log_info("connection from %s (%s) to port %u, where HTTP rules apply, is not HTTP/1 "
		 "(%s): %s by %s",
		 peer, c->peer_id[0] ? c->peer_id : "no identity", req.port, what,
		 res.decision == POLICY_ALLOW ? "allowed" : "denied", res.rule);
	if (res.decision != POLICY_ALLOW) {
		return -EACCES; /* the caller closes the connection */
	}
	snprintf(c->rule, sizeof(c->rule), "%s", res.rule);
	c->l7_policy = 0; /* decided for the connection's life */
	return 0;
}

/* The client's bytes are HTTP/2 with prior knowledge: followed as such,
 * what was held while deciding first. */
static int h2_now(struct proxy *d, struct conn *c, struct l7 *h)
{
	int r = l7_h2_start(d, c, h, 0);

	if (r == 0 && h->req.raw_len) {
		r = l7_h2_down_bytes(d, c, h, h->req.raw, h->req.raw_len);
	}
	http1_set_opaque(&h->req);
	h->req.raw_len = 0;
	return r < 0 ? r : l7_h2_down(d, c, h);
}

int l7_down(struct proxy *d, struct conn *c)
{
	struct l7 *h = c->l7;
	struct pipe *p = &c->down;

	if (h->h2 && h->h2->started) {
		return l7_h2_down(d, c, h);
	}
	if (h->await_h2c) {
		return 0; /* the app's answer to the upgrade says what comes next */
	}
	for (;;) {
		size_t consumed = 0, avail = p->len - p->off, room = h->out_cap - h->out_len;
		enum http1_event ev;

		if (!avail || h->hold || h->opaque || room <= OUT_SLACK) {
			/* Only an unfinished first line may be another protocol. */
			if (!h->opaque && !h->requests && h->req.raw_len && !h->held_since &&
			    !c->l7_policy && !http1_in_headers(&h->req)) {
				h->held_since = now_ms();
				d->l7_detect_armed = 1;
				d->stats.http_detect_held_total++;
			}
			return 0;
		}
		/* Body bytes fit in what is left beyond room for one head. */
		if (avail > room - OUT_SLACK) {
			avail = room - OUT_SLACK;
		}
		ev = http1_feed(&h->req, p->buf + p->off, avail, &consumed);
		switch (ev) {
		case HTTP1_MORE:
			p->off += (uint32_t)consumed;
			if (h->req.raw_len && !h->head_since) {
				/* Bounded by http_head_timeout_ms (conn_sweep). */
				h->head_since = now_ms();
			}
			if (h->held_since && http1_in_headers(&h->req)) {
				h->held_since = 0; /* a valid request line: HTTP */
			}
			break;
		case HTTP1_HEAD:
			p->off += (uint32_t)consumed;
			h->held_since = 0;
			h->head_since = 0;
			if (on_request(d, c, h) < 0) {
				return -EPROTO;
			}
			if (h->await_h2c) {
				return 0; /* nothing more until the app answers it */
			}
			break;
		case HTTP1_BODY:
			if (!h->skip_body) {
				out_put(h, p->buf + p->off, consumed);
			}
			p->off += (uint32_t)consumed;
			break;
		case HTTP1_OPAQUE:
			if (preface_follows(&h->req, p->buf + p->off, p->len - p->off)) {
				return h2_now(d, c, h);
			}
			if (h->h2) {
				/* The app spoke HTTP/2 first, the client does not. */
				l7_h2_finish(d, c, h->h2);
				h->h2 = NULL;
			}
			if (c->l7_policy && not_http(d, c, "its first request bytes") < 0) {
				return -EACCES;
			}
			/* Bytes held while deciding go first; the rest passes raw. */
			out_put(h, h->req.raw, h->req.raw_len);
			h->opaque = 1;
			return 0;
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
			return 0;
		}
		}
	}
}

/* Opaque from here on; request bytes held while deciding go first. */
static void opaque_now(struct l7 *h)
{
	size_t consumed = 0;

	h->held_since = 0;
	http1_set_opaque(&h->req);
	if (http1_feed(&h->req, "", 0, &consumed) == HTTP1_OPAQUE) {
		out_put(h, h->req.raw, h->req.raw_len);
	}
	h->opaque = 1;
}

int l7_detect_timeout(struct proxy *d, struct conn *c)
{
	if (c->l7_policy && not_http(d, c, "an undecided first line") < 0) {
		return -EACCES;
	}
	opaque_now(c->l7);
	return 0;
}

/* HTTP/2 responses: a framing error closes an inbound connection (answers
 * of ours could no longer be put in), and ends following an outbound one. */
static int h2_responses(struct proxy *d, struct conn *c, struct l7 *h, const char *buf, size_t len)
{
	int r = l7_h2_responses(d, c, h, buf, len);

	if (r < 0 && h->scan_only) {
		h->resp_broken = 1;
		return 0;
	}
	return r;
}

/* The app accepted the h2c upgrade: HTTP/2 from here, both ways, the
 * upgrade request being stream 1.  Returns what follows the 101 in buf. */
static int h2c_switch(struct proxy *d, struct conn *c, struct l7 *h, const char *rest, size_t n)
{
	int r = l7_h2_start(d, c, h, 1);

	if (r < 0) {
		return r;
	}
	http1_set_opaque(&h->req);
	http1_set_opaque(&h->resp);
	return n ? h2_responses(d, c, h, rest, n) : 0;
}

int l7_responses(struct proxy *d, struct conn *c, const char *buf, size_t len)
{
	struct l7 *h = c->l7;
	size_t off = 0;

	if (h->h2) {
		return h2_responses(d, c, h, buf, len);
	}
	while (off < len && !h->resp_broken && !h->opaque) {
		size_t consumed = 0;
		enum http1_event ev = http1_feed(&h->resp, buf + off, len - off, &consumed);

		switch (ev) {
		case HTTP1_HEAD:
			if (h->await_h2c &&
			    (h->resp.head.status >= 200 || h->resp.head.status == 101)) {
				h->await_h2c = 0;
				if (h->resp.head.status == 101 && h->resp.head.upgrade) {
					h->answered++;
					return h2c_switch(d, c, h, buf + off + consumed,
							  len - off - consumed);
				}
			}
			if (h->resp.head.status >= 200 || h->resp.head.status == 101) {
				h->answered++;
				track_response(d, c, h, h->resp.head.status, NULL);
			}
			if (h->resp.head.upgrade && h->resp.head.status == 101 &&
			    h->upgrade_removed) {
				/* The app switched although the request it got no
				 * longer asked to: nothing after this could be read. */
				log_warn("conn %u: the app answered 101 to a request whose h2c "
					 "upgrade was removed; closing",
					 c->slot);
				return -EPROTO;
			}
			if (h->resp.head.upgrade) {
				/* 101 or a 2xx to CONNECT: a tunnel from here on, which
				 * the allowed request that asked for it decided. */
				http1_set_opaque(&h->req);
				h->opaque = 1;
				c->l7_policy = 0;
			}
			break;
		case HTTP1_OPAQUE:
			/* The server spoke first and it is not HTTP (an HTTP/2 or
			 * gRPC server's SETTINGS, a banner): where requests were to
			 * be decided, that is a non-HTTP connection now, whichever
			 * side's bytes came first. */
			if (!h->forwarded && !h->pend_n) {
				if (l7_h2_is_server_settings(buf + off, len - off)) {
					/* An HTTP/2 server's preface: the client's
					 * first bytes will tell. */
					if (l7_h2_server_first(c, h) < 0) {
						return -ENOMEM;
					}
					return h2_responses(d, c, h, buf + off, len - off);
				}
				if (c->l7_policy && !h->scan_only &&
				    not_http(d, c, "the app spoke first") < 0) {
					return -EACCES;
				}
				opaque_now(h);
			} else {
				h->resp_broken = 1;
			}
			return 0;
		case HTTP1_ERROR:
			h->resp_broken = 1;
			log_debug("conn %u: response not HTTP/1 (%s); no longer tracked", c->slot,
				  h->resp.error ? h->resp.error : "?");
			return 0;
		default:
			break;
		}
		off += consumed;
	}
	return 0;
}

void l7_out_requests(struct proxy *d, struct conn *c, const char *buf, size_t len)
{
	struct l7 *h = c->l7;
	size_t off = 0;

	if (h->h2 && h->h2->started) {
		if (l7_h2_out_requests(d, c, h, buf, len) < 0) {
			h->resp_broken = 1;
		}
		return;
	}
	while (off < len && !h->opaque && !h->resp_broken) {
		size_t consumed = 0;
		enum http1_event ev = http1_feed(&h->req, buf + off, len - off, &consumed);

		switch (ev) {
		case HTTP1_HEAD:
			if (h->req.head.upgrade && !h->req.head.chunked &&
			    h->req.head.content_length <= 0 && upgrade_asks_h2c(&h->req)) {
				h->await_h2c = 1;
			}
			h->forwarded++;
			http1_note_request_method(&h->resp, h->req.head.method);
			track_request(d, c, h, &h->req.head, NULL);
			break;
		case HTTP1_OPAQUE:
			if (preface_follows(&h->req, buf + off, len - off)) {
				const char *held = h->req.raw;
				size_t n = h->req.raw_len;

				if (l7_h2_start(d, c, h, 0) < 0 ||
				    (n && l7_h2_out_requests(d, c, h, held, n) < 0) ||
				    l7_h2_out_requests(d, c, h, buf + off, len - off) < 0) {
					h->resp_broken = 1;
				}
				http1_set_opaque(&h->req);
				return;
			}
			h->opaque = 1;
			return;
		case HTTP1_ERROR:
			/* The server will reject it; we just stop following. */
			log_debug("conn %u: request not HTTP/1 (%s); no longer tracked", c->slot,
				  h->req.error ? h->req.error : "?");
			h->resp_broken = 1;
			return;
		default:
			break;
		}
		off += consumed;
	}
}
