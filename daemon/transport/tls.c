/*
 * TLS over a lower transport.  Ciphertext comes in through one read of
 * the lower transport into nin and goes out one buffer at a time from
 * nout, so a slow peer stops the writer and memory stays at the buffers.
 * A write is handed to the engine only when earlier ciphertext is gone,
 * and is reported written once its first buffer of ciphertext is out, so
 * the next chunk is read while the rest goes.
 */
#include <errno.h>
#include <stdlib.h>

#include "identity/tls.h"
#include "transport/tls.h"
#include "util/clock.h"

struct tls_transport {
	struct transport t;
	struct transport *lower; /* borrowed */
	struct tls_conn *tls; /* owned */
	size_t bs;
	char *nin, *nout; /* one allocation (nin owns it); NULL while trimmed */
	uint32_t nout_len, nout_off;
	uint8_t nin_pending, nout_pending;
	uint8_t net_eof; /* the lower transport ended (or failed) */
	uint8_t notify_sent;
	uint8_t handshaking, failed;
	uint8_t want_read, want_shut, want_flush;
	uint8_t want_write; /* a write waits for earlier ciphertext to go */
	uint8_t written; /* a write the engine took, reported at the next send */
	char *rbuf;
	size_t rcap;
	const char *wbuf;
	size_t wlen;
	int err; /* the lower transport failed: -errno, sticky */
	int64_t verdict_since; /* client waiting for the server's verdict */
};

static struct tls_transport *of(struct transport *t)
{
	return (struct tls_transport *)t;
}

static int idle(const struct tls_transport *tt)
{
	return !tt->nout_pending && tt->nout_off == tt->nout_len &&
	       tls_conn_out_pending(tt->tls) == 0;
}

/*
 * The ciphertext of a buffer of plaintext: TLS 1.3 adds 22 bytes to each
 * record of up to 16 KiB (5 of header, 1 of content type, 16 of tag).  The
 * output buffer holds a whole chunk's records, so a chunk goes out in one
 * send: at exactly buffer_size it went out as a full buffer and a 44-byte
 * tail, a second send and a second TCP segment per chunk.
 */
#define TLS_RECORD_OVERHEAD 64 /* per record, with room to spare */

static size_t out_cap(size_t bs)
{
	return bs + (bs / 16384 + 2) * TLS_RECORD_OVERHEAD;
}

/* Both ciphertext buffers in one allocation: at the default buffer_size it
 * comes from mmap, so an idle connection's trim gives it back to the
 * system instead of leaving holes in the heap. */
static int bufs(struct tls_transport *tt)
{
	if (!tt->nin) {
		tt->nin = malloc(tt->bs + out_cap(tt->bs));
		if (!tt->nin) {
			return -ENOMEM;
		}
		tt->nout = tt->nin + tt->bs;
	}
	return 0;
}

/* Encrypts a chunk of plaintext: its records go straight into nout, which
 * is free (the transport is idle: nothing to send, no send out), saving the
 * copy out of the engine.  0, or -EPROTO / -ENOMEM. */
static int write_chunk(struct tls_transport *tt, const char *buf, size_t n)
{
	size_t len;
	int r;

	if (bufs(tt) < 0) {
		return -ENOMEM;
	}
	tls_conn_out_direct(tt->tls, tt->nout, out_cap(tt->bs));
	r = tls_conn_write(tt->tls, buf, n);
	len = tls_conn_out_direct_end(tt->tls);
	if (len) {
		tt->nout_off = 0;
		tt->nout_len = (uint32_t)len;
	}
	return r < 0 ? -EPROTO : 0;
}

/* Sends ciphertext the engine produced, one buffer at a time. */
static int flush_out(struct tls_transport *tt)
{
	int r;

	if (tt->nout_pending || tt->err) {
		return tt->err;
	}
	if (tt->nout_off == tt->nout_len) {
		if (tls_conn_out_pending(tt->tls) == 0) {
			return 0;
		}
		if (bufs(tt) < 0) {
			return tt->err = -ENOMEM;
		}
		tt->nout_off = 0;
		tt->nout_len = (uint32_t)tls_conn_out_take(tt->tls, tt->nout, out_cap(tt->bs));
		if (!tt->nout_len) {
			return 0;
		}
	}
	r = transport_write(tt->lower, tt->nout + tt->nout_off, tt->nout_len - tt->nout_off);
	if (r != -EINPROGRESS) {
		return tt->err = r < 0 ? r : -EIO;
	}
	tt->nout_pending = 1;
	return 0;
}

/* Asks the lower transport for ciphertext unless a read is out. */
static int want_input(struct tls_transport *tt)
{
	int r;

	if (tt->nin_pending || tt->net_eof || tt->err) {
		return tt->err;
	}
	/* nin was lent to the engine (lower_read_done): take it back first. */
	if (bufs(tt) < 0 || tls_conn_unborrow(tt->tls) < 0) {
		return tt->err = -ENOMEM;
	}
	r = transport_read(tt->lower, tt->nin, tt->bs);
	if (r != -EINPROGRESS) {
		return tt->err = r < 0 ? r : -EIO; /* streams never read at once */
	}
	tt->nin_pending = 1;
	return 0;
}

/* One handshake step: 0 done, -EINPROGRESS waiting for the peer, -errno
 * failed (the alert, if any, is still going out: see flush). */
static int handshake_step(struct tls_transport *tt)
{
	int r = tls_conn_handshake(tt->tls), f = flush_out(tt);

	if (r == 0 && !tt->net_eof && !f) {
		if (!tt->verdict_since && tls_conn_finished(tt->tls)) {
			/* A client waiting for the server to accept its certificate. */
			tt->verdict_since = now_ms();
		}
		f = want_input(tt);
		if (!f) {
			return -EINPROGRESS;
		}
	}
	tt->handshaking = 0;
	if (r == 1 && !f) {
		return 0;
	}
	tt->failed = 1;
	return r < 0 ? r : f < 0 ? f : -EPROTO; /* the peer hung up mid-way */
}

static void handshake_event(struct tls_transport *tt)
{
	int r = handshake_step(tt);

	if (r != -EINPROGRESS) {
		transport_event(&tt->t, TEV_OPEN, r);
	}
}

/* Plaintext for the owner's outstanding read, now that input came. */
static void deliver_read(struct tls_transport *tt)
{
	int r = tls_conn_read(tt->tls, tt->rbuf, tt->rcap), f = flush_out(tt);

	if (r == -EAGAIN && !tt->net_eof) {
		f = f ? f : want_input(tt);
		if (!f) {
			return;
		}
		r = f;
	} else if (r == -EAGAIN) {
		r = tt->err ? tt->err : 0; /* the TCP stream ended: end of input */
	}
	tt->want_read = 0;
	transport_event(&tt->t, TEV_READ, r);
}

/* The owner's waits that an empty output satisfies, in order. */
static void drained(struct tls_transport *tt)
{
	int f = flush_out(tt);

	if (f < 0) {
		if (tt->want_write) {
			tt->want_write = 0;
			transport_event(&tt->t, TEV_WRITTEN, f);
		} else if (tt->want_shut) {
			tt->want_shut = 0;
			transport_event(&tt->t, TEV_SHUT, f);
		} else if (tt->want_flush) {
			tt->want_flush = 0;
			transport_event(&tt->t, TEV_FLUSHED, f);
		}
		return;
	}
	if (!idle(tt)) {
		return;
	}
	if (tt->want_write) {
		/* Taken now, reported now: the next chunk is read while this
		 * one's ciphertext goes out. */
		tt->want_write = 0;
		f = write_chunk(tt, tt->wbuf, tt->wlen);
		if (f < 0) {
			transport_event(&tt->t, TEV_WRITTEN, f);
			return;
		}
		f = flush_out(tt);
		if (f < 0) {
			transport_event(&tt->t, TEV_WRITTEN, f);
		} else {
			tt->written = 1; /* reported at the next send, as above */
		}
		return;
	}
	if (tt->want_shut) {
		tt->want_shut = 0;
		transport_shutdown(tt->lower);
		transport_event(&tt->t, TEV_SHUT, 0);
		return;
	}
	if (tt->want_flush) {
		tt->want_flush = 0;
		transport_event(&tt->t, TEV_FLUSHED, 0);
	}
}

static void lower_read_done(struct tls_transport *tt, int res)
{
	tt->nin_pending = 0;
	if (res == -ECANCELED && !tt->handshaking) {
		if (tt->want_read) { /* the owner called its read off */
			tt->want_read = 0;
			transport_event(&tt->t, TEV_READ, -ECANCELED);
		}
		return;
	}
	if (res < 0) {
		tt->net_eof = 1;
		tt->err = res;
	} else if (res == 0) {
		tt->net_eof = 1;
	} else if (tls_conn_feed_borrowed(tt->tls, tt->nin, (size_t)res) < 0) {
		tt->net_eof = 1;
		tt->err = -ENOMEM;
	}
	if (tt->handshaking) {
		handshake_event(tt);
	} else if (tt->want_read) {
		deliver_read(tt);
	}
	/* Otherwise the input waits in the engine until the owner reads. */
}

static void lower_event(void *owner, struct transport *lower, enum transport_event ev, int res)
{
	struct tls_transport *tt = owner;

	(void)lower;
	switch (ev) {
	case TEV_READ:
		lower_read_done(tt, res);
		break;
	case TEV_WRITTEN:
		tt->nout_pending = 0;
		if (res < 0) {
			tt->err = res;
		} else {
			tt->nout_off += (uint32_t)res;
		}
		if (tt->failed && !tt->want_flush) {
			flush_out(tt); /* the alert of a failed handshake goes on out */
			break;
		}
		if (tt->written) {
			tt->written = 0;
			flush_out(tt);
			transport_event(&tt->t, TEV_WRITTEN, tt->err ? tt->err : (int)tt->wlen);
			break;
		}
		drained(tt);
		break;
	case TEV_READABLE:
		transport_event(&tt->t, TEV_READABLE, res);
		break;
	default:
		break; /* a stream reports nothing else */
	}
}

/* ---- the transport ------------------------------------------------------ */

static int tt_open(struct transport *t)
{
	struct tls_transport *tt = of(t);

	tt->handshaking = 1;
	return handshake_step(tt);
}

static int tt_read(struct transport *t, char *buf, size_t cap)
{
	struct tls_transport *tt = of(t);
	int r, f;

	if (tt->want_read) {
		return -EBUSY;
	}
	r = tls_conn_read(tt->tls, buf, cap);
	/* Reading may have produced output (a key update answer). */
	f = flush_out(tt);
	if (r != -EAGAIN) {
		return r;
	}
	if (tt->net_eof || f) {
		return tt->err; /* 0: the TCP stream ended, end of input */
	}
	tt->want_read = 1;
	tt->rbuf = buf;
	tt->rcap = cap;
	f = want_input(tt);
	if (f) {
		tt->want_read = 0;
		return f;
	}
	return -EINPROGRESS;
}

static int tt_write(struct transport *t, const char *buf, size_t n)
{
	struct tls_transport *tt = of(t);
	int r;

	if (tt->want_write || tt->written) {
		return -EBUSY;
	}
	if (tt->err) {
		return tt->err;
	}
	if (!idle(tt)) {
		/* One chunk's ciphertext at a time: this one waits (drained()). */
		tt->want_write = 1;
		tt->wbuf = buf;
		tt->wlen = n;
		return -EINPROGRESS;
	}
	r = write_chunk(tt, buf, n);
	if (r < 0) {
		return r;
	}
	if (flush_out(tt) < 0) {
		return tt->err;
	}
	/* Reported when its first buffer of ciphertext has gone: the caller
	 * reads its next chunk while the rest goes out, and by then that
	 * chunk has had time to grow (fewer, fuller records). */
	tt->wlen = n;
	tt->written = 1;
	return -EINPROGRESS;
}

static int tt_shutdown(struct transport *t)
{
	struct tls_transport *tt = of(t);

	if (!tt->notify_sent) {
		tls_conn_close_notify(tt->tls);
		tt->notify_sent = 1;
	}
	if (flush_out(tt) < 0) {
		return tt->err;
	}
	if (idle(tt)) {
		return transport_shutdown(tt->lower);
	}
	tt->want_shut = 1;
	return -EINPROGRESS;
}

static int tt_flush(struct transport *t)
{
	struct tls_transport *tt = of(t);

	if (flush_out(tt) < 0) {
		return tt->err;
	}
	if (idle(tt)) {
		return 0;
	}
	tt->want_flush = 1;
	return -EINPROGRESS;
}

static int tt_cancel_read(struct transport *t)
{
	struct tls_transport *tt = of(t);

	if (!tt->nin_pending) {
		return -ENOENT;
	}
	return tt->lower->ops->cancel_read(tt->lower);
}

static int tt_wait_readable(struct transport *t)
{
	struct tls_transport *tt = of(t);

	return tt->lower->ops->wait_readable(tt->lower);
}

static void tt_cancel_wait(struct transport *t)
{
	struct tls_transport *tt = of(t);

	tt->lower->ops->cancel_wait(tt->lower);
}

static int tt_trim(struct transport *t)
{
	struct tls_transport *tt = of(t);

	if (!idle(tt) || tt->nin_pending || tls_conn_trim(tt->tls) == -EAGAIN) {
		return -EAGAIN;
	}
	free(tt->nin);
	tt->nin = tt->nout = NULL;
	tt->nout_len = tt->nout_off = 0;
	return 0;
}

static void tt_close(struct transport *t)
{
	struct tls_transport *tt = of(t);

	t->closed = 1;
	tt->lower->ops->close(tt->lower);
}

static int tt_inflight(const struct transport *t)
{
	const struct tls_transport *tt = (const struct tls_transport *)t;

	return tt->lower->ops->inflight(tt->lower);
}

static void tt_destroy(struct transport *t)
{
	struct tls_transport *tt = of(t);

	tls_conn_free(tt->tls);
	free(tt->nin);
	free(tt);
}

static const struct transport_ops tls_ops = {
	.name = "tls",
	.open = tt_open,
	.read = tt_read,
	.write = tt_write,
	.shutdown = tt_shutdown,
	.flush = tt_flush,
	.cancel_read = tt_cancel_read,
	.wait_readable = tt_wait_readable,
	.cancel_wait = tt_cancel_wait,
	.trim = tt_trim,
	.close = tt_close,
	.inflight = tt_inflight,
	.destroy = tt_destroy,
};

struct transport *tls_transport_new(struct tls_conn *tls, struct transport *lower, size_t buf_size)
{
	struct tls_transport *tt = calloc(1, sizeof(*tt));

	if (!tt) {
		return NULL;
	}
	tt->t.ops = &tls_ops;
	tt->lower = lower;
	tt->tls = tls;
	tt->bs = buf_size;
	transport_set_owner(lower, lower_event, tt);
	return &tt->t;
}

struct tls_conn *tls_transport_engine(struct transport *t)
{
	return t && t->ops == &tls_ops ? of(t)->tls : NULL;
}

int tls_transport_tick(struct transport *t, int64_t now)
{
	struct tls_transport *tt = of(t);

	if (!tt->handshaking || !tt->verdict_since ||
	    now - tt->verdict_since < TLS_VERDICT_WAIT_MS) {
		return -EINPROGRESS; /* nothing new */
	}
	tls_conn_accept_verdict(tt->tls);
	return handshake_step(tt);
}

int tls_transport_admit(struct transport *t)
{
	struct tls_transport *tt = of(t);

	tls_conn_admit(tt->tls);
	return flush_out(tt);
}

void tls_transport_goodbye(struct transport *t)
{
	struct tls_transport *tt = of(t);

	if (!tt->notify_sent) {
		tls_conn_close_notify(tt->tls);
		tt->notify_sent = 1;
	}
	flush_out(tt);
}
