/*
 * HTTP/2 awareness (h2c: prior knowledge or an Upgrade the app accepted),
 * the HTTP/2 half of proxy/l7.h.  The connection is followed, not ended:
 * the apps' frames pass as they are (proto/h2.h).  On inbound connections
 * each request stream is decided by policy (a denied one is answered by us,
 * 403 or grpc-status 7, while the other streams go on) and its header
 * block is written again with the caller's identity in
 * x-forwarded-client-cert; on both directions each stream is counted with
 * its status and, for gRPC, its grpc-status.  Not for use outside
 * daemon/proxy/.
 */
#ifndef LDMESH_L7_H2_H
#define LDMESH_L7_H2_H

#include <stddef.h>
#include <stdint.h>

#include "proto/h2.h"

struct proxy;
struct conn;
struct l7;
struct tel_series;

/* A request stream being followed. */
struct l7_h2_stream {
	int32_t id;
	uint8_t denied; /* answered by us: the client's frames for it are dropped */
	uint8_t grpc; /* content-type application/grpc */
	uint8_t answered; /* its final response head came */
	uint8_t req_end; /* the client ended its side */
	uint16_t status;
	int16_t grpc_status; /* -1: none yet */
	int64_t start_us, head_us;
	struct tel_series *series; /* NULL when request metrics are off */
	struct tel_series *route; /* route_* of the rule that allowed it, or NULL */
	char method[16];
	char *path, *authority, *rule; /* owned; only while the access log is on */
};

struct l7_h2 {
	struct h2_dir req, resp; /* client -> server, server -> client */
	uint8_t inbound; /* requests are decided and written again */
	uint8_t failed; /* framing lost: no longer followed */
	uint8_t started; /* the client's side is followed too (req is set up) */
	struct l7_h2_stream *st; /* owned, n of cap */
	uint32_t n, cap;
	char *inject; /* owned: frames of ours for the client, queued */
	size_t inject_len, inject_cap;
	char *sending; /* owned: the queued frames handed to the pump, in flight */
	size_t sending_len, sending_off;
	uint32_t window_due; /* DATA of denied streams dropped: credit owed */
};

/* Starts following HTTP/2 on c, whose HTTP state h turned out to carry it.
 * An upgraded connection's stream 1 is the HTTP/1 request that asked for
 * h2c (tracked already); the client's preface comes next either way.
 * 0 or -ENOMEM. */
int l7_h2_start(struct proxy *d, struct conn *c, struct l7 *h, int upgraded);
/* The app (a server) spoke first with a SETTINGS frame: its side is
 * followed while the client's first bytes are awaited.  0 or -ENOMEM. */
int l7_h2_server_first(struct conn *c, struct l7 *h);
/* Counts streams still unanswered as failures and frees; NULL no-op. */
void l7_h2_finish(struct proxy *d, struct conn *c, struct l7_h2 *x);
void l7_h2_trim(struct l7_h2 *x);

/* Inbound requests: consumes c->down's input into h->out (the l7 down
 * contract).  -errno: close c. */
int l7_h2_down(struct proxy *d, struct conn *c, struct l7 *h);
/* The same for bytes held before HTTP/2 was known. */
int l7_h2_down_bytes(struct proxy *d, struct conn *c, struct l7 *h, const char *buf, size_t n);
/* Responses (and, outbound, the app's requests) as they pass.  -errno:
 * the framing is lost; inbound closes c, outbound stops following. */
int l7_h2_responses(struct proxy *d, struct conn *c, struct l7 *h, const char *buf, size_t n);
int l7_h2_out_requests(struct proxy *d, struct conn *c, struct l7 *h, const char *buf, size_t n);

/* Answers of ours for the client may go in the app's output at chunk
 * offset off (of a chunk of len): 1 if so (a frame boundary). */
int l7_h2_inject_ready(const struct l7_h2 *x, size_t off, size_t len);
/* The answers to write now (inject_ready said so), and how much went. */
void l7_h2_inject_take(struct l7_h2 *x, const char **buf, size_t *n);
void l7_h2_injected(struct l7_h2 *x, size_t n);
/* Bytes of the app's output from off that go before the next point where
 * a waiting answer of ours may go (len - off when none waits). */
size_t l7_h2_up_room(const struct l7_h2 *x, size_t off, size_t len);

/* The first bytes of a direction that look like HTTP/2: the client's
 * preface start, or a server's first SETTINGS frame head. */
int l7_h2_is_preface(const char *buf, size_t n);
int l7_h2_is_server_settings(const char *buf, size_t n);

#endif
