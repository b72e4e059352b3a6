/*
 * outbound = { mesh_networks; egress; egress_allow; }: which destinations
 * get mTLS and which ones the pod may reach at all.
 */
#include "internal.h"

#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

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
	{"cidr", cfg_eg_cidr, NULL},
	{"ports", cfg_eg_ports, NULL},
};

static const struct cfg_keyset cfg_egress_rule_set = {
	.keys = cfg_egress_rule_keys, .n = ARRAY_SIZE(cfg_egress_rule_keys), .list = 1};

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

/* outbound.links { enabled; max_streams_per_link; ... } */

static int cfg_links_enabled(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return cfg_get_bool(x, s, &((struct config_links *)obj)->enabled);
}

static const struct cfg_links_int {
	const char *key;
	size_t off;
	long long min, max;
} cfg_links_ints[] = {
	{"max_streams_per_link", offsetof(struct config_links, max_streams), 1, 10000},
	{"max_links_per_peer", offsetof(struct config_links, max_links), 1, 1024},
	{"idle_timeout_ms", offsetof(struct config_links, idle_timeout_ms), 0, INT_MAX},
	{"ping_interval_ms", offsetof(struct config_links, ping_interval_ms), 100, 3600000},
	{"ping_timeout_ms", offsetof(struct config_links, ping_timeout_ms), 100, 3600000},
	{"fallback_ms", offsetof(struct config_links, fallback_ms), 0, 86400000},
};

static int cfg_links_int(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	const struct cfg_links_int *t = cfg_links_ints;
	long long v;
	int rc;

	while (strcmp(t->key, config_setting_name(s)) != 0)
		t++;
	rc = cfg_get_int(x, s, t->min, t->max, &v);
	if (rc == 0)
		*(int *)(void *)((char *)obj + t->off) = (int)v;
	return rc;
}

static const struct cfg_key cfg_links_keys[] = {
	{"enabled", cfg_links_enabled, NULL},	     {"max_streams_per_link", cfg_links_int, NULL},
	{"max_links_per_peer", cfg_links_int, NULL}, {"idle_timeout_ms", cfg_links_int, NULL},
	{"ping_interval_ms", cfg_links_int, NULL},   {"ping_timeout_ms", cfg_links_int, NULL},
	{"fallback_ms", cfg_links_int, NULL},
};

static const struct cfg_keyset cfg_links_set = {
	.keys = cfg_links_keys, .n = ARRAY_SIZE(cfg_links_keys), .list = 0};

static int cfg_out_links(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct config *c = ((struct cfg_state *)obj)->c;

	return cfg_walk(x, s, cfg_links_keys, ARRAY_SIZE(cfg_links_keys), &c->links);
}

static const struct cfg_key cfg_outbound_keys[] = {
	{"links", cfg_out_links, &cfg_links_set},
	{"mesh_networks", cfg_out_mesh, NULL},
	{"egress", cfg_out_egress, NULL},
	{"egress_allow", cfg_out_egress_allow, &cfg_egress_rule_set},
};

const struct cfg_keyset cfg_outbound_set = {
	.keys = cfg_outbound_keys, .n = ARRAY_SIZE(cfg_outbound_keys), .list = 0};

int cfg_outbound(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return cfg_walk(x, s, cfg_outbound_keys, ARRAY_SIZE(cfg_outbound_keys), obj);
}
