/*
 * HTTP/1 message bodies: Content-Length, close-delimited, and chunked with
 * extensions and trailers, read without copying.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/http1.h"
#include "proto/http1_internal.h"

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
		if ((v = http1_hex_value(c)) >= 0) {
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
		if (!http1_is_value_byte(c)) {
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
		} else if (http1_is_tchar(c)) {
			s->state = ST_TRAILER_NAME;
		} else {
			s->error = c == ':' ? "empty trailer name" : "bad trailer name";
			return -1;
		}
		break;
	case ST_TRAILER_NAME:
		if (c == ':') {
			s->state = ST_TRAILER_VALUE;
		} else if (!http1_is_tchar(c)) {
			s->error = c == '\r' ? "trailer without colon" : "bad trailer name";
			return -1;
		}
		break;
	case ST_TRAILER_VALUE:
		if (c == '\r') {
			s->state = ST_TRAILER_LF;
		} else if (!http1_is_value_byte(c)) {
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

enum http1_event http1_feed_body(struct http1_stream *s, const unsigned char *p, size_t len,
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
				return http1_go_error(s);
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
