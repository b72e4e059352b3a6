/*
 * libFuzzer target for the HTTP/2 follower (daemon/proto/h2.c): a client's
 * bytes after its preface, cut into frames and header blocks in both of
 * the modes the daemon uses, rewriting (inbound requests: every block is
 * written again with an identity header added) and watching (everything
 * else).
 *
 * Input: byte 0 is the chunk size the bytes arrive in, the rest are what
 * follows the preface (the harness sends the preface first, so the fuzzer
 * starts at frames).
 *
 * The invariants: no crash, no sanitizer report, no leak; both modes see
 * the same frames and blocks; the raw pieces of a passing frame are
 * contiguous and end at its length; a rewritten block decodes (with a
 * decoder in step with ours) to the fields it had, the client's
 * x-forwarded-client-cert dropped and ours last; the watched direction
 * passes every byte it was given.
 *
 *   ci/fuzz.sh --time 60 h2
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/h2.h"

#include "fuzz_check.h"

#define XFCC "By=spiffe://td/server;URI=spiffe://td/client"

struct seen {
	size_t frames, blocks, bytes; /* frames: other than header frames */
	size_t expect_off; /* where the next piece of the current frame starts */
	int ended_between; /* the input ended between frames */
	int rewrite;
	struct h2_dir *dir;
	nghttp2_hd_inflater *check; /* decodes what the rewrite wrote */
	char out[8 * H2_MAX_BLOCK];
};

static int on_frame(void *ud, const struct h2_frame *f, const char *raw, size_t n, size_t off)
{
	struct seen *s = ud;

	(void)raw;
	s->bytes += n;
	if (f->type == H2_PREFACE_FRAME) {
		return 0;
	}
	CHECK(off == s->expect_off);
	s->expect_off = off + n;
	CHECK(s->expect_off <= H2_HEAD + f->len);
	if (s->expect_off == H2_HEAD + f->len) {
		/* Header frames pass only when watching: counted as blocks. */
		s->frames += f->type != H2_HEADERS && f->type != H2_CONTINUATION &&
			     f->type != H2_PUSH_PROMISE;
		s->expect_off = 0;
	}
	return 0;
}

/* Decodes one rewritten block: the fields, without the client's
 * x-forwarded-client-cert, then ours. */
static void check_rewrite(struct seen *s, const struct h2_block *b, const char *out, size_t len)
{
	const uint8_t *p = (const uint8_t *)out;
	size_t at = 0, want = 0, i;
	int last_was_ours = 0;

	/* Frames: HEADERS then CONTINUATIONs, END_HEADERS on the last. */
	while (at < len) {
		uint32_t flen = (uint32_t)p[at] << 16 | (uint32_t)p[at + 1] << 8 | p[at + 2];
		size_t skip = at == 0 && (p[at + 4] & H2_FLAG_PRIORITY) ? 5 : 0;
		const uint8_t *frag = p + at + H2_HEAD + skip;
		size_t fl = flen - skip;
		int final = p[at + 4] & H2_FLAG_END_HEADERS;

		CHECK(at + H2_HEAD + flen <= len);
		CHECK(p[at + 3] == (at == 0 ? H2_HEADERS : H2_CONTINUATION));
		while (1) {
			nghttp2_nv nv;
			int fl2 = 0;
			ssize_t c = nghttp2_hd_inflate_hd2(s->check, &nv, &fl2, frag, fl, final);

			CHECK(c >= 0);
			frag += c;
			fl -= (size_t)c;
			if (fl2 & NGHTTP2_HD_INFLATE_EMIT) {
				while (want < b->n && b->nv[want].namelen == 23 &&
				       !memcmp(b->nv[want].name, "x-forwarded-client-cert", 23)) {
					want++;
				}
				if (want < b->n) {
					CHECK(nv.namelen == b->nv[want].namelen &&
					      !memcmp(nv.name, b->nv[want].name, nv.namelen));
					CHECK(nv.valuelen == b->nv[want].valuelen &&
					      !memcmp(nv.value, b->nv[want].value, nv.valuelen));
					want++;
				} else {
					CHECK(!last_was_ours);
					CHECK(nv.valuelen == strlen(XFCC) &&
					      !memcmp(nv.value, XFCC, nv.valuelen));
					last_was_ours = 1;
				}
			}
			if (fl2 & NGHTTP2_HD_INFLATE_FINAL) {
				nghttp2_hd_inflate_end_headers(s->check);
				break;
			}
			if (c == 0 && !(fl2 & NGHTTP2_HD_INFLATE_EMIT)) {
				break;
			}
		}
		at += H2_HEAD + flen;
		CHECK(!final || at == len);
	}
	for (i = want; i < b->n; i++) {
		CHECK(b->nv[i].namelen == 23 &&
		      !memcmp(b->nv[i].name, "x-forwarded-client-cert", 23));
	}
	CHECK(last_was_ours);
}

static int on_block(void *ud, const struct h2_block *b)
{
	struct seen *s = ud;
	nghttp2_nv nv[H2_MAX_FIELDS + 1];
	size_t i, n = 0;
	int w;

	s->blocks++;
	CHECK(b->n <= H2_MAX_FIELDS);
	if (!s->rewrite || b->type != H2_HEADERS) {
		return 0;
	}
	for (i = 0; i < b->n; i++) {
		if (!(b->nv[i].namelen == 23 &&
		      !memcmp(b->nv[i].name, "x-forwarded-client-cert", 23))) {
			nv[n++] = b->nv[i];
		}
	}
	nv[n++] = (nghttp2_nv){(uint8_t *)"x-forwarded-client-cert", (uint8_t *)XFCC, 23,
			       strlen(XFCC), NGHTTP2_NV_FLAG_NONE};
	w = h2_write_block(s->dir, b, nv, n, s->out, sizeof(s->out));
	CHECK(w > 0);
	check_rewrite(s, b, s->out, (size_t)w);
	return 0;
}

static int run(const uint8_t *data, size_t size, size_t chunk, int rewrite, struct seen *s)
{
	struct h2_dir dir;
	struct h2_sink sink = {on_frame, on_block, s};
	size_t off = 0;
	int r = 0;

	memset(s, 0, sizeof(*s));
	s->rewrite = rewrite;
	s->dir = &dir;
	CHECK(h2_dir_init(&dir, 1, rewrite) == 0);
	CHECK(nghttp2_hd_inflate_new(&s->check) == 0);
	r = h2_feed(&dir, H2_PREFACE, H2_PREFACE_LEN, &sink);
	CHECK(r == 0);
	while (r == 0 && off < size) {
		size_t n = size - off < chunk ? size - off : chunk;

		r = h2_feed(&dir, (const char *)data + off, n, &sink);
		if (r == 0 && off + n < size && (off / chunk) % 3 == 2) {
			h2_dir_trim(&dir); /* as parking does between reads */
		}
		off += n;
	}
	CHECK(r <= 0);
	CHECK(r == 0 || dir.error || r == -ENOMEM);
	s->ended_between = dir.at_boundary;
	nghttp2_hd_inflate_del(s->check);
	h2_dir_fini(&dir);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct seen rewrite, watch;
	size_t chunk;
	int r1, r2;

	if (size < 1) {
		return 0;
	}
	chunk = data[0] ? data[0] : 256;
	r1 = run(data + 1, size - 1, chunk, 1, &rewrite);
	r2 = run(data + 1, size - 1, chunk, 0, &watch);
	/* The same frames and blocks either way, up to where it failed. */
	CHECK(r1 == r2);
	CHECK(rewrite.frames == watch.frames && rewrite.blocks == watch.blocks);
	if (r2 == 0 && watch.ended_between) {
		CHECK(watch.bytes == size - 1 + H2_PREFACE_LEN);
	}
	return 0;
}
