/*
 * Golden-metric telemetry with linkerd2-proxy's names and labels, so
 * Linkerd's Grafana dashboards and PromQL work unchanged:
 *
 *   tcp_open_total, tcp_close_total, tcp_open_connections,
 *   tcp_read_bytes_total, tcp_write_bytes_total
 *       {direction, peer, target_addr, tls, [no_tls_reason,] client_id|server_id}
 *   request_total, response_total, response_latency_ms_{bucket,sum,count}
 *       {direction, authority, target_addr, tls, client_id|server_id,
 *        [status_code, classification, error]}
 *   tcp_close_total, tcp_connection_duration_ms_{bucket,sum,count}
 *       {the TCP labels, classification, errno}
 *   route_request_total, route_response_total, route_response_latency_ms
 *       {direction, dst, rt_route, [status_code, classification, error]}
 *   inbound_{http,tcp}_authz_{allow,deny}_total
 *       {target_addr, target_ip, target_port, srv_*, [route_*,] authz_*,
 *        tls, client_id}
 *
 * Policy rules are ldmesh's routes: a route series is one (direction,
 * authority, rule) and an authz series one (target, caller, rule); the
 * label mapping is in docs/observability.md.
 *
 * A series is one label set.  Series live as long as the daemon (pointers to
 * them stay valid) and there are at most max_series of them: beyond that,
 * new label sets of a direction share one series whose target_addr and
 * authority are "overflow", and ldmesh_metrics_series_overflow_total counts
 * how often that happened.  Label values are escaped when rendered.
 */
#ifndef LDMESH_TELEMETRY_H
#define LDMESH_TELEMETRY_H

#include <stddef.h>
#include <stdint.h>

#include "ldmesh/latency.h"
#include "ldmesh/proto.h"

struct strbuf;

enum tel_dir { TEL_INBOUND, TEL_OUTBOUND };

/* Linkerd's direction label. */
static inline const char *tel_dir_name(int dir)
{
	return dir == TEL_INBOUND ? "inbound" : "outbound";
}

/* Responses with one status code (0: none came, a proxy-side failure). */
struct tel_status {
	uint16_t code;
	int16_t grpc; /* gRPC status of the answers, -1 when not gRPC */
	uint64_t count;
	uint64_t sum_us; /* rendered in ms */
	uint64_t buckets[LDM_LATENCY_NBUCKETS]; /* per bucket, not cumulative */
};

/* Why a connection had no mTLS identity (Linkerd's no_tls_reason). */
enum tel_tls {
	TEL_TLS_TRUE,
	TEL_TLS_NOT_PROVIDED, /* inbound: a plaintext client (permissive/disable) */
	TEL_TLS_NO_MESH, /* outbound: destination outside the mesh */
	TEL_TLS_DISABLED, /* outbound: this daemon has no identity */
	TEL_TLS_LOOPBACK, /* both ends inside the pod (podaddr.h) */
};

/* What a series counts; each kind is its own set of families. */
enum tel_kind {
	TEL_TCP, /* tcp_* */
	TEL_HTTP, /* request_total, response_* */
	TEL_ROUTE, /* route_* (authority is the dst label, route the rule) */
	TEL_AUTHZ_TCP, /* inbound_tcp_authz_* (route is the deciding rule) */
	TEL_AUTHZ_HTTP, /* inbound_http_authz_* */
	TEL_NKINDS
};

/* Connections that ended one way: clean, or with one errno. */
struct tel_close {
	int err; /* errno it ended with, 0: none known */
	int failed; /* reset or error (classification="failure") */
	uint64_t count;
	uint64_t sum_ms;
	uint64_t buckets[LDM_LATENCY_NBUCKETS]; /* per bucket, not cumulative */
};

struct tel_series {
	struct tel_series *hash_next, *next; /* hash chain; render order */
	uint32_t hash;
	uint8_t dir; /* enum tel_dir */
	uint8_t tls; /* enum tel_tls */
	uint8_t kind; /* enum tel_kind */
	uint16_t port; /* of target_addr, for `ldmeshctl stats` */
	/* owned; authority "" for TCP, route "" but for route and authz */
	char *target_addr, *peer_id, *authority, *route;

	/* TCP series */
	uint64_t tcp_open;
	uint64_t tcp_read, tcp_write; /* bytes from and to the peer */
	int64_t tcp_live;
	struct tel_close *closes; /* owned, n_close of them */
	uint16_t n_close, cap_close;

	/* HTTP and route series */
	uint64_t requests;
	struct tel_status *status; /* owned, n_status of them */
	uint16_t n_status, cap_status;

	/* authz series */
	uint64_t allowed, denied;
};

struct telemetry {
	struct tel_series **tab; /* owned hash table */
	uint32_t tab_mask;
	struct tel_series *head, **tail;
	uint32_t n, max;
	struct tel_series *overflow[2][TEL_NKINDS]; /* also on the list, not hashed */
	uint64_t overflow_total;
	int64_t started_ms;
};

/* Returns 0 or -ENOMEM.  max_series may change later (tel_set_max). */
int tel_init(struct telemetry *t, int max_series);
void tel_fini(struct telemetry *t);
void tel_set_max(struct telemetry *t, int max_series);

/*
 * The TCP series of a connection: target is the server's address (inbound:
 * the address the client dialled; outbound: the destination), peer_id the
 * other side's SPIFFE ID ("" for none).  Never NULL unless out of memory.
 */
struct tel_series *tel_tcp_series(struct telemetry *t, enum tel_dir dir,
				  const struct ldm_addr *target, enum tel_tls tls,
				  const char *peer_id);

/* The HTTP series for requests with this authority on a connection whose
 * TCP series is tcp.  NULL only when out of memory. */
struct tel_series *tel_http_series(struct telemetry *t, const struct tel_series *tcp,
				   const char *authority);

/*
 * The route series of requests with this authority (the dst label; the
 * target address when empty) that rule decided.  NULL when out of memory.
 */
struct tel_series *tel_route_series(struct telemetry *t, enum tel_dir dir, const char *dst,
				    const char *rule);

/*
 * Counts one inbound authorization decision: a connection (http 0) or an
 * HTTP request (http 1) to target from peer_id, allowed or not, by rule
 * (a policy rule, or a built-in outcome such as "default-allow").
 */
void tel_authz(struct telemetry *t, int http, const struct ldm_addr *target, enum tel_tls tls,
	       const char *peer_id, const char *rule, int allowed);

void tel_tcp_open(struct tel_series *s);
/* A connection of s ended after duration_ms: failed (reset or error) or
 * not, with the errno it ended with (0: none known). */
void tel_tcp_close(struct tel_series *s, int failed, int err, int64_t duration_ms);

/* "ECONNREFUSED" for ECONNREFUSED, the number for an errno without a name,
 * "" for 0: Linkerd's errno label.  Returns buf. */
const char *tel_errno_name(int err, char *buf, size_t len);
/* A response head (code 100..999) or, with code 0, a request that got none;
 * latency from request head to response head. */
void tel_response(struct tel_series *s, int code, int64_t latency_us);
/* The same for a gRPC call: grpc is its grpc-status (0..16), -1 for none. */
void tel_response_grpc(struct tel_series *s, int code, int grpc, int64_t latency_us);

/* Monotonic microseconds, the clock latencies are measured with. */
int64_t tel_now_us(void);

/*
 * Adds every series of src into dst, created there with the same labels
 * when new: how the event loops' own telemetry is rendered as one (each
 * loop counts alone; a scrape merges them into a scratch dst whose
 * max_series leaves room for all).  0 or -ENOMEM.
 */
int tel_merge(struct telemetry *dst, const struct telemetry *src);
/* Prometheus text for every series (render.c). */
void tel_render(const struct telemetry *t, struct strbuf *b);

/* The histogram bucket (ldm_latency_bounds_ms) of a duration in us. */
int tel_bucket_us(uint64_t us);

/*
 * Golden metrics per (direction, peer identity, port) since start, for
 * `ldmeshctl stats`: requests, successes, latency buckets (cumulative in
 * JSON), connections and bytes.  TEL_RAW is the line format `ldmeshctl top`
 * reads every second to take differences:
 *   DIR PORT REQUESTS SUCCESS FAILURE OPENED OPEN BYTES_IN BYTES_OUT
 *   B0 .. B25 (per-bucket counts) PEER_ID|-
 */
enum tel_format { TEL_TEXT, TEL_JSON, TEL_RAW };
void tel_stats(const struct telemetry *t, struct strbuf *b, enum tel_format f, int64_t now_ms);

/* 1 for a response Linkerd classifies as success: not a 5xx, not a proxy
 * error (code 0). */
static inline int tel_success(int code)
{
	return code > 0 && code < 500;
}

/* Linkerd's gRPC classification: success iff grpc-status is 0; a call
 * without one is classified by its HTTP status. */
static inline int tel_status_success(const struct tel_status *st)
{
	return st->grpc >= 0 ? st->grpc == 0 && st->code : tel_success(st->code);
}

#endif
