/*
 * HTTP/2 requests routed one by one; see route_h2.h.
 *
 * Two kinds of nghttp2 session: one server session facing the app, and a
 * client session per upstream (one per endpoint in use).  A request is a
 * struct rh2_stream, the user data of its stream on both sessions.  Its
 * bytes wait in small buffers bounded by HTTP/2 flow control: a DATA
 * frame is acknowledged (nghttp2_session_consume) to whoever sent it only
 * once the other session has taken it.  Frames leave a session through
 * nghttp2_session_mem_send(), whose buffer stays valid until the next
 * call: it is written from there, and a session is deleted only when no
 * write of it is out (an upstream closed mid-write waits in its slot).
 */
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"
#include "proxy/conn_internal.h"
#include "proxy/route.h"
#include "proxy/route_h2.h"
#include "proxy/stage.h"
#include "util/log.h"

#define RH2_READ 16384 /* an upstream's read buffer */
#define RH2_HEADERS_MAX 65536 /* bytes of one header block we keep */

/* A header list as received, kept to be sent on (and again, on a retry). */
struct rh2_headers {
	char *mem;
	size_t len, cap;
	struct {
		uint32_t name, name_len, value, value_len;
	} * f;
	size_t n, cap_n;
};

/* Bytes waiting to go to the other side. */
struct rh2_buf {
	char *p;
	size_t len, off, cap;
};

struct rh2_stream {
	struct rh2_stream *next, *prev;
	int32_t app_id, up_id;
	int up; /* upstream slot of the current attempt, -1: none */
	uint8_t up_attached; /* the upstream session holds it as user data */
	uint8_t app_closed;
	uint8_t req_end, resp_started, resp_end, resp_trailers;
	uint8_t grpc, retryable, attempts, from_kept;
	uint8_t fresh; /* the attempt's upstream was not open yet */
	/* Where st->out's bytes came from: their DATA is acknowledged there
	 * as the app takes them, the stream closed or not (the connection's
	 * window counts them too). */
	int out_slot;
	int32_t out_id;
	struct bal_endpoint *ep; /* load reference of the current attempt */
	const struct bal_endpoint *failed;
	int svc;
	struct rh2_headers req, resp, trl;
	struct rh2_buf in; /* request DATA from the app, not yet upstream */
	struct rh2_buf kept; /* the whole request body, while it may go again */
	struct rh2_buf out; /* response DATA for the app */
	int timeout_ms;
	struct config_retry retry;
	int64_t start_us, attempt_us, deadline_ms;
};

struct rh2_up {
	struct route_h2 *h;
	struct conn *u; /* NULL: a free slot */
	struct bal_endpoint *e; /* borrowed: u's reference */
	nghttp2_session *s;
	char *rbuf;
	const uint8_t *wdata;
	size_t wlen, woff;
	uint8_t open, dead, rpending, wpending, dialling;
	uint8_t borrowing; /* dead with an operation on rbuf or wdata out */
};

struct route_h2 {
	struct proxy *d;
	struct conn *c;
	nghttp2_session *app;
	const uint8_t *wdata;
	size_t wlen, woff;
	struct rh2_up up[RH2_UPSTREAMS];
	struct rh2_stream *streams;
	uint8_t app_eof;
	/* Inside a session's callbacks (or the pump): no mem_send then, the
	 * pump goes round again once out. */
	uint8_t busy, again;
};

static struct route_h2 *h2_of(const struct conn *c)
{
	return c->rt->h2;
}

/* ---- small buffers ------------------------------------------------------------- */

static int buf_put(struct rh2_buf *b, const void *p, size_t n)
{
	if (b->off && b->off == b->len) {
		b->off = b->len = 0;
	}
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *q;

		while (cap < b->len + n) {
			cap *= 2;
		}
		if (!(q = realloc(b->p, cap))) {
			return -1;
		}
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static size_t buf_take(struct rh2_buf *b, uint8_t *to, size_t max)
{
	size_t n = b->len - b->off < max ? b->len - b->off : max;

	memcpy(to, b->p + b->off, n);
	b->off += n;
	return n;
}

static void buf_free(struct rh2_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static int headers_add(struct rh2_headers *hs, const uint8_t *name, size_t nl, const uint8_t *value,
		       size_t vl)
{
	if (hs->len + nl + vl > RH2_HEADERS_MAX) {
		return -1;
	}
	if (hs->n == hs->cap_n) {
		size_t cap = hs->cap_n ? hs->cap_n * 2 : 16;
		void *f = realloc(hs->f, cap * sizeof(*hs->f));
		if (!f) {
			return -1;
		}
		hs->f = f;
		hs->cap_n = cap;
	}
	if (hs->len + nl + vl > hs->cap) {
		size_t cap = hs->cap ? hs->cap : 1024;
		char *m;

		while (cap < hs->len + nl + vl) {
			cap *= 2;
		}
		if (!(m = realloc(hs->mem, cap))) {
			return -1;
		}
		hs->mem = m;
		hs->cap = cap;
	}
	hs->f[hs->n].name = (uint32_t)hs->len;
	hs->f[hs->n].name_len = (uint32_t)nl;
	memcpy(hs->mem + hs->len, name, nl);
	hs->len += nl;
	hs->f[hs->n].value = (uint32_t)hs->len;
	hs->f[hs->n].value_len = (uint32_t)vl;
	memcpy(hs->mem + hs->len, value, vl);
	hs->len += vl;
	hs->n++;
	return 0;
}

static void headers_clear(struct rh2_headers *hs)
{
	hs->len = hs->n = 0;
}

static void headers_free(struct rh2_headers *hs)
{
	free(hs->mem);
	free(hs->f);
	memset(hs, 0, sizeof(*hs));
}

/* The value of header name, or NULL; *n its length. */
static const char *header(const struct rh2_headers *hs, const char *name, size_t *n)
{
	size_t i, nl = strlen(name);

	for (i = 0; i < hs->n; i++) {
		if (hs->f[i].name_len == nl && !memcmp(hs->mem + hs->f[i].name, name, nl)) {
			*n = hs->f[i].value_len;
			return hs->mem + hs->f[i].value;
		}
	}
	return NULL;
}

static int header_int(const struct rh2_headers *hs, const char *name, int dflt)
{
	size_t n;
	const char *v = header(hs, name, &n);
	char tmp[16];

	if (!v || !n || n >= sizeof(tmp)) {
		return dflt;
	}
	memcpy(tmp, v, n);
	tmp[n] = 0;
	return atoi(tmp);
}

/* nv points into hs: valid until hs changes. */
static nghttp2_nv *headers_nv(const struct rh2_headers *hs)
{
	nghttp2_nv *nv = calloc(hs->n ? hs->n : 1, sizeof(*nv));
	size_t i;

	if (!nv) {
		return NULL;
	}
	for (i = 0; i < hs->n; i++) {
		nv[i].name = (uint8_t *)hs->mem + hs->f[i].name;
		nv[i].namelen = hs->f[i].name_len;
		nv[i].value = (uint8_t *)hs->mem + hs->f[i].value;
		nv[i].valuelen = hs->f[i].value_len;
		nv[i].flags = NGHTTP2_NV_FLAG_NONE;
	}
	return nv;
}

#define NV(n, v)                                                                                   \
	{                                                                                          \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE     \
	}

/* ---- streams ------------------------------------------------------------------------ */

static void out_acknowledge(struct route_h2 *h, const struct rh2_stream *st, size_t n);

static void stream_free(struct route_h2 *h, struct rh2_stream *st)
{
	/* What it still holds was counted against the windows of both
	 * connections: give it back, or they shrink for good. */
	out_acknowledge(h, st, st->out.len - st->out.off);
	if (st->in.len > st->in.off && h->app) {
		nghttp2_session_consume(h->app, st->app_id, st->in.len - st->in.off);
	}
	if (st->prev) {
		st->prev->next = st->next;
	} else {
		h->streams = st->next;
	}
	if (st->next) {
		st->next->prev = st->prev;
	}
	if (st->ep) {
		balancer_release(st->ep);
	}
	headers_free(&st->req);
	headers_free(&st->resp);
	headers_free(&st->trl);
	buf_free(&st->in);
	buf_free(&st->kept);
	buf_free(&st->out);
	free(st);
}

static void stream_maybe_free(struct route_h2 *h, struct rh2_stream *st)
{
	if (st->app_closed && !st->up_attached) {
		stream_free(h, st);
	}
}

/* The stream lets go of its upstream stream (cancelled when still open). */
static void stream_detach(struct route_h2 *h, struct rh2_stream *st)
{
	struct rh2_up *up = st->up >= 0 ? &h->up[st->up] : NULL;

	if (up && st->up_attached && up->s && !up->dead) {
		nghttp2_session_set_stream_user_data(up->s, st->up_id, NULL);
		nghttp2_submit_rst_stream(up->s, NGHTTP2_FLAG_NONE, st->up_id, NGHTTP2_CANCEL);
	}
	st->up_attached = 0;
	st->up = -1;
	st->up_id = 0;
}

/* Not a sample when the upstream was opened for it (route.c). */
static void attempt_result(struct rh2_stream *st, enum bal_result res, int64_t now_us)
{
	route_result(st->ep, res,
		     st->fresh && res == BAL_RES_SUCCESS ? -1 : now_us - st->attempt_us, now_us);
}

static void release_endpoint(struct rh2_stream *st)
{
	if (st->ep) {
		balancer_release(st->ep);
		st->ep = NULL;
	}
}

static ssize_t out_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
			nghttp2_data_source *src, void *ud);

/*
 * An answer of ours for the app's stream: 503 / 502 / 504 with
 * l5d-proxy-error, or for gRPC a trailers-only 200 with grpc-status
 * (UNAVAILABLE, DEADLINE_EXCEEDED).  After the upstream's response began,
 * the app's stream is reset instead.
 */
static void answer(struct route_h2 *h, struct rh2_stream *st, int status, int grpc_status,
		   const char *error)
{
	char code[8], gcode[8];

	stream_detach(h, st);
	release_endpoint(st);
	st->deadline_ms = 0;
	if (st->app_closed) {
		return;
	}
	if (st->resp_started) {
		nghttp2_submit_rst_stream(h->app, NGHTTP2_FLAG_NONE, st->app_id,
					  NGHTTP2_INTERNAL_ERROR);
		return;
	}
	st->resp_started = 1;
	st->resp_end = 1;
	snprintf(code, sizeof(code), "%d", status);
	snprintf(gcode, sizeof(gcode), "%d", grpc_status);
	if (st->grpc) {
		nghttp2_nv nv[] = {NV(":status", "200"), NV("content-type", "application/grpc"),
				   NV("grpc-status", gcode), NV("grpc-message", error),
				   NV("l5d-proxy-error", error)};
		nghttp2_submit_response(h->app, st->app_id, nv, ARRAY_SIZE(nv), NULL);
		return;
	}
	{
		nghttp2_nv nv[] = {NV(":status", code), NV("content-type", "text/plain"),
				   NV("l5d-proxy-error", error)};
		nghttp2_data_provider dp;

		st->out.off = st->out.len = 0;
		st->out_slot = -1; /* our bytes: nothing to acknowledge */
		if (buf_put(&st->out, error, strlen(error)) < 0 || buf_put(&st->out, "\n", 1) < 0) {
			nghttp2_submit_response(h->app, st->app_id, nv, ARRAY_SIZE(nv), NULL);
			return;
		}
		dp.source.ptr = st;
		dp.read_callback = out_read;
		nghttp2_submit_response(h->app, st->app_id, nv, ARRAY_SIZE(nv), &dp);
	}
}

static ssize_t in_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
		       nghttp2_data_source *src, void *ud);
static void upstream_session_free(struct rh2_up *up);
static int upstream_session_new(struct route_h2 *h, struct rh2_up *up);

/* The slot of an open or opening upstream to e, a new one, or -1. */
static int upstream_for(struct route_h2 *h, int svc, struct bal_endpoint *e)
{
	int i, free_slot = -1;

	for (i = 0; i < RH2_UPSTREAMS; i++) {
		struct rh2_up *up = &h->up[i];

		if (up->u && !up->dead && up->e == e) {
			return i;
		}
		if (!up->u && free_slot < 0) {
			free_slot = i;
		}
	}
	if (free_slot < 0) {
		return -1;
	}
	h->up[free_slot].h = h;
	if (upstream_session_new(h, &h->up[free_slot]) < 0) {
		upstream_session_free(&h->up[free_slot]);
		return -1;
	}
	h->up[free_slot].u = outbound_upstream_new(h->d, h->c, svc, e);
	if (!h->up[free_slot].u) {
		upstream_session_free(&h->up[free_slot]);
		return -1;
	}
	h->up[free_slot].e = e;
	return free_slot;
}

static void attempt(struct route_h2 *h, struct rh2_stream *st)
{
	struct proxy *d = h->d;
	int64_t now = tel_now_us();
	struct bal_endpoint *e = balancer_pick(&d->bal, st->svc, st->failed, now);
	nghttp2_data_provider dp = {{.ptr = st}, in_read};
	nghttp2_nv *nv;
	int slot;

	if (!e) {
		outbound_log_unavailable(d, h->c, st->svc, 1);
		answer(h, st, 503, 14, "no endpoint of the service is available");
		return;
	}
	st->ep = e;
	e->requests_total++;
	st->attempt_us = now;
	slot = upstream_for(h, st->svc, e);
	nv = slot >= 0 ? headers_nv(&st->req) : NULL;
	if (!nv) {
		answer(h, st, 502, 14, "no connection to the endpoint could be made");
		return;
	}
	st->up = slot;
	st->fresh = !h->up[slot].open;
	st->up_id = nghttp2_submit_request(
		h->up[slot].s, NULL, nv, st->req.n,
		st->req_end && !st->in.len && !st->from_kept ? NULL : &dp, st);
	free(nv);
	if (st->up_id < 0) {
		st->up = -1;
		answer(h, st, 502, 14, "the request could not be sent on");
		return;
	}
	st->up_attached = 1;
	headers_clear(&st->resp);
	headers_clear(&st->trl);
	if (!h->up[slot].open && !h->up[slot].dialling) {
		/* A new upstream: dialled once its first stream is in place, so
		 * a dial that fails at once finds the stream to fail over. */
		h->up[slot].dialling = 1;
		outbound_upstream_dial(h->d, h->up[slot].u);
	}
}

/* The attempt failed with nothing sent to the app: 1 when it goes again. */
static int try_again(struct route_h2 *h, struct rh2_stream *st, int connect_failure)
{
	struct proxy *d = h->d;
	const struct config_retry *r = &st->retry;

	if (st->resp_started || st->app_closed || st->attempts >= r->max || d->draining) {
		return 0;
	}
	if (connect_failure) {
		/* Nothing reached the endpoint: the request may go again as long
		 * as what it has sent so far is still at hand. */
		if (!(r->on & RETRY_ON_CONNECT_FAILURE) ||
		    (st->in.off && !(st->retryable && st->req_end))) {
			return 0;
		}
		d->bal.svc[st->svc].retries_total++;
	} else if (!st->retryable || !st->req_end ||
		   !balancer_budget_retry(&d->bal, st->svc, r->budget_percent, r->min_per_s,
					  r->ttl_s, tel_now_us())) {
		return 0;
	}
	st->failed = st->ep;
	stream_detach(h, st);
	release_endpoint(st);
	st->attempts++;
	if (st->retryable && st->req_end) {
		/* The kept copy goes again; what the first attempt had not
		 * taken of st->in is acknowledged to the app now. */
		st->from_kept = 1;
		st->kept.off = 0;
		if (st->in.len > st->in.off) {
			nghttp2_session_consume(h->app, st->app_id, st->in.len - st->in.off);
		}
		st->in.off = st->in.len;
	}
	st->out.off = st->out.len = 0;
	attempt(h, st);
	return 1;
}

/* The current attempt failed before its response began. */
static void attempt_failed(struct route_h2 *h, struct rh2_stream *st, int connect_failure)
{
	if (!connect_failure) {
		attempt_result(st, BAL_RES_ERROR, tel_now_us());
	}
	if (try_again(h, st, connect_failure) ||
	    (!connect_failure && (st->retry.on & RETRY_ON_RESET) && try_again(h, st, 0))) {
		return;
	}
	answer(h, st, connect_failure ? 503 : 502, 14,
	       connect_failure ? "connection to the endpoint failed"
			       : "the endpoint reset the request");
}

/* ---- the request: app session ------------------------------------------------------ */

/* A request's headers are in: its settings, then its first attempt. */
static void request_ready(struct route_h2 *h, struct rh2_stream *st)
{
	struct proxy *d = h->d;
	size_t mlen = 0, plen = 0, clen = 0;
	const char *method = header(&st->req, ":method", &mlen);
	const char *path = header(&st->req, ":path", &plen);
	const char *ctype = header(&st->req, "content-type", &clen);
	int root;

	st->start_us = tel_now_us();
	st->grpc = ctype && clen >= 16 && !memcmp(ctype, "application/grpc", 16);
	root = route_settings(d, &h->c->svc_addr, method, mlen, path, plen, &st->timeout_ms,
			      &st->retry);
	if (root < 0) {
		answer(h, st, 503, 14, "the service is no longer configured");
		return;
	}
	/* gRPC calls are POSTs: a retry policy naming gRPC statuses is the
	 * operator saying they may go again. */
	st->retryable = (method && route_idempotent(method, mlen)) || st->retry.non_idempotent ||
			(st->grpc && (st->retry.on & ~(RETRY_ON_CONNECT_FAILURE | RETRY_ON_RESET |
						       RETRY_ON_5XX | RETRY_ON_GATEWAY_ERROR)));
	if (st->timeout_ms > 0) {
		st->deadline_ms = now_ms() + st->timeout_ms;
		if (!d->rt_next_ms || st->deadline_ms < d->rt_next_ms) {
			d->rt_next_ms = st->deadline_ms;
		}
	}
	st->svc = balancer_route(&d->bal, root);
	balancer_budget_request(&d->bal, st->svc, st->start_us);
	attempt(h, st);
}

static int app_on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct route_h2 *h = ud;
	struct rh2_stream *st;

	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) {
		return 0;
	}
	if (!(st = calloc(1, sizeof(*st)))) {
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	st->app_id = f->hd.stream_id;
	st->up = -1;
	st->out_slot = -1;
	st->next = h->streams;
	if (h->streams) {
		h->streams->prev = st;
	}
	h->streams = st;
	nghttp2_session_set_stream_user_data(s, st->app_id, st);
	return 0;
}

static int app_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
			 const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	struct rh2_stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);

	(void)flags;
	(void)ud;
	if (!st || f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) {
		return 0; /* request trailers are not passed on */
	}
	if (headers_add(&st->req, name, nl, value, vl) < 0) {
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* the stream is reset */
	}
	return 0;
}

/* More request body, or its end: the upstream's DATA may go on. */
static void request_more(struct route_h2 *h, struct rh2_stream *st)
{
	if (st->up_attached && st->up >= 0 && h->up[st->up].s) {
		nghttp2_session_resume_data(h->up[st->up].s, st->up_id);
	}
}

static int app_on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct route_h2 *h = ud;
	struct rh2_stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);

	if (!st) {
		return 0;
	}
	if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
		st->req_end = 1;
	}
	if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
		request_ready(h, st);
		return 0;
	}
	request_more(h, st);
	return 0;
}

static int app_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
		       size_t len, void *ud)
{
	struct route_h2 *h = ud;
	struct rh2_stream *st = nghttp2_session_get_stream_user_data(s, id);

	(void)flags;
	if (!st || st->resp_end || (!st->up_attached && st->resp_started)) {
		nghttp2_session_consume(s, id, len); /* answered already: dropped */
		return 0;
	}
	if (buf_put(&st->in, data, len) < 0) {
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	if (st->retryable && !st->from_kept) {
		if (st->kept.len + len > RT_RETRY_BODY_MAX) {
			st->retryable = 0; /* too long to keep: it goes once */
			buf_free(&st->kept);
		} else if (buf_put(&st->kept, data, len) < 0) {
			st->retryable = 0;
		}
	}
	request_more(h, st);
	return 0;
}

static int app_on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
	struct route_h2 *h = ud;
	struct rh2_stream *st = nghttp2_session_get_stream_user_data(s, id);

	(void)code;
	if (!st) {
		return 0;
	}
	st->app_closed = 1;
	stream_detach(h, st);
	stream_maybe_free(h, st);
	return 0;
}

/* n bytes of st->out are taken: acknowledged to the upstream they came
 * from (its connection's window, and the stream's while it is open). */
static void out_acknowledge(struct route_h2 *h, const struct rh2_stream *st, size_t n)
{
	const struct rh2_up *up = st->out_slot >= 0 ? &h->up[st->out_slot] : NULL;

	if (n && up && up->s && !up->dead) {
		nghttp2_session_consume(up->s, st->out_id, n);
	}
}

/* Response DATA for the app, from st->out. */
static ssize_t out_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
			nghttp2_data_source *src, void *ud)
{
	struct route_h2 *h = ud;
	struct rh2_stream *st = src->ptr;
	size_t n = buf_take(&st->out, buf, len);

	(void)s;
	out_acknowledge(h, st, n);
	if (st->out.off < st->out.len) {
		return (ssize_t)n;
	}
	if (!st->resp_end) {
		return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
	}
	*flags |= NGHTTP2_DATA_FLAG_EOF;
	if (st->resp_trailers && st->trl.n) {
		nghttp2_nv *nv = headers_nv(&st->trl);

		if (nv && nghttp2_submit_trailer(h->app, id, nv, st->trl.n) == 0) {
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
		}
		free(nv);
	}
	return (ssize_t)n;
}

/* ---- the response: upstream sessions ------------------------------------------------- */

/* Request DATA for the upstream: the kept copy on a retry, else st->in. */
static ssize_t in_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
		       nghttp2_data_source *src, void *ud)
{
	struct rh2_up *up = ud;
	struct rh2_stream *st = src->ptr;
	size_t n;

	(void)s;
	(void)id;
	if (st->from_kept) {
		n = buf_take(&st->kept, buf, len);
		if (st->kept.off >= st->kept.len) {
			*flags |= NGHTTP2_DATA_FLAG_EOF;
		}
		return (ssize_t)n;
	}
	n = buf_take(&st->in, buf, len);
	if (n) {
		/* The app's stream may be closed: its connection window counts. */
		nghttp2_session_consume(up->h->app, st->app_id, n);
	}
	if (st->in.off < st->in.len) {
		return (ssize_t)n;
	}
	if (st->req_end) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		return (ssize_t)n;
	}
	return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
}

static int up_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
			const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	struct rh2_stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);

	(void)flags;
	(void)ud;
	if (!st || f->hd.type != NGHTTP2_HEADERS) {
		return 0;
	}
	if (headers_add(f->headers.cat == NGHTTP2_HCAT_HEADERS && st->resp.n ? &st->trl : &st->resp,
			name, nl, value, vl) < 0) {
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	return 0;
}

/* The upstream's response head: retried, or sent on to the app. */
static void response_head(struct route_h2 *h, struct rh2_stream *st, int end)
{
	int status = header_int(&st->resp, ":status", 0);
	int grpc = end ? header_int(&st->resp, "grpc-status", -1) : -1;
	int64_t now = tel_now_us();
	nghttp2_data_provider dp = {{.ptr = st}, out_read};
	nghttp2_nv *nv;

	if (status >= 100 && status < 200) {
		headers_clear(&st->resp); /* 100 Continue: the final head follows */
		return;
	}
	if (route_status_retried(&st->retry, status) ||
	    (grpc > 0 && route_grpc_retried(&st->retry, grpc))) {
		attempt_result(st, status >= 500 ? BAL_RES_5XX : BAL_RES_SUCCESS, now);
		if (try_again(h, st, 0)) {
			return;
		}
	} else {
		attempt_result(st, status >= 500 ? BAL_RES_5XX : BAL_RES_SUCCESS, now);
	}
	if (st->app_closed) {
		return;
	}
	st->deadline_ms = 0;
	st->resp_started = 1;
	st->resp_end = (uint8_t)end;
	nv = headers_nv(&st->resp);
	if (!nv ||
	    nghttp2_submit_response(h->app, st->app_id, nv, st->resp.n, end ? NULL : &dp) != 0) {
		nghttp2_submit_rst_stream(h->app, NGHTTP2_FLAG_NONE, st->app_id,
					  NGHTTP2_INTERNAL_ERROR);
	}
	free(nv);
}

static int up_on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct rh2_up *up = ud;
	struct rh2_stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	int end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;

	if (!st) {
		return 0;
	}
	if (f->hd.type == NGHTTP2_HEADERS) {
		if (!st->resp_started && f->headers.cat == NGHTTP2_HCAT_RESPONSE) {
			response_head(up->h, st, end);
			return 0;
		}
		if (st->trl.n) {
			st->resp_trailers = 1;
		}
	}
	if (end && st->resp_started && !st->resp_end) {
		st->resp_end = 1;
		nghttp2_session_resume_data(up->h->app, st->app_id);
	}
	return 0;
}

static int up_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
		      size_t len, void *ud)
{
	struct rh2_up *up = ud;
	struct rh2_stream *st = nghttp2_session_get_stream_user_data(s, id);

	(void)flags;
	if (!st || !st->resp_started || st->app_closed) {
		nghttp2_session_consume(s, id, len);
		return 0;
	}
	if (buf_put(&st->out, data, len) < 0) {
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	st->out_slot = (int)(up - up->h->up);
	st->out_id = id;
	nghttp2_session_resume_data(up->h->app, st->app_id);
	return 0;
}

static int up_on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
	struct rh2_up *up = ud;
	struct route_h2 *h = up->h;
	struct rh2_stream *st = nghttp2_session_get_stream_user_data(s, id);

	if (!st) {
		return 0;
	}
	st->up_attached = 0;
	st->up = -1;
	if (!st->resp_started) {
		/* REFUSED_STREAM (the endpoint's daemon drains): never processed. */
		attempt_failed(h, st, code == NGHTTP2_REFUSED_STREAM);
	} else {
		if (!st->resp_end && !st->app_closed) {
			nghttp2_submit_rst_stream(h->app, NGHTTP2_FLAG_NONE, st->app_id,
						  code ? code : NGHTTP2_INTERNAL_ERROR);
		}
		release_endpoint(st);
	}
	stream_maybe_free(h, st);
	return 0;
}

/* ---- sessions ---------------------------------------------------------------------- */

static int upstream_session_new(struct route_h2 *h, struct rh2_up *up)
{
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;
	nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
				       {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 65535}};
	int r;

	(void)h;
	if (!(up->rbuf = malloc(RH2_READ))) {
		return -1;
	}
	if (nghttp2_session_callbacks_new(&cb)) {
		return -1;
	}
	if (nghttp2_option_new(&opt)) {
		nghttp2_session_callbacks_del(cb);
		return -1;
	}
	nghttp2_session_callbacks_set_on_header_callback(cb, up_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, up_on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, up_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, up_on_stream_close);
	nghttp2_option_set_no_auto_window_update(opt, 1);
	r = nghttp2_session_client_new2(&up->s, cb, up, opt);
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	if (r) {
		up->s = NULL;
		return -1;
	}
	nghttp2_submit_settings(up->s, NGHTTP2_FLAG_NONE, iv, ARRAY_SIZE(iv));
	return 0;
}

static void upstream_session_free(struct rh2_up *up)
{
	nghttp2_session_del(up->s);
	free(up->rbuf);
	memset(up, 0, sizeof(*up));
}

int route_h2_start(struct proxy *d, struct conn *c)
{
	struct route_h2 *h = calloc(1, sizeof(*h));
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;
	nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1000},
				       {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 65535}};
	int r;

	if (!h || nghttp2_session_callbacks_new(&cb)) {
		free(h);
		return -ENOMEM;
	}
	if (nghttp2_option_new(&opt)) {
		nghttp2_session_callbacks_del(cb);
		free(h);
		return -ENOMEM;
	}
	h->d = d;
	h->c = c;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, app_on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, app_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, app_on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, app_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, app_on_stream_close);
	nghttp2_option_set_no_auto_window_update(opt, 1);
	r = nghttp2_session_server_new2(&h->app, cb, h, opt);
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	if (r) {
		free(h);
		return -ENOMEM;
	}
	nghttp2_submit_settings(h->app, NGHTTP2_FLAG_NONE, iv, ARRAY_SIZE(iv));
	c->rt->h2 = h;
	/* What detection read (the preface, maybe more), counted already. */
	h->busy = 1;
	if (nghttp2_session_mem_recv(h->app, (const uint8_t *)c->up.buf, c->up.len) < 0) {
		return -EPROTO;
	}
	h->busy = 0;
	c->up.off = c->up.len = 0;
	return 0;
}

/* ---- I/O ------------------------------------------------------------------------------- */

static struct rh2_up *slot_of(struct route_h2 *h, const struct conn *u)
{
	int i;

	for (i = 0; i < RH2_UPSTREAMS; i++) {
		if (h->up[i].u == u) {
			return &h->up[i];
		}
	}
	return NULL;
}

/* Upstream up is gone: its streams fail, its slot frees once nothing of
 * it is in flight.  closing: its conn is being closed already (its
 * conn_close() told us), else it is closed here. */
static void upstream_dead(struct route_h2 *h, struct rh2_up *up, int abort, int closing)
{
	struct rh2_stream *st, *next;
	int slot = (int)(up - h->up);
	int was_open = up->open;
	struct conn *u = up->u;

	if (up->dead) {
		return;
	}
	up->dead = 1;
	if (up->rpending || up->wpending) {
		up->borrowing = 1;
		u->borrowing = 1; /* conn_free() -> route_returned() */
		h->c->rt->stale++;
	} else {
		u->owner_gen = 0;
	}
	for (st = h->streams; st; st = next) {
		next = st->next;
		if (st->up == slot && st->up_attached) {
			st->up_attached = 0;
			st->up = -1;
			if (!st->resp_started) {
				attempt_failed(h, st, !was_open);
			} else {
				if (!st->resp_end && !st->app_closed) {
					nghttp2_submit_rst_stream(h->app, NGHTTP2_FLAG_NONE,
								  st->app_id,
								  NGHTTP2_INTERNAL_ERROR);
				}
				release_endpoint(st);
			}
			stream_maybe_free(h, st);
		}
	}
	if (!closing) {
		conn_close(h->d, u, abort);
	}
	if (!up->borrowing) {
		upstream_session_free(up);
	}
}

static int app_write(struct route_h2 *h)
{
	struct proxy *d = h->d;
	struct conn *c = h->c;
	struct route *rt = c->rt;
	int r;

	if (rt->app_wpending) {
		return 0;
	}
	if (h->woff >= h->wlen) {
		ssize_t n = nghttp2_session_mem_send(h->app, &h->wdata);

		if (n < 0) {
			log_info("conn %u: HTTP/2 to the app: %s", c->slot,
				 nghttp2_strerror((int)n));
			conn_close(d, c, 1);
			return 0;
		}
		h->wlen = (size_t)n;
		h->woff = 0;
		if (!n) {
			return 0;
		}
		if (stage_seen(d, c, &c->down, (const char *)h->wdata, (size_t)n) < 0) {
			return 0;
		}
	}
	r = transport_write(c->app, (const char *)h->wdata + h->woff, h->wlen - h->woff);
	if (r == -EINPROGRESS) {
		rt->app_wpending = 1;
		return 0;
	}
	if (r < 0) {
		conn_close(d, c, 1);
		return 0;
	}
	h->woff += (size_t)r;
	return 1;
}

static int up_io(struct route_h2 *h, struct rh2_up *up)
{
	int r, moved = 0;

	if (!up->u || up->dead || !up->open) {
		return 0;
	}
	if (!up->wpending) {
		if (up->woff >= up->wlen) {
			ssize_t n = nghttp2_session_mem_send(up->s, &up->wdata);

			if (n < 0) {
				upstream_dead(h, up, 1, 0);
				return 1;
			}
			up->wlen = (size_t)n;
			up->woff = 0;
		}
		if (up->woff < up->wlen) {
			r = transport_write(up->u->net, (const char *)up->wdata + up->woff,
					    up->wlen - up->woff);
			if (r == -EINPROGRESS) {
				up->wpending = 1;
			} else if (r < 0) {
				upstream_dead(h, up, 1, 0);
				return 1;
			} else {
				up->woff += (size_t)r;
				moved = 1;
			}
		}
	}
	if (!up->rpending) {
		r = transport_read(up->u->net, up->rbuf, RH2_READ);
		if (r == -EINPROGRESS) {
			up->rpending = 1;
		} else if (r <= 0 ||
			   nghttp2_session_mem_recv(up->s, (uint8_t *)up->rbuf, (size_t)r) < 0) {
			upstream_dead(h, up, r < 0, 0);
			return 1;
		} else {
			moved = 1;
		}
	}
	return moved;
}

void route_h2_pump(struct proxy *d, struct conn *c)
{
	struct route *rt = c->rt;
	struct route_h2 *h = rt->h2;
	int moved, i;

	if (h->busy) {
		h->again = 1;
		return;
	}
	h->busy = 1;
	do {
		moved = 0;
		h->again = 0;
		if (c->state != CS_PROXY || c->rt != rt) {
			return; /* c closed: h goes with it */
		}
		if (!rt->app_rpending && !h->app_eof) {
			int r = transport_read(c->app, c->up.buf, c->bufsize);

			if (r == -EINPROGRESS) {
				rt->app_rpending = 1;
			} else {
				h->busy = 0;
				route_h2_app_event(d, c, TEV_READ, r);
				return;
			}
		}
		for (i = 0; i < RH2_UPSTREAMS; i++) {
			moved |= up_io(h, &h->up[i]);
			if (c->state != CS_PROXY) {
				return;
			}
		}
		moved |= app_write(h);
		if (c->state != CS_PROXY) {
			return;
		}
	} while (moved || h->again);
	h->busy = 0;
	if (!rt->app_wpending && h->woff >= h->wlen &&
	    ((h->app_eof && !h->streams) ||
	     (!nghttp2_session_want_read(h->app) && !nghttp2_session_want_write(h->app)))) {
		/* The app is done (or its session ended): what was due is out. */
		transport_shutdown(c->app);
		conn_close(d, c, 0);
	}
}

void route_h2_app_event(struct proxy *d, struct conn *c, enum transport_event ev, int res)
{
	struct route *rt = c->rt;
	struct route_h2 *h = rt->h2;

	switch (ev) {
	case TEV_READ:
		rt->app_rpending = 0;
		if (res < 0 && res != -ECANCELED) {
			c->close_errno = -res;
			conn_close(d, c, 1);
			return;
		}
		if (res == 0) {
			h->app_eof = 1;
			break;
		}
		if (res > 0) {
			ssize_t n;

			c->up.len = (uint32_t)res;
			if (stage_seen(d, c, &c->up, c->up.buf, (size_t)res) < 0) {
				return;
			}
			h->busy = 1;
			n = nghttp2_session_mem_recv(h->app, (const uint8_t *)c->up.buf,
						     (size_t)res);
			h->busy = 0;
			c->up.len = 0;
			if (n < 0) {
				log_info("conn %u: HTTP/2 from the app: %s", c->slot,
					 nghttp2_strerror((int)n));
				conn_close(d, c, 1);
				return;
			}
		}
		break;
	case TEV_WRITTEN:
		rt->app_wpending = 0;
		if (res < 0) {
			c->close_errno = -res;
			conn_close(d, c, 1);
			return;
		}
		h->woff += (size_t)res;
		break;
	default:
		return;
	}
	if (c->state == CS_PROXY) {
		route_h2_pump(d, c);
	}
}

void route_h2_upstream_event(struct proxy *d, struct conn *c, struct conn *u,
			     enum transport_event ev, int res)
{
	struct route_h2 *h = h2_of(c);
	struct rh2_up *up = slot_of(h, u);

	if (!up || up->dead) {
		return;
	}
	switch (ev) {
	case TEV_READ: {
		ssize_t n = 0;

		up->rpending = 0;
		if (res > 0) {
			h->busy = 1;
			n = nghttp2_session_mem_recv(up->s, (uint8_t *)up->rbuf, (size_t)res);
			h->busy = 0;
		}
		if (res <= 0 || n < 0) {
			upstream_dead(h, up, res < 0, 0);
		}
		break;
	}
	case TEV_WRITTEN:
		up->wpending = 0;
		if (res < 0) {
			upstream_dead(h, up, 1, 0);
		} else {
			up->woff += (size_t)res;
		}
		break;
	default:
		return;
	}
	if (c->state == CS_PROXY) {
		route_h2_pump(d, c);
	}
}

void route_h2_upstream_ready(struct proxy *d, struct conn *c, struct conn *u)
{
	struct route_h2 *h = h2_of(c);
	struct rh2_up *up = slot_of(h, u);

	if (!up) {
		u->owner_gen = 0;
		conn_close(d, u, 0);
		return;
	}
	up->open = 1;
	route_h2_pump(d, c);
}

void route_h2_upstream_gone(struct proxy *d, struct conn *c, struct conn *u)
{
	struct route_h2 *h = h2_of(c);
	struct rh2_up *up = slot_of(h, u);

	if (!up || up->dead) {
		return;
	}
	upstream_dead(h, up, 1, 1);
	if (c->state == CS_PROXY) {
		route_h2_pump(d, c);
	}
}

void route_h2_close(struct proxy *d, struct conn *c)
{
	struct route_h2 *h = h2_of(c);
	int i;

	(void)d;
	if (!h) {
		return;
	}
	for (i = 0; i < RH2_UPSTREAMS; i++) {
		struct rh2_up *up = &h->up[i];

		if (up->u && !up->dead) {
			struct rh2_stream *st;

			for (st = h->streams; st; st = st->next) {
				if (st->up == i) {
					st->up_attached = 0;
					st->up = -1;
				}
			}
			upstream_dead(h, up, 1, 0);
		}
	}
}

void route_h2_returned(struct conn *c, struct conn *u)
{
	struct route_h2 *h = c->rt ? c->rt->h2 : NULL;
	struct rh2_up *up = h ? slot_of(h, u) : NULL;

	if (up && up->borrowing) {
		upstream_session_free(up);
	}
}

void route_h2_free(struct route_h2 *h)
{
	int i;

	if (!h) {
		return;
	}
	for (i = 0; i < RH2_UPSTREAMS; i++) {
		if (h->up[i].s) {
			upstream_session_free(&h->up[i]);
		}
	}
	while (h->streams) {
		stream_free(h, h->streams); /* with its endpoint reference */
	}
	nghttp2_session_del(h->app);
	free(h);
}

int64_t route_h2_tick(struct proxy *d, struct conn *c, int64_t now)
{
	struct route_h2 *h = h2_of(c);
	struct rh2_stream *st;
	int64_t next = 0;
	int fired = 0;

	for (st = h->streams; st; st = st->next) {
		if (!st->deadline_ms || st->resp_started || st->app_closed) {
			continue;
		}
		if (now >= st->deadline_ms) {
			st->deadline_ms = 0;
			d->bal.svc[st->svc].timeouts_total++;
			attempt_result(st, BAL_RES_TIMEOUT, tel_now_us());
			log_info("conn %u: HTTP/2 stream %d timed out after %d ms", c->slot,
				 st->app_id, st->timeout_ms);
			answer(h, st, 504, 4, "request timeout");
			fired = 1;
		} else if (!next || st->deadline_ms < next) {
			next = st->deadline_ms;
		}
	}
	if (fired) {
		route_h2_pump(d, c);
	}
	return next;
}
