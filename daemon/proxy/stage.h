/*
 * The protocol stage of a proxied connection: what sits between its app
 * end and its network transport and looks at the bytes.  HTTP/1 today
 * (proxy/l7.h does the HTTP): on inbound connections it decides requests,
 * may rewrite their heads, hold input and answer a denied request itself;
 * on both directions it follows requests and responses for metrics.  The
 * pump (pump.c) asks it what to write and tells it what it read; it never
 * writes itself.  Not for use outside daemon/proxy/.
 */
#ifndef LDMESH_STAGE_H
#define LDMESH_STAGE_H

#include <stddef.h>

struct proxy;
struct conn;
struct pipe;

/* Gives c its HTTP state if it should have one now; 1 when it has one. */
int stage_wants(struct proxy *d, struct conn *c);

/* Plaintext read on pipe p: counted, shown to the HTTP layer.  -errno:
 * the HTTP layer refused the connection, which is closed now. */
int stage_seen(struct proxy *d, struct conn *c, struct pipe *p, const char *buf, size_t n);

enum stage_step {
	STAGE_PASS, /* no stage on this direction: the pipe's bytes go as they are */
	STAGE_WRITE, /* write *buf..*n to the app, then stage_wrote() */
	STAGE_WAIT, /* held (a denied request waits its turn), or c was closed */
	STAGE_EMPTY, /* the pipe's input is used up: read more */
};
/* Inbound, network -> app: what the app gets next from c->down. */
enum stage_step stage_down(struct proxy *d, struct conn *c, const char **buf, size_t *n);
void stage_wrote(struct conn *c, size_t n);
/* 1 while output of the stage waits to be written to the app. */
int stage_has_output(const struct conn *c);

/* App -> network: an answer of ours for the client (a 403) that may go
 * now, after the app's earlier answers: 1 with *buf..*n; 0 none; -1 c was
 * closed (its answer cannot be put in order). */
int stage_inject(struct proxy *d, struct conn *c, const char **buf, size_t *n);
/* Bytes of c->up's input that go to the client before the next point
 * where a queued answer of ours may go (HTTP/2: a frame boundary). */
size_t stage_up_room(const struct conn *c);
/* 1 while an answer of ours is queued. */
int stage_has_inject(const struct conn *c);
/* The answer is out (n bytes of it).  1: the connection ends now, both
 * ways (the client was told so); 0: it goes on; -EIO: the answer was cut
 * short, close c. */
int stage_injected(struct proxy *d, struct conn *c, size_t n);

#endif
