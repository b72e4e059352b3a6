/*
 * identity = { cert; key; bundle; }: the workload's SVID files.
 */
#include "internal.h"

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
	{"cert", cfg_id_cert, NULL},
	{"key", cfg_id_key, NULL},
	{"bundle", cfg_id_bundle, NULL},
};

const struct cfg_keyset cfg_identity_set = {
	.keys = cfg_identity_keys, .n = ARRAY_SIZE(cfg_identity_keys), .list = 0};

int cfg_identity(struct cfg_ctx *x, const config_setting_t *s, void *obj)
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
