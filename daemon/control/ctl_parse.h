/*
 * The control-socket request parser (include/ldmesh/ctl.h), apart from the
 * socket code in ctl.c so that it can be tested and fuzzed on plain bytes.
 */
#ifndef LDMESH_CTL_PARSE_H
#define LDMESH_CTL_PARSE_H

#include <stddef.h>

/* Words kept from a request line: prefix, format, verb and up to 5
 * arguments.  Words past these are ignored. */
#define CTL_MAX_WORDS 8

/* Longest drain timeout a request may ask for, so that ms fit an int. */
#define CTL_DRAIN_MAX_S 2147483

enum ctl_frame {
	CTL_FRAME_MORE, /* no newline yet and room for more bytes */
	CTL_FRAME_LINE, /* a request line of *line_len bytes, '\n' not counted */
	CTL_FRAME_NUL, /* a NUL byte before the newline */
	CTL_FRAME_TOO_LONG, /* max bytes and still no newline */
};

/*
 * Looks for one request line in the len bytes received so far (len <= max;
 * nothing past len is read).  On CTL_FRAME_LINE sets *line_len: buf[*line_len]
 * is the first '\n'.
 */
enum ctl_frame ctl_frame(const char *buf, size_t len, size_t max, size_t *line_len);

/* A request line split into words; the words point into the line. */
struct ctl_request {
	int json; /* format "json" rather than "text" */
	int n; /* words[0..n): prefix, format, verb, arguments */
	char *words[CTL_MAX_WORDS];
};

/*
 * Splits a NUL-terminated request line in place at spaces and tabs (the
 * line is modified) and checks "LDMCTL1 text|json VERB": fills *req.
 * Returns 0, or -EINVAL for a line without prefix, format and verb.  The
 * verb is not judged here.
 */
int ctl_parse_request(char *line, struct ctl_request *req);

/*
 * The drain timeout a request asks for: arg (may be NULL) read like atoi
 * as whole seconds, capped at CTL_DRAIN_MAX_S; default_ms when arg is
 * absent or not positive.  Returns milliseconds.
 */
int ctl_drain_ms(const char *arg, int default_ms);

#endif
