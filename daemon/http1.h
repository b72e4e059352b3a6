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
 *                that is not a head: chunk framing, trailers) to forward as-is;
 *   HTTP1_OPAQUE the stream is not HTTP/1.x (or switched protocols with
 *                Upgrade / CONNECT / 101): forward everything as-is from now on;
 *   HTTP1_MORE   all input consumed, nothing to report yet (partial head);
 *   HTTP1_ERROR  malformed or oversized head (s->error says why).
 * Requests: methods, request-target, Host, Content-Length,
 * Transfer-Encoding: chunked (with trailers), Connection: close, Expect:
 * 100-continue, Upgrade.  Responses: status, 1xx (no body, another head
 * follows), 204/304 and responses to HEAD (no body: the caller tells the
 * response parser with http1_expect_head_response()), chunked,
 * Content-Length, read-until-close.  Pipelined heads are reported one by one.
 */
#ifndef LDMESH_HTTP1_H
#define LDMESH_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#define HTTP1_MAX_HEAD 16384 /* a larger head is an error (431 for requests) */
#define HTTP1_MAX_PIPELINE 64 /* HEAD requests remembered for their responses */

enum http1_dir { HTTP1_REQUEST, HTTP1_RESPONSE };
enum http1_event { HTTP1_MORE, HTTP1_HEAD, HTTP1_BODY, HTTP1_OPAQUE, HTTP1_ERROR };

struct http1_head {
	int minor;            /* HTTP/1.<minor> */
	char method[16];      /* request */
	char path[2048];      /* request target without query, "" if too long */
	char host[256];       /* Host header without surrounding spaces */
	int status;           /* response */
	int64_t content_length; /* -1 when absent */
	unsigned chunked : 1, conn_close : 1, expect_continue : 1, upgrade : 1;
	/* header lines as offsets into raw, for rewriting */
	struct { uint16_t name_off, name_len, line_off, line_len; } hdr[100];
	int n_hdr;
	uint16_t first_line_len; /* bytes of the request/status line incl. CRLF */
};

struct http1_stream {
	enum http1_dir dir;
	int state;              /* internal */
	int64_t body_left;      /* internal */
	char *raw;              /* owned: allocated while a head is read, HTTP1_MAX_HEAD bytes */
	size_t raw_len;
	struct http1_head head;
	const char *error;      /* HTTP1_ERROR: why, a static string */
	/* response side: which pending requests were HEAD (FIFO) */
	uint8_t head_fifo[HTTP1_MAX_PIPELINE];
	int fifo_r, fifo_w;
	int internal[8];        /* chunk parser state, free for the implementation */
};

void http1_init(struct http1_stream *s, enum http1_dir dir);
/* Frees the head buffer; the stream may be initialised again. */
void http1_fini(struct http1_stream *s);

/*
 * Consumes up to len bytes of buf; sets *consumed (<= len) and returns the
 * event for those bytes.  Call again with the rest.  After HTTP1_HEAD the
 * head stays valid until the next call.  Returns HTTP1_ERROR with error
 * "out of memory" if the head buffer cannot be allocated.  The head buffer
 * is released once a head has been reported and the next call starts, so an
 * idle keep-alive connection holds no buffer.
 */
enum http1_event http1_feed(struct http1_stream *s, const char *buf, size_t len,
			    size_t *consumed);

/* Tells the response side that the next pending request was a HEAD (or
 * not), so its response has no body.  Call once per request head seen. */
void http1_note_request(struct http1_stream *resp, int was_head);

/*
 * Copies the head in s->raw to out without the headers named in drop
 * (case-insensitive, NULL-terminated list) and with extra (complete
 * "Name: value\r\n" lines, may be NULL) added before the blank line.
 * Returns the length or -ENOSPC.
 */
int http1_rewrite_head(const struct http1_stream *s, const char *const *drop,
		       const char *extra, char *out, size_t outlen);

#endif
