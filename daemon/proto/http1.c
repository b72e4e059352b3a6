/*
 * Incremental HTTP/1.x framing: one byte-driven state machine per direction.
 *
 * Heads are copied byte by byte into s->raw and checked as they arrive
 * (byte classes at once, each line when its CRLF arrives, framing when the
 * blank line arrives), so a decision never depends on how the input was
 * split.  Bodies are never copied: their bytes are only counted (length) or
 * walked (chunk framing) and handed back as HTTP1_BODY.  A failure in the
 * middle of body bytes first reports the good bytes before it; the next call
 * sees the bad byte again and fails, which keeps the event sequence the same
 * for every split.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/http1.h"
#include "proto/http1_internal.h"

int http1_eq_ci(const char *p, size_t n, const char *lit)
{
	return strlen(lit) == n && strncasecmp(p, lit, n) == 0;
}

/* memmem() without depending on _GNU_SOURCE (the fuzz build has none). */
int http1_contains(const char *p, size_t n, const char *lit)
{
	size_t l = strlen(lit), i;

	for (i = 0; i + l <= n; i++) {
		if (memcmp(p + i, lit, l) == 0) {
			return 1;
		}
	}
	return 0;
}

int http1_is_registered_method(const char *p, size_t n)
{
	static const char *const methods[] = {"GET",	 "HEAD",    "POST",  "PUT",  "DELETE",
					      "CONNECT", "OPTIONS", "TRACE", "PATCH"};
	size_t i;

	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (http1_eq(p, n, methods[i])) {
			return 1;
		}
	}
	return 0;
}

int http1_list_next(const char **p, size_t *n, const char **elem, size_t *elen)
{
	const char *comma;

	if (*p == NULL) {
		return 0;
	}
	comma = memchr(*p, ',', *n);
	*elem = *p;
	if (comma) {
		*elen = (size_t)(comma - *p);
		*n -= *elen + 1;
		*p = comma + 1;
	} else {
		*elen = *n;
		*p = NULL;
	}
	http1_trim_ows(elem, elen);
	return 1;
}

int http1_header_name_is(const struct http1_stream *s, int i, const char *name)
{
	return http1_eq_ci(s->raw + s->head.hdr[i].name_off, s->head.hdr[i].name_len, name);
}

/* RFC 9110 5.6.2: ALPHA, DIGIT and "!#$%&'*+-.^_`|~". */
#define T10(c)                                                                                     \
	[c] = 1, [c + 1] = 1, [c + 2] = 1, [c + 3] = 1, [c + 4] = 1, [c + 5] = 1, [c + 6] = 1,     \
	[c + 7] = 1, [c + 8] = 1, [c + 9] = 1
/* clang-format off */
const unsigned char http1_tchars[256] = {
	T10('0'),
	T10('A'), T10('A' + 10), ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
	T10('a'), T10('a' + 10), ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
	['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
};
/* clang-format on */
#undef T10

const char *http1_header_value(const struct http1_stream *s, int i, size_t *n)
{
	const char *v = s->raw + s->head.hdr[i].name_off + s->head.hdr[i].name_len + 1;

	/* The line ends in CRLF; the value runs from after the colon. */
	*n = (size_t)(s->raw + s->head.hdr[i].line_off + s->head.hdr[i].line_len - 2 - v);
	http1_trim_ows(&v, n);
	return v;
}

void http1_release_raw(struct http1_stream *s)
{
	free(s->raw);
	s->raw = NULL;
	s->raw_len = s->raw_cap = 0;
}

int http1_raw_room(struct http1_stream *s, size_t need)
{
	size_t cap = s->raw_cap ? s->raw_cap : HTTP1_HEAD_START;
	char *p;

	if (s->raw_len + need > HTTP1_MAX_HEAD) {
		need = HTTP1_MAX_HEAD - s->raw_len;
	}
	if (s->raw && s->raw_len + need <= s->raw_cap) {
		return 0;
	}
	while (cap < s->raw_len + need) {
		cap *= 2;
	}
	if (cap > HTTP1_MAX_HEAD) {
		cap = HTTP1_MAX_HEAD;
	}
	p = realloc(s->raw, cap);
	if (!p) {
		return -1;
	}
	s->raw = p;
	s->raw_cap = cap;
	return 0;
}

void http1_trim(struct http1_stream *s)
{
	if (s->raw && s->raw_len == 0 && !(s->internal[I_FLAGS] & F_HELD)) {
		http1_release_raw(s);
	}
}

void http1_init(struct http1_stream *s, enum http1_dir dir)
{
	memset(s, 0, sizeof(*s));
	s->dir = dir;
	s->state = ST_START;
	s->head.content_length = -1;
	s->internal[I_FLAGS] = F_SNIFF;
}

void http1_fini(struct http1_stream *s)
{
	http1_release_raw(s);
}

/* ------------------------------------------------------------------ */
/* Response side: what the pending requests were                      */

static void note_kind(struct http1_stream *resp, int kind)
{
	if (resp->dir != HTTP1_RESPONSE) {
		return;
	}
	/* A request is outstanding: whatever the server sends is a response. */
	resp->internal[I_FLAGS] &= ~F_SNIFF;
	/* Once one request is lost, later ones must be lost too, or the
	 * FIFO would pair responses with the wrong requests. */
	if (resp->internal[I_FIFO_LOST] > 0 || resp->internal[I_FIFO_N] == HTTP1_MAX_PIPELINE) {
		if (resp->internal[I_FIFO_LOST] < INT_MAX) {
			resp->internal[I_FIFO_LOST]++;
		}
		return;
	}
	resp->head_fifo[resp->fifo_w] = (uint8_t)kind;
	resp->fifo_w = (resp->fifo_w + 1) % HTTP1_MAX_PIPELINE;
	resp->internal[I_FIFO_N]++;
}

void http1_note_request(struct http1_stream *resp, int was_head)
{
	note_kind(resp, was_head ? KIND_HEAD : KIND_OTHER);
}

void http1_note_request_method(struct http1_stream *resp, const char *method)
{
	int kind = KIND_OTHER;

	if (method && strcmp(method, "HEAD") == 0) {
		kind = KIND_HEAD;
	} else if (method && strcmp(method, "CONNECT") == 0) {
		kind = KIND_CONNECT;
	}
	note_kind(resp, kind);
}

/* Returns the kind of the request the final response answers, or -1. */
int http1_pop_kind(struct http1_stream *s)
{
	int kind;

	if (s->internal[I_FIFO_N] == 0) {
		return s->internal[I_FIFO_LOST] > 0 ? -1 : KIND_OTHER;
	}
	kind = s->head_fifo[s->fifo_r];
	s->fifo_r = (s->fifo_r + 1) % HTTP1_MAX_PIPELINE;
	s->internal[I_FIFO_N]--;
	return kind;
}

void http1_set_opaque(struct http1_stream *s)
{
	int *fl = &s->internal[I_FLAGS];

	if (s->state == ST_ERROR || s->state == ST_OPAQUE) {
		return;
	}
	/* A reported head stays readable until the next call; a partial one
	 * goes back to the caller with the next OPAQUE report. */
	if (!(*fl & F_RELEASE) && s->raw_len > 0) {
		*fl |= F_HELD;
	}
	s->state = ST_OPAQUE;
}

enum http1_event http1_feed(struct http1_stream *s, const char *buf, size_t len, size_t *consumed)
{
	const unsigned char *p = (const unsigned char *)buf;
	int *fl = &s->internal[I_FLAGS];

	*consumed = 0;
	*fl &= ~F_HEAD_READY;
	if (*fl & F_RELEASE) {
		/* The head buffer is kept for the next head of a connection
		 * that goes on (http1_trim() lets it go when idle). */
		*fl &= ~F_RELEASE;
		if (s->state == ST_OPAQUE) {
			http1_release_raw(s);
		} else {
			s->raw_len = 0;
		}
	}
	switch (s->state) {
	case ST_ERROR:
		return HTTP1_ERROR;
	case ST_OPAQUE:
		if (*fl & F_HELD) {
			*fl = (*fl & ~F_HELD) | F_RELEASE;
		}
		*consumed = len;
		return HTTP1_OPAQUE;
	case ST_START:
	case ST_LEAD_CR:
	case ST_HEAD:
	case ST_HEAD_CR:
		return http1_feed_head(s, p, len, consumed);
	default:
		return http1_feed_body(s, p, len, consumed);
	}
}

/* ------------------------------------------------------------------ */
/* Rewriting                                                           */

/* extra must be whole "Name: value\r\n" lines, nothing else. */
static int extra_ok(const char *x)
{
	while (*x) {
		const char *start = x;

		while (http1_is_tchar((unsigned char)*x)) {
			x++;
		}
		if (x == start || *x != ':') {
			return 0;
		}
		for (x++; *x && *x != '\r'; x++) {
			if (!http1_is_value_byte((unsigned char)*x)) {
				return 0;
			}
		}
		if (x[0] != '\r' || x[1] != '\n') {
			return 0;
		}
		x += 2;
	}
	return 1;
}

static int dropped(const struct http1_stream *s, int i, const char *const *drop)
{
	const char *name = s->raw + s->head.hdr[i].name_off;
	size_t n = s->head.hdr[i].name_len;

	for (; drop && *drop; drop++) {
		if (http1_eq_ci(name, n, *drop)) {
			return 1;
		}
	}
	return 0;
}

static int put(char *out, size_t outlen, size_t *n, const char *p, size_t len)
{
	if (len > outlen - *n) {
		return -ENOSPC;
	}
	memcpy(out + *n, p, len);
	*n += len;
	return 0;
}

int http1_rewrite_head(const struct http1_stream *s, const char *const *drop, const char *extra,
		       char *out, size_t outlen)
{
	size_t n = 0;
	int i;

	if (!(s->internal[I_FLAGS] & F_HEAD_READY) || !s->raw || (extra && !extra_ok(extra))) {
		return -EINVAL;
	}
	if (outlen > INT_MAX) {
		outlen = INT_MAX;
	}
	if (put(out, outlen, &n, s->raw, s->head.first_line_len) < 0) {
		return -ENOSPC;
	}
	for (i = 0; i < s->head.n_hdr; i++) {
		if (dropped(s, i, drop)) {
			continue;
		}
		if (put(out, outlen, &n, s->raw + s->head.hdr[i].line_off,
			s->head.hdr[i].line_len) < 0) {
			return -ENOSPC;
		}
	}
	if (extra && put(out, outlen, &n, extra, strlen(extra)) < 0) {
		return -ENOSPC;
	}
	if (put(out, outlen, &n, "\r\n", 2) < 0) {
		return -ENOSPC;
	}
	return (int)n;
}

int http1_idle(const struct http1_stream *s)
{
	return s->state == ST_START;
}

int http1_in_headers(const struct http1_stream *s)
{
	return (s->state == ST_HEAD || s->state == ST_HEAD_CR) && s->internal[I_LINE] > 0;
}
