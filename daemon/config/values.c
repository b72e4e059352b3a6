/*
 * Checks of string values shared by the sections: paths, names, trust
 * domains, SPIFFE IDs and the policy match values.  Each returns NULL when
 * the value is fine, else a phrase that follows the quoted value.
 */
#include "internal.h"

#include <string.h>

#define CFG_MAX_NAME 253

/* ------------------------------------------------------------------ */
/* Value checks: NULL when fine, else a phrase that follows the value   */

int cfg_is_ctl(char ch)
{
	return (unsigned char)ch < 0x20 || ch == 0x7f;
}

const char *cfg_why_path(const char *v)
{
	for (; *v; v++)
		if (cfg_is_ctl(*v))
			return "contains a control character";
	return NULL;
}

/* Names end up in Prometheus labels and JSON logs: nothing to escape. */
const char *cfg_why_name(const char *v)
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

const char *cfg_why_trust_domain(const char *v)
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

const char *cfg_why_identity(const char *v)
{
	return cfg_why_spiffe_id(v, 0);
}

const char *cfg_why_principal(const char *v)
{
	return cfg_why_spiffe_id(v, 1);
}

const char *cfg_why_namespace(const char *v)
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
const char *cfg_why_method(const char *v)
{
	for (; *v; v++)
		if (!((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') ||
		      (*v >= '0' && *v <= '9') || strchr("!#$%&'*+-.^_`|~", *v)))
			return "is not an HTTP method";
	return NULL;
}

const char *cfg_why_http_path(const char *v)
{
	if (v[0] != '/' && v[0] != '*')
		return "must start with '/' (or '*' for a suffix match)";
	for (; *v; v++)
		if (cfg_is_ctl(*v) || *v == ' ')
			return "contains a space or control character";
	return NULL;
}

const char *cfg_why_host(const char *v)
{
	if (strlen(v) > 255 + 6)
		return "is too long for a host";
	for (; *v; v++)
		if (cfg_is_ctl(*v) || *v == ' ' || *v == '/')
			return "is not a host: it contains a space, '/' or a control "
			       "character";
	return NULL;
}

int cfg_name(struct cfg_ctx *x, const config_setting_t *s, char **out)
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
