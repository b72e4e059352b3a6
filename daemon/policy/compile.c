/*
 * A validated config's `policies` compiled into one arena-allocated
 * policy_set: deny, allow and audit rules in config order.
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
