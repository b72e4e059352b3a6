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

enum {
	ST_START, /* between messages, nothing held */
	ST_LEAD_CR, /* request side: CR of an empty line before a request */
	ST_HEAD, /* inside a head line */
	ST_HEAD_CR, /* CR seen in a head, LF must follow */
	ST_BODY_LEN, /* body_left bytes of Content-Length body */
	ST_BODY_EOF, /* response body delimited by close */
	ST_CHUNK_SIZE, /* hex digits */
	ST_CHUNK_BWS, /* whitespace after the size, before ';' or CR */
	ST_CHUNK_EXT, /* ";ext..." up to CR */
	ST_CHUNK_SIZE_LF, /* LF ending the size line */
	ST_CHUNK_DATA, /* body_left bytes of chunk data */
	ST_CHUNK_DATA_CR, /* CRLF after chunk data */
	ST_CHUNK_DATA_LF,
	ST_TRAILER_START, /* start of a trailer line (or the final CRLF) */
	ST_TRAILER_NAME,
	ST_TRAILER_VALUE,
	ST_TRAILER_LF, /* LF ending a trailer line */
	ST_TRAILER_END_LF, /* LF ending the message */
	ST_OPAQUE,
	ST_ERROR,
};

/* Slots of s->internal. */
enum {
	I_LINE, /* offset in raw of the head line being read */
	I_FLAGS, /* F_* and M_* below */
	I_AUX, /* per line: spaces in the request line, or colon seen;
		    * per chunk: size digits, or extension bytes */
	I_TRAILER, /* trailer bytes so far */
	I_FIFO_N, /* kinds recorded in head_fifo */
	I_FIFO_LOST, /* requests noted while head_fifo was full */
};

/* Stream flags. */
#define F_SNIFF 0x1 /* the next head may turn out OPAQUE */
#define F_RELEASE 0x2 /* raw was reported: free it on the next call */
#define F_HELD 0x4 /* OPAQUE: raw holds bytes to hand back */
#define F_HEAD_READY 0x8 /* a head was just reported (rewrite allowed) */
/* Per-message flags, cleared when a head starts. */
#define M_HOST 0x100 /* Host header seen */
#define M_TARGET_HOST 0x200 /* host came from the request target */
#define M_TE 0x400 /* Transfer-Encoding present */
#define M_TE_CHUNKED_LAST 0x800 /* the last coding so far is chunked */
#define M_TE_CHUNKED_SEEN 0x1000 /* chunked appeared */
#define M_TE_BAD 0x2000 /* chunked twice, or a bad coding token */
#define M_CONN_CLOSE 0x4000
#define M_CONN_KEEPALIVE 0x8000
#define M_CONN_UPGRADE 0x10000
#define M_UPGRADE_HDR 0x20000
#define M_MASK 0x3ff00

/* What the response side knows of the request it answers. */
enum { KIND_OTHER, KIND_HEAD, KIND_CONNECT };

/* Results of the per-byte head step. */
enum { HB_MORE, HB_DONE, HB_FAIL, HB_OPAQUE };

#define CHUNK_EXT_MAX 4096

static int is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
		return 1;
	}
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-vchar, SP, HTAB and obs-text: what a header or trailer value holds. */
static int is_value_byte(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	if (c >= 'A' && c <= 'F') {
		return c - 'A' + 10;
	}
	return -1;
}

int http1_eq_ci(const char *p, size_t n, const char *lit)
{
	return strlen(lit) == n && strncasecmp(p, lit, n) == 0;
}

static int eq(const char *p, size_t n, const char *lit)
{
	return strlen(lit) == n && memcmp(p, lit, n) == 0;
}

/* memmem() without depending on _GNU_SOURCE (the fuzz build has none). */
static int contains(const char *p, size_t n, const char *lit)
{
	size_t l = strlen(lit), i;

	for (i = 0; i + l <= n; i++) {
		if (memcmp(p + i, lit, l) == 0) {
			return 1;
		}
	}
	return 0;
}

static int is_registered_method(const char *p, size_t n)
{
	static const char *const methods[] = {"GET",	 "HEAD",    "POST",  "PUT",  "DELETE",
					      "CONNECT", "OPTIONS", "TRACE", "PATCH"};
	size_t i;

	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (eq(p, n, methods[i])) {
			return 1;
		}
	}
	return 0;
}

static void trim_ows(const char **p, size_t *n)
{
	while (*n && ((*p)[0] == ' ' || (*p)[0] == '\t')) {
		(*p)++;
		(*n)--;
	}
	while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t')) {
		(*n)--;
	}
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
	trim_ows(elem, elen);
	return 1;
}

int http1_header_name_is(const struct http1_stream *s, int i, const char *name)
{
	return http1_eq_ci(s->raw + s->head.hdr[i].name_off, s->head.hdr[i].name_len, name);
}

const char *http1_header_value(const struct http1_stream *s, int i, size_t *n)
{
	const char *v = s->raw + s->head.hdr[i].name_off + s->head.hdr[i].name_len + 1;

	/* The line ends in CRLF; the value runs from after the colon. */
	*n = (size_t)(s->raw + s->head.hdr[i].line_off + s->head.hdr[i].line_len - 2 - v);
	trim_ows(&v, n);
	return v;
}

static void release_raw(struct http1_stream *s)
{
	free(s->raw);
	s->raw = NULL;
	s->raw_len = 0;
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
	release_raw(s);
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
static int pop_kind(struct http1_stream *s)
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

/* ------------------------------------------------------------------ */
/* Head lines                                                          */

/*
 * Whether a first request line that failed is an HTTP request gone wrong
 * (an error: failing closed) rather than another protocol (OPAQUE).  See
 * the header for the rule.
 */
static int looks_http(const struct http1_stream *s)
{
	const char *p = s->raw, *sp1, *sp2, *end;
	size_t n = s->raw_len;
	const char *cr;

	if (s->dir == HTTP1_RESPONSE) {
		return n >= 5 && memcmp(p, "HTTP/", 5) == 0;
	}
	if (s->internal[I_LINE] > 0) {
		return 1; /* the request line was valid: committed */
	}
	if ((cr = memchr(p, '\r', n)) != NULL) {
		n = (size_t)(cr - p);
	}
	if ((cr = memchr(p, '\n', n)) != NULL) {
		n = (size_t)(cr - p);
	}
	end = p + n;
	sp1 = memchr(p, ' ', n);
	if (!sp1) {
		return 0;
	}
	if (contains(sp1, (size_t)(end - sp1), "HTTP/")) {
		return 1;
	}
	sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1));
	if (sp2 && sp2 > sp1 + 1 && sp2 + 1 < end) {
		return 0; /* a third field that is not an HTTP version */
	}
	return is_registered_method(p, (size_t)(sp1 - p));
}

static int set_host(struct http1_stream *s, const char *p, size_t n)
{
	if (n >= sizeof(s->head.host)) {
		s->error = "Host too long";
		return HB_FAIL;
	}
	memcpy(s->head.host, p, n);
	s->head.host[n] = '\0';
	return HB_MORE;
}

static void set_path(struct http1_stream *s, const char *p, size_t n)
{
	const char *q = memchr(p, '?', n);

	if (q) {
		n = (size_t)(q - p);
	}
	if (n >= sizeof(s->head.path)) {
		n = 0; /* documented: "" when it does not fit */
	}
	memcpy(s->head.path, p, n);
	s->head.path[n] = '\0';
}

/* absolute-form: scheme "://" authority [path] ["?" query] */
static int absolute_target(struct http1_stream *s, const char *t, size_t n)
{
	size_t i = 0, a, e;
	const char *at;

	while (i < n && ((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') ||
			 (i > 0 && ((t[i] >= '0' && t[i] <= '9') || t[i] == '+' || t[i] == '-' ||
				    t[i] == '.')))) {
		i++;
	}
	if (i == 0 || n - i < 3 || memcmp(t + i, "://", 3) != 0) {
		s->error = "bad request target";
		return HB_FAIL;
	}
	a = i + 3;
	for (e = a; e < n && t[e] != '/' && t[e] != '?'; e++) {
	}
	/* userinfo@ is not part of the host the server will use */
	for (at = t + e; at > t + a && at[-1] != '@'; at--) {
	}
	if (at > t + a) {
		a = (size_t)(at - t);
	}
	if (e == a) {
		s->error = "bad request target";
		return HB_FAIL;
	}
	if (set_host(s, t + a, e - a) != HB_MORE) {
		return HB_FAIL;
	}
	s->internal[I_FLAGS] |= M_TARGET_HOST;
	if (e < n && t[e] == '/') {
		set_path(s, t + e, n - e);
	} else {
		strcpy(s->head.path, "/");
	}
	return HB_MORE;
}

static int request_line(struct http1_stream *s, size_t end)
{
	const char *p = s->raw, *sp1, *sp2, *t, *v;
	size_t mlen, tlen, vlen;

	sp1 = memchr(p, ' ', end);
	if (!sp1) {
		s->error = "missing request target";
		return HB_FAIL;
	}
	sp2 = memchr(sp1 + 1, ' ', end - (size_t)(sp1 + 1 - p));
	if (!sp2) {
		s->error = "missing HTTP version";
		return HB_FAIL;
	}
	mlen = (size_t)(sp1 - p);
	t = sp1 + 1;
	tlen = (size_t)(sp2 - t);
	v = sp2 + 1;
	vlen = end - (size_t)(v - p);
	if (eq(p, mlen, "PRI") && eq(t, tlen, "*") && eq(v, vlen, "HTTP/2.0") &&
	    (s->internal[I_FLAGS] & F_SNIFF)) {
		return HB_OPAQUE; /* HTTP/2 with prior knowledge */
	}
	if (tlen == 0) {
		s->error = "bad request target";
		return HB_FAIL;
	}
	if (vlen != 8 || memcmp(v, "HTTP/1.", 7) != 0 || (v[7] != '0' && v[7] != '1')) {
		s->error = "unsupported HTTP version";
		return HB_FAIL;
	}
	if (mlen >= sizeof(s->head.method)) {
		s->error = "method too long";
		return HB_FAIL;
	}
	/* Servers disagree on what a fragment does to the path (cut, kept,
	 * cleaned); a policy decision on a path must not depend on which. */
	if (memchr(t, '#', tlen)) {
		s->error = "fragment in request target";
		return HB_FAIL;
	}
	memcpy(s->head.method, p, mlen);
	s->head.method[mlen] = '\0';
	s->head.minor = v[7] - '0';
	s->head.first_line_len = (uint16_t)(end + 2);

	if (eq(p, mlen, "CONNECT")) {
		if (t[0] == '/') {
			s->error = "bad CONNECT target";
			return HB_FAIL;
		}
		s->internal[I_FLAGS] |= M_TARGET_HOST;
		return set_host(s, t, tlen);
	}
	if (eq(t, tlen, "*")) {
		if (!eq(p, mlen, "OPTIONS")) {
			s->error = "bad request target";
			return HB_FAIL;
		}
		strcpy(s->head.path, "*");
		return HB_MORE;
	}
	if (t[0] == '/') {
		set_path(s, t, tlen);
		return HB_MORE;
	}
	return absolute_target(s, t, tlen);
}

static int status_line(struct http1_stream *s, size_t end)
{
	const char *p = s->raw;

	/* "HTTP/" was checked byte by byte. */
	if (end < 8 || p[5] != '1' || p[6] != '.' || (p[7] != '0' && p[7] != '1') ||
	    (end > 8 && p[8] != ' ')) {
		s->error = "unsupported HTTP version";
		return HB_FAIL;
	}
	if (end < 12 || p[9] < '1' || p[9] > '9' || p[10] < '0' || p[10] > '9' || p[11] < '0' ||
	    p[11] > '9' || (end > 12 && p[12] != ' ')) {
		s->error = "malformed status line";
		return HB_FAIL;
	}
	s->head.minor = p[7] - '0';
	s->head.status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	s->head.first_line_len = (uint16_t)(end + 2);
	return HB_MORE;
}

static int content_length(struct http1_stream *s, const char *v, size_t n)
{
	const char *e;
	size_t elen, i;

	while (http1_list_next(&v, &n, &e, &elen)) {
		int64_t val = 0;

		if (elen == 0) {
			s->error = "bad Content-Length";
			return HB_FAIL;
		}
		for (i = 0; i < elen; i++) {
			if (e[i] < '0' || e[i] > '9' || val > (INT64_MAX - 9) / 10) {
				s->error = "bad Content-Length";
				return HB_FAIL;
			}
			val = val * 10 + (e[i] - '0');
		}
		if (s->head.content_length >= 0 && s->head.content_length != val) {
			s->error = "conflicting Content-Length";
			return HB_FAIL;
		}
		s->head.content_length = val;
	}
	return HB_MORE;
}

static void transfer_encoding(struct http1_stream *s, const char *v, size_t n)
{
	int *fl = &s->internal[I_FLAGS];
	const char *e;
	size_t elen, i;

	*fl |= M_TE;
	while (http1_list_next(&v, &n, &e, &elen)) {
		const char *semi = memchr(e, ';', elen);
		size_t name_len = semi ? (size_t)(semi - e) : elen;
		const char *name = e;

		if (elen == 0) {
			continue; /* empty list elements are allowed */
		}
		trim_ows(&name, &name_len);
		for (i = 0; i < name_len; i++) {
			if (!is_tchar((unsigned char)name[i])) {
				break;
			}
		}
		if (name_len == 0 || i < name_len) {
			*fl |= M_TE_BAD;
			continue;
		}
		if (http1_eq_ci(name, name_len, "chunked")) {
			if (*fl & M_TE_CHUNKED_SEEN) {
				*fl |= M_TE_BAD;
			}
			*fl |= M_TE_CHUNKED_SEEN | M_TE_CHUNKED_LAST;
		} else {
			*fl &= ~M_TE_CHUNKED_LAST;
		}
	}
}

static void connection_tokens(struct http1_stream *s, const char *v, size_t n)
{
	const char *e;
	size_t elen;

	while (http1_list_next(&v, &n, &e, &elen)) {
		if (http1_eq_ci(e, elen, "close")) {
			s->internal[I_FLAGS] |= M_CONN_CLOSE;
		} else if (http1_eq_ci(e, elen, "keep-alive")) {
			s->internal[I_FLAGS] |= M_CONN_KEEPALIVE;
		} else if (http1_eq_ci(e, elen, "upgrade")) {
			s->internal[I_FLAGS] |= M_CONN_UPGRADE;
		}
	}
}

static int host_header(struct http1_stream *s, const char *v, size_t n)
{
	size_t i;

	if (s->internal[I_FLAGS] & M_HOST) {
		s->error = "duplicate Host";
		return HB_FAIL;
	}
	s->internal[I_FLAGS] |= M_HOST;
	for (i = 0; i < n; i++) {
		if (v[i] == ' ' || v[i] == '\t') {
			s->error = "bad Host";
			return HB_FAIL;
		}
	}
	if (n >= sizeof(s->head.host)) {
		s->error = "Host too long";
		return HB_FAIL;
	}
	if (s->internal[I_FLAGS] & M_TARGET_HOST) {
		return HB_MORE; /* the target's authority wins */
	}
	return set_host(s, v, n);
}

static int header_line(struct http1_stream *s, size_t line, size_t end)
{
	const char *p = s->raw + line, *colon, *v;
	size_t n = end - line, name_len, vlen;
	int req = s->dir == HTTP1_REQUEST;

	if (!s->internal[I_AUX]) {
		s->error = "header without colon";
		return HB_FAIL;
	}
	if (s->head.n_hdr >= (int)(sizeof(s->head.hdr) / sizeof(s->head.hdr[0]))) {
		s->error = "too many headers";
		return HB_FAIL;
	}
	colon = memchr(p, ':', n);
	name_len = (size_t)(colon - p);
	s->head.hdr[s->head.n_hdr].name_off = (uint16_t)line;
	s->head.hdr[s->head.n_hdr].name_len = (uint16_t)name_len;
	s->head.hdr[s->head.n_hdr].line_off = (uint16_t)line;
	s->head.hdr[s->head.n_hdr].line_len = (uint16_t)(n + 2);
	s->head.n_hdr++;

	v = colon + 1;
	vlen = n - name_len - 1;
	trim_ows(&v, &vlen);
	if (http1_eq_ci(p, name_len, "content-length")) {
		return content_length(s, v, vlen);
	}
	if (http1_eq_ci(p, name_len, "transfer-encoding")) {
		transfer_encoding(s, v, vlen);
	} else if (http1_eq_ci(p, name_len, "connection")) {
		connection_tokens(s, v, vlen);
	} else if (req && http1_eq_ci(p, name_len, "host")) {
		return host_header(s, v, vlen);
	} else if (req && http1_eq_ci(p, name_len, "expect")) {
		if (http1_eq_ci(v, vlen, "100-continue")) {
			s->head.expect_continue = 1;
		}
	} else if (req && http1_eq_ci(p, name_len, "upgrade")) {
		if (vlen > 0) {
			s->internal[I_FLAGS] |= M_UPGRADE_HDR;
		}
	}
	return HB_MORE;
}

/* The blank line: decide how the message is framed and what follows. */
static int finish_head(struct http1_stream *s)
{
	int *fl = &s->internal[I_FLAGS];
	struct http1_head *h = &s->head;
	int next = ST_START, kind = KIND_OTHER, has_body = 1;

	h->conn_close = (*fl & M_CONN_CLOSE) || (h->minor == 0 && !(*fl & M_CONN_KEEPALIVE));
	if (s->dir == HTTP1_RESPONSE) {
		if (h->status < 200 && h->status != 101) {
			/* 1xx: another head follows for the same request */
			*fl &= ~F_SNIFF;
			s->state = ST_START;
			return HB_DONE;
		}
		kind = pop_kind(s);
		if (kind < 0) {
			s->error = "too many pipelined requests";
			return HB_FAIL;
		}
		if (h->status == 101 || (kind == KIND_CONNECT && h->status / 100 == 2)) {
			h->upgrade = 1;
			*fl &= ~F_SNIFF;
			s->state = ST_OPAQUE;
			return HB_DONE;
		}
		has_body = !(kind == KIND_HEAD || h->status == 204 || h->status == 304);
	}

	if (has_body && (*fl & M_TE)) {
		if (h->minor == 0) {
			s->error = "Transfer-Encoding in HTTP/1.0";
			return HB_FAIL;
		}
		if (h->content_length >= 0) {
			s->error = "both Transfer-Encoding and Content-Length";
			return HB_FAIL;
		}
		if (*fl & M_TE_BAD) {
			s->error = "bad Transfer-Encoding";
			return HB_FAIL;
		}
		if (*fl & M_TE_CHUNKED_LAST) {
			h->chunked = 1;
			next = ST_CHUNK_SIZE;
		} else if (s->dir == HTTP1_REQUEST) {
			s->error = "Transfer-Encoding must end in chunked";
			return HB_FAIL;
		} else {
			next = ST_BODY_EOF; /* another coding: delimited by close */
		}
	} else if (has_body && h->content_length > 0) {
		next = ST_BODY_LEN;
		s->body_left = h->content_length;
	} else if (has_body && h->content_length < 0 && s->dir == HTTP1_RESPONSE) {
		next = ST_BODY_EOF;
	}
	if (next == ST_BODY_EOF) {
		h->conn_close = 1;
	}
	if (next == ST_CHUNK_SIZE) {
		s->internal[I_AUX] = 0;
		s->body_left = 0;
	}

	*fl &= ~F_SNIFF;
	if (s->dir == HTTP1_REQUEST &&
	    (strcmp(h->method, "CONNECT") == 0 ||
	     (h->minor == 1 && (*fl & M_UPGRADE_HDR) && (*fl & M_CONN_UPGRADE)))) {
		/* If the switch succeeds, what follows is the new protocol,
		 * which may start before the answer arrives. */
		h->upgrade = 1;
		*fl |= F_SNIFF;
	}
	s->state = next;
	return HB_DONE;
}

/* A head line ended at raw[end] (the CR). */
static int end_of_line(struct http1_stream *s, size_t end)
{
	size_t line = (size_t)s->internal[I_LINE];
	int rc;

	s->state = ST_HEAD;
	if (line == 0) {
		rc = s->dir == HTTP1_REQUEST ? request_line(s, end) : status_line(s, end);
	} else if (end == line) {
		return finish_head(s);
	} else {
		rc = header_line(s, line, end);
	}
	if (rc != HB_MORE) {
		return rc; /* looks_http() must still see a failed first line */
	}
	s->internal[I_LINE] = (int)s->raw_len;
	s->internal[I_AUX] = 0;
	return rc;
}

static int head_byte(struct http1_stream *s, unsigned char c)
{
	size_t line = (size_t)s->internal[I_LINE], pos = s->raw_len;
	int *aux = &s->internal[I_AUX];

	if (pos >= HTTP1_MAX_HEAD) {
		s->error = "head too large";
		return HB_FAIL;
	}
	s->raw[s->raw_len++] = (char)c;
	if (s->state == ST_HEAD_CR) {
		if (c != '\n') {
			s->error = "CR without LF in head";
			return HB_FAIL;
		}
		return end_of_line(s, pos - 1);
	}
	if (c == '\r') {
		s->state = ST_HEAD_CR;
		return HB_MORE;
	}
	if (c == '\n') {
		s->error = "bare LF in head";
		return HB_FAIL;
	}

	if (line == 0 && s->dir == HTTP1_RESPONSE) {
		if (pos < 5) {
			if (c != (unsigned char)"HTTP/"[pos]) {
				s->error = "malformed status line";
				return HB_FAIL;
			}
		} else if (!is_value_byte(c)) {
			s->error = "bad byte in status line";
			return HB_FAIL;
		}
		return HB_MORE;
	}
	if (line == 0) {
		if (c == ' ') {
			(*aux)++;
		} else if (*aux == 0 && !is_tchar(c)) {
			s->error = "bad method";
			return HB_FAIL;
		} else if (*aux == 0 && pos >= sizeof(s->head.method) - 1) {
			/* No method is this long: a token stream of another protocol,
			 * decided now rather than after a whole line. */
			s->error = "method too long";
			return HB_FAIL;
		} else if (c < 0x21 || c > 0x7e) {
			s->error = "bad byte in request line";
			return HB_FAIL;
		}
		return HB_MORE;
	}

	if (pos == line && (c == ' ' || c == '\t')) {
		s->error = "line starts with whitespace (obs-fold)";
		return HB_FAIL;
	}
	if (!*aux) {
		if (c == ':') {
			if (pos == line) {
				s->error = "empty header name";
				return HB_FAIL;
			}
			*aux = 1;
		} else if (!is_tchar(c)) {
			s->error = "bad header name";
			return HB_FAIL;
		}
		return HB_MORE;
	}
	if (!is_value_byte(c)) {
		s->error = "bad byte in header value";
		return HB_FAIL;
	}
	return HB_MORE;
}

static enum http1_event go_error(struct http1_stream *s)
{
	release_raw(s);
	s->state = ST_ERROR;
	return HTTP1_ERROR;
}

/* OPAQUE: held bytes (taken by earlier calls) go back to the caller. */
static enum http1_event go_opaque(struct http1_stream *s, size_t held, size_t len, size_t *consumed)
{
	s->raw_len = held;
	if (held == 0) {
		release_raw(s);
	} else {
		s->internal[I_FLAGS] |= F_RELEASE;
	}
	s->state = ST_OPAQUE;
	*consumed = len;
	return HTTP1_OPAQUE;
}

/* The first byte of a head: the cheap non-HTTP checks, then the buffer. */
static int start_head(struct http1_stream *s, unsigned char c)
{
	int *fl = &s->internal[I_FLAGS];

	if (s->dir == HTTP1_REQUEST ? !is_tchar(c) : c != 'H') {
		s->error = s->dir == HTTP1_REQUEST ? "bad method" : "malformed status line";
		return *fl & F_SNIFF ? HB_OPAQUE : HB_FAIL;
	}
	if (!s->raw) {
		s->raw = malloc(HTTP1_MAX_HEAD);
		if (!s->raw) {
			s->error = "out of memory";
			return HB_FAIL;
		}
	}
	memset(&s->head, 0, sizeof(s->head));
	s->head.content_length = -1;
	s->raw_len = 0;
	s->internal[I_LINE] = 0;
	s->internal[I_AUX] = 0;
	*fl &= ~M_MASK;
	s->state = ST_HEAD;
	return HB_MORE;
}

static enum http1_event feed_head(struct http1_stream *s, const unsigned char *p, size_t len,
				  size_t *consumed)
{
	size_t held = s->raw_len, i;
	int rc;

	for (i = 0; i < len; i++) {
		unsigned char c = p[i];

		if (s->state == ST_START || s->state == ST_LEAD_CR) {
			/* RFC 9112 2.2: a server ignores empty lines before a
			 * request line; they are passed on as they came. */
			if (s->dir == HTTP1_REQUEST &&
			    (s->state == ST_LEAD_CR || c == '\r' || c == '\n')) {
				if (s->state == ST_START && c == '\r') {
					s->state = ST_LEAD_CR;
					continue;
				}
				if (s->state == ST_LEAD_CR && c == '\n') {
					s->state = ST_START;
					continue;
				}
				if (i > 0) {
					break; /* report the good bytes first */
				}
				s->error = c == '\n' ? "bare LF before request" : "CR without LF";
				if (s->internal[I_FLAGS] & F_SNIFF) {
					return go_opaque(s, 0, len, consumed);
				}
				return go_error(s);
			}
			if (i > 0) {
				break;
			}
			rc = start_head(s, c);
			if (rc == HB_OPAQUE) {
				return go_opaque(s, 0, len, consumed);
			}
			if (rc == HB_FAIL) {
				return go_error(s);
			}
		}
		rc = head_byte(s, c);
		if (rc == HB_DONE) {
			s->internal[I_FLAGS] |= F_RELEASE | F_HEAD_READY;
			*consumed = i + 1;
			return HTTP1_HEAD;
		}
		if (rc == HB_OPAQUE ||
		    (rc == HB_FAIL && (s->internal[I_FLAGS] & F_SNIFF) && !looks_http(s))) {
			return go_opaque(s, held, len, consumed);
		}
		if (rc == HB_FAIL) {
			return go_error(s);
		}
	}
	if (s->state == ST_START || s->state == ST_LEAD_CR) {
		*consumed = i;
		return i > 0 ? HTTP1_BODY : HTTP1_MORE;
	}
	*consumed = len;
	return HTTP1_MORE;
}

/* ------------------------------------------------------------------ */
/* Bodies                                                              */

/* One byte of chunk framing or trailer.  Returns 1 at the end of the
 * message, 0 to go on, -1 with s->error set (state unchanged). */
static int chunk_byte(struct http1_stream *s, unsigned char c)
{
	int *aux = &s->internal[I_AUX], *trailer = &s->internal[I_TRAILER];
	int v;

	switch (s->state) {
	case ST_CHUNK_SIZE:
		if ((v = hex_value(c)) >= 0) {
			if (s->body_left > (INT64_MAX >> 4)) {
				s->error = "chunk size too large";
				return -1;
			}
			s->body_left = s->body_left * 16 + v;
			(*aux)++;
			return 0;
		}
		if (*aux == 0 || (c != ' ' && c != '\t' && c != ';' && c != '\r')) {
			s->error = "bad chunk size";
			return -1;
		}
		*aux = 0;
		s->state = c == ';' ? ST_CHUNK_EXT : c == '\r' ? ST_CHUNK_SIZE_LF : ST_CHUNK_BWS;
		return 0;
	case ST_CHUNK_BWS:
	case ST_CHUNK_EXT:
		if (c == '\r') {
			s->state = ST_CHUNK_SIZE_LF;
			return 0;
		}
		if (*aux >= CHUNK_EXT_MAX) {
			s->error = "chunk extension too long";
			return -1;
		}
		if (s->state == ST_CHUNK_BWS && c != ' ' && c != '\t' && c != ';') {
			s->error = "bad chunk size";
			return -1;
		}
		if (!is_value_byte(c)) {
			s->error = "bad byte in chunk extension";
			return -1;
		}
		(*aux)++;
		if (c == ';') {
			s->state = ST_CHUNK_EXT;
		}
		return 0;
	case ST_CHUNK_SIZE_LF:
		if (c != '\n') {
			s->error = "CR without LF in chunk size";
			return -1;
		}
		if (s->body_left == 0) {
			*trailer = 0;
			s->state = ST_TRAILER_START;
		} else {
			s->state = ST_CHUNK_DATA;
		}
		return 0;
	case ST_CHUNK_DATA_CR:
		if (c != '\r') {
			s->error = "missing CRLF after chunk data";
			return -1;
		}
		s->state = ST_CHUNK_DATA_LF;
		return 0;
	case ST_CHUNK_DATA_LF:
		if (c != '\n') {
			s->error = "missing CRLF after chunk data";
			return -1;
		}
		*aux = 0;
		s->body_left = 0;
		s->state = ST_CHUNK_SIZE;
		return 0;
	default:
		break;
	}

	/* Trailers: checked like header lines, never stored. */
	if (*trailer >= HTTP1_MAX_HEAD) {
		s->error = "trailers too large";
		return -1;
	}
	switch (s->state) {
	case ST_TRAILER_START:
		if (c == '\r') {
			s->state = ST_TRAILER_END_LF;
		} else if (c == ' ' || c == '\t') {
			s->error = "line starts with whitespace (obs-fold)";
			return -1;
		} else if (is_tchar(c)) {
			s->state = ST_TRAILER_NAME;
		} else {
			s->error = c == ':' ? "empty trailer name" : "bad trailer name";
			return -1;
		}
		break;
	case ST_TRAILER_NAME:
		if (c == ':') {
			s->state = ST_TRAILER_VALUE;
		} else if (!is_tchar(c)) {
			s->error = c == '\r' ? "trailer without colon" : "bad trailer name";
			return -1;
		}
		break;
	case ST_TRAILER_VALUE:
		if (c == '\r') {
			s->state = ST_TRAILER_LF;
		} else if (!is_value_byte(c)) {
			s->error = "bad byte in trailer";
			return -1;
		}
		break;
	case ST_TRAILER_LF:
	case ST_TRAILER_END_LF:
		if (c != '\n') {
			s->error = "CR without LF in trailer";
			return -1;
		}
		if (s->state == ST_TRAILER_END_LF) {
			(*trailer)++;
			return 1;
		}
		s->state = ST_TRAILER_START;
		break;
	default:
		s->error = "internal state";
		return -1;
	}
	(*trailer)++;
	return 0;
}

static enum http1_event feed_body(struct http1_stream *s, const unsigned char *p, size_t len,
				  size_t *consumed)
{
	size_t i = 0, n;
	int rc;

	while (i < len) {
		switch (s->state) {
		case ST_BODY_EOF:
			i = len;
			break;
		case ST_BODY_LEN:
		case ST_CHUNK_DATA:
			n = len - i;
			if ((uint64_t)s->body_left < n) {
				n = (size_t)s->body_left;
			}
			i += n;
			s->body_left -= (int64_t)n;
			if (s->body_left > 0) {
				break;
			}
			if (s->state == ST_BODY_LEN) {
				s->state = ST_START;
				goto out;
			}
			s->state = ST_CHUNK_DATA_CR;
			break;
		default:
			rc = chunk_byte(s, p[i]);
			if (rc < 0) {
				if (i > 0) {
					goto out; /* the bad byte fails the next call */
				}
				return go_error(s);
			}
			i++;
			if (rc > 0) {
				s->state = ST_START;
				goto out;
			}
			break;
		}
	}
out:
	*consumed = i;
	return i > 0 ? HTTP1_BODY : HTTP1_MORE;
}

enum http1_event http1_feed(struct http1_stream *s, const char *buf, size_t len, size_t *consumed)
{
	const unsigned char *p = (const unsigned char *)buf;
	int *fl = &s->internal[I_FLAGS];

	*consumed = 0;
	*fl &= ~F_HEAD_READY;
	if (*fl & F_RELEASE) {
		*fl &= ~F_RELEASE;
		release_raw(s);
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
		return feed_head(s, p, len, consumed);
	default:
		return feed_body(s, p, len, consumed);
	}
}

/* ------------------------------------------------------------------ */
/* Rewriting                                                           */

/* extra must be whole "Name: value\r\n" lines, nothing else. */
static int extra_ok(const char *x)
{
	while (*x) {
		const char *start = x;

		while (is_tchar((unsigned char)*x)) {
			x++;
		}
		if (x == start || *x != ':') {
			return 0;
		}
		for (x++; *x && *x != '\r'; x++) {
			if (!is_value_byte((unsigned char)*x)) {
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
