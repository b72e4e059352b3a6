/*
 * Incremental HTTP/1.x framing for one direction of a connection, for
 * request metrics, L7 policy and header rewriting.  It never blocks and
 * never waits for more than a head: bytes are handed back as soon as their
 * role is known.
 *
 * The caller feeds bytes with http1_feed() and gets back what they are:
 *   HTTP1_HEAD   a complete request or response head is available in
 *                s->head (parsed fields) and s->raw/s->raw_len (its bytes,
 *                which the caller forwards, possibly rewritten);
 *   HTTP1_BODY   *consumed bytes of body (or of anything after the head
 *                that is not a head: chunk framing, trailers, empty lines
 *                before a request) to forward as-is;
 *   HTTP1_OPAQUE the stream is not HTTP/1.x (or switched protocols with
 *                Upgrade / CONNECT / 101): forward everything as-is from now on;
 *   HTTP1_MORE   all input consumed, nothing to report yet (partial head);
 *   HTTP1_ERROR  malformed or oversized head (s->error says why).
 * Requests: methods, request-target, Host, Content-Length,
 * Transfer-Encoding: chunked (with trailers), Connection: close, Expect:
 * 100-continue, Upgrade.  Responses: status, 1xx (no body, another head
 * follows), 204/304 and responses to HEAD (no body: the caller tells the
 * response parser with http1_note_request()), chunked, Content-Length,
 * read-until-close.  Pipelined heads are reported one by one.
 *
 * Every decision is taken byte by byte, so any split of the input into
 * feeds gives the same heads and the same events (adjacent BODY or OPAQUE
 * bytes may come in different pieces).
 *
 * Strictness (a proxy must never frame a message differently from the
 * server behind it, so anything ambiguous is an error, never a guess):
 *   - lines end in CRLF; a bare LF or a CR without LF is an error;
 *   - obs-fold, whitespace before the colon, a line without a colon, control
 *     bytes (NUL included) in a head or trailer are errors; header values may
 *     hold obs-text (0x80-0xff), request targets only visible ASCII;
 *   - Content-Length must be digits; repeated values ("5, 5", two lines)
 *     must agree; Transfer-Encoding must end in a single "chunked" (for a
 *     response, any other coding means read-until-close); both headers in
 *     one message, or Transfer-Encoding in HTTP/1.0, are errors;
 *   - a second Host header, a Host longer than 255 bytes, a '#' in a
 *     request target, a version other than HTTP/1.0 or HTTP/1.1 are errors;
 *   - chunk sizes are hex without sign or "0x", extensions (";...") are
 *     skipped up to 4096 bytes, trailers are checked like headers and
 *     limited to HTTP1_MAX_HEAD bytes.
 *
 * Which streams are OPAQUE.  A request stream decides on its first request
 * line (and again on the line after a CONNECT or Upgrade request, where a
 * client may have started the new protocol early):
 *   - bytes that do not start with a token and a space (a TLS ClientHello,
 *     a binary protocol, "SSH-2.0-Go\r\n") are OPAQUE at the first such byte;
 *   - a complete valid request line with HTTP/1.0 or HTTP/1.1 is HTTP;
 *   - "PRI * HTTP/2.0" (the HTTP/2 preface) is OPAQUE;
 *   - any other line is an error if it looks like an HTTP request gone
 *     wrong (it holds "HTTP/" after the method, or it starts with a
 *     registered method such as GET and has no third field: "GET /x",
 *     "GET  /x ..."), failing closed; OPAQUE otherwise (RTSP, SIP,
 *     memcached, a long SSH banner), which an HTTP server rejects too;
 *   - the line is read in full before deciding, so up to HTTP1_MAX_HEAD
 *     bytes of a text protocol may be held (handed back with OPAQUE).
 * A response stream whose first bytes are not "HTTP/" is OPAQUE as long as
 * no request was noted (server-speaks-first protocols); otherwise, and on
 * later messages of either direction, anything malformed is an error.
 * OPAQUE means the framer cannot vouch for the bytes: a caller that enforces
 * rules on methods, paths or hosts must not let an OPAQUE stream through on
 * a port where such a rule applies.
 */
#ifndef LDMESH_HTTP1_H
#define LDMESH_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#define HTTP1_MAX_HEAD 16384 /* a larger head is an error (431 for requests) */
#define HTTP1_HEAD_START 2048 /* the head buffer's first size: most heads fit */
#define HTTP1_MAX_PIPELINE 64 /* HEAD requests remembered for their responses */

enum http1_dir { HTTP1_REQUEST, HTTP1_RESPONSE };
enum http1_event { HTTP1_MORE, HTTP1_HEAD, HTTP1_BODY, HTTP1_OPAQUE, HTTP1_ERROR };

struct http1_head {
	int minor; /* HTTP/1.<minor> */
	char method[16]; /* request */
	/* Request: the target up to '?' for origin-form ("/a/b"); the path of
	 * an absolute-form target ("http://h/a/b" gives "/a/b", "/" when it
	 * has none); "*" for asterisk-form; "" for CONNECT (authority-form).
	 * "" too when it does not fit: a caller matching paths must treat ""
	 * as unknown.  Not normalised: "%2e" and "/../" are left as sent. */
	char path[2048];
	/* Host header without surrounding spaces, or the authority of an
	 * absolute-form or CONNECT target, which takes precedence as in RFC
	 * 9112 section 3.2.2; "" when absent. */
	char host[256];
	int status; /* response */
	int64_t content_length; /* -1 when absent */
	/* conn_close: the connection ends after this message (Connection:
	 * close, HTTP/1.0 without keep-alive, a response delimited by close).
	 * upgrade: a request asking to switch (CONNECT, or Upgrade listed in
	 * Connection in HTTP/1.1); a response that switched (101, or 2xx to a
	 * CONNECT noted with http1_note_request_method), after which the
	 * stream is OPAQUE. */
	unsigned chunked : 1, conn_close : 1, expect_continue : 1, upgrade : 1;
	/* header lines as offsets into raw, for rewriting; line_len includes
	 * the CRLF, name_len does not include the colon */
	struct {
		uint16_t name_off, name_len, line_off, line_len;
	} hdr[100];
	int n_hdr; /* a head with more header lines is an error */
	uint16_t first_line_len; /* bytes of the request/status line incl. CRLF */
};

struct http1_stream {
	enum http1_dir dir;
	int state; /* internal */
	int64_t body_left; /* internal */
	/* owned: the head buffer, raw_cap bytes (grown up to HTTP1_MAX_HEAD);
	 * while HTTP1_MORE is returned raw_len counts the bytes held */
	char *raw;
	size_t raw_len, raw_cap;
	struct http1_head head;
	const char *error; /* HTTP1_ERROR: why, a static string */
	/* response side: which pending requests were HEAD (FIFO) */
	uint8_t head_fifo[HTTP1_MAX_PIPELINE];
	int fifo_r, fifo_w;
	int internal[8]; /* chunk parser state, free for the implementation */
};

void http1_init(struct http1_stream *s, enum http1_dir dir);
/* Frees the head buffer; the stream may be initialised again. */
void http1_fini(struct http1_stream *s);
/* Between messages: frees the head buffer kept for the next head. */
void http1_trim(struct http1_stream *s);

/*
 * Consumes up to len bytes of buf; sets *consumed (<= len) and returns the
 * event for those bytes.  Call again with the rest.  After HTTP1_HEAD the
 * head stays valid until the next call.  Returns HTTP1_ERROR with error
 * "out of memory" if the head buffer cannot be allocated.  The head buffer
 * is kept for the next head (an allocation per message costs more than
 * the parse); http1_trim() frees it, for an idle connection.
 *
 * HTTP1_HEAD: *consumed counts the bytes of buf that completed the head;
 *   forward s->raw[0..raw_len) (the whole head, bytes of earlier calls
 *   included), not them.
 * HTTP1_OPAQUE: *consumed is len.  On the first OPAQUE report s->raw holds
 *   s->raw_len bytes taken under HTTP1_MORE by earlier calls (a partial
 *   line that turned out not to be HTTP): forward those first, then buf.
 *   Later reports have raw_len 0.
 * HTTP1_ERROR: *consumed is 0 and every later call fails the same way.
 */
enum http1_event http1_feed(struct http1_stream *s, const char *buf, size_t len, size_t *consumed);

/* Tells the response side that the next pending request was a HEAD (or
 * not), so its response has no body.  Call once per request head seen.
 * Beyond HTTP1_MAX_PIPELINE unanswered requests the response side fails
 * with "too many pipelined requests" when it reaches them. */
void http1_note_request(struct http1_stream *resp, int was_head);

/* Added: the same, from the request's method, so that a 2xx answer to a
 * CONNECT also turns the response side OPAQUE after its head.  Use it
 * instead of http1_note_request(), not in addition. */
void http1_note_request_method(struct http1_stream *resp, const char *method);

/*
 * Added: switches the stream to OPAQUE, for the request side once the
 * response side reported a 101 or a 2xx to CONNECT.  Bytes of a partial
 * head held under HTTP1_MORE come back with the next HTTP1_OPAQUE report;
 * the rest of a body being framed becomes opaque too.  No-op after an error.
 */
void http1_set_opaque(struct http1_stream *s);

/* 1 between messages: no head or body in progress (a response stream that
 * just finished a message, or a fresh stream). */
int http1_idle(const struct http1_stream *s);

/* 1 while a head is being read past its first line: a request or status
 * line was valid, the header lines are still coming. */
int http1_in_headers(const struct http1_stream *s);

/*
 * Copies the head in s->raw to out without the headers named in drop
 * (case-insensitive, NULL-terminated list) and with extra (complete
 * "Name: value\r\n" lines, may be NULL) added before the blank line.
 * Returns the length or -ENOSPC.  Valid only between an HTTP1_HEAD report
 * and the next http1_feed() call (-EINVAL otherwise); -EINVAL as well when
 * extra is not a sequence of non-empty CRLF-terminated lines, since a stray
 * CR, LF or blank line there would end or split the head.
 */
int http1_rewrite_head(const struct http1_stream *s, const char *const *drop, const char *extra,
		       char *out, size_t outlen);

/*
 * Helpers for callers that read a reported head's header lines (between
 * HTTP1_HEAD and the next feed); i indexes head.hdr.
 */
/* 1 when header line i is named name (case-insensitive). */
int http1_header_name_is(const struct http1_stream *s, int i, const char *name);
/* Header line i's value without surrounding whitespace; *n its length. */
const char *http1_header_value(const struct http1_stream *s, int i, size_t *n);
/* Next element of a comma-separated list in (*p, *n), trimmed (possibly
 * empty); 0 when none is left. */
int http1_list_next(const char **p, size_t *n, const char **elem, size_t *elen);
/* 1 when p[0..n) equals lit, ignoring ASCII case. */
int http1_eq_ci(const char *p, size_t n, const char *lit);

#endif
