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

struct ldmeshd;

#define VERDICT_WAIT_MS 1000
#define PREAMBLE_ROOM (sizeof(struct ldm_preamble))
#define DETECT_TIMEOUT_MS 1000
#define PARK_AFTER_MS 2000

int conn_alloc_bufs(struct ldmeshd *d, struct conn *c);
void app_dial_done(struct ldmeshd *d, struct conn *c, int res);
void detect_done(struct ldmeshd *d, struct conn *c, int res);
void detect_timeout(struct ldmeshd *d, struct conn *c);
void dial_done(struct ldmeshd *d, struct conn *c, int res);
void dial_outcome(struct ldmeshd *d, const struct conn *c, int err);
void filler_done(struct ldmeshd *d, struct conn *c, int res);
void handshake_step(struct ldmeshd *d, struct conn *c);
void inbound_authenticated(struct ldmeshd *d, struct conn *c);
void inject_sent(struct ldmeshd *d, struct conn *c);
void net_flush(struct ldmeshd *d, struct conn *c);
int net_idle(const struct conn *c);
void net_recv_done(struct ldmeshd *d, struct conn *c, int res);
void net_send_done(struct ldmeshd *d, struct conn *c, int res);
void net_want_input(struct ldmeshd *d, struct conn *c);
void outbound_ready(struct ldmeshd *d, struct conn *c);
void park_read_cancelled(struct ldmeshd *d, struct conn *c);
void park_wake(struct ldmeshd *d, struct conn *c, enum ud_tag tag);
enum config_mtls port_mtls(const struct ldmeshd *d, uint16_t port_net);
void pump_both(struct ldmeshd *d, struct conn *c);
void pipe_recv_done(struct ldmeshd *d, struct conn *c, struct pipe *p, int res);
void pipe_send_done(struct ldmeshd *d, struct conn *c, struct pipe *p, int res);
int start_tls(struct ldmeshd *d, struct conn *c, int server);
void conn_tel_open(struct ldmeshd *d, struct conn *c);
int conn_wants_l7(struct ldmeshd *d, struct conn *c);

#endif
