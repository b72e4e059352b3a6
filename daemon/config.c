/*
 * libconfig text -> validated, immutable struct config.
 *
 * One text goes through three passes:
 *   1. a small lexical pre-scan for what libconfig 1.5 gets wrong or does
 *      behind our back: integer literals that silently wrap to 32 bits and
 *      @include directives that open other files;
 *   2. libconfig's own parser, whose errors become "FILE:LINE: message";
 *   3. a walk over the setting tree, one table of known keys per group, that
 *      type-checks and range-checks every value while filling the struct.
 * Members are walked in file order, so the error reported is the first one
 * in the file.  Every error is a sentence naming file:line and the full key
 * path ("services[1].endpoints[0]").
 *
 * Ownership while building: every array is attached to the config before it
 * is filled, and its count is set with it (elements start zeroed), so
 * config_free() releases a half-built config on any error path.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <limits.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ldmesh/common.h"
#include "policy.h"

/* A per-pod config is a few kilobytes; this only stops /dev/zero. */
#define CFG_MAX_FILE (16u << 20)
/* Duplicate checks are quadratic; this keeps a hostile file fast. */
#define CFG_MAX_LIST 10000
/* Deeper than any key we know; bounds the path walk. */
#define CFG_MAX_DEPTH 16
#define CFG_MAX_NAME 253
#define CFG_STRING_NAME "<string>"
#define CFG_DEFAULT_NAME "<built-in default>"

/* Where messages go and which file they name. */
struct cfg_ctx {
	const char *name; /* borrowed: file name used in messages */
	char *err; /* borrowed: caller's buffer, may be NULL */
	size_t errlen;
};

/* State of one top-level walk. */
struct cfg_state {
	struct config *c; /* borrowed: the config being filled */
	const config_setting_t *root; /* borrowed: for cross-key checks */
	int mtls_set; /* inbound.mtls was written */
	int mesh_set; /* outbound.mesh_networks was written */
};

/* One known key of a group and what parses it into obj. */
struct cfg_key {
	const char *name;
	int (*parse)(struct cfg_ctx *x, const config_setting_t *s, void *obj);
};

struct cfg_enum {
	const char *name;
	int value;
};

/* ------------------------------------------------------------------ */
/* Messages                                                            */

LDM_PRINTF(2, 3)
static int cfg_errf(struct cfg_ctx *x, const char *fmt, ...)
{
	va_list ap;

	if (x->err && x->errlen) {
		va_start(ap, fmt);
		vsnprintf(x->err, x->errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int cfg_oom(struct cfg_ctx *x)
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
static int cfg_fail(struct cfg_ctx *x, const config_setting_t *s, const char *fmt, ...)
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
static const char *cfg_quote(const char *v, char *buf, size_t len)
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

#define CFG_Q(v) cfg_quote((v), (char[96]){0}, 96)

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

static int cfg_get_string(struct cfg_ctx *x, const config_setting_t *s, const char **out)
{
	*out = NULL;
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return cfg_fail(x, s, "expected a string");
	*out = config_setting_get_string(s);
	return 0;
}

static int cfg_get_int(struct cfg_ctx *x, const config_setting_t *s, long long min, long long max,
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

static int cfg_get_bool(struct cfg_ctx *x, const config_setting_t *s, int *out)
{
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return cfg_fail(x, s, "expected true or false");
	*out = config_setting_get_bool(s) ? 1 : 0;
	return 0;
}

static int cfg_get_enum(struct cfg_ctx *x, const config_setting_t *s, const struct cfg_enum *tab,
			size_t n, int *out)
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
static int cfg_get_seq(struct cfg_ctx *x, const config_setting_t *s, size_t *n)
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
static int cfg_get_group_list(struct cfg_ctx *x, const config_setting_t *s, size_t *n)
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
static int cfg_walk(struct cfg_ctx *x, const config_setting_t *grp, const struct cfg_key *keys,
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

static int cfg_require(struct cfg_ctx *x, const config_setting_t *grp, const char *key)
{
	if (config_setting_get_member(grp, key))
		return 0;
	return cfg_fail(x, grp, "missing required key %s", key);
}

static int cfg_dup(struct cfg_ctx *x, const char *v, char **out)
{
	*out = strdup(v);
	return *out ? 0 : cfg_oom(x);
}

/* "\"value\" why", or just "why" for an empty value. */
static int cfg_bad_value(struct cfg_ctx *x, const config_setting_t *s, const char *v,
			 const char *why)
{
	return v[0] ? cfg_fail(x, s, "%s %s", CFG_Q(v), why) : cfg_fail(x, s, "%s", why);
}

/* ------------------------------------------------------------------ */
/* Value checks: NULL when fine, else a phrase that follows the value   */

static int cfg_is_ctl(char ch)
{
	return (unsigned char)ch < 0x20 || ch == 0x7f;
}

static const char *cfg_why_path(const char *v)
{
	for (; *v; v++)
		if (cfg_is_ctl(*v))
			return "contains a control character";
	return NULL;
}

/* Names end up in Prometheus labels and JSON logs: nothing to escape. */
static const char *cfg_why_name(const char *v)
{
	if (strlen(v) > CFG_MAX_NAME)
		return "is longer than 253 characters";
	for (; *v; v++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789._-:/",
			    *v))
			return "may only contain letters, digits and . _ - : /";
	return NULL;
}

static int cfg_td_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' ||
	       ch == '_';
}

static int cfg_seg_char(char ch)
{
	return cfg_td_char(ch) || (ch >= 'A' && ch <= 'Z');
}

static const char *cfg_why_trust_domain(const char *v)
{
	if (strlen(v) > 255)
		return "is longer than 255 characters";
	for (; *v; v++)
		if (!cfg_td_char(*v))
			return "is not a trust domain: use lowercase letters, digits, "
			       "'.', '-' and '_'";
	return NULL;
}

/*
 * A SPIFFE ID per the SPIFFE spec: spiffe://<trust domain>[/<segment>...].
 * With wildcard, "*" alone means any identity and a trailing '*' makes the
 * rest a prefix: "spiffe://cluster.local/ns/shop/" followed by a star.
 */
static const char *cfg_why_spiffe_id(const char *v, int wildcard)
{
	static const char scheme[] = "spiffe://";
	const char *p = v + sizeof(scheme) - 1, *end = v + strlen(v), *seg;
	const char *star = strchr(v, '*');

	if (wildcard && strcmp(v, "*") == 0)
		return NULL;
	if (strncmp(v, scheme, sizeof(scheme) - 1) != 0)
		return "is not a SPIFFE ID: it must start with spiffe://";
	if (end - v > LDM_PEER_ID_MAX)
		return "is longer than 2048 bytes";
	if (star && (!wildcard || star != end - 1))
		return wildcard ? "may only use '*' at the end"
				: "is not a SPIFFE ID: '*' is not allowed";
	if (star)
		end--;
	for (seg = p; p < end && *p != '/'; p++)
		if (!cfg_td_char(*p))
			return "has an invalid trust domain: use lowercase letters, "
			       "digits, '.', '-' and '_'";
	if (p == seg && !(star && p == end))
		return "has an empty trust domain";
	while (p < end) {
		for (seg = ++p; p < end && *p != '/'; p++)
			if (!cfg_seg_char(*p))
				return "has an invalid path: segments may use letters, "
				       "digits, '.', '-' and '_'";
		if (p == seg && !(star && p == end))
			return "has an empty path segment";
		if ((p - seg == 1 && seg[0] == '.') ||
		    (p - seg == 2 && seg[0] == '.' && seg[1] == '.'))
			return "has a '.' or '..' path segment";
	}
	return NULL;
}

static const char *cfg_why_identity(const char *v)
{
	return cfg_why_spiffe_id(v, 0);
}

static const char *cfg_why_principal(const char *v)
{
	return cfg_why_spiffe_id(v, 1);
}

static const char *cfg_why_namespace(const char *v)
{
	if (strlen(v) > 63)
		return "is longer than 63 characters";
	for (; *v; v++)
		if (!((*v >= 'a' && *v <= 'z') || (*v >= '0' && *v <= '9') || *v == '-' ||
		      *v == '*'))
			return "is not a namespace: use lowercase letters, digits, '-' "
			       "and '*'";
	return NULL;
}

/* An HTTP method is an RFC 9110 token. */
static const char *cfg_why_method(const char *v)
{
	for (; *v; v++)
		if (!((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') ||
		      (*v >= '0' && *v <= '9') || strchr("!#$%&'*+-.^_`|~", *v)))
			return "is not an HTTP method";
	return NULL;
}

static const char *cfg_why_http_path(const char *v)
{
	if (v[0] != '/' && v[0] != '*')
		return "must start with '/' (or '*' for a suffix match)";
	for (; *v; v++)
		if (cfg_is_ctl(*v) || *v == ' ')
			return "contains a space or control character";
	return NULL;
}

static const char *cfg_why_host(const char *v)
{
	if (strlen(v) > 255 + 6)
		return "is too long for a host";
	for (; *v; v++)
		if (cfg_is_ctl(*v) || *v == ' ' || *v == '/')
			return "is not a host: it contains a space, '/' or a control "
			       "character";
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Addresses                                                           */

/* Bits of byte i that belong to the network part of a /prefix. */
static uint8_t cfg_mask(int prefix, int i)
{
	int bit0 = i * 8;

	if (prefix >= bit0 + 8)
		return 0xff;
	if (prefix <= bit0)
		return 0;
	return (uint8_t)(0xff << (8 - (prefix - bit0)));
}

static int cfg_cidr_bytes(const struct config_cidr *c)
{
	return c->family == AF_INET ? 4 : 16;
}

static int cfg_host_bits(const struct config_cidr *c)
{
	int i;

	for (i = 0; i < cfg_cidr_bytes(c); i++)
		if (c->addr[i] & (uint8_t)~cfg_mask(c->prefix_len, i))
			return 1;
	return 0;
}

/* Digits only: no sign, no spaces, no hex, at most maxlen of them. */
static int cfg_digits(const char *s, size_t maxlen, unsigned long *out)
{
	unsigned long v = 0;
	size_t n;

	for (n = 0; s[n] >= '0' && s[n] <= '9'; n++)
		v = v * 10 + (unsigned long)(s[n] - '0');
	if (n == 0 || n > maxlen || s[n] != '\0')
		return -EINVAL;
	*out = v;
	return 0;
}

/* config_parse_cidr without the host-bits check, so callers can say which. */
static int cfg_cidr_parse(const char *s, struct config_cidr *out)
{
	struct config_cidr c;
	char buf[INET6_ADDRSTRLEN];
	const char *slash;
	unsigned long prefix;
	size_t alen;
	int rc = -EINVAL;

	if (!s || !out)
		goto out;
	memset(&c, 0, sizeof(c));
	slash = strchr(s, '/');
	alen = slash ? (size_t)(slash - s) : strlen(s);
	if (alen == 0 || alen >= sizeof(buf))
		goto out;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	c.family = strchr(buf, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(c.family, buf, c.addr) != 1)
		goto out;
	c.prefix_len = c.family == AF_INET ? 32 : 128;
	if (slash) {
		if (cfg_digits(slash + 1, 3, &prefix) < 0 || prefix > (unsigned long)c.prefix_len)
			goto out;
		c.prefix_len = (int)prefix;
	}
	*out = c;
	rc = 0;
out:
	return rc;
}

int config_parse_cidr(const char *s, struct config_cidr *out)
{
	struct config_cidr c;
	int rc;

	rc = cfg_cidr_parse(s, &c);
	if (rc == 0 && cfg_host_bits(&c))
		rc = -EINVAL;
	if (rc == 0)
		*out = c;
	return rc;
}

static int cfg_v4mapped(const uint8_t *a)
{
	static const uint8_t pfx[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	return memcmp(a, pfx, sizeof(pfx)) == 0;
}

int config_cidr_contains(const struct config_cidr *cidr, const struct ldm_addr *addr)
{
	const uint8_t *a = NULL;
	int i, in = 0;

	if (!cidr || !addr)
		goto out;
	if (cidr->family == AF_INET && addr->family == AF_INET)
		a = addr->addr;
	else if (cidr->family == AF_INET6 && addr->family == AF_INET6)
		a = addr->addr;
	else if (cidr->family == AF_INET && addr->family == AF_INET6 && cfg_v4mapped(addr->addr))
		/* A dual-stack socket dialling ::ffff:10.1.2.3 goes to 10.1.2.3. */
		a = addr->addr + 12;
	if (!a)
		goto out;
	in = 1;
	for (i = 0; i < cfg_cidr_bytes(cidr) && in; i++)
		if ((a[i] ^ cidr->addr[i]) & cfg_mask(cidr->prefix_len, i))
			in = 0;
out:
	return in;
}

int config_in_mesh(const struct config *c, const struct ldm_addr *addr)
{
	size_t i;

	if (!c)
		return 0;
	for (i = 0; i < c->n_mesh_networks; i++)
		if (config_cidr_contains(&c->mesh_networks[i], addr))
			return 1;
	return 0;
}

/* "%eth0" or "%3" after an IPv6 literal. */
static int cfg_scope(const char *zone, uint32_t *out)
{
	unsigned long v;
	unsigned idx;

	if (cfg_digits(zone, 10, &v) == 0 && v <= UINT32_MAX) {
		*out = (uint32_t)v;
		return 0;
	}
	if (zone[0] == '\0' || strlen(zone) >= IF_NAMESIZE)
		return -EINVAL;
	idx = if_nametoindex(zone);
	if (idx == 0)
		return -EINVAL;
	*out = idx;
	return 0;
}

int config_parse_hostport(const char *s, struct ldm_addr *out)
{
	struct ldm_addr a;
	char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2], *pct;
	const char *h, *hend, *port;
	unsigned long p;
	size_t hlen;
	int rc = -EINVAL;

	if (!s || !out)
		goto out;
	memset(&a, 0, sizeof(a));
	if (s[0] == '[') {
		h = s + 1;
		hend = strchr(h, ']');
		if (!hend || hend[1] != ':')
			goto out;
		port = hend + 2;
		a.family = AF_INET6;
	} else {
		/* An unbracketed IPv6 address has more than one colon. */
		h = s;
		hend = strchr(s, ':');
		if (!hend || strchr(hend + 1, ':'))
			goto out;
		port = hend + 1;
		a.family = AF_INET;
	}
	hlen = (size_t)(hend - h);
	if (hlen == 0 || hlen >= sizeof(host))
		goto out;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (cfg_digits(port, 5, &p) < 0 || p == 0 || p > 65535)
		goto out;
	a.port = htons((uint16_t)p);
	pct = a.family == AF_INET6 ? strchr(host, '%') : NULL;
	if (pct) {
		*pct = '\0';
		if (cfg_scope(pct + 1, &a.scope_id) < 0)
			goto out;
	}
	if (inet_pton(a.family, host, a.addr) != 1)
		goto out;
	*out = a;
	rc = 0;
out:
	return rc;
}

/* ------------------------------------------------------------------ */
/* Lists                                                               */

static int cfg_port_list(struct cfg_ctx *x, const config_setting_t *s, uint16_t **out, size_t *nout)
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

static int cfg_string_list(struct cfg_ctx *x, const config_setting_t *s,
			   const char *(*why)(const char *), char ***out, size_t *nout)
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

/* A CIDR string, with the message naming what is wrong with it. */
static int cfg_cidr(struct cfg_ctx *x, const config_setting_t *s, struct config_cidr *out)
{
	char net[INET6_ADDRSTRLEN];
	const char *v;
	int i, rc;

	rc = cfg_get_string(x, s, &v);
	if (rc < 0)
		goto out;
	if (cfg_cidr_parse(v, out) < 0) {
		rc = cfg_fail(x, s, "%s is not a CIDR prefix like 10.0.0.0/8 or fd00::/8",
			      CFG_Q(v));
		goto out;
	}
	if (cfg_host_bits(out)) {
		for (i = 0; i < cfg_cidr_bytes(out); i++)
			out->addr[i] &= cfg_mask(out->prefix_len, i);
		inet_ntop(out->family, out->addr, net, sizeof(net));
		rc = cfg_fail(x, s, "host bits set in %s (did you mean %s/%d?)", v, net,
			      out->prefix_len);
	}
out:
	return rc;
}

static int cfg_cidr_list(struct cfg_ctx *x, const config_setting_t *s, struct config_cidr **out,
			 size_t *nout)
{
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

		rc = cfg_cidr(x, e, &(*out)[i]);
		if (rc < 0)
			goto out;
		for (j = 0; j < i; j++)
			if (memcmp(&(*out)[j], &(*out)[i], sizeof(**out)) == 0) {
				rc = cfg_fail(x, e, "duplicate prefix %s",
					      config_setting_get_string(e));
				goto out;
			}
	}
out:
	return rc;
}

/* ------------------------------------------------------------------ */
/* identity { cert key bundle }                                        */

static int cfg_file_key(struct cfg_ctx *x, const config_setting_t *s, char **out)
{
	const char *v, *bad;
	int rc;

	rc = cfg_get_string(x, s, &v);
	if (rc == 0) {
		bad = v[0] ? cfg_why_path(v) : "must not be empty";
		rc = bad ? cfg_bad_value(x, s, v, bad) : cfg_dup(x, v, out);
	}
	return rc;
}

static int cfg_id_cert(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return cfg_file_key(x, s, &((struct cfg_state *)obj)->c->cert);
}

static int cfg_id_key(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return cfg_file_key(x, s, &((struct cfg_state *)obj)->c->key);
}

static int cfg_id_bundle(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return cfg_file_key(x, s, &((struct cfg_state *)obj)->c->bundle);
}

static const struct cfg_key cfg_identity_keys[] = {
	{"cert", cfg_id_cert},
	{"key", cfg_id_key},
	{"bundle", cfg_id_bundle},
};

static int cfg_identity(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct config *c = ((struct cfg_state *)obj)->c;
	int rc, n;

	rc = cfg_walk(x, s, cfg_identity_keys, ARRAY_SIZE(cfg_identity_keys), obj);
	if (rc < 0)
		goto out;
	/* An empty group is "no identity"; half of one is a mistake. */
	n = !!c->cert + !!c->key + !!c->bundle;
	if (n != 0 && n != 3)
		rc = cfg_fail(x, s, "cert, key and bundle go together; missing%s%s%s",
			      c->cert ? "" : " cert", c->key ? "" : " key",
			      c->bundle ? "" : " bundle");
out:
	return rc;
}

/* ------------------------------------------------------------------ */
/* inbound { mtls; ports = ( { port; mtls; } ); exclude_ports = [ ] } */

static const struct cfg_enum cfg_mtls_names[] = {
	{"strict", CONFIG_MTLS_STRICT},
	{"permissive", CONFIG_MTLS_PERMISSIVE},
	{"disable", CONFIG_MTLS_DISABLE},
};

static int cfg_mtls(struct cfg_ctx *x, const config_setting_t *s, enum config_mtls *out)
{
	int v = 0, rc;

	rc = cfg_get_enum(x, s, cfg_mtls_names, ARRAY_SIZE(cfg_mtls_names), &v);
	if (rc == 0)
		*out = (enum config_mtls)v;
	return rc;
}

static int cfg_inport_port(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	long long v;
	int rc;

	rc = cfg_get_int(x, s, 1, 65535, &v);
	if (rc == 0)
		((struct config_port_mtls *)obj)->port = (uint16_t)v;
	return rc;
}

static int cfg_inport_mtls(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return cfg_mtls(x, s, &((struct config_port_mtls *)obj)->mtls);
}

static const struct cfg_key cfg_inport_keys[] = {
	{"port", cfg_inport_port},
	{"mtls", cfg_inport_mtls},
};

static int cfg_in_mtls(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct cfg_state *st = obj;

	st->mtls_set = 1;
	return cfg_mtls(x, s, &st->c->inbound_mtls);
}

static int cfg_in_ports(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct config *c = ((struct cfg_state *)obj)->c;
	struct config_port_mtls *p;
	size_t i, j, n;
	int rc;

	rc = cfg_get_group_list(x, s, &n);
	if (rc < 0 || n == 0)
		goto out;
	c->inbound_ports = calloc(n, sizeof(*c->inbound_ports));
	if (!c->inbound_ports) {
		rc = cfg_oom(x);
		goto out;
	}
	c->n_inbound_ports = n;
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

		p = &c->inbound_ports[i];
		rc = cfg_walk(x, e, cfg_inport_keys, ARRAY_SIZE(cfg_inport_keys), p);
		if (rc == 0)
			rc = cfg_require(x, e, "port");
		if (rc == 0)
			rc = cfg_require(x, e, "mtls");
		if (rc < 0)
			goto out;
		for (j = 0; j < i; j++)
			if (c->inbound_ports[j].port == p->port) {
				rc = cfg_fail(x, config_setting_get_member(e, "port"),
					      "duplicate port %u (also in inbound.ports[%zu])",
					      p->port, j);
				goto out;
			}
	}
out:
	return rc;
}

static int cfg_in_exclude(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct config *c = ((struct cfg_state *)obj)->c;

	return cfg_port_list(x, s, &c->inbound_exclude_ports, &c->n_inbound_exclude_ports);
}

static const struct cfg_key cfg_inbound_keys[] = {
	{"mtls", cfg_in_mtls},
	{"ports", cfg_in_ports},
	{"exclude_ports", cfg_in_exclude},
};

static int cfg_inbound(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return cfg_walk(x, s, cfg_inbound_keys, ARRAY_SIZE(cfg_inbound_keys), obj);
}

/* ------------------------------------------------------------------ */
/* outbound { mesh_networks; egress; egress_allow = ( { cidr; ports } ) } */

static int cfg_eg_cidr(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return cfg_cidr(x, s, &((struct config_egress_rule *)obj)->cidr);
}

static int cfg_eg_ports(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct config_egress_rule *r = obj;

	return cfg_port_list(x, s, &r->ports, &r->n_ports);
}

static const struct cfg_key cfg_egress_rule_keys[] = {
	{"cidr", cfg_eg_cidr},
	{"ports", cfg_eg_ports},
};

static int cfg_out_mesh(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct cfg_state *st = obj;

	/* An explicit [ ] means "nothing is in the mesh": keep it empty. */
	st->mesh_set = 1;
	return cfg_cidr_list(x, s, &st->c->mesh_networks, &st->c->n_mesh_networks);
}

static int cfg_out_egress(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	static const struct cfg_enum names[] = {{"allow", 1}, {"deny", 0}};

	return cfg_get_enum(x, s, names, ARRAY_SIZE(names),
			    &((struct cfg_state *)obj)->c->egress_allow_all);
}

static int cfg_out_egress_allow(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct config *c = ((struct cfg_state *)obj)->c;
	size_t i, n;
	int rc;

	rc = cfg_get_group_list(x, s, &n);
	if (rc < 0 || n == 0)
		goto out;
	c->egress_allow = calloc(n, sizeof(*c->egress_allow));
	if (!c->egress_allow) {
		rc = cfg_oom(x);
		goto out;
	}
	c->n_egress_allow = n;
	for (i = 0; i < n && rc == 0; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

		rc = cfg_walk(x, e, cfg_egress_rule_keys, ARRAY_SIZE(cfg_egress_rule_keys),
			      &c->egress_allow[i]);
		if (rc == 0)
			rc = cfg_require(x, e, "cidr");
	}
out:
	return rc;
}

static const struct cfg_key cfg_outbound_keys[] = {
	{"mesh_networks", cfg_out_mesh},
	{"egress", cfg_out_egress},
	{"egress_allow", cfg_out_egress_allow},
};

static int cfg_outbound(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return cfg_walk(x, s, cfg_outbound_keys, ARRAY_SIZE(cfg_outbound_keys), obj);
}

/* ------------------------------------------------------------------ */
/* services = ( { name; port; identity; endpoints } )                   */

static int cfg_name(struct cfg_ctx *x, const config_setting_t *s, char **out)
{
	const char *v, *bad;
	int rc;

	rc = cfg_get_string(x, s, &v);
	if (rc == 0) {
		bad = v[0] ? cfg_why_name(v) : "must not be empty";
		rc = bad ? cfg_bad_value(x, s, v, bad) : cfg_dup(x, v, out);
	}
	return rc;
}

static int cfg_svc_name(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return cfg_name(x, s, &((struct config_service *)obj)->name);
}

static int cfg_svc_port(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	long long v;
	int rc;

	rc = cfg_get_int(x, s, 1, 65535, &v);
	if (rc == 0)
		((struct config_service *)obj)->port = (uint16_t)v;
	return rc;
}

static int cfg_svc_identity(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	const char *v, *bad;
	int rc;

	rc = cfg_get_string(x, s, &v);
	if (rc == 0) {
		bad = cfg_why_identity(v);
		rc = bad ? cfg_fail(x, s, "%s %s", CFG_Q(v), bad)
			 : cfg_dup(x, v, &((struct config_service *)obj)->identity);
	}
	return rc;
}

static int cfg_svc_endpoints(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct config_service *svc = obj;
	const char *v;
	size_t i, j, n;
	int rc;

	rc = cfg_get_seq(x, s, &n);
	if (rc < 0)
		goto out;
	if (n == 0) {
		rc = cfg_fail(x, s, "at least one endpoint is required");
		goto out;
	}
	svc->endpoints = calloc(n, sizeof(*svc->endpoints));
	if (!svc->endpoints) {
		rc = cfg_oom(x);
		goto out;
	}
	svc->n_endpoints = n;
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

		rc = cfg_get_string(x, e, &v);
		if (rc < 0)
			goto out;
		if (config_parse_hostport(v, &svc->endpoints[i]) < 0) {
			rc = cfg_fail(x, e,
				      "%s is not an address like 10.1.2.3:8080 or "
				      "[fd00::1]:8080",
				      CFG_Q(v));
			goto out;
		}
		for (j = 0; j < i; j++)
			if (memcmp(&svc->endpoints[j], &svc->endpoints[i],
				   sizeof(*svc->endpoints)) == 0) {
				rc = cfg_fail(x, e, "duplicate endpoint %s", CFG_Q(v));
				goto out;
			}
	}
out:
	return rc;
}

static const struct cfg_key cfg_service_keys[] = {
	{"name", cfg_svc_name},
	{"port", cfg_svc_port},
	{"identity", cfg_svc_identity},
	{"endpoints", cfg_svc_endpoints},
};

static int cfg_services(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct config *c = ((struct cfg_state *)obj)->c;
	struct config_service *svc;
	size_t i, j, n;
	int rc;

	rc = cfg_get_group_list(x, s, &n);
	if (rc < 0 || n == 0)
		goto out;
	c->services = calloc(n, sizeof(*c->services));
	if (!c->services) {
		rc = cfg_oom(x);
		goto out;
	}
	c->n_services = n;
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

		svc = &c->services[i];
		rc = cfg_walk(x, e, cfg_service_keys, ARRAY_SIZE(cfg_service_keys), svc);
		if (rc == 0)
			rc = cfg_require(x, e, "name");
		if (rc == 0)
			rc = cfg_require(x, e, "port");
		if (rc == 0)
			rc = cfg_require(x, e, "endpoints");
		if (rc < 0)
			goto out;
		for (j = 0; j < i; j++)
			if (strcmp(c->services[j].name, svc->name) == 0) {
				rc = cfg_fail(x, config_setting_get_member(e, "name"),
					      "duplicate service name %s (also services[%zu])",
					      CFG_Q(svc->name), j);
				goto out;
			}
	}
out:
	return rc;
}

/* ------------------------------------------------------------------ */
/* policies = ( { name; action; ports; principals; ... } )              */

static int cfg_pol_name(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return cfg_name(x, s, &((struct config_policy *)obj)->name);
}

static int cfg_pol_action(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	static const struct cfg_enum names[] = {
		{"allow", CONFIG_ACTION_ALLOW},
		{"deny", CONFIG_ACTION_DENY},
		{"audit", CONFIG_ACTION_AUDIT},
	};
	int v = 0, rc;

	rc = cfg_get_enum(x, s, names, ARRAY_SIZE(names), &v);
	if (rc == 0)
		((struct config_policy *)obj)->action = (enum config_action)v;
	return rc;
}

static int cfg_pol_ports(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct config_policy *p = obj;

	return cfg_port_list(x, s, &p->ports, &p->n_ports);
}

static int cfg_pol_unauth(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return cfg_get_bool(x, s, &((struct config_policy *)obj)->unauthenticated);
}

/*
 * The policy engine's own pattern check, so that whatever it would refuse
 * at load is reported here with file:line.  Config loading is
 * single-threaded; the buffer holds one message at a time.
 */
static const char *cfg_why_pattern(enum policy_pattern_kind kind, const char *v,
				   const char *(*first)(const char *))
{
	static char why[256];
	const char *w = first(v);

	if (w)
		return w;
	if (policy_check_pattern(kind, v, why, sizeof(why)) < 0)
		return why;
	return NULL;
}

static const char *cfg_why_pol_principal(const char *v)
{
	return cfg_why_pattern(PATTERN_PRINCIPAL, v, cfg_why_principal);
}

static const char *cfg_why_pol_namespace(const char *v)
{
	return cfg_why_pattern(PATTERN_NAMESPACE, v, cfg_why_namespace);
}

static const char *cfg_why_pol_method(const char *v)
{
	return cfg_why_pattern(PATTERN_METHOD, v, cfg_why_method);
}

static const char *cfg_why_pol_path(const char *v)
{
	return cfg_why_pattern(PATTERN_PATH, v, cfg_why_http_path);
}

static const char *cfg_why_pol_host(const char *v)
{
	return cfg_why_pattern(PATTERN_HOST, v, cfg_why_host);
}

/* The string-list keys of a policy, by where they land in the struct. */
static const struct cfg_strlist {
	const char *key;
	size_t off_v, off_n;
	const char *(*why)(const char *);
} cfg_policy_lists[] = {
	{"principals", offsetof(struct config_policy, principals),
	 offsetof(struct config_policy, n_principals), cfg_why_pol_principal},
	{"namespaces", offsetof(struct config_policy, namespaces),
	 offsetof(struct config_policy, n_namespaces), cfg_why_pol_namespace},
	{"methods", offsetof(struct config_policy, methods),
	 offsetof(struct config_policy, n_methods), cfg_why_pol_method},
	{"paths", offsetof(struct config_policy, paths), offsetof(struct config_policy, n_paths),
	 cfg_why_pol_path},
	{"hosts", offsetof(struct config_policy, hosts), offsetof(struct config_policy, n_hosts),
	 cfg_why_pol_host},
};

static int cfg_pol_list(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	const struct cfg_strlist *l = cfg_policy_lists;
	char *base = obj;

	while (strcmp(l->key, config_setting_name(s)) != 0)
		l++;
	return cfg_string_list(x, s, l->why, (char ***)(void *)(base + l->off_v),
			       (size_t *)(void *)(base + l->off_n));
}

static const struct cfg_key cfg_policy_keys[] = {
	{"name", cfg_pol_name},
	{"action", cfg_pol_action},
	{"ports", cfg_pol_ports},
	{"principals", cfg_pol_list},
	{"namespaces", cfg_pol_list},
	{"methods", cfg_pol_list},
	{"paths", cfg_pol_list},
	{"hosts", cfg_pol_list},
	{"unauthenticated", cfg_pol_unauth},
};

static int cfg_policies(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct config *c = ((struct cfg_state *)obj)->c;
	struct config_policy *p;
	size_t i, j, n;
	int rc;

	rc = cfg_get_group_list(x, s, &n);
	if (rc < 0 || n == 0)
		goto out;
	c->policies = calloc(n, sizeof(*c->policies));
	if (!c->policies) {
		rc = cfg_oom(x);
		goto out;
	}
	c->n_policies = n;
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

		p = &c->policies[i];
		rc = cfg_walk(x, e, cfg_policy_keys, ARRAY_SIZE(cfg_policy_keys), p);
		if (rc == 0)
			rc = cfg_require(x, e, "name");
		/* No default action: a rule that allows by omission is a hole. */
		if (rc == 0)
			rc = cfg_require(x, e, "action");
		if (rc < 0)
			goto out;
		for (j = 0; j < i; j++)
			if (strcmp(c->policies[j].name, p->name) == 0) {
				rc = cfg_fail(x, config_setting_get_member(e, "name"),
					      "duplicate policy name %s (also policies[%zu])",
					      CFG_Q(p->name), j);
				goto out;
			}
	}
out:
	return rc;
}

/* ------------------------------------------------------------------ */
/* Top-level scalars                                                   */

static int cfg_trust_domain(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	const char *v, *bad;
	int rc;

	rc = cfg_get_string(x, s, &v);
	if (rc == 0) {
		bad = v[0] ? cfg_why_trust_domain(v) : "must not be empty";
		rc = bad ? cfg_bad_value(x, s, v, bad)
			 : cfg_dup(x, v, &((struct cfg_state *)obj)->c->trust_domain);
	}
	return rc;
}

static int cfg_runtime_dir(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	/* <runtime_dir>/handoff.sock must fit in sun_path with its NUL. */
	const size_t max =
		sizeof(((struct sockaddr_un *)0)->sun_path) - sizeof("/" LDM_HANDOFF_SOCK);
	const char *v, *bad = NULL;
	int rc;

	rc = cfg_get_string(x, s, &v);
	if (rc < 0)
		goto out;
	/* The shim in every app must find the same sockets: no relative path. */
	if (v[0] != '/')
		bad = "must be an absolute path";
	else if (strlen(v) > max)
		bad = "is too long for a Unix socket path";
	else
		bad = cfg_why_path(v);
	if (bad)
		rc = cfg_fail(x, s, "%s %s", CFG_Q(v), bad);
	else
		rc = cfg_dup(x, v, &((struct cfg_state *)obj)->c->runtime_dir);
out:
	return rc;
}

static int cfg_admin_addr(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct ldm_addr a;
	const char *v;
	int rc;

	rc = cfg_get_string(x, s, &v);
	if (rc < 0)
		goto out;
	if (v[0] && config_parse_hostport(v, &a) < 0) {
		rc = cfg_fail(x, s,
			      "%s is not an address like 0.0.0.0:4191 or [::]:4191 "
			      "(\"\" disables the admin listener)",
			      CFG_Q(v));
		goto out;
	}
	rc = cfg_dup(x, v, &((struct cfg_state *)obj)->c->admin_addr);
out:
	return rc;
}

static int cfg_policy_default(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	static const struct cfg_enum names[] = {{"allow", 0}, {"deny", 1}};

	return cfg_get_enum(x, s, names, ARRAY_SIZE(names),
			    &((struct cfg_state *)obj)->c->default_deny);
}

static const struct cfg_tunable {
	const char *key;
	size_t off;
	long long min, max;
} cfg_tunables[] = {
	{"workers", offsetof(struct config, workers), 1, 64},
	{"connect_timeout_ms", offsetof(struct config, connect_timeout_ms), 1, 3600000},
	{"idle_timeout_ms", offsetof(struct config, idle_timeout_ms), 0, INT_MAX},
	{"http_head_timeout_ms", offsetof(struct config, http_head_timeout_ms), 0, 3600000},
	{"drain_timeout_ms", offsetof(struct config, drain_timeout_ms), 0, INT_MAX},
	{"buffer_size", offsetof(struct config, buffer_size), 4096, 1048576},
	/* 2^24 leaves room for a generation in a 64-bit io_uring user_data. */
	{"max_connections", offsetof(struct config, max_connections), 1, 1 << 24},
};

static int cfg_tunable(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	const struct cfg_tunable *t = cfg_tunables;
	char *base = (char *)((struct cfg_state *)obj)->c;
	long long v;
	int rc;

	while (strcmp(t->key, config_setting_name(s)) != 0)
		t++;
	rc = cfg_get_int(x, s, t->min, t->max, &v);
	if (rc == 0 && t->off == offsetof(struct config, workers) && v > 1)
		/* Said plainly rather than silently running one loop. */
		return cfg_errf(x,
				"%s:%d: workers: this release runs one event loop per "
				"daemon; set workers = 1",
				x->name, config_setting_source_line(s));
	if (rc == 0)
		*(int *)(void *)(base + t->off) = (int)v;
	return rc;
}

static int cfg_io_backend(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	static const struct cfg_enum names[] = {
		{"auto", CONFIG_IO_AUTO},
		{"io_uring", CONFIG_IO_URING},
		{"epoll", CONFIG_IO_EPOLL},
	};
	int v = 0, rc;

	rc = cfg_get_enum(x, s, names, ARRAY_SIZE(names), &v);
	if (rc == 0)
		((struct cfg_state *)obj)->c->io_backend = (enum config_io)v;
	return rc;
}

static int cfg_allowed_uids(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct config *c = ((struct cfg_state *)obj)->c;
	size_t i, j, n;
	long long v;
	int rc;

	rc = cfg_get_seq(x, s, &n);
	if (rc < 0 || n == 0)
		goto out;
	c->allowed_uids = calloc(n, sizeof(*c->allowed_uids));
	if (!c->allowed_uids) {
		rc = cfg_oom(x);
		goto out;
	}
	c->n_allowed_uids = n;
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

		/* (uid_t)-1 means "no uid" to the kernel, never a real user. */
		rc = cfg_get_int(x, e, 0, (long long)UINT32_MAX - 1, &v);
		if (rc < 0)
			goto out;
		for (j = 0; j < i; j++)
			if (c->allowed_uids[j] == (uid_t)v) {
				rc = cfg_fail(x, e, "duplicate uid %lld", v);
				goto out;
			}
		c->allowed_uids[i] = (uid_t)v;
	}
out:
	return rc;
}

static int cfg_access_log(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct config *c = ((struct cfg_state *)obj)->c;
	const char *v, *bad;
	int rc;

	rc = cfg_get_string(x, s, &v);
	if (rc < 0)
		goto out;
	if (c->access_log) /* top-level access_log and telemetry.access_log */
		return cfg_fail(x, s, "access_log is set twice");
	if (v[0] == '\0' || strcmp(v, "off") == 0) /* off, like an absent key */
		goto out;
	bad = cfg_why_path(v);
	rc = bad ? cfg_bad_value(x, s, v, bad) : cfg_dup(x, v, &c->access_log);
out:
	return rc;
}

/* telemetry = { http = true; access_log = "off"; max_series = 1000; } */
static int cfg_tel_http(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return cfg_get_bool(x, s, &((struct cfg_state *)obj)->c->http_metrics);
}

static int cfg_tel_max_series(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	long long v;
	int rc = cfg_get_int(x, s, 16, 100000, &v);

	if (rc == 0)
		((struct cfg_state *)obj)->c->max_series = (int)v;
	return rc;
}

static const struct cfg_key cfg_telemetry_keys[] = {
	{"http", cfg_tel_http},
	{"access_log", cfg_access_log},
	{"max_series", cfg_tel_max_series},
};

static int cfg_telemetry(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return cfg_walk(x, s, cfg_telemetry_keys, ARRAY_SIZE(cfg_telemetry_keys), obj);
}

static int cfg_log_level(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	static const struct cfg_enum names[] = {
		{"error", 0},
		{"warn", 1},
		{"info", 2},
		{"debug", 3},
	};

	return cfg_get_enum(x, s, names, ARRAY_SIZE(names),
			    &((struct cfg_state *)obj)->c->log_level);
}

static const struct cfg_key cfg_top_keys[] = {
	{"trust_domain", cfg_trust_domain},
	{"runtime_dir", cfg_runtime_dir},
	{"admin_addr", cfg_admin_addr},
	{"identity", cfg_identity},
	{"inbound", cfg_inbound},
	{"outbound", cfg_outbound},
	{"services", cfg_services},
	{"policies", cfg_policies},
	{"policy_default", cfg_policy_default},
	{"workers", cfg_tunable},
	{"io_backend", cfg_io_backend},
	{"connect_timeout_ms", cfg_tunable},
	{"idle_timeout_ms", cfg_tunable},
	{"http_head_timeout_ms", cfg_tunable},
	{"drain_timeout_ms", cfg_tunable},
	{"buffer_size", cfg_tunable},
	{"max_connections", cfg_tunable},
	{"allowed_uids", cfg_allowed_uids},
	{"access_log", cfg_access_log},
	{"telemetry", cfg_telemetry},
	{"log_level", cfg_log_level},
};

/* ------------------------------------------------------------------ */
/* Whole config                                                        */

static const char *const cfg_default_mesh[] = {
	"10.0.0.0/8",
	"172.16.0.0/12",
	"192.168.0.0/16",
	"fd00::/8",
};

static int cfg_defaults(struct cfg_ctx *x, struct cfg_state *st)
{
	struct config *c = st->c;
	size_t i;
	int rc = 0;

	if (!c->trust_domain)
		rc = cfg_dup(x, "cluster.local", &c->trust_domain);
	if (rc == 0 && !c->runtime_dir)
		rc = cfg_dup(x, LDM_DEFAULT_RUNTIME_DIR, &c->runtime_dir);
	if (rc == 0 && !c->admin_addr)
		rc = cfg_dup(x, "0.0.0.0:4191", &c->admin_addr);
	if (rc == 0 && !st->mesh_set) {
		c->mesh_networks = calloc(ARRAY_SIZE(cfg_default_mesh), sizeof(*c->mesh_networks));
		if (!c->mesh_networks) {
			rc = cfg_oom(x);
		} else {
			c->n_mesh_networks = ARRAY_SIZE(cfg_default_mesh);
			for (i = 0; i < ARRAY_SIZE(cfg_default_mesh); i++)
				config_parse_cidr(cfg_default_mesh[i], &c->mesh_networks[i]);
		}
	}
	/* Zero trust once there is an identity to present; plain TCP before. */
	if (!st->mtls_set)
		c->inbound_mtls = c->cert ? CONFIG_MTLS_STRICT : CONFIG_MTLS_DISABLE;
	return rc;
}

/* Settings that are valid alone but need an identity to mean anything. */
static int cfg_cross_check(struct cfg_ctx *x, struct cfg_state *st)
{
	static const char need[] = "needs identity { cert; key; bundle; } for mTLS";
	const struct config *c = st->c;
	const config_setting_t *in, *list, *e;
	size_t i;
	int rc = 0;

	if (c->cert)
		goto out;
	in = config_setting_get_member(st->root, "inbound");
	if (c->inbound_mtls != CONFIG_MTLS_DISABLE) {
		rc = cfg_fail(x, in ? config_setting_get_member(in, "mtls") : NULL, "%s %s",
			      cfg_mtls_names[c->inbound_mtls].name, need);
		goto out;
	}
	list = in ? config_setting_get_member(in, "ports") : NULL;
	for (i = 0; i < c->n_inbound_ports; i++) {
		if (c->inbound_ports[i].mtls == CONFIG_MTLS_DISABLE)
			continue;
		e = list ? config_setting_get_elem(list, (unsigned)i) : NULL;
		rc = cfg_fail(x, e ? config_setting_get_member(e, "mtls") : NULL, "%s %s",
			      cfg_mtls_names[c->inbound_ports[i].mtls].name, need);
		goto out;
	}
	list = config_setting_get_member(st->root, "services");
	for (i = 0; i < c->n_services; i++) {
		if (!c->services[i].identity)
			continue;
		e = list ? config_setting_get_elem(list, (unsigned)i) : NULL;
		rc = cfg_fail(x, e ? config_setting_get_member(e, "identity") : NULL,
			      "pinning a server identity %s", need);
		goto out;
	}
out:
	return rc;
}

static int cfg_build(struct cfg_ctx *x, const config_setting_t *root, struct config *c)
{
	struct cfg_state st = {.c = c, .root = root};
	int rc;

	c->inbound_mtls = CONFIG_MTLS_DISABLE;
	c->egress_allow_all = 1;
	c->workers = 1;
	c->io_backend = CONFIG_IO_AUTO;
	c->connect_timeout_ms = 10000;
	c->idle_timeout_ms = 3600000;
	c->http_head_timeout_ms = 30000;
	c->drain_timeout_ms = 30000;
	c->buffer_size = 32768;
	c->max_connections = 100000;
	c->log_level = 2;
	c->http_metrics = 1;
	c->max_series = 1000;

	rc = cfg_walk(x, root, cfg_top_keys, ARRAY_SIZE(cfg_top_keys), &st);
	if (rc == 0)
		rc = cfg_defaults(x, &st);
	if (rc == 0)
		rc = cfg_cross_check(x, &st);
	return rc;
}

/*
 * What libconfig 1.5 gets wrong, found with its own lexical rules (three
 * comment styles, strings with escapes, names, numbers) before it parses:
 *  - an integer literal that does not fit its type is silently wrapped
 *    ("port = 4294975488" reads as 8192);
 *  - @include makes the parser open other files;
 *  - a string where the grammar has no room for one ("name "x";",
 *    "{ "x" }") is a syntax error at which the parser leaks the string.
 *    Strings are only ever values: after = or :, after [ or (, after a
 *    comma inside [ ] or ( ), or after another string (concatenation).
 *    Anything else is a syntax error libconfig would report at that very
 *    token, so we report it instead and never hand libconfig the text.
 */
struct cfg_scan {
	unsigned include_line; /* first @include, 0 if none */
	unsigned string_line; /* first misplaced string, 0 if none */
	unsigned overflow_line; /* first out-of-range literal, 0 if none */
	char overflow[40]; /* that literal, truncated */
};

/* Bracket nesting tracked for the string rule; deeper is given the benefit. */
#define CFG_SCAN_DEPTH 256

/* prev: the previous token, '=' for = or :, 's' string, 'n' name or number. */
static int cfg_string_ok(char prev, char ctx)
{
	return prev == '=' || prev == '[' || prev == '(' || prev == 's' ||
	       (prev == ',' && (ctx == '[' || ctx == '(' || ctx == '?'));
}

static int cfg_isdigit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static int cfg_isalpha(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static int cfg_hexval(char ch)
{
	if (cfg_isdigit(ch))
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static const char *cfg_scan_number(const char *p, unsigned line, struct cfg_scan *sc)
{
	const char *start = p;
	unsigned long long v = 0, limit;
	int neg = 0, big = 0, d;

	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		/* Hex is a bit pattern: 0xFFFFFFFF is -1, more does not fit. */
		for (p += 2; (d = cfg_hexval(*p)) >= 0; p++) {
			big |= v > (ULLONG_MAX >> 4);
			v = (v << 4) | (unsigned)d;
		}
		limit = *p == 'L' ? ULLONG_MAX : 0xffffffffULL;
	} else {
		for (; cfg_isdigit(*p); p++) {
			big |= v > (ULLONG_MAX - 9) / 10;
			v = v * 10 + (unsigned)(*p - '0');
		}
		if (*p == '.' || *p == 'e' || *p == 'E') {
			/* A float: libconfig reads it with strtod, nothing wraps. */
			while (cfg_isdigit(*p) || *p == '.' || *p == 'e' || *p == 'E' ||
			       ((*p == '+' || *p == '-') && (p[-1] == 'e' || p[-1] == 'E')))
				p++;
			return p;
		}
		if (*p == 'L')
			limit = neg ? (unsigned long long)LLONG_MAX + 1 : LLONG_MAX;
		else
			limit = neg ? (unsigned long long)INT_MAX + 1 : INT_MAX;
	}
	if ((big || v > limit) && !sc->overflow_line) {
		sc->overflow_line = line;
		snprintf(sc->overflow, sizeof(sc->overflow), "%.*s",
			 (int)(p - start < 32 ? p - start : 32), start);
	}
	return p;
}

static void cfg_prescan(const char *p, struct cfg_scan *sc)
{
	char stack[CFG_SCAN_DEPTH], prev = 0, ctx;
	size_t depth = 0;
	unsigned line = 1;

	while (*p && !sc->include_line && !sc->string_line) {
		ctx = depth == 0 ? 0 : depth > CFG_SCAN_DEPTH ? '?' : stack[depth - 1];
		if (*p == '\n' || *p == ' ' || *p == '\t' || *p == '\r' || *p == '\f') {
			line += *p == '\n';
			p++;
		} else if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
			while (*p && *p != '\n')
				p++;
		} else if (p[0] == '/' && p[1] == '*') {
			for (p += 2; *p && !(p[0] == '*' && p[1] == '/'); p++)
				line += *p == '\n';
			p += *p ? 2 : 0;
		} else if (*p == '"') {
			if (!cfg_string_ok(prev, ctx))
				sc->string_line = line;
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && p[1])
					p++;
				line += *p == '\n';
			}
			p += *p ? 1 : 0;
			prev = 's';
		} else if (*p == '@') {
			if (strncmp(p, "@include", 8) == 0)
				sc->include_line = line;
			p++;
			prev = '?';
		} else if (cfg_isalpha(*p) || *p == '*') {
			/* A name or true/false: its digits are not numbers. */
			for (p++; cfg_isalpha(*p) || cfg_isdigit(*p) || *p == '-' || *p == '_' ||
				  *p == '*';
			     p++)
				;
			prev = 'n';
		} else if (cfg_isdigit(*p) || ((*p == '-' || *p == '+' || *p == '.') &&
					       (cfg_isdigit(p[1]) || p[1] == '.'))) {
			p = cfg_scan_number(p, line, sc);
			prev = 'n';
		} else if (*p == '[' || *p == '(' || *p == '{') {
			if (depth < CFG_SCAN_DEPTH)
				stack[depth] = *p;
			depth++;
			prev = *p++;
		} else if (*p == ']' || *p == ')' || *p == '}') {
			depth -= depth > 0;
			prev = *p++;
		} else {
			prev = *p == ':' ? '=' : *p;
			p++;
		}
	}
}

/*
 * Parses one text.  name is used in messages; keep_name stores it as
 * config->file (the built-in default has none).
 */
static struct config *cfg_parse_text(const char *text, const char *name, int keep_name, char *err,
				     size_t errlen)
{
	struct cfg_ctx x = {name ? name : CFG_STRING_NAME, err, errlen};
	struct cfg_scan sc;
	struct config *c = NULL;
	config_t lc;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (!text) {
		cfg_errf(&x, "%s: no configuration text", x.name);
		goto out;
	}
	memset(&sc, 0, sizeof(sc));
	cfg_prescan(text, &sc);
	if (sc.include_line) {
		cfg_errf(&x,
			 "%s:%u: @include is not supported: one file holds the whole "
			 "configuration",
			 x.name, sc.include_line);
		goto out;
	}
	if (sc.string_line) {
		cfg_errf(&x,
			 "%s:%u: syntax error: unexpected string; strings are "
			 "values, as in key = \"value\";",
			 x.name, sc.string_line);
		goto out;
	}
	config_init(&lc);
	if (!config_read_string(&lc, text)) {
		cfg_errf(&x, "%s:%d: %s", config_error_file(&lc) ? config_error_file(&lc) : x.name,
			 config_error_line(&lc),
			 config_error_text(&lc) ? config_error_text(&lc) : "parse error");
		goto out_destroy;
	}
	if (sc.overflow_line) {
		cfg_errf(&x,
			 "%s:%u: integer %s is out of range (32-bit integers, or a "
			 "64-bit one with an L suffix)",
			 x.name, sc.overflow_line, sc.overflow);
		goto out_destroy;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		cfg_oom(&x);
		goto out_destroy;
	}
	if (keep_name && name && !(c->file = strdup(name))) {
		cfg_oom(&x);
		goto err_free;
	}
	rc = cfg_build(&x, config_root_setting(&lc), c);
	if (rc < 0)
		goto err_free;
	goto out_destroy;

err_free:
	config_free(c);
	c = NULL;
out_destroy:
	config_destroy(&lc);
out:
	return c;
}

struct config *config_parse(const char *text, const char *name, char *err, size_t errlen)
{
	return cfg_parse_text(text, name, 1, err, errlen);
}

/* Reads the whole file; the limit turns /dev/zero into an error, not a hang. */
static int cfg_read_file(const char *file, char **out, size_t *outlen)
{
	size_t len = 0, cap = 0;
	char *buf = NULL, *nb;
	ssize_t n;
	int fd, rc = 0;

	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 16384;
			if (cap > CFG_MAX_FILE + 1)
				cap = CFG_MAX_FILE + 1;
			if (cap - len == 0) {
				rc = -EFBIG;
				goto err_free;
			}
			nb = realloc(buf, cap + 1);
			if (!nb) {
				rc = -ENOMEM;
				goto err_free;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto err_free;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > CFG_MAX_FILE) {
		rc = -EFBIG;
		goto err_free;
	}
	/* The first turn of the loop allocated buf, with room for the NUL. */
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	goto out_close;

err_free:
	free(buf);
out_close:
	close(fd);
out:
	return rc;
}

struct config *config_load(const char *file, char *err, size_t errlen)
{
	struct cfg_ctx x = {file ? file : "(null)", err, errlen};
	struct config *c = NULL;
	const char *nul;
	char *text = NULL;
	size_t len = 0;
	unsigned line = 1;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (!file || !file[0]) {
		cfg_errf(&x, "no configuration file given");
		goto out;
	}
	rc = cfg_read_file(file, &text, &len);
	if (rc == -EFBIG) {
		cfg_errf(&x, "%s: larger than %u bytes; is this a config file?", file,
			 CFG_MAX_FILE);
		goto out;
	}
	if (rc < 0) {
		cfg_errf(&x, "cannot read %s: %s", file, strerror(-rc));
		goto out;
	}
	/* libconfig would stop at a NUL and ignore the rest without a word. */
	nul = memchr(text, '\0', len);
	if (nul) {
		for (const char *p = text; p < nul; p++)
			line += *p == '\n';
		cfg_errf(&x, "%s:%u: contains a NUL byte; is this a text file?", file, line);
		goto out_free;
	}
	c = cfg_parse_text(text, file, 1, err, errlen);
out_free:
	free(text);
out:
	return c;
}

/* Writes s as a libconfig string literal body: \" \\ and \xNN escapes. */
static void cfg_escape(const char *s, char *out)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\') {
			*out++ = '\\';
			*out++ = *s;
		} else if (cfg_is_ctl(*s)) {
			out += sprintf(out, "\\x%02x", (unsigned char)*s);
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

struct config *config_default(const char *runtime_dir, char *err, size_t errlen)
{
	static const char fmt[] =
		"trust_domain = \"cluster.local\";\n"
		"runtime_dir = \"%s\";\n"
		/* Off, so several pods on one machine do not fight over a port. */
		"admin_addr = \"\";\n"
		"inbound = { mtls = \"disable\"; };\n"
		"outbound = {\n"
		"  mesh_networks = [ \"10.0.0.0/8\", \"172.16.0.0/12\",\n"
		"                    \"192.168.0.0/16\", \"fd00::/8\" ];\n"
		"  egress = \"allow\";\n"
		"};\n";
	struct cfg_ctx x = {CFG_DEFAULT_NAME, err, errlen};
	struct config *c = NULL;
	char *esc, *text = NULL;

	if (!runtime_dir)
		runtime_dir = LDM_DEFAULT_RUNTIME_DIR;
	/* Cap before multiplying; the parser rejects long paths anyway. */
	if (strlen(runtime_dir) > 4096) {
		cfg_errf(&x, "%s: runtime_dir is too long", CFG_DEFAULT_NAME);
		goto out;
	}
	esc = malloc(strlen(runtime_dir) * 4 + 1);
	if (!esc) {
		cfg_oom(&x);
		goto out;
	}
	cfg_escape(runtime_dir, esc);
	if (asprintf(&text, fmt, esc) < 0) {
		text = NULL;
		cfg_oom(&x);
		goto out_esc;
	}
	c = cfg_parse_text(text, CFG_DEFAULT_NAME, 0, err, errlen);
	free(text);
out_esc:
	free(esc);
out:
	return c;
}

static void cfg_strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

void config_free(struct config *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; c->services && i < c->n_services; i++) {
		free(c->services[i].name);
		free(c->services[i].identity);
		free(c->services[i].endpoints);
	}
	free(c->services);
	for (i = 0; c->policies && i < c->n_policies; i++) {
		struct config_policy *p = &c->policies[i];

		free(p->name);
		free(p->ports);
		cfg_strv_free(p->principals, p->n_principals);
		cfg_strv_free(p->namespaces, p->n_namespaces);
		cfg_strv_free(p->methods, p->n_methods);
		cfg_strv_free(p->paths, p->n_paths);
		cfg_strv_free(p->hosts, p->n_hosts);
	}
	free(c->policies);
	for (i = 0; c->egress_allow && i < c->n_egress_allow; i++)
		free(c->egress_allow[i].ports);
	free(c->egress_allow);
	free(c->mesh_networks);
	free(c->inbound_ports);
	free(c->inbound_exclude_ports);
	free(c->allowed_uids);
	free(c->access_log);
	free(c->cert);
	free(c->key);
	free(c->bundle);
	free(c->admin_addr);
	free(c->runtime_dir);
	free(c->trust_domain);
	free(c->file);
	free(c);
}
