/*
 * HTTP/2 awareness: per-stream policy, identity header and metrics on a
 * connection the mesh follows frame by frame; see l7_h2.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/conn_internal.h"
#include "proxy/l7.h"
#include "proxy/l7_h2.h"
#include "proxy/proxy.h"
#include "telemetry/telemetry.h"
#include "util/log.h"

/* Streams followed at once on one connection; beyond, new ones pass
 * uncounted (an app's own limit is usually 100 to 1000). */
#define H2_MAX_TRACKED 4096
/* Bytes of the client's input handed to the framer at a time, so that
 * what it writes for the app stays near the out buffer's size. */
#define H2_FEED_STEP 4096
/* The out buffer may grow this far past its size for one rewritten block. */
#define H2_OUT_MAX (1024 * 1024)

#define GRPC_PERMISSION_DENIED 7

int l7_h2_is_preface(const char *buf, size_t n)
{
	return n >= 16 && !memcmp(buf, H2_PREFACE, 16);
}

int l7_h2_is_server_settings(const char *buf, size_t n)
{
	const unsigned char *p = (const unsigned char *)buf;

	/* A SETTINGS frame (type 4) on stream 0, not an ACK, n * 6 long. */
	return n >= H2_HEAD && p[3] == H2_SETTINGS && !(p[4] & H2_FLAG_ACK) && !p[5] && !p[6] &&
	       !p[7] && !p[8] && ((uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]) % 6 == 0;
}

/* ---- streams ---------------------------------------------------------------- */

static struct l7_h2_stream *stream_of(struct l7_h2 *x, int32_t id)
{
	uint32_t i;

	for (i = 0; i < x->n; i++) {
		if (x->st[i].id == id) {
			return &x->st[i];
		}
	}
	return NULL;
}

static struct l7_h2_stream *stream_add(struct l7_h2 *x, int32_t id)
{
	struct l7_h2_stream *s;

	if (x->n == x->cap) {
		uint32_t cap = x->cap ? x->cap * 2 : 8;
		struct l7_h2_stream *p;

		if (x->cap >= H2_MAX_TRACKED) {
			return NULL;
		}
		p = realloc(x->st, cap * sizeof(*p));
		if (!p) {
			return NULL;
		}
		x->st = p;
		x->cap = cap;
	}
	s = &x->st[x->n++];
	memset(s, 0, sizeof(*s));
	s->id = id;
	s->grpc_status = -1;
	s->start_us = tel_now_us();
	return s;
}

static void stream_drop(struct l7_h2 *x, struct l7_h2_stream *s)
{
	free(s->path);
	free(s->authority);
	free(s->rule);
	*s = x->st[--x->n];
}

/* The stream's answer is complete (or it ended without one): counted. */
static void stream_done(struct proxy *d, struct conn *c, struct l7_h2 *x, struct l7_h2_stream *s,
			const char *error)
{
	int code = s->answered ? s->status : 0;
	int64_t lat = s->answered ? s->head_us - s->start_us : tel_now_us() - s->start_us;

	if (s->series) {
		tel_response_grpc(s->series, code, s->grpc ? s->grpc_status : -1, lat);
	}
	if (c->bal && code) {
		balancer_observe(c->bal, lat, s->start_us + lat); /* a service's endpoint */
	}
	if (s->route) {
		tel_response_grpc(s->route, code, s->grpc ? s->grpc_status : -1, lat);
	}
	if (c->l7 && c->l7->logging) {
		struct l7_pending p = {.path = s->path, .rule = s->rule};

		snprintf(p.method, sizeof(p.method), "%s", s->method);
		l7_log_request(d, c, &p, s->authority ? s->authority : "", code, lat,
			       code ? NULL : error);
	}
	stream_drop(x, s);
}

/*
 * A denied stream is remembered until a later stream opens at the app:
 * until then the app would take a frame the client still sends for it
 * (a WINDOW_UPDATE, an RST_STREAM) as one on a stream never opened, a
 * connection error; after, as one on a stream implicitly closed.
 */
static void forget_denied_below(struct l7_h2 *x, int32_t id)
{
	uint32_t i = 0;

	while (i < x->n) {
		if (x->st[i].denied && x->st[i].id < id) {
			stream_drop(x, &x->st[i]);
		} else {
			i++;
		}
	}
}

static int field_is(const nghttp2_nv *f, const char *name)
{
	size_t n = strlen(name);

	return f->namelen == n && !memcmp(f->name, name, n);
}

static int grpc_status_of(const struct h2_block *b)
{
	const char *v = h2_field(b->nv, b->n, "grpc-status");

	return v && *v >= '0' && *v <= '9' ? atoi(v) : -1;
}

/* A request head: a stream to follow, counted. */
static struct l7_h2_stream *request_seen(struct proxy *d, struct conn *c, struct l7_h2 *x,
					 const struct h2_block *b, const char *rule)
{
	const char *method = h2_field(b->nv, b->n, ":method");
	const char *path = h2_field(b->nv, b->n, ":path");
	const char *authority = h2_field(b->nv, b->n, ":authority");
	const char *ctype = h2_field(b->nv, b->n, "content-type");
	struct l7_h2_stream *s = stream_add(x, b->id);

	c->http_requests++;
	if (c->l7) {
		c->l7->requests++;
	}
	if (!s) {
		return NULL;
	}
	s->req_end = b->end_stream;
	s->grpc = ctype && !strncmp(ctype, "application/grpc", 16);
	snprintf(s->method, sizeof(s->method), "%s", method ? method : "");
	s->series = c->l7 ? l7_series_for(d, c, c->l7, authority ? authority : "") : NULL;
	if (s->series) {
		s->series->requests++;
	}
	s->route = c->l7 ? l7_route_for(d, c, c->l7, authority ? authority : "", rule) : NULL;
	if (s->route) {
		s->route->requests++;
	}
	if (c->l7 && c->l7->logging) {
		s->path = path ? strndup(path, strcspn(path, "?#")) : NULL; /* no query */
		s->authority = authority ? strdup(authority) : NULL;
		s->rule = rule ? strdup(rule) : NULL;
	}
	return s;
}

/* ---- answers of ours ------------------------------------------------------- */

static int inject_put(struct l7_h2 *x, size_t room, int (*build)(void *, char *, size_t), void *arg)
{
	int n;

	if (x->inject_len + room > x->inject_cap) {
		size_t cap = x->inject_cap ? x->inject_cap : 512;
		char *p;

		while (cap < x->inject_len + room) {
			cap *= 2;
		}
		if (cap > H2_OUT_MAX) {
			return -ENOBUFS; /* a client whose answers it never reads */
		}
		p = realloc(x->inject, cap);
		if (!p) {
			return -ENOMEM;
		}
		x->inject = p;
		x->inject_cap = cap;
	}
	n = build(arg, x->inject + x->inject_len, x->inject_cap - x->inject_len);
	if (n < 0) {
		return n;
	}
	x->inject_len += (size_t)n;
	return 0;
}

struct denial {
	const struct l7_h2_stream *s;
};

static int build_denial(void *arg, char *out, size_t cap)
{
	const struct l7_h2_stream *s = ((struct denial *)arg)->s;
	int n, m;

	if (s->grpc) {
		/* A trailers-only gRPC answer: PERMISSION_DENIED. */
		const nghttp2_nv nv[] = {
			{(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0},
			{(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, 0},
			{(uint8_t *)"grpc-status", (uint8_t *)"7", 11, 1, 0},
			{(uint8_t *)"grpc-message", (uint8_t *)"access denied by mesh policy", 12,
			 28, 0},
		};
		n = h2_write_headers(s->id, 1, nv, 4, out, cap);
	} else {
		/* No body: DATA of ours would take from the connection window
		 * the client then gives back to the app, which never used it. */
		const nghttp2_nv nv[] = {
			{(uint8_t *)":status", (uint8_t *)"403", 7, 3, 0},
			{(uint8_t *)"content-length", (uint8_t *)"0", 14, 1, 0},
		};
		n = h2_write_headers(s->id, 1, nv, 2, out, cap);
	}
	if (n < 0) {
		return n;
	}
	if (!s->req_end) {
		/* Answered in full: the client may stop sending (RFC 9113 8.1). */
		m = h2_write_rst(s->id, NGHTTP2_NO_ERROR, out + n, cap - (size_t)n);
		n = m < 0 ? m : n + m;
	}
	return n;
}

struct credit {
	uint32_t n;
};

static int build_credit(void *arg, char *out, size_t cap)
{
	return h2_write_window_update(0, ((struct credit *)arg)->n, out, cap);
}

/* ---- the client's frames (inbound: written again for the app) ------------- */

struct down_ctx {
	struct proxy *d;
	struct conn *c;
	struct l7 *h;
	struct l7_h2 *x;
};

static int out_grow(struct l7 *h, size_t n)
{
	if (h->out_len + n > h->out_cap) {
		size_t cap = h->out_cap;
		char *p;

		while (cap < h->out_len + n) {
			cap *= 2;
		}
		if (cap > H2_OUT_MAX) {
			return -EMSGSIZE;
		}
		p = realloc(h->out, cap);
		if (!p) {
			return -ENOMEM;
		}
		h->out = p;
		h->out_cap = (uint32_t)cap;
	}
	return 0;
}

static int out_put_h2(struct l7 *h, const char *buf, size_t n)
{
	int r = out_grow(h, n);

	if (r == 0) {
		memcpy(h->out + h->out_len, buf, n);
		h->out_len += (uint32_t)n;
	}
	return r;
}

/* The app's SETTINGS_HEADER_TABLE_SIZE bounds our encoder towards it. */
struct app_settings {
	struct l7_h2 *x;
	int err;
};

static void on_app_setting(void *ud, uint16_t id, uint32_t v)
{
	struct app_settings *a = ud;

	if (id == H2_SETTINGS_HEADER_TABLE_SIZE && !a->err) {
		a->err = h2_dir_encoder_size(&a->x->req, v);
	}
}

static int app_settings_seen(struct l7_h2 *x, const struct h2_frame *f, const char *raw)
{
	struct app_settings a = {x, 0};

	if (f->type != H2_SETTINGS || (f->flags & H2_FLAG_ACK)) {
		return 0;
	}
	if (h2_settings_each(raw + H2_HEAD, f->len, on_app_setting, &a) < 0) {
		return -EPROTO;
	}
	return a.err;
}

static int down_frame(void *ud, const struct h2_frame *f, const char *raw, size_t n, size_t off)
{
	struct down_ctx *k = ud;
	struct l7_h2 *x = k->x;
	struct l7_h2_stream *s = f->id && f->type != H2_PREFACE_FRAME ? stream_of(x, f->id) : NULL;
	int r;

	if (s && s->denied) {
		/* Never opened at the app: nothing of it goes there.  What
		 * its DATA took of the connection window comes back to the
		 * client from us. */
		if (f->type == H2_DATA && off + n == H2_HEAD + f->len) {
			if (f->len) {
				struct credit cr = {f->len};
				r = inject_put(x, H2_HEAD + 4, build_credit, &cr);
				if (r < 0) {
					return r;
				}
			}
			if (f->flags & H2_FLAG_END_STREAM) {
				s->req_end = 1;
			}
		}
		return 0;
	}
	if (s && f->type == H2_DATA && off == 0 && (f->flags & H2_FLAG_END_STREAM)) {
		s->req_end = 1;
	}
	if (s && f->type == H2_RST_STREAM) {
		stream_done(k->d, k->c, x, s, "reset");
	}
	return out_put_h2(k->h, raw, n);
}

/* The request's fields again, without what the client must not say, with
 * the identity the mesh verified. */
static int rewrite_block(struct down_ctx *k, const struct h2_block *b, int request)
{
	struct proxy *d = k->d;
	struct conn *c = k->c;
	const struct tls_svid_info *own = d->id->tls ? tls_ctx_info(d->id->tls) : NULL;
	nghttp2_nv nv[H2_MAX_FIELDS + 1];
	char xfcc[2 * LDM_PEER_ID_MAX + 16];
	size_t i, n = 0;
	int r;

	for (i = 0; i < b->n; i++) {
		if (!field_is(&b->nv[i], "x-forwarded-client-cert")) {
			nv[n++] = b->nv[i];
		}
	}
	if (c->peer_id[0] && request) {
		int len = snprintf(xfcc, sizeof(xfcc), "By=%s;URI=%s", own ? own->id : "",
				   c->peer_id);
		if (len > 0 && (size_t)len < sizeof(xfcc)) {
			nv[n++] =
				(nghttp2_nv){(uint8_t *)"x-forwarded-client-cert", (uint8_t *)xfcc,
					     23, (size_t)len, NGHTTP2_NV_FLAG_NONE};
		}
	}
	r = out_grow(k->h, 2 * H2_MAX_BLOCK);
	if (r < 0) {
		return r;
	}
	r = h2_write_block(&k->x->req, b, nv, n, k->h->out + k->h->out_len,
			   k->h->out_cap - k->h->out_len);
	if (r < 0) {
		return r;
	}
	k->h->out_len += (uint32_t)r;
	return 0;
}

static int decide(struct down_ctx *k, const struct h2_block *b, const char **rule)
{
	struct proxy *d = k->d;
	struct conn *c = k->c;
	struct policy_request req = {0};
	struct policy_result res;
	const char *authority = h2_field(b->nv, b->n, ":authority");

	*rule = c->rule[0] ? c->rule : NULL;
	if (!c->l7_policy) {
		if (*rule) {
			/* Decided for the connection: that rule allowed each request. */
			conn_authz_tel(d, c, 1, *rule, 1);
		}
		return 1;
	}
	req.principal = c->peer_id;
	req.port = ntohs(c->local.port);
	req.method = h2_field(b->nv, b->n, ":method");
	req.path = h2_field(b->nv, b->n, ":path");
	req.host = authority;
	if (!req.method || !req.path) {
		/* CONNECT and other forms without a path: not a request that
		 * path rules can decide, the connection-level decision is. */
		req.method = req.path = NULL;
		policy_decide(d->policy, POLICY_NOT_HTTP, &req, &res);
	} else {
		policy_decide(d->policy, POLICY_AT_REQUEST, &req, &res);
	}
	conn_authz(d, c, &req, &res);
	*rule = res.rule;
	if (res.decision != POLICY_DENY) {
		return 1;
	}
	{
		char peer[80];

		addr_format(&c->peer, peer, sizeof(peer));
		/* The path without its query, as for HTTP/1: no secrets in logs. */
		log_info("request %s %.*s from %s (%s) on port %u denied by %s (HTTP/2 stream %d)",
			 req.method ? req.method : "-", req.path ? (int)strcspn(req.path, "?#") : 1,
			 req.path ? req.path : "-", peer,
			 c->peer_id[0] ? c->peer_id : "no identity", req.port, res.rule, b->id);
	}
	return 0;
}

static int down_block(void *ud, const struct h2_block *b)
{
	struct down_ctx *k = ud;
	struct l7_h2 *x = k->x;
	struct l7_h2_stream *s = stream_of(x, b->id);
	const char *rule = NULL;

	if (s && s->denied) {
		return 0; /* its trailers */
	}
	if (s || b->id % 2 == 0) {
		/* Trailers of a request, or a stream we do not follow. */
		if (s && b->end_stream) {
			s->req_end = 1;
		}
		return rewrite_block(k, b, 0);
	}
	if (!decide(k, b, &rule)) {
		struct denial dn;
		int r;

		s = request_seen(k->d, k->c, x, b, rule);
		if (k->h) {
			k->h->denied++;
		}
		if (!s) {
			return -ENOMEM; /* cannot drop what we cannot remember */
		}
		s->denied = 1;
		s->answered = 1;
		s->status = s->grpc ? 200 : 403;
		s->grpc_status = s->grpc ? GRPC_PERMISSION_DENIED : -1;
		s->head_us = s->start_us;
		dn.s = s;
		r = inject_put(x, 1024, build_denial, &dn);
		if (r < 0) {
			return r;
		}
		/* Counted now; kept (denied) until the client is done with it. */
		if (s->series) {
			tel_response_grpc(s->series, s->status, s->grpc_status, 0);
			s->series = NULL;
		}
		if (s->route) {
			tel_response_grpc(s->route, s->status, s->grpc_status, 0);
			s->route = NULL;
		}
		if (k->c->l7 && k->c->l7->logging) {
			struct l7_pending p = {.path = s->path, .rule = s->rule};

			snprintf(p.method, sizeof(p.method), "%s", s->method);
			l7_log_request(k->d, k->c, &p, s->authority ? s->authority : "", s->status,
				       0, "denied");
		}
		return 0;
	}
	forget_denied_below(x, b->id);
	request_seen(k->d, k->c, x, b, rule);
	return rewrite_block(k, b, 1);
}

int l7_h2_down_bytes(struct proxy *d, struct conn *c, struct l7 *h, const char *buf, size_t n)
{
	struct l7_h2 *x = h->h2;
	struct down_ctx k = {d, c, h, x};
	struct h2_sink sink = {down_frame, down_block, &k};
	int r = h2_feed(&x->req, buf, n, &sink);

	if (r < 0) {
		char peer[80];

		addr_format(&c->peer, peer, sizeof(peer));
		log_info("HTTP/2 from %s on port %u: %s; closing", peer, ntohs(c->local.port),
			 x->req.error ? x->req.error : strerror(-r));
	}
	return r;
}

int l7_h2_down(struct proxy *d, struct conn *c, struct l7 *h)
{
	struct pipe *p = &c->down;

	while (p->off < p->len && h->out_len < c->bufsize) {
		size_t take = p->len - p->off;
		int r;

		if (take > H2_FEED_STEP) {
			take = H2_FEED_STEP;
		}
		r = l7_h2_down_bytes(d, c, h, p->buf + p->off, take);
		p->off += (uint32_t)take;
		if (r < 0) {
			return r;
		}
	}
	return 0;
}

/* ---- the server's frames (and outbound, the client's), as they pass ------ */

struct watch_ctx {
	struct proxy *d;
	struct conn *c;
	struct l7_h2 *x;
	int from_client;
};

static int watch_frame(void *ud, const struct h2_frame *f, const char *raw, size_t n, size_t off)
{
	struct watch_ctx *k = ud;
	struct l7_h2_stream *s;

	if (f->type == H2_SETTINGS) {
		return k->from_client ? 0 : app_settings_seen(k->x, f, raw);
	}
	if (!f->id || f->type == H2_PREFACE_FRAME) {
		return 0;
	}
	s = stream_of(k->x, f->id);
	if (!s || s->denied) {
		return 0;
	}
	if (f->type == H2_RST_STREAM) {
		stream_done(k->d, k->c, k->x, s, "reset");
	} else if (f->type == H2_DATA && off == 0 && (f->flags & H2_FLAG_END_STREAM)) {
		if (k->from_client) {
			s->req_end = 1;
		} else {
			stream_done(k->d, k->c, k->x, s, "no_response");
		}
	}
	return 0;
}

static int watch_block(void *ud, const struct h2_block *b)
{
	struct watch_ctx *k = ud;
	struct l7_h2_stream *s = stream_of(k->x, b->id);

	if (k->from_client) {
		/* Outbound: the app's requests. */
		if (!s && b->type == H2_HEADERS && b->id % 2) {
			request_seen(k->d, k->c, k->x, b, NULL);
		} else if (s && b->end_stream) {
			s->req_end = 1;
		}
		return 0;
	}
	if (!s || s->denied || b->type != H2_HEADERS) {
		return 0;
	}
	if (!s->answered) {
		const char *st = h2_field(b->nv, b->n, ":status");
		int code = st ? atoi(st) : 0;

		if (code >= 100 && code < 200) {
			return 0; /* informational: the answer is still to come */
		}
		s->answered = 1;
		s->status = (uint16_t)(code > 0 && code < 1000 ? code : 0);
		s->head_us = tel_now_us();
	}
	if (s->grpc) {
		int g = grpc_status_of(b);
		if (g >= 0) {
			s->grpc_status = (int16_t)g;
		}
	}
	if (b->end_stream) {
		stream_done(k->d, k->c, k->x, s, "no_response");
	}
	return 0;
}

static int watch(struct proxy *d, struct conn *c, struct l7_h2 *x, struct h2_dir *dir,
		 int from_client, const char *buf, size_t n)
{
	struct watch_ctx k = {d, c, x, from_client};
	struct h2_sink sink = {watch_frame, watch_block, &k};
	int r;

	if (x->failed) {
		return 0;
	}
	r = h2_feed(dir, buf, n, &sink);
	if (r < 0) {
		log_debug("conn %u: HTTP/2 %s no longer followed: %s", c->slot,
			  from_client ? "requests" : "responses",
			  dir->error ? dir->error : strerror(-r));
		x->failed = 1;
	}
	return r;
}

int l7_h2_responses(struct proxy *d, struct conn *c, struct l7 *h, const char *buf, size_t n)
{
	return watch(d, c, h->h2, &h->h2->resp, 0, buf, n);
}

int l7_h2_out_requests(struct proxy *d, struct conn *c, struct l7 *h, const char *buf, size_t n)
{
	return watch(d, c, h->h2, &h->h2->req, 1, buf, n);
}

/* ---- injection points ------------------------------------------------------- */

int l7_h2_inject_ready(const struct l7_h2 *x, size_t off, size_t len)
{
	if (x->sending) {
		return 1; /* the rest of what started at a boundary */
	}
	if (!x->inject_len || !x->resp.any_frame) {
		/* Nothing before the app's SETTINGS, which must come first. */
		return 0;
	}
	if (off == len) {
		return x->resp.at_boundary;
	}
	return x->resp.boundary == off;
}

size_t l7_h2_up_room(const struct l7_h2 *x, size_t off, size_t len)
{
	if ((x->inject_len || x->sending) && x->resp.boundary != (size_t)-1 &&
	    x->resp.boundary >= off && x->resp.boundary < len) {
		return x->resp.boundary - off;
	}
	return len - off;
}

void l7_h2_inject_take(struct l7_h2 *x, const char **buf, size_t *n)
{
	if (!x->sending) {
		/* Handed over whole: what is queued meanwhile goes to a new
		 * buffer, never under a write in flight. */
		x->sending = x->inject;
		x->sending_len = x->inject_len;
		x->sending_off = 0;
		x->inject = NULL;
		x->inject_len = x->inject_cap = 0;
	}
	*buf = x->sending + x->sending_off;
	*n = x->sending_len - x->sending_off;
}

void l7_h2_injected(struct l7_h2 *x, size_t n)
{
	x->sending_off += n;
	if (x->sending_off >= x->sending_len) {
		free(x->sending);
		x->sending = NULL;
		x->sending_len = x->sending_off = 0;
	}
}

/* ---- life ------------------------------------------------------------------------ */

int l7_h2_server_first(struct conn *c, struct l7 *h)
{
	struct l7_h2 *x = calloc(1, sizeof(*x));

	if (!x || h2_dir_init(&x->resp, 0, 0) < 0) {
		free(x);
		return -ENOMEM;
	}
	x->inbound = (uint8_t)(c->kind == CONN_INBOUND);
	h->h2 = x;
	return 0;
}

int l7_h2_start(struct proxy *d, struct conn *c, struct l7 *h, int upgraded)
{
	struct l7_h2 *x;

	(void)d;
	if (!h->h2 && l7_h2_server_first(c, h) < 0) {
		return -ENOMEM;
	}
	x = h->h2;
	if (h2_dir_init(&x->req, 1, x->inbound) < 0) {
		return -ENOMEM;
	}
	x->started = 1;
	if (upgraded && h->pend_n) {
		/* Stream 1 is the request that asked for h2c: its HTTP/1
		 * entry moves over, its answer comes in HTTP/2. */
		struct l7_pending *p = &h->pend[h->pend_head];
		struct l7_h2_stream *s = stream_add(x, 1);

		if (s) {
			s->req_end = 1;
			s->start_us = p->start_us;
			s->series = p->series;
			s->route = p->route;
			snprintf(s->method, sizeof(s->method), "%s", p->method);
			s->path = p->path;
			s->authority = p->authority;
			s->rule = p->rule;
			p->path = p->authority = p->rule = NULL;
		}
		h->pend_head = (uint16_t)((h->pend_head + 1) % h->pend_cap);
		h->pend_n--;
	}
	return 0;
}

void l7_h2_finish(struct proxy *d, struct conn *c, struct l7_h2 *x)
{
	if (!x) {
		return;
	}
	while (x->n) {
		struct l7_h2_stream *s = &x->st[x->n - 1];

		if (s->denied || !c) {
			stream_drop(x, s); /* no connection: nothing to count on */
		} else {
			stream_done(d, c, x, s, "no_response");
		}
	}
	free(x->st);
	free(x->inject);
	free(x->sending);
	h2_dir_fini(&x->req);
	h2_dir_fini(&x->resp);
	free(x);
}

void l7_h2_trim(struct l7_h2 *x)
{
	h2_dir_trim(&x->req);
	h2_dir_trim(&x->resp);
	if (!x->inject_len) {
		free(x->inject);
		x->inject = NULL;
		x->inject_cap = 0;
	}
	if (!x->n) {
		free(x->st);
		x->st = NULL;
		x->cap = 0;
	}
}
