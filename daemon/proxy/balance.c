/*
 * Per-connection load balancing over a service's endpoints; see balance.h.
 */
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "proxy/balance.h"
#include "util/addr.h"
#include "util/strbuf.h"

void balancer_init(struct balancer *b)
{
	memset(b, 0, sizeof(*b));
	b->rng = 0x9e3779b97f4a7c15ull;
}

static void endpoint_put(struct bal_endpoint *e)
{
	if (e && --e->refs == 0) {
		free(e);
	}
}

static void services_free(struct bal_service *svc, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		for (j = 0; j < svc[i].n; j++) {
			svc[i].ep[j]->detached = 1;
			endpoint_put(svc[i].ep[j]);
		}
		free(svc[i].ep);
		free(svc[i].split_to);
		free(svc[i].dns.name);
		free(svc[i].name);
	}
	free(svc);
}

void balancer_fini(struct balancer *b)
{
	services_free(b->svc, b->n);
	memset(b, 0, sizeof(*b));
}

/* The endpoint addr of the old service called name, to keep its state. */
static struct bal_endpoint *old_endpoint(const struct balancer *b, const char *name,
					 const struct ldm_addr *addr)
{
	size_t i, j;

	for (i = 0; i < b->n; i++) {
		if (strcmp(b->svc[i].name, name)) {
			continue;
		}
		for (j = 0; j < b->svc[i].n; j++) {
			if (!memcmp(&b->svc[i].ep[j]->addr, addr, sizeof(*addr))) {
				return b->svc[i].ep[j];
			}
		}
	}
	return NULL;
}

/* A DNS service takes over what the old one of its name resolved, when
 * it asks the same name for the same port; else it starts with none and
 * asks at once. */
static int dns_carry(const struct balancer *b, const struct config_service *cs,
		     struct bal_service *s)
{
	const struct bal_service *old = NULL;
	size_t i;

	for (i = 0; i < b->n && !old; i++) {
		if (!strcmp(b->svc[i].name, cs->name) && b->svc[i].dns.name &&
		    !strcmp(b->svc[i].dns.name, cs->dns) && b->svc[i].dns.port == cs->dns_port) {
			old = &b->svc[i];
		}
	}
	if (old) {
		s->dns = old->dns;
	}
	if (!(s->dns.name = strdup(cs->dns))) {
		return -ENOMEM;
	}
	s->dns.port = cs->dns_port;
	if (!old || !old->n) {
		return 0;
	}
	if (!(s->ep = calloc(old->n, sizeof(*s->ep)))) {
		return -ENOMEM;
	}
	for (i = 0; i < old->n; i++) {
		old->ep[i]->refs++;
		s->ep[s->n++] = old->ep[i];
	}
	return 0;
}

int balancer_set_endpoints(struct balancer *b, int s, const struct ldm_addr *addrs, size_t n)
{
	struct bal_service *svc = &b->svc[s];
	struct bal_endpoint **ep = NULL;
	size_t i, j, k = 0;
	int changed = 0;

	if (n && !(ep = calloc(n, sizeof(*ep)))) {
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		struct bal_endpoint *e = NULL;

		for (j = 0; j < k && memcmp(&ep[j]->addr, &addrs[i], sizeof(addrs[i])); j++) {
		}
		if (j < k) {
			continue; /* a duplicate (an A record twice, say) */
		}
		for (j = 0; j < svc->n && !e; j++) {
			if (!memcmp(&svc->ep[j]->addr, &addrs[i], sizeof(addrs[i]))) {
				e = svc->ep[j];
			}
		}
		if (e) {
			e->refs++;
		} else if ((e = calloc(1, sizeof(*e)))) {
			e->addr = addrs[i];
			e->refs = 1;
			changed++;
		} else {
			goto err_free;
		}
		ep[k++] = e;
	}
	/* The service lets go of the old list; what stays was taken above. */
	for (i = 0; i < svc->n; i++) {
		for (j = 0; j < k && ep[j] != svc->ep[i]; j++) {
		}
		if (j == k) {
			svc->ep[i]->detached = 1;
			changed++;
		}
		endpoint_put(svc->ep[i]);
	}
	free(svc->ep);
	svc->ep = ep;
	svc->n = k;
	return changed;
err_free:
	for (j = 0; j < k; j++) {
		endpoint_put(ep[j]);
	}
	free(ep);
	return -ENOMEM;
}

int balancer_sync(struct balancer *b, const struct config *cfg)
{
	struct bal_service *svc = NULL;
	size_t i, j, n = 0;

	if (b->cfg == cfg && b->cfg_generation == cfg->generation) {
		return 0;
	}
	/* Every service, in config order: one without addresses may still be
	 * where another's split goes. */
	if (cfg->n_services && !(svc = calloc(cfg->n_services, sizeof(*svc)))) {
		return -ENOMEM;
	}
	for (i = 0; i < cfg->n_services; i++) {
		const struct config_service *cs = &cfg->services[i];
		struct bal_service *s = &svc[n++];

		s->cfg_index = i;
		if (cs->n_splits && !(s->split_to = calloc(cs->n_splits, sizeof(int)))) {
			goto fail;
		}
		for (j = 0; j < cs->n_splits; j++) {
			size_t k;

			for (k = 0; k < cfg->n_services &&
				    strcmp(cfg->services[k].name, cs->splits[j].service);
			     k++) {
			}
			s->split_to[s->n_split++] = (int)k; /* the config checked it exists */
		}
		s->name = strdup(cs->name);
		if (!s->name) {
			goto fail;
		}
		for (j = 0; j < b->n; j++) {
			if (!strcmp(b->svc[j].name, cs->name)) {
				const struct bal_service *o = &b->svc[j];

				s->budget = o->budget;
				s->requests_total = o->requests_total;
				s->retries_total = o->retries_total;
				s->budget_exhausted_total = o->budget_exhausted_total;
				s->timeouts_total = o->timeouts_total;
			}
		}
		if (cs->dns) {
			if (dns_carry(b, cs, s) < 0) {
				goto fail;
			}
			continue;
		}
		if (!(s->ep = calloc(cs->n_endpoints, sizeof(*s->ep)))) {
			goto fail;
		}
		for (j = 0; j < cs->n_endpoints; j++) {
			struct bal_endpoint *e = old_endpoint(b, cs->name, &cs->endpoints[j]);

			if (e) {
				e->refs++;
			} else if ((e = calloc(1, sizeof(*e)))) {
				e->addr = cs->endpoints[j];
				e->refs = 1;
			} else {
				goto fail;
			}
			s->ep[s->n++] = e;
		}
	}
	/* The old services let go of their endpoints; those kept were taken
	 * again above, those gone stay alive while a connection holds one. */
	services_free(b->svc, b->n);
	for (i = 0; i < n; i++) {
		for (j = 0; j < svc[i].n; j++) {
			svc[i].ep[j]->detached = 0;
		}
	}
	b->svc = svc;
	b->n = n;
	b->cfg = cfg;
	b->cfg_generation = cfg->generation;
	return 0;
fail:
	services_free(svc, n);
	return -ENOMEM;
}

int balancer_service_of(const struct balancer *b, const struct ldm_addr *dst_in)
{
	struct ldm_addr unmapped;
	const struct ldm_addr *dst = &unmapped;
	size_t i, k;

	/* A dual-stack socket (grpcio's) dials 10.96.0.10 as ::ffff:10.96.0.10. */
	addr_unmap(dst_in, &unmapped);
	for (i = 0; i < b->n; i++) {
		const struct config_service *cs = &b->cfg->services[b->svc[i].cfg_index];

		for (k = 0; k < cs->n_addresses; k++) {
			if (!memcmp(&cs->addresses[k], dst, sizeof(*dst))) {
				return (int)i;
			}
		}
	}
	return -1;
}

/* ---- choosing --------------------------------------------------------------- */

static uint64_t next_rand(struct balancer *b);

int balancer_route(struct balancer *b, int s)
{
	const struct config_service *cs = &b->cfg->services[b->svc[s].cfg_index];
	int draw, at = 0;
	size_t k;

	if (!b->svc[s].n_split) {
		return s;
	}
	draw = (int)(next_rand(b) % 100);
	for (k = 0; k < b->svc[s].n_split; k++) {
		at += cs->splits[k].weight;
		if (draw < at) {
			return b->svc[s].split_to[k];
		}
	}
	return s; /* the rest stays */
}

static uint64_t next_rand(struct balancer *b)
{
	/* xorshift64*: spread, not secrecy. */
	b->rng ^= b->rng >> 12;
	b->rng ^= b->rng << 25;
	b->rng ^= b->rng >> 27;
	return b->rng * 2685821657736338717ull;
}

/* The latency estimate now: it decays with the time since it was last
 * fed, so an endpoint left aside for a slow answer is tried again. */
static double estimate(const struct bal_endpoint *e, int64_t now_us)
{
	double age = (double)(now_us - e->ewma_at_us);

	return age > 0 ? e->ewma_us * exp(-age / BAL_DECAY_US) : e->ewma_us;
}

/* Linkerd's load: the estimate weighted by the connections in hand.  An
 * endpoint not measured yet counts as the best measured one of its
 * service (fresh ones compete from the start; a fixed default would keep
 * them out while the others answer faster than it). */
static double cost(const struct bal_endpoint *e, double unmeasured, int64_t now_us)
{
	double rtt = e->ewma_us > 0 ? estimate(e, now_us) : unmeasured;

	return rtt * (double)(e->outstanding + 1);
}

static double best_measured(const struct bal_service *svc, int64_t now_us)
{
	double best = -1;
	size_t i;

	for (i = 0; i < svc->n; i++) {
		if (svc->ep[i]->ewma_us > 0) {
			double v = estimate(svc->ep[i], now_us);
			if (best < 0 || v < best) {
				best = v;
			}
		}
	}
	return best < 0 ? BAL_DEFAULT_RTT_US : best;
}

/* Out endpoints whose time is up get one trial connection. */
static int available(struct bal_endpoint *e, int64_t now_ms)
{
	if (e->state == BAL_OUT && now_ms >= e->out_until_ms) {
		e->state = BAL_PROBING;
		return 2; /* the trial: taken at once */
	}
	return e->state == BAL_READY;
}

struct bal_endpoint *balancer_pick(struct balancer *b, int s, const struct bal_endpoint *avoid,
				   int64_t now_us)
{
	struct bal_service *svc = &b->svc[s];
	struct bal_endpoint *cand[2] = {NULL, NULL}, *e;
	int64_t now_ms = now_us / 1000;
	size_t i, n = 0, start;

	if (!svc->n) {
		b->unavailable_total++; /* a DNS name with no answer yet */
		return NULL;
	}
	/* A trial goes first: it is how an endpoint comes back. */
	for (i = 0; i < svc->n; i++) {
		if (svc->ep[i] != avoid && available(svc->ep[i], now_ms) == 2) {
			e = svc->ep[i];
			goto chosen;
		}
	}
	/* Two distinct candidates at random among the ready ones (P2C), a
	 * plain walk from a random place when the draws keep missing. */
	for (i = 0; i < 8 && n < 2; i++) {
		struct bal_endpoint *x = svc->ep[next_rand(b) % svc->n];

		if (x != avoid && x->state == BAL_READY && x != cand[0]) {
			cand[n++] = x;
		}
	}
	start = (size_t)(next_rand(b) % svc->n);
	for (i = 0; i < svc->n && n < 2; i++) {
		struct bal_endpoint *x = svc->ep[(start + i) % svc->n];

		if (x != avoid && x->state == BAL_READY && x != cand[0]) {
			cand[n++] = x;
		}
	}
	if (!n && avoid && avoid->state == BAL_READY && !avoid->detached) {
		cand[n++] = (struct bal_endpoint *)avoid; /* the only one left */
	}
	if (!n) {
		b->unavailable_total++;
		return NULL;
	}
	if (n == 2) {
		double u = best_measured(svc, now_us);
		e = cost(cand[1], u, now_us) < cost(cand[0], u, now_us) ? cand[1] : cand[0];
	} else {
		e = cand[0];
	}
chosen:
	e->refs++;
	e->outstanding++;
	return e;
}

void balancer_observe(struct bal_endpoint *e, int64_t latency_us, int64_t now_us)
{
	double cur = e->ewma_us > 0 ? estimate(e, now_us) : 0;
	double w = exp(-(double)(now_us - e->ewma_at_us) / BAL_DECAY_US);

	if (latency_us < 0) {
		latency_us = 0;
	}
	if (e->ewma_us <= 0 || (double)latency_us > cur) {
		e->ewma_us = (double)latency_us; /* peak: a slow answer counts at once */
	} else {
		e->ewma_us = cur * w + (double)latency_us * (1.0 - w);
	}
	if (e->ewma_us < 1) {
		e->ewma_us = 1; /* measured: never "not yet" again */
	}
	e->ewma_at_us = now_us;
}

void balancer_result(struct bal_endpoint *e, int ok, int64_t latency_us, int64_t now_us)
{
	e->verdict_us = now_us;
	if (!ok) {
		e->failures++;
		e->failures_total++;
		if (e->state == BAL_PROBING || e->failures >= BAL_FAILURES) {
			/* Out, longer each time it fails again. */
			e->backoff_ms = e->backoff_ms ? e->backoff_ms * 2 : BAL_BACKOFF_MIN_MS;
			if (e->backoff_ms > BAL_BACKOFF_MAX_MS) {
				e->backoff_ms = BAL_BACKOFF_MAX_MS;
			}
			e->state = BAL_OUT;
			e->out_until_ms = now_us / 1000 + e->backoff_ms;
		}
		return;
	}
	e->failures = 0;
	e->backoff_ms = 0;
	e->state = BAL_READY;
	if (latency_us >= 0) {
		balancer_observe(e, latency_us, now_us);
	}
}

void balancer_release(struct bal_endpoint *e)
{
	if (e->outstanding) {
		e->outstanding--;
	}
	if (e->state == BAL_PROBING && !e->outstanding) {
		/* The trial ended without a verdict (closed while dialling). */
		e->state = BAL_OUT;
	}
	endpoint_put(e);
}

void balancer_ref(struct bal_endpoint *e)
{
	e->refs++;
}

void balancer_unref(struct bal_endpoint *e)
{
	endpoint_put(e);
}

/* The budget's slot for this second, emptied when it last counted an older one. */
static int budget_slot(struct bal_budget *g, int64_t now_s)
{
	int i = (int)(now_s % BAL_BUDGET_SLOTS);

	if (g->slot_s[i] != now_s) {
		g->slot_s[i] = now_s;
		g->requests[i] = g->retries[i] = 0;
	}
	return i;
}

void balancer_budget_request(struct balancer *b, int s, int64_t now_us)
{
	struct bal_service *svc = &b->svc[s];

	svc->budget.requests[budget_slot(&svc->budget, now_us / 1000000)]++;
	svc->requests_total++;
}

int balancer_budget_retry(struct balancer *b, int s, int percent, int min_per_s, int ttl_s,
			  int64_t now_us)
{
	struct bal_service *svc = &b->svc[s];
	struct bal_budget *g = &svc->budget;
	int64_t now_s = now_us / 1000000;
	uint64_t requests = 0, retries = 0;
	int i, cur = budget_slot(g, now_s);

	if (ttl_s > BAL_BUDGET_SLOTS) {
		ttl_s = BAL_BUDGET_SLOTS;
	}
	for (i = 0; i < BAL_BUDGET_SLOTS; i++) {
		if (g->slot_s[i] > now_s - ttl_s && g->slot_s[i] <= now_s) {
			requests += g->requests[i];
			retries += g->retries[i];
		}
	}
	/* retries + 1 <= min_per_s * ttl + requests * percent / 100 */
	if ((retries + 1) * 100 >
	    (uint64_t)min_per_s * (uint64_t)ttl_s * 100 + requests * (uint64_t)percent) {
		svc->budget_exhausted_total++;
		return 0;
	}
	g->retries[cur]++;
	svc->retries_total++;
	return 1;
}

/* ---- showing ---------------------------------------------------------------- */

static const char *const state_names[] = {"ready", "out", "probing"};

/* "dns": null, or the name and its schedule. */
static void dns_json(const struct bal_service *s, struct strbuf *out, int64_t now_ms)
{
	int64_t next = s->dns.next_ms - now_ms;

	if (!s->dns.name) {
		sb_printf(out,
			  "null,\"dns_ttl_s\":null,\"dns_next_ms\":null,\"dns_failing\":false");
		return;
	}
	/* The config allows letters, digits, '-', '_' and '.': nothing to escape. */
	sb_printf(out,
		  "\"%s:%u\",\"dns_ttl_s\":%" PRIu32 ",\"dns_next_ms\":%" PRId64
		  ",\"dns_failing\":%s",
		  s->dns.name, s->dns.port, s->dns.ttl_s, s->dns.inflight || next < 0 ? 0 : next,
		  s->dns.failing ? "true" : "false");
}

void balancer_list(const struct balancer *b, struct strbuf *out, int json, int64_t now_us)
{
	size_t i, j, k;
	int64_t now_ms = now_us / 1000;

	if (json) {
		sb_printf(out, "[");
	} else {
		sb_printf(out, "%-20s %-22s %-8s %6s %10s %8s %12s %10s %8s\n", "SERVICE",
			  "ENDPOINT", "STATE", "OPEN", "EWMA_MS", "FAILS", "CONNECTIONS",
			  "REQUESTS", "5XX");
	}
	for (i = 0; i < b->n; i++) {
		const struct bal_service *s = &b->svc[i];
		const struct config_service *cs = &b->cfg->services[s->cfg_index];

		if (json) {
			sb_printf(out, "%s{\"name\":", i ? "," : "");
			sb_json_str(out, s->name);
			sb_printf(out, ",\"addresses\":[");
			for (k = 0; k < cs->n_addresses; k++) {
				char a[80];

				addr_format(&cs->addresses[k], a, sizeof(a));
				sb_printf(out, "%s", k ? "," : "");
				sb_json_str(out, a);
			}
			sb_printf(out, "],\"dns\":");
			dns_json(s, out, now_ms);
			sb_printf(out,
				  ",\"protocol\":\"%s\",\"requests_total\":%" PRIu64
				  ",\"retries_total\":%" PRIu64
				  ",\"budget_exhausted_total\":%" PRIu64
				  ",\"timeouts_total\":%" PRIu64,
				  cs->protocol == SVC_PROTO_TCP	   ? "tcp"
				  : cs->protocol == SVC_PROTO_HTTP ? "http"
								   : "auto",
				  s->requests_total, s->retries_total, s->budget_exhausted_total,
				  s->timeouts_total);
			sb_printf(out, ",\"endpoints\":[");
		} else if (s->dns.name && !s->n) {
			sb_printf(out, "%-20s %-22s %-8s\n", s->name, "(none: DNS)",
				  s->dns.answered ? "empty" : "asking");
		}
		for (j = 0; j < s->n; j++) {
			const struct bal_endpoint *e = s->ep[j];
			char a[80];
			int64_t left = e->state == BAL_OUT ? e->out_until_ms - now_ms : 0;

			addr_format(&e->addr, a, sizeof(a));
			if (json) {
				sb_printf(out, "%s{\"addr\":", j ? "," : "");
				sb_json_str(out, a);
				sb_printf(out,
					  ",\"state\":\"%s\",\"outstanding\":%" PRIu32
					  ",\"ewma_ms\":%.3f,\"failures\":%" PRIu32
					  ",\"out_for_ms\":%" PRId64
					  ",\"connections_total\":%" PRIu64
					  ",\"failures_total\":%" PRIu64
					  ",\"requests_total\":%" PRIu64
					  ",\"responses\":{\"success\":%" PRIu64 ",\"5xx\":%" PRIu64
					  ",\"error\":%" PRIu64 ",\"timeout\":%" PRIu64
					  "},\"pooled\":%" PRIu32 "}",
					  state_names[e->state], e->outstanding,
					  e->ewma_us / 1000.0, e->failures, left > 0 ? left : 0,
					  e->connections_total, e->failures_total,
					  e->requests_total, e->responses_total[BAL_RES_SUCCESS],
					  e->responses_total[BAL_RES_5XX],
					  e->responses_total[BAL_RES_ERROR],
					  e->responses_total[BAL_RES_TIMEOUT], e->pooled);
			} else {
				sb_printf(out,
					  "%-20s %-22s %-8s %6" PRIu32 " %10.3f %8" PRIu32
					  " %12" PRIu64 " %10" PRIu64 " %8" PRIu64 "\n",
					  s->name, a, state_names[e->state], e->outstanding,
					  e->ewma_us / 1000.0, e->failures, e->connections_total,
					  e->requests_total, e->responses_total[BAL_RES_5XX]);
			}
		}
		if (json) {
			sb_printf(out, "]}");
		}
	}
	sb_printf(out, json ? "]\n" : "");
}

/* A counter per endpoint: name{service,endpoint}, the uint64_t at off. */
static void endpoint_counter(const struct balancer *b, struct strbuf *out, const char *name,
			     const char *help, size_t off)
{
	size_t i, j;

	sb_printf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
	for (i = 0; i < b->n; i++) {
		for (j = 0; j < b->svc[i].n; j++) {
			char a[80];
			uint64_t v;

			memcpy(&v, (const char *)b->svc[i].ep[j] + off, sizeof(v));
			addr_format(&b->svc[i].ep[j]->addr, a, sizeof(a));
			sb_printf(out, "%s{service=\"%s\",endpoint=\"%s\"} %" PRIu64 "\n", name,
				  b->svc[i].name, a, v);
		}
	}
}

/* A counter per service: name{service}, the uint64_t at off. */
static void service_counter(const struct balancer *b, struct strbuf *out, const char *name,
			    const char *help, size_t off)
{
	size_t i;

	sb_printf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
	for (i = 0; i < b->n; i++) {
		uint64_t v;

		memcpy(&v, (const char *)&b->svc[i] + off, sizeof(v));
		sb_printf(out, "%s{service=\"%s\"} %" PRIu64 "\n", name, b->svc[i].name, v);
	}
}

void balancer_metrics(const struct balancer *b, struct strbuf *out)
{
	size_t i, j;
	int st;

	sb_printf(out, "# HELP ldmesh_balancer_endpoints Endpoints of each service by state.\n"
		       "# TYPE ldmesh_balancer_endpoints gauge\n");
	for (i = 0; i < b->n; i++) {
		for (st = BAL_READY; st <= BAL_PROBING; st++) {
			size_t n = 0;

			for (j = 0; j < b->svc[i].n; j++) {
				n += b->svc[i].ep[j]->state == (enum bal_state)st;
			}
			sb_printf(out,
				  "ldmesh_balancer_endpoints{service=\"%s\",state=\"%s\"} %zu\n",
				  b->svc[i].name, state_names[st], n);
		}
	}
	endpoint_counter(b, out, "ldmesh_balancer_connections_total",
			 "Connections the balancer sent to each endpoint.",
			 offsetof(struct bal_endpoint, connections_total));
	endpoint_counter(b, out, "ldmesh_balancer_failures_total",
			 "Connections to each endpoint that failed.",
			 offsetof(struct bal_endpoint, failures_total));
	endpoint_counter(b, out, "ldmesh_balancer_requests_total",
			 "Routed request attempts sent to each endpoint.",
			 offsetof(struct bal_endpoint, requests_total));
	sb_printf(out, "# HELP ldmesh_balancer_responses_total How routed request attempts on "
		       "each endpoint ended.\n# TYPE ldmesh_balancer_responses_total counter\n");
	for (i = 0; i < b->n; i++) {
		for (j = 0; j < b->svc[i].n; j++) {
			static const char *const res[] = {"success", "5xx", "error", "timeout"};
			char a[80];
			int k;

			addr_format(&b->svc[i].ep[j]->addr, a, sizeof(a));
			for (k = 0; k < BAL_RESULTS; k++) {
				sb_printf(out,
					  "ldmesh_balancer_responses_total{service=\"%s\",endpoint="
					  "\"%s\",result=\"%s\"} %" PRIu64 "\n",
					  b->svc[i].name, a, res[k],
					  b->svc[i].ep[j]->responses_total[k]);
			}
		}
	}
	service_counter(b, out, "ldmesh_route_requests_total", "Requests routed to each service.",
			offsetof(struct bal_service, requests_total));
	service_counter(b, out, "ldmesh_route_retries_total",
			"Routed requests sent again after a failed attempt.",
			offsetof(struct bal_service, retries_total));
	service_counter(b, out, "ldmesh_route_retry_budget_exhausted_total",
			"Retries not made because the service's retry budget was spent.",
			offsetof(struct bal_service, budget_exhausted_total));
	service_counter(b, out, "ldmesh_route_timeouts_total",
			"Routed requests answered 504 by their timeout.",
			offsetof(struct bal_service, timeouts_total));
	sb_printf(out,
		  "# HELP ldmesh_balancer_unavailable_total Connections refused because "
		  "every endpoint of their service was out.\n"
		  "# TYPE ldmesh_balancer_unavailable_total counter\n"
		  "ldmesh_balancer_unavailable_total %" PRIu64 "\n"
		  "# HELP ldmesh_balancer_retries_total Dials sent to another endpoint after "
		  "one failed.\n# TYPE ldmesh_balancer_retries_total counter\n"
		  "ldmesh_balancer_retries_total %" PRIu64 "\n",
		  b->unavailable_total, b->retries_total);
}

void balancer_stats_raw(const struct balancer *b, struct strbuf *out)
{
	size_t i, j;

	for (i = 0; i < b->n; i++) {
		const struct bal_service *s = &b->svc[i];

		/* Service names hold no spaces (the config checks them). */
		sb_printf(out, "svc %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", s->name,
			  s->requests_total, s->retries_total, s->budget_exhausted_total,
			  s->timeouts_total);
		for (j = 0; j < s->n; j++) {
			const struct bal_endpoint *e = s->ep[j];
			char a[80];

			addr_format(&e->addr, a, sizeof(a));
			sb_printf(
				out,
				"endpoint %s %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
				" %" PRIu64 " %.3f %s\n",
				s->name, a, e->requests_total, e->responses_total[BAL_RES_SUCCESS],
				e->responses_total[BAL_RES_5XX], e->responses_total[BAL_RES_ERROR],
				e->responses_total[BAL_RES_TIMEOUT], e->ewma_us / 1000.0,
				state_names[e->state]);
		}
	}
}
