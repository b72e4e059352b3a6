/*
 * Unit tests for daemon/proto/http1.c.
 *
 * Each table case feeds one direction's bytes and compares what came back,
 * written as a trace ("REQ GET /a h=x; BODY 5; RESP 200 cl=5; OPAQUE 9;
 * ERROR why"), with the expected trace.  Adjacent BODY or OPAQUE bytes are
 * added up, since how many reports carry them depends on how the input was
 * cut.  Every case is then fed again cut at every offset, cut at every pair
 * of offsets (short inputs), and one byte at a time, and must give the same
 * trace.  The driver also checks, on every run, that each head's raw bytes
 * are exactly the input bytes at that place, that OPAQUE hands back exactly
 * the bytes it held, that nothing is reported twice or lost, and that a
 * head rewritten with nothing dropped or added is the head itself.
 *
 * Decisions the tests pin down: a bare LF is an error in a head, in chunk
 * framing and in trailers (never a line end), except on the first line of
 * a stream that does not look like HTTP, which is OPAQUE; empty CRLF lines
 * before a request are passed on as BODY.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldmesh/common.h"
#include "proto/http1.h"

/* ------------------------------------------------------------------ */
/* Driver                                                              */

struct trace {
	char s[4096];
	size_t len;
	int last; /* HTTP1_BODY or HTTP1_OPAQUE while a run is open, else -1 */
	size_t run; /* bytes of the open run */
};

static void t_add(struct trace *t, const char *fmt, ...) LDM_PRINTF(2, 3);

static void t_add(struct trace *t, const char *fmt, ...)
{
	va_list ap;

	if (t->len > 0 && t->len < sizeof(t->s)) {
		t->len += (size_t)snprintf(t->s + t->len, sizeof(t->s) - t->len, "; ");
	}
	if (t->len < sizeof(t->s)) {
		va_start(ap, fmt);
		t->len += (size_t)vsnprintf(t->s + t->len, sizeof(t->s) - t->len, fmt, ap);
		va_end(ap);
	}
	assert_true(t->len < sizeof(t->s));
}

static void t_flush(struct trace *t)
{
	int last = t->last;

	t->last = -1;
	if (last == HTTP1_BODY) {
		t_add(t, "BODY %zu", t->run);
	} else if (last == HTTP1_OPAQUE) {
		t_add(t, "OPAQUE %zu", t->run);
	}
}

static void t_run(struct trace *t, int ev, size_t n)
{
	if (t->last != ev) {
		t_flush(t);
		t->last = ev;
		t->run = 0;
	}
	t->run += n;
}

static void t_head(struct trace *t, const struct http1_stream *s)
{
	const struct http1_head *h = &s->head;
	char cl[32] = "";

	if (h->content_length >= 0) {
		snprintf(cl, sizeof(cl), " cl=%lld", (long long)h->content_length);
	}
	t_flush(t);
	if (s->dir == HTTP1_REQUEST) {
		t_add(t, "REQ %s %s%s%s%s%s%s%s%s%s", h->method, h->path, h->host[0] ? " h=" : "",
		      h->host, cl, h->chunked ? " chunked" : "", h->conn_close ? " close" : "",
		      h->expect_continue ? " continue" : "", h->upgrade ? " upgrade" : "",
		      h->minor == 0 ? " 1.0" : "");
	} else {
		t_add(t, "RESP %d%s%s%s%s%s", h->status, cl, h->chunked ? " chunked" : "",
		      h->conn_close ? " close" : "", h->upgrade ? " upgrade" : "",
		      h->minor == 0 ? " 1.0" : "");
	}
}

struct tcase {
	const char *name;
	enum http1_dir dir;
	const char *notes; /* response side: requests noted first, H=HEAD C=CONNECT G=other */
	const char *in;
	size_t len;
	const char *want;
};

static void note_all(struct http1_stream *s, const char *notes)
{
	for (; notes && *notes; notes++) {
		http1_note_request_method(s, *notes == 'H'   ? "HEAD"
					     : *notes == 'C' ? "CONNECT"
							     : "GET");
	}
}

/* Feeds c->in cut before each offset in cuts[] (increasing) and traces it. */
static void run_cuts(const struct tcase *c, const size_t *cuts, size_t ncuts, struct trace *t)
{
	static char rw[HTTP1_MAX_HEAD + 16];
	struct http1_stream s;
	size_t fwd = 0, start = 0, k;
	int last = -1;

	memset(t, 0, sizeof(*t));
	t->last = -1;
	http1_init(&s, c->dir);
	note_all(&s, c->notes);
	for (k = 0; k <= ncuts; k++) {
		size_t end = k < ncuts ? cuts[k] : c->len, off = start;

		while (off < end) {
			size_t n = (size_t)-1;
			enum http1_event ev = http1_feed(&s, c->in + off, end - off, &n);

			assert_true(n <= end - off);
			last = ev;
			switch (ev) {
			case HTTP1_MORE:
				assert_int_equal(n, end - off);
				break;
			case HTTP1_HEAD: {
				int r;

				assert_true(n > 0);
				assert_true(s.raw_len > 0 && fwd + s.raw_len <= c->len);
				assert_memory_equal(s.raw, c->in + fwd, s.raw_len);
				fwd += s.raw_len;
				assert_int_equal(fwd, off + n);
				r = http1_rewrite_head(&s, NULL, NULL, rw, sizeof(rw));
				assert_int_equal(r, (int)s.raw_len);
				assert_memory_equal(rw, s.raw, s.raw_len);
				t_head(t, &s);
				break;
			}
			case HTTP1_BODY:
				assert_true(n > 0);
				assert_int_equal(fwd, off);
				fwd += n;
				t_run(t, HTTP1_BODY, n);
				break;
			case HTTP1_OPAQUE:
				assert_int_equal(n, end - off);
				if (s.raw_len > 0) {
					assert_memory_equal(s.raw, c->in + fwd, s.raw_len);
				}
				assert_int_equal(fwd + s.raw_len, off);
				fwd = off + n;
				t_run(t, HTTP1_OPAQUE, s.raw_len + n);
				break;
			case HTTP1_ERROR:
				assert_int_equal(n, 0);
				assert_non_null(s.error);
				t_flush(t);
				t_add(t, "ERROR %s", s.error);
				/* sticky */
				assert_int_equal(http1_feed(&s, c->in + off, end - off, &n),
						 HTTP1_ERROR);
				assert_int_equal(n, 0);
				goto done;
			}
			off += n;
		}
		start = end;
	}
	t_flush(t);
	/* Nothing lost: what was not reported is the partial head held. */
	if (last == HTTP1_HEAD || last == HTTP1_OPAQUE) {
		assert_int_equal(fwd, c->len);
	} else {
		assert_int_equal(c->len - fwd, s.raw_len);
	}
done:
	http1_fini(&s);
	assert_null(s.raw);
}

static void check_case(const struct tcase *c)
{
	struct trace whole, cut;
	size_t *cuts, i, j, step;

	run_cuts(c, NULL, 0, &whole);
	if (strcmp(whole.s, c->want) != 0) {
		print_error("%s:\n  got  %s\n  want %s\n", c->name, whole.s, c->want);
		fail();
	}
	if (c->len < 2) {
		return;
	}
	/* every single cut (with a stride for the huge inputs) */
	step = c->len > 4096 ? 61 : 1;
	for (i = 1; i < c->len; i += (i < 32 || c->len - i < 32) ? 1 : step) {
		run_cuts(c, &i, 1, &cut);
		if (strcmp(whole.s, cut.s) != 0) {
			print_error("%s cut at %zu:\n  got  %s\n  want %s\n", c->name, i, cut.s,
				    whole.s);
			fail();
		}
	}
	/* every pair of cuts for short inputs */
	if (c->len <= 256) {
		size_t two[2];

		for (i = 1; i < c->len; i++) {
			for (j = i + 1; j < c->len; j++) {
				two[0] = i;
				two[1] = j;
				run_cuts(c, two, 2, &cut);
				if (strcmp(whole.s, cut.s) != 0) {
					print_error("%s cut at %zu,%zu:\n  got  %s\n  want %s\n",
						    c->name, i, j, cut.s, whole.s);
					fail();
				}
			}
		}
	}
	/* one byte at a time */
	cuts = malloc(c->len * sizeof(*cuts));
	assert_non_null(cuts);
	for (i = 1; i < c->len; i++) {
		cuts[i - 1] = i;
	}
	run_cuts(c, cuts, c->len - 1, &cut);
	free(cuts);
	if (strcmp(whole.s, cut.s) != 0) {
		print_error("%s byte by byte:\n  got  %s\n  want %s\n", c->name, cut.s, whole.s);
		fail();
	}
}

/* ------------------------------------------------------------------ */
/* Table                                                               */

#define S(x) x, sizeof(x) - 1
#define REQ HTTP1_REQUEST
#define RESP HTTP1_RESPONSE
#define GET_H "GET / HTTP/1.1\r\nHost: h\r\n\r\n"

static const struct tcase cases[] = {
	/* Requests: framing. */
	{"simple get", REQ, NULL, S("GET /a/b?x=1&y HTTP/1.1\r\nHost:  h.example:80 \r\n\r\n"),
	 "REQ GET /a/b h=h.example:80"},
	{"keep-alive sequence", REQ, NULL,
	 S(GET_H "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello" GET_H),
	 "REQ GET / h=h; REQ POST /p h=h cl=5; BODY 5; REQ GET / h=h"},
	{"pipelined with chunked body", REQ, NULL,
	 S("PUT /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
	   "3\r\nabc\r\n0\r\n\r\n" GET_H
	   "DELETE /d HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"),
	 "REQ PUT /u h=h chunked; BODY 13; REQ GET / h=h; REQ DELETE /d h=h cl=0"},
	{"chunked extensions and trailers", REQ, NULL,
	 S("POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
	   "5;name=val;q=\"a b;c\"\r\nhello\r\n"
	   "A ; x\r\n0123456789\r\n"
	   "000;last\r\nX-Trailer: 1\r\nChecksum: \x80\xff ok\r\n\r\n" GET_H),
	 "REQ POST /c h=h chunked; BODY 91; REQ GET / h=h"},
	{"transfer-encoding case and list", REQ, NULL,
	 S("POST / HTTP/1.1\r\nTransfer-Encoding: gzip , \r\ntransfer-encoding: CHUNKED\r\n\r\n"
	   "0\r\n\r\n"),
	 "REQ POST / chunked; BODY 5"},
	{"content-length repeated equal", REQ, NULL,
	 S("POST / HTTP/1.1\r\nContent-Length: 3, 3\r\ncontent-length:3\r\n\r\nabc"),
	 "REQ POST / cl=3; BODY 3"},
	{"get without length has no body", REQ, NULL,
	 S("GET / HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n"), "REQ GET /; REQ GET /2"},
	{"expect 100-continue", REQ, NULL,
	 S("PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nab"),
	 "REQ PUT /f h=h cl=2 continue; BODY 2"},
	{"connection close", REQ, NULL,
	 S("GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n"), "REQ GET / close"},
	{"http/1.0 closes unless keep-alive", REQ, NULL,
	 S("GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
	 "REQ GET /a close 1.0; REQ GET /b 1.0"},
	{"empty lines before a request", REQ, NULL, S("\r\n\r\n" GET_H "\r\n" GET_H),
	 "BODY 4; REQ GET / h=h; BODY 2; REQ GET / h=h"},
	{"absolute-form target", REQ, NULL,
	 S("GET http://u:p@Example.com:8080/p/q?x=1 HTTP/1.1\r\nHost: other\r\n\r\n"
	   "GET https://example.com?x HTTP/1.1\r\n\r\n"),
	 "REQ GET /p/q h=Example.com:8080; REQ GET / h=example.com"},
	{"asterisk-form", REQ, NULL, S("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"),
	 "REQ OPTIONS * h=h"},
	{"extension method", REQ, NULL, S("PROPFIND /dav HTTP/1.1\r\n\r\n"), "REQ PROPFIND /dav"},
	{"obs-text in header value", REQ, NULL, S("GET / HTTP/1.1\r\nX-A: caf\xc3\xa9\t!\r\n\r\n"),
	 "REQ GET /"},

	/* Requests: switching protocols. */
	{"upgrade request then websocket frames", REQ, NULL,
	 S("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
	   "\x81\x85\x01\x02\x03\x04hello"),
	 "REQ GET /ws h=h upgrade; OPAQUE 11"},
	{"upgrade request with a body, then declined", REQ, NULL,
	 S("POST /up HTTP/1.1\r\nUpgrade: h2c\r\nConnection: upgrade, HTTP2-Settings\r\n"
	   "Content-Length: 4\r\n\r\nbody" GET_H),
	 "REQ POST /up cl=4 upgrade; BODY 4; REQ GET / h=h"},
	{"upgrade header without connection token", REQ, NULL,
	 S("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"), "REQ GET /"},
	{"h2c upgrade then preface", REQ, NULL,
	 S("GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"
	   "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
	 "REQ GET / upgrade; OPAQUE 24"},
	{"connect then tls", REQ, NULL,
	 S("CONNECT db.internal:5432 HTTP/1.1\r\nHost: "
	   "db.internal:5432\r\n\r\n\x16\x03\x01\x00\x05"),
	 "REQ CONNECT  h=db.internal:5432 upgrade; OPAQUE 5"},

	/* Requests: not HTTP. */
	{"tls client hello", REQ, NULL, S("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
	 "OPAQUE 11"},
	{"ssh banner", REQ, NULL, S("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n\x00\x00\x05\xdc"),
	 "OPAQUE 44"},
	{"short ssh banner", REQ, NULL, S("SSH-2.0-Go\r\n"), "OPAQUE 12"},
	{"http/2 preface", REQ, NULL, S("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04"),
	 "OPAQUE 28"},
	{"rtsp", REQ, NULL, S("OPTIONS rtsp://cam/s RTSP/1.0\r\nCSeq: 1\r\n\r\n"), "OPAQUE 42"},
	{"redis resp", REQ, NULL, S("*1\r\n$4\r\nPING\r\n"), "OPAQUE 14"},
	{"memcached text", REQ, NULL, S("set k 0 0 5\r\nhello\r\n"), "OPAQUE 20"},
	{"postgres startup", REQ, NULL, S("\x00\x00\x00\x08\x04\xd2\x16\x2f"), "OPAQUE 8"},
	{"bare LF first line, not http", REQ, NULL, S("hello world\n"), "OPAQUE 12"},

	/* Requests: malformed. */
	{"bad method token", REQ, NULL, S(GET_H "G(T / HTTP/1.1\r\n\r\n"),
	 "REQ GET / h=h; ERROR bad method"},
	/* No method is that long: decided as another protocol at the 16th byte,
	 * without waiting for the end of the line. */
	{"method too long", REQ, NULL, S("ABCDEFGHIJKLMNOPQ / HTTP/1.1\r\n\r\n"), "OPAQUE 32"},
	{"token stream", REQ, NULL, S("yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"), "OPAQUE 40"},
	{"missing http version", REQ, NULL, S("GET /admin\r\n\r\n"), "ERROR missing HTTP version"},
	{"missing version on a later request", REQ, NULL, S(GET_H "FOO /x\r\n\r\n"),
	 "REQ GET / h=h; ERROR missing HTTP version"},
	{"unsupported version", REQ, NULL, S("GET / HTTP/1.2\r\n\r\n"),
	 "ERROR unsupported HTTP version"},
	{"http/2.0 request line", REQ, NULL, S("GET / HTTP/2.0\r\n\r\n"),
	 "ERROR unsupported HTTP version"},
	{"double space", REQ, NULL, S("GET  /admin HTTP/1.1\r\n\r\n"), "ERROR bad request target"},
	{"bare LF in request line", REQ, NULL, S("GET / HTTP/1.1\nHost: h\n\n"),
	 "ERROR bare LF in head"},
	{"bare LF in header", REQ, NULL, S("GET / HTTP/1.1\r\nHost: h\n\r\n"),
	 "ERROR bare LF in head"},
	{"bare LF between requests", REQ, NULL, S(GET_H "\n" GET_H),
	 "REQ GET / h=h; ERROR bare LF before request"},
	{"CR without LF", REQ, NULL, S("GET / HTTP/1.1\r\nA: b\rC: d\r\n\r\n"),
	 "ERROR CR without LF in head"},
	{"header without colon", REQ, NULL, S("GET / HTTP/1.1\r\nHost h\r\n\r\n"),
	 "ERROR bad header name"},
	{"header name only", REQ, NULL, S("GET / HTTP/1.1\r\nHost\r\n\r\n"),
	 "ERROR header without colon"},
	{"space before colon", REQ, NULL, S("GET / HTTP/1.1\r\nHost : h\r\n\r\n"),
	 "ERROR bad header name"},
	{"empty header name", REQ, NULL, S("GET / HTTP/1.1\r\n: h\r\n\r\n"),
	 "ERROR empty header name"},
	{"obs-fold", REQ, NULL, S("GET / HTTP/1.1\r\nX-A: 1\r\n  2\r\n\r\n"),
	 "ERROR line starts with whitespace (obs-fold)"},
	{"NUL in header value", REQ, NULL,
	 S("GET / HTTP/1.1\r\nX-A: a\x00"
	   "b\r\n\r\n"),
	 "ERROR bad byte in header value"},
	{"NUL in header name", REQ, NULL,
	 S("GET / HTTP/1.1\r\nX\x00"
	   "A: ab\r\n\r\n"),
	 "ERROR bad header name"},
	{"NUL in target", REQ, NULL, S("GET /a\x00 HTTP/1.1\r\n\r\n"),
	 "ERROR bad byte in request line"},
	{"DEL in header value", REQ, NULL, S("GET / HTTP/1.1\r\nX-A: a\x7f\r\n\r\n"),
	 "ERROR bad byte in header value"},
	{"conflicting content-length", REQ, NULL,
	 S("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"),
	 "ERROR conflicting Content-Length"},
	{"conflicting content-length list", REQ, NULL,
	 S("POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\nhello"),
	 "ERROR conflicting Content-Length"},
	{"signed content-length", REQ, NULL, S("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n"),
	 "ERROR bad Content-Length"},
	{"empty content-length", REQ, NULL, S("POST / HTTP/1.1\r\nContent-Length: \r\n\r\n"),
	 "ERROR bad Content-Length"},
	{"huge content-length", REQ, NULL,
	 S("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"),
	 "ERROR bad Content-Length"},
	{"transfer-encoding and content-length", REQ, NULL,
	 S("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
	 "ERROR both Transfer-Encoding and Content-Length"},
	{"transfer-encoding in http/1.0", REQ, NULL,
	 S("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
	 "ERROR Transfer-Encoding in HTTP/1.0"},
	{"chunked not last", REQ, NULL,
	 S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
	 "ERROR Transfer-Encoding must end in chunked"},
	{"chunked twice", REQ, NULL,
	 S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
	 "ERROR bad Transfer-Encoding"},
	{"quoted coding", REQ, NULL, S("POST / HTTP/1.1\r\nTransfer-Encoding: \"chunked\"\r\n\r\n"),
	 "ERROR bad Transfer-Encoding"},
	{"bad chunk size", REQ, NULL,
	 S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"),
	 "REQ POST / chunked; BODY 10; ERROR bad chunk size"},
	{"hex prefix in chunk size", REQ, NULL,
	 S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n"),
	 "REQ POST / chunked; BODY 1; ERROR bad chunk size"},
	{"empty chunk size", REQ, NULL,
	 S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\r\n"),
	 "REQ POST / chunked; ERROR bad chunk size"},
	{"chunk size overflow", REQ, NULL,
	 S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n80000000000000000\r\n"),
	 "REQ POST / chunked; BODY 15; ERROR chunk size too large"},
	{"chunk data longer than its size", REQ, NULL,
	 S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n"),
	 "REQ POST / chunked; BODY 6; ERROR missing CRLF after chunk data"},
	{"bare LF in chunk size line", REQ, NULL,
	 S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n"),
	 "REQ POST / chunked; BODY 1; ERROR bad chunk size"},
	{"bare LF in chunk extension", REQ, NULL,
	 S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;a\nabc\r\n"),
	 "REQ POST / chunked; BODY 3; ERROR bad byte in chunk extension"},
	{"trailer obs-fold", REQ, NULL,
	 S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\n 2\r\n\r\n"),
	 "REQ POST / chunked; BODY 9; ERROR line starts with whitespace (obs-fold)"},
	{"trailer without colon", REQ, NULL,
	 S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nAbc\r\n\r\n"),
	 "REQ POST / chunked; BODY 6; ERROR trailer without colon"},
	{"duplicate host", REQ, NULL, S("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"),
	 "ERROR duplicate Host"},
	{"host with a space", REQ, NULL, S("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
	 "ERROR bad Host"},
	{"fragment in target", REQ, NULL, S("GET /api#/../admin HTTP/1.1\r\n\r\n"),
	 "ERROR fragment in request target"},
	{"asterisk with GET", REQ, NULL, S("GET * HTTP/1.1\r\n\r\n"), "ERROR bad request target"},
	{"relative target", REQ, NULL, S("GET admin HTTP/1.1\r\n\r\n"), "ERROR bad request target"},

	/* Responses. */
	{"response with length", RESP, "G", S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
	 "RESP 200 cl=5; BODY 5"},
	{"keep-alive responses", RESP, "GGG",
	 S("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	   "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
	   "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nnope\r\n0\r\n\r\n"),
	 "RESP 200 cl=2; BODY 2; RESP 500 cl=0; RESP 404 chunked; BODY 14"},
	{"chunked response with trailers", RESP, "G",
	 S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	   "1a; ext\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nGrpc-Status: 0\r\n\r\n"),
	 "RESP 200 chunked; BODY 58"},
	{"100 continue then final", RESP, "G",
	 S("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx"),
	 "RESP 100; RESP 201 cl=1; BODY 1"},
	{"several 1xx then final", RESP, "H",
	 S("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
	   "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"),
	 "RESP 100; RESP 103; RESP 200 cl=9"},
	{"101 switching protocols", RESP, "G",
	 S("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
	   "\x81\x05hello"),
	 "RESP 101 upgrade; OPAQUE 7"},
	{"head response has no body", RESP, "HG",
	 S("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
	   "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"),
	 "RESP 200 cl=100; RESP 200 cl=3; BODY 3"},
	{"head response with chunked", RESP, "HG",
	 S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	   "HTTP/1.1 204 No Content\r\n\r\n"),
	 "RESP 200; RESP 204"},
	{"pipelined head fifo", RESP, "GHG",
	 S("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
	   "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"
	   "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ndef"),
	 "RESP 200 cl=3; BODY 3; RESP 200 cl=3; RESP 200 cl=3; BODY 3"},
	{"204 and 304", RESP, "GG",
	 S("HTTP/1.1 204 No Content\r\n\r\n"
	   "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n"),
	 "RESP 204; RESP 304 cl=50"},
	{"read until close", RESP, "G",
	 S("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it\r\n"
	   "HTTP/1.1 200 OK\r\n\r\n"),
	 "RESP 200 close; BODY 30"},
	{"http/1.0 response", RESP, "G", S("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nz"),
	 "RESP 200 cl=1 close 1.0; BODY 1"},
	{"unknown coding reads until close", RESP, "G",
	 S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b\x08"),
	 "RESP 200 close; BODY 3"},
	{"connect established", RESP, "C",
	 S("HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03\x00\x02"),
	 "RESP 200 upgrade; OPAQUE 5"},
	{"connect refused", RESP, "C", S("HTTP/1.1 407 Proxy Auth\r\nContent-Length: 2\r\n\r\nno"),
	 "RESP 407 cl=2; BODY 2"},
	{"status without reason", RESP, "G", S("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"),
	 "RESP 200 cl=0"},
	{"obs-text reason", RESP, "G",
	 S("HTTP/1.1 200 \xc3\x89tat\tok\r\nContent-Length: 0\r\n\r\n"), "RESP 200 cl=0"},
	{"server speaks first", RESP, NULL, S("220 smtp.example ESMTP\r\n"), "OPAQUE 24"},
	{"non-http answer to a request", RESP, "G", S("SSH-2.0-x\r\n"),
	 "ERROR malformed status line"},
	{"bad status code", RESP, "G", S("HTTP/1.1 20x OK\r\n\r\n"), "ERROR malformed status line"},
	{"status below 100", RESP, "G", S("HTTP/1.1 099 Low\r\n\r\n"),
	 "ERROR malformed status line"},
	{"response version", RESP, "G", S("HTTP/2 200\r\n\r\n"), "ERROR unsupported HTTP version"},
	{"response bare LF", RESP, "G", S("HTTP/1.1 200 OK\nContent-Length: 0\n\n"),
	 "ERROR bare LF in head"},
	{"response te and cl", RESP, "G",
	 S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
	 "ERROR both Transfer-Encoding and Content-Length"},
	{"response conflicting cl", RESP, "G",
	 S("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
	 "ERROR conflicting Content-Length"},
};

static void test_case(void **state)
{
	check_case(*state);
}

/* ------------------------------------------------------------------ */
/* Large inputs, built at run time                                     */

static char *repeat_head(const char *prefix, char fill, size_t fill_len, const char *suffix,
			 size_t *len)
{
	size_t p = strlen(prefix), s = strlen(suffix);
	char *b = malloc(p + fill_len + s + 1);

	assert_non_null(b);
	memcpy(b, prefix, p);
	memset(b + p, fill, fill_len);
	memcpy(b + p + fill_len, suffix, s + 1);
	*len = p + fill_len + s;
	return b;
}

/* A head of exactly HTTP1_MAX_HEAD bytes passes; one more byte fails. */
static void test_head_size_limit(void **state)
{
	const char *pre = "GET / HTTP/1.1\r\nX-Pad: ", *suf = "\r\n\r\n";
	size_t fill = HTTP1_MAX_HEAD - strlen(pre) - strlen(suf), len;
	struct tcase c = {"max head", REQ, NULL, NULL, 0, "REQ GET /"};
	char *b = repeat_head(pre, 'a', fill, suf, &len);

	assert_int_equal(len, HTTP1_MAX_HEAD);
	c.in = b;
	c.len = len;
	check_case(&c);
	free(b);

	b = repeat_head(pre, 'a', fill + 1, suf, &len);
	c.name = "head too large";
	c.in = b;
	c.len = len;
	c.want = "ERROR head too large";
	check_case(&c);
	free(b);

	/* a response too */
	b = repeat_head("HTTP/1.1 200 OK\r\nX: ", 'b', HTTP1_MAX_HEAD, suf, &len);
	c.name = "response head too large";
	c.dir = RESP;
	c.in = b;
	c.len = len;
	check_case(&c);
	free(b);
}

/* A first line that never ends: an error when it looks like HTTP,
 * OPAQUE when it does not. */
static void test_endless_first_line(void **state)
{
	struct tcase c = {"endless GET", REQ, NULL, NULL, 0, "ERROR head too large"};
	size_t len;
	char *b = repeat_head("GET /", 'a', HTTP1_MAX_HEAD + 10, "", &len);

	c.in = b;
	c.len = len;
	check_case(&c);
	free(b);

	b = repeat_head("XYZ ", 'a', HTTP1_MAX_HEAD + 10, "", &len);
	c.name = "endless text";
	c.in = b;
	c.len = len;
	c.want = "OPAQUE 16398";
	check_case(&c);
	free(b);
}

static void test_long_path(void **state)
{
	struct tcase c = {"path too long", REQ, NULL, NULL, 0, "REQ GET  h=h"};
	size_t len;
	char *b = repeat_head("GET /", 'p', 2100, "?q HTTP/1.1\r\nHost: h\r\n\r\n", &len);

	c.in = b;
	c.len = len;
	check_case(&c);
	free(b);
}

static void test_too_many_headers(void **state)
{
	char *b = malloc(4096), *p = b;
	struct tcase c = {"100 headers", REQ, NULL, NULL, 0, "REQ GET /"};
	int i;

	assert_non_null(b);
	p += sprintf(p, "GET / HTTP/1.1\r\n");
	for (i = 0; i < 100; i++) {
		p += sprintf(p, "H%d: v\r\n", i);
	}
	strcpy(p, "\r\n");
	c.in = b;
	c.len = strlen(b);
	check_case(&c);

	strcpy(p, "H100: v\r\n\r\n");
	c.name = "101 headers";
	c.len = strlen(b);
	c.want = "ERROR too many headers";
	check_case(&c);
	free(b);
}

static void test_long_host(void **state)
{
	struct tcase c = {"host too long", REQ, NULL, NULL, 0, "ERROR Host too long"};
	size_t len;
	char *b = repeat_head("GET / HTTP/1.1\r\nHost: ", 'h', 256, "\r\n\r\n", &len);

	c.in = b;
	c.len = len;
	check_case(&c);
	free(b);
}

/* ------------------------------------------------------------------ */
/* API behaviour                                                       */

static enum http1_event feed_str(struct http1_stream *s, const char *in, size_t *n)
{
	return http1_feed(s, in, strlen(in), n);
}

/* The head buffer is made at the first head, kept between messages (an
 * allocation per message costs more than the parse), freed by
 * http1_trim() between messages and by http1_fini(). */
static void test_lazy_buffer(void **state)
{
	struct http1_stream s;
	size_t n;

	http1_init(&s, REQ);
	assert_null(s.raw);
	assert_int_equal(feed_str(&s, "POST / HTTP/1.1\r\n", &n), HTTP1_MORE);
	assert_non_null(s.raw);
	assert_int_equal(s.raw_len, 17);
	http1_trim(&s); /* a head in progress stays */
	assert_non_null(s.raw);
	assert_int_equal(feed_str(&s, "Content-Length: 2\r\n\r\nab", &n), HTTP1_HEAD);
	assert_int_equal(n, 21);
	assert_non_null(s.raw);
	assert_int_equal(s.raw_len, 17 + 21);
	assert_int_equal(feed_str(&s, "ab", &n), HTTP1_BODY);
	assert_int_equal(n, 2);
	assert_non_null(s.raw); /* kept for the next head */
	assert_int_equal(s.raw_len, 0);
	/* idle between requests: trimmed, nothing held */
	http1_trim(&s);
	assert_null(s.raw);
	assert_int_equal(feed_str(&s, "GET / HTTP/1.1\r\n\r\n", &n), HTTP1_HEAD);
	assert_int_equal(feed_str(&s, "", &n), HTTP1_MORE);
	assert_int_equal(s.raw_cap, HTTP1_HEAD_START);
	http1_trim(&s);
	assert_null(s.raw);
	/* fini frees a partial head */
	assert_int_equal(feed_str(&s, "GET", &n), HTTP1_MORE);
	assert_non_null(s.raw);
	http1_fini(&s);
	assert_null(s.raw);
	/* and may be called twice */
	http1_fini(&s);
}

static void test_error_is_sticky(void **state)
{
	struct http1_stream s;
	size_t n = 7;

	http1_init(&s, REQ);
	assert_int_equal(feed_str(&s, "GET / HTTP/1.1\r\nA\r\n", &n), HTTP1_ERROR);
	assert_int_equal(n, 0);
	assert_string_equal(s.error, "header without colon");
	assert_null(s.raw);
	assert_int_equal(feed_str(&s, GET_H, &n), HTTP1_ERROR);
	assert_int_equal(n, 0);
	http1_set_opaque(&s);
	assert_int_equal(feed_str(&s, GET_H, &n), HTTP1_ERROR);
	http1_fini(&s);
}

static const char xfcc_head[] = "GET /api HTTP/1.1\r\n"
				"Host: orders\r\n"
				"X-Forwarded-Client-Cert: forged\r\n"
				"Accept: */*\r\n"
				"x-forwarded-client-cert: forged-too\r\n"
				"X-FORWARDED-CLIENT-CERTX: kept\r\n"
				"\r\n";

static void test_rewrite_xfcc(void **state)
{
	static const char *const drop[] = {"x-forwarded-client-cert", NULL};
	static const char extra[] = "x-forwarded-client-cert: By=spiffe://td/ns/a/sa/o;"
				    "URI=spiffe://td/ns/b/sa/p\r\n";
	static const char want[] = "GET /api HTTP/1.1\r\n"
				   "Host: orders\r\n"
				   "Accept: */*\r\n"
				   "X-FORWARDED-CLIENT-CERTX: kept\r\n"
				   "x-forwarded-client-cert: By=spiffe://td/ns/a/sa/o;"
				   "URI=spiffe://td/ns/b/sa/p\r\n"
				   "\r\n";
	struct http1_stream s;
	char out[512];
	size_t n;
	int r;

	http1_init(&s, REQ);
	assert_int_equal(feed_str(&s, xfcc_head, &n), HTTP1_HEAD);
	assert_int_equal(s.head.n_hdr, 5);
	r = http1_rewrite_head(&s, drop, extra, out, sizeof(out));
	assert_int_equal(r, (int)strlen(want));
	assert_memory_equal(out, want, (size_t)r);

	/* exactly enough room, then one byte short */
	assert_int_equal(http1_rewrite_head(&s, drop, extra, out, strlen(want)), r);
	assert_int_equal(http1_rewrite_head(&s, drop, extra, out, strlen(want) - 1), -ENOSPC);
	assert_int_equal(http1_rewrite_head(&s, drop, extra, out, 3), -ENOSPC);
	assert_int_equal(http1_rewrite_head(&s, drop, extra, out, 0), -ENOSPC);

	/* drop without adding; drop several names */
	{
		static const char *const two[] = {"ACCEPT", "x-forwarded-client-cert", "host",
						  NULL};
		static const char only[] =
			"GET /api HTTP/1.1\r\nX-FORWARDED-CLIENT-CERTX: kept\r\n\r\n";

		r = http1_rewrite_head(&s, two, NULL, out, sizeof(out));
		assert_int_equal(r, (int)strlen(only));
		assert_memory_equal(out, only, (size_t)r);
	}
	/* an empty extra adds nothing */
	r = http1_rewrite_head(&s, NULL, "", out, sizeof(out));
	assert_int_equal(r, (int)strlen(xfcc_head));

	/* not valid once the next call started */
	assert_int_equal(feed_str(&s, "", &n), HTTP1_MORE);
	assert_int_equal(http1_rewrite_head(&s, drop, extra, out, sizeof(out)), -EINVAL);
	http1_fini(&s);
}

static void test_rewrite_rejects_bad_extra(void **state)
{
	static const char *const bad[] = {
		"X-A: 1", /* no CRLF */
		"X-A: 1\n", /* bare LF */
		"X-A: 1\r\n\r\n", /* blank line ends the head early */
		"X-A: 1\rX-B: 2\r\n", /* bare CR */
		"\r\n", /* blank line */
		"no colon\r\n",
		": empty\r\n",
		"X-A: a\x01\r\n",
	};
	struct http1_stream s;
	char out[512];
	size_t n, i;

	http1_init(&s, REQ);
	assert_int_equal(http1_rewrite_head(&s, NULL, NULL, out, sizeof(out)), -EINVAL);
	assert_int_equal(feed_str(&s, GET_H, &n), HTTP1_HEAD);
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(http1_rewrite_head(&s, NULL, bad[i], out, sizeof(out)), -EINVAL);
	}
	assert_int_equal(http1_rewrite_head(&s, NULL, "X-A: 1\r\nX-B:\r\n", out, sizeof(out)),
			 (int)strlen(GET_H) + 14);
	http1_fini(&s);
}

/* A rewritten head with the response head too (Via-style addition). */
static void test_rewrite_response(void **state)
{
	static const char in[] = "HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 0\r\n\r\n";
	static const char *const drop[] = {"server", NULL};
	static const char want[] =
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nVia: 1.1 ldmesh\r\n\r\n";
	struct http1_stream s;
	char out[256];
	size_t n;

	http1_init(&s, RESP);
	assert_int_equal(feed_str(&s, in, &n), HTTP1_HEAD);
	assert_int_equal(http1_rewrite_head(&s, drop, "Via: 1.1 ldmesh\r\n", out, sizeof(out)),
			 (int)strlen(want));
	assert_memory_equal(out, want, strlen(want));
	http1_fini(&s);
}

/* Upgrade: the caller switches the request side once the response says 101. */
static void test_set_opaque_hands_back_held_bytes(void **state)
{
	struct http1_stream req, resp;
	size_t n;

	http1_init(&req, REQ);
	http1_init(&resp, RESP);
	assert_int_equal(feed_str(&req,
				  "GET /chat HTTP/1.1\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
				  &n),
			 HTTP1_HEAD);
	assert_true(req.head.upgrade);
	http1_note_request_method(&resp, req.head.method);
	/* the client starts the new protocol early, with text that could be HTTP */
	assert_int_equal(feed_str(&req, "HELLO x", &n), HTTP1_MORE);
	assert_int_equal(feed_str(&resp, "HTTP/1.1 101 Switching\r\nUpgrade: x\r\n\r\n", &n),
			 HTTP1_HEAD);
	assert_int_equal(resp.head.status, 101);
	assert_true(resp.head.upgrade);
	http1_set_opaque(&req);
	assert_int_equal(feed_str(&req, "yz", &n), HTTP1_OPAQUE);
	assert_int_equal(n, 2);
	assert_int_equal(req.raw_len, 7);
	assert_memory_equal(req.raw, "HELLO x", 7);
	assert_int_equal(feed_str(&req, "more", &n), HTTP1_OPAQUE);
	assert_int_equal(req.raw_len, 0);
	assert_null(req.raw);
	assert_int_equal(http1_feed(&resp, "\x82\x00", 2, &n), HTTP1_OPAQUE);
	assert_int_equal(n, 2);
	http1_fini(&req);
	http1_fini(&resp);
}

/* set_opaque in the middle of a body and right after a head. */
static void test_set_opaque_states(void **state)
{
	struct http1_stream s;
	char out[128];
	size_t n;

	http1_init(&s, REQ);
	assert_int_equal(feed_str(&s, "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n", &n),
			 HTTP1_HEAD);
	http1_set_opaque(&s);
	/* the head just reported stays usable until the next call */
	assert_true(http1_rewrite_head(&s, NULL, NULL, out, sizeof(out)) > 0);
	assert_int_equal(feed_str(&s, "abc", &n), HTTP1_OPAQUE);
	assert_int_equal(n, 3);
	assert_int_equal(s.raw_len, 0);
	assert_null(s.raw);
	http1_fini(&s);
}

static void test_pipeline_limit(void **state)
{
	static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	struct http1_stream s;
	size_t n;
	int i;

	http1_init(&s, RESP);
	for (i = 0; i < HTTP1_MAX_PIPELINE + 1; i++) {
		http1_note_request(&s, i == 1);
	}
	for (i = 0; i < HTTP1_MAX_PIPELINE; i++) {
		assert_int_equal(feed_str(&s, r, &n), HTTP1_HEAD);
		assert_int_equal(n, strlen(r));
	}
	assert_int_equal(feed_str(&s, r, &n), HTTP1_ERROR);
	assert_string_equal(s.error, "too many pipelined requests");
	http1_fini(&s);

	/* draining the FIFO in step with the requests never overflows */
	http1_init(&s, RESP);
	for (i = 0; i < 3 * HTTP1_MAX_PIPELINE; i++) {
		http1_note_request(&s, 0);
		assert_int_equal(feed_str(&s, r, &n), HTTP1_HEAD);
	}
	http1_fini(&s);
}

/* The older call: was_head only. */
static void test_note_request_was_head(void **state)
{
	static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n";
	struct http1_stream s;
	size_t n;

	http1_init(&s, RESP);
	http1_note_request(&s, 1);
	http1_note_request(&s, 0);
	assert_int_equal(feed_str(&s, r, &n), HTTP1_HEAD);
	assert_int_equal(feed_str(&s, r, &n), HTTP1_HEAD); /* no body after a HEAD answer */
	assert_int_equal(feed_str(&s, "abcd", &n), HTTP1_BODY);
	assert_int_equal(n, 4);
	http1_fini(&s);
}

/* HEAD reports: *consumed is this buffer's share, raw the whole head. */
static void test_head_consumed(void **state)
{
	struct http1_stream s;
	size_t n;

	http1_init(&s, REQ);
	assert_int_equal(feed_str(&s, "GET /x HTTP/1.1\r\nHo", &n), HTTP1_MORE);
	assert_int_equal(n, 19);
	assert_int_equal(feed_str(&s, "st: a\r\n\r\nGET /y HTTP/1.1\r\n\r\n", &n), HTTP1_HEAD);
	assert_int_equal(n, 9);
	assert_int_equal(s.raw_len, 28);
	assert_string_equal(s.head.path, "/x");
	assert_string_equal(s.head.host, "a");
	assert_int_equal(s.head.first_line_len, 17);
	assert_int_equal(s.head.n_hdr, 1);
	assert_int_equal(s.head.hdr[0].line_off, 17);
	assert_int_equal(s.head.hdr[0].line_len, 9);
	assert_int_equal(s.head.hdr[0].name_len, 4);
	assert_int_equal(feed_str(&s, "GET /y HTTP/1.1\r\n\r\n", &n), HTTP1_HEAD);
	assert_string_equal(s.head.path, "/y");
	assert_string_equal(s.head.host, "");
	assert_int_equal(s.head.content_length, -1);
	http1_fini(&s);
}

/* In headers only once a request line was valid; idle between messages. */
static void test_in_headers(void **state)
{
	struct http1_stream s;
	size_t n;

	http1_init(&s, REQ);
	assert_true(http1_idle(&s));
	assert_int_equal(feed_str(&s, "GET /x HTT", &n), HTTP1_MORE);
	assert_false(http1_in_headers(&s));
	assert_int_equal(feed_str(&s, "P/1.1\r", &n), HTTP1_MORE);
	assert_false(http1_in_headers(&s));
	assert_int_equal(feed_str(&s, "\nHost: a", &n), HTTP1_MORE);
	assert_true(http1_in_headers(&s));
	assert_false(http1_idle(&s));
	assert_int_equal(feed_str(&s, "\r\n\r\n", &n), HTTP1_HEAD);
	assert_int_equal(feed_str(&s, "", &n), HTTP1_MORE);
	assert_false(http1_in_headers(&s));
	assert_true(http1_idle(&s));
	http1_fini(&s);
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_in_headers),
		cmocka_unit_test(test_head_size_limit),
		cmocka_unit_test(test_endless_first_line),
		cmocka_unit_test(test_long_path),
		cmocka_unit_test(test_too_many_headers),
		cmocka_unit_test(test_long_host),
		cmocka_unit_test(test_lazy_buffer),
		cmocka_unit_test(test_error_is_sticky),
		cmocka_unit_test(test_rewrite_xfcc),
		cmocka_unit_test(test_rewrite_rejects_bad_extra),
		cmocka_unit_test(test_rewrite_response),
		cmocka_unit_test(test_set_opaque_hands_back_held_bytes),
		cmocka_unit_test(test_set_opaque_states),
		cmocka_unit_test(test_pipeline_limit),
		cmocka_unit_test(test_note_request_was_head),
		cmocka_unit_test(test_head_consumed),
	};
	struct CMUnitTest tests[ARRAY_SIZE(cases) + ARRAY_SIZE(fixed)];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		memset(&tests[i], 0, sizeof(tests[i]));
		tests[i].name = cases[i].name;
		tests[i].test_func = test_case;
		tests[i].initial_state = (void *)&cases[i];
	}
	for (i = 0; i < ARRAY_SIZE(fixed); i++) {
		tests[ARRAY_SIZE(cases) + i] = fixed[i];
	}
	return _cmocka_run_group_tests("http1", tests, ARRAY_SIZE(tests), NULL, NULL);
}
