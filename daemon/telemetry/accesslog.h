/*
 * Access log: one JSON line per proxied TCP connection (when it closes) and
 * per HTTP request (when its response head is seen, or when it was denied or
 * never answered).  Off by default; "stderr" or a file (opened O_APPEND, so
 * logrotate's copytruncate and concurrent readers work).  Lines collect in a
 * buffer that is written once per event-loop turn: one write(2) for many
 * requests, and never a partial line.  Request bodies, query strings and
 * headers other than the authority are never logged.
 */
#ifndef LDMESH_ACCESSLOG_H
#define LDMESH_ACCESSLOG_H

#include <pthread.h>
#include <stdint.h>

#include "util/strbuf.h"

#include <stdint.h>

#include "ldmesh/proto.h"

struct accesslog {
	int fd; /* -1: off */
	int owned; /* fd is a file we opened */
	char *where; /* owned: "stderr" or the path, NULL when off */
	struct strbuf buf;
	uint64_t lines, dropped;
	/* borrowed, NULL: none; held for the write of a flush when several
	 * event loops each have a log (ldmeshd's workers) */
	pthread_mutex_t *write_lock;
};

/* What a line says about the connection, borrowed for the call: the
 * caller fills it, so the log does not depend on a connection's layout. */
struct accesslog_conn {
	int inbound;
	const struct ldm_addr *peer, *local;
	const char *peer_id; /* "" without one */
	int tls;
	/* for the closing "tcp" line */
	int64_t started_ms;
	uint64_t bytes_in, bytes_out; /* network -> app, app -> network */
	const char *rule; /* the connection-level rule, "" for none */
	int error; /* closed because of an error */
};

/* One HTTP request's fields, borrowed for the call. */
struct accesslog_http {
	const char *authority, *method, *path, *rule, *error;
	const char *upgrade; /* "h2c-stripped", or NULL (no field) */
	int status; /* 0: no response */
	double latency_ms;
};

void accesslog_init(struct accesslog *a);
/*
 * Points the log at where ("stderr", a path, or NULL for off), reopening
 * only when it changed.  Returns 0, or -errno with a sentence in err and
 * the old destination kept.
 */
int accesslog_configure(struct accesslog *a, const char *where, char *err, size_t errlen);
void accesslog_fini(struct accesslog *a);

static inline int accesslog_on(const struct accesslog *a)
{
	return a->fd >= 0;
}

void accesslog_http(struct accesslog *a, const struct accesslog_conn *c,
		    const struct accesslog_http *r);
/* At close. */
void accesslog_tcp(struct accesslog *a, const struct accesslog_conn *c, int64_t now_ms,
		   uint64_t requests);

/* Writes what collected; called once per loop turn. */
void accesslog_flush(struct accesslog *a);

#endif
