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
/* At most this many ways to end (clean, each errno) per TCP series. */
#define TEL_MAX_CLOSE 16

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
	free(s->route);
	free(s->status);
	free(s->closes);
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

/* What identifies a series: every label it renders. */
struct key {
	int dir, tls, kind;
	uint16_t port;
	const char *target, *peer, *authority, *route;
};

static uint32_t key_hash(const struct key *k)
{
	char b[3] = {(char)k->dir, (char)k->tls, (char)k->kind};
	uint32_t h = fnv(2166136261u, b, sizeof(b));

	h = fnv(h, k->target, strlen(k->target) + 1);
	h = fnv(h, k->peer, strlen(k->peer) + 1);
	h = fnv(h, k->authority, strlen(k->authority) + 1);
	return fnv(h, k->route, strlen(k->route) + 1);
}

static struct tel_series *series_new(const struct key *k)
{
	struct tel_series *s = calloc(1, sizeof(*s));

	if (!s) {
		return NULL;
	}
	s->dir = (uint8_t)k->dir;
	s->tls = (uint8_t)k->tls;
	s->kind = (uint8_t)k->kind;
	s->port = k->port;
	s->target_addr = strdup(k->target);
	s->peer_id = strdup(k->peer);
	s->authority = strdup(k->authority);
	s->route = strdup(k->route);
	if (!s->target_addr || !s->peer_id || !s->authority || !s->route) {
		series_free(s);
		return NULL;
	}
	return s;
}

/* The one series of a direction and kind that label sets past max_series
 * share: rendered with the rest, not in the hash, not counted in n. */
static struct tel_series *overflow_series(struct telemetry *t, int dir, int kind)
{
	struct tel_series **o = &t->overflow[dir][kind];

	if (!*o) {
		/* Rendered with the rest; not in the hash, not counted in n. */
		struct key ok = {
			.dir = dir,
			.tls = TEL_TLS_TRUE,
			.kind = kind,
			.target = "overflow",
			.peer = "",
			.authority = kind == TEL_TCP ? "" : "overflow",
			.route = kind >= TEL_ROUTE ? "overflow" : "",
		};
		*o = series_new(&ok);
		if (*o) {
			*t->tail = *o;
			t->tail = &(*o)->next;
		}
	}
	return *o;
}

static struct tel_series *lookup(struct telemetry *t, const struct key *k)
{
	uint32_t h = key_hash(k);
	struct tel_series *s;

	for (s = t->tab[h & t->tab_mask]; s; s = s->hash_next) {
		if (s->hash == h && s->dir == k->dir && s->tls == k->tls && s->kind == k->kind &&
		    !strcmp(s->target_addr, k->target) && !strcmp(s->peer_id, k->peer) &&
		    !strcmp(s->authority, k->authority) && !strcmp(s->route, k->route)) {
			return s;
		}
	}
	if (t->n >= t->max) {
		/* Bounded cardinality: past max_series, one shared series. */
		t->overflow_total++;
		return overflow_series(t, k->dir, k->kind);
	}
	s = series_new(k);
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
	struct key k = {.dir = dir, .tls = tls, .kind = TEL_TCP, .port = ntohs(target->port)};

	addr_format(target, addr, sizeof(addr));
	k.target = addr;
	k.peer = peer_id ? peer_id : "";
	k.authority = k.route = "";
	return lookup(t, &k);
}

struct tel_series *tel_http_series(struct telemetry *t, const struct tel_series *tcp,
				   const char *authority)
{
	struct key k = {
		.dir = tcp->dir,
		.tls = tcp->tls,
		.kind = TEL_HTTP,
		.port = tcp->port,
		.target = tcp->target_addr,
		.peer = tcp->peer_id,
		.authority = authority ? authority : "",
		.route = "",
	};

	return lookup(t, &k);
}

struct tel_series *tel_route_series(struct telemetry *t, enum tel_dir dir, const char *dst,
				    const char *rule)
{
	/* The route labels are direction, dst and rt_route only (Linkerd's
	 * RouteLabels): no address or identity in the key. */
	struct key k = {.dir = dir, .tls = TEL_TLS_TRUE, .kind = TEL_ROUTE};

	k.target = k.peer = "";
	k.authority = dst;
	k.route = rule;
	return lookup(t, &k);
}

void tel_authz(struct telemetry *t, int http, const struct ldm_addr *target, enum tel_tls tls,
	       const char *peer_id, const char *rule, int allowed)
{
	char addr[80];
	struct key k = {
		.dir = TEL_INBOUND,
		.tls = tls,
		.kind = http ? TEL_AUTHZ_HTTP : TEL_AUTHZ_TCP,
		.port = ntohs(target->port),
	};
	struct tel_series *s;

	addr_format(target, addr, sizeof(addr));
	k.target = addr;
	k.peer = peer_id ? peer_id : "";
	k.authority = "";
	k.route = rule;
	s = lookup(t, &k);
	if (!s) {
		return;
	}
	if (allowed) {
		s->allowed++;
	} else {
		s->denied++;
	}
}

void tel_tcp_open(struct tel_series *s)
{
	s->tcp_open++;
	s->tcp_live++;
}

int tel_bucket_us(uint64_t us)
{
	int i;

	for (i = 0; i < LDM_LATENCY_NBOUNDS && us > ldm_latency_bounds_ms[i] * 1000ull; i++) {
	}
	return i;
}

/*
 * The entry of a small array (*arr, n of cap, each size bytes) whose first
 * keylen bytes equal key: added, zeroed but for the key, when absent.  Past
 * max entries, or out of memory, the last one takes it (NULL when there is
 * none).
 */
static void *entry_of(void **arr, uint16_t *n, uint16_t *cap, size_t size, uint16_t max,
		      const void *key, size_t keylen)
{
	char *base = *arr, *e;
	uint16_t i;

	for (i = 0; i < *n; i++) {
		if (!memcmp(base + i * size, key, keylen)) {
			return base + i * size;
		}
	}
	if (*n == max) {
		return base + (*n - 1) * size;
	}
	if (*n == *cap) {
		uint16_t nc = *cap ? (uint16_t)(*cap * 2) : 2;
		char *p = realloc(base, size * nc);
		if (!p) {
			return *n ? base + (*n - 1) * size : NULL;
		}
		*arr = base = p;
		*cap = nc;
	}
	e = base + (*n)++ * size;
	memset(e, 0, size);
	memcpy(e, key, keylen);
	return e;
}

/* One observation v of a histogram whose unit is us_per_unit us. */
static void observe(uint64_t *count, uint64_t *sum, uint64_t *buckets, int64_t v,
		    uint64_t us_per_unit)
{
	if (v < 0) {
		v = 0; /* a clock step */
	}
	(*count)++;
	*sum += (uint64_t)v;
	buckets[tel_bucket_us((uint64_t)v * us_per_unit)]++;
}

void tel_tcp_close(struct tel_series *s, int failed, int err, int64_t duration_ms)
{
	/* An errno is a failure whatever the caller knew about it. */
	struct tel_close key = {.err = err, .failed = failed || err};
	struct tel_close *e = entry_of((void **)&s->closes, &s->n_close, &s->cap_close, sizeof(*e),
				       TEL_MAX_CLOSE, &key, offsetof(struct tel_close, count));

	s->tcp_live--;
	if (e) {
		observe(&e->count, &e->sum_ms, e->buckets, duration_ms, 1000);
	}
}

const char *tel_errno_name(int err, char *buf, size_t len)
{
	const char *n = err > 0 ? strerrorname_np(err) : NULL;

	if (!err) {
		snprintf(buf, len, "%s", "");
	} else if (n) {
		snprintf(buf, len, "%s", n);
	} else {
		snprintf(buf, len, "%d", err); /* as Linkerd does for unknown codes */
	}
	return buf;
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
	struct tel_status key;
	struct tel_status *st;

	memset(&key, 0, sizeof(key));
	key.code = (uint16_t)code;
	key.grpc = (int16_t)(grpc < 0 ? -1 : grpc);
	st = entry_of((void **)&s->status, &s->n_status, &s->cap_status, sizeof(*st),
		      TEL_MAX_STATUS, &key, offsetof(struct tel_status, grpc) + sizeof(key.grpc));

	if (st) {
		observe(&st->count, &st->sum_us, st->buckets, latency_us, 1);
	}
}

/* ---- merging the event loops' series ---------------------------------------- */

int tel_merge(struct telemetry *dst, const struct telemetry *src)
{
	const struct tel_series *s;
	uint16_t i;
	int k;

	dst->overflow_total += src->overflow_total;
	if (src->started_ms && (!dst->started_ms || src->started_ms < dst->started_ms)) {
		dst->started_ms = src->started_ms;
	}
	for (s = src->head; s; s = s->next) {
		struct key key = {
			.dir = s->dir,
			.tls = s->tls,
			.kind = s->kind,
			.port = s->port,
			.target = s->target_addr,
			.peer = s->peer_id,
			.authority = s->authority,
			.route = s->route,
		};
		/* A loop's overflow series goes to dst's, uncounted as there. */
		struct tel_series *d = s == src->overflow[s->dir][s->kind]
					       ? overflow_series(dst, s->dir, s->kind)
					       : lookup(dst, &key);

		if (!d) {
			return -ENOMEM;
		}
		d->tcp_open += s->tcp_open;
		d->tcp_read += s->tcp_read;
		d->tcp_write += s->tcp_write;
		d->tcp_live += s->tcp_live;
		d->requests += s->requests;
		d->allowed += s->allowed;
		d->denied += s->denied;
		for (i = 0; i < s->n_close; i++) {
			const struct tel_close *c = &s->closes[i];
			struct tel_close *e = entry_of((void **)&d->closes, &d->n_close,
						       &d->cap_close, sizeof(*e), TEL_MAX_CLOSE, c,
						       offsetof(struct tel_close, count));
			if (!e) {
				return -ENOMEM;
			}
			e->count += c->count;
			e->sum_ms += c->sum_ms;
			for (k = 0; k < LDM_LATENCY_NBUCKETS; k++) {
				e->buckets[k] += c->buckets[k];
			}
		}
		for (i = 0; i < s->n_status; i++) {
			const struct tel_status *st = &s->status[i];
			struct tel_status key2;
			struct tel_status *e;

			memset(&key2, 0, sizeof(key2));
			key2.code = st->code;
			key2.grpc = st->grpc;
			e = entry_of((void **)&d->status, &d->n_status, &d->cap_status, sizeof(*e),
				     TEL_MAX_STATUS, &key2,
				     offsetof(struct tel_status, grpc) + sizeof(key2.grpc));
			if (!e) {
				return -ENOMEM;
			}
			e->count += st->count;
			e->sum_us += st->sum_us;
			for (k = 0; k < LDM_LATENCY_NBUCKETS; k++) {
				e->buckets[k] += st->buckets[k];
			}
		}
	}
	return 0;
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
		  tel_dir_name(r->dir), r->port, r->requests, r->success, r->failure, r->conns,
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

	sb_printf(b, "%s{\"direction\":\"%s\",\"peer_id\":", first ? "" : ",",
		  tel_dir_name(r->dir));
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
		  tel_dir_name(r->dir), r->peer[0] ? r->peer : "(no identity)", r->port,
		  r->requests, sr, (double)r->requests / up, q50, q99, r->conns, r->live,
		  r->bytes_in, r->bytes_out);
}

void tel_stats(const struct telemetry *t, struct strbuf *b, enum tel_format f, int64_t now)
{
	const struct tel_series *s;
	struct row *rows = NULL, *r;
	size_t n = 0, cap = 0, i;
	double up = (double)(now - t->started_ms) / 1000.0;

	for (s = t->head; s; s = s->next) { /* the overflow series included */
		if (s->kind > TEL_HTTP) {
			continue; /* route and authz series count the same traffic again */
		}
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
