/*
 * The HTTP stage (stage.h): between the pump and proxy/l7.c, which does
 * the HTTP.  Connections get HTTP awareness until they prove not to be
 * HTTP: inbound always (policy, identity header), outbound when request
 * metrics or the access log want it (scan only).
 */
#include <errno.h>

#include "proxy/proxy.h"
#include "proxy/l7.h"
#include "proxy/conn.h"
#include "proxy/stage.h"
#include "util/log.h"

int stage_wants(struct proxy *d, struct conn *c)
{
	if (c->l7 || c->l7_done) {
		return c->l7 != NULL;
	}
	if (c->kind == CONN_OUTBOUND) {
		if (c->state != CS_PROXY || (!d->cfg->http_metrics && !accesslog_on(d->alog))) {
			return 0;
		}
		c->l7 = l7_new(d, 0);
		c->l7_done = c->l7 == NULL;
		if (c->l7) {
			c->l7->requests = c->http_requests; /* made again after parking */
		}
		return c->l7 != NULL;
	}
	if (c->kind != CONN_INBOUND) {
		return 0;
	}
	c->l7 = l7_new(d, c->bufsize);
	if (!c->l7) {
		c->l7_done = 1; /* no memory: raw bytes, still correct */
		if (c->l7_policy) {
			conn_close(d, c, 1);
		}
		return 0;
	}
	c->l7->requests = c->http_requests; /* made again after parking */
	return 1;
}

/* Outbound scan-only HTTP state that has nothing left to follow goes. */
static void scan_check(struct proxy *d, struct conn *c)
{
	if (c->l7 && l7_scan_over(c->l7)) {
		l7_finish(d, c, c->l7);
		c->l7 = NULL;
		c->l7_done = 1;
	}
}

int stage_seen(struct proxy *d, struct conn *c, struct pipe *p, const char *buf, size_t n)
{
	int r = 0;

	p->bytes += (uint64_t)n;
	if (c->tel) {
		if (p == &c->down) {
			c->tel->tcp_read += n;
		} else {
			c->tel->tcp_write += n;
		}
	}
	if (!stage_wants(d, c)) {
		return c->state == CS_CLOSING ? -ENOMEM : 0;
	}
	if (c->kind == CONN_INBOUND) {
		if (p == &c->up) {
			r = l7_responses(d, c, buf, n);
		}
		/* Requests go through stage_down(), which consumes them. */
	} else if (p == &c->up) {
		l7_out_requests(d, c, buf, n);
		scan_check(d, c);
	} else {
		r = l7_responses(d, c, buf, n);
		if (r == 0) {
			scan_check(d, c);
		}
	}
	if (r < 0) {
		conn_close(d, c, 1);
	}
	return r;
}

enum stage_step stage_down(struct proxy *d, struct conn *c, const char **buf, size_t *n)
{
	struct pipe *p = &c->down;
	/* Outbound HTTP state only watches; nothing goes through it. */
	struct l7 *h = c->kind == CONN_INBOUND ? c->l7 : NULL;

	for (;;) {
		if (!h) {
			return STAGE_PASS;
		}
		if (h->out_off < h->out_len) {
			*buf = h->out + h->out_off;
			*n = h->out_len - h->out_off;
			return STAGE_WRITE;
		}
		h->out_off = h->out_len = 0;
		if (h->opaque && !h->inject_len) {
			if (c->l7_policy) {
				/* Opaque with no decision for the connection: never raw. */
				log_warn("conn %u: undecided non-HTTP connection; closing",
					 c->slot);
				conn_close(d, c, 1);
				return STAGE_WAIT;
			}
			/* Not HTTP after all: drop the HTTP state, pass bytes raw. */
			l7_finish(d, c, h);
			c->l7 = NULL;
			c->l7_done = 1;
			return STAGE_PASS;
		}
		if (p->off < p->len && !h->hold) {
			if (l7_down(d, c) < 0) {
				conn_close(d, c, 1);
				return STAGE_WAIT;
			}
			if (c->state != CS_PROXY) {
				return STAGE_WAIT;
			}
			if (h->out_len || h->opaque) {
				continue;
			}
		}
		if (p->off < p->len) {
			return STAGE_WAIT; /* held until an injected answer is out */
		}
		p->off = p->len = 0;
		return STAGE_EMPTY;
	}
}

void stage_wrote(struct conn *c, size_t n)
{
	c->l7->out_off += (uint32_t)n;
}

int stage_has_output(const struct conn *c)
{
	return c->kind == CONN_INBOUND && c->l7 && c->l7->out_off < c->l7->out_len;
}

int stage_has_inject(const struct conn *c)
{
	return c->l7 && l7_has_inject(c->l7);
}

size_t stage_up_room(const struct conn *c)
{
	const struct pipe *p = &c->up;

	if (!c->l7 || !c->l7->h2 || c->kind != CONN_INBOUND) {
		return p->len - p->off;
	}
	return l7_h2_up_room(c->l7->h2, p->off, p->len);
}

int stage_inject(struct proxy *d, struct conn *c, const char **buf, size_t *n)
{
	struct l7 *h = c->l7;

	if (h && h->h2 && c->kind == CONN_INBOUND) {
		if (!l7_h2_inject_ready(h->h2, c->up.off, c->up.len)) {
			return 0;
		}
		l7_h2_inject_take(h->h2, buf, n);
		return 1;
	}
	if (!h || !h->inject_len) {
		return 0;
	}
	if (h->resp_broken && h->answered < h->forwarded) {
		/* We cannot tell where the app's answer ends: no 403 in order. */
		conn_close(d, c, 1);
		return -1;
	}
	if (!l7_inject_ready(h)) {
		return 0; /* keep reading the app's earlier answers */
	}
	*buf = h->inject;
	*n = h->inject_len;
	return 1;
}

int stage_injected(struct proxy *d, struct conn *c, size_t n)
{
	struct l7 *h = c->l7;

	(void)d;
	if (h->h2 && c->kind == CONN_INBOUND) {
		l7_h2_injected(h->h2, n);
		return 0;
	}
	if (n < h->inject_len) {
		/* 256 bytes on a connected socket: short only when it broke. */
		return -EIO;
	}
	h->inject_len = 0;
	h->hold = 0;
	return h->close_after;
}
