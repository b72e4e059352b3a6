/*
 * The data path of a proxied connection: both pipes, bounded buffers,
 * half-close, TLS records on the network side, the HTTP observer's output.
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
#include "ldmeshd.h"
#include "proxy/conn_internal.h"
#include "proto/l7.h"
#include "policy/policy.h"
#include "util/strbuf.h"
#include "util/log.h"

/* ---- proxying ---------------------------------------------------------- */

/*
 * Plaintext: each direction is src -> buf -> dst with one read or one write
 * in flight.  TLS: the network side of both directions goes through
 * c->tls; ciphertext is read into nin and written from nout.  Either way a
 * read is posted only when the previous chunk has gone out, so a slow
 * reader stops the writer and memory stays at the buffers.
 */

static int saw_bytes(struct ldmeshd *d, struct conn *c, struct pipe *p, const char *buf, size_t n);

static void check_done(struct ldmeshd *d, struct conn *c)
{
	if (c->up.shut && c->down.shut) {
		conn_close(d, c, 0);
	}
}

/*
 * Gets the request-direction input in down.buf[off..len) to the app: as is,
 * or through the HTTP layer (l7.c), which may rewrite heads, drop denied
 * requests and hold input.  Returns 1 while something is in flight or held
 * (the caller waits), 0 once the input is used up.
 */
static int down_deliver(struct ldmeshd *d, struct conn *c)
{
	struct pipe *p = &c->down;
	/* Outbound l7 state only watches; nothing goes through it. */
	struct l7 *h = c->kind == CONN_INBOUND ? c->l7 : NULL;

	if (p->spending) {
		return 1;
	}
	if (c->ctl_out_off < c->ctl_out_len) {
		/* Inbound: the preamble goes first. */
		if (conn_submit_send(d, c, c->a_fd, c->ctl_out + c->ctl_out_off,
				     c->ctl_out_len - c->ctl_out_off, UD_PREAMBLE_SEND) < 0) {
			conn_close(d, c, 1);
			return 1;
		}
		p->spending = 1;
		return 1;
	}
	if (h) {
		if (h->out_off < h->out_len) {
			if (conn_submit_send(d, c, c->a_fd, h->out + h->out_off,
					     h->out_len - h->out_off, UD_L7_SEND) < 0) {
				conn_close(d, c, 1);
				return 1;
			}
			p->spending = 1;
			return 1;
		}
		h->out_off = h->out_len = 0;
		if (h->opaque && !h->inject_len) {
			if (c->l7_policy) {
				/* Opaque with no decision for the connection: never raw. */
				log_warn("conn %u: undecided non-HTTP connection; closing",
					 c->slot);
				conn_close(d, c, 1);
				return 1;
			}
			/* Not HTTP after all: drop the HTTP state, pass bytes raw. */
			l7_finish(d, c, h);
			c->l7 = NULL;
			c->l7_done = 1;
			return down_deliver(d, c);
		}
		if (p->off < p->len && !h->hold) {
			if (l7_down(d, c) < 0) {
				conn_close(d, c, 1);
				return 1;
			}
			if (c->state != CS_PROXY) {
				return 1;
			}
			if (h->out_len || h->opaque) {
				return down_deliver(d, c);
			}
		}
		if (p->off < p->len) {
			return 1; /* held until an injected answer is out */
		}
		p->off = p->len = 0;
		return 0;
	}
	if (p->off < p->len) {
		if (conn_submit_send(d, c, c->a_fd, p->buf + p->off, p->len - p->off,
				     UD_DOWN_SEND) < 0) {
			conn_close(d, c, 1);
			return 1;
		}
		p->spending = 1;
		return 1;
	}
	p->off = p->len = 0;
	return 0;
}

/* Sends an answer of ours (a 403) to the client once its turn has come.
 * Returns 1 when the up direction must wait. */
static int inject(struct ldmeshd *d, struct conn *c)
{
	struct l7 *h = c->l7;

	if (!h || !h->inject_len) {
		return 0;
	}
	if (h->resp_broken && h->answered < h->forwarded) {
		/* We cannot tell where the app's answer ends: no 403 in order. */
		conn_close(d, c, 1);
		return 1;
	}
	if (!l7_inject_ready(h)) {
		return 0; /* keep reading the app's earlier answers */
	}
	if (c->tls) {
		if (!net_idle(c)) {
			return 1;
		}
		if (tls_conn_write(c->tls, h->inject, h->inject_len) < 0) {
			conn_close(d, c, 1);
			return 1;
		}
		inject_sent(d, c);
		net_flush(d, c);
		return 1;
	}
	if (conn_submit_send(d, c, c->n_fd, h->inject, h->inject_len, UD_INJECT_SEND) < 0) {
		conn_close(d, c, 1);
		return 1;
	}
	c->up.spending = 1;
	return 1;
}

static void pump_plain(struct ldmeshd *d, struct conn *c, struct pipe *p, enum ud_tag recv_tag,
		       enum ud_tag send_tag)
{
	if (p->spending) {
		return;
	}
	/* Output of the HTTP layer may be ready while a read is posted. */
	if (p == &c->down &&
	    ((c->l7 && c->l7->out_off < c->l7->out_len) || c->ctl_out_off < c->ctl_out_len)) {
		down_deliver(d, c);
		return;
	}
	/* An answer of ours waits only for the app's earlier answers to be
	 * out, not for the read posted on the app's side. */
	if (p == &c->up && p->off == p->len && c->l7 && c->l7->inject_len && inject(d, c)) {
		return;
	}
	if (p->rpending) {
		return;
	}
	if (p == &c->down) {
		if (down_deliver(d, c)) {
			return;
		}
	} else if (p->off < p->len) {
		if (conn_submit_send(d, c, p->dst, p->buf + p->off, p->len - p->off, send_tag) <
		    0) {
			conn_close(d, c, 1);
			return;
		}
		p->spending = 1;
		return;
	} else if (inject(d, c)) {
		return;
	}
	p->len = p->off = 0;
	if (p->eof) {
		if (!p->shut) {
			/* Half-close travels on: the other direction keeps going. */
			shutdown(p->dst, SHUT_WR);
			p->shut = 1;
			check_done(d, c);
		}
		return;
	}
	if (conn_submit_recv(d, c, p->src, p->buf, (size_t)d->cfg->buffer_size, recv_tag) < 0) {
		conn_close(d, c, 1);
		return;
	}
	p->rpending = 1;
}

/* Sends ciphertext the TLS engine produced, one buffer at a time. */
void net_flush(struct ldmeshd *d, struct conn *c)
{
	if (c->nout_spending || c->state == CS_CLOSING) {
		return;
	}
	if (c->nout_off == c->nout_len) {
		c->nout_off = 0;
		c->nout_len =
			(uint32_t)tls_conn_out_take(c->tls, c->nout, (size_t)d->cfg->buffer_size);
		if (!c->nout_len) {
			return;
		}
	}
	if (conn_submit_send(d, c, c->n_fd, c->nout + c->nout_off, c->nout_len - c->nout_off,
			     UD_NET_SEND) < 0) {
		conn_close(d, c, 1);
		return;
	}
	c->nout_spending = 1;
}

int net_idle(const struct conn *c)
{
	return !c->nout_spending && c->nout_off == c->nout_len && tls_conn_out_pending(c->tls) == 0;
}

void net_want_input(struct ldmeshd *d, struct conn *c)
{
	if (c->nin_rpending || c->net_eof || c->state == CS_CLOSING) {
		return;
	}
	if (conn_submit_recv(d, c, c->n_fd, c->nin, (size_t)d->cfg->buffer_size, UD_NET_RECV) < 0) {
		conn_close(d, c, 1);
		return;
	}
	c->nin_rpending = 1;
}

/* app -> TLS -> network */
static void pump_tls_up(struct ldmeshd *d, struct conn *c)
{
	struct pipe *p = &c->up;

	if (p->off < p->len) {
		/* Hand plaintext to TLS only when the last ciphertext is gone. */
		if (!net_idle(c)) {
			return;
		}
		if (tls_conn_write(c->tls, p->buf + p->off, p->len - p->off) < 0) {
			conn_close(d, c, 1);
			return;
		}
		p->off = p->len;
		net_flush(d, c);
		return;
	}
	p->len = p->off = 0;
	if (inject(d, c)) {
		return;
	}
	if (p->eof) {
		if (!c->notify_sent) {
			tls_conn_close_notify(c->tls);
			c->notify_sent = 1;
			net_flush(d, c);
		}
		if (!p->shut && net_idle(c)) {
			shutdown(c->n_fd, SHUT_WR);
			p->shut = 1;
			check_done(d, c);
		}
		return;
	}
	if (!p->rpending) {
		if (conn_submit_recv(d, c, c->a_fd, p->buf, (size_t)d->cfg->buffer_size,
				     UD_UP_RECV) < 0) {
			conn_close(d, c, 1);
			return;
		}
		p->rpending = 1;
	}
}

/* network -> TLS -> app */
static void pump_tls_down(struct ldmeshd *d, struct conn *c)
{
	struct pipe *p = &c->down;
	int r;

	if (p->spending || p->shut) {
		return;
	}
	if (down_deliver(d, c)) {
		return;
	}
	r = tls_conn_read(c->tls, p->buf, (size_t)d->cfg->buffer_size);
	if (r > 0) {
		p->len = (uint32_t)r;
		if (saw_bytes(d, c, p, p->buf, (size_t)r) == 0) {
			pump_tls_down(d, c);
		}
		return;
	}
	/* Reading may have produced output (a key update answer). */
	net_flush(d, c);
	if (r == 0 || (r == -EAGAIN && c->net_eof)) {
		/* close_notify, or the TCP stream ended: end of the app's input. */
		p->eof = 1;
		shutdown(c->a_fd, SHUT_WR);
		p->shut = 1;
		check_done(d, c);
		return;
	}
	if (r == -EAGAIN) {
		net_want_input(d, c);
		return;
	}
	log_debug("conn %u: TLS read: %s", c->slot, tls_conn_detail(c->tls));
	conn_close(d, c, 1);
}

void pump_both(struct ldmeshd *d, struct conn *c)
{
	if (c->state != CS_PROXY || c->parked) {
		return;
	}
	if (c->tls) {
		pump_tls_up(d, c);
		if (c->state == CS_PROXY) {
			pump_tls_down(d, c);
		}
	} else {
		pump_plain(d, c, &c->up, UD_UP_RECV, UD_UP_SEND);
		if (c->state == CS_PROXY) {
			pump_plain(d, c, &c->down, UD_DOWN_RECV, UD_DOWN_SEND);
		}
	}
	/* A request just denied queues an answer for the up direction. */
	if (c->state == CS_PROXY && c->l7 && c->l7->inject_len && !c->up.spending) {
		if (c->tls) {
			pump_tls_up(d, c);
		} else {
			pump_plain(d, c, &c->up, UD_UP_RECV, UD_UP_SEND);
		}
	}
}

int conn_alloc_bufs(struct ldmeshd *d, struct conn *c)
{
	size_t bs = (size_t)d->cfg->buffer_size;

	if (!c->bufs || (c->tls && !c->bufs_tls)) {
		/* Grows from plain to TLS size on an inbound TLS connection. */
		char *b = realloc(c->bufs, (c->tls ? 4 : 2) * bs);
		if (!b) {
			return -ENOMEM;
		}
		c->bufs = b;
		c->bufs_tls = c->tls != NULL;
	}
	c->up.buf = c->bufs;
	c->down.buf = c->bufs + bs;
	if (c->tls) {
		c->nin = c->bufs + 2 * bs;
		c->nout = c->bufs + 3 * bs;
	}
	c->up.src = c->a_fd;
	c->up.dst = c->n_fd;
	c->down.src = c->n_fd;
	c->down.dst = c->a_fd;
	return 0;
}

/*
 * Connections get HTTP awareness until they prove not to be HTTP: inbound
 * always (policy, identity header), outbound when request metrics or the
 * access log want it (scan only).
 */
int conn_wants_l7(struct ldmeshd *d, struct conn *c)
{
	if (c->l7 || c->l7_done) {
		return c->l7 != NULL;
	}
	if (c->kind == CONN_OUTBOUND) {
		if (c->state != CS_PROXY || (!d->cfg->http_metrics && !accesslog_on(&d->alog))) {
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
	c->l7 = l7_new(d, (size_t)d->cfg->buffer_size);
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

void inject_sent(struct ldmeshd *d, struct conn *c)
{
	struct l7 *h = c->l7;

	h->inject_len = 0;
	h->hold = 0;
	if (h->close_after) {
		/* End both ways gracefully: FIN (or close_notify) to the client,
		 * end-of-file to the app. */
		c->up.eof = 1;
		c->down.eof = 1;
		c->down.off = c->down.len = 0;
		if (!c->down.shut) {
			shutdown(c->a_fd, SHUT_WR);
			c->down.shut = 1;
		}
	}
}

/* Outbound scan-only HTTP state that has nothing left to follow goes. */
static void scan_check(struct ldmeshd *d, struct conn *c)
{
	if (c->l7 && l7_scan_over(c->l7)) {
		l7_finish(d, c, c->l7);
		c->l7 = NULL;
		c->l7_done = 1;
	}
}

/* Plaintext bytes that came in on pipe p: metrics, and HTTP following for
 * whatever the HTTP layer does not consume itself (l7_down).  -errno: the
 * HTTP layer refused the connection, which is closed now. */
static int saw_bytes(struct ldmeshd *d, struct conn *c, struct pipe *p, const char *buf, size_t n)
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
	if (!conn_wants_l7(d, c)) {
		return 0;
	}
	if (c->kind == CONN_INBOUND) {
		if (p == &c->up) {
			r = l7_responses(d, c, buf, n);
		}
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

void pipe_recv_done(struct ldmeshd *d, struct conn *c, struct pipe *p, int res)
{
	p->rpending = 0;
	if (res == -ECANCELED) {
		park_read_cancelled(d, c);
		return;
	}
	if (c->parked) {
		c->parked = PARK_NO; /* input raced the cancel: stay awake */
	}
	if (res > 0) {
		p->len = (uint32_t)res;
		p->off = 0;
		if (saw_bytes(d, c, p, p->buf, (size_t)res) < 0) {
			return;
		}
	} else if (res == 0) {
		p->eof = 1;
	} else {
		log_debug("conn %u: recv: %s", c->slot, strerror(-res));
		conn_close(d, c, 1);
		return;
	}
	pump_both(d, c);
}

void pipe_send_done(struct ldmeshd *d, struct conn *c, struct pipe *p, int res)
{
	p->spending = 0;
	if (res < 0) {
		log_debug("conn %u: send: %s", c->slot, strerror(-res));
		conn_close(d, c, 1);
		return;
	}
	p->off += (uint32_t)res;
	pump_both(d, c);
}
