/*
 * Latency histogram buckets of linkerd2-proxy's response_latency_ms, shared
 * by the daemon (telemetry.c) and `ldmeshctl top`, which computes quantiles
 * from bucket differences.
 */
#ifndef LDMESH_LATENCY_H
#define LDMESH_LATENCY_H

#include <stdint.h>

#define LDM_LATENCY_NBOUNDS 25
#define LDM_LATENCY_NBUCKETS (LDM_LATENCY_NBOUNDS + 1) /* the last is +Inf */

static const unsigned ldm_latency_bounds_ms[LDM_LATENCY_NBOUNDS] = {
	1,   2,	  3,	4,    5,    10,	  20,	30,    40,    50,    100,   200,   300,
	400, 500, 1000, 2000, 3000, 4000, 5000, 10000, 20000, 30000, 40000, 50000,
};

/*
 * Quantile q (0..1) from per-bucket (not cumulative) counts, interpolating
 * linearly inside the bucket as Prometheus' histogram_quantile does; the
 * +Inf bucket answers the last bound.  -1 when there are no counts.
 */
static inline double ldm_latency_quantile(const uint64_t *buckets, double q)
{
	uint64_t total = 0, cum = 0;
	double rank;
	int i;

	for (i = 0; i < LDM_LATENCY_NBUCKETS; i++) {
		total += buckets[i];
	}
	if (!total) {
		return -1;
	}
	rank = q * (double)total;
	for (i = 0; i < LDM_LATENCY_NBOUNDS; i++) {
		if (buckets[i] && (double)(cum + buckets[i]) >= rank) {
			double lo = i ? ldm_latency_bounds_ms[i - 1] : 0;
			return lo + (ldm_latency_bounds_ms[i] - lo) *
					    ((rank - (double)cum) / (double)buckets[i]);
		}
		cum += buckets[i];
	}
	return ldm_latency_bounds_ms[LDM_LATENCY_NBOUNDS - 1];
}

#endif
