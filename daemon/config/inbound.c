/*
 * inbound = { mtls; ports; exclude_ports; }: mTLS mode for accepted
 * connections, per port (and opaque ports, with no HTTP layer), and the
 * listeners left outside the mesh.
 */
#include "internal.h"

#include <stdlib.h>

/* ------------------------------------------------------------------ */
/* inbound { mtls; ports = ( { port; mtls; opaque; } ); exclude_ports = [ ] } */

const struct cfg_enum cfg_mtls_names[] = {
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
	((struct config_port_mtls *)obj)->mtls_set = 1;
	return cfg_mtls(x, s, &((struct config_port_mtls *)obj)->mtls);
}

static int cfg_inport_opaque(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return cfg_get_bool(x, s, &((struct config_port_mtls *)obj)->opaque);
}

static const struct cfg_key cfg_inport_keys[] = {
	{"port", cfg_inport_port, NULL},
	{"mtls", cfg_inport_mtls, NULL},
	{"opaque", cfg_inport_opaque, NULL},
};

static const struct cfg_keyset cfg_inport_set = {
	.keys = cfg_inport_keys, .n = ARRAY_SIZE(cfg_inport_keys), .list = 1};

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
		/* An entry says something: its own mode, opaque, or both. */
		if (rc == 0 && !config_setting_get_member(e, "opaque"))
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

static int cfg_in_link_port(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	long long v;
	int rc = cfg_get_int(x, s, 0, 65535, &v);

	if (rc == 0)
		((struct cfg_state *)obj)->c->link_port = (int)v;
	return rc;
}

static const struct cfg_key cfg_inbound_keys[] = {
	{"mtls", cfg_in_mtls, NULL},
	{"ports", cfg_in_ports, &cfg_inport_set},
	{"exclude_ports", cfg_in_exclude, NULL},
	{"link_port", cfg_in_link_port, NULL},
};

const struct cfg_keyset cfg_inbound_set = {
	.keys = cfg_inbound_keys, .n = ARRAY_SIZE(cfg_inbound_keys), .list = 0};

int cfg_inbound(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return cfg_walk(x, s, cfg_inbound_keys, ARRAY_SIZE(cfg_inbound_keys), obj);
}

/*
 * Opaque ports have no HTTP layer: a policy rule that looks at requests
 * (methods, paths, hosts) and covers an opaque port could never be
 * decided there.  The rule's line is named; no reload can bring it in.
 */
int cfg_opaque_check(struct cfg_ctx *x, const config_setting_t *root, const struct config *c)
{
	const config_setting_t *list = config_setting_get_member(root, "policies");
	size_t i, j, k;

	for (i = 0; i < c->n_policies; i++) {
		const struct config_policy *p = &c->policies[i];
		const config_setting_t *e =
			list ? config_setting_get_elem(list, (unsigned)i) : NULL;
		const char *what = p->n_methods ? "methods" : p->n_paths ? "paths" : "hosts";

		if (!p->n_methods && !p->n_paths && !p->n_hosts)
			continue;
		for (j = 0; j < c->n_inbound_ports; j++) {
			int covered = p->n_ports == 0;

			if (!c->inbound_ports[j].opaque)
				continue;
			for (k = 0; k < p->n_ports; k++)
				covered |= p->ports[k] == c->inbound_ports[j].port;
			if (!covered)
				continue;
			return cfg_fail(x, e ? config_setting_get_member(e, what) : NULL,
					"HTTP conditions cannot apply to opaque port %u "
					"(inbound.ports[%zu]): its requests are not read%s",
					c->inbound_ports[j].port, j,
					p->n_ports ? "" : "; list the rule's ports");
		}
	}
	return 0;
}
