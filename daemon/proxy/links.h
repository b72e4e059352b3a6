/*
 * Links between daemons (outbound.links, inbound.link_port): the pool of
 * HTTP/2 links over mTLS that carry proxied connections as CONNECT
 * streams (transport/h2link.h), the link listener, and where a stream
 * meets a connection: an outbound conn's network end becomes a stream on
 * a link to its destination's daemon, an inbound CONNECT becomes an
 * inbound conn whose network end is the stream.
 */
#ifndef LDMESH_LINKS_H
#define LDMESH_LINKS_H

#include <stdint.h>

#include "util/addr.h"

struct proxy;
struct conn;
struct plink;
struct strbuf;
struct tls_conn;

#define LINK_FALLBACKS 64
#define LINK_LISTEN_RETRY_MS 3000

/* A peer address whose link port refused us: per-connection mTLS until. */
struct link_fallback {
	struct ldm_addr ip; /* port 0 */
	int64_t until_ms;
};

struct link_pool {
	int listen_fd; /* owned, -1: no link listener */
	unsigned long long listen_ino;
	int armed;
	int64_t retry_ms; /* the port was taken: try again then, 0: no */
	struct plink **tab; /* slot -> link, NULL when free */
	uint32_t cap;
	uint32_t gen;
	uint32_t open; /* links carrying streams (ldmesh_links_open) */
	uint32_t n; /* links in tab, in any state */
	uint64_t streams_total; /* ldmesh_link_streams_total */
	uint64_t fallbacks_total; /* connections that went without a link */
	struct link_fallback fb[LINK_FALLBACKS];
};

/* Opens the link listener on inbound.link_port (a warning, not fatal, when
 * it cannot: peers then fall back).  0 or -errno. */
int links_open(struct proxy *d);
/* A link connection another event loop's listener accepted and passed
 * here: served as if accepted here (fd is ours). */
void links_adopt(struct proxy *d, int fd);
/* Completions of the pool's loop operations (UD_PLINK_*). */
void links_complete(struct proxy *d, uint64_t ud, int res, int more);
/* About once a second: PINGs, idle links, deadlines, freeing. */
void links_sweep(struct proxy *d, int64_t now);
/* Draining: GOAWAY on every link, no new ones, the listener closed. */
void links_drain(struct proxy *d);
/* At exit: everything closed at once. */
void links_close_all(struct proxy *d);

/* Outbound c to a mesh destination: 1 when c now goes over a link (its
 * TEV_OPEN on c->net says how the stream went), 0 when it should dial as
 * without links (links off, peer known to have none), -errno on failure. */
int links_connect(struct proxy *d, struct conn *c);
/* TEV_OPEN of an outbound conn's stream. */
/* A direct dial after "no listener of ours" failed too: nothing listens
 * there now (an app restarting), so the port is not remembered as one
 * outside the mesh. */
void links_fallback_forget(struct proxy *d, const struct ldm_addr *dst);
void links_stream_opened(struct proxy *d, struct conn *c, int res);
/* Inbound c over a link: the answer to its CONNECT (2xx: accepted). */
void links_answer(struct proxy *d, struct conn *c, int status);
/* An inbound conn took a stream of ml (inbound_link_stream). */
void links_conn_added(struct plink *ml);
/* ml's TLS engine, which its conns borrow (version, telemetry). */
struct tls_conn *links_engine(const struct plink *ml);
/* c lets go of its link (conn_free). */
void links_conn_gone(struct proxy *d, struct conn *c);
/* A link's name for c's line in `ldmeshctl conns`: "" when none. */
void links_conn_name(const struct conn *c, char *buf, size_t len);

/* `ldmeshctl links`: text or a JSON array. */
void links_list(struct proxy *d, struct strbuf *b, int json);

#endif
