/* A growable string for building control answers. */
#ifndef LDMESH_STRBUF_H
#define LDMESH_STRBUF_H

#include <stddef.h>

#include "ldmesh/common.h"

struct strbuf {
	char *s; /* owned, NUL-terminated */
	size_t len, cap;
	int oom; /* an append failed: the text is incomplete */
};

void sb_printf(struct strbuf *b, const char *fmt, ...) LDM_PRINTF(2, 3);
/* Appends n bytes of s. */
void sb_put(struct strbuf *b, const char *s, size_t n);
/* Appends s as a JSON string literal, quotes included. */
void sb_json_str(struct strbuf *b, const char *s);
/* Hands the text to the caller (free() it); the strbuf is empty after. */
char *sb_take(struct strbuf *b, size_t *len);
void sb_fini(struct strbuf *b);

#endif
