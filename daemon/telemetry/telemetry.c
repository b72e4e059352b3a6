/*
 * Golden-metric series, their Prometheus text and `ldmeshctl stats`; see
 * telemetry.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/addr.h"
#include "util/clock.h"
#include "util/strbuf.h"
#include "telemetry/telemetry.h"

/* At most this many status codes per series; more collapse into the last. */
#define TEL_MAX_STATUS 32

int tel_init(struct telemetry *t, int max_series)
{
	memset(t, 0, sizeof(*t));
	t->tab_mask = 1023;
	t->tab = calloc(t->tab_mask + 1, sizeof(*t->tab));
	if (!t->tab) {
		return -ENOMEM;
	}
	t->tail = &t->head;
	t->max = (uint32_t)max_series;
	t->started_ms = now_ms();
	return 0;
}

void tel_set_max(struct telemetry *t, int max_series)
{
	t->max = (uint32_t)max_series;
}

static void series_free(struct tel_series *s)
{
	free(s->target_addr);
	free(s->peer_id);
	free(s->authority);
	free(s->status);
	free(s);
}

void tel_fini(struct telemetry *t)
{
	struct tel_series *s, *next;

	for (s = t->head; s; s = next) {
		next = s->next;
		series_free(s);
	}
	free(t->tab);
	memset(t, 0, sizeof(*t));
}

static uint32_t fnv(uint32_t h, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		h = (h ^ (uint8_t)s[i]) * 16777619u;
	}
	return h;
}

static uint32_t key_hash(int dir, int tls, int http, const char *target, const char *peer,
			 const char *authority)
{
	char k[3] = {(char)dir, (char)tls, (char)http};
	uint32_t h = fnv(2166136261u, k, sizeof(k));

	h = fnv(h, target, strlen(target) + 1);
	h = fnv(h, peer, strlen(peer) + 1);
	return fnv(h, authority, strlen(authority) + 1);
}

static struct tel_series *series_new(int dir, int tls, int http, uint16_t port, const char *target,
				     const char *peer, const char *authority)
{
	struct tel_series *s = calloc(1, sizeof(*s));

	if (!s) {
		return NULL;
	}
	s->dir = (uint8_t)dir;
	s->tls = (uint8_t)tls;
	s->http = (uint8_t)http;
	s->port = port;
	s->target_addr = strdup(target);
	s->peer_id = strdup(peer);
	s->authority = strdup(authority);
	if (!s->target_addr || !s->peer_id || !s->authority) {
		series_free(s);
		return NULL;
	}
	return s;
}

static struct tel_series *lookup(struct telemetry *t, int dir, int tls, int http, uint16_t port,
				 const char *target, const char *peer, const char *authority)
{
	uint32_t h = key_hash(dir, tls, http, target, peer, authority);
	struct tel_series *s;

	for (s = t->tab[h & t->tab_mask]; s; s = s->hash_next) {
		if (s->hash == h && s->dir == dir && s->tls == tls && s->http == http &&
		    !strcmp(s->target_addr, target) && !strcmp(s->peer_id, peer) &&
		    !strcmp(s->authority, authority)) {
			return s;
		}
	}
	if (t->n >= t->max) {
		/* Bounded cardinality: past max_series, one shared series. */
		struct tel_series **o = &t->overflow[dir][http];
		t->overflow_total++;
		if (!*o) {
			/* Rendered with the rest; not in the hash, not counted in n. */
			*o = series_new(dir, TEL_TLS_TRUE, http, 0, "overflow", "",
					http ? "overflow" : "");
			if (*o) {
				*t->tail = *o;
				t->tail = &(*o)->next;
			}
		}
		return *o;
	}
	s = series_new(dir, tls, http, port, target, peer, authority);
	if (!s) {
		return NULL;
	}
	s->hash = h;
	s->hash_next = t->tab[h & t->tab_mask];
	t->tab[h & t->tab_mask] = s;
	*t->tail = s;
	t->tail = &s->next;
	t->n++;
	return s;
}

struct tel_series *tel_tcp_series(struct telemetry *t, enum tel_dir dir,
				  const struct ldm_addr *target, enum tel_tls tls,
				  const char *peer_id)
{
	char addr[80];

	addr_format(target, addr, sizeof(addr));
	return lookup(t, dir, tls, 0, ntohs(target->port), addr, peer_id ? peer_id : "", "");
}

struct tel_series *tel_http_series(struct telemetry *t, const struct tel_series *tcp,
				   const char *authority)
{
	return lookup(t, tcp->dir, tcp->tls, 1, tcp->port, tcp->target_addr, tcp->peer_id,
		      authority ? authority : "");
}

void tel_tcp_open(struct tel_series *s)
{
	s->tcp_open++;
	s->tcp_live++;
}

void tel_tcp_close(struct tel_series *s, int failed)
{
	if (failed) {
		s->tcp_close_fail++;
	} else {
		s->tcp_close_ok++;
	}
	s->tcp_live--;
}

static struct tel_status *status_of(struct tel_series *s, int code, int grpc)
{
	uint16_t i;

	for (i = 0; i < s->n_status; i++) {
		if (s->status[i].code == code && s->status[i].grpc == grpc) {
			return &s->status[i];
		}
	}
	if (s->n_status == TEL_MAX_STATUS) {
		return &s->status[s->n_status - 1];
	}
	if (s->n_status == s->cap_status) {
		uint16_t cap = s->cap_status ? (uint16_t)(s->cap_status * 2) : 4;
		struct tel_status *p = realloc(s->status, sizeof(*p) * cap);
		if (!p) {
			return s->n_status ? &s->status[s->n_status - 1] : NULL;
		}
		s->status = p;
		s->cap_status = cap;
	}
	memset(&s->status[s->n_status], 0, sizeof(s->status[0]));
	s->status[s->n_status].code = (uint16_t)code;
	s->status[s->n_status].grpc = (int16_t)grpc;
	return &s->status[s->n_status++];
}

int64_t tel_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void tel_response(struct tel_series *s, int code, int64_t latency_us)
{
	tel_response_grpc(s, code, -1, latency_us);
}

void tel_response_grpc(struct tel_series *s, int code, int grpc, int64_t latency_us)
{
	struct tel_status *st = status_of(s, code, grpc < 0 ? -1 : grpc);
	int i;

	if (!st) {
		return;
	}
	if (latency_us < 0) {
		latency_us = 0;
	}
	st->count++;
	st->sum_us += (uint64_t)latency_us;
	for (i = 0;
	     i < LDM_LATENCY_NBOUNDS && (uint64_t)latency_us > ldm_latency_bounds_ms[i] * 1000ull;
	     i++) {
	}
	st->buckets[i]++;
}

/* ---- Prometheus text ----------------------------------------------------- */

static const char *const dir_names[] = {"inbound", "outbound"};

/* A label value: \ and " escaped; bytes outside printable ASCII (a Host
 * header may carry obs-text) become '?', so the text stays valid UTF-8. */
static void label(struct strbuf *b, const char *name, const char *v)
{
	sb_printf(b, ",%s=\"", name);
	while (*v) {
		size_t n = 0;

		while (v[n] && v[n] != '\\' && v[n] != '"' && (unsigned char)v[n] >= 0x20 &&
		       (unsigned char)v[n] < 0x7f) {
			n++;
		}
		sb_put(b, v, n);
		v += n;
		if (!*v) {
			break;
		}
		if (*v == '\\' || *v == '"') {
			sb_put(b, "\\", 1);
			sb_put(b, v, 1);
		} else {
			sb_put(b, "?", 1);
		}
		v++;
	}
	sb_put(b, "\"", 1);
}

static void tls_labels(struct strbuf *b, const struct tel_series *s)
{
	static const char *const reasons[] = {
		[TEL_TLS_NOT_PROVIDED] = "not_provided_by_remote",
		[TEL_TLS_NO_MESH] = "not_provided_by_service_discovery",
		[TEL_TLS_DISABLED] = "disabled",
		[TEL_TLS_LOOPBACK] = "loopback",
	};

	if (s->tls == TEL_TLS_TRUE) {
		label(b, "tls", "true");
		if (s->peer_id[0]) {
			label(b, s->dir == TEL_INBOUND ? "client_id" : "server_id", s->peer_id);
		}
		return;
	}
	label(b, "tls", "no_identity");
	label(b, "no_tls_reason", reasons[s->tls]);
}

/* {direction=..,[peer|authority],target_addr=..,tls=..} without the brace. */
static void labels(struct strbuf *b, const struct tel_series *s)
{
	sb_printf(b, "{direction=\"%s\"", dir_names[s->dir]);
	if (s->http) {
		label(b, "authority", s->authority);
	} else {
		label(b, "peer", s->dir == TEL_INBOUND ? "src" : "dst");
	}
	label(b, "target_addr", s->target_addr);
	tls_labels(b, s);
}

static void help(struct strbuf *b, const char *name, const char *type, const char *text)
{
	sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* "name{labels of s<extra>} ", the value follows. */
static void sample(struct strbuf *b, const char *name, const struct tel_series *s,
		   const char *extra)
{
	sb_printf(b, "%s", name);
	labels(b, s);
	sb_printf(b, "%s} ", extra);
}

static void status_labels(char *buf, size_t len, const struct tel_status *st)
{
	if (st->code && st->grpc >= 0) {
		snprintf(buf, len, ",status_code=\"%u\",grpc_status=\"%d\",classification=\"%s\"",
			 st->code, st->grpc, tel_status_success(st) ? "success" : "failure");
	} else if (st->code) {
		snprintf(buf, len, ",status_code=\"%u\",classification=\"%s\"", st->code,
			 tel_success(st->code) ? "success" : "failure");
	} else {
		snprintf(buf, len, ",classification=\"failure\",error=\"no_response\"");
	}
}

static void latency(struct strbuf *b, const struct tel_series *s, const struct tel_status *st,
		    const char *sl)
{
	char extra[96];
	uint64_t cum = 0;
	int k;

	for (k = 0; k < LDM_LATENCY_NBUCKETS; k++) {
		cum += st->buckets[k];
		if (k < LDM_LATENCY_NBOUNDS) {
			snprintf(extra, sizeof(extra), "%s,le=\"%u\"", sl,
				 ldm_latency_bounds_ms[k]);
		} else {
			snprintf(extra, sizeof(extra), "%s,le=\"+Inf\"", sl);
		}
		sample(b, "response_latency_ms_bucket", s, extra);
		sb_printf(b, "%" PRIu64 "\n", cum);
	}
	sample(b, "response_latency_ms_sum", s, sl);
	sb_printf(b, "%" PRIu64 ".%03u\n", st->sum_us / 1000, (unsigned)(st->sum_us % 1000));
	sample(b, "response_latency_ms_count", s, sl);
	sb_printf(b, "%" PRIu64 "\n", st->count);
}

/* The TCP counters, one family each. */
static const struct {
	const char *name, *help;
	size_t off; /* of a uint64_t in struct tel_series */
} tcp_counters[] = {
	{"tcp_open_total", "Total count of opened connections.",
	 offsetof(struct tel_series, tcp_open)},
	{"tcp_read_bytes_total", "Total count of bytes read from peers.",
	 offsetof(struct tel_series, tcp_read)},
	{"tcp_write_bytes_total", "Total count of bytes written to peers.",
	 offsetof(struct tel_series, tcp_write)},
};

void tel_render(const struct telemetry *t, struct strbuf *b)
{
	const struct tel_series *s;
	char sl[80];
	size_t f;
	uint16_t i;

	help(b, "request_total", "counter", "Total count of HTTP requests.");
	for (s = t->head; s; s = s->next) {
		if (s->http) {
			sample(b, "request_total", s, "");
			sb_printf(b, "%" PRIu64 "\n", s->requests);
		}
	}
	help(b, "response_total", "counter", "Total count of HTTP responses.");
	for (s = t->head; s; s = s->next) {
		for (i = 0; s->http && i < s->n_status; i++) {
			status_labels(sl, sizeof(sl), &s->status[i]);
			sample(b, "response_total", s, sl);
			sb_printf(b, "%" PRIu64 "\n", s->status[i].count);
		}
	}
	help(b, "response_latency_ms", "histogram",
	     "Elapsed times between a request's headers being received and its response's "
	     "headers being sent, in milliseconds.");
	for (s = t->head; s; s = s->next) {
		for (i = 0; s->http && i < s->n_status; i++) {
			if (s->status[i].code) { /* no response: no latency */
				status_labels(sl, sizeof(sl), &s->status[i]);
				latency(b, s, &s->status[i], sl);
			}
		}
	}
	for (f = 0; f < ARRAY_SIZE(tcp_counters); f++) {
		help(b, tcp_counters[f].name, "counter", tcp_counters[f].help);
		for (s = t->head; s; s = s->next) {
			if (!s->http) {
				sample(b, tcp_counters[f].name, s, "");
				sb_printf(b, "%" PRIu64 "\n",
					  *(const uint64_t *)(const void *)((const char *)s +
									    tcp_counters[f].off));
			}
		}
	}
	help(b, "tcp_close_total", "counter", "Total count of closed connections.");
	for (s = t->head; s; s = s->next) {
		if (!s->http) {
			sample(b, "tcp_close_total", s, ",classification=\"success\"");
			sb_printf(b, "%" PRIu64 "\n", s->tcp_close_ok);
		}
		if (!s->http && s->tcp_close_fail) {
			sample(b, "tcp_close_total", s, ",classification=\"failure\"");
			sb_printf(b, "%" PRIu64 "\n", s->tcp_close_fail);
		}
	}
	help(b, "tcp_open_connections", "gauge", "Number of currently-open connections.");
	for (s = t->head; s; s = s->next) {
		if (!s->http) {
			sample(b, "tcp_open_connections", s, "");
			sb_printf(b, "%" PRId64 "\n", s->tcp_live);
		}
	}
	help(b, "ldmesh_metrics_series", "gauge",
	     "Label sets held for the series above (bounded by telemetry.max_series).");
	sb_printf(b, "ldmesh_metrics_series %" PRIu32 "\n", t->n);
	help(b, "ldmesh_metrics_series_overflow_total", "counter",
	     "Updates that went to the shared overflow series because max_series was reached.");
	sb_printf(b, "ldmesh_metrics_series_overflow_total %" PRIu64 "\n", t->overflow_total);
}

/* ---- ldmeshctl stats ----------------------------------------------------- */

struct row {
	uint8_t dir;
	uint16_t port;
	const char *peer;
	uint64_t requests, success, failure, conns, bytes_in, bytes_out;
	int64_t live;
	uint64_t buckets[LDM_LATENCY_NBUCKETS];
};

static void add_series(struct row *r, const struct tel_series *s)
{
	uint16_t i;
	int k;

	r->requests += s->requests;
	for (i = 0; i < s->n_status; i++) {
		const struct tel_status *st = &s->status[i];
		if (tel_status_success(st)) {
			r->success += st->count;
		} else {
			r->failure += st->count;
		}
		for (k = 0; k < LDM_LATENCY_NBUCKETS; k++) {
			r->buckets[k] += st->buckets[k];
		}
	}
	r->conns += s->tcp_open;
	r->live += s->tcp_live;
	r->bytes_in += s->tcp_read;
	r->bytes_out += s->tcp_write;
}

static struct row *find_row(struct row **rows, size_t *n, size_t *cap, const struct tel_series *s)
{
	size_t i;

	for (i = 0; i < *n; i++) {
		struct row *r = &(*rows)[i];
		if (r->dir == s->dir && r->port == s->port && !strcmp(r->peer, s->peer_id)) {
			return r;
		}
	}
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct row *p = realloc(*rows, nc * sizeof(*p));
		if (!p) {
			return NULL;
		}
		*rows = p;
		*cap = nc;
	}
	memset(&(*rows)[*n], 0, sizeof(**rows));
	(*rows)[*n].dir = s->dir;
	(*rows)[*n].port = s->port;
	(*rows)[*n].peer = s->peer_id;
	return &(*rows)[(*n)++];
}

static void stats_raw(struct strbuf *b, const struct row *r)
{
	int k;

	sb_printf(b,
		  "%s %u %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRId64 " %" PRIu64
		  " %" PRIu64,
		  dir_names[r->dir], r->port, r->requests, r->success, r->failure, r->conns,
		  r->live, r->bytes_in, r->bytes_out);
	for (k = 0; k < LDM_LATENCY_NBUCKETS; k++) {
		sb_printf(b, " %" PRIu64, r->buckets[k]);
	}
	/* SPIFFE IDs hold no spaces (spiffe.c checks every byte). */
	sb_printf(b, " %s\n", r->peer[0] ? r->peer : "-");
}

static void stats_json(struct strbuf *b, const struct row *r, double up, int first)
{
	uint64_t done = r->success + r->failure, cum = 0;
	double p50 = ldm_latency_quantile(r->buckets, 0.5),
	       p99 = ldm_latency_quantile(r->buckets, 0.99);
	int k;

	sb_printf(b, "%s{\"direction\":\"%s\",\"peer_id\":", first ? "" : ",", dir_names[r->dir]);
	sb_json_str(b, r->peer);
	sb_printf(b,
		  ",\"port\":%u,\"requests\":%" PRIu64 ",\"success\":%" PRIu64
		  ",\"failure\":%" PRIu64 ",\"success_rate\":",
		  r->port, r->requests, r->success, r->failure);
	if (done) {
		sb_printf(b, "%.4f", (double)r->success / (double)done);
	} else {
		sb_printf(b, "null");
	}
	sb_printf(b, ",\"rps\":%.3f,\"p50_ms\":", (double)r->requests / up);
	sb_printf(b, p50 < 0 ? "null" : "%.3f", p50);
	sb_printf(b, ",\"p99_ms\":");
	sb_printf(b, p99 < 0 ? "null" : "%.3f", p99);
	sb_printf(b,
		  ",\"tcp_opened\":%" PRIu64 ",\"tcp_open\":%" PRId64 ",\"bytes_in\":%" PRIu64
		  ",\"bytes_out\":%" PRIu64 ",\"latency_buckets\":[",
		  r->conns, r->live, r->bytes_in, r->bytes_out);
	for (k = 0; k < LDM_LATENCY_NBUCKETS; k++) {
		cum += r->buckets[k];
		sb_printf(b, "%s%" PRIu64, k ? "," : "", cum);
	}
	sb_printf(b, "]}");
}

static void stats_text(struct strbuf *b, const struct row *r, double up)
{
	uint64_t done = r->success + r->failure;
	double p50 = ldm_latency_quantile(r->buckets, 0.5),
	       p99 = ldm_latency_quantile(r->buckets, 0.99);
	char sr[16] = "-", q50[16] = "-", q99[16] = "-";

	if (done) {
		snprintf(sr, sizeof(sr), "%.2f%%", 100.0 * (double)r->success / (double)done);
	}
	if (p50 >= 0) {
		snprintf(q50, sizeof(q50), "%.1f", p50);
		snprintf(q99, sizeof(q99), "%.1f", p99);
	}
	sb_printf(b,
		  "%-9s %-44s %5u %9" PRIu64 " %8s %8.1f %8s %8s %7" PRIu64 " %5" PRId64
		  " %11" PRIu64 " %11" PRIu64 "\n",
		  dir_names[r->dir], r->peer[0] ? r->peer : "(no identity)", r->port, r->requests,
		  sr, (double)r->requests / up, q50, q99, r->conns, r->live, r->bytes_in,
		  r->bytes_out);
}

void tel_stats(const struct telemetry *t, struct strbuf *b, enum tel_format f, int64_t now)
{
	const struct tel_series *s;
	struct row *rows = NULL, *r;
	size_t n = 0, cap = 0, i;
	double up = (double)(now - t->started_ms) / 1000.0;

	for (s = t->head; s; s = s->next) { /* the overflow series included */
		r = find_row(&rows, &n, &cap, s);
		if (r) {
			add_series(r, s);
		}
	}
	if (up < 0.001) {
		up = 0.001;
	}
	if (f == TEL_JSON) {
		sb_printf(b, "{\"uptime_s\":%.3f,\"bucket_bounds_ms\":[", up);
		for (i = 0; i < LDM_LATENCY_NBOUNDS; i++) {
			sb_printf(b, "%s%u", i ? "," : "", ldm_latency_bounds_ms[i]);
		}
		sb_printf(b, "],\"rows\":[");
	} else if (f == TEL_TEXT) {
		sb_printf(b, "%-9s %-44s %5s %9s %8s %8s %8s %8s %7s %5s %11s %11s\n", "DIRECTION",
			  "PEER", "PORT", "REQUESTS", "SUCCESS", "RPS", "P50_MS", "P99_MS", "CONNS",
			  "OPEN", "BYTES_IN", "BYTES_OUT");
	}
	for (i = 0; i < n; i++) {
		if (f == TEL_JSON) {
			stats_json(b, &rows[i], up, i == 0);
		} else if (f == TEL_TEXT) {
			stats_text(b, &rows[i], up);
		} else {
			stats_raw(b, &rows[i]);
		}
	}
	if (f == TEL_JSON) {
		sb_printf(b, "]}\n");
	} else if (f == TEL_TEXT && !n) {
		sb_printf(b, "(no traffic yet)\n");
	}
	free(rows);
}
