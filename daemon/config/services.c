/*
 * services = ( { name; port; identity; addresses; endpoints; } ): named
 * destinations with their endpoints, the virtual addresses apps dial for
 * them (balanced over the endpoints) and an optional pinned identity.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* services = ( { name; port; identity; endpoints } )                   */

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

/* A list of "ip:port" strings, at least one, no duplicates. */
static int addr_list(struct cfg_ctx *x, const config_setting_t *s, struct ldm_addr **out,
		     size_t *count, const char *what)
{
	const char *v;
	size_t i, j, n;
	int rc;

	rc = cfg_get_seq(x, s, &n);
	if (rc < 0)
		goto out;
	if (n == 0) {
		rc = cfg_fail(x, s, "at least one %s is required", what);
		goto out;
	}
	*out = calloc(n, sizeof(**out));
	if (!*out) {
		rc = cfg_oom(x);
		goto out;
	}
	*count = n;
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

		rc = cfg_get_string(x, e, &v);
		if (rc < 0)
			goto out;
		if (config_parse_hostport(v, &(*out)[i]) < 0) {
			rc = cfg_fail(x, e,
				      "%s is not an address like 10.1.2.3:8080 or "
				      "[fd00::1]:8080",
				      CFG_Q(v));
			goto out;
		}
		for (j = 0; j < i; j++)
			if (memcmp(&(*out)[j], &(*out)[i], sizeof(**out)) == 0) {
				rc = cfg_fail(x, e, "duplicate %s %s", what, CFG_Q(v));
				goto out;
			}
	}
out:
	return rc;
}

static int cfg_svc_endpoints(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct config_service *svc = obj;

	return addr_list(x, s, &svc->endpoints, &svc->n_endpoints, "endpoint");
}

static int cfg_svc_addresses(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct config_service *svc = obj;

	return addr_list(x, s, &svc->addresses, &svc->n_addresses, "address");
}

/* split = ( { service; weight; } ) */
static int cfg_split_service(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return cfg_name(x, s, &((struct config_split *)obj)->service);
}

static int cfg_split_weight(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	long long v;
	int rc = cfg_get_int(x, s, 0, 100, &v);

	if (rc == 0)
		((struct config_split *)obj)->weight = (int)v;
	return rc;
}

static const struct cfg_key cfg_split_keys[] = {
	{"service", cfg_split_service, NULL},
	{"weight", cfg_split_weight, NULL},
};

static const struct cfg_keyset cfg_split_set = {
	.keys = cfg_split_keys, .n = ARRAY_SIZE(cfg_split_keys), .list = 1};

static int cfg_svc_split(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct config_service *svc = obj;
	size_t i, n;
	int rc, sum = 0;

	rc = cfg_get_group_list(x, s, &n);
	if (rc < 0 || n == 0)
		return rc;
	svc->splits = calloc(n, sizeof(*svc->splits));
	if (!svc->splits)
		return cfg_oom(x);
	svc->n_splits = n;
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

		rc = cfg_walk(x, e, cfg_split_keys, ARRAY_SIZE(cfg_split_keys), &svc->splits[i]);
		if (rc == 0)
			rc = cfg_require(x, e, "service");
		if (rc == 0)
			rc = cfg_require(x, e, "weight");
		if (rc < 0)
			return rc;
		sum += svc->splits[i].weight;
		if (sum > 100)
			return cfg_fail(x, e, "split weights add up to %d, more than 100", sum);
	}
	return 0;
}

static const struct cfg_key cfg_service_keys[] = {
	{"name", cfg_svc_name, NULL},		{"port", cfg_svc_port, NULL},
	{"identity", cfg_svc_identity, NULL},	{"endpoints", cfg_svc_endpoints, NULL},
	{"addresses", cfg_svc_addresses, NULL}, {"split", cfg_svc_split, &cfg_split_set},
};

const struct cfg_keyset cfg_service_set = {
	.keys = cfg_service_keys, .n = ARRAY_SIZE(cfg_service_keys), .list = 1};

/* Each split names another service that exists. */
static int splits_resolve(struct cfg_ctx *x, const struct config *c, const config_setting_t *list)
{
	size_t i, k, j;

	for (i = 0; i < c->n_services; i++) {
		const struct config_service *svc = &c->services[i];

		for (k = 0; k < svc->n_splits; k++) {
			const config_setting_t *e = config_setting_get_member(
				config_setting_get_elem(list, (unsigned)i), "split");

			e = config_setting_get_member(config_setting_get_elem(e, (unsigned)k),
						      "service");
			if (!strcmp(svc->splits[k].service, svc->name))
				return cfg_fail(x, e, "a service cannot split to itself");
			for (j = 0; j < c->n_services; j++)
				if (!strcmp(c->services[j].name, svc->splits[k].service))
					break;
			if (j == c->n_services)
				return cfg_fail(x, e, "no service named %s",
						CFG_Q(svc->splits[k].service));
		}
	}
	return 0;
}

/* A virtual address belongs to one service: the balancer must know which. */
static int address_unique(struct cfg_ctx *x, const struct config *c, size_t i,
			  const config_setting_t *list)
{
	const struct config_service *svc = &c->services[i];
	size_t a, j, k;

	for (a = 0; a < svc->n_addresses; a++)
		for (j = 0; j < i; j++)
			for (k = 0; k < c->services[j].n_addresses; k++)
				if (!memcmp(&svc->addresses[a], &c->services[j].addresses[k],
					    sizeof(svc->addresses[a])))
					return cfg_fail(x,
							config_setting_get_elem(list, (unsigned)a),
							"address also in services[%zu] (%s)", j,
							c->services[j].name);
	return 0;
}

int cfg_services(struct cfg_ctx *x, const config_setting_t *s, void *obj)
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
		rc = address_unique(x, c, i, config_setting_get_member(e, "addresses"));
		if (rc < 0)
			goto out;
	}
	rc = splits_resolve(x, c, s);
out:
	return rc;
}
