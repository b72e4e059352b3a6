/*
 * HTTP/1 message heads: request and status lines, the headers that decide
 * framing (Content-Length, Transfer-Encoding, Connection, Host), and the
 * byte-by-byte head reader with its non-HTTP detection.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/http1.h"
#include "proto/http1_internal.h"

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
	if (http1_contains(sp1, (size_t)(end - sp1), "HTTP/")) {
		return 1;
	}
	sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1));
	if (sp2 && sp2 > sp1 + 1 && sp2 + 1 < end) {
		return 0; /* a third field that is not an HTTP version */
	}
	return http1_is_registered_method(p, (size_t)(sp1 - p));
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
	if (http1_eq(p, mlen, "PRI") && http1_eq(t, tlen, "*") && http1_eq(v, vlen, "HTTP/2.0") &&
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

	if (http1_eq(p, mlen, "CONNECT")) {
		if (t[0] == '/') {
			s->error = "bad CONNECT target";
			return HB_FAIL;
		}
		s->internal[I_FLAGS] |= M_TARGET_HOST;
		return set_host(s, t, tlen);
	}
	if (http1_eq(t, tlen, "*")) {
		if (!http1_eq(p, mlen, "OPTIONS")) {
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
		http1_trim_ows(&name, &name_len);
		for (i = 0; i < name_len; i++) {
			if (!http1_is_tchar((unsigned char)name[i])) {
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
	http1_trim_ows(&v, &vlen);
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
		kind = http1_pop_kind(s);
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
	if (http1_raw_room(s, 1) < 0) {
		s->error = "out of memory";
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
		} else if (!http1_is_value_byte(c)) {
			s->error = "bad byte in status line";
			return HB_FAIL;
		}
		return HB_MORE;
	}
	if (line == 0) {
		if (c == ' ') {
			(*aux)++;
		} else if (*aux == 0 && !http1_is_tchar(c)) {
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
		} else if (!http1_is_tchar(c)) {
			s->error = "bad header name";
			return HB_FAIL;
		}
		return HB_MORE;
	}
	if (!http1_is_value_byte(c)) {
		s->error = "bad byte in header value";
		return HB_FAIL;
	}
	return HB_MORE;
}

enum http1_event http1_go_error(struct http1_stream *s)
{
	http1_release_raw(s);
	s->state = ST_ERROR;
	return HTTP1_ERROR;
}

/* OPAQUE: held bytes (taken by earlier calls) go back to the caller. */
static enum http1_event go_opaque(struct http1_stream *s, size_t held, size_t len, size_t *consumed)
{
	s->raw_len = held;
	if (held == 0) {
		http1_release_raw(s);
	} else {
		s->internal[I_FLAGS] |= F_RELEASE;
	}
	s->state = ST_OPAQUE;
	*consumed = len;
	return HTTP1_OPAQUE;
}

/*
 * The bytes of a header name or value up to the next one that needs a
 * decision (':', CR, a bad byte), taken as a run: most of a head, copied
 * at once instead of byte by byte.  Returns how many of p were taken (0:
 * the next byte goes through head_byte()).
 */
static size_t head_run(struct http1_stream *s, const unsigned char *p, size_t len)
{
	size_t line = (size_t)s->internal[I_LINE], n = 0;

	if (s->state != ST_HEAD || line == 0 || s->raw_len == line ||
	    s->raw_len >= HTTP1_MAX_HEAD) {
		return 0; /* a start line, a line's first byte, CR LF: per byte */
	}
	if (len > HTTP1_MAX_HEAD - s->raw_len) {
		len = HTTP1_MAX_HEAD - s->raw_len;
	}
	if (s->internal[I_AUX]) {
		while (n < len && p[n] != '\r' && http1_is_value_byte(p[n])) {
			n++;
		}
	} else {
		while (n < len && http1_is_tchar(p[n])) {
			n++;
		}
	}
	/* Room for the run only: what follows the head is not head. */
	if (http1_raw_room(s, n) < 0) {
		return 0;
	}
	memcpy(s->raw + s->raw_len, p, n);
	s->raw_len += n;
	return n;
}

/* The first byte of a head: the cheap non-HTTP checks, then the buffer. */
static int start_head(struct http1_stream *s, unsigned char c)
{
	int *fl = &s->internal[I_FLAGS];

	if (s->dir == HTTP1_REQUEST ? !http1_is_tchar(c) : c != 'H') {
		s->error = s->dir == HTTP1_REQUEST ? "bad method" : "malformed status line";
		return *fl & F_SNIFF ? HB_OPAQUE : HB_FAIL;
	}
	if (http1_raw_room(s, 1) < 0) {
		s->error = "out of memory";
		return HB_FAIL;
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

enum http1_event http1_feed_head(struct http1_stream *s, const unsigned char *p, size_t len,
				 size_t *consumed)
{
	size_t held = s->raw_len, i, n;
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
				return http1_go_error(s);
			}
			if (i > 0) {
				break;
			}
			rc = start_head(s, c);
			if (rc == HB_OPAQUE) {
				return go_opaque(s, 0, len, consumed);
			}
			if (rc == HB_FAIL) {
				return http1_go_error(s);
			}
		}
		n = head_run(s, p + i, len - i);
		if (n) {
			i += n - 1;
			continue;
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
			return http1_go_error(s);
		}
	}
	if (s->state == ST_START || s->state == ST_LEAD_CR) {
		*consumed = i;
		return i > 0 ? HTTP1_BODY : HTTP1_MORE;
	}
	*consumed = len;
	return HTTP1_MORE;
}
