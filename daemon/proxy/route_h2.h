/*
 * HTTP/2 (gRPC) requests routed one by one: an app that opens a service
 * address with the HTTP/2 preface gets its HTTP/2 connection terminated
 * here (an nghttp2 server session), and each stream goes to an endpoint
 * the balancer picks for it, over one HTTP/2 connection per endpoint to
 * that endpoint's daemon (an upstream conn with an nghttp2 client
 * session), so one gRPC channel reaches every endpoint.  Flow control is
 * end to end: a stream's DATA is acknowledged to its sender once it has
 * been handed to the other side.  Timeouts answer 504 (gRPC:
 * DEADLINE_EXCEEDED), no endpoint 503 (gRPC: UNAVAILABLE); retries on
 * statuses and gRPC statuses as for HTTP/1 (route.h).  Not for use
 * outside daemon/proxy/.
 */
#ifndef LDMESH_ROUTE_H2_H
#define LDMESH_ROUTE_H2_H

#include <stddef.h>
#include <stdint.h>

struct proxy;
struct conn;
struct route_h2;
enum transport_event;

/* Upstream HTTP/2 connections one app connection may use at once. */
#define RH2_UPSTREAMS 16

/* c's first bytes (in c->up.buf) are the HTTP/2 preface: c routes its
 * streams from now on.  0 or -ENOMEM. */
int route_h2_start(struct proxy *d, struct conn *c);
void route_h2_pump(struct proxy *d, struct conn *c);
void route_h2_app_event(struct proxy *d, struct conn *c, enum transport_event ev, int res);
void route_h2_upstream_event(struct proxy *d, struct conn *c, struct conn *u,
			     enum transport_event ev, int res);
void route_h2_upstream_ready(struct proxy *d, struct conn *c, struct conn *u);
void route_h2_upstream_gone(struct proxy *d, struct conn *c, struct conn *u);
/* c closes: every upstream is closed. */
void route_h2_close(struct proxy *d, struct conn *c);
/* c is freed (nothing in flight uses its sessions' memory any more). */
void route_h2_free(struct route_h2 *h);
/* Upstream u of c, closed with an operation out, has given it back. */
void route_h2_returned(struct conn *c, struct conn *u);
/* Timeouts of c's streams; the next deadline (0: none). */
int64_t route_h2_tick(struct proxy *d, struct conn *c, int64_t now_ms);

#endif
