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
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/spiffe.h"
#include "policy/internal.h"

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
		out->rule = POLICY_RULE_DEFAULT_DENY;
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
		out->rule = POLICY_RULE_NO_ALLOW;
	} else if (p->default_deny) {
		out->decision = POLICY_DENY;
		out->rule = POLICY_RULE_DEFAULT_DENY;
	} else {
		out->decision = POLICY_ALLOW;
		out->rule = POLICY_RULE_DEFAULT_ALLOW;
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
		out->rule = POLICY_RULE_PER_REQUEST;
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
