/*
 * Authorization policy: config.policies compiled once into an immutable
 * policy_set, then decided per connection or per HTTP/1.x request without
 * I/O or allocation (see policy.h for the semantics).
 *
 * Decisions worth knowing about:
 *
 *  - Request paths are normalised before matching, into a stack buffer:
 *    the query and fragment are cut, percent-encoded unreserved characters
 *    and %2F / %5C are decoded, '\' counts as '/', "." and ".." segments
 *    are resolved and repeated slashes merged.  Applications and frameworks
 *    do some or all of this before routing, so matching the raw target
 *    would let "/api/../admin" or "//admin" slip past a deny rule on
 *    "/admin/" followed by a star.  Patterns that could never match a normalised path are
 *    refused when the policy is compiled.
 *
 *  - An HTTP request whose path or Host the matcher cannot see (no Host
 *    header, a target that is not origin-form, too long to normalise)
 *    fails closed: a deny rule's path or host condition counts as matched,
 *    an allow or audit rule's does not.
 *
 *  - Host patterns without a port ignore the request's port
 *    ("orders" matches "orders:8080"); a pattern with a port
 *    ("orders:8080", "orders:*") matches only a Host carrying one.  Names
 *    compare case-insensitively and without a trailing dot.
 *
 *  - Glob matching anchors the text before the first '*' and after the
 *    last one, then places each middle piece at its leftmost occurrence.
 *    That is exact for '*'-globs and runs in O(len(s) * longest piece),
 *    never exponentially, whatever the pattern.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, memrchr; the Makefile defines it too */
#endif
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "ldmesh/common.h"
#include "policy/policy.h"
#include "identity/spiffe.h"

/* Longest patterns accepted, in bytes. */
#define POL_NS_MAX 63 /* a Kubernetes namespace is a DNS label */
#define POL_METHOD_MAX 32
#define POL_PATH_MAX 2048 /* what the HTTP/1 parser keeps of a target */
#define POL_HOST_MAX (255 + 6) /* a DNS name and ":65535" */
/* Request paths up to this many bytes are normalised; longer ones are
 * treated as unreadable (fail closed). */
#define POL_NORM_MAX 4096

/* ------------------------------------------------------------------ */
/* Compiled form                                                       */

enum pol_principal_kind { PRIN_ANY, PRIN_EXACT, PRIN_PREFIX };

struct pol_principal {
	enum pol_principal_kind kind;
	const char *s; /* arena; for PRIN_PREFIX without the '*' */
	size_t len;
};

/* A namespace or path pattern: plain strings compare with strcmp. */
struct pol_pattern {
	const char *s; /* arena */
	size_t len;
	int glob; /* contains '*' or '?' */
};

struct pol_host {
	const char *name; /* arena, lowercase, no trailing dot */
	size_t name_len;
	const char *port; /* arena, NULL: any port or none */
	size_t port_len;
};

struct pol_rule {
	const char *name; /* arena; what policy_result.rule points to */
	enum config_action action;
	uint16_t *ports;
	size_t n_ports; /* arena, sorted; empty: any */
	struct pol_principal *principals;
	size_t n_principals;
	struct pol_pattern *namespaces;
	size_t n_namespaces;
	const char **methods;
	size_t n_methods;
	struct pol_pattern *paths;
	size_t n_paths;
	struct pol_host *hosts;
	size_t n_hosts;
	int unauthenticated;
	int l7; /* sets methods, paths or hosts */
};

struct policy_set {
	/* Deny rules first, then allow, then audit, each in config order. */
	struct pol_rule *rules;
	size_t n_deny, n_allow, n_audit;
	int default_deny;
	char *arena; /* owns everything the rules point to */
};

/* ------------------------------------------------------------------ */
/* Messages                                                            */

static void LDM_PRINTF(3, 4) pol_err(char *err, size_t len, const char *fmt, ...)
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

static int pol_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int pol_unreserved(unsigned char c)
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
static size_t pol_host_split(const char *h, size_t n, const char **port, size_t *port_len)
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

static unsigned char pol_lower(unsigned char c)
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
static int pol_glob_n(const char *p, size_t pn, const char *s, size_t sn, int fold)
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

/* ------------------------------------------------------------------ */
/* Compile                                                             */

/* A bump allocator run twice: first to measure (base NULL), then to fill. */
struct pol_arena {
	char *base;
	size_t off;
};

static void *pol_alloc(struct pol_arena *a, size_t size)
{
	size_t at = (a->off + 7) & ~(size_t)7;

	a->off = at + size;
	return a->base ? a->base + at : NULL;
}

static const char *pol_strdup(struct pol_arena *a, const char *s, size_t n)
{
	char *d = pol_alloc(a, n + 1);

	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static int pol_cmp_port(const void *a, const void *b)
{
	return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static void pol_fill_patterns(struct pol_arena *a, char *const *in, size_t n,
			      struct pol_pattern **out)
{
	struct pol_pattern *v = pol_alloc(a, n * sizeof(*v));
	const char *s;
	size_t i, len;

	for (i = 0; i < n; i++) {
		len = strlen(in[i]);
		s = pol_strdup(a, in[i], len);

		if (v) {
			v[i].s = s;
			v[i].len = len;
			v[i].glob = strpbrk(in[i], "*?") != NULL;
		}
	}
	*out = v;
}

static void pol_fill_rule(struct pol_arena *a, const struct config_policy *cp, struct pol_rule *r)
{
	size_t i, len;

	r->name = pol_strdup(a, cp->name, strlen(cp->name));
	r->action = cp->action;
	r->unauthenticated = cp->unauthenticated;
	r->l7 = cp->n_methods || cp->n_paths || cp->n_hosts;

	r->n_ports = cp->n_ports;
	r->ports = pol_alloc(a, cp->n_ports * sizeof(*r->ports));
	if (r->ports && cp->n_ports) {
		memcpy(r->ports, cp->ports, cp->n_ports * sizeof(*r->ports));
		qsort(r->ports, cp->n_ports, sizeof(*r->ports), pol_cmp_port);
	}

	r->n_principals = cp->n_principals;
	r->principals = pol_alloc(a, cp->n_principals * sizeof(*r->principals));
	for (i = 0; i < cp->n_principals; i++) {
		const char *s = cp->principals[i];
		enum pol_principal_kind k = PRIN_EXACT;

		len = strlen(s);
		if (strcmp(s, "*") == 0) {
			k = PRIN_ANY;
			len = 0;
		} else if (s[len - 1] == '*') {
			k = PRIN_PREFIX;
			len--;
		}
		s = pol_strdup(a, s, len);
		if (r->principals) {
			r->principals[i].kind = k;
			r->principals[i].s = s;
			r->principals[i].len = len;
		}
	}

	r->n_namespaces = cp->n_namespaces;
	pol_fill_patterns(a, cp->namespaces, cp->n_namespaces, &r->namespaces);
	r->n_paths = cp->n_paths;
	pol_fill_patterns(a, cp->paths, cp->n_paths, &r->paths);

	r->n_methods = cp->n_methods;
	r->methods = pol_alloc(a, cp->n_methods * sizeof(*r->methods));
	for (i = 0; i < cp->n_methods; i++) {
		const char *s = pol_strdup(a, cp->methods[i], strlen(cp->methods[i]));

		if (r->methods)
			r->methods[i] = s;
	}

	r->n_hosts = cp->n_hosts;
	r->hosts = pol_alloc(a, cp->n_hosts * sizeof(*r->hosts));
	for (i = 0; i < cp->n_hosts; i++) {
		const char *h = cp->hosts[i], *port, *ps;
		size_t port_len, name_len = pol_host_split(h, strlen(h), &port, &port_len);
		char *name;

		if (name_len > 1 && h[name_len - 1] == '.')
			name_len--;
		name = (char *)pol_strdup(a, h, name_len);
		ps = port ? pol_strdup(a, port, port_len) : NULL;
		if (!r->hosts)
			continue;
		for (len = 0; len < name_len; len++)
			name[len] = (char)pol_lower((unsigned char)name[len]);
		r->hosts[i].name = name;
		r->hosts[i].name_len = name_len;
		r->hosts[i].port = ps;
		r->hosts[i].port_len = port_len;
	}
}

/* Lays out the rules (deny, allow, audit) and everything they point to. */
static void pol_fill(struct pol_arena *a, const struct config *cfg, struct policy_set *p)
{
	static const enum config_action order[] = {CONFIG_ACTION_DENY, CONFIG_ACTION_ALLOW,
						   CONFIG_ACTION_AUDIT};
	struct pol_rule scratch = {0}, *r; /* sizing pass: rules land here */
	size_t i, j, n = 0;

	p->rules = pol_alloc(a, cfg->n_policies * sizeof(*p->rules));
	p->n_deny = p->n_allow = p->n_audit = 0;
	for (j = 0; j < ARRAY_SIZE(order); j++) {
		for (i = 0; i < cfg->n_policies; i++) {
			if (cfg->policies[i].action != order[j])
				continue;
			r = p->rules ? &p->rules[n] : &scratch;
			memset(r, 0, sizeof(*r));
			pol_fill_rule(a, &cfg->policies[i], r);
			n++;
			if (order[j] == CONFIG_ACTION_DENY)
				p->n_deny++;
			else if (order[j] == CONFIG_ACTION_ALLOW)
				p->n_allow++;
			else
				p->n_audit++;
		}
	}
}

static int pol_check_list(const struct config_policy *cp, size_t idx, const char *key,
			  enum policy_pattern_kind kind, char *const *v, size_t n, char *err,
			  size_t errlen)
{
	char why[512];
	size_t i;

	for (i = 0; i < n; i++) {
		if (policy_check_pattern(kind, v[i], why, sizeof(why)) == 0)
			continue;
		pol_err(err, errlen, "policies[%zu] (%s): %s[%zu]: %s", idx, cp->name, key, i, why);
		return -EINVAL;
	}
	return 0;
}

static int pol_check(const struct config *cfg, char *err, size_t errlen)
{
	size_t i, j;

	for (i = 0; i < cfg->n_policies; i++) {
		const struct config_policy *cp = &cfg->policies[i];

		if (!cp->name || !cp->name[0]) {
			pol_err(err, errlen, "policies[%zu] has no name", i);
			return -EINVAL;
		}
		if (cp->action != CONFIG_ACTION_ALLOW && cp->action != CONFIG_ACTION_DENY &&
		    cp->action != CONFIG_ACTION_AUDIT) {
			pol_err(err, errlen, "policies[%zu] (%s) has an unknown action", i,
				cp->name);
			return -EINVAL;
		}
		for (j = 0; j < cp->n_ports; j++)
			if (cp->ports[j] == 0) {
				pol_err(err, errlen,
					"policies[%zu] (%s): ports[%zu]: port 0 is not a "
					"port (1..65535)",
					i, cp->name, j);
				return -EINVAL;
			}
		if (pol_check_list(cp, i, "principals", PATTERN_PRINCIPAL, cp->principals,
				   cp->n_principals, err, errlen) ||
		    pol_check_list(cp, i, "namespaces", PATTERN_NAMESPACE, cp->namespaces,
				   cp->n_namespaces, err, errlen) ||
		    pol_check_list(cp, i, "methods", PATTERN_METHOD, cp->methods, cp->n_methods,
				   err, errlen) ||
		    pol_check_list(cp, i, "paths", PATTERN_PATH, cp->paths, cp->n_paths, err,
				   errlen) ||
		    pol_check_list(cp, i, "hosts", PATTERN_HOST, cp->hosts, cp->n_hosts, err,
				   errlen))
			return -EINVAL;
	}
	return 0;
}

struct policy_set *policy_compile(const struct config *cfg, char *err, size_t errlen)
{
	struct pol_arena a = {NULL, 0};
	struct policy_set *p = NULL;

	if (cfg && pol_check(cfg, err, errlen) < 0)
		goto out;
	p = calloc(1, sizeof(*p));
	if (!p) {
		pol_err(err, errlen, "out of memory compiling the policies");
		goto out;
	}
	p->default_deny = cfg ? cfg->default_deny : 0;
	if (!cfg || cfg->n_policies == 0)
		goto out;
	pol_fill(&a, cfg, p); /* measure */
	a.base = malloc(a.off);
	if (!a.base) {
		pol_err(err, errlen, "out of memory compiling the policies");
		goto err_free;
	}
	a.off = 0;
	pol_fill(&a, cfg, p); /* fill */
	p->arena = a.base;
	goto out;
err_free:
	free(p);
	p = NULL;
out:
	return p;
}

void policy_free(struct policy_set *p)
{
	if (!p)
		return;
	free(p->arena);
	free(p);
}

/* ------------------------------------------------------------------ */
/* Evaluation                                                          */

/* What eval knows about the request, computed once. */
struct pol_req {
	const char *principal; /* NULL: unauthenticated */
	const char *ns; /* into principal; NULL: no namespace */
	size_t ns_len;
	uint16_t port;
	int http;
	const char *method;
	/* Path: normalised on first use. */
	const char *raw_path;
	int path_state; /* 0 not yet, 1 ready, -1 unreadable */
	char *path_buf; /* caller's stack buffer, POL_NORM_MAX + 1 bytes */
	size_t path_len;
	/* Host split once; name NULL when absent. */
	const char *host_name;
	size_t host_name_len;
	const char *host_port;
	size_t host_port_len;
};

/* The <ns> of spiffe://<td>/ns/<ns>/..., or NULL. */
static const char *pol_namespace(const char *id, size_t *len)
{
	const char *p, *e;

	if (strncmp(id, SPIFFE_SCHEME, SPIFFE_SCHEME_LEN) != 0)
		return NULL;
	p = strchr(id + SPIFFE_SCHEME_LEN, '/');
	if (!p || strncmp(p, "/ns/", 4) != 0)
		return NULL;
	p += 4;
	e = strchr(p, '/');
	if (!e || e == p)
		return NULL;
	*len = (size_t)(e - p);
	return p;
}

/*
 * Normalises a request path into buf (see the top of the file).  Returns
 * the length, or -1 when the target is not a path the rules can judge.
 */
static ptrdiff_t pol_normalize_path(const char *in, char *buf, size_t cap)
{
	size_t n = 0, r, w, s, len;
	int hi, lo, c;

	if (strcmp(in, "*") == 0) { /* OPTIONS * */
		buf[0] = '*';
		buf[1] = '\0';
		return 1;
	}
	if (in[0] != '/' && in[0] != '\\')
		return -1;
	/* Decode, cutting the query and fragment. */
	for (r = 0; in[r] && in[r] != '?' && in[r] != '#'; r++) {
		if (n + 3 >= cap)
			return -1;
		c = (unsigned char)in[r];
		if (c == '%' && (hi = pol_hexval(in[r + 1])) >= 0 &&
		    (lo = pol_hexval(in[r + 2])) >= 0) {
			c = hi * 16 + lo;
			r += 2;
			if (pol_unreserved((unsigned char)c) || c == '/' || c == '\\') {
				buf[n++] = c == '\\' ? '/' : (char)c;
			} else {
				buf[n++] = '%';
				buf[n++] = "0123456789ABCDEF"[hi];
				buf[n++] = "0123456789ABCDEF"[lo];
			}
			continue;
		}
		buf[n++] = c == '\\' ? '/' : (char)c;
	}
	/* Resolve "." and "..", merge slashes; writing never passes reading. */
	r = w = 0;
	for (;;) {
		while (r < n && buf[r] == '/')
			r++;
		if (r == n) {
			buf[w++] = '/';
			break;
		}
		for (s = r; r < n && buf[r] != '/'; r++)
			;
		len = r - s;
		if (len == 1 && buf[s] == '.') {
			if (r == n) {
				buf[w++] = '/';
				break;
			}
			continue;
		}
		if (len == 2 && buf[s] == '.' && buf[s + 1] == '.') {
			while (w > 0 && buf[w - 1] != '/')
				w--;
			if (w > 0)
				w--;
			if (r == n) {
				buf[w++] = '/';
				break;
			}
			continue;
		}
		buf[w++] = '/';
		memmove(buf + w, buf + s, len);
		w += len;
		if (r == n)
			break;
	}
	buf[w] = '\0';
	return (ptrdiff_t)w;
}

static int pol_port_listed(const struct pol_rule *r, uint16_t port)
{
	size_t lo = 0, hi = r->n_ports, mid;

	if (r->n_ports == 0)
		return 1;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (r->ports[mid] == port)
			return 1;
		if (r->ports[mid] < port)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

static int pol_principal_match(const struct pol_principal *pp, const char *id)
{
	switch (pp->kind) {
	case PRIN_ANY:
		return 1;
	case PRIN_PREFIX:
		return strncmp(id, pp->s, pp->len) == 0;
	default:
		return strcmp(id, pp->s) == 0;
	}
}

static int pol_pattern_match(const struct pol_pattern *pt, const char *s, size_t n)
{
	if (!pt->glob)
		return pt->len == n && memcmp(pt->s, s, n) == 0;
	return pol_glob_n(pt->s, pt->len, s, n, 0);
}

static int pol_identity_match(const struct pol_rule *r, const struct pol_req *q)
{
	size_t i;

	if (!q->principal)
		return r->unauthenticated || (r->n_principals == 0 && r->n_namespaces == 0);
	if (r->n_principals) {
		for (i = 0; i < r->n_principals; i++)
			if (pol_principal_match(&r->principals[i], q->principal))
				break;
		if (i == r->n_principals)
			return 0;
	}
	if (r->n_namespaces) {
		if (!q->ns)
			return 0;
		for (i = 0; i < r->n_namespaces; i++)
			if (pol_pattern_match(&r->namespaces[i], q->ns, q->ns_len))
				break;
		if (i == r->n_namespaces)
			return 0;
	}
	return 1;
}

static int pol_path_match(const struct pol_rule *r, struct pol_req *q)
{
	size_t i;

	if (q->path_state == 0) {
		ptrdiff_t n =
			q->raw_path ? pol_normalize_path(q->raw_path, q->path_buf, POL_NORM_MAX + 1)
				    : -1;

		q->path_state = n < 0 ? -1 : 1;
		q->path_len = n < 0 ? 0 : (size_t)n;
	}
	if (q->path_state < 0) /* unreadable: fail closed */
		return r->action == CONFIG_ACTION_DENY;
	for (i = 0; i < r->n_paths; i++)
		if (pol_pattern_match(&r->paths[i], q->path_buf, q->path_len))
			return 1;
	return 0;
}

static int pol_host_match(const struct pol_rule *r, const struct pol_req *q)
{
	const struct pol_host *h;
	size_t i;

	if (!q->host_name) /* absent: fail closed */
		return r->action == CONFIG_ACTION_DENY;
	for (i = 0; i < r->n_hosts; i++) {
		h = &r->hosts[i];
		if (!pol_glob_n(h->name, h->name_len, q->host_name, q->host_name_len, 1))
			continue;
		if (!h->port || (q->host_port && pol_glob_n(h->port, h->port_len, q->host_port,
							    q->host_port_len, 0)))
			return 1;
	}
	return 0;
}

/* Everything but the port, which callers check first. */
static int pol_rule_match(const struct pol_rule *r, struct pol_req *q)
{
	size_t i;

	if (!pol_identity_match(r, q))
		return 0;
	if (!r->l7)
		return 1;
	if (!q->http) /* unreadable as a request: deny more, allow nothing */
		return r->action == CONFIG_ACTION_DENY;
	if (r->n_methods) {
		for (i = 0; i < r->n_methods; i++)
			if (strcmp(r->methods[i], q->method) == 0)
				break;
		if (i == r->n_methods)
			return 0;
	}
	if (r->n_paths && !pol_path_match(r, q))
		return 0;
	if (r->n_hosts && !pol_host_match(r, q))
		return 0;
	return 1;
}

static void pol_req_init(struct pol_req *q, const struct policy_request *req, char *path_buf)
{
	memset(q, 0, sizeof(*q));
	q->principal = req->principal && req->principal[0] ? req->principal : NULL;
	if (q->principal)
		q->ns = pol_namespace(q->principal, &q->ns_len);
	q->port = req->port;
	q->http = req->method != NULL;
	q->method = req->method;
	q->raw_path = req->path;
	q->path_buf = path_buf;
	if (q->http && req->host && req->host[0]) {
		size_t n = strlen(req->host);

		q->host_name = req->host;
		q->host_name_len = pol_host_split(req->host, n, &q->host_port, &q->host_port_len);
		if (q->host_name_len > 1 && req->host[q->host_name_len - 1] == '.')
			q->host_name_len--;
	}
}

void policy_eval(const struct policy_set *p, const struct policy_request *req,
		 struct policy_result *out)
{
	char path_buf[POL_NORM_MAX + 1];
	const struct pol_rule *r, *end;
	struct pol_req q;
	int selected = 0, pass;

	memset(out, 0, sizeof(*out));
	/* No policy set is a caller bug; refuse rather than open up. */
	if (!p) {
		out->decision = POLICY_DENY;
		out->rule = "default-deny";
		return;
	}
	pol_req_init(&q, req, path_buf);

	/* Audit first: it is reported whatever the decision is. */
	r = p->rules + p->n_deny + p->n_allow;
	for (end = r + p->n_audit; r < end && out->n_audit < POLICY_MAX_AUDIT; r++)
		if (pol_port_listed(r, q.port) && pol_rule_match(r, &q))
			out->audit[out->n_audit++] = r->name;

	/* Without a request, a deny rule with L7 conditions matches on the
	 * rest of them; a rule that names the caller outright is the better
	 * reason to report, so those come first. */
	for (pass = q.http; pass < 2; pass++)
		for (r = p->rules, end = r + p->n_deny; r < end; r++)
			if ((pass || !r->l7) && pol_port_listed(r, q.port) &&
			    pol_rule_match(r, &q)) {
				out->decision = POLICY_DENY;
				out->rule = r->name;
				return;
			}
	for (r = p->rules + p->n_deny, end = r + p->n_allow; r < end; r++) {
		if (!pol_port_listed(r, q.port))
			continue;
		selected = 1;
		if (pol_rule_match(r, &q)) {
			out->decision = POLICY_ALLOW;
			out->rule = r->name;
			return;
		}
	}
	if (selected) {
		out->decision = POLICY_DENY;
		out->rule = "no-allow-rule-matched";
	} else if (p->default_deny) {
		out->decision = POLICY_DENY;
		out->rule = "default-deny";
	} else {
		out->decision = POLICY_ALLOW;
		out->rule = "default-allow";
	}
}

void policy_decide(const struct policy_set *p, enum policy_stage stage,
		   const struct policy_request *req, struct policy_result *out)
{
	struct policy_request conn = {.principal = req->principal, .port = req->port};

	if (stage == POLICY_AT_REQUEST && req->method) {
		policy_eval(p, req, out);
		return;
	}
	if (stage == POLICY_AT_CONNECT && policy_needs_request(p, req->port, req->principal)) {
		memset(out, 0, sizeof(*out));
		out->decision = POLICY_PENDING;
		out->rule = "per-request";
		return;
	}
	policy_eval(p, &conn, out);
}

int policy_needs_request(const struct policy_set *p, uint16_t port, const char *principal)
{
	const struct policy_request req = {.principal = principal, .port = port};
	const struct pol_rule *r, *end;
	struct pol_req q;
	size_t n;

	if (!p)
		return 0;
	pol_req_init(&q, &req, NULL);
	n = p->n_deny + p->n_allow + p->n_audit;
	/* A connection-level deny for this caller is final already. */
	for (r = p->rules, end = r + p->n_deny; r < end; r++)
		if (!r->l7 && pol_port_listed(r, port) && pol_identity_match(r, &q))
			return 0;
	for (r = p->rules, end = r + n; r < end; r++)
		if (r->l7 && pol_port_listed(r, port) && pol_identity_match(r, &q))
			return 1;
	return 0;
}
