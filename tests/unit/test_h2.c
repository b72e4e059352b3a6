/*
 * Unit tests for daemon/proto/h2.c: frames cut the same whatever the
 * split, header blocks decoded and written again, answers of ours that
 * leave the receiver's decoder alone, the bounds, frame boundaries.
 * Header blocks are made with nghttp2's own encoder, the peer's.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/h2.h"

#define NV(n, v)                                                                                   \
	{                                                                                          \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, 0                    \
	}

/* ---- building input ------------------------------------------------------------ */

struct buf {
	char b[1 << 21];
	size_t n;
};

static void put_frame(struct buf *o, uint8_t type, uint8_t flags, int32_t id, const void *p,
		      size_t len)
{
	o->b[o->n++] = (char)(len >> 16);
	o->b[o->n++] = (char)(len >> 8);
	o->b[o->n++] = (char)len;
	o->b[o->n++] = (char)type;
	o->b[o->n++] = (char)flags;
	o->b[o->n++] = (char)(id >> 24);
	o->b[o->n++] = (char)(id >> 16);
	o->b[o->n++] = (char)(id >> 8);
	o->b[o->n++] = (char)id;
	memcpy(o->b + o->n, p, len);
	o->n += len;
}

static size_t encode(nghttp2_hd_deflater *d, const nghttp2_nv *nv, size_t n, uint8_t *out,
		     size_t cap)
{
	ssize_t r = nghttp2_hd_deflate_hd(d, out, cap, nv, n);

	assert_true(r >= 0);
	return (size_t)r;
}

/* ---- what the sink saw ---------------------------------------------------------- */

struct seen {
	int frames, blocks, data_bytes;
	int types[64];
	char fields[8][1024]; /* "name: value\n"... per block */
	int32_t block_ids[8];
	uint8_t end_stream[8];
};

static int on_frame(void *ud, const struct h2_frame *f, const char *raw, size_t n, size_t off)
{
	struct seen *s = ud;

	(void)raw;
	if (f->type == H2_DATA && off >= H2_HEAD) {
		s->data_bytes += (int)n;
	}
	if (off + n == H2_HEAD + f->len && f->type != H2_PREFACE_FRAME && s->frames < 64) {
		s->types[s->frames++] = f->type;
	}
	return 0;
}

static int on_block(void *ud, const struct h2_block *b)
{
	struct seen *s = ud;
	size_t i;

	if (s->blocks < 8) {
		char *o = s->fields[s->blocks];

		for (i = 0; i < b->n; i++) {
			size_t at = strlen(o);
			snprintf(o + at, 1024 - at, "%.*s: %.*s\n", (int)b->nv[i].namelen,
				 b->nv[i].name, (int)b->nv[i].valuelen, b->nv[i].value);
		}
		s->block_ids[s->blocks] = b->id;
		s->end_stream[s->blocks] = b->end_stream;
	}
	s->blocks++;
	return 0;
}

static int feed_in_pieces(const char *in, size_t n, size_t piece, int rewrite, struct seen *s,
			  struct h2_dir *dir)
{
	struct h2_sink sink = {on_frame, on_block, s};
	size_t off = 0;
	int r = 0;

	memset(s, 0, sizeof(*s));
	assert_int_equal(h2_dir_init(dir, 1, rewrite), 0);
	while (r == 0 && off < n) {
		size_t k = n - off < piece ? n - off : piece;
		r = h2_feed(dir, in + off, k, &sink);
		off += k;
	}
	return r;
}

/* A client's preface, SETTINGS, two requests (one split in CONTINUATION,
 * padded, with priority), DATA, a PING. */
static void sample_input(struct buf *o)
{
	static const nghttp2_nv r1[] = {NV(":method", "GET"), NV(":scheme", "http"),
					NV(":path", "/api/1"), NV(":authority", "b:8080")};
	static const nghttp2_nv r2[] = {
		NV(":method", "POST"), NV(":scheme", "http"), NV(":path", "/demo.Greeter/SayHello"),
		NV(":authority", "b:8080"), NV("content-type", "application/grpc")};
	static const uint8_t settings[] = {0, 1, 0, 0, 0x10, 0};
	nghttp2_hd_deflater *d;
	uint8_t blk[512], padded[600];
	size_t n;

	assert_int_equal(nghttp2_hd_deflate_new(&d, 4096), 0);
	o->n = 0;
	memcpy(o->b, H2_PREFACE, H2_PREFACE_LEN);
	o->n = H2_PREFACE_LEN;
	put_frame(o, H2_SETTINGS, 0, 0, settings, sizeof(settings));
	n = encode(d, r1, 4, blk, sizeof(blk));
	put_frame(o, H2_HEADERS, H2_FLAG_END_HEADERS | H2_FLAG_END_STREAM, 1, blk, n);
	n = encode(d, r2, 5, blk, sizeof(blk));
	/* Pad length 3, priority (5 bytes), fragment, padding. */
	padded[0] = 3;
	memset(padded + 1, 0, 5);
	memcpy(padded + 6, blk, 4);
	memset(padded + 10, 0, 3);
	put_frame(o, H2_HEADERS, H2_FLAG_PADDED | H2_FLAG_PRIORITY, 3, padded, 13);
	put_frame(o, H2_CONTINUATION, H2_FLAG_END_HEADERS, 3, blk + 4, n - 4);
	put_frame(o, H2_DATA, H2_FLAG_END_STREAM, 3, "hello", 5);
	put_frame(o, H2_PING, 0, 0, "12345678", 8);
	nghttp2_hd_deflate_del(d);
}

static void test_any_split_same_frames(void **state)
{
	static struct buf in;
	struct seen whole, bytewise;
	struct h2_dir a, b;

	(void)state;
	sample_input(&in);
	assert_int_equal(feed_in_pieces(in.b, in.n, in.n, 0, &whole, &a), 0);
	assert_int_equal(feed_in_pieces(in.b, in.n, 1, 0, &bytewise, &b), 0);
	assert_int_equal(whole.blocks, 2);
	assert_string_equal(whole.fields[0],
			    ":method: GET\n:scheme: http\n:path: /api/1\n:authority: b:8080\n");
	assert_true(strstr(whole.fields[1], ":path: /demo.Greeter/SayHello\n") != NULL);
	assert_int_equal(whole.block_ids[1], 3);
	assert_int_equal(whole.end_stream[0], 1);
	assert_int_equal(whole.end_stream[1], 0);
	assert_int_equal(whole.data_bytes, 5);
	assert_int_equal(whole.frames, 6); /* SETTINGS, 2 HEADERS, CONTINUATION, DATA, PING */
	assert_memory_equal(&whole, &bytewise, sizeof(whole));
	assert_true(a.at_boundary && b.at_boundary);
	h2_dir_fini(&a);
	h2_dir_fini(&b);
}

/* Rewriting: header frames go to the caller as blocks only; what it
 * writes decodes (in step with our encoder) to what it gave. */
static void test_rewrite_round_trip(void **state)
{
	static struct buf in;
	static char out[1 << 18];
	struct seen s;
	struct h2_dir dir;
	nghttp2_hd_inflater *check;
	nghttp2_nv nv[3] = {NV(":method", "GET"), NV(":path", "/x"), NV("big", "")};
	static char big[40000];
	struct h2_block b = {.id = 5, .type = H2_HEADERS, .end_stream = 1};
	int w, i, frames = 0;
	size_t at = 0, got = 0;

	(void)state;
	sample_input(&in);
	assert_int_equal(feed_in_pieces(in.b, in.n, 7, 1, &s, &dir), 0);
	assert_int_equal(s.blocks, 2);
	for (i = 0; i < s.frames; i++) {
		assert_true(s.types[i] != H2_HEADERS && s.types[i] != H2_CONTINUATION);
	}
	/* A block larger than a frame: HEADERS + CONTINUATIONs of 16 KiB. */
	memset(big, 'v', sizeof(big));
	nv[2].value = (uint8_t *)big;
	nv[2].valuelen = sizeof(big);
	w = h2_write_block(&dir, &b, nv, 3, out, sizeof(out));
	assert_true(w > 2 * 16384); /* Huffman takes an eighth off */
	assert_int_equal(nghttp2_hd_inflate_new(&check), 0);
	while (at < (size_t)w) {
		uint32_t len = (uint32_t)(uint8_t)out[at] << 16 |
			       (uint32_t)(uint8_t)out[at + 1] << 8 | (uint8_t)out[at + 2];
		assert_true(len <= 16384);
		assert_int_equal(out[at + 3], frames ? H2_CONTINUATION : H2_HEADERS);
		assert_int_equal(out[at + 8], 5);
		if (!frames) {
			assert_true(out[at + 4] & H2_FLAG_END_STREAM);
		}
		{
			const uint8_t *p = (uint8_t *)out + at + 9;
			size_t rem = len;
			int final = out[at + 4] & H2_FLAG_END_HEADERS;

			for (;;) {
				nghttp2_nv f;
				int fl = 0;
				ssize_t c = nghttp2_hd_inflate_hd2(check, &f, &fl, p, rem, final);

				assert_true(c >= 0);
				p += c;
				rem -= (size_t)c;
				if (fl & NGHTTP2_HD_INFLATE_EMIT) {
					assert_memory_equal(f.name, nv[got].name, f.namelen);
					assert_int_equal(f.valuelen, nv[got].valuelen);
					got++;
				}
				if ((fl & NGHTTP2_HD_INFLATE_FINAL) ||
				    (c == 0 && !(fl & NGHTTP2_HD_INFLATE_EMIT))) {
					break;
				}
			}
		}
		at += 9 + len;
		frames++;
	}
	assert_int_equal(got, 3);
	assert_true(frames >= 3);
	nghttp2_hd_inflate_del(check);
	h2_dir_fini(&dir);
}

/* Our answers use the static table and literals only: a decoder that
 * follows the app's encoder still decodes the app's next block after one. */
static void test_answers_leave_decoder_alone(void **state)
{
	static const nghttp2_nv app1[] = {NV(":status", "200"), NV("x-app", "first-value")};
	static const nghttp2_nv app2[] = {NV(":status", "200"), NV("x-app", "first-value")};
	static const nghttp2_nv ours[] = {NV(":status", "403"), NV("x-app", "ours-value"),
					  NV("content-length", "0")};
	nghttp2_hd_deflater *app;
	nghttp2_hd_inflater *client;
	uint8_t b1[256], b2[256];
	char inj[256];
	size_t n1, n2;
	int w, fields = 0;
	const uint8_t *parts[3];
	size_t lens[3], i;

	(void)state;
	assert_int_equal(nghttp2_hd_deflate_new(&app, 4096), 0);
	assert_int_equal(nghttp2_hd_inflate_new(&client), 0);
	n1 = encode(app, app1, 2, b1, sizeof(b1));
	n2 = encode(app, app2, 2, b2, sizeof(b2)); /* refers to x-app in the table */
	w = h2_write_headers(7, 1, ours, 3, inj, sizeof(inj));
	assert_true(w > 9);
	assert_int_equal(inj[3], H2_HEADERS);
	assert_int_equal(inj[4], H2_FLAG_END_STREAM | H2_FLAG_END_HEADERS);
	parts[0] = b1;
	lens[0] = n1;
	parts[1] = (uint8_t *)inj + 9;
	lens[1] = (size_t)w - 9;
	parts[2] = b2;
	lens[2] = n2;
	for (i = 0; i < 3; i++) {
		const uint8_t *p = parts[i];
		size_t left = lens[i];

		for (;;) {
			nghttp2_nv f;
			int fl = 0;
			ssize_t c = nghttp2_hd_inflate_hd2(client, &f, &fl, p, left, 1);
			assert_true(c >= 0);
			p += c;
			left -= (size_t)c;
			if (fl & NGHTTP2_HD_INFLATE_EMIT) {
				if (i == 2 && f.namelen == 5) {
					assert_memory_equal(f.value, "first-value", 11);
				}
				fields++;
			}
			if (fl & NGHTTP2_HD_INFLATE_FINAL) {
				nghttp2_hd_inflate_end_headers(client);
				break;
			}
		}
	}
	assert_int_equal(fields, 7);
	nghttp2_hd_deflate_del(app);
	nghttp2_hd_inflate_del(client);
}

static void test_bounds_and_errors(void **state)
{
	static struct buf in;
	static const char junk[9] = {0, 0, 4, H2_CONTINUATION, 4, 0, 0, 0, 1};
	struct seen s;
	struct h2_dir dir;
	int r;

	(void)state;
	/* A 1 MiB header block in CONTINUATION frames ends at 64 KiB. */
	in.n = 0;
	memcpy(in.b, H2_PREFACE, H2_PREFACE_LEN);
	in.n = H2_PREFACE_LEN;
	{
		static char chunk[16384];
		int i;

		memset(chunk, 0x41, sizeof(chunk));
		put_frame(&in, H2_HEADERS, 0, 1, chunk, sizeof(chunk));
		for (i = 0; i < 63; i++) {
			put_frame(&in, H2_CONTINUATION, 0, 1, chunk, sizeof(chunk));
		}
	}
	r = feed_in_pieces(in.b, in.n, 4096, 0, &s, &dir);
	assert_int_equal(r, -EMSGSIZE);
	assert_non_null(strstr(dir.error, "64 KiB"));
	assert_int_equal(s.blocks, 0);
	h2_dir_fini(&dir);

	/* Not the preface. */
	r = feed_in_pieces("GET / HTTP/1.1\r\n\r\n", 18, 18, 1, &s, &dir);
	assert_int_equal(r, -EPROTO);
	h2_dir_fini(&dir);

	/* CONTINUATION out of a block. */
	memcpy(in.b, H2_PREFACE, H2_PREFACE_LEN);
	memcpy(in.b + H2_PREFACE_LEN, junk, sizeof(junk));
	memcpy(in.b + H2_PREFACE_LEN + sizeof(junk), "abcd", 4);
	r = feed_in_pieces(in.b, H2_PREFACE_LEN + sizeof(junk) + 4, 100, 0, &s, &dir);
	assert_int_equal(r, -EPROTO);
	assert_non_null(strstr(dir.error, "CONTINUATION"));
	h2_dir_fini(&dir);
}

/* Where a feed's last frame boundary is: what answers of ours wait for. */
static void test_boundaries(void **state)
{
	static struct buf in;
	struct seen s;
	struct h2_dir dir;
	struct h2_sink sink = {on_frame, on_block, &s};

	(void)state;
	in.n = 0;
	put_frame(&in, H2_DATA, 0, 1, "0123456789", 10); /* 19 bytes */
	put_frame(&in, H2_DATA, 0, 1, "abcdefghij", 10); /* 38 */
	memset(&s, 0, sizeof(s));
	assert_int_equal(h2_dir_init(&dir, 0, 0), 0);
	assert_int_equal(h2_feed(&dir, in.b, 25, &sink), 0);
	assert_int_equal(dir.boundary, 19);
	assert_false(dir.at_boundary);
	assert_int_equal(h2_feed(&dir, in.b + 25, 5, &sink), 0);
	assert_int_equal(dir.boundary, (size_t)-1);
	assert_int_equal(h2_feed(&dir, in.b + 30, 8, &sink), 0);
	assert_int_equal(dir.boundary, 8);
	assert_true(dir.at_boundary);
	assert_true(dir.any_frame);
	h2_dir_fini(&dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_any_split_same_frames),
		cmocka_unit_test(test_rewrite_round_trip),
		cmocka_unit_test(test_answers_leave_decoder_alone),
		cmocka_unit_test(test_bounds_and_errors),
		cmocka_unit_test(test_boundaries),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
