/*
 * Several event loops' balancers shown as one (balance.h: balancer_merge).
 * Each loop balances its own connections; `ldmeshctl services` and
 * /metrics add their counters, and an endpoint's state is the verdict of
 * the loop that last connected to it; a DNS name is failing when it
 * failed for any loop.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/balance.h"

static struct bal_endpoint *endpoint_copy(const struct bal_endpoint *e)
{
	struct bal_endpoint *c = malloc(sizeof(*c));

	if (c) {
		*c = *e;
		c->refs = 1;
		c->detached = 0;
	}
	return c;
}

static int service_copy(struct bal_service *d, const struct bal_service *s)
{
	size_t j;

	memset(d, 0, sizeof(*d));
	d->cfg_index = s->cfg_index;
	d->requests_total = s->requests_total;
	d->retries_total = s->retries_total;
	d->budget_exhausted_total = s->budget_exhausted_total;
	d->timeouts_total = s->timeouts_total;
	d->dns = s->dns;
	d->dns.name = NULL;
	d->name = strdup(s->name);
	d->ep = calloc(s->n ? s->n : 1, sizeof(*d->ep));
	d->split_to = calloc(s->n_split ? s->n_split : 1, sizeof(*d->split_to));
	if (!d->name || !d->ep || !d->split_to ||
	    (s->dns.name && !(d->dns.name = strdup(s->dns.name)))) {
		return -ENOMEM;
	}
	if (s->n_split) {
		memcpy(d->split_to, s->split_to, s->n_split * sizeof(*d->split_to));
	}
	d->n_split = s->n_split;
	for (j = 0; j < s->n; j++) {
		d->ep[j] = endpoint_copy(s->ep[j]);
		if (!d->ep[j]) {
			return -ENOMEM;
		}
		d->n++;
	}
	return 0;
}

/* e (in dst) takes in o, the same address in another loop. */
static void endpoint_add(struct bal_endpoint *e, const struct bal_endpoint *o)
{
	int k;

	e->outstanding += o->outstanding;
	e->connections_total += o->connections_total;
	e->failures_total += o->failures_total;
	e->requests_total += o->requests_total;
	for (k = 0; k < BAL_RESULTS; k++) {
		e->responses_total[k] += o->responses_total[k];
	}
	e->pooled += o->pooled;
	if (o->verdict_us > e->verdict_us) {
		/* The newer verdict is what a connection would find now. */
		e->state = o->state;
		e->failures = o->failures;
		e->backoff_ms = o->backoff_ms;
		e->out_until_ms = o->out_until_ms;
		e->ewma_us = o->ewma_us;
		e->ewma_at_us = o->ewma_at_us;
		e->verdict_us = o->verdict_us;
	}
}

static int service_add(struct bal_service *d, const struct bal_service *s)
{
	size_t i, j;

	/* Each loop routes its own requests with its own retry budget. */
	d->requests_total += s->requests_total;
	d->retries_total += s->retries_total;
	d->budget_exhausted_total += s->budget_exhausted_total;
	d->timeouts_total += s->timeouts_total;
	/* DNS: failing when a loop's last query failed (each loop asks on
	 * its own), the schedule of the soonest, the TTL of the newest answer. */
	if (d->dns.name && s->dns.name && !strcmp(d->dns.name, s->dns.name) &&
	    d->dns.port == s->dns.port) {
		d->dns.failing |= s->dns.failing;
		d->dns.answered |= s->dns.answered;
		d->dns.inflight |= s->dns.inflight;
		if (s->dns.next_ms < d->dns.next_ms) {
			d->dns.next_ms = s->dns.next_ms;
		}
		if (s->dns.answered_ms > d->dns.answered_ms) {
			d->dns.answered_ms = s->dns.answered_ms;
			d->dns.ttl_s = s->dns.ttl_s;
		}
	}
	for (j = 0; j < s->n; j++) {
		struct bal_endpoint **grown;

		for (i = 0; i < d->n; i++) {
			if (!memcmp(&d->ep[i]->addr, &s->ep[j]->addr, sizeof(d->ep[i]->addr))) {
				break;
			}
		}
		if (i < d->n) {
			endpoint_add(d->ep[i], s->ep[j]);
			continue;
		}
		/* A DNS answer this loop has and the first did not yet. */
		grown = realloc(d->ep, (d->n + 1) * sizeof(*grown));
		if (!grown) {
			return -ENOMEM;
		}
		d->ep = grown;
		d->ep[d->n] = endpoint_copy(s->ep[j]);
		if (!d->ep[d->n]) {
			return -ENOMEM;
		}
		d->n++;
	}
	return 0;
}

int balancer_merge(struct balancer *dst, const struct balancer *src)
{
	size_t i, k;

	dst->unavailable_total += src->unavailable_total;
	dst->retries_total += src->retries_total;
	if (!dst->cfg) {
		dst->cfg = src->cfg;
		dst->cfg_generation = src->cfg_generation;
		dst->svc = calloc(src->n ? src->n : 1, sizeof(*dst->svc));
		if (!dst->svc) {
			return -ENOMEM;
		}
		for (i = 0; i < src->n; i++) {
			int r = service_copy(&dst->svc[i], &src->svc[i]);
			dst->n++; /* freed by balancer_fini() even when half made */
			if (r < 0) {
				return r;
			}
		}
		return 0;
	}
	for (i = 0; i < src->n; i++) {
		for (k = 0; k < dst->n; k++) {
			if (!strcmp(dst->svc[k].name, src->svc[i].name)) {
				int r = service_add(&dst->svc[k], &src->svc[i]);
				if (r < 0) {
					return r;
				}
				break;
			}
		}
		/* A service only another loop's config has (a reload under way)
		 * is left out: dst shows the first loop's config. */
	}
	return 0;
}
