/*
 * h2c upgrade stripping (see upgrade.h).  Works on the header lines the
 * HTTP/1 framer already checked, as offsets into its raw head.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proto/upgrade.h"

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

		if (!http1_header_name_is(s, i, name)) {
			continue;
		}
		v = http1_header_value(s, i, &n);
		while (http1_list_next(&v, &n, &t, &tn)) {
			int w;

			if (!tn || (skip1 && http1_eq_ci(t, tn, skip1)) ||
			    (skip2 && http1_eq_ci(t, tn, skip2))) {
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

int upgrade_asks_h2c(const struct http1_stream *s)
{
	int asked = 0;

	for (int i = 0; i < s->head.n_hdr && !asked; i++) {
		const char *v, *t;
		size_t n, tn;

		if (!http1_header_name_is(s, i, "upgrade")) {
			continue;
		}
		v = http1_header_value(s, i, &n);
		while (!asked && http1_list_next(&v, &n, &t, &tn)) {
			asked = http1_eq_ci(t, tn, "h2c");
		}
	}
	return asked;
}

int upgrade_strip_h2c(const struct http1_stream *s, char *extra, size_t len, int *all_gone)
{
	size_t used = 0;
	int kept = 0, conn_kept;

	if (!upgrade_asks_h2c(s)) {
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
