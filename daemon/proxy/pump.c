/*
 * The data path of a proxied connection: two pipes between its two
 * transports (the app end and the network end), bounded buffers,
 * half-close, the protocol stage's output (stage.h), and the events the
 * transports report.
 *
 * Each direction is src -> buf -> dst with one read or one write out at a
 * time: a read is asked for only when the previous chunk has gone out, so
 * a slow reader stops the writer and memory stays at the buffers.  The
 * pump never asks what kind of transport it has.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/conn_internal.h"
#include "proxy/links.h"
#include "proxy/route.h"
#include "proxy/stage.h"
#include "transport/transport.h"
#include "util/log.h"

static void check_done(struct proxy *d, struct conn *c)
{
	if (c->up.shut && c->down.shut) {
		conn_close(d, c, 0);
	}
}

static void end_both(struct proxy *d, struct conn *c);

/* n bytes of what p's write carried are gone (or taken): 0, or -1 when c
 * was closed. */
static int account(struct proxy *d, struct conn *c, struct pipe *p, enum pipe_write what, size_t n)
{
	int end;

	switch (what) {
	case PW_BYTES:
		p->off += (uint32_t)n;
		break;
	case PW_PREAMBLE:
		c->ctl_out_off += n;
		break;
	case PW_STAGE:
		stage_wrote(c, n);
		break;
	case PW_INJECT:
		end = stage_injected(d, c, n);
		if (end < 0) {
			conn_close(d, c, 1);
			return -1;
		}
		if (end) {
			end_both(d, c);
		}
		break;
	}
	return 0;
}

/* Writes buf..n to p's destination.  0: taken at once (accounted; the
 * caller goes on); 1: the caller waits (the write is out, pipe_written()
 * gets it, or c was closed). */
static int pipe_send(struct proxy *d, struct conn *c, struct pipe *p, const char *buf, size_t n,
		     enum pipe_write what)
{
	int r = transport_write(p->dst, buf, n);

	if (r == -EINPROGRESS) {
		p->spending = 1;
		p->wfrom = (uint8_t)what;
		return 1;
	}
	if (r < 0) {
		log_debug("conn %u: %s write: %s", c->slot, p->dst->ops->name, strerror(-r));
		c->close_errno = -r;
		conn_close(d, c, 1);
		return 1;
	}
	return account(d, c, p, what, (size_t)r) < 0 || c->state != CS_PROXY;
}

/* p's source ended: the end travels on, the other direction keeps going. */
static void pipe_end(struct proxy *d, struct conn *c, struct pipe *p)
{
	int r;

	if (p->shut || p->shutting) {
		return;
	}
	r = transport_shutdown(p->dst);
	if (r == -EINPROGRESS) {
		p->shutting = 1;
	} else if (r < 0) {
		conn_close(d, c, 1);
	} else {
		p->shut = 1;
		check_done(d, c);
	}
}

/* Ends both directions gracefully after an answer of ours: FIN (or
 * close_notify) to the client, end-of-file to the app. */
static void end_both(struct proxy *d, struct conn *c)
{
	c->up.eof = 1;
	c->down.eof = 1;
	c->down.off = c->down.len = 0;
	pipe_end(d, c, &c->down);
}

/* What a read on p returned (now or by event): 1 go on pumping, 0 stop. */
static int pipe_got(struct proxy *d, struct conn *c, struct pipe *p, int r)
{
	if (r > 0) {
		p->len = (uint32_t)r;
		p->off = 0;
		return stage_seen(d, c, p, p->buf, (size_t)r) == 0;
	}
	if (r == 0) {
		p->eof = 1;
		return 1;
	}
	log_debug("conn %u: %s read: %s", c->slot, p->src->ops->name, strerror(-r));
	c->close_errno = -r;
	conn_close(d, c, 1);
	return 0;
}

/* Asks p's source for more; 1 when bytes (or the end) came at once. */
static int pipe_read(struct proxy *d, struct conn *c, struct pipe *p)
{
	int r;

	if (p->rpending) {
		return 0;
	}
	r = transport_read(p->src, p->buf, c->bufsize);
	if (r == -EINPROGRESS) {
		p->rpending = 1;
		return 0;
	}
	return pipe_got(d, c, p, r);
}

/*
 * Gets the network's input in down.buf[off..len) to the app: the preamble
 * first (inbound), then through the stage, which may rewrite heads, drop
 * denied requests and hold input.  Returns 1 while something is in flight
 * or held (the caller waits), 0 once the input is used up.
 */
static int down_deliver(struct proxy *d, struct conn *c)
{
	struct pipe *p = &c->down;
	const char *buf;
	size_t n;

	for (;;) {
		if (p->spending) {
			return 1;
		}
		if (c->ctl_out_off < c->ctl_out_len) {
			if (pipe_send(d, c, p, c->ctl_out + c->ctl_out_off,
				      c->ctl_out_len - c->ctl_out_off, PW_PREAMBLE)) {
				return 1;
			}
			continue;
		}
		switch (stage_down(d, c, &buf, &n)) {
		case STAGE_WRITE:
			if (pipe_send(d, c, p, buf, n, PW_STAGE)) {
				return 1;
			}
			continue;
		case STAGE_WAIT:
			return 1;
		case STAGE_EMPTY:
			return 0;
		case STAGE_PASS:
			break;
		}
		if (p->off < p->len) {
			if (pipe_send(d, c, p, p->buf + p->off, p->len - p->off, PW_BYTES)) {
				return 1;
			}
			continue;
		}
		p->off = p->len = 0;
		return 0;
	}
}

/* network -> app */
static void pump_down(struct proxy *d, struct conn *c)
{
	struct pipe *p = &c->down;

	do {
		if (p->shut || p->shutting || c->state != CS_PROXY || down_deliver(d, c)) {
			return;
		}
		if (p->eof) {
			pipe_end(d, c, p);
			return;
		}
	} while (pipe_read(d, c, p));
}

/* app -> network, and answers of ours for the client */
static void pump_up(struct proxy *d, struct conn *c)
{
	struct pipe *p = &c->up;
	const char *buf;
	size_t n;
	int r;

	for (;;) {
		if (p->spending || p->shutting || c->state != CS_PROXY) {
			return;
		}
		if (p->off < p->len) {
			n = stage_up_room(c);
			if (!n) {
				/* A point where an answer of ours may go first. */
				r = stage_inject(d, c, &buf, &n);
				if (r < 0 || (r > 0 && pipe_send(d, c, p, buf, n, PW_INJECT))) {
					return;
				}
				if (r > 0) {
					continue;
				}
				n = p->len - p->off;
			}
			if (pipe_send(d, c, p, p->buf + p->off, n, PW_BYTES)) {
				return;
			}
			continue;
		}
		p->off = p->len = 0;
		/* An answer of ours waits only for the app's earlier answers to
		 * be out, not for the read posted on the app's side. */
		r = stage_inject(d, c, &buf, &n);
		if (r < 0 || (r > 0 && pipe_send(d, c, p, buf, n, PW_INJECT))) {
			return;
		}
		if (r > 0) {
			continue;
		}
		if (p->eof) {
			pipe_end(d, c, p);
			return;
		}
		if (!pipe_read(d, c, p)) {
			return;
		}
	}
}

void pump_both(struct proxy *d, struct conn *c)
{
	if (c->state != CS_PROXY || c->parked) {
		return;
	}
	if (c->rt) {
		route_pump(d, c); /* requests routed one by one */
		return;
	}
	pump_up(d, c);
	pump_down(d, c);
	/* A request just denied queues an answer for the up direction; once
	 * that is out (a TLS transport takes it at once), the requests held
	 * behind it go on. */
	if (stage_has_inject(c) && !c->up.spending) {
		pump_up(d, c);
		pump_down(d, c);
	}
}

static void pipe_read_done(struct proxy *d, struct conn *c, struct pipe *p, int res)
{
	p->rpending = 0;
	if (res == -ECANCELED) {
		park_read_cancelled(d, c);
		return;
	}
	if (c->parked) {
		c->parked = PARK_NO; /* input raced the cancel: stay awake */
	}
	if (pipe_got(d, c, p, res)) {
		pump_both(d, c);
	}
}

static void pipe_written(struct proxy *d, struct conn *c, struct pipe *p, int res)
{
	p->spending = 0;
	if (res < 0) {
		log_debug("conn %u: %s write: %s", c->slot, p->dst->ops->name, strerror(-res));
		c->close_errno = -res;
		conn_close(d, c, 1);
		return;
	}
	if (account(d, c, p, (enum pipe_write)p->wfrom, (size_t)res) == 0) {
		pump_both(d, c);
	}
}

static void pipe_shut_done(struct proxy *d, struct conn *c, struct pipe *p, int res)
{
	p->shutting = 0;
	if (res < 0) {
		conn_close(d, c, 1);
		return;
	}
	p->shut = 1;
	check_done(d, c);
	pump_both(d, c);
}

/*
 * Everything the two transports report comes here.  Before proxying, a
 * read belongs to the step that asked for it: the inbound detection (the
 * network's first bytes) or the outbound filler (the app's).
 */
void conn_transport_event(void *owner, struct transport *t, enum transport_event ev, int res)
{
	struct conn *c = owner;
	struct proxy *d = c->d;
	int from_app = t == c->app;

	if (c->state == CS_CLOSING) {
		return;
	}
	if (c->state == CS_PROXY && (c->kind == CONN_UPSTREAM || (c->rt && from_app))) {
		if (c->kind == CONN_UPSTREAM) {
			route_upstream_event(d, c, ev, res);
		} else {
			route_app_event(d, c, ev, res);
		}
		return;
	}
	switch (ev) {
	case TEV_OPEN:
		if (c->via_link) {
			links_stream_opened(d, c, res);
		} else {
			handshake_done(d, c, res);
		}
		break;
	case TEV_FLUSHED:
		if (c->flush_then_reset) {
			conn_close(d, c, 1);
		}
		break;
	case TEV_READABLE:
		park_wake(d, c, t);
		break;
	case TEV_READ:
		if (c->state == CS_DETECT) {
			detect_done(d, c, res);
		} else if (c->state == CS_FILLER) {
			filler_done(d, c, res);
		} else {
			pipe_read_done(d, c, from_app ? &c->up : &c->down, res);
		}
		break;
	case TEV_WRITTEN:
		pipe_written(d, c, from_app ? &c->down : &c->up, res);
		break;
	case TEV_SHUT:
		pipe_shut_done(d, c, from_app ? &c->down : &c->up, res);
		break;
	}
}

int conn_alloc_bufs(struct proxy *d, struct conn *c)
{
	size_t bs = c->bufsize;

	if (!c->bufs && !(c->bufs = malloc(2 * bs))) {
		return -ENOMEM;
	}
	c->up.buf = c->bufs;
	c->down.buf = c->bufs + bs;
	c->up.src = c->app;
	c->up.dst = c->net;
	c->down.src = c->net;
	c->down.dst = c->app;
	return 0;
}
