/*
 * Requests routed one by one over a service's endpoints; see route.h.
 *
 * The app's connection c keeps its two buffers: c->up.buf takes what the
 * app sends, c->down.buf what the current upstream answers.  One request
 * is in flight at a time (HTTP/1 answers in order): its head, and its body
 * while it may be retried, are copied to rt->rq, and a streaming body goes
 * from c->up.buf.  An upstream reads into and writes from c's memory; one
 * that closes with an operation out still holds it (rt->stale), so c is
 * freed, and its buffers reused, only once those operations are back.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"
#include "proxy/conn_internal.h"
#include "proxy/route.h"
#include "proxy/route_h2.h"
#include "proxy/stage.h"
#include "util/log.h"

enum { FROM_RESP = 0, FROM_HEAD, FROM_ANSWER }; /* what a write to the app carries */
enum { UP_FROM_RQ = 0, UP_FROM_BODY, UP_FROM_TUNNEL }; /* what a write upstream carries */

static void route_app_written(struct proxy *d, struct conn *c, int from, size_t n);
static void route_upstream_read(struct proxy *d, struct conn *c, int res);

static void arm(struct proxy *d, int64_t at_ms)
{
	if (at_ms && (!d->rt_next_ms || at_ms < d->rt_next_ms)) {
		d->rt_next_ms = at_ms;
	}
}

/* The routed connection using u, or NULL (pooled, or its user closed). */
static struct conn *owner_of(struct proxy *d, const struct conn *u)
{
	struct conn *c;

	if (!u->owner_gen || u->owner_slot >= d->nslots) {
		return NULL;
	}
	c = d->conns[u->owner_slot];
	return c && c->gen == u->owner_gen ? c : NULL;
}

static int upstream_open(const struct conn *u)
{
	return u && u->state == CS_PROXY;
}

/* ---- the pool of idle upstreams ------------------------------------------------ */

static void pool_remove(struct conn *u)
{
	struct bal_endpoint *e = u->bal;

	if (!u->pooled_ms) {
		return;
	}
	if (u->pool_prev) {
		u->pool_prev->pool_next = u->pool_next;
	} else {
		e->pool = u->pool_next;
	}
	if (u->pool_next) {
		u->pool_next->pool_prev = u->pool_prev;
	}
	u->pool_next = u->pool_prev = NULL;
	u->pooled_ms = 0;
	e->pooled--;
}

/* u's exchange ended cleanly: idle in its endpoint's pool, watched for
 * the peer closing it, or closed when the pool has no room for it. */
static void pool_put(struct proxy *d, struct conn *u)
{
	struct bal_endpoint *e = u->bal;

	u->owner_gen = 0;
	if (e->detached || e->pooled >= RT_POOL_MAX || d->draining ||
	    u->net->ops->wait_readable(u->net) < 0) {
		conn_close(d, u, 0);
		return;
	}
	u->pool_prev = NULL;
	u->pool_next = e->pool;
	if (e->pool) {
		e->pool->pool_prev = u;
	}
	e->pool = u;
	e->pooled++;
	u->pooled_ms = now_ms();
	arm(d, u->pooled_ms + RT_POOL_IDLE_MS);
}

static struct conn *pool_take(struct bal_endpoint *e, struct conn *c)
{
	struct conn *u = e->pool;

	if (!u) {
		return NULL;
	}
	pool_remove(u);
	/* Its TEV_READABLE (-ECANCELED) is ignored once it has an owner. */
	u->net->ops->cancel_wait(u->net);
	u->owner_slot = c->slot;
	u->owner_gen = c->gen;
	return u;
}

/* ---- the exchange --------------------------------------------------------------- */

/* Lets go of the current upstream: pooled when keep, else closed (abort:
 * reset).  One with an operation out keeps c's memory until it is back. */
static void drop_upstream(struct proxy *d, struct conn *c, int keep, int abort)
{
	struct route *rt = c->rt;
	struct conn *u = rt->up;

	if (!u) {
		return;
	}
	rt->up = NULL;
	if (keep && upstream_open(u) && !rt->up_rpending && !rt->up_wpending) {
		pool_put(d, u);
		return;
	}
	if (rt->up_rpending || rt->up_wpending) {
		u->borrowing = 1; /* conn_free() gives c its memory back */
		rt->stale++;
	} else {
		u->owner_gen = 0;
	}
	rt->up_rpending = rt->up_wpending = 0;
	conn_close(d, u, abort);
}

static void release_endpoint(struct route *rt)
{
	if (rt->ep) {
		balancer_release(rt->ep);
		rt->ep = NULL;
	}
}

static void request_reset(struct route *rt)
{
	rt->rq_len = rt->rq_sent = 0;
	rt->body_pending = 0;
	rt->retryable = rt->req_done = rt->resp_fwd = rt->resp_final = 0;
	rt->attempts = rt->reused = rt->up_eof = 0;
	rt->deadline_ms = 0;
	rt->failed = NULL;
}

/* The exchange is over: the app's connection goes on (or ends, when the
 * request or response said so). */
static void exchange_done(struct proxy *d, struct conn *c, int keep_upstream)
{
	struct route *rt = c->rt;

	release_endpoint(rt);
	drop_upstream(d, c, keep_upstream, !keep_upstream && !rt->resp_final);
	if (!rt->req_done || rt->close_after) {
		rt->phase = RT_ENDING;
	} else {
		rt->phase = RT_IDLE;
	}
	request_reset(rt);
	http1_fini(&rt->resp);
	http1_init(&rt->resp, HTTP1_RESPONSE);
}

/*
 * An answer of ours instead of the upstream's: 503 (no endpoint), 502 (the
 * upstream failed), 504 (timeout), 400.  After response bytes went to the
 * app there is no answer to give: the connection is reset.
 */
static void answer(struct proxy *d, struct conn *c, int status, const char *reason,
		   const char *error)
{
	struct route *rt = c->rt;
	int head = !strcmp(rt->method, "HEAD");
	int n;

	if (rt->resp_fwd) {
		conn_close(d, c, 1);
		return;
	}
	n = snprintf(rt->answer, sizeof(rt->answer),
		     "HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %zu\r\n"
		     "l5d-proxy-error: %s\r\n%s\r\n%s%s",
		     status, reason, strlen(error) + 1, error,
		     rt->req_done && !rt->close_after ? "" : "connection: close\r\n",
		     head ? "" : error, head ? "" : "\n");
	rt->answer_len = (uint32_t)(n < (int)sizeof(rt->answer) ? n : (int)sizeof(rt->answer) - 1);
	rt->answer_off = 0;
	if (stage_seen(d, c, &c->down, rt->answer, rt->answer_len) < 0) {
		return; /* closed */
	}
	rt->resp_fwd = 1;
	exchange_done(d, c, 0);
}

static struct bal_service *service(struct proxy *d, int s)
{
	return &d->bal.svc[s];
}

/* Starts the current request's next attempt on an endpoint of its service. */
static void start_attempt(struct proxy *d, struct conn *c)
{
	struct route *rt = c->rt;
	int64_t now = tel_now_us();
	struct bal_endpoint *e = balancer_pick(&d->bal, rt->svc, rt->failed, now);
	struct conn *u;

	if (!e) {
		outbound_log_unavailable(d, c, rt->svc, 1);
		answer(d, c, 503, "Service Unavailable", "no endpoint of the service is available");
		return;
	}
	rt->ep = e;
	e->requests_total++;
	rt->attempt_us = now;
	rt->rq_sent = 0;
	rt->up_eof = 0;
	http1_fini(&rt->resp);
	http1_init(&rt->resp, HTTP1_RESPONSE);
	http1_note_request_method(&rt->resp, rt->method);
	u = pool_take(e, c);
	rt->reused = u != NULL;
	if (u) {
		rt->up = u;
		return;
	}
	u = outbound_upstream_new(d, c, rt->svc, e);
	if (!u) {
		answer(d, c, 502, "Bad Gateway", "no connection to the endpoint could be made");
		return;
	}
	rt->up = u;
	outbound_upstream_dial(d, u); /* a failure at once comes back through route_upstream_gone */
}

/*
 * The attempt failed before anything reached the app (why: a status, a
 * reset, a connect failure).  1 when it goes again on another endpoint;
 * connect failures are not charged to the budget (nothing was sent).
 */
static int try_again(struct proxy *d, struct conn *c, int connect_failure)
{
	struct route *rt = c->rt;
	const struct config_retry *r = &rt->retry;

	if (rt->resp_fwd || rt->attempts >= r->max || d->draining) {
		return 0;
	}
	if (connect_failure) {
		if (!(r->on & RETRY_ON_CONNECT_FAILURE)) {
			return 0;
		}
		service(d, rt->svc)->retries_total++;
	} else {
		if (!rt->retryable || !rt->req_done ||
		    !balancer_budget_retry(&d->bal, rt->svc, r->budget_percent, r->min_per_s,
					   r->ttl_s, tel_now_us())) {
			return 0;
		}
	}
	rt->failed = rt->ep;
	release_endpoint(rt);
	drop_upstream(d, c, 0, 1);
	rt->attempts++;
	c->down.off = c->down.len = 0;
	start_attempt(d, c);
	return 1;
}

/* The endpoint's verdict on this attempt, for failure accrual and the
 * EWMA.  The first answer on a new upstream connection carries the far
 * side's set-up too (its daemon's dial to the app): not a sample. */
static void attempt_result(struct route *rt, enum bal_result res, int64_t now_us)
{
	route_result(rt->ep, res,
		     rt->reused || res != BAL_RES_SUCCESS ? now_us - rt->attempt_us : -1, now_us);
}

/* The upstream ended (or failed) with the response incomplete. */
static void upstream_failed(struct proxy *d, struct conn *c, int connect_failure)
{
	struct route *rt = c->rt;

	if (!rt->resp_final) {
		if (!connect_failure) {
			attempt_result(rt, BAL_RES_ERROR, tel_now_us());
		}
		/* A pooled connection the server had just closed: the request
		 * never reached it, so it goes again when it may. */
		if (try_again(d, c, connect_failure)) {
			return;
		}
		if (!connect_failure && (rt->retry.on & RETRY_ON_RESET || rt->reused) &&
		    try_again(d, c, 0)) {
			return;
		}
		answer(d, c, connect_failure ? 503 : 502,
		       connect_failure ? "Service Unavailable" : "Bad Gateway",
		       connect_failure ? "connection to the endpoint failed"
				       : "the endpoint closed the connection without a response");
		return;
	}
	log_info("conn %u: upstream response cut short; resetting the app's connection", c->slot);
	conn_close(d, c, 1);
}

/* A request head is in: its settings, its body's fate, its endpoint. */
static void request_head(struct proxy *d, struct conn *c)
{
	struct route *rt = c->rt;
	const struct http1_head *h = &rt->req.head;
	int64_t body = h->content_length > 0 ? h->content_length : 0;
	size_t need;
	int root;

	request_reset(rt);
	rt->phase = RT_EXCHANGE;
	snprintf(rt->method, sizeof(rt->method), "%s", h->method);
	rt->req_done = http1_idle(&rt->req);
	rt->close_after = h->conn_close;
	rt->start_us = tel_now_us();
	root = route_settings(d, &c->svc_addr, h->method, strlen(h->method), h->path,
			      strlen(h->path), &rt->timeout_ms, &rt->retry);
	if (root < 0) {
		answer(d, c, 503, "Service Unavailable", "the service is no longer configured");
		return;
	}
	rt->retryable =
		!h->upgrade && !h->expect_continue && !h->chunked && body <= RT_RETRY_BODY_MAX &&
		(route_idempotent(h->method, strlen(h->method)) || rt->retry.non_idempotent);
	need = rt->req.raw_len + (rt->retryable ? (size_t)body : 0);
	if (need > rt->rq_cap) {
		char *p = realloc(rt->rq, need);
		if (!p) {
			answer(d, c, 503, "Service Unavailable", "out of memory");
			return;
		}
		rt->rq = p;
		rt->rq_cap = need;
	}
	memcpy(rt->rq, rt->req.raw, rt->req.raw_len);
	rt->rq_len = rt->req.raw_len;
	if (rt->timeout_ms > 0) {
		rt->deadline_ms = now_ms() + rt->timeout_ms;
		arm(d, rt->deadline_ms);
	}
	rt->svc = balancer_route(&d->bal, root); /* its split, drawn per request */
	balancer_budget_request(&d->bal, rt->svc, rt->start_us);
	start_attempt(d, c);
}

/* ---- detection and the hand-over to a per-connection dial ---------------------- */

/* Not HTTP/1 (an HTTP/2 preface, a binary protocol, a server that speaks
 * first): the connection goes to one endpoint, as a "tcp" service's does,
 * with what the app sent so far in c->up.buf. */
static void hand_over(struct proxy *d, struct conn *c)
{
	struct route *rt = c->rt;

	c->up.off = 0;
	c->up.eof = rt->app_eof;
	log_debug("conn %u: not HTTP/1 (%u bytes); to one endpoint of its service", c->slot,
		  c->up.len);
	route_close(d, c);
	route_free(c);
	outbound_dial_late(d, c);
}

/* RT_DETECT: what the app sent so far, in c->up.buf[0..len), read again
 * from the start each time (a fresh parser), so nothing is held
 * elsewhere when it turns out not to be HTTP/1. */
static int detect(struct proxy *d, struct conn *c)
{
	struct route *rt = c->rt;
	struct http1_stream s;
	size_t consumed = 0;
	enum http1_event ev;

	static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	size_t pl = sizeof(preface) - 1;

	if (!memcmp(c->up.buf, preface, c->up.len < pl ? c->up.len : pl)) {
		if (c->up.len < pl) {
			return 0; /* the rest of the preface */
		}
		rt->phase = RT_IDLE;
		rt->detect_ms = 0;
		if (route_h2_start(d, c) < 0) {
			conn_close(d, c, 1);
			return 0;
		}
		return 1;
	}
	http1_init(&s, HTTP1_REQUEST);
	ev = http1_feed(&s, c->up.buf, c->up.len, &consumed);
	http1_fini(&s);
	if (ev == HTTP1_MORE && c->up.len < c->bufsize && !rt->app_eof) {
		return 0; /* read more */
	}
	if (ev == HTTP1_HEAD || ev == HTTP1_BODY || ev == HTTP1_ERROR) {
		/* HTTP/1 (an error is answered 400 by the request parser). */
		rt->phase = RT_IDLE;
		rt->detect_ms = 0;
		c->up.off = 0;
		return 1;
	}
	if (rt->proto_http) {
		log_info("conn %u: not HTTP/1 to a service with protocol \"http\"; closing",
			 c->slot);
		conn_close(d, c, 1);
		return 0;
	}
	hand_over(d, c);
	return 0;
}

/* ---- app -> upstream ------------------------------------------------------------- */

static int app_read(struct proxy *d, struct conn *c)
{
	struct route *rt = c->rt;
	struct pipe *p = &c->up;
	size_t at = rt->phase == RT_DETECT ? p->len : 0;
	int r;

	if (rt->app_rpending || rt->app_eof) {
		return 0;
	}
	if (!at) {
		p->off = p->len = 0;
	}
	r = transport_read(c->app, p->buf + at, c->bufsize - at);
	if (r == -EINPROGRESS) {
		rt->app_rpending = 1;
		return 0;
	}
	if (r < 0) {
		conn_close(d, c, 1);
		return 0;
	}
	if (r == 0) {
		rt->app_eof = 1;
		return 1;
	}
	p->len = (uint32_t)(at + (size_t)r);
	return stage_seen(d, c, p, p->buf + at, (size_t)r) == 0;
}

static int up_write(struct proxy *d, struct conn *c, const char *buf, size_t n, int from)
{
	struct route *rt = c->rt;
	int r = transport_write(rt->up->net, buf, n);

	if (r == -EINPROGRESS) {
		rt->up_wpending = 1;
		rt->up_wfrom = (uint8_t)from;
		return 0;
	}
	if (r < 0) {
		upstream_failed(d, c, 0);
		return 0;
	}
	if (from == UP_FROM_RQ) {
		rt->rq_sent += (size_t)r;
	} else {
		c->up.off += (uint32_t)r;
		if (from == UP_FROM_BODY) {
			rt->body_pending -= (size_t)r;
		}
	}
	return 1;
}

static void request_bytes(struct proxy *d, struct conn *c)
{
	struct route *rt = c->rt;
	struct pipe *p = &c->up;
	size_t consumed = 0;
	enum http1_event ev = http1_feed(&rt->req, p->buf + p->off, p->len - p->off, &consumed);

	switch (ev) {
	case HTTP1_MORE:
		p->off += (uint32_t)consumed;
		return;
	case HTTP1_HEAD:
		p->off += (uint32_t)consumed;
		request_head(d, c);
		return;
	case HTTP1_BODY:
		if (rt->phase != RT_EXCHANGE) {
			p->off += (uint32_t)consumed; /* empty lines before a request */
			return;
		}
		if (rt->retryable) {
			if (rt->rq_len + consumed > rt->rq_cap) {
				conn_close(d, c, 1); /* more body than it announced */
				return;
			}
			memcpy(rt->rq + rt->rq_len, p->buf + p->off, consumed);
			rt->rq_len += consumed;
			p->off += (uint32_t)consumed;
		} else {
			rt->body_pending = consumed; /* goes from p->buf once the head is out */
		}
		rt->req_done = http1_idle(&rt->req);
		return;
	case HTTP1_OPAQUE:
	case HTTP1_ERROR:
	default:
		log_info("conn %u: malformed HTTP request to a service: %s", c->slot,
			 rt->req.error ? rt->req.error : "not HTTP/1");
		p->off = p->len;
		rt->close_after = 1;
		if (rt->phase != RT_EXCHANGE) {
			rt->phase = RT_EXCHANGE;
			rt->req_done = 1;
		}
		answer(d, c, 400, "Bad Request", "malformed HTTP request");
		return;
	}
}

/* One step of the request direction; 1 when something moved. */
static int request_step(struct proxy *d, struct conn *c)
{
	struct route *rt = c->rt;
	struct pipe *p = &c->up;

	if (rt->phase == RT_ENDING) {
		return 0;
	}
	if (rt->phase == RT_DETECT) {
		if (p->len && detect(d, c)) {
			return 1;
		}
		if (c->rt != rt || c->state != CS_PROXY) {
			return 0;
		}
		return app_read(d, c);
	}
	if (rt->up_wpending || rt->stale) {
		return 0;
	}
	if (upstream_open(rt->up)) {
		if (rt->phase == RT_TUNNEL) {
			if (p->off < p->len) {
				return up_write(d, c, p->buf + p->off, p->len - p->off,
						UP_FROM_TUNNEL);
			}
		} else if (rt->rq_sent < rt->rq_len) {
			if (!rt->rq_sent) {
				/* The latency the balancer weighs is the request's,
				 * not the connection's set-up. */
				rt->attempt_us = tel_now_us();
			}
			return up_write(d, c, rt->rq + rt->rq_sent, rt->rq_len - rt->rq_sent,
					UP_FROM_RQ);
		} else if (rt->body_pending) {
			return up_write(d, c, p->buf + p->off, rt->body_pending, UP_FROM_BODY);
		}
	}
	if (rt->body_pending) {
		return 0; /* the upstream is not open yet */
	}
	if (p->off < p->len && rt->phase != RT_TUNNEL &&
	    (rt->phase == RT_IDLE ? !rt->answer_len : !rt->req_done)) {
		request_bytes(d, c);
		return 1;
	}
	if (p->off < p->len) {
		return 0; /* the next request waits for this exchange */
	}
	if (rt->app_eof) {
		if (rt->phase == RT_IDLE && !rt->answer_len && !rt->app_wpending) {
			conn_close(d, c, 0); /* the app is done between requests */
		} else if (rt->phase == RT_TUNNEL && upstream_open(rt->up) && !rt->tunnel_shut) {
			rt->tunnel_shut = 1;
			transport_shutdown(rt->up->net);
		} else if (rt->phase == RT_EXCHANGE && !rt->req_done) {
			conn_close(d, c, 1); /* the app went away mid-request */
		}
		return 0;
	}
	return app_read(d, c);
}

/* ---- upstream -> app ------------------------------------------------------------- */

static int app_write(struct proxy *d, struct conn *c, const char *buf, size_t n, int from)
{
	struct route *rt = c->rt;
	int r = transport_write(c->app, buf, n);

	if (r == -EINPROGRESS) {
		rt->app_wpending = 1;
		rt->app_wfrom = (uint8_t)from;
		return 0;
	}
	if (r < 0) {
		conn_close(d, c, 1);
		return 0;
	}
	route_app_written(d, c, from, (size_t)r);
	return 1;
}

/* The response is complete: the exchange ends once its last bytes are out. */
static int response_complete(const struct route *rt)
{
	return rt->resp_final && http1_idle(&rt->resp);
}

static void response_head(struct proxy *d, struct conn *c)
{
	struct route *rt = c->rt;
	int st = rt->resp.head.status;
	int64_t now = tel_now_us();

	if (st < 200 && st != 101) {
		app_write(d, c, rt->resp.raw, rt->resp.raw_len, FROM_HEAD); /* 100 Continue */
		rt->resp_fwd = 1;
		return;
	}
	if (!rt->resp_fwd && route_status_retried(&rt->retry, st)) {
		attempt_result(rt, BAL_RES_5XX, now);
		if (try_again(d, c, 0)) {
			return;
		}
	} else {
		attempt_result(rt, st >= 500 ? BAL_RES_5XX : BAL_RES_SUCCESS, now);
	}
	rt->resp_final = 1;
	rt->deadline_ms = 0;
	if (rt->resp.head.upgrade) {
		rt->phase = RT_TUNNEL;
		http1_set_opaque(&rt->req);
	}
	if (stage_seen(d, c, &c->down, rt->resp.raw, rt->resp.raw_len) < 0) {
		return;
	}
	rt->resp_fwd = 1;
	app_write(d, c, rt->resp.raw, rt->resp.raw_len, FROM_HEAD);
}

static void response_bytes(struct proxy *d, struct conn *c)
{
	struct route *rt = c->rt;
	struct pipe *q = &c->down;
	size_t consumed = 0;
	enum http1_event ev = http1_feed(&rt->resp, q->buf + q->off, q->len - q->off, &consumed);

	switch (ev) {
	case HTTP1_MORE:
		q->off += (uint32_t)consumed;
		return;
	case HTTP1_HEAD:
		q->off += (uint32_t)consumed;
		response_head(d, c);
		return;
	case HTTP1_BODY:
		if (stage_seen(d, c, &c->down, q->buf + q->off, consumed) < 0) {
			return;
		}
		app_write(d, c, q->buf + q->off, consumed, FROM_RESP);
		return;
	default:
		log_info("conn %u: malformed HTTP response from a service endpoint: %s", c->slot,
			 rt->resp.error ? rt->resp.error : "not HTTP/1");
		q->off = q->len;
		rt->up_eof = 1;
		upstream_failed(d, c, 0);
		return;
	}
}

static void exchange_check(struct proxy *d, struct conn *c)
{
	struct route *rt = c->rt;
	int keep;

	if (rt->phase != RT_EXCHANGE || !response_complete(rt) || rt->app_wpending ||
	    rt->up_wpending) {
		return;
	}
	if (!rt->req_done && !rt->close_after) {
		rt->close_after = 1; /* answered before the body was in: we cannot read on */
	}
	keep = rt->req_done && !rt->body_pending && !rt->close_after && !rt->resp.head.conn_close &&
	       !rt->up_eof && c->down.off >= c->down.len;
	if (rt->resp.head.conn_close) {
		rt->close_after = 1;
	}
	exchange_done(d, c, keep);
}

static int response_step(struct proxy *d, struct conn *c)
{
	struct route *rt = c->rt;
	struct pipe *q = &c->down;

	if (rt->app_wpending) {
		return 0;
	}
	if (rt->answer_off < rt->answer_len) {
		return app_write(d, c, rt->answer + rt->answer_off, rt->answer_len - rt->answer_off,
				 FROM_ANSWER);
	}
	if (rt->phase == RT_ENDING) {
		/* Everything is out: the app reads the end, as from its server. */
		transport_shutdown(c->app);
		conn_close(d, c, 0);
		return 0;
	}
	if (rt->phase == RT_DETECT || rt->phase == RT_IDLE || !rt->up || rt->stale) {
		return 0;
	}
	if (q->off < q->len) {
		if (rt->phase == RT_TUNNEL) {
			if (stage_seen(d, c, &c->down, q->buf + q->off, q->len - q->off) < 0) {
				return 0;
			}
			return app_write(d, c, q->buf + q->off, q->len - q->off, FROM_RESP);
		}
		response_bytes(d, c);
		if (c->state == CS_PROXY && c->rt == rt) {
			exchange_check(d, c);
		}
		return 1;
	}
	if (rt->up_eof) {
		if (rt->phase == RT_TUNNEL) {
			transport_shutdown(c->app);
			conn_close(d, c, 0);
			return 0;
		}
		if (rt->resp_final && rt->resp.head.conn_close) {
			/* Delimited by the close: complete now. */
			rt->close_after = 1;
			exchange_done(d, c, 0);
			return 1;
		}
		upstream_failed(d, c, 0);
		return 1;
	}
	if (upstream_open(rt->up) && !rt->up_rpending) {
		int r;

		q->off = q->len = 0;
		r = transport_read(rt->up->net, q->buf, c->bufsize);
		if (r == -EINPROGRESS) {
			rt->up_rpending = 1;
			return 0;
		}
		route_upstream_read(d, c, r);
		return 1;
	}
	return 0;
}

/* ---- events ----------------------------------------------------------------------- */

void route_pump(struct proxy *d, struct conn *c)
{
	struct route *rt = c->rt;
	int moved;

	if (rt->h2) {
		route_h2_pump(d, c);
		return;
	}
	if (rt->phase == RT_DETECT && !rt->detect_ms && !rt->proto_http) {
		rt->detect_ms = now_ms() + RT_DETECT_MS;
		arm(d, rt->detect_ms);
	}
	if (rt->pumping) {
		/* Called back from inside a step (an upstream failing at once):
		 * the running loop goes round again instead. */
		rt->again = 1;
		return;
	}
	rt->pumping = 1;
	do {
		rt->again = 0;
		if (c->state != CS_PROXY || c->rt != rt) {
			rt->pumping = 0;
			return;
		}
		moved = request_step(d, c);
		if (c->state != CS_PROXY || c->rt != rt) {
			rt->pumping = 0;
			return;
		}
		if (rt->h2) {
			rt->pumping = 0;
			route_h2_pump(d, c); /* detection found the HTTP/2 preface */
			return;
		}
		moved |= response_step(d, c);
	} while (moved || rt->again);
	rt->pumping = 0;
}

static void route_app_written(struct proxy *d, struct conn *c, int from, size_t n)
{
	struct route *rt = c->rt;

	switch (from) {
	case FROM_ANSWER:
		rt->answer_off += (uint32_t)n;
		if (rt->answer_off >= rt->answer_len) {
			rt->answer_off = rt->answer_len = 0;
		}
		break;
	case FROM_HEAD:
		if (n < rt->resp.raw_len) {
			/* Rare: the rest of the head goes on from where it stopped. */
			memmove(rt->resp.raw, rt->resp.raw + n, rt->resp.raw_len - n);
			rt->resp.raw_len -= n;
			app_write(d, c, rt->resp.raw, rt->resp.raw_len, FROM_HEAD);
			return;
		}
		break;
	default:
		c->down.off += (uint32_t)n;
		break;
	}
	if (rt->phase == RT_EXCHANGE) {
		exchange_check(d, c);
	}
}

static void route_upstream_read(struct proxy *d, struct conn *c, int res)
{
	struct route *rt = c->rt;

	if (res > 0) {
		c->down.off = 0;
		c->down.len = (uint32_t)res;
		return;
	}
	rt->up_eof = 1;
	if (res < 0) {
		c->close_errno = -res;
	}
	(void)d;
}

void route_app_event(struct proxy *d, struct conn *c, enum transport_event ev, int res)
{
	struct route *rt = c->rt;
	struct pipe *p = &c->up;

	if (rt->h2) {
		route_h2_app_event(d, c, ev, res);
		return;
	}
	switch (ev) {
	case TEV_READ:
		rt->app_rpending = 0;
		if (res == -ECANCELED) {
			res = 0;
			if (!rt->handover) {
				break;
			}
		} else if (res < 0) {
			c->close_errno = -res;
			conn_close(d, c, 1);
			return;
		} else if (res == 0) {
			rt->app_eof = 1;
		} else {
			size_t at = rt->phase == RT_DETECT ? p->len : 0;

			p->len = (uint32_t)(at + (size_t)res);
			if (stage_seen(d, c, p, p->buf + at, (size_t)res) < 0) {
				return;
			}
		}
		if (rt->handover) {
			hand_over(d, c);
			return;
		}
		break;
	case TEV_WRITTEN:
		rt->app_wpending = 0;
		if (res < 0) {
			c->close_errno = -res;
			conn_close(d, c, 1);
			return;
		}
		route_app_written(d, c, rt->app_wfrom, (size_t)res);
		break;
	default:
		break;
	}
	if (c->state == CS_PROXY && c->rt == rt) {
		route_pump(d, c);
	}
}

void route_upstream_event(struct proxy *d, struct conn *u, enum transport_event ev, int res)
{
	struct conn *c = owner_of(d, u);
	struct route *rt;

	if (!c) {
		/* Pooled: anything it has to say (the peer closing it, bytes
		 * nobody asked for) ends it. */
		if (ev == TEV_READABLE && res != -ECANCELED) {
			pool_remove(u);
			conn_close(d, u, 0);
		}
		return;
	}
	rt = c->rt;
	if (rt && rt->h2 && c->state == CS_PROXY) {
		route_h2_upstream_event(d, c, u, ev, res);
		return;
	}
	if (!rt || rt->up != u || c->state != CS_PROXY) {
		return;
	}
	switch (ev) {
	case TEV_READ:
		rt->up_rpending = 0;
		route_upstream_read(d, c, res);
		break;
	case TEV_WRITTEN:
		rt->up_wpending = 0;
		if (res < 0) {
			upstream_failed(d, c, 0);
			break;
		}
		if (rt->up_wfrom == UP_FROM_RQ) {
			rt->rq_sent += (size_t)res;
		} else {
			c->up.off += (uint32_t)res;
			if (rt->up_wfrom == UP_FROM_BODY) {
				rt->body_pending -= (size_t)res;
			}
		}
		break;
	default:
		return; /* TEV_READABLE of a cancelled wait, TEV_SHUT */
	}
	if (c->state == CS_PROXY && c->rt == rt) {
		route_pump(d, c);
	}
}

void route_upstream_ready(struct proxy *d, struct conn *u)
{
	struct conn *c = owner_of(d, u);

	if (c && c->rt && c->rt->h2 && c->state == CS_PROXY) {
		route_h2_upstream_ready(d, c, u);
		return;
	}
	if (!c || !c->rt || c->rt->up != u) {
		/* Its request went elsewhere (a timeout, the app gone). */
		u->owner_gen = 0;
		if (u->bal && !u->bal->detached && !d->draining) {
			pool_put(d, u);
		} else {
			conn_close(d, u, 0);
		}
		return;
	}
	route_pump(d, c);
}

void route_upstream_gone(struct proxy *d, struct conn *u)
{
	struct conn *c = owner_of(d, u);
	struct route *rt;

	pool_remove(u);
	if (c && c->rt && c->rt->h2 && c->state == CS_PROXY) {
		route_h2_upstream_gone(d, c, u);
		return;
	}
	if (!c || !(rt = c->rt) || rt->up != u || c->state != CS_PROXY) {
		return;
	}
	/* Closed under the exchange: a dial that failed (connect failure) or
	 * an open one that broke. */
	rt->up = NULL;
	if (rt->up_rpending || rt->up_wpending) {
		u->borrowing = 1;
		rt->stale++;
	}
	rt->up_rpending = rt->up_wpending = 0;
	rt->up_eof = 1;
	upstream_failed(d, c, u->state != CS_PROXY);
	if (c->state == CS_PROXY && c->rt == rt) {
		route_pump(d, c);
	}
}

void route_close(struct proxy *d, struct conn *c)
{
	struct route *rt = c->rt;

	if (!rt) {
		return;
	}
	if (rt->h2) {
		route_h2_close(d, c);
	}
	release_endpoint(rt);
	drop_upstream(d, c, 0, 1);
}

void route_free(struct conn *c)
{
	struct route *rt = c->rt;

	if (!rt) {
		return;
	}
	route_h2_free(rt->h2);
	http1_fini(&rt->req);
	http1_fini(&rt->resp);
	free(rt->rq);
	free(rt);
	c->rt = NULL;
}

void route_returned(struct proxy *d, struct conn *u)
{
	struct conn *c = owner_of(d, u);

	if (c && c->rt && c->rt->stale) {
		if (c->rt->h2) {
			route_h2_returned(c, u);
		}
		c->rt->stale--;
		if (c->state == CS_PROXY) {
			c->rt->kick = 1;
			arm(d, now_ms());
		}
	}
}

int route_start(struct conn *c, int proto_http)
{
	struct route *rt = calloc(1, sizeof(*rt));

	if (!rt) {
		return -ENOMEM;
	}
	http1_init(&rt->req, HTTP1_REQUEST);
	http1_init(&rt->resp, HTTP1_RESPONSE);
	rt->phase = RT_DETECT;
	rt->proto_http = (uint8_t)proto_http;
	c->rt = rt;
	return 0;
}

void route_tick(struct proxy *d, int64_t now)
{
	int64_t next = 0;
	uint32_t i;

	d->rt_next_ms = 0;
	for (i = 0; i < d->nslots; i++) {
		struct conn *c = d->conns[i];
		struct route *rt;

		if (!c || c->state == CS_CLOSING) {
			continue;
		}
		if (c->kind == CONN_UPSTREAM && c->pooled_ms) {
			if (now - c->pooled_ms >= RT_POOL_IDLE_MS) {
				pool_remove(c);
				conn_close(d, c, 0);
			} else if (!next || c->pooled_ms + RT_POOL_IDLE_MS < next) {
				next = c->pooled_ms + RT_POOL_IDLE_MS;
			}
			continue;
		}
		if (!(rt = c->rt) || c->state != CS_PROXY) {
			continue;
		}
		if (rt->kick) {
			rt->kick = 0;
			route_pump(d, c);
			if (c->state != CS_PROXY || c->rt != rt) {
				continue;
			}
		}
		if (rt->h2) {
			int64_t at = route_h2_tick(d, c, now);

			next = at && (!next || at < next) ? at : next;
			continue;
		}
		if (rt->phase == RT_DETECT && rt->detect_ms && !rt->handover) {
			if (now >= rt->detect_ms) {
				/* Nothing (or no whole first line) came: a protocol
				 * where the server speaks first goes to one endpoint. */
				rt->handover = 1;
				if (!rt->app_rpending || c->app->ops->cancel_read(c->app) < 0) {
					hand_over(d, c);
				}
				continue;
			}
			next = !next || rt->detect_ms < next ? rt->detect_ms : next;
		}
		if (rt->phase == RT_EXCHANGE && rt->deadline_ms) {
			if (now >= rt->deadline_ms) {
				rt->deadline_ms = 0;
				service(d, rt->svc)->timeouts_total++;
				attempt_result(rt, BAL_RES_TIMEOUT, tel_now_us());
				log_info("conn %u: %s request timed out after %d ms", c->slot,
					 rt->method, rt->timeout_ms);
				answer(d, c, 504, "Gateway Timeout", "request timeout");
				if (c->state == CS_PROXY && c->rt == rt) {
					route_pump(d, c);
				}
				continue;
			}
			next = !next || rt->deadline_ms < next ? rt->deadline_ms : next;
		}
	}
	arm(d, next);
}
