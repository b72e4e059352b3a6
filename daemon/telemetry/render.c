/*
 * Prometheus text for the series of telemetry.c: every family with
 * linkerd2-proxy's name and label names (telemetry.h lists them; the
 * mapping of ldmesh's policy rules onto Linkerd's server, route and
 * authorization labels is in docs/observability.md).
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "ldmesh/common.h"
#include "policy/policy.h"
#include "telemetry/telemetry.h"
#include "util/strbuf.h"

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

/*
 * target_addr, target_ip and target_port as Linkerd splits them: the IP
 * without the brackets an IPv6 address has in target_addr.
 */
static void target_labels(struct strbuf *b, const char *addr)
{
	const char *colon = strrchr(addr, ':');
	char ip[64];
	size_t n;

	label(b, "target_addr", addr);
	if (!colon) { /* the overflow series */
		label(b, "target_ip", addr);
		label(b, "target_port", "");
		return;
	}
	n = (size_t)(colon - addr);
	if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']') {
		addr++;
		n -= 2;
	}
	snprintf(ip, sizeof(ip), "%.*s", (int)n, addr);
	label(b, "target_ip", ip);
	label(b, "target_port", colon + 1);
}

/*
 * The policy labels of an authz series.  ldmesh has no Server resource: a
 * server is a port (srv_kind "port"), and a rule is both the route and the
 * authorization that decided (kind "policy"), or "default" for a built-in
 * outcome such as default-allow.
 */
static void authz_labels(struct strbuf *b, const struct tel_series *s)
{
	const char *kind = policy_rule_builtin(s->route) ? "default" : "policy";
	char port[8];

	snprintf(port, sizeof(port), "%u", s->port);
	target_labels(b, s->target_addr);
	label(b, "srv_group", "");
	label(b, "srv_kind", "port");
	label(b, "srv_name", port);
	label(b, "srv_port", port);
	if (s->kind == TEL_AUTHZ_HTTP) {
		label(b, "route_group", "");
		label(b, "route_kind", kind);
		label(b, "route_name", s->route);
	}
	label(b, "authz_group", "");
	label(b, "authz_kind", kind);
	label(b, "authz_name", s->route);
	tls_labels(b, s);
}

/* "{labels of s" without the closing brace.  Every family leads with
 * direction (the authz ones too, though Linkerd's have none: always
 * "inbound" there, and a selector on it then works on every family). */
static void labels(struct strbuf *b, const struct tel_series *s)
{
	sb_printf(b, "{direction=\"%s\"", tel_dir_name(s->dir));
	switch (s->kind) {
	case TEL_AUTHZ_TCP:
	case TEL_AUTHZ_HTTP:
		authz_labels(b, s);
		return;
	case TEL_ROUTE:
		label(b, "dst", s->authority);
		label(b, "rt_route", s->route);
		return;
	case TEL_HTTP:
		label(b, "authority", s->authority);
		break;
	default:
		label(b, "peer", s->dir == TEL_INBOUND ? "src" : "dst");
		break;
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

/* name_bucket/_sum/_count of one histogram; sum in us or ms. */
static void histogram(struct strbuf *b, const char *name, const struct tel_series *s,
		      const uint64_t *buckets, uint64_t sum, int sum_in_us, uint64_t count,
		      const char *sl)
{
	char extra[160], metric[64];
	uint64_t cum = 0;
	int k;

	snprintf(metric, sizeof(metric), "%s_bucket", name);
	for (k = 0; k < LDM_LATENCY_NBUCKETS; k++) {
		cum += buckets[k];
		if (k < LDM_LATENCY_NBOUNDS) {
			snprintf(extra, sizeof(extra), "%s,le=\"%u\"", sl,
				 ldm_latency_bounds_ms[k]);
		} else {
			snprintf(extra, sizeof(extra), "%s,le=\"+Inf\"", sl);
		}
		sample(b, metric, s, extra);
		sb_printf(b, "%" PRIu64 "\n", cum);
	}
	snprintf(metric, sizeof(metric), "%s_sum", name);
	sample(b, metric, s, sl);
	if (sum_in_us) {
		sb_printf(b, "%" PRIu64 ".%03u\n", sum / 1000, (unsigned)(sum % 1000));
	} else {
		sb_printf(b, "%" PRIu64 "\n", sum);
	}
	snprintf(metric, sizeof(metric), "%s_count", name);
	sample(b, metric, s, sl);
	sb_printf(b, "%" PRIu64 "\n", count);
}

/*
 * The request families of one kind: request_total, response_total and
 * response_latency_ms for HTTP series, the same with prefix "route_" for
 * route series.
 */
static void request_families(const struct telemetry *t, struct strbuf *b, int kind,
			     const char *prefix)
{
	const struct tel_series *s;
	char name[64], sl[80];
	uint16_t i;

	snprintf(name, sizeof(name), "%srequest_total", prefix);
	help(b, name, "counter", "Total count of HTTP requests.");
	for (s = t->head; s; s = s->next) {
		if (s->kind == kind) {
			sample(b, name, s, "");
			sb_printf(b, "%" PRIu64 "\n", s->requests);
		}
	}
	snprintf(name, sizeof(name), "%sresponse_total", prefix);
	help(b, name, "counter", "Total count of HTTP responses.");
	for (s = t->head; s; s = s->next) {
		for (i = 0; s->kind == kind && i < s->n_status; i++) {
			status_labels(sl, sizeof(sl), &s->status[i]);
			sample(b, name, s, sl);
			sb_printf(b, "%" PRIu64 "\n", s->status[i].count);
		}
	}
	snprintf(name, sizeof(name), "%sresponse_latency_ms", prefix);
	help(b, name, "histogram",
	     "Elapsed times between a request's headers being received and its response's "
	     "headers being sent, in milliseconds.");
	for (s = t->head; s; s = s->next) {
		for (i = 0; s->kind == kind && i < s->n_status; i++) {
			const struct tel_status *st = &s->status[i];
			if (st->code) { /* no response: no latency */
				status_labels(sl, sizeof(sl), st);
				histogram(b, name, s, st->buckets, st->sum_us, 1, st->count, sl);
			}
		}
	}
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

static void close_labels(char *buf, size_t len, const struct tel_close *e)
{
	char err[32];

	snprintf(buf, len, ",classification=\"%s\",errno=\"%s\"", e->failed ? "failure" : "success",
		 tel_errno_name(e->err, err, sizeof(err)));
}

static void tcp_families(const struct telemetry *t, struct strbuf *b)
{
	const struct tel_series *s;
	char sl[96];
	size_t f;
	uint16_t i;

	for (f = 0; f < ARRAY_SIZE(tcp_counters); f++) {
		help(b, tcp_counters[f].name, "counter", tcp_counters[f].help);
		for (s = t->head; s; s = s->next) {
			if (s->kind == TEL_TCP) {
				sample(b, tcp_counters[f].name, s, "");
				sb_printf(b, "%" PRIu64 "\n",
					  *(const uint64_t *)(const void *)((const char *)s +
									    tcp_counters[f].off));
			}
		}
	}
	help(b, "tcp_close_total", "counter", "Total count of closed connections.");
	for (s = t->head; s; s = s->next) {
		for (i = 0; s->kind == TEL_TCP && i < s->n_close; i++) {
			close_labels(sl, sizeof(sl), &s->closes[i]);
			sample(b, "tcp_close_total", s, sl);
			sb_printf(b, "%" PRIu64 "\n", s->closes[i].count);
		}
	}
	help(b, "tcp_connection_duration_ms", "histogram",
	     "Connection lifetimes, in milliseconds.");
	for (s = t->head; s; s = s->next) {
		for (i = 0; s->kind == TEL_TCP && i < s->n_close; i++) {
			const struct tel_close *e = &s->closes[i];
			close_labels(sl, sizeof(sl), e);
			histogram(b, "tcp_connection_duration_ms", s, e->buckets, e->sum_ms, 0,
				  e->count, sl);
		}
	}
	help(b, "tcp_open_connections", "gauge", "Number of currently-open connections.");
	for (s = t->head; s; s = s->next) {
		if (s->kind == TEL_TCP) {
			sample(b, "tcp_open_connections", s, "");
			sb_printf(b, "%" PRId64 "\n", s->tcp_live);
		}
	}
}

/* inbound_{http,tcp}_authz_{allow,deny}_total: a series shows in the
 * families it has counts for. */
static void authz_families(const struct telemetry *t, struct strbuf *b)
{
	static const struct {
		const char *name, *help;
		int kind, allow;
	} fams[] = {
		{"inbound_http_authz_allow_total",
		 "The total number of inbound HTTP requests that were authorized.", TEL_AUTHZ_HTTP,
		 1},
		{"inbound_http_authz_deny_total",
		 "The total number of inbound HTTP requests that were denied.", TEL_AUTHZ_HTTP, 0},
		{"inbound_tcp_authz_allow_total",
		 "The total number of inbound TCP connections that were authorized.", TEL_AUTHZ_TCP,
		 1},
		{"inbound_tcp_authz_deny_total",
		 "The total number of inbound TCP connections that were denied.", TEL_AUTHZ_TCP, 0},
	};
	const struct tel_series *s;
	size_t f;

	for (f = 0; f < ARRAY_SIZE(fams); f++) {
		help(b, fams[f].name, "counter", fams[f].help);
		for (s = t->head; s; s = s->next) {
			uint64_t v = fams[f].allow ? s->allowed : s->denied;
			if (s->kind == fams[f].kind && v) {
				sample(b, fams[f].name, s, "");
				sb_printf(b, "%" PRIu64 "\n", v);
			}
		}
	}
}

void tel_render(const struct telemetry *t, struct strbuf *b)
{
	request_families(t, b, TEL_HTTP, "");
	request_families(t, b, TEL_ROUTE, "route_");
	tcp_families(t, b);
	authz_families(t, b);
	help(b, "ldmesh_metrics_series", "gauge",
	     "Label sets held for the series above (bounded by telemetry.max_series).");
	sb_printf(b, "ldmesh_metrics_series %" PRIu32 "\n", t->n);
	help(b, "ldmesh_metrics_series_overflow_total", "counter",
	     "Updates that went to the shared overflow series because max_series was reached.");
	sb_printf(b, "ldmesh_metrics_series_overflow_total %" PRIu64 "\n", t->overflow_total);
}
