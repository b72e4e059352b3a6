/*
 * libFuzzer target for the server side of a link (daemon/transport/
 * h2link.c): what a peer sends on the link port once TLS is done, HTTP/2
 * frames parsed by nghttp2 and handed to our callbacks (streams, headers,
 * data, resets, GOAWAY, PINGs), with the owner answering each CONNECT as
 * the proxy would: 200 and a read, 403, or a destroy at once.
 *
 * Input: byte 0 is the chunk size the bytes arrive in, the rest are frames
 * (the client preface and an empty SETTINGS are sent first by the harness,
 * so the fuzzer starts at frames).  The lower transport is a fake that
 * takes every write at once.
 *
 * The invariants: no crash, no sanitizer report, no leak; an accepted
 * stream has a non-empty authority; a read never reports more than its
 * buffer holds.
 *
 *   ci/fuzz.sh --time 60 h2link
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport/h2link.h"

#include "fuzz_check.h"

#define MAX_STREAMS 16

static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
				 "\x00\x00\x00\x04\x00\x00\x00\x00\x00";

struct fake {
	struct transport t;
	const uint8_t *in;
	size_t len, off, chunk;
};

struct owner {
	struct transport *st[MAX_STREAMS];
	char buf[MAX_STREAMS][512];
	int n, accepted, posted;
};

static int f_read(struct transport *t, char *buf, size_t cap)
{
	struct fake *f = (struct fake *)t;
	size_t n = f->len - f->off;

	if (n > f->chunk) {
		n = f->chunk;
	}
	if (n > cap) {
		n = cap;
	}
	memcpy(buf, f->in + f->off, n);
	f->off += n;
	return (int)n; /* 0 at the end: end of input */
}

static int f_write(struct transport *t, const char *buf, size_t n)
{
	(void)t;
	(void)buf;
	return (int)n;
}

static int f_zero(struct transport *t)
{
	(void)t;
	return 0;
}

static void f_void(struct transport *t)
{
	t->closed = 1;
}

static int f_inflight(const struct transport *t)
{
	(void)t;
	return 0;
}

static const struct transport_ops fake_ops = {
	.name = "fake",
	.open = f_zero,
	.read = f_read,
	.write = f_write,
	.shutdown = f_zero,
	.flush = f_zero,
	.cancel_read = f_zero,
	.wait_readable = f_zero,
	.cancel_wait = f_void,
	.trim = f_zero,
	.close = f_void,
	.inflight = f_inflight,
	.destroy = f_void,
};

static void on_stream(void *o, struct transport *t, enum transport_event ev, int res)
{
	struct owner *w = o;
	int i;

	for (i = 0; i < w->n && w->st[i] != t; i++) {
	}
	if (ev == TEV_READ) {
		CHECK(res <= (int)sizeof(w->buf[0]));
		if (res > 0 && i < w->n) {
			transport_read(t, w->buf[i], sizeof(w->buf[i]));
		}
	}
}

static void on_link(void *o, struct h2link *l, enum h2link_event ev, struct transport *st, int res)
{
	struct owner *w = o;

	(void)l;
	(void)res;
	if (ev != H2L_STREAM) {
		return;
	}
	CHECK(h2stream_authority(st)[0] != 0);
	w->accepted++;
	if (w->n == MAX_STREAMS || w->accepted % 3 == 0) {
		st->ops->destroy(st);
		return;
	}
	w->st[w->n] = st;
	transport_set_owner(st, on_stream, w);
	if (w->accepted % 3 == 1) {
		h2stream_respond(st, 200);
		transport_read(st, w->buf[w->n], sizeof(w->buf[w->n]));
		transport_write(st, "ok", 2);
	} else {
		h2stream_respond(st, 403);
	}
	w->n++;
}

static int post(void *o, struct h2link *l)
{
	(void)l;
	((struct owner *)o)->posted = 1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct h2link_params p = {.max_streams = 8,
				  .stream_window = 65535,
				  .ping_interval_ms = 1000,
				  .ping_timeout_ms = 1000,
				  .buf_size = 4096};
	struct owner w;
	struct h2link_owner o = {on_link, post, &w};
	struct fake f;
	struct h2link *l;
	uint8_t *in;
	int i, turns;

	if (size < 1) {
		return 0;
	}
	memset(&w, 0, sizeof(w));
	memset(&f, 0, sizeof(f));
	in = malloc(sizeof(preface) - 1 + size - 1);
	if (!in) {
		return 0;
	}
	memcpy(in, preface, sizeof(preface) - 1);
	memcpy(in + sizeof(preface) - 1, data + 1, size - 1);
	f.t.ops = &fake_ops;
	f.in = in;
	f.len = sizeof(preface) - 1 + size - 1;
	f.chunk = (size_t)data[0] + 1;
	l = h2link_new(&f.t, 1, &p, &o);
	if (!l) {
		free(in);
		return 0;
	}
	h2link_start(l, 0);
	for (turns = 0; w.posted && turns < 64; turns++) {
		w.posted = 0;
		h2link_run(l);
	}
	h2link_tick(l, 5000);
	h2link_drain(l);
	for (turns = 0; w.posted && turns < 64; turns++) {
		w.posted = 0;
		h2link_run(l);
	}
	for (i = 0; i < w.n; i++) {
		w.st[i]->ops->close(w.st[i]);
		w.st[i]->ops->destroy(w.st[i]);
	}
	h2link_abort(l, -ECONNRESET);
	h2link_run(l);
	h2link_release(l);
	free(in);
	return 0;
}
