/*
 * services = ( { name; port; identity; endpoints; } ): named destinations
 * with their endpoints and an optional pinned server identity.
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
	{"name", cfg_svc_name, NULL},
	{"port", cfg_svc_port, NULL},
	{"identity", cfg_svc_identity, NULL},
	{"endpoints", cfg_svc_endpoints, NULL},
};

const struct cfg_keyset cfg_service_set = {
	.keys = cfg_service_keys, .n = ARRAY_SIZE(cfg_service_keys), .list = 1};

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
	}
out:
	return rc;
}
