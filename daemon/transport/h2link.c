/*
 * HTTP/2 links: nghttp2 sessions over a lower transport, and their CONNECT
 * streams as transports (h2link.h).
 *
 * Input: one read at a time on the lower transport into ibuf, fed to
 * nghttp2; a stream's DATA goes straight into its owner's read buffer when
 * a read is out, else into the stream's queue, and the stream's window is
 * given back only as the owner reads.  So the link never stops reading,
 * and a stream whose owner stops reading is stopped by its own window.
 *
 * Output: nghttp2 serializes frames (a stream's DATA from its owner's
 * write buffer) into obuf, which goes to the lower transport in one write.
 *
 * Nothing is reported to an owner from inside nghttp2's callbacks or from
 * inside an owner's call: events are marked due on the stream and
 * delivered by run(), at the end of each lower-transport event or from
 * the post the link asks for.
 */
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/h2link.h"
#include "util/clock.h"

#define OBUF_SIZE (64 * 1024)
#define LINK_WINDOW (16 * 1024 * 1024) /* connection-level receive window */

/* Events a stream has due, by bit (1 << enum transport_event). */
#define DUE(ev) (1u << (ev))

struct h2stream {
	struct transport t;
	struct h2link *link;
	struct h2stream *prev, *next; /* the link's streams */
	struct h2stream *due_next; /* the link's run list */
	int32_t id; /* nghttp2's; 0 before the CONNECT went, -1 once closed */
	uint8_t server;
	uint8_t on_due_list;
	uint8_t accept_due; /* server: H2L_STREAM to report */
	uint8_t owned; /* an owner has it (client streams from the start) */
	uint8_t counted_open; /* in the link's streams_open */
	uint8_t opened; /* client: 2xx came; server: we answered 2xx */
	uint8_t answered; /* server: a response was submitted */
	uint8_t remote_eof; /* END_STREAM came */
	uint8_t eof_sent; /* our END_STREAM went */
	uint8_t shut_req; /* the owner asked to end our direction */
	uint8_t data_deferred; /* the data source said "nothing now" */
	uint8_t peer_done; /* the peer answered in full and wants no more */
	uint8_t want_read, want_write, want_shut, want_readable;
	uint8_t doomed; /* destroyed by its owner during its own event: freed after */
	int err; /* sticky: the stream failed (reset, link dead) */
	int status; /* client: the answer's :status */
	unsigned due; /* events to report, DUE() bits */
	int due_res[TEV_READABLE + 1];

	char *rq; /* input the owner has not read yet */
	size_t rq_off, rq_len, rq_cap;
	char *rbuf; /* the owner's outstanding read */
	size_t rcap, rfill;
	size_t unconsumed; /* read from callbacks, window not given back yet */
	const char *wbuf; /* the owner's outstanding write */
	size_t wlen, woff;

	char *method, *authority, *forwarded;
};

struct h2link {
	nghttp2_session *s;
	struct transport *lower;
	struct h2link_owner owner;
	struct h2link_params p;
	int server;
	struct h2stream *streams;
	struct h2stream *due_head, *due_tail;
	struct h2stream *delivering; /* the stream whose events are being told */
	uint32_t streams_open;
	uint64_t streams_total, bytes_in, bytes_out;
	uint8_t started, opened, draining, dead, released, posted, running;
	uint8_t open_due, idle_due, closed_due;
	uint8_t in_pending, out_pending, ping_out;
	int dead_err;
	char *ibuf;
	size_t ibuf_cap;
	char *obuf;
	size_t olen;
	const uint8_t *spill; /* the rest of nghttp2's last frame, valid until
			       * the next mem_send */
	size_t spill_len;
	size_t discard; /* DATA for streams nobody reads: window to give back */
	int64_t last_in_ms, ping_sent_ms;
};

static void link_fail(struct h2link *l, int err);
static void link_free(struct h2link *l);
static void flush_out(struct h2link *l);
static void want_input(struct h2link *l);

static struct h2stream *of(const struct transport *t)
{
	return (struct h2stream *)t;
}

/* ---- the run list ------------------------------------------------------- */

static void ask_run(struct h2link *l)
{
	if (!l->posted && !l->running && l->owner.post) {
		if (l->owner.post(l->owner.owner, l) == 0) {
			l->posted = 1;
		}
	}
}

static void put_due(struct h2stream *st)
{
	struct h2link *l = st->link;

	if (st->on_due_list || !l) {
		return;
	}
	st->on_due_list = 1;
	st->due_next = NULL;
	if (l->due_tail) {
		l->due_tail->due_next = st;
	} else {
		l->due_head = st;
	}
	l->due_tail = st;
	ask_run(l);
}

static void take_due(struct h2link *l, struct h2stream *st)
{
	struct h2stream **pp, *p;

	if (!st->on_due_list) {
		return;
	}
	st->on_due_list = 0;
	for (pp = &l->due_head; *pp; pp = &(*pp)->due_next) {
		if (*pp == st) {
			*pp = st->due_next;
			break;
		}
	}
	l->due_tail = NULL;
	for (p = l->due_head; p; p = p->due_next) {
		l->due_tail = p;
	}
}

static void due(struct h2stream *st, enum transport_event ev, int res)
{
	st->due |= DUE(ev);
	st->due_res[ev] = res;
	put_due(st);
}

/* ---- input for a stream --------------------------------------------------- */

/* What a waiting owner is told now that input (or its end) is here. */
static void input_changed(struct h2stream *st)
{
	if (st->want_read && (st->rfill || st->remote_eof || st->err)) {
		st->want_read = 0;
		due(st, TEV_READ, st->rfill ? (int)st->rfill : st->err);
		st->rfill = 0;
	}
	if (st->want_readable && (st->rq_len || st->remote_eof || st->err)) {
		st->want_readable = 0;
		due(st, TEV_READABLE, 1);
	}
}

static int queue_input(struct h2stream *st, const uint8_t *data, size_t len)
{
	if (st->rq_off + st->rq_len + len > st->rq_cap) {
		size_t need = st->rq_len + len, cap = st->rq_cap ? st->rq_cap : 16384;
		char *n;
		if (st->rq_off) {
			memmove(st->rq, st->rq + st->rq_off, st->rq_len);
			st->rq_off = 0;
		}
		while (cap < need) {
			cap *= 2;
		}
		if (cap != st->rq_cap) {
			n = realloc(st->rq, cap);
			if (!n) {
				return -ENOMEM;
			}
			st->rq = n;
			st->rq_cap = cap;
		}
	}
	memcpy(st->rq + st->rq_off + st->rq_len, data, len);
	st->rq_len += len;
	return 0;
}

/* ---- nghttp2 callbacks ---------------------------------------------------- */

static struct h2stream *stream_of(nghttp2_session *s, int32_t id)
{
	return nghttp2_session_get_stream_user_data(s, id);
}

static void stream_unlink(struct h2stream *st)
{
	struct h2link *l = st->link;

	if (!l) {
		return;
	}
	take_due(l, st);
	if (st->prev) {
		st->prev->next = st->next;
	} else {
		l->streams = st->next;
	}
	if (st->next) {
		st->next->prev = st->prev;
	}
	st->prev = st->next = NULL;
}

static struct h2stream *stream_alloc(struct h2link *l, int server);
static void stream_free(struct h2stream *st);

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct h2link *l = ud;
	struct h2stream *st;

	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST || !l->server) {
		return 0;
	}
	st = stream_alloc(l, 1);
	if (!st) {
		nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id,
					  NGHTTP2_INTERNAL_ERROR);
		return 0;
	}
	st->id = f->hd.stream_id;
	nghttp2_session_set_stream_user_data(s, st->id, st);
	return 0;
}

static char *dup_value(const uint8_t *v, size_t n)
{
	char *p = malloc(n + 1);

	if (p) {
		memcpy(p, v, n);
		p[n] = 0;
	}
	return p;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	struct h2stream *st = stream_of(s, f->hd.stream_id);
	char **slot = NULL;

	(void)flags;
	(void)ud;
	if (!st || f->hd.type != NGHTTP2_HEADERS) {
		return 0;
	}
	if (!st->server) {
		if (namelen == 7 && !memcmp(name, ":status", 7) && valuelen == 3) {
			st->status =
				(value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
		}
		return 0;
	}
	if (namelen == 7 && !memcmp(name, ":method", 7)) {
		slot = &st->method;
	} else if (namelen == 10 && !memcmp(name, ":authority", 10)) {
		slot = &st->authority;
	} else if (namelen == 9 && !memcmp(name, "forwarded", 9)) {
		slot = &st->forwarded;
	}
	if (slot && !*slot) {
		*slot = dup_value(value, valuelen);
		if (!*slot) {
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
		}
	}
	return 0;
}

static void count_open(struct h2stream *st)
{
	if (!st->counted_open) {
		st->counted_open = 1;
		st->link->streams_open++;
		st->link->streams_total++;
	}
}

static void request_arrived(nghttp2_session *s, struct h2link *l, struct h2stream *st)
{
	if (!st->method || strcmp(st->method, "CONNECT") || !st->authority || l->draining) {
		/* Only CONNECT is spoken here (nghttp2 checked its form). */
		nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, st->id,
					  l->draining ? NGHTTP2_REFUSED_STREAM
						      : NGHTTP2_PROTOCOL_ERROR);
		return;
	}
	count_open(st);
	st->accept_due = 1;
	put_due(st);
}

static void response_arrived(struct h2stream *st)
{
	if (st->status >= 200 && st->status < 300) {
		st->opened = 1;
		due(st, TEV_OPEN, 0);
		return;
	}
	if (st->status >= 100 && st->status < 200) {
		st->status = 0; /* informational: the answer is still to come */
		return;
	}
	st->err = h2link_errno_of_status(st->status);
	due(st, TEV_OPEN, st->err);
	nghttp2_submit_rst_stream(st->link->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct h2link *l = ud;
	struct h2stream *st = f->hd.stream_id ? stream_of(s, f->hd.stream_id) : NULL;

	l->last_in_ms = now_ms();
	l->ping_out = 0; /* any frame shows the peer alive, not only the ACK */
	switch (f->hd.type) {
	case NGHTTP2_HEADERS:
		if (!st) {
			break;
		}
		if (f->headers.cat == NGHTTP2_HCAT_REQUEST && st->server) {
			request_arrived(s, l, st);
		} else if (f->headers.cat == NGHTTP2_HCAT_RESPONSE && !st->server) {
			response_arrived(st);
		}
		break;
	case NGHTTP2_PING:
		if (f->hd.flags & NGHTTP2_FLAG_ACK) {
			l->ping_out = 0;
		}
		break;
	case NGHTTP2_GOAWAY:
		l->draining = 1;
		break;
	default:
		break;
	}
	if (st && (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
	    (f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS)) {
		st->remote_eof = 1;
		input_changed(st);
	}
	return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
			 size_t len, void *ud)
{
	struct h2link *l = ud;
	struct h2stream *st = stream_of(s, id);

	(void)flags;
	if (!st || st->t.closed || st->err) {
		l->discard += len;
		return 0;
	}
	/* Straight into the owner's waiting read while it has room. */
	if (st->want_read && !st->rq_len && st->rfill < st->rcap) {
		size_t n = st->rcap - st->rfill < len ? st->rcap - st->rfill : len;
		memcpy(st->rbuf + st->rfill, data, n);
		st->rfill += n;
		st->unconsumed += n;
		data += n;
		len -= n;
	}
	if (len && queue_input(st, data, len) < 0) {
		nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
		l->discard += len;
	}
	input_changed(st);
	put_due(st); /* for the window of what the owner got */
	return 0;
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct h2stream *st;

	(void)ud;
	if (!f->hd.stream_id || !(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
		return 0;
	}
	st = stream_of(s, f->hd.stream_id);
	if (st && (f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS)) {
		st->eof_sent = 1;
		if (st->want_shut) {
			st->want_shut = 0;
			due(st, TEV_SHUT, 0);
		}
	}
	return 0;
}

/* A stream failed: whatever its owner waits for ends with err. */
static void stream_failed(struct h2stream *st, int err)
{
	if (!st->err) {
		st->err = err;
	}
	if (!st->server && !st->opened && !(st->due & DUE(TEV_OPEN)) && st->id) {
		due(st, TEV_OPEN, st->err);
	}
	if (st->want_write) {
		st->want_write = 0;
		due(st, TEV_WRITTEN, st->err);
	}
	if (st->want_shut) {
		st->want_shut = 0;
		due(st, TEV_SHUT, st->err);
	}
	input_changed(st);
}

static void peer_done(struct h2stream *st)
{
	st->peer_done = 1;
	if (st->want_write) {
		st->want_write = 0;
		due(st, TEV_WRITTEN, (int)st->wlen);
	}
	if (st->want_shut) {
		st->want_shut = 0;
		due(st, TEV_SHUT, 0);
	}
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
	struct h2link *l = ud;
	struct h2stream *st = stream_of(s, id);

	if (!st) {
		return 0;
	}
	nghttp2_session_set_stream_user_data(s, id, NULL);
	st->id = -1;
	if (st->counted_open) {
		st->counted_open = 0;
		l->streams_open--;
		if (!l->streams_open) {
			l->idle_due = 1;
			ask_run(l);
		}
	}
	if (code == NGHTTP2_NO_ERROR && st->remote_eof && !st->eof_sent) {
		/* A complete answer, then "send no more" (RFC 9113 8.1): what
		 * the owner still writes is dropped, not failed, so its app
		 * gets the answer and an end, not a reset. */
		peer_done(st);
	} else if (code != NGHTTP2_NO_ERROR || !st->remote_eof || !st->eof_sent) {
		/* Refused unprocessed (a GOAWAY, or the peer's stream limit):
		 * -EAGAIN, which the owner may try again elsewhere. */
		stream_failed(st, code == NGHTTP2_REFUSED_STREAM && !st->opened ? -EAGAIN
										: -ECONNRESET);
	}
	if (!st->owned) {
		/* Ended before anyone took it: nobody will. */
		st->accept_due = 0;
		stream_unlink(st);
		st->link = NULL;
		st->t.ops->destroy(&st->t);
	}
	return 0;
}

/* The owner's write buffer, as DATA frames. */
static ssize_t data_source(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length,
			   uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	struct h2stream *st = src->ptr;
	size_t n;

	(void)s;
	(void)id;
	(void)ud;
	if (st->err) {
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	n = st->want_write ? st->wlen - st->woff : 0;
	if (!n && !st->shut_req) {
		st->data_deferred = 1;
		return NGHTTP2_ERR_DEFERRED;
	}
	if (n > length) {
		n = length;
	}
	if (n) {
		memcpy(buf, st->wbuf + st->woff, n);
		st->woff += n;
	}
	if (st->want_write && st->woff == st->wlen) {
		st->want_write = 0;
		due(st, TEV_WRITTEN, (int)st->wlen);
	}
	if (st->shut_req && !st->want_write) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	}
	return (ssize_t)n;
}

static void resume(struct h2stream *st)
{
	if (st->data_deferred && st->id > 0) {
		st->data_deferred = 0;
		nghttp2_session_resume_data(st->link->s, st->id);
	}
}

/* ---- the link's input and output ------------------------------------------ */

static void flush_out(struct h2link *l)
{
	int r;

	while (!l->out_pending && !l->dead && l->started) {
		while (l->olen < OBUF_SIZE) {
			const uint8_t *p;
			ssize_t n;
			size_t take;

			if (l->spill_len) {
				p = l->spill;
				n = (ssize_t)l->spill_len;
				l->spill_len = 0;
			} else {
				n = nghttp2_session_mem_send(l->s, &p);
				if (n < 0) {
					link_fail(l, -EPROTO);
					return;
				}
				if (n == 0) {
					break;
				}
			}
			take = OBUF_SIZE - l->olen < (size_t)n ? OBUF_SIZE - l->olen : (size_t)n;
			memcpy(l->obuf + l->olen, p, take);
			l->olen += take;
			if (take < (size_t)n) {
				l->spill = p + take;
				l->spill_len = (size_t)n - take;
			}
		}
		if (!l->olen) {
			break;
		}
		r = transport_write(l->lower, l->obuf, l->olen);
		if (r == -EINPROGRESS) {
			l->out_pending = 1;
			break;
		}
		if (r < 0) {
			link_fail(l, r);
			return;
		}
		l->bytes_out += (uint64_t)r;
		memmove(l->obuf, l->obuf + r, l->olen - (size_t)r);
		l->olen -= (size_t)r;
	}
	if (!l->dead && l->started && !l->out_pending && !nghttp2_session_want_read(l->s) &&
	    !nghttp2_session_want_write(l->s)) {
		link_fail(l, 0); /* GOAWAY both ways and nothing left */
	}
}

static void feed(struct h2link *l, size_t n)
{
	ssize_t r;

	l->bytes_in += n;
	r = nghttp2_session_mem_recv(l->s, (const uint8_t *)l->ibuf, n);
	if (r < 0) {
		link_fail(l, -EPROTO);
		return;
	}
	if (l->discard) {
		nghttp2_session_consume_connection(l->s, l->discard);
		l->discard = 0;
	}
}

static void want_input(struct h2link *l)
{
	int r;

	while (!l->in_pending && !l->dead) {
		r = transport_read(l->lower, l->ibuf, l->ibuf_cap);
		if (r == -EINPROGRESS) {
			l->in_pending = 1;
			return;
		}
		if (r <= 0) {
			link_fail(l, r ? r : -ECONNRESET);
			return;
		}
		feed(l, (size_t)r);
	}
}

/* ---- delivering events ------------------------------------------------------ */

static void deliver_stream(struct h2link *l, struct h2stream *st)
{
	static const enum transport_event order[] = {TEV_OPEN, TEV_READ,     TEV_WRITTEN,
						     TEV_SHUT, TEV_READABLE, TEV_FLUSHED};
	size_t i;

	if (st->unconsumed && st->id > 0) {
		nghttp2_session_consume(l->s, st->id, st->unconsumed);
	} else if (st->unconsumed) {
		nghttp2_session_consume_connection(l->s, st->unconsumed);
	}
	st->unconsumed = 0;
	if (st->accept_due) {
		/* The owner may refuse and destroy it right there; nothing else
		 * can be due on a stream nobody had yet. */
		st->accept_due = 0;
		st->owned = 1;
		l->delivering = st;
		l->owner.event(l->owner.owner, l, H2L_STREAM, &st->t, 0);
		l->delivering = NULL;
		if (st->doomed) {
			stream_free(st);
		}
		return;
	}
	l->delivering = st;
	for (i = 0; i < sizeof(order) / sizeof(order[0]) && !st->doomed; i++) {
		if (st->due & DUE(order[i])) {
			st->due &= ~DUE(order[i]);
			transport_event(&st->t, order[i], st->due_res[order[i]]);
		}
	}
	l->delivering = NULL;
	if (st->doomed) {
		stream_free(st);
	}
}

void h2link_run(struct h2link *l)
{
	int again = 1;

	l->posted = 0;
	if (l->running) {
		return;
	}
	l->running = 1;
	while (again) {
		again = 0;
		flush_out(l);
		if (l->open_due) {
			l->open_due = 0;
			l->owner.event(l->owner.owner, l, H2L_OPEN, NULL, 0);
		}
		while (l->due_head) {
			struct h2stream *st = l->due_head;
			l->due_head = st->due_next;
			if (!l->due_head) {
				l->due_tail = NULL;
			}
			st->on_due_list = 0;
			deliver_stream(l, st);
			again = 1;
		}
		if (l->idle_due) {
			l->idle_due = 0;
			if (!l->streams_open && !l->dead) {
				l->owner.event(l->owner.owner, l, H2L_IDLE, NULL, 0);
			}
		}
		if (l->closed_due) {
			l->closed_due = 0;
			l->owner.event(l->owner.owner, l, H2L_CLOSED, NULL, l->dead_err);
		}
	}
	/* What the owners did may have queued output (window updates). */
	flush_out(l);
	l->running = 0;
	if (l->released && !l->streams) {
		link_free(l);
		return;
	}
	if (l->due_head || l->open_due || l->closed_due) {
		ask_run(l);
	}
}

static void lower_event(void *owner, struct transport *t, enum transport_event ev, int res)
{
	struct h2link *l = owner;

	(void)t;
	switch (ev) {
	case TEV_READ:
		l->in_pending = 0;
		if (l->dead) {
			break;
		}
		if (res <= 0) {
			link_fail(l, res ? res : -ECONNRESET);
			break;
		}
		feed(l, (size_t)res);
		want_input(l);
		break;
	case TEV_WRITTEN:
		l->out_pending = 0;
		if (res < 0) {
			link_fail(l, res);
			break;
		}
		l->bytes_out += (uint64_t)res;
		memmove(l->obuf, l->obuf + res, l->olen - (size_t)res);
		l->olen -= (size_t)res;
		break;
	default:
		break;
	}
	h2link_run(l);
}

/* ---- the link ------------------------------------------------------------------ */

static void link_fail(struct h2link *l, int err)
{
	struct h2stream *st, *next;

	if (l->dead) {
		return;
	}
	l->dead = 1;
	l->dead_err = err;
	for (st = l->streams; st; st = next) {
		next = st->next;
		if (st->counted_open) {
			st->counted_open = 0;
			l->streams_open--;
		}
		if (!st->owned) {
			/* Nobody took it yet: nobody will. */
			stream_unlink(st);
			st->link = NULL;
			st->t.ops->destroy(&st->t);
			continue;
		}
		stream_failed(st, -ECONNRESET);
	}
	l->lower->ops->close(l->lower);
	l->closed_due = 1;
	ask_run(l);
}

struct h2link *h2link_new(struct transport *lower, int server, const struct h2link_params *p,
			  const struct h2link_owner *owner)
{
	struct h2link *l = calloc(1, sizeof(*l));
	nghttp2_session_callbacks *cb = NULL;
	nghttp2_option *opt = NULL;
	int r;

	if (!l) {
		return NULL;
	}
	l->lower = lower;
	l->owner = *owner;
	l->p = *p;
	l->server = server;
	l->ibuf_cap = p->buf_size ? p->buf_size : 16384;
	l->ibuf = malloc(l->ibuf_cap);
	l->obuf = malloc(OBUF_SIZE);
	if (!l->ibuf || !l->obuf || nghttp2_session_callbacks_new(&cb) ||
	    nghttp2_option_new(&opt)) {
		goto fail;
	}
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	/* Windows are given back as owners read, not as frames arrive. */
	nghttp2_option_set_no_auto_window_update(opt, 1);
	r = server ? nghttp2_session_server_new2(&l->s, cb, l, opt)
		   : nghttp2_session_client_new2(&l->s, cb, l, opt);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	if (r) {
		free(l->ibuf);
		free(l->obuf);
		free(l);
		return NULL;
	}
	transport_set_owner(lower, lower_event, l);
	return l;
fail:
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	free(l->ibuf);
	free(l->obuf);
	free(l);
	return NULL;
}

int h2link_start(struct h2link *l, int64_t now)
{
	nghttp2_settings_entry iv[] = {
		{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
		 l->p.max_streams ? l->p.max_streams : 100},
		{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
		 l->p.stream_window ? l->p.stream_window : 256 * 1024},
		{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
	};
	int r;

	/* Push is a client's setting to make. */
	r = nghttp2_submit_settings(l->s, NGHTTP2_FLAG_NONE, iv, l->server ? 2 : 3);
	if (r == 0) {
		r = nghttp2_session_set_local_window_size(l->s, NGHTTP2_FLAG_NONE, 0, LINK_WINDOW);
	}
	if (r) {
		return -ENOMEM;
	}
	l->started = 1;
	l->opened = 1;
	l->last_in_ms = now;
	l->open_due = 1;
	want_input(l);
	h2link_run(l);
	return l->dead ? (l->dead_err ? l->dead_err : -ECONNRESET) : 0;
}

void h2link_tick(struct h2link *l, int64_t now)
{
	if (l->dead || !l->started) {
		return;
	}
	if (l->ping_out) {
		if (now - l->ping_sent_ms >= (int64_t)l->p.ping_timeout_ms) {
			link_fail(l, -ETIMEDOUT);
			h2link_run(l);
		}
		return;
	}
	if (l->p.ping_interval_ms && now - l->last_in_ms >= (int64_t)l->p.ping_interval_ms) {
		if (nghttp2_submit_ping(l->s, NGHTTP2_FLAG_NONE, NULL) == 0) {
			l->ping_out = 1;
			l->ping_sent_ms = now;
			h2link_run(l);
		}
	}
}

void h2link_drain(struct h2link *l)
{
	if (l->dead || l->draining) {
		return;
	}
	l->draining = 1;
	if (l->started) {
		nghttp2_submit_goaway(l->s, NGHTTP2_FLAG_NONE,
				      nghttp2_session_get_last_proc_stream_id(l->s),
				      NGHTTP2_NO_ERROR, NULL, 0);
		ask_run(l);
	}
}

void h2link_abort(struct h2link *l, int err)
{
	link_fail(l, err);
}

static void link_free(struct h2link *l)
{
	nghttp2_session_del(l->s);
	free(l->ibuf);
	free(l->obuf);
	free(l);
}

void h2link_release(struct h2link *l)
{
	struct h2stream *st, *next;

	l->released = 1;
	l->owner.post = NULL; /* the owner's books are gone */
	/* Streams nobody took go with the link. */
	for (st = l->streams; st; st = next) {
		next = st->next;
		if (!st->owned) {
			stream_unlink(st);
			st->link = NULL;
			st->t.ops->destroy(&st->t);
		}
	}
	if (!l->streams && !l->running) {
		link_free(l);
	}
}

void h2link_get_stats(const struct h2link *l, struct h2link_stats *s)
{
	s->streams_open = l->streams_open;
	s->streams_total = l->streams_total;
	s->bytes_in = l->bytes_in;
	s->bytes_out = l->bytes_out;
	s->draining = l->draining;
	s->dead = l->dead;
	s->opened = l->opened;
}

int h2link_status_of_errno(int err)
{
	switch (err) {
	case -EACCES:
	case -EPERM:
		return 403;
	case -ETIMEDOUT:
		return 504;
	case -EINVAL:
		return 400;
	case -EXDEV:
		return H2LINK_MISDIRECTED;
	case -ECONNREFUSED:
	default:
		return 502;
	}
}

int h2link_errno_of_status(int status)
{
	switch (status) {
	case H2LINK_MISDIRECTED:
		return -EXDEV;
	case 403:
		return -EACCES;
	case 504:
		return -ETIMEDOUT;
	case 400:
		return -EINVAL;
	default:
		return -ECONNREFUSED;
	}
}

/* ---- a stream as a transport ------------------------------------------------ */

static int hs_open(struct transport *t)
{
	struct h2stream *st = of(t);
	struct h2link *l = st->link;
	nghttp2_nv nva[3];
	nghttp2_data_provider prd = {.source.ptr = st, .read_callback = data_source};
	size_t n = 0;
	int32_t id;

	if (st->server) {
		return 0;
	}
	if (!l || l->dead || l->draining) {
		return -ECONNRESET;
	}
#define NV(k, v)                                                                                   \
	nva[n++] = (nghttp2_nv){(uint8_t *)(k), (uint8_t *)(v), sizeof(k) - 1, strlen(v),          \
				NGHTTP2_NV_FLAG_NO_COPY_NAME}
	NV(":method", "CONNECT");
	NV(":authority", st->authority);
	if (st->forwarded && st->forwarded[0]) {
		NV("forwarded", st->forwarded);
	}
#undef NV
	id = nghttp2_submit_request(l->s, NULL, nva, n, &prd, st);
	if (id < 0) {
		return id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE ? -EAGAIN : -ENOMEM;
	}
	st->id = id;
	count_open(st);
	ask_run(l); /* the HEADERS go out from run(), not from inside this call */
	return -EINPROGRESS;
}

static int hs_read(struct transport *t, char *buf, size_t cap)
{
	struct h2stream *st = of(t);
	size_t n;

	if (st->want_read) {
		return -EBUSY;
	}
	if (st->rq_len) {
		n = st->rq_len < cap ? st->rq_len : cap;
		memcpy(buf, st->rq + st->rq_off, n);
		st->rq_off += n;
		st->rq_len -= n;
		if (!st->rq_len) {
			st->rq_off = 0;
		}
		st->unconsumed += n;
		put_due(st); /* the window update goes out from run() */
		return (int)n;
	}
	if (st->err) {
		return st->err;
	}
	if (st->remote_eof) {
		return 0;
	}
	st->want_read = 1;
	st->rbuf = buf;
	st->rcap = cap;
	st->rfill = 0;
	return -EINPROGRESS;
}

static int hs_write(struct transport *t, const char *buf, size_t n)
{
	struct h2stream *st = of(t);

	if (st->want_write) {
		return -EBUSY;
	}
	if (st->err) {
		return st->err;
	}
	if (st->peer_done) {
		return (int)n; /* the peer asked for no more: dropped */
	}
	if (st->shut_req || !st->link || st->link->dead) {
		return -EPIPE;
	}
	st->want_write = 1;
	st->wbuf = buf;
	st->wlen = n;
	st->woff = 0;
	resume(st);
	ask_run(st->link); /* taken by the data source in run(); TEV_WRITTEN then */
	return -EINPROGRESS;
}

static int hs_shutdown(struct transport *t)
{
	struct h2stream *st = of(t);

	if (st->err) {
		return st->err;
	}
	if (st->eof_sent || st->peer_done) {
		return 0;
	}
	if (!st->link || st->link->dead) {
		return -EPIPE;
	}
	st->shut_req = 1;
	st->want_shut = 1;
	resume(st);
	ask_run(st->link);
	return -EINPROGRESS;
}

static int hs_flush(struct transport *t)
{
	(void)t;
	return 0; /* a stream queues nothing of its own */
}

static int hs_cancel_read(struct transport *t)
{
	struct h2stream *st = of(t);

	if (!st->want_read) {
		return -ENOENT;
	}
	st->want_read = 0;
	due(st, TEV_READ, st->rfill ? (int)st->rfill : -ECANCELED);
	st->rfill = 0;
	return 0;
}

static int hs_wait_readable(struct transport *t)
{
	struct h2stream *st = of(t);

	if (st->want_read || st->want_readable) {
		return -EBUSY;
	}
	st->want_readable = 1;
	input_changed(st);
	return 0;
}

static void hs_cancel_wait(struct transport *t)
{
	struct h2stream *st = of(t);

	if (st->want_readable) {
		st->want_readable = 0;
		due(st, TEV_READABLE, -ECANCELED);
	}
}

static int hs_trim(struct transport *t)
{
	struct h2stream *st = of(t);

	if (st->rq_len) {
		return -EAGAIN;
	}
	free(st->rq);
	st->rq = NULL;
	st->rq_cap = st->rq_off = 0;
	return 0;
}

static void hs_close(struct transport *t)
{
	struct h2stream *st = of(t);
	struct h2link *l = st->link;

	t->closed = 1;
	st->due = 0;
	if (!l) {
		return;
	}
	take_due(l, st);
	if (st->id > 0 && !l->dead) {
		/* Not finished both ways: the far side sees a reset, as a
		 * TCP peer would; after our END_STREAM and unless the owner
		 * aborts, one without error
		 * that only asks it to stop sending (RFC 9113 8.1), so the
		 * answer already sent stays its app's.  A refusal already
		 * ended our side: its answer must arrive, not a reset that
		 * could overtake it. */
		if (!st->answered || st->opened) {
			nghttp2_submit_rst_stream(l->s, NGHTTP2_FLAG_NONE, st->id,
						  st->eof_sent && !t->abort ? NGHTTP2_NO_ERROR
									    : NGHTTP2_CANCEL);
		}
		nghttp2_session_set_stream_user_data(l->s, st->id, NULL);
		if (st->counted_open) {
			st->counted_open = 0;
			l->streams_open--;
			if (!l->streams_open) {
				l->idle_due = 1;
			}
		}
		st->id = -1;
		ask_run(l);
	}
	/* Unread input's window goes back to the link. */
	l->discard += st->rq_len + st->unconsumed;
	st->rq_len = st->unconsumed = 0;
	if (l->discard && !l->dead) {
		nghttp2_session_consume_connection(l->s, l->discard);
		l->discard = 0;
		ask_run(l);
	}
}

static int hs_inflight(const struct transport *t)
{
	(void)t;
	return 0; /* the link owns every loop operation */
}

static void hs_destroy(struct transport *t)
{
	struct h2stream *st = of(t);
	struct h2link *l = st->link;

	if (l) {
		if (!t->closed) {
			hs_close(t);
		}
		stream_unlink(st);
		if (l->delivering == st) {
			st->doomed = 1; /* deliver_stream() still looks at it */
			return;
		}
		if (l->released && !l->streams && !l->running) {
			link_free(l);
		}
	}
	stream_free(st);
}

static void stream_free(struct h2stream *st)
{
	free(st->rq);
	free(st->method);
	free(st->authority);
	free(st->forwarded);
	free(st);
}

static const struct transport_ops h2stream_ops = {
	.name = "h2stream",
	.open = hs_open,
	.read = hs_read,
	.write = hs_write,
	.shutdown = hs_shutdown,
	.flush = hs_flush,
	.cancel_read = hs_cancel_read,
	.wait_readable = hs_wait_readable,
	.cancel_wait = hs_cancel_wait,
	.trim = hs_trim,
	.close = hs_close,
	.inflight = hs_inflight,
	.destroy = hs_destroy,
};

static struct h2stream *stream_alloc(struct h2link *l, int server)
{
	struct h2stream *st = calloc(1, sizeof(*st));

	if (!st) {
		return NULL;
	}
	st->t.ops = &h2stream_ops;
	st->link = l;
	st->server = (uint8_t)server;
	st->owned = !server;
	st->next = l->streams;
	if (l->streams) {
		l->streams->prev = st;
	}
	l->streams = st;
	return st;
}

struct transport *h2link_connect(struct h2link *l, const char *authority, const char *forwarded,
				 int *err)
{
	struct h2stream *st;

	if (l->dead || l->draining || l->server) {
		*err = -EPIPE;
		return NULL;
	}
	if (l->started &&
	    l->streams_open >= nghttp2_session_get_remote_settings(
				       l->s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS)) {
		*err = -EAGAIN;
		return NULL;
	}
	st = stream_alloc(l, 0);
	if (!st || !(st->authority = strdup(authority)) ||
	    (forwarded && !(st->forwarded = strdup(forwarded)))) {
		if (st) {
			stream_unlink(st);
			st->link = NULL;
			hs_destroy(&st->t);
		}
		*err = -ENOMEM;
		return NULL;
	}
	return &st->t;
}

const char *h2stream_authority(const struct transport *t)
{
	return of(t)->authority ? of(t)->authority : "";
}

const char *h2stream_forwarded(const struct transport *t)
{
	return of(t)->forwarded ? of(t)->forwarded : "";
}

struct h2link *h2stream_link(const struct transport *t)
{
	return of(t)->link;
}

int h2stream_respond(struct transport *t, int status)
{
	struct h2stream *st = of(t);
	struct h2link *l = st->link;
	char code[4];
	nghttp2_nv nv = {(uint8_t *)":status", (uint8_t *)code, 7, 3, NGHTTP2_NV_FLAG_NO_COPY_NAME};
	nghttp2_data_provider prd = {.source.ptr = st, .read_callback = data_source};
	int r;

	if (!l || l->dead || st->id <= 0) {
		return st->err ? st->err : -ECONNRESET;
	}
	if (st->answered) {
		return -EALREADY;
	}
	snprintf(code, sizeof(code), "%03d", status < 100 || status > 999 ? 500 : status);
	r = nghttp2_submit_response(l->s, st->id, &nv, 1,
				    status >= 200 && status < 300 ? &prd : NULL);
	if (r) {
		return -ENOMEM;
	}
	st->answered = 1;
	if (status >= 200 && status < 300) {
		st->opened = 1;
	} else {
		st->err = h2link_errno_of_status(status);
		st->eof_sent = 1;
	}
	ask_run(l);
	return 0;
}
