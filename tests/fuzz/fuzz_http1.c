/*
 * libFuzzer target for the HTTP/1 framer (daemon/proto/http1*.c).
 *
 * Input: byte 0 picks a cut position, byte 1 the requests noted on the
 * response side (count and kinds), the rest is the stream.  The stream is
 * fed to a request and a response framer three times (whole, cut in two,
 * one byte at a time) and the three traces must agree.  Every run checks
 * the feed contract (consumed <= len, MORE and OPAQUE take everything,
 * ERROR nothing), that heads and bytes handed back are exactly the input at
 * that place, that no byte is lost or reported twice, and rewrites every
 * head: dropping x-forwarded-client-cert and adding one, which must parse
 * again as a head carrying that header once.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Idaemon \
 *       tests/fuzz/fuzz_http1.c daemon/proto/http1.c daemon/proto/http1_head.c \
 *         daemon/proto/http1_body.c -o /tmp/fuzz_http1
 *   /tmp/fuzz_http1 -max_total_time=60 tests/fuzz/corpus/http1
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/http1.h"

#include "fuzz_check.h"

#define MAX_EVENTS 4096

struct event {
	int ev;
	size_t n; /* BODY/OPAQUE: bytes (merged); HEAD: raw_len */
	size_t pos; /* input offset of the first byte */
	const char *error;
	int status, minor, n_hdr;
	int64_t content_length;
	unsigned flags;
	char method[16], path[2048], host[256];
};

struct trace {
	struct event *e;
	int n;
};

static const char xfcc[] = "x-forwarded-client-cert";
static const char extra[] = "x-forwarded-client-cert: By=spiffe://td/ns/a/sa/b;"
			    "URI=spiffe://td/ns/c/sa/d\r\n";

static void add_run(struct trace *t, int ev, size_t pos, size_t n)
{
	if (t->n > 0 && t->e[t->n - 1].ev == ev) {
		CHECK(t->e[t->n - 1].pos + t->e[t->n - 1].n == pos);
		t->e[t->n - 1].n += n;
		return;
	}
	CHECK(t->n < MAX_EVENTS);
	memset(&t->e[t->n], 0, sizeof(t->e[t->n]));
	t->e[t->n].ev = ev;
	t->e[t->n].pos = pos;
	t->e[t->n].n = n;
	t->n++;
}

static int count_xfcc(const struct http1_stream *s)
{
	int i, n = 0;

	for (i = 0; i < s->head.n_hdr; i++) {
		if (s->head.hdr[i].name_len == sizeof(xfcc) - 1 &&
		    strncasecmp(s->raw + s->head.hdr[i].name_off, xfcc, sizeof(xfcc) - 1) == 0) {
			n++;
		}
	}
	return n;
}

static void check_rewrite(const struct http1_stream *s)
{
	static const char *const drop[] = {xfcc, NULL};
	static char out[HTTP1_MAX_HEAD + sizeof(extra)];
	struct http1_stream again;
	size_t n;
	int r, r2;

	r = http1_rewrite_head(s, NULL, NULL, out, sizeof(out));
	CHECK(r == (int)s->raw_len && memcmp(out, s->raw, s->raw_len) == 0);
	r = http1_rewrite_head(s, drop, extra, out, sizeof(out));
	CHECK(r > 0 && (size_t)r <= s->raw_len + sizeof(extra) - 1);
	r2 = http1_rewrite_head(s, drop, extra, out, (size_t)r - 1);
	CHECK(r2 == -ENOSPC);
	if (r > HTTP1_MAX_HEAD || s->head.n_hdr - count_xfcc(s) >= 100) {
		return; /* the addition pushed it over a limit */
	}
	/* What we forward must itself be one valid head with one xfcc. */
	http1_init(&again, s->dir);
	/* As an answer to HEAD, so that a response's framing headers, which
	 * only count when it has a body, are judged the same way. */
	http1_note_request(&again, 1);
	CHECK(http1_feed(&again, out, (size_t)r, &n) == HTTP1_HEAD);
	CHECK(n == (size_t)r);
	CHECK(count_xfcc(&again) == 1);
	CHECK(again.head.n_hdr == s->head.n_hdr - count_xfcc(s) + 1);
	CHECK(strcmp(again.head.method, s->head.method) == 0);
	CHECK(strcmp(again.head.path, s->head.path) == 0);
	CHECK(strcmp(again.head.host, s->head.host) == 0);
	CHECK(again.head.status == s->head.status);
	http1_fini(&again);
}

static void check_head(const struct http1_stream *s, const uint8_t *in, size_t len, size_t fwd)
{
	const struct http1_head *h = &s->head;
	int i;

	CHECK(s->raw && s->raw_len > 0 && s->raw_len <= HTTP1_MAX_HEAD);
	CHECK(fwd + s->raw_len <= len && memcmp(s->raw, in + fwd, s->raw_len) == 0);
	CHECK(memchr(h->method, 0, sizeof(h->method)) && memchr(h->path, 0, sizeof(h->path)) &&
	      memchr(h->host, 0, sizeof(h->host)));
	CHECK(h->first_line_len >= 2 && h->first_line_len <= s->raw_len - 2);
	CHECK(h->n_hdr >= 0 && h->n_hdr <= 100);
	CHECK(memcmp(s->raw + s->raw_len - 2, "\r\n", 2) == 0);
	for (i = 0; i < h->n_hdr; i++) {
		CHECK(h->hdr[i].line_off + h->hdr[i].line_len <= s->raw_len - 2);
		CHECK(h->hdr[i].name_off == h->hdr[i].line_off && h->hdr[i].name_len > 0);
		CHECK(s->raw[h->hdr[i].name_off + h->hdr[i].name_len] == ':');
	}
	check_rewrite(s);
}

/* Feeds in[] to a fresh stream cut before each offset of cuts[]. */
static void run(enum http1_dir dir, uint8_t notes, const uint8_t *in, size_t len,
		const size_t *cuts, size_t ncuts, struct trace *t)
{
	struct http1_stream s;
	size_t fwd = 0, start = 0, k;
	int i, last = -1;

	t->n = 0;
	http1_init(&s, dir);
	for (i = 0; i < (notes & 7); i++) {
		int kind = (notes >> (3 + (i % 2) * 2)) & 3;

		http1_note_request_method(&s, kind == 1 ? "HEAD" : kind == 2 ? "CONNECT" : "GET");
	}
	for (k = 0; k <= ncuts; k++) {
		size_t end = k < ncuts ? cuts[k] : len, off = start;

		while (off < end) {
			size_t n = (size_t)-1;
			enum http1_event ev = http1_feed(&s, (const char *)in + off, end - off, &n);

			CHECK(n <= end - off);
			last = ev;
			switch (ev) {
			case HTTP1_MORE:
				CHECK(n == end - off);
				CHECK(len - fwd >= s.raw_len);
				break;
			case HTTP1_HEAD:
				CHECK(n > 0);
				check_head(&s, in, len, fwd);
				CHECK(t->n < MAX_EVENTS);
				memset(&t->e[t->n], 0, sizeof(t->e[t->n]));
				t->e[t->n].ev = ev;
				t->e[t->n].pos = fwd;
				t->e[t->n].n = s.raw_len;
				t->e[t->n].status = s.head.status;
				t->e[t->n].minor = s.head.minor;
				t->e[t->n].n_hdr = s.head.n_hdr;
				t->e[t->n].content_length = s.head.content_length;
				t->e[t->n].flags = s.head.chunked | s.head.conn_close << 1 |
						   s.head.expect_continue << 2 |
						   s.head.upgrade << 3;
				memcpy(t->e[t->n].method, s.head.method, sizeof(s.head.method));
				memcpy(t->e[t->n].path, s.head.path, sizeof(s.head.path));
				memcpy(t->e[t->n].host, s.head.host, sizeof(s.head.host));
				t->n++;
				fwd += s.raw_len;
				CHECK(fwd == off + n);
				break;
			case HTTP1_BODY:
				CHECK(n > 0 && fwd == off);
				add_run(t, HTTP1_BODY, fwd, n);
				fwd += n;
				break;
			case HTTP1_OPAQUE:
				CHECK(n == end - off);
				CHECK(fwd + s.raw_len == off);
				CHECK(s.raw_len == 0 || memcmp(s.raw, in + fwd, s.raw_len) == 0);
				add_run(t, HTTP1_OPAQUE, fwd, s.raw_len + n);
				fwd = off + n;
				break;
			case HTTP1_ERROR:
				CHECK(n == 0 && s.error != NULL);
				CHECK(t->n < MAX_EVENTS);
				memset(&t->e[t->n], 0, sizeof(t->e[t->n]));
				t->e[t->n].ev = ev;
				t->e[t->n].pos = fwd;
				t->e[t->n].error = s.error;
				t->n++;
				CHECK(http1_feed(&s, (const char *)in, len, &n) == HTTP1_ERROR &&
				      n == 0);
				goto done;
			}
			off += n;
		}
		start = end;
	}
	if (last == HTTP1_HEAD || last == HTTP1_OPAQUE) {
		CHECK(fwd == len);
	} else {
		CHECK(len - fwd == s.raw_len);
	}
done:
	http1_fini(&s);
	CHECK(s.raw == NULL);
}

static void same(const struct trace *a, const struct trace *b)
{
	int i;

	CHECK(a->n == b->n);
	for (i = 0; i < a->n; i++) {
		const struct event *x = &a->e[i], *y = &b->e[i];

		CHECK(x->ev == y->ev && x->n == y->n && x->pos == y->pos);
		CHECK(x->error == y->error ||
		      (x->error && y->error && !strcmp(x->error, y->error)));
		CHECK(x->status == y->status && x->minor == y->minor && x->n_hdr == y->n_hdr);
		CHECK(x->content_length == y->content_length && x->flags == y->flags);
		CHECK(!strcmp(x->method, y->method) && !strcmp(x->path, y->path) &&
		      !strcmp(x->host, y->host));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct event ev_whole[MAX_EVENTS], ev_cut[MAX_EVENTS];
	struct trace whole = {ev_whole, 0}, cut = {ev_cut, 0};
	const uint8_t *in;
	size_t len, split, *bytes, i;
	uint8_t notes;
	int d;

	if (size < 2) {
		return 0;
	}
	in = data + 2;
	len = size - 2;
	split = (size_t)data[0] * len / 255;
	notes = data[1];
	bytes = malloc((len ? len : 1) * sizeof(*bytes));
	CHECK(bytes != NULL);
	for (i = 1; i < len; i++) {
		bytes[i - 1] = i;
	}
	for (d = 0; d < 2; d++) {
		enum http1_dir dir = d ? HTTP1_RESPONSE : HTTP1_REQUEST;

		run(dir, notes, in, len, NULL, 0, &whole);
		run(dir, notes, in, len, &split, 1, &cut);
		same(&whole, &cut);
		if (len > 1) {
			run(dir, notes, in, len, bytes, len - 1, &cut);
			same(&whole, &cut);
		}
	}
	free(bytes);
	return 0;
}
