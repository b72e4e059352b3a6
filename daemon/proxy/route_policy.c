/*
 * What a routed request gets, for HTTP/1 (route.c) and HTTP/2 (route_h2.c)
 * alike: its service's or route's timeout and retry policy, which answers
 * are retried, which methods may go again, and what an attempt tells the
 * balancer.
 */
#include <string.h>

#include "proxy/proxy.h"
#include "proxy/route.h"

int route_settings(struct proxy *d, const struct ldm_addr *svc_addr, const char *method,
		   size_t mlen, const char *path, size_t plen, int *timeout_ms,
		   struct config_retry *retry)
{
	const struct config *cfg = d->cfg;
	const struct config_service *cs;
	size_t i, k;
	int root;

	if (balancer_sync(&d->bal, cfg) < 0 ||
	    (root = balancer_service_of(&d->bal, svc_addr)) < 0) {
		return -1;
	}
	cs = &cfg->services[d->bal.svc[root].cfg_index];
	*timeout_ms = cs->timeout_ms;
	*retry = cs->retry;
	for (i = 0; i < cs->n_routes; i++) {
		const struct config_route *r = &cs->routes[i];
		size_t pl = r->path_prefix ? strlen(r->path_prefix) : 0;

		if (r->path_prefix && (!path || plen < pl || memcmp(path, r->path_prefix, pl))) {
			continue;
		}
		for (k = 0; k < r->n_methods; k++) {
			if (method && strlen(r->methods[k]) == mlen &&
			    !memcmp(r->methods[k], method, mlen)) {
				break;
			}
		}
		if (r->n_methods && k == r->n_methods) {
			continue;
		}
		if (r->timeout_ms >= 0) {
			*timeout_ms = r->timeout_ms;
		}
		if (r->retry.set) {
			*retry = r->retry;
		}
		break;
	}
	return root;
}

int route_status_retried(const struct config_retry *r, int status)
{
	int i;

	if ((r->on & RETRY_ON_5XX) && status >= 500 && status <= 599) {
		return 1;
	}
	if ((r->on & RETRY_ON_GATEWAY_ERROR) && status >= 502 && status <= 504) {
		return 1;
	}
	for (i = 0; i < r->n_statuses; i++) {
		if (r->statuses[i] == status) {
			return 1;
		}
	}
	return 0;
}

int route_grpc_retried(const struct config_retry *r, int g)
{
	return (g == 1 && (r->on & RETRY_ON_GRPC_CANCELLED)) ||
	       (g == 4 && (r->on & RETRY_ON_GRPC_DEADLINE_EXCEEDED)) ||
	       (g == 8 && (r->on & RETRY_ON_GRPC_RESOURCE_EXHAUSTED)) ||
	       (g == 13 && (r->on & RETRY_ON_GRPC_INTERNAL)) ||
	       (g == 14 && (r->on & RETRY_ON_GRPC_UNAVAILABLE));
}

int route_idempotent(const char *m, size_t n)
{
	static const char *const ok[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(ok); i++) {
		if (strlen(ok[i]) == n && !memcmp(m, ok[i], n)) {
			return 1;
		}
	}
	return 0;
}

void route_result(struct bal_endpoint *e, enum bal_result res, int64_t latency_us, int64_t now_us)
{
	if (!e) {
		return;
	}
	e->responses_total[res]++;
	if (res == BAL_RES_ERROR) {
		balancer_result(e, 0, latency_us, now_us);
	} else if (res == BAL_RES_TIMEOUT) {
		balancer_observe(e, latency_us, now_us);
	} else {
		/* An answer, a 5xx too: the endpoint is there (accrual counts
		 * requests that get no response, as Linkerd's default does;
		 * retries deal with the 5xx).  latency_us < 0: not a sample. */
		balancer_result(e, 1, latency_us, now_us);
	}
}
