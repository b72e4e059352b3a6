/*
 * What the connection files share (conn.c, pump.c, handshake.c,
 * outbound.c, inbound.c, park.c): steps of the state machine one file
 * starts and another finishes.  Not for use outside daemon/proxy/.
 */
#ifndef LDMESH_CONN_INTERNAL_H
#define LDMESH_CONN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "proxy/conn.h"
#include "transport/transport.h"

struct proxy;

#define PREAMBLE_ROOM (sizeof(struct ldm_preamble))
#define DETECT_TIMEOUT_MS 1000
#define PARK_AFTER_MS 2000

/* pump.c */
int conn_alloc_bufs(struct proxy *d, struct conn *c);
void pump_both(struct proxy *d, struct conn *c);
/* The two transports' events (transport_event_fn), owner c. */
void conn_transport_event(void *owner, struct transport *t, enum transport_event ev, int res);

/* conn.c */
void conn_tel_open(struct proxy *d, struct conn *c);
void conn_tel_dial_failed(struct proxy *d, const struct conn *c, int err);
struct policy_request;
struct policy_result;
/* A policy decision on c: ldmesh_policy_decisions_total and Linkerd's
 * inbound_{tcp,http}_authz_* (http when req is an HTTP request). */
void conn_authz(struct proxy *d, const struct conn *c, const struct policy_request *req,
		const struct policy_result *res);
/* Linkerd's counter alone: an HTTP request (http 1) or a connection that
 * rule allowed or denied. */
void conn_authz_tel(struct proxy *d, const struct conn *c, int http, const char *rule, int allowed);
/* Makes c's two transports over a_fd and n_fd. */
void conn_transports_init(struct proxy *d, struct conn *c);
/* c's network side back to its bare socket: a link's stream or a TLS
 * engine over it closed and gone, c off its link. */
void conn_net_unlayer(struct proxy *d, struct conn *c);
int conn_renew_net(struct proxy *d, struct conn *c);
void dial_outcome(struct proxy *d, const struct conn *c, int err);

/* handshake.c */
int start_tls(struct proxy *d, struct conn *c, int server);
void handshake_begin(struct proxy *d, struct conn *c);
void handshake_done(struct proxy *d, struct conn *c, int res);
void handshake_tick(struct proxy *d, struct conn *c, int64_t now);
/* Lets what the network transport still holds (an alert, close_notify)
 * reach the peer, then resets; bounded by a second (conn_sweep). */
void flush_then_reset(struct proxy *d, struct conn *c);

/* outbound.c */
void dial_done(struct proxy *d, struct conn *c, int res);
void filler_done(struct proxy *d, struct conn *c, int res);
void outbound_ready(struct proxy *d, struct conn *c);
/* Dials c's destination itself (its own TCP connection, mTLS or not). */
void outbound_dial_direct(struct proxy *d, struct conn *c);
/* c's dial to a service endpoint failed with err: 1 when it goes on to
 * another endpoint (the app sees nothing), 0 when err is the app's. */
int outbound_service_retry(struct proxy *d, struct conn *c, int err);
/* "outbound to service S (ADDR) for pid P: every endpoint is out" (or a
 * DNS service's "no endpoints"); with limit, at most once a second per
 * service (routed requests). */
void outbound_log_unavailable(struct proxy *d, const struct conn *c, int svc, int limit);
/* A routed connection that is not HTTP/1 after all: dialled to one
 * endpoint of its service now (route.c hands it over). */
void outbound_dial_late(struct proxy *d, struct conn *c);
struct bal_endpoint;
/* A new upstream connection for owner's requests to endpoint e of
 * balancer service svc, not dialled yet; NULL when it cannot be made. */
struct conn *outbound_upstream_new(struct proxy *d, struct conn *owner, int svc,
				   struct bal_endpoint *e);
/* Dials it (once its owner holds it): the opening ends in
 * route_upstream_ready() or route_upstream_gone(), maybe at once. */
void outbound_upstream_dial(struct proxy *d, struct conn *u);

/* inbound.c */
void app_dial_done(struct proxy *d, struct conn *c, int res);
void detect_done(struct proxy *d, struct conn *c, int res);
void detect_timeout(struct proxy *d, struct conn *c);
void inbound_authenticated(struct proxy *d, struct conn *c);
/* A CONNECT stream that arrived on link ml from peer (the link's TCP peer,
 * verified as peer_id): an inbound connection to the app it names. */
void inbound_link_stream(struct proxy *d, struct plink *ml, struct transport *st,
			 const struct ldm_addr *peer, const char *peer_id);
enum config_mtls port_mtls(const struct proxy *d, uint16_t port_net);
/* inbound.ports[].opaque for this port (network order): no HTTP layer. */
int port_opaque(const struct proxy *d, uint16_t port_net);

/* park.c */
void park_read_cancelled(struct proxy *d, struct conn *c);
void park_wake(struct proxy *d, struct conn *c, struct transport *t);

#endif
