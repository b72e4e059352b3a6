#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

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

void sb_json_str(struct strbuf *b, const char *s)
{
	sb_printf(b, "\"");
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			sb_printf(b, "\\%c", ch);
		} else if (ch < 0x20) {
			sb_printf(b, "\\u%04x", ch);
		} else {
			sb_printf(b, "%c", ch);
		}
	}
	sb_printf(b, "\"");
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
