/*
 * What the HTTP/1 files share (http1.c, http1_head.c, http1_body.c): the
 * parser's states, the slots of http1_stream.internal, flags, and the
 * token helpers.  Not for use outside daemon/proto/.
 */
#ifndef LDMESH_HTTP1_INTERNAL_H
#define LDMESH_HTTP1_INTERNAL_H

#include <stddef.h>

#include <string.h>

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

int http1_contains(const char *p, size_t n, const char *lit);
enum http1_event http1_feed_body(struct http1_stream *s, const unsigned char *p, size_t len,
				 size_t *consumed);
enum http1_event http1_feed_head(struct http1_stream *s, const unsigned char *p, size_t len,
				 size_t *consumed);
enum http1_event http1_go_error(struct http1_stream *s);
int http1_is_registered_method(const char *p, size_t n);
int http1_pop_kind(struct http1_stream *s);
void http1_release_raw(struct http1_stream *s);
/* Room for need more head bytes in raw (as far as HTTP1_MAX_HEAD): 0, or
 * -1 out of memory. */
int http1_raw_room(struct http1_stream *s, size_t need);

/* Per-byte helpers: inline, the parser calls them for every head byte. */
extern const unsigned char http1_tchars[256]; /* 1: a tchar (RFC 9110 5.6.2) */

static inline int http1_is_tchar(unsigned char c)
{
	return http1_tchars[c];
}

/* field-vchar, SP, HTAB and obs-text: what a header or trailer value holds. */
static inline int http1_is_value_byte(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static inline int http1_hex_value(unsigned char c)
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

static inline int http1_eq(const char *p, size_t n, const char *lit)
{
	return strlen(lit) == n && memcmp(p, lit, n) == 0;
}

static inline void http1_trim_ows(const char **p, size_t *n)
{
	while (*n && ((*p)[0] == ' ' || (*p)[0] == '\t')) {
		(*p)++;
		(*n)--;
	}
	while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t')) {
		(*n)--;
	}
}

#endif
