/*
 * Idle connections give their memory back: reads become polls, buffers
 * are freed, and the first byte on either side brings them back.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <sys/syscall.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ldmesh/addr.h"
#include "ldmesh/addrname.h"
#include "proxy/proxy.h"
#include "proxy/conn_internal.h"
#include "proxy/l7.h"
#include "policy/policy.h"
#include "util/heap.h"
#include "util/strbuf.h"
#include "util/log.h"

/* ---- idle connections ---------------------------------------------------- */

/*
 * A proxied connection quiet for PARK_AFTER_MS with nothing buffered gives
 * its buffers back (2 or 4 * buffer_size, the HTTP output buffer, the TLS
 * engine's): its two reads are cancelled and replaced by polls, which hold
 * no memory, and the first input on either side brings the buffers back.
 * This is what keeps thousands of idle keep-alive connections cheap.
 */

static int parkable(const struct conn *c)
{
	const struct l7 *h = c->l7;

	if (c->state != CS_PROXY || c->parked || !c->bufs || c->inflight) {
		return 0;
	}
	if (c->up.len || c->down.len || c->up.eof || c->down.eof || c->up.spending ||
	    c->down.spending || c->up.shutting || c->down.shutting ||
	    c->ctl_out_off < c->ctl_out_len) {
		return 0;
	}
	/* A read out on each side, nothing else (a stream on a link has its
	 * read with the link, not with the loop: 0 there). */
	if (!c->up.rpending || !c->down.rpending || c->app->ops->inflight(c->app) > 1 ||
	    c->net->ops->inflight(c->net) > 1) {
		return 0;
	}
	if (h && (h->out_len || l7_has_inject(h) || h->hold || h->held_since || h->head_since)) {
		return 0;
	}
	return 1;
}

static void park_start(struct conn *c)
{
	c->parked = PARK_CANCELLING;
	c->app->ops->cancel_read(c->app);
	c->net->ops->cancel_read(c->net);
}

/* Both reads are back (cancelled): let go of the buffers, wait by poll. */
static void park_finish(struct proxy *d, struct conn *c)
{
	if (c->net->ops->trim(c->net) == -EAGAIN || c->app->ops->trim(c->app) == -EAGAIN) {
		c->parked = PARK_NO; /* bytes arrived into the engine meanwhile */
		pump_both(d, c);
		return;
	}
	free(c->bufs);
	c->bufs = NULL;
	c->up.buf = c->down.buf = NULL;
	if (c->l7 && l7_idle(c->l7)) {
		/* Between requests: made again by stage_wants() at the next byte. */
		l7_free(c->l7);
		c->l7 = NULL;
	} else if (c->l7) {
		l7_trim(c->l7);
	}
	if (c->app->ops->wait_readable(c->app) < 0 || c->net->ops->wait_readable(c->net) < 0) {
		conn_close(d, c, 1);
		return;
	}
	c->parked = PARK_PARKED;
	d->parked++;
	d->parked_untrimmed++;
}

/*
 * What parking or closing freed in the middle of the heap (connection
 * objects, the TLS engine's records and SSL objects, the HTTP buffers,
 * links) stays resident: glibc only gives back an arena's top, and
 * long-lived objects sit above the holes.  Hand the whole free pages back
 * after a spike: once the live connections fell by a batch below their
 * peak since the last trim, or a batch of connections went idle, or
 * parks and closed links stopped coming for a sweep (a spike's tail);
 * and only when the heap holds enough resident free memory to be worth it
 * (heap_slack()).  At most once a sweep (a second): the trim walks the
 * whole heap.  Steady churn (connections opened and closed at the same
 * rate) is no fall below the peak: it never trims, and reuses its memory.
 * Measured after 2,000 idle meshed connections closed
 * (docs/benchmarks.md): anonymous RSS 52-64 MiB without it, 1.6-2.5 MiB
 * with it (1.2 MiB at start).
 */
#define HEAP_TRIM_BATCH 32
#define HEAP_TRIM_SLACK (1u << 20)

static void park_trim_heap(struct proxy *d)
{
	uint32_t n = d->parked_untrimmed + d->links_untrimmed;
	int fell = d->live_peak - d->live >= HEAP_TRIM_BATCH;
	int settled = n && (n >= HEAP_TRIM_BATCH || n == d->untrimmed_seen);
	size_t slack, got;

	d->untrimmed_seen = n;
	if (!fell && !settled) {
		return;
	}
	d->parked_untrimmed = d->links_untrimmed = d->untrimmed_seen = 0;
	d->live_peak = d->live;
	slack = heap_slack();
	if (slack < HEAP_TRIM_SLACK) {
		return;
	}
	got = heap_trim();
	log_debug("heap trimmed: %zu KiB of %zu KiB free resident memory returned", got >> 10,
		  slack >> 10);
}

void park_read_cancelled(struct proxy *d, struct conn *c)
{
	if (c->parked == PARK_CANCELLING) {
		if (!c->up.rpending && !c->down.rpending) {
			park_finish(d, c);
		}
		return;
	}
	pump_both(d, c); /* parking was called off: read again */
}

void park_wake(struct proxy *d, struct conn *c, struct transport *t)
{
	struct transport *other = t == c->app ? c->net : c->app;

	if (c->parked != PARK_PARKED) {
		return; /* the other side's wait, cancelled after a wake */
	}
	c->parked = PARK_NO;
	d->parked--;
	other->ops->cancel_wait(other);
	if (conn_alloc_bufs(d, c) < 0 || (c->l7 && l7_untrim(c->l7) < 0)) {
		conn_close(d, c, 1);
		return;
	}
	pump_both(d, c);
}

void conn_sweep(struct proxy *d, int64_t now)
{
	uint32_t i;

	for (i = 0; i < d->nslots; i++) {
		struct conn *c = d->conns[i];
		if (!c || c->state == CS_CLOSING) {
			continue;
		}
		if (c->state == CS_TLS_HS) {
			handshake_tick(d, c, now);
			if (c->state != CS_TLS_HS) {
				continue;
			}
		}
		if (c->deadline_ms && now >= c->deadline_ms && c->state == CS_DETECT) {
			c->deadline_ms = 0;
			detect_timeout(d, c);
			continue;
		}
		if (c->deadline_ms && now >= c->deadline_ms) {
			char peer[80];
			addr_format(&c->peer, peer, sizeof(peer));
			if (c->flush_then_reset) {
				/* The alert did not get out in time: counted already. */
			} else if (c->state == CS_TLS_HS) {
				int out = c->kind != CONN_INBOUND; /* outbound or upstream */
				log_warn("%s TLS handshake with %s timed out",
					 out ? "outbound" : "inbound", peer);
				d->stats.handshake_errors_total[out][TLS_PROTOCOL]++;
				d->stats.timeouts_total[TIMEOUT_TLS_HANDSHAKE]++;
				if (out) {
					dial_outcome(d, c, -ETIMEDOUT);
				}
			} else if (c->state == CS_DIAL) {
				log_info("outbound dial to %s timed out", peer);
				d->stats.dial_errors_total++;
				d->stats.timeouts_total[TIMEOUT_DIAL]++;
				dial_outcome(d, c, -ETIMEDOUT);
			} else if (c->kind == CONN_HANDOFF || c->kind == CONN_CTL ||
				   c->kind == CONN_ADMIN) {
				log_warn("%s client sent no complete request in time; closing",
					 conn_kind_name(c->kind));
				d->stats.timeouts_total[TIMEOUT_CONTROL]++;
				if (c->kind == CONN_HANDOFF) {
					d->stats.handoff_errors_total++;
				} else {
					d->stats.ctl_errors_total++;
				}
			} else {
				log_info("%s connection %s timed out", conn_kind_name(c->kind),
					 peer);
			}
			conn_close(d, c, 1);
			continue;
		}
		if (c->state == CS_PROXY && c->l7 && c->l7->head_since &&
		    d->cfg->http_head_timeout_ms > 0 &&
		    now - c->l7->head_since >= d->cfg->http_head_timeout_ms) {
			char peer[80];
			addr_format(&c->peer, peer, sizeof(peer));
			log_info("inbound from %s: request head not complete after %d ms; closing",
				 peer, d->cfg->http_head_timeout_ms);
			d->stats.timeouts_total[TIMEOUT_HTTP_HEAD]++;
			conn_close(d, c, 1);
			continue;
		}
		if (c->state == CS_PROXY && d->cfg->idle_timeout_ms > 0 &&
		    now - c->last_ms >= d->cfg->idle_timeout_ms) {
			log_debug("conn %u idle for %d ms; closing", c->slot,
				  d->cfg->idle_timeout_ms);
			d->stats.timeouts_total[TIMEOUT_IDLE]++;
			conn_close(d, c, 1);
			continue;
		}
		if (now - c->last_ms >= PARK_AFTER_MS && parkable(c)) {
			park_start(c);
		}
	}
	park_trim_heap(d);
}
