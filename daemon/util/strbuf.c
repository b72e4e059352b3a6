#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/strbuf.h"

static int reserve(struct strbuf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->len + more + 1 <= b->cap) {
		return 0;
	}
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + more + 1) {
		cap *= 2;
	}
	p = realloc(b->s, cap);
	if (!p) {
		b->oom = 1;
		return -1;
	}
	b->s = p;
	b->cap = cap;
	return 0;
}

void sb_printf(struct strbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || reserve(b, (size_t)n) < 0) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void sb_put(struct strbuf *b, const char *s, size_t n)
{
	if (reserve(b, n) < 0) {
		return;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void sb_json_str(struct strbuf *b, const char *s)
{
	sb_put(b, "\"", 1);
	while (s && *s) {
		size_t n = 0;
		unsigned char ch;

		/* Bytes outside printable ASCII are escaped: the output is valid
		 * JSON (and ASCII) whatever a client put in a header. */
		while (s[n] && s[n] != '"' && s[n] != '\\' && (unsigned char)s[n] >= 0x20 &&
		       (unsigned char)s[n] < 0x7f) {
			n++;
		}
		sb_put(b, s, n);
		s += n;
		ch = (unsigned char)*s;
		if (!ch) {
			break;
		}
		if (ch == '"' || ch == '\\') {
			sb_printf(b, "\\%c", ch);
		} else {
			sb_printf(b, "\\u%04x", ch);
		}
		s++;
	}
	sb_put(b, "\"", 1);
}

char *sb_take(struct strbuf *b, size_t *len)
{
	char *s = b->s;

	if (!s) {
		s = calloc(1, 1);
	}
	*len = b->len;
	memset(b, 0, sizeof(*b));
	return s;
}

void sb_fini(struct strbuf *b)
{
	free(b->s);
	memset(b, 0, sizeof(*b));
}
