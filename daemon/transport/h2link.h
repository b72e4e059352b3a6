/*
 * A link between two daemons: many proxied connections over one lower
 * transport (TLS), each an HTTP/2 CONNECT stream, as Istio's HBONE does.
 * nghttp2 does the framing, HPACK and flow control; this layer feeds it
 * through the lower transport and makes every stream a transport
 * (transport.h), so the proxy moves a connection's bytes over a stream as
 * over a TCP or TLS transport.
 *
 * Streams keep TCP's meaning: flow control per stream (a stream whose
 * reader stops stalls alone), half-close both ways (END_STREAM), a reset
 * either way (RST_STREAM).  The link's own events (open, a CONNECT that
 * arrived, death) go to the link's owner; a stream's go to the stream's.
 * Like every transport, nothing is reported from inside a call: work that
 * becomes due there waits for h2link_run(), which the link asks for
 * through its post callback (a loop operation that completes at once).
 */
#ifndef LDMESH_H2LINK_H
#define LDMESH_H2LINK_H

#include <stddef.h>
#include <stdint.h>

#include "transport/transport.h"

struct h2link;

enum h2link_event {
	H2L_OPEN, /* both prefaces exchanged: the link carries streams */
	H2L_STREAM, /* server: a CONNECT arrived; stream is the owner's now */
	H2L_IDLE, /* no stream is open on the link any more */
	H2L_CLOSED, /* the link ended (res: 0 after GOAWAY, or -errno); its
		     * streams have been failed and the lower transport closed */
};

struct h2link_owner {
	void (*event)(void *owner, struct h2link *l, enum h2link_event ev, struct transport *stream,
		      int res);
	/* Asks for h2link_run() soon, from the loop: 0 or -errno. */
	int (*post)(void *owner, struct h2link *l);
	void *owner;
};

struct h2link_params {
	uint32_t max_streams; /* concurrent streams we accept (server) */
	uint32_t stream_window; /* bytes a stream may have unread here */
	uint32_t ping_interval_ms; /* quiet this long: PING the peer */
	uint32_t ping_timeout_ms; /* no answer this long after a PING: dead */
	size_t buf_size; /* the link's read buffer */
};

/* A link over lower, whose handshake is done; lower's events come here
 * from now on and it is closed (not destroyed) when the link ends.  The
 * owner calls h2link_start() next.  NULL when out of memory. */
struct h2link *h2link_new(struct transport *lower, int server, const struct h2link_params *p,
			  const struct h2link_owner *owner);
/* Sends our preface and starts reading: 0 or -errno. */
int h2link_start(struct h2link *l, int64_t now_ms);
/* Runs what became due inside calls (events, output).  For the owner's
 * post callback. */
void h2link_run(struct h2link *l);
/* Liveness: PINGs a quiet peer, ends a link whose peer stopped answering.
 * About once a second. */
void h2link_tick(struct h2link *l, int64_t now_ms);
/* Drains: GOAWAY, no new streams either way; open ones finish.  H2L_CLOSED
 * comes once the last one is done. */
void h2link_drain(struct h2link *l);
/* Ends the link now: its streams fail with -ECONNRESET.  H2L_CLOSED comes. */
void h2link_abort(struct h2link *l, int err);
/* The owner lets go; the link is freed once its streams are destroyed. */
void h2link_release(struct h2link *l);

/* Client: a new stream asking the peer for `authority` (ip:port) on
 * behalf of `forwarded` (the Forwarded header's value).  Its open() sends
 * the CONNECT; TEV_OPEN says what the peer answered (0 for 2xx, else
 * h2link_errno_of_status), or -EAGAIN when the peer refused the stream
 * without looking at it (GOAWAY): safe to try again on another link.  NULL with *err set when the link cannot take
 * one more (-EAGAIN: at its stream limit, -EPIPE: draining or dead). */
struct transport *h2link_connect(struct h2link *l, const char *authority, const char *forwarded,
				 int *err);
/* Server: what a CONNECT asked for (H2L_STREAM), "" when absent. */
const char *h2stream_authority(const struct transport *t);
const char *h2stream_forwarded(const struct transport *t);
/* Server: answers the CONNECT.  2xx opens the stream for data; any other
 * status ends it.  0 or -errno. */
int h2stream_respond(struct transport *t, int status);
/* The link a stream is on (for the owner's books). */
struct h2link *h2stream_link(const struct transport *t);

/* A refusal's errno as the status a CONNECT answer carries, and back, so
 * the client app's connect() fails as it would have without the mesh.
 * 421 (-EXDEV) is not a refusal: the peer daemon does not serve that port,
 * whatever may (a server outside the mesh in its pod): ask it directly. */
#define H2LINK_MISDIRECTED 421
int h2link_status_of_errno(int err);
int h2link_errno_of_status(int status);

struct h2link_stats {
	uint32_t streams_open;
	uint64_t streams_total;
	uint64_t bytes_in, bytes_out; /* bytes of the lower transport */
	int draining, dead, opened;
};
void h2link_get_stats(const struct h2link *l, struct h2link_stats *s);

#endif
