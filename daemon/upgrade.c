/*
 * h2c upgrade stripping (see upgrade.h).  Works on the header lines the
 * HTTP/1 framer already checked, as offsets into its raw head.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "upgrade.h"

const char *const upgrade_h2c_headers[] = {"upgrade", "connection", "http2-settings", NULL};

static int name_is(const struct http1_stream *s, int i, const char *name)
{
	const char *p = s->raw + s->head.hdr[i].name_off;
	size_t n = s->head.hdr[i].name_len;

	return n == strlen(name) && strncasecmp(p, name, n) == 0;
}

/* The value of header line i, without surrounding whitespace. */
static const char *value_of(const struct http1_stream *s, int i, size_t *n)
{
	const char *v = s->raw + s->head.hdr[i].name_off + s->head.hdr[i].name_len + 1;
	const char *end = s->raw + s->head.hdr[i].line_off + s->head.hdr[i].line_len - 2;

	while (v < end && (*v == ' ' || *v == '\t')) {
		v++;
	}
	while (end > v && (end[-1] == ' ' || end[-1] == '\t')) {
		end--;
	}
	*n = (size_t)(end - v);
	return v;
}

/* Next comma-separated element of v[0..*n); empty elements are skipped. */
static int next_token(const char **v, size_t *n, const char **tok, size_t *tlen)
{
	while (*n) {
		const char *comma = memchr(*v, ',', *n);
		size_t len = comma ? (size_t)(comma - *v) : *n;
		const char *t = *v;

		*v += comma ? len + 1 : len;
		*n -= comma ? len + 1 : len;
		while (len && (*t == ' ' || *t == '\t')) {
			t++, len--;
		}
		while (len && (t[len - 1] == ' ' || t[len - 1] == '\t')) {
			len--;
		}
		if (len) {
			*tok = t;
			*tlen = len;
			return 1;
		}
	}
	return 0;
}

static int token_is(const char *t, size_t n, const char *word)
{
	return n == strlen(word) && strncasecmp(t, word, n) == 0;
}

/* Appends the tokens of every `name` line except those `skip` rejects as
 * one "Name: a, b\r\n" line; nothing when none is left. */
static int rebuild(const struct http1_stream *s, const char *name, const char *label,
		   const char *skip1, const char *skip2, char *out, size_t len, size_t *used,
		   int *kept)
{
	size_t start = *used;
	int any = 0;

	for (int i = 0; i < s->head.n_hdr; i++) {
		const char *v, *t;
		size_t n, tn;

		if (!name_is(s, i, name)) {
			continue;
		}
		v = value_of(s, i, &n);
		while (next_token(&v, &n, &t, &tn)) {
			int w;

			if ((skip1 && token_is(t, tn, skip1)) ||
			    (skip2 && token_is(t, tn, skip2))) {
				continue;
			}
			w = snprintf(out + *used, len - *used, "%s%.*s", any ? ", " : label,
				     (int)tn, t);
			if (w < 0 || (size_t)w >= len - *used) {
				return -ENOSPC;
			}
			*used += (size_t)w;
			any = 1;
		}
	}
	if (any) {
		if (len - *used < 3) {
			return -ENOSPC;
		}
		memcpy(out + *used, "\r\n", 3);
		*used += 2;
	} else {
		out[start] = '\0';
	}
	*kept = any;
	return 0;
}

int upgrade_strip_h2c(const struct http1_stream *s, char *extra, size_t len, int *all_gone)
{
	size_t used = 0;
	int asked = 0, kept = 0, conn_kept;

	for (int i = 0; i < s->head.n_hdr && !asked; i++) {
		const char *v, *t;
		size_t n, tn;

		if (!name_is(s, i, "upgrade")) {
			continue;
		}
		v = value_of(s, i, &n);
		while (!asked && next_token(&v, &n, &t, &tn)) {
			asked = token_is(t, tn, "h2c");
		}
	}
	if (!asked) {
		return 0;
	}
	if (!len) {
		return -ENOSPC;
	}
	extra[0] = '\0';
	if (rebuild(s, "upgrade", "Upgrade: ", "h2c", NULL, extra, len, &used, &kept) < 0 ||
	    rebuild(s, "connection", "Connection: ", "http2-settings", kept ? NULL : "upgrade",
		    extra, len, &used, &conn_kept) < 0) {
		return -ENOSPC;
	}
	*all_gone = !kept;
	return 1;
}
