/*
 * The validator's core: messages that name file:line and the key path,
 * typed getters, the walk over a group's members against a table of known
 * keys, and the list readers every section shares.
 */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Duplicate checks are quadratic; this keeps a hostile file fast. */
#define CFG_MAX_LIST 10000
/* Deeper than any key we know; bounds the path walk. */
#define CFG_MAX_DEPTH 16

/* ------------------------------------------------------------------ */
/* Messages                                                            */

LDM_PRINTF(2, 3)
int cfg_errf(struct cfg_ctx *x, const char *fmt, ...)
{
	va_list ap;

	if (x->err && x->errlen) {
		va_start(ap, fmt);
		vsnprintf(x->err, x->errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int cfg_oom(struct cfg_ctx *x)
{
	cfg_errf(x, "%s: out of memory", x->name);
	return -ENOMEM;
}

/* Settings read from a string carry no file name: fall back to ours. */
static const char *cfg_file(const struct cfg_ctx *x, const config_setting_t *s)
{
	const char *f = s ? config_setting_source_file(s) : NULL;

	return f ? f : x->name;
}

/* The root group has line 0; report the nearest ancestor that has one. */
static unsigned cfg_line(const config_setting_t *s)
{
	while (s && config_setting_source_line(s) == 0)
		s = config_setting_parent(s);
	return s ? (unsigned)config_setting_source_line(s) : 0;
}

/* "outbound.egress_allow[2].ports[0]" */
static void cfg_path(const config_setting_t *s, char *buf, size_t len)
{
	const config_setting_t *chain[CFG_MAX_DEPTH];
	size_t n = 0, off = 0;
	int w;

	buf[0] = '\0';
	for (; s && !config_setting_is_root(s) && n < CFG_MAX_DEPTH; s = config_setting_parent(s))
		chain[n++] = s;
	while (n > 0) {
		const config_setting_t *e = chain[--n];

		if (config_setting_name(e))
			w = snprintf(buf + off, len - off, "%s%s", off ? "." : "",
				     config_setting_name(e));
		else
			w = snprintf(buf + off, len - off, "[%d]", config_setting_index(e));
		if (w < 0 || (size_t)w >= len - off)
			break;
		off += (size_t)w;
	}
}

/* "FILE:LINE: PATH: message" */
LDM_PRINTF(3, 4)
int cfg_fail(struct cfg_ctx *x, const config_setting_t *s, const char *fmt, ...)
{
	char path[256], msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cfg_path(s, path, sizeof(path));
	return cfg_errf(x, "%s:%u: %s%s%s", cfg_file(x, s), cfg_line(s), path, path[0] ? ": " : "",
			msg);
}

/*
 * User strings are echoed quoted, escaped and truncated, so a hostile config
 * cannot garble a log line or a terminal.
 */
const char *cfg_quote(const char *v, char *buf, size_t len)
{
	/* Room after the last character for \xNN, "...", the quote, the NUL. */
	size_t o = 0, max = len - 9;
	const unsigned char *p = (const unsigned char *)v;

	buf[o++] = '"';
	for (; *p && o <= max; p++) {
		if (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\')
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x", *p);
		else
			buf[o++] = (char)*p;
	}
	if (*p) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/* Levenshtein distance of two short names, for "did you mean". */
static size_t cfg_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j;
	size_t row[33], prev, tmp;

	if (la > 32 || lb > 32)
		return SIZE_MAX;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = i;
		for (j = 1; j <= lb; j++) {
			tmp = row[j];
			row[j] = prev + (a[i - 1] != b[j - 1]);
			if (row[j - 1] + 1 < row[j])
				row[j] = row[j - 1] + 1;
			if (tmp + 1 < row[j])
				row[j] = tmp + 1;
			prev = tmp;
		}
	}
	return row[lb];
}

static int cfg_unknown(struct cfg_ctx *x, const config_setting_t *s, const struct cfg_key *keys,
		       size_t n)
{
	const char *name = config_setting_name(s), *best = NULL;
	size_t i, d, bestd = 3; /* a typo, not a different word */
	char path[256], hint[80] = "";

	for (i = 0; i < n; i++) {
		d = cfg_distance(name, keys[i].name);
		if (d < bestd) {
			bestd = d;
			best = keys[i].name;
		}
	}
	if (best)
		snprintf(hint, sizeof(hint), " (did you mean %s?)", best);
	cfg_path(s, path, sizeof(path));
	return cfg_errf(x, "%s:%u: unknown key %s%s", cfg_file(x, s), cfg_line(s), path, hint);
}

/* ------------------------------------------------------------------ */
/* Typed access                                                        */

int cfg_get_string(struct cfg_ctx *x, const config_setting_t *s, const char **out)
{
	*out = NULL;
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return cfg_fail(x, s, "expected a string");
	*out = config_setting_get_string(s);
	return 0;
}

int cfg_get_int(struct cfg_ctx *x, const config_setting_t *s, long long min, long long max,
		long long *out)
{
	long long v;

	*out = 0;
	if (config_setting_type(s) != CONFIG_TYPE_INT &&
	    config_setting_type(s) != CONFIG_TYPE_INT64)
		return cfg_fail(x, s, "expected an integer");
	v = config_setting_get_int64(s);
	if (v < min || v > max)
		return cfg_fail(x, s, "must be between %lld and %lld, got %lld", min, max, v);
	*out = v;
	return 0;
}

int cfg_get_bool(struct cfg_ctx *x, const config_setting_t *s, int *out)
{
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return cfg_fail(x, s, "expected true or false");
	*out = config_setting_get_bool(s) ? 1 : 0;
	return 0;
}

int cfg_get_enum(struct cfg_ctx *x, const config_setting_t *s, const struct cfg_enum *tab, size_t n,
		 int *out)
{
	char names[128] = "";
	const char *v;
	size_t i, off = 0;

	for (i = 0; i < n && off < sizeof(names); i++)
		off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s", i ? ", " : "",
					tab[i].name);
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return cfg_fail(x, s, "expected a string, one of %s", names);
	v = config_setting_get_string(s);
	for (i = 0; i < n; i++) {
		if (strcmp(v, tab[i].name) == 0) {
			*out = tab[i].value;
			return 0;
		}
	}
	return cfg_fail(x, s, "expected one of %s, got %s", names, CFG_Q(v));
}

/* A list of scalars: [ a, b ] or ( a, b ). */
int cfg_get_seq(struct cfg_ctx *x, const config_setting_t *s, size_t *n)
{
	int len;

	*n = 0;
	if (!config_setting_is_array(s) && !config_setting_is_list(s))
		return cfg_fail(x, s, "expected a list [ ... ]");
	len = config_setting_length(s);
	if (len > CFG_MAX_LIST)
		return cfg_fail(x, s, "has %d entries; at most %d are allowed", len, CFG_MAX_LIST);
	*n = (size_t)len;
	return 0;
}

/* A list of groups: ( { ... }, { ... } ); an empty [ ] is accepted too. */
int cfg_get_group_list(struct cfg_ctx *x, const config_setting_t *s, size_t *n)
{
	int i, len;

	*n = 0;
	if (!config_setting_is_list(s) &&
	    !(config_setting_is_array(s) && config_setting_length(s) == 0))
		return cfg_fail(x, s, "expected a list of groups ( { ... }, ... )");
	len = config_setting_length(s);
	if (len > CFG_MAX_LIST)
		return cfg_fail(x, s, "has %d entries; at most %d are allowed", len, CFG_MAX_LIST);
	for (i = 0; i < len; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

		if (!config_setting_is_group(e))
			return cfg_fail(x, e, "expected a group { ... }");
	}
	*n = (size_t)len;
	return 0;
}

/* Walks the members of a group in file order; unknown keys are errors. */
int cfg_walk(struct cfg_ctx *x, const config_setting_t *grp, const struct cfg_key *keys,
	     size_t nkeys, void *obj)
{
	int i, len, rc = 0;
	size_t k;

	if (!config_setting_is_group(grp))
		return cfg_fail(x, grp, "expected a group { ... }");
	len = config_setting_length(grp);
	for (i = 0; i < len && rc == 0; i++) {
		const config_setting_t *m = config_setting_get_elem(grp, (unsigned)i);
		const char *name = config_setting_name(m);

		for (k = 0; k < nkeys; k++)
			if (strcmp(name, keys[k].name) == 0)
				break;
		rc = k < nkeys ? keys[k].parse(x, m, obj) : cfg_unknown(x, m, keys, nkeys);
	}
	return rc;
}

int cfg_require(struct cfg_ctx *x, const config_setting_t *grp, const char *key)
{
	if (config_setting_get_member(grp, key))
		return 0;
	return cfg_fail(x, grp, "missing required key %s", key);
}

int cfg_dup(struct cfg_ctx *x, const char *v, char **out)
{
	*out = strdup(v);
	return *out ? 0 : cfg_oom(x);
}

/* "\"value\" why", or just "why" for an empty value. */
int cfg_bad_value(struct cfg_ctx *x, const config_setting_t *s, const char *v, const char *why)
{
	return v[0] ? cfg_fail(x, s, "%s %s", CFG_Q(v), why) : cfg_fail(x, s, "%s", why);
}

/* ------------------------------------------------------------------ */
/* Lists                                                               */

int cfg_port_list(struct cfg_ctx *x, const config_setting_t *s, uint16_t **out, size_t *nout)
{
	size_t i, j, n;
	long long v;
	int rc;

	rc = cfg_get_seq(x, s, &n);
	if (rc < 0 || n == 0)
		goto out;
	*out = calloc(n, sizeof(**out));
	if (!*out) {
		rc = cfg_oom(x);
		goto out;
	}
	*nout = n;
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

		rc = cfg_get_int(x, e, 1, 65535, &v);
		if (rc < 0)
			goto out;
		for (j = 0; j < i; j++)
			if ((*out)[j] == v) {
				rc = cfg_fail(x, e, "duplicate port %lld", v);
				goto out;
			}
		(*out)[i] = (uint16_t)v;
	}
out:
	return rc;
}

int cfg_string_list(struct cfg_ctx *x, const config_setting_t *s, const char *(*why)(const char *),
		    char ***out, size_t *nout)
{
	const char *v, *bad;
	size_t i, j, n;
	int rc;

	rc = cfg_get_seq(x, s, &n);
	if (rc < 0 || n == 0)
		goto out;
	*out = calloc(n, sizeof(**out));
	if (!*out) {
		rc = cfg_oom(x);
		goto out;
	}
	*nout = n;
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

		rc = cfg_get_string(x, e, &v);
		if (rc < 0)
			goto out;
		bad = v[0] ? why(v) : "must not be empty";
		if (bad) {
			rc = cfg_bad_value(x, e, v, bad);
			goto out;
		}
		for (j = 0; j < i; j++)
			if (strcmp((*out)[j], v) == 0) {
				rc = cfg_fail(x, e, "duplicate value %s", CFG_Q(v));
				goto out;
			}
		rc = cfg_dup(x, v, &(*out)[i]);
		if (rc < 0)
			goto out;
	}
out:
	return rc;
}
