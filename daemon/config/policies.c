/*
 * policies = ( { name; action; ports; principals; ... } ): authorization
 * rules, checked with the policy engine's own pattern rules.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include "config/pattern.h"

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
	{"name", cfg_pol_name, NULL},
	{"action", cfg_pol_action, NULL},
	{"ports", cfg_pol_ports, NULL},
	{"principals", cfg_pol_list, NULL},
	{"namespaces", cfg_pol_list, NULL},
	{"methods", cfg_pol_list, NULL},
	{"paths", cfg_pol_list, NULL},
	{"hosts", cfg_pol_list, NULL},
	{"unauthenticated", cfg_pol_unauth, NULL},
};

const struct cfg_keyset cfg_policy_set = {
	.keys = cfg_policy_keys, .n = ARRAY_SIZE(cfg_policy_keys), .list = 1};

int cfg_policies(struct cfg_ctx *x, const config_setting_t *s, void *obj)
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
