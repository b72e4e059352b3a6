/*
 * Policy patterns: the checks every principal, namespace, method, path and
 * host pattern passes when the config loads (policy_check_pattern) and the
 * glob policy/ matches them with.  See policy/policy.h for their meaning.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, memrchr; the Makefile defines it too */
#endif
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/pattern.h"
#include "util/spiffe.h"

/* ------------------------------------------------------------------ */
/* Messages                                                            */

void LDM_PRINTF(3, 4) pol_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!err || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

/* A pattern in quotes for a message, escaped and cut short like the config
 * parser quotes values (cfg_quote, daemon/config/core.c): bytes outside
 * printable ASCII, quotes and backslashes as \xNN. */
static const char *pol_quote(const char *s, char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, shown = 0;

	buf[o++] = '"';
	for (; *s && o + 9 < len && shown < 64; s++, shown++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		} else {
			buf[o++] = (char)c;
		}
	}
	if (*s) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

static const char *const pol_kind_names[] = {
	[PATTERN_PRINCIPAL] = "principal", [PATTERN_NAMESPACE] = "namespace",
	[PATTERN_METHOD] = "method",	   [PATTERN_PATH] = "path",
	[PATTERN_HOST] = "host",
};

/* ------------------------------------------------------------------ */
/* Pattern checks: each returns NULL or why the pattern is refused,    */
/* written into why[] when the reason needs the offending byte.        */

struct pol_why {
	char buf[160];
};

static int pol_is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* Spaces, control characters and non-ASCII bytes, refused everywhere. */
static const char *pol_why_bytes(const char *p, struct pol_why *w)
{
	for (; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == ' ')
			return "contains a space";
		if (pol_is_ctl(c)) {
			snprintf(w->buf, sizeof(w->buf),
				 "contains a control character (byte 0x%02x)", c);
			return w->buf;
		}
		if (c >= 0x80) {
			snprintf(w->buf, sizeof(w->buf),
				 "contains a non-ASCII byte (0x%02x); use ASCII "
				 "(percent-encoded in paths, punycode in hosts)",
				 c);
			return w->buf;
		}
	}
	return NULL;
}

static int pol_td_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static int pol_seg_char(char c)
{
	return pol_td_char(c) || (c >= 'A' && c <= 'Z');
}

/*
 * The part of a principal prefix before its '*': "spiffe://" then a trust
 * domain, complete segments each followed by '/', and possibly a partial
 * last segment (or partial trust domain).  Every byte must be one a SPIFFE
 * ID may hold, so the prefix can match something.
 */
static const char *pol_why_principal_prefix(const char *p, size_t n, struct pol_why *w)
{
	const char *end = p + n, *td = p + SPIFFE_SCHEME_LEN, *seg, *q;

	for (q = td; q < end && *q != '/'; q++)
		if (!pol_td_char(*q))
			return "has an invalid trust domain: use lowercase letters, "
			       "digits, '.', '-' and '_'";
	if (q < end && q == td)
		return "has an empty trust domain";
	if (q < end && spiffe_td_check_n(td, (size_t)(q - td), w->buf, sizeof(w->buf)) < 0)
		return w->buf;
	while (q < end) {
		for (seg = ++q; q < end && *q != '/'; q++)
			if (!pol_seg_char(*q))
				return "has an invalid path: segments may use letters, "
				       "digits, '.', '-' and '_'";
		if (q == end)
			break; /* a partial last segment: any length */
		if (q == seg)
			return "has an empty path segment ('//')";
		if ((q - seg == 1 && seg[0] == '.') ||
		    (q - seg == 2 && seg[0] == '.' && seg[1] == '.'))
			return "has a '.' or '..' path segment";
	}
	return NULL;
}

static const char *pol_why_principal(const char *p, struct pol_why *w)
{
	size_t n = strlen(p);
	const char *star = strchr(p, '*'), *bad;
	char detail[128];

	if (strcmp(p, "*") == 0)
		return NULL;
	if (n > SPIFFE_ID_MAX) {
		snprintf(w->buf, sizeof(w->buf), "is %zu bytes long; the limit is %d", n,
			 SPIFFE_ID_MAX);
		return w->buf;
	}
	bad = pol_why_bytes(p, w);
	if (bad)
		return bad;
	if (strncmp(p, SPIFFE_SCHEME, SPIFFE_SCHEME_LEN) != 0)
		return "is neither \"*\", a SPIFFE ID (spiffe://cluster.local/ns/shop/sa/web) "
		       "nor a SPIFFE ID prefix ending in '*' (spiffe://cluster.local/ns/shop/*)";
	if (star && star != p + n - 1)
		return "may use '*' only as its last character, for a prefix match";
	if (strchr(p, '?'))
		return "contains '?', which a SPIFFE ID never holds (only a trailing '*' "
		       "is a wildcard)";
	if (star)
		return pol_why_principal_prefix(p, n - 1, w);
	if (spiffe_id_parse(p, NULL, detail, sizeof(detail)) < 0) {
		snprintf(w->buf, sizeof(w->buf), "is not a valid SPIFFE ID: %s", detail);
		return w->buf;
	}
	return NULL;
}

static const char *pol_why_namespace(const char *p, struct pol_why *w)
{
	const char *bad;

	if (strlen(p) > POL_NS_MAX)
		return "is longer than 63 characters";
	bad = pol_why_bytes(p, w);
	if (bad)
		return bad;
	for (; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '*')
			continue;
		if (*p >= 'A' && *p <= 'Z')
			return "has an uppercase letter; Kubernetes namespaces are lowercase";
		snprintf(w->buf, sizeof(w->buf),
			 "contains '%c'; a namespace uses lowercase letters, digits, '-' "
			 "and '*' as a wildcard",
			 *p);
		return w->buf;
	}
	return NULL;
}

static const char *pol_why_method(const char *p, struct pol_why *w)
{
	const char *bad;

	if (strlen(p) > POL_METHOD_MAX)
		return "is longer than 32 characters";
	bad = pol_why_bytes(p, w);
	if (bad)
		return bad;
	for (; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))
			continue;
		if (*p >= 'a' && *p <= 'z')
			return "is not uppercase; methods match exactly and "
			       "case-sensitively, so write \"GET\", not \"get\"";
		if (*p == '*' || *p == '?')
			return "uses a wildcard; methods match exactly (leave methods "
			       "out to match any method)";
		if (strchr("!#$%&'+-.^_`|~", *p))
			continue;
		snprintf(w->buf, sizeof(w->buf), "contains '%c', which an HTTP method token cannot",
			 *p);
		return w->buf;
	}
	return NULL;
}

int pol_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int pol_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

static const char *pol_why_path(const char *p, struct pol_why *w)
{
	const char *bad, *s, *seg;

	if (strlen(p) > POL_PATH_MAX)
		return "is longer than 2048 bytes";
	if (p[0] != '/' && p[0] != '*')
		return "must start with '/' (an exact or prefix match such as "
		       "\"/api/*\") or '*' (a suffix match such as \"*/info\")";
	bad = pol_why_bytes(p, w);
	if (bad)
		return bad;
	for (s = p; *s; s++) {
		int hi, lo, c;

		if (*s == '#')
			return "contains '#'; a fragment is never sent in a request";
		if (*s == '\\')
			return "contains '\\'; requests are matched with '\\' read as '/', "
			       "so write '/'";
		if (*s != '%')
			continue;
		hi = pol_hexval(s[1]);
		lo = hi < 0 ? -1 : pol_hexval(s[2]);
		if (lo < 0)
			return "has a '%' that is not followed by two hex digits";
		c = hi * 16 + lo;
		if (c == '\\')
			return "contains %5C; requests are matched with it read as '/', "
			       "so write '/'";
		if (pol_unreserved((unsigned char)c) || c == '/') {
			snprintf(w->buf, sizeof(w->buf),
				 "encodes '%c' as %%%c%c; requests are matched decoded, "
				 "so write '%c'",
				 c, s[1], s[2], c);
			return w->buf;
		}
		if ((s[1] >= 'a' && s[1] <= 'f') || (s[2] >= 'a' && s[2] <= 'f')) {
			snprintf(w->buf, sizeof(w->buf),
				 "has lowercase hex in %%%c%c; requests are matched with "
				 "uppercase hex",
				 s[1], s[2]);
			return w->buf;
		}
	}
	/* Normalised requests have no empty, "." or ".." segments. */
	for (s = p; (s = strchr(s, '/')) != NULL;) {
		seg = ++s;
		while (*s && *s != '/')
			s++;
		if (s - seg == 0 && *s == '/')
			return "contains '//'; requests are matched with repeated slashes "
			       "merged, so it could never match";
		if ((s - seg == 1 && seg[0] == '.') ||
		    (s - seg == 2 && seg[0] == '.' && seg[1] == '.'))
			return "has a '.' or '..' segment; requests are matched with those "
			       "resolved, so it could never match";
	}
	return NULL;
}

static int pol_host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '*' || c == '?';
}

/*
 * Splits "name", "name:port", "[v6]" or "[v6]:port" at the port colon.
 * Returns the length of the name part; *port is NULL when there is no port.
 * An unbracketed name with several colons is all name (the caller refuses
 * it in patterns; in requests it simply matches nothing useful).
 */
size_t pol_host_split(const char *h, size_t n, const char **port, size_t *port_len)
{
	const char *c = NULL;

	*port = NULL;
	*port_len = 0;
	if (n && h[0] == '[') {
		const char *rb = memchr(h, ']', n);

		if (rb && rb + 1 < h + n && rb[1] == ':')
			c = rb + 1;
	} else {
		c = memchr(h, ':', n);
		if (c && memchr(c + 1, ':', (size_t)(h + n - c - 1)))
			c = NULL;
	}
	if (!c)
		return n;
	*port = c + 1;
	*port_len = (size_t)(h + n - c - 1);
	return (size_t)(c - h);
}

static const char *pol_why_host(const char *p, struct pol_why *w)
{
	size_t n = strlen(p), name_len, port_len, i;
	const char *bad, *port;
	unsigned long v = 0;
	int digits = 1;

	if (n > POL_HOST_MAX)
		return "is longer than 261 characters (a 255-character name and a port)";
	bad = pol_why_bytes(p, w);
	if (bad)
		return bad;
	if (p[0] == '[') {
		const char *rb = strchr(p, ']');

		if (!rb)
			return "opens '[' without a closing ']'";
		if (rb == p + 1)
			return "has an empty IPv6 address in brackets";
		for (i = 1; p + i < rb; i++)
			if (pol_hexval(p[i]) < 0 && !strchr(":.*?", p[i]))
				return "has an invalid IPv6 address in brackets";
		if (rb[1] && rb[1] != ':')
			return "has something other than ':port' after ']'";
	} else {
		for (i = 0; i < n; i++) {
			if (p[i] == ':' || pol_host_char(p[i]))
				continue;
			if (p[i] == '[' || p[i] == ']')
				return "uses '[' or ']' other than around a whole IPv6 address";
			snprintf(w->buf, sizeof(w->buf),
				 "contains '%c'; a host is a name or address such as "
				 "\"orders.shop\", \"*.example.com\", \"[fd00::1]\" or "
				 "\"orders:8080\"",
				 p[i]);
			return w->buf;
		}
		if (strchr(p, ':') != strrchr(p, ':'))
			return "has several ':'; an IPv6 address must be in brackets "
			       "(\"[fd00::1]:8080\")";
	}
	name_len = pol_host_split(p, n, &port, &port_len);
	if (name_len == 0)
		return "has an empty name before the port";
	if (!port)
		return NULL;
	if (port_len == 0)
		return "has an empty port after ':'";
	if (port_len > 5)
		return "has a port longer than 5 characters";
	for (i = 0; i < port_len; i++) {
		if (port[i] >= '0' && port[i] <= '9') {
			v = v * 10 + (unsigned long)(port[i] - '0');
			continue;
		}
		if (port[i] != '*' && port[i] != '?')
			return "has a port that is not a number (or '*')";
		digits = 0;
	}
	if (digits && (v == 0 || v > 65535))
		return "has a port outside 1..65535";
	return NULL;
}

int policy_check_pattern(enum policy_pattern_kind kind, const char *pattern, char *err,
			 size_t errlen)
{
	struct pol_why w;
	const char *why;
	char q[96];

	if ((unsigned)kind >= ARRAY_SIZE(pol_kind_names)) {
		pol_err(err, errlen, "unknown pattern kind %d", (int)kind);
		return -EINVAL;
	}
	if (!pattern || !pattern[0]) {
		pol_err(err, errlen, "%s \"\" is empty", pol_kind_names[kind]);
		return -EINVAL;
	}
	switch (kind) {
	case PATTERN_PRINCIPAL:
		why = pol_why_principal(pattern, &w);
		break;
	case PATTERN_NAMESPACE:
		why = pol_why_namespace(pattern, &w);
		break;
	case PATTERN_METHOD:
		why = pol_why_method(pattern, &w);
		break;
	case PATTERN_PATH:
		why = pol_why_path(pattern, &w);
		break;
	default:
		why = pol_why_host(pattern, &w);
		break;
	}
	if (!why)
		return 0;
	pol_err(err, errlen, "%s %s %s", pol_kind_names[kind], pol_quote(pattern, q, sizeof(q)),
		why);
	return -EINVAL;
}

/* ------------------------------------------------------------------ */
/* Glob                                                                */

unsigned char pol_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* p[0..n) (no '*', '?' matches any byte) against s[0..n). */
static int pol_piece_eq(const char *p, const char *s, size_t n, int fold)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char a = (unsigned char)p[i], b = (unsigned char)s[i];

		if (a == '?' || a == b)
			continue;
		if (!fold || pol_lower(a) != pol_lower(b))
			return 0;
	}
	return 1;
}

/* Leftmost position of piece p[0..pn) in s[0..sn), or -1. */
static ptrdiff_t pol_piece_find(const char *p, size_t pn, const char *s, size_t sn, int fold)
{
	size_t i;

	if (pn > sn)
		return -1;
	/* memmem is linear (two-way); use it when bytes must match exactly. */
	if (!fold && !memchr(p, '?', pn)) {
		const char *hit = memmem(s, sn, p, pn);

		return hit ? hit - s : -1;
	}
	for (i = 0; i + pn <= sn; i++)
		if (pol_piece_eq(p, s + i, pn, fold))
			return (ptrdiff_t)i;
	return -1;
}

/* Glob over counted strings, so callers can match parts of a Host. */
int pol_glob_n(const char *p, size_t pn, const char *s, size_t sn, int fold)
{
	const char *star = memchr(p, '*', pn), *last;
	size_t head, tail, i, k;
	ptrdiff_t at;

	if (!star)
		return pn == sn && pol_piece_eq(p, s, pn, fold);
	head = (size_t)(star - p);
	if (head > sn || !pol_piece_eq(p, s, head, fold))
		return 0;
	p += head, pn -= head, s += head, sn -= head;
	last = memrchr(p, '*', pn);
	tail = pn - (size_t)(last - p) - 1;
	if (tail > sn || !pol_piece_eq(last + 1, s + sn - tail, tail, fold))
		return 0;
	sn -= tail;
	pn = (size_t)(last - p); /* p[0] and p[pn] are '*' */
	for (i = 1; i < pn; i = k) {
		for (k = i; k < pn && p[k] != '*'; k++)
			;
		if (k == i) {
			k++;
			continue;
		}
		at = pol_piece_find(p + i, k - i, s, sn, fold);
		if (at < 0)
			return 0;
		s += (size_t)at + (k - i);
		sn -= (size_t)at + (k - i);
	}
	return 1;
}

int policy_glob(const char *pattern, const char *s, int fold)
{
	if (!pattern || !s)
		return 0;
	return pol_glob_n(pattern, strlen(pattern), s, strlen(s), fold);
}
