/*
 * SPIFFE ID parsing (https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md),
 * strict: what we issue and what we accept from peers.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ldmesh/common.h"
#include "util/spiffe.h"

static void LDM_PRINTF(3, 4) set_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!err || !len) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

/* Shows one offending byte readably, whatever it is. */
static void describe_char(unsigned char c, char *buf, size_t len)
{
	if (c >= 0x21 && c < 0x7f)
		snprintf(buf, len, "'%c'", c);
	else if (c == ' ')
		snprintf(buf, len, "a space");
	else
		snprintf(buf, len, "byte 0x%02x", c);
}

static int td_char_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static int path_char_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_';
}

/* Shared by spiffe_trust_domain_check and spiffe_id_parse: td need not be
 * NUL-terminated there. */
int spiffe_td_check_n(const char *td, size_t n, char *err, size_t len)
{
	char what[16];

	if (n == 0) {
		set_err(err, len, "trust domain is empty");
		return -EINVAL;
	}
	if (n > SPIFFE_TD_MAX) {
		set_err(err, len, "trust domain is %zu bytes long; the limit is %d", n,
			SPIFFE_TD_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)td[i];

		if (td_char_ok(c))
			continue;
		if (c >= 'A' && c <= 'Z') {
			set_err(err, len, "trust domain must be lowercase (found '%c')", c);
			return -EINVAL;
		}
		describe_char(c, what, sizeof(what));
		set_err(err, len,
			"trust domain contains %s; only lowercase letters, digits, '.', "
			"'-' and '_' are allowed",
			what);
		return -EINVAL;
	}
	return 0;
}

int spiffe_trust_domain_check(const char *td, char *err, size_t len)
{
	/* The most likely slip is passing a SPIFFE URI where a name belongs. */
	if (strncmp(td, SPIFFE_SCHEME, SPIFFE_SCHEME_LEN) == 0) {
		set_err(err, len,
			"give the trust domain without the spiffe:// prefix (e.g. "
			"\"cluster.local\")");
		return -EINVAL;
	}
	return spiffe_td_check_n(td, strlen(td), err, len);
}

int spiffe_id_parse(const char *id, struct spiffe_id *out, char *err, size_t len)
{
	size_t n = strlen(id);
	const char *td, *p, *seg;
	size_t td_len;
	char what[16];
	int rc;

	if (n == 0) {
		set_err(err, len, "SPIFFE ID is empty");
		return -EINVAL;
	}
	if (n > SPIFFE_ID_MAX) {
		set_err(err, len, "SPIFFE ID is %zu bytes long; the limit is %d", n, SPIFFE_ID_MAX);
		return -EINVAL;
	}
	if (strncmp(id, SPIFFE_SCHEME, SPIFFE_SCHEME_LEN) != 0) {
		if (strncasecmp(id, SPIFFE_SCHEME, SPIFFE_SCHEME_LEN) == 0)
			set_err(err, len, "SPIFFE ID must start with spiffe:// in lowercase");
		else
			set_err(err, len,
				"SPIFFE ID must start with spiffe:// (e.g. "
				"spiffe://cluster.local/ns/default/sa/web)");
		return -EINVAL;
	}

	/* The authority ends where the path, query or fragment starts. */
	td = id + SPIFFE_SCHEME_LEN;
	td_len = strcspn(td, "/?#");
	if (memchr(td, '@', td_len)) {
		set_err(err, len, "SPIFFE ID must not contain userinfo ('user@')");
		return -EINVAL;
	}
	if (memchr(td, ':', td_len)) {
		set_err(err, len, "SPIFFE ID must not contain a port (':')");
		return -EINVAL;
	}
	rc = spiffe_td_check_n(td, td_len, err, len);
	if (rc)
		return rc;

	p = td + td_len;
	if (*p == '?') {
		set_err(err, len, "SPIFFE ID must not contain a query ('?')");
		return -EINVAL;
	}
	if (*p == '#') {
		set_err(err, len, "SPIFFE ID must not contain a fragment ('#')");
		return -EINVAL;
	}
	if (*p == '\0') {
		set_err(err, len,
			"SPIFFE ID has no path; a workload ID looks like "
			"spiffe://%.*s/ns/NAMESPACE/sa/ACCOUNT",
			(int)td_len, td);
		return -EINVAL;
	}

	/* *p == '/': walk the segments. */
	for (seg = p + 1;; seg++) {
		const char *s = seg;

		while (*s && *s != '/') {
			unsigned char c = (unsigned char)*s;

			if (c == '?') {
				set_err(err, len, "SPIFFE ID must not contain a query ('?')");
				return -EINVAL;
			}
			if (c == '#') {
				set_err(err, len, "SPIFFE ID must not contain a fragment ('#')");
				return -EINVAL;
			}
			if (c == '%') {
				set_err(err, len,
					"path must not be percent-encoded ('%%'); only letters, "
					"digits, '.', '-' and '_' are allowed");
				return -EINVAL;
			}
			if (!path_char_ok(c)) {
				describe_char(c, what, sizeof(what));
				set_err(err, len,
					"path contains %s; only letters, digits, '.', '-' and "
					"'_' are allowed",
					what);
				return -EINVAL;
			}
			s++;
		}
		if (s == seg) {
			if (*s == '\0')
				set_err(err, len, "path must not end with '/'");
			else
				set_err(err, len, "path has an empty segment ('//')");
			return -EINVAL;
		}
		if ((s - seg == 1 && seg[0] == '.') ||
		    (s - seg == 2 && seg[0] == '.' && seg[1] == '.')) {
			set_err(err, len, "path segment '%.*s' is not allowed", (int)(s - seg),
				seg);
			return -EINVAL;
		}
		if (*s == '\0')
			break;
		seg = s;
	}

	if (out) {
		memcpy(out->trust_domain, td, td_len);
		out->trust_domain[td_len] = '\0';
		/* Bounded by the SPIFFE_ID_MAX check above. */
		snprintf(out->path, sizeof(out->path), "%s", p);
	}
	return 0;
}
