/*
 * Requests routed one by one: an outbound connection to a service's
 * virtual address (services[].protocol "auto" or "http") whose app speaks
 * HTTP/1 gets each request sent to an endpoint the balancer picks for it,
 * over an upstream connection (a CONN_UPSTREAM conn: a stream on a link,
 * or an mTLS connection, to the endpoint's daemon) taken from a
 * per-endpoint pool of idle ones or opened for it.  Responses come back in
 * order.  Per service and route: a request timeout (504 to the app),
 * retries on connect failures, resets and configured statuses within a
 * retry budget, and answers of ours when no endpoint can take a request
 * (503) or the upstream fails it (502).  See docs/traffic.md.  Not for
 * use outside daemon/proxy/.
 */
#ifndef LDMESH_ROUTE_H
#define LDMESH_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "proto/http1.h"
#include "proxy/balance.h"
#include "util/addr.h"

struct proxy;
struct conn;
struct bal_endpoint;
struct transport;
enum transport_event;

/* A request body up to this size is kept for a retry; a larger one streams. */
#define RT_RETRY_BODY_MAX 65536
/* How long "auto" waits for the app's first bytes before it treats the
 * connection as a protocol where the server speaks first. */
#define RT_DETECT_MS 500
/* Idle upstream connections: at most this many per endpoint, this long. */
#define RT_POOL_MAX 32
#define RT_POOL_IDLE_MS 10000

enum rt_phase {
	RT_DETECT, /* the app's first bytes decide: HTTP/1 or per connection */
	RT_IDLE, /* between requests */
	RT_EXCHANGE, /* a request is out (or waits for its upstream), its response comes */
	RT_TUNNEL, /* after a 101 or a 2xx to CONNECT: bytes both ways, one upstream */
	RT_ENDING, /* the last answer is going to the app; then the connection ends */
};

struct route_h2;

struct route {
	enum rt_phase phase;
	struct route_h2 *h2; /* owned: the app spoke HTTP/2 (route_h2.h), NULL for HTTP/1 */
	struct http1_stream req, resp;
	struct conn *up; /* the upstream of the current exchange, NULL while none */
	struct bal_endpoint *ep; /* the endpoint chosen for it (a load reference) */
	int svc; /* the balancer service the request went to (after splits) */

	/* The request: its head, and its body while it may be retried. */
	char *rq; /* owned */
	size_t rq_len, rq_cap, rq_sent;
	size_t body_pending; /* streaming: parsed body bytes in c->up.buf waiting to go */
	char method[16];
	uint8_t retryable; /* its bytes are all in rq and it may go again */
	uint8_t req_done; /* the app's request is read in full */
	uint8_t resp_fwd; /* response bytes went to the app: no retry, no answer of ours */
	uint8_t resp_final; /* the final response head is in */
	uint8_t close_after; /* the app's connection ends once this exchange is out */
	uint8_t attempts; /* sent after the first */
	uint8_t reused; /* the upstream came from the pool */
	uint8_t app_eof, app_rpending, app_wpending;
	uint8_t up_rpending, up_wpending;
	uint8_t up_eof;
	uint8_t up_wfrom; /* what the write out on the upstream carries */
	uint8_t app_wfrom; /* what the write out to the app carries */
	uint8_t proto_http; /* protocol "http": not HTTP/1 is refused, not handed over */
	uint8_t handover; /* RT_DETECT gave up: the app's read is being called off */
	uint8_t tunnel_shut; /* RT_TUNNEL: the app's end went on to the upstream */
	uint32_t stale; /* closed upstreams still using c's memory (conn_free) */
	uint8_t kick; /* route_tick pumps it (an upstream gave c's memory back) */
	uint8_t pumping, again; /* route_pump is running; asked again meanwhile */
	int timeout_ms; /* of its route or service, 0: none */
	struct config_retry retry; /* a copy: a reload does not change a request in flight */
	int64_t start_us, attempt_us;
	int64_t deadline_ms; /* 0: none */
	int64_t detect_ms; /* RT_DETECT: when "auto" gives up waiting */
	const struct bal_endpoint *failed; /* the endpoint the last attempt failed on */

	char answer[320]; /* a response of ours for the app */
	uint32_t answer_len, answer_off;
};

/* The app's connect() to a service address, protocol "auto"
 * (proto_http 0) or "http" (1): c's connect succeeds at once (no dial),
 * and the first bytes decide; a request no endpoint can take is answered
 * 503 (gRPC UNAVAILABLE) at once.  0 or -ENOMEM. */
int route_start(struct conn *c, int proto_http);
/* Proxying begins (the shim's filler is read): c's bytes go through here. */
void route_pump(struct proxy *d, struct conn *c);
/* An event of c's app transport while c routes. */
void route_app_event(struct proxy *d, struct conn *c, enum transport_event ev, int res);
/* An event of an upstream's network transport once it is open. */
void route_upstream_event(struct proxy *d, struct conn *u, enum transport_event ev, int res);
/* Upstream u is open (TLS done, or its stream accepted). */
void route_upstream_ready(struct proxy *d, struct conn *u);
/* Upstream u is closing (a failed dial, an error, a pooled one that went). */
void route_upstream_gone(struct proxy *d, struct conn *u);
/* c closes: its upstream and its request go with it. */
void route_close(struct proxy *d, struct conn *c);
/* c is freed (every upstream gave its memory back). */
void route_free(struct conn *c);
/* Upstream u, closed while it used its owner's memory, is freed. */
void route_returned(struct proxy *d, struct conn *u);
/* route_policy.c: the settings of a request to the service at svc_addr
 * (its first matching route's, else the service's): the root balancer
 * service, or -1 when the address is no longer a service. */
int route_settings(struct proxy *d, const struct ldm_addr *svc_addr, const char *method,
		   size_t mlen, const char *path, size_t plen, int *timeout_ms,
		   struct config_retry *retry);
/* 1 when an answer with this status (gRPC status) is retried under r. */
int route_status_retried(const struct config_retry *r, int status);
int route_grpc_retried(const struct config_retry *r, int grpc_status);
/* 1 for GET, HEAD, OPTIONS, TRACE, PUT, DELETE. */
int route_idempotent(const char *method, size_t len);
/* What an attempt on e tells the balancer (latency_us < 0: no sample). */
void route_result(struct bal_endpoint *e, enum bal_result res, int64_t latency_us, int64_t now_us);

/* Request timeouts, detection that waited long enough, idle pooled
 * upstreams; when is the next deadline (0: none).  From the loop. */
void route_tick(struct proxy *d, int64_t now_ms);

#endif
