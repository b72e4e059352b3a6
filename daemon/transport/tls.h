/*
 * TLS as a transport: the engine (identity/tls.h) over a lower transport
 * that carries the ciphertext, the TCP stream today.  Reads and writes
 * are plaintext; the handshake is open(), and the few things only TLS has
 * (the server's verdict on a client, the goodbye of a refusal) are below.
 */
#ifndef LDMESH_TLS_TRANSPORT_H
#define LDMESH_TLS_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "transport/transport.h"

struct tls_conn;

/* Takes over tls (engine, freed by destroy); lower's events come here from
 * now on.  buf_size: the ciphertext buffers, allocated while needed.
 * NULL when out of memory (tls is then still the caller's). */
struct transport *tls_transport_new(struct tls_conn *tls, struct transport *lower, size_t buf_size);
/* The engine, for what the caller asks of it (peer identity, version,
 * the reason a handshake failed). */
struct tls_conn *tls_transport_engine(struct transport *t);

/* A client that finished its side of the handshake and waits for the
 * server's verdict: gives up waiting after VERDICT_WAIT_MS (a server
 * that sends no ticket).  Returns 0 when that opened it, -errno when the
 * handshake then failed, -EINPROGRESS when nothing changed. */
int tls_transport_tick(struct transport *t, int64_t now_ms);
#define TLS_VERDICT_WAIT_MS 1000

/* Server: policy admitted the client; the ticket that tells it so goes
 * out.  0 or -errno. */
int tls_transport_admit(struct transport *t);
/* Queues close_notify without waiting for written data (a refusal);
 * flush() then says when it is out. */
void tls_transport_goodbye(struct transport *t);

#endif
