/*
 * TLS 1.3 with SPIFFE X.509-SVIDs, kept apart from socket I/O: ciphertext
 * in, ciphertext out, plaintext separately, through OpenSSL memory BIOs, so
 * the event loop never blocks in SSL_read/SSL_write.  The OpenSSL error
 * queue becomes one errno plus one reason string at this boundary.
 */
#ifndef LDMESH_TLS_H
#define LDMESH_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ldmesh/proto.h"

struct config;

#define TLS_ALPN "ldmesh/1"

/* Why a handshake failed; also the `reason` label of the error metric. */
enum tls_reason {
	TLS_OK = 0,
	TLS_UNKNOWN_CA, /* chain does not lead to a root in the bundle */
	TLS_EXPIRED, /* certificate past notAfter */
	TLS_NOT_YET_VALID, /* certificate before notBefore */
	TLS_NO_URI_SAN, /* no URI SAN: not an SVID */
	TLS_MULTIPLE_URI_SAN, /* more than one URI SAN */
	TLS_BAD_SPIFFE_ID, /* URI SAN is not a valid SPIFFE ID */
	TLS_CA_AS_LEAF, /* leaf says cA:TRUE (X.509-SVID: leaf MUST NOT) */
	TLS_BAD_KEY_USAGE, /* leaf key usage: no digitalSignature, or keyCertSign/cRLSign */
	TLS_TRUST_DOMAIN, /* SPIFFE ID from another trust domain */
	TLS_ID_MISMATCH, /* not the identity pinned for the service */
	TLS_NO_PEER_CERT, /* peer presented no certificate */
	TLS_PEER_ALERT, /* the peer refused us (it sent an alert) */
	TLS_PROTOCOL, /* anything else: bad records, wrong version */
	TLS_REASON_COUNT
};

const char *tls_reason_name(enum tls_reason r);

/* Our own SVID, as loaded. */
struct tls_svid_info {
	char id[LDM_PEER_ID_MAX + 1];
	char serial[80]; /* hex */
	time_t not_before, not_after;
	int n_roots;
	char roots[512]; /* "subject (not after ...); ..." */
};

struct tls_ctx;
struct tls_conn;

/*
 * Loads cert, key and bundle named by cfg.  Returns a context with one
 * reference, or NULL with a sentence in err (a key readable by group or
 * others is refused).  The SVID may be expired: that is logged by the
 * caller from the info, not refused, so the daemon keeps serving what it can.
 */
struct tls_ctx *tls_ctx_new(const struct config *cfg, char *err, size_t errlen);
void tls_ctx_ref(struct tls_ctx *t);
void tls_ctx_unref(struct tls_ctx *t); /* NULL is a no-op */
const struct tls_svid_info *tls_ctx_info(const struct tls_ctx *t);

/*
 * A TLS session for one connection.  server: accept side.  pin: SPIFFE ID
 * the peer must have (NULL: any in our trust domain).  resume_key: client
 * sessions are cached under it for resumption (NULL: no resumption).
 * Takes a reference on ctx.
 */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int server, const char *pin,
			      const char *resume_key);
void tls_conn_free(struct tls_conn *c);
/* A link between daemons (transport/h2link.h): ALPN "h2" offered (client)
 * or required (server) instead of ours.  Before the handshake; 0 or -errno. */
int tls_conn_use_h2(struct tls_conn *c);
/* 1 when the handshake settled on h2. */
int tls_conn_alpn_h2(const struct tls_conn *c);

/* Ciphertext from the network (copied). Returns 0 or -ENOMEM. */
int tls_conn_feed(struct tls_conn *c, const void *buf, size_t len);
/* The same without a copy: the engine reads buf in place, so buf is lent
 * to it until tls_conn_unborrow() (the caller's next use of buf, or its
 * free); until then buf must stay as it is.  Returns 0 or -ENOMEM. */
int tls_conn_feed_borrowed(struct tls_conn *c, const void *buf, size_t len);
/* Gives back the buffer lent by tls_conn_feed_borrowed(): what the engine
 * has not read yet is copied into its own.  No-op when nothing is lent.
 * Returns 0 or -ENOMEM. */
int tls_conn_unborrow(struct tls_conn *c);
/* 1: handshake done; 0: needs more input; -EPROTO/-EACCES: failed (see reason). */
int tls_conn_handshake(struct tls_conn *c);
/* Server: the client is admitted (policy allowed it): send a session
 * ticket, which is also what tells the client it was accepted. */
void tls_conn_admit(struct tls_conn *c);
/* 1 once our side of the handshake is complete (a client may still be
 * waiting for the server's verdict on its certificate). */
int tls_conn_finished(const struct tls_conn *c);
/* Client: stop waiting for the verdict (a server that sends no tickets and
 * waits for the client to speak). */
void tls_conn_accept_verdict(struct tls_conn *c);
/* Plaintext out: > 0 bytes, 0 clean close_notify, -EAGAIN need input, < 0 error. */
int tls_conn_read(struct tls_conn *c, void *buf, size_t len);
/* Plaintext in; all of it is taken (> 0) or < 0 on error. */
int tls_conn_write(struct tls_conn *c, const void *buf, size_t len);
/* Queues close_notify (our half-close). */
void tls_conn_close_notify(struct tls_conn *c);
/* Ciphertext waiting for the network. */
size_t tls_conn_out_pending(const struct tls_conn *c);

/* An idle connection lets go of its memory buffers; -EAGAIN when bytes are
 * still held (partial record, unread plaintext, unsent output). */
int tls_conn_trim(struct tls_conn *c);
/* Up to len bytes of ciphertext to send, taken from the engine. */
size_t tls_conn_out_take(struct tls_conn *c, void *buf, size_t len);
/* Lends buf (cap bytes) to the engine: what it writes from now on goes
 * straight there while it fits and nothing else waits to be taken, saving
 * a copy.  Only while tls_conn_out_pending() is 0; ended, before anything
 * else uses the engine, by tls_conn_out_direct_end(), which returns how
 * many bytes of buf were written (to send before what _take() gives). */
void tls_conn_out_direct(struct tls_conn *c, void *buf, size_t cap);
size_t tls_conn_out_direct_end(struct tls_conn *c);

enum tls_reason tls_conn_reason(const struct tls_conn *c);
/* Detail for logs (OpenSSL's words or ours). */
const char *tls_conn_detail(const struct tls_conn *c);
const char *tls_conn_peer_id(const struct tls_conn *c); /* "" before the handshake */
const char *tls_conn_version(const struct tls_conn *c);
int tls_conn_resumed(const struct tls_conn *c);

/*
 * The X.509-SVID checks of a leaf, for peers in both directions and for our
 * own SVID on every (re)load: exactly one URI SAN, a valid SPIFFE ID in
 * trust_domain, equal to pin when pin is set; not a CA (basicConstraints
 * cA:TRUE); key usage present with digitalSignature and without
 * keyCertSign or cRLSign.  The chain and validity dates are OpenSSL's
 * verification.  Fills id when the URI SAN was readable.  Exposed for unit
 * tests and the fuzz target.
 */
enum tls_reason tls_check_svid(const void *x509, const char *trust_domain, const char *pin,
			       char *id, size_t idlen);

/* 1 when the bytes start a TLS handshake record (ClientHello sniffing). */
int tls_looks_like_client_hello(const uint8_t *buf, size_t len);

#endif
