/*
 * JSON-lines access log; see accesslog.h.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "telemetry/accesslog.h"
#include "util/addr.h"
#include "util/log.h"

/* Beyond this much unwritten text (a stuck stderr pipe), lines are dropped
 * and counted rather than held without bound. */
#define ACCESSLOG_MAX_PENDING (4u << 20)

void accesslog_init(struct accesslog *a)
{
	memset(a, 0, sizeof(*a));
	a->fd = -1;
}

static void close_current(struct accesslog *a)
{
	accesslog_flush(a);
	if (a->owned && a->fd >= 0) {
		close(a->fd);
	}
	a->fd = -1;
	a->owned = 0;
	free(a->where);
	a->where = NULL;
}

int accesslog_configure(struct accesslog *a, const char *where, char *err, size_t errlen)
{
	int fd, owned = 0;
	char *copy;

	if ((!where && !a->where) || (where && a->where && !strcmp(where, a->where))) {
		return 0;
	}
	if (!where) {
		close_current(a);
		return 0;
	}
	if (!strcmp(where, "stderr")) {
		fd = STDERR_FILENO;
	} else {
		fd = open(where, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
		if (fd < 0) {
			int e = errno;
			snprintf(err, errlen, "access_log: cannot open %s: %s", where, strerror(e));
			return -e;
		}
		owned = 1;
	}
	copy = strdup(where);
	if (!copy) {
		if (owned) {
			close(fd);
		}
		snprintf(err, errlen, "access_log: out of memory");
		return -ENOMEM;
	}
	close_current(a);
	a->fd = fd;
	a->owned = owned;
	a->where = copy;
	return 0;
}

void accesslog_fini(struct accesslog *a)
{
	close_current(a);
	sb_fini(&a->buf);
}

void accesslog_flush(struct accesslog *a)
{
	size_t off = 0;

	if (!a->buf.len) {
		return;
	}
	if (a->write_lock) {
		/* Several loops' logs share stderr or a file: whole buffers, never
		 * lines of two loops woven together in a pipe. */
		pthread_mutex_lock(a->write_lock);
	}
	while (a->fd >= 0 && off < a->buf.len) {
		ssize_t n = write(a->fd, a->buf.s + off, a->buf.len - off);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			/* EAGAIN on a non-blocking stderr, or a full disk: keep
			 * what is left for the next turn, within a bound. */
			break;
		}
		off += (size_t)n;
	}
	if (a->write_lock) {
		pthread_mutex_unlock(a->write_lock);
	}
	if (off == a->buf.len || a->fd < 0) {
		a->buf.len = 0;
		if (a->buf.s) {
			a->buf.s[0] = '\0';
		}
		return;
	}
	memmove(a->buf.s, a->buf.s + off, a->buf.len - off);
	a->buf.len -= off;
	a->buf.s[a->buf.len] = '\0';
}

/* Starts a line; returns 0 when there is no room (the line is dropped). */
static int line_start(struct accesslog *a, const struct accesslog_conn *c, const char *kind)
{
	struct timeval tv;
	struct tm tm;
	char peer[80];

	if (a->buf.len > ACCESSLOG_MAX_PENDING) {
		a->dropped++;
		return 0;
	}
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	sb_printf(&a->buf,
		  "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\",\"kind\":\"%s\","
		  "\"direction\":\"%s\",\"peer_addr\":",
		  tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		  (int)(tv.tv_usec / 1000), kind, c->inbound ? "inbound" : "outbound");
	addr_format(c->peer, peer, sizeof(peer));
	sb_json_str(&a->buf, peer);
	sb_printf(&a->buf, ",\"peer_id\":");
	if (c->peer_id[0]) {
		sb_json_str(&a->buf, c->peer_id);
	} else {
		sb_printf(&a->buf, "null");
	}
	sb_printf(&a->buf, ",\"target_addr\":");
	addr_format(c->inbound ? c->local : c->peer, peer, sizeof(peer));
	sb_json_str(&a->buf, peer);
	sb_printf(&a->buf, ",\"tls\":%s", c->tls ? "true" : "false");
	return 1;
}

static void opt_str(struct strbuf *b, const char *key, const char *v)
{
	sb_printf(b, ",\"%s\":", key);
	if (v && v[0]) {
		sb_json_str(b, v);
	} else {
		sb_printf(b, "null");
	}
}

void accesslog_http(struct accesslog *a, const struct accesslog_conn *c,
		    const struct accesslog_http *r)
{
	if (!accesslog_on(a) || !line_start(a, c, "http")) {
		return;
	}
	opt_str(&a->buf, "authority", r->authority);
	opt_str(&a->buf, "method", r->method);
	opt_str(&a->buf, "path", r->path);
	if (r->upgrade) {
		opt_str(&a->buf, "upgrade", r->upgrade);
	}
	if (r->status) {
		sb_printf(&a->buf, ",\"status\":%d,\"latency_ms\":%.3f", r->status, r->latency_ms);
	} else {
		sb_printf(&a->buf, ",\"status\":null,\"latency_ms\":null");
	}
	opt_str(&a->buf, "rule", r->rule);
	opt_str(&a->buf, "error", r->error);
	sb_printf(&a->buf, "}\n");
	a->lines++;
}

void accesslog_tcp(struct accesslog *a, const struct accesslog_conn *c, int64_t now,
		   uint64_t requests)
{
	if (!accesslog_on(a) || !line_start(a, c, "tcp")) {
		return;
	}
	sb_printf(&a->buf,
		  ",\"duration_ms\":%" PRId64 ",\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64
		  ",\"requests\":%" PRIu64,
		  now - c->started_ms, c->bytes_in, c->bytes_out, requests);
	opt_str(&a->buf, "rule", c->rule);
	sb_printf(&a->buf, ",\"outcome\":\"%s\"}\n", c->error ? "error" : "ok");
	a->lines++;
}
