/*
 * Top-level keys: trust domain, runtime and admin addresses, tunables,
 * telemetry, log level, and the table of every top-level key, which is also
 * where config_key_paths() starts.
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

/* ------------------------------------------------------------------ */
/* Top-level scalars                                                   */

static int cfg_trust_domain(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	const char *v, *bad;
	int rc;

	rc = cfg_get_string(x, s, &v);
	if (rc == 0) {
		bad = v[0] ? cfg_why_trust_domain(v) : "must not be empty";
		rc = bad ? cfg_bad_value(x, s, v, bad)
			 : cfg_dup(x, v, &((struct cfg_state *)obj)->c->trust_domain);
	}
	return rc;
}

static int cfg_runtime_dir(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	/* <runtime_dir>/handoff.sock must fit in sun_path with its NUL. */
	const size_t max =
		sizeof(((struct sockaddr_un *)0)->sun_path) - sizeof("/" LDM_HANDOFF_SOCK);
	const char *v, *bad = NULL;
	int rc;

	rc = cfg_get_string(x, s, &v);
	if (rc < 0)
		goto out;
	/* The shim in every app must find the same sockets: no relative path. */
	if (v[0] != '/')
		bad = "must be an absolute path";
	else if (strlen(v) > max)
		bad = "is too long for a Unix socket path";
	else
		bad = cfg_why_path(v);
	if (bad)
		rc = cfg_fail(x, s, "%s %s", CFG_Q(v), bad);
	else
		rc = cfg_dup(x, v, &((struct cfg_state *)obj)->c->runtime_dir);
out:
	return rc;
}

static int cfg_admin_addr(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct ldm_addr a;
	const char *v;
	int rc;

	rc = cfg_get_string(x, s, &v);
	if (rc < 0)
		goto out;
	if (v[0] && config_parse_hostport(v, &a) < 0) {
		rc = cfg_fail(x, s,
			      "%s is not an address like 0.0.0.0:4191 or [::]:4191 "
			      "(\"\" disables the admin listener)",
			      CFG_Q(v));
		goto out;
	}
	rc = cfg_dup(x, v, &((struct cfg_state *)obj)->c->admin_addr);
out:
	return rc;
}

static int cfg_policy_default(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	static const struct cfg_enum names[] = {{"allow", 0}, {"deny", 1}};

	return cfg_get_enum(x, s, names, ARRAY_SIZE(names),
			    &((struct cfg_state *)obj)->c->default_deny);
}

static const struct cfg_tunable {
	const char *key;
	size_t off;
	long long min, max;
} cfg_tunables[] = {
	{"workers", offsetof(struct config, workers), 1, CONFIG_WORKERS_MAX},
	{"max_workers", offsetof(struct config, max_workers), 1, CONFIG_WORKERS_MAX},
	{"connect_timeout_ms", offsetof(struct config, connect_timeout_ms), 1, 3600000},
	{"idle_timeout_ms", offsetof(struct config, idle_timeout_ms), 0, INT_MAX},
	{"http_head_timeout_ms", offsetof(struct config, http_head_timeout_ms), 0, 3600000},
	{"drain_timeout_ms", offsetof(struct config, drain_timeout_ms), 0, INT_MAX},
	{"buffer_size", offsetof(struct config, buffer_size), 4096, 1048576},
	/* 2^24 leaves room for a generation in a 64-bit io_uring user_data. */
	{"max_connections", offsetof(struct config, max_connections), 1, 1 << 24},
};

static int cfg_tunable(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	const struct cfg_tunable *t = cfg_tunables;
	char *base = (char *)((struct cfg_state *)obj)->c;
	long long v;
	int rc;

	while (strcmp(t->key, config_setting_name(s)) != 0)
		t++;
	rc = cfg_get_int(x, s, t->min, t->max, &v);
	if (rc == 0)
		*(int *)(void *)(base + t->off) = (int)v;
	return rc;
}

static int cfg_io_backend(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	static const struct cfg_enum names[] = {
		{"auto", CONFIG_IO_AUTO},
		{"io_uring", CONFIG_IO_URING},
		{"epoll", CONFIG_IO_EPOLL},
	};
	int v = 0, rc;

	rc = cfg_get_enum(x, s, names, ARRAY_SIZE(names), &v);
	if (rc == 0)
		((struct cfg_state *)obj)->c->io_backend = (enum config_io)v;
	return rc;
}

static int cfg_allowed_uids(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct config *c = ((struct cfg_state *)obj)->c;
	size_t i, j, n;
	long long v;
	int rc;

	rc = cfg_get_seq(x, s, &n);
	if (rc < 0 || n == 0)
		goto out;
	c->allowed_uids = calloc(n, sizeof(*c->allowed_uids));
	if (!c->allowed_uids) {
		rc = cfg_oom(x);
		goto out;
	}
	c->n_allowed_uids = n;
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

		/* (uid_t)-1 means "no uid" to the kernel, never a real user. */
		rc = cfg_get_int(x, e, 0, (long long)UINT32_MAX - 1, &v);
		if (rc < 0)
			goto out;
		for (j = 0; j < i; j++)
			if (c->allowed_uids[j] == (uid_t)v) {
				rc = cfg_fail(x, e, "duplicate uid %lld", v);
				goto out;
			}
		c->allowed_uids[i] = (uid_t)v;
	}
out:
	return rc;
}

static int cfg_access_log(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct config *c = ((struct cfg_state *)obj)->c;
	const char *v, *bad;
	int rc;

	rc = cfg_get_string(x, s, &v);
	if (rc < 0)
		goto out;
	if (c->access_log) /* top-level access_log and telemetry.access_log */
		return cfg_fail(x, s, "access_log is set twice");
	if (v[0] == '\0' || strcmp(v, "off") == 0) /* off, like an absent key */
		goto out;
	bad = cfg_why_path(v);
	rc = bad ? cfg_bad_value(x, s, v, bad) : cfg_dup(x, v, &c->access_log);
out:
	return rc;
}

/* telemetry = { http = true; access_log = "off"; max_series = 1000; } */
static int cfg_tel_http(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return cfg_get_bool(x, s, &((struct cfg_state *)obj)->c->http_metrics);
}

static int cfg_tel_max_series(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	long long v;
	int rc = cfg_get_int(x, s, 16, 100000, &v);

	if (rc == 0)
		((struct cfg_state *)obj)->c->max_series = (int)v;
	return rc;
}

static const struct cfg_key cfg_telemetry_keys[] = {
	{"http", cfg_tel_http, NULL},
	{"access_log", cfg_access_log, NULL},
	{"max_series", cfg_tel_max_series, NULL},
};

static const struct cfg_keyset cfg_telemetry_set = {
	.keys = cfg_telemetry_keys, .n = ARRAY_SIZE(cfg_telemetry_keys), .list = 0};

static int cfg_telemetry(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return cfg_walk(x, s, cfg_telemetry_keys, ARRAY_SIZE(cfg_telemetry_keys), obj);
}

static int cfg_log_level(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	static const struct cfg_enum names[] = {
		{"error", 0},
		{"warn", 1},
		{"info", 2},
		{"debug", 3},
	};

	return cfg_get_enum(x, s, names, ARRAY_SIZE(names),
			    &((struct cfg_state *)obj)->c->log_level);
}

static const struct cfg_key cfg_top_keys[] = {
	{"trust_domain", cfg_trust_domain, NULL},
	{"runtime_dir", cfg_runtime_dir, NULL},
	{"admin_addr", cfg_admin_addr, NULL},
	{"identity", cfg_identity, &cfg_identity_set},
	{"inbound", cfg_inbound, &cfg_inbound_set},
	{"outbound", cfg_outbound, &cfg_outbound_set},
	{"services", cfg_services, &cfg_service_set},
	{"dns_servers", cfg_dns_servers, NULL},
	{"policies", cfg_policies, &cfg_policy_set},
	{"policy_default", cfg_policy_default, NULL},
	{"workers", cfg_tunable, NULL},
	{"max_workers", cfg_tunable, NULL},
	{"io_backend", cfg_io_backend, NULL},
	{"connect_timeout_ms", cfg_tunable, NULL},
	{"idle_timeout_ms", cfg_tunable, NULL},
	{"http_head_timeout_ms", cfg_tunable, NULL},
	{"drain_timeout_ms", cfg_tunable, NULL},
	{"buffer_size", cfg_tunable, NULL},
	{"max_connections", cfg_tunable, NULL},
	{"allowed_uids", cfg_allowed_uids, NULL},
	{"access_log", cfg_access_log, NULL},
	{"telemetry", cfg_telemetry, &cfg_telemetry_set},
	{"log_level", cfg_log_level, NULL},
};

static const struct cfg_keyset cfg_top_set = {
	.keys = cfg_top_keys, .n = ARRAY_SIZE(cfg_top_keys), .list = 0};

int cfg_top(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return cfg_walk(x, s, cfg_top_set.keys, cfg_top_set.n, obj);
}

/* ------------------------------------------------------------------ */
/* Key paths, for the documentation check                             */

/*
 * Appends each key of set to path[0..off) and hands the result to fn.  A
 * group is a namespace ("identity" is not a key, "identity.cert" is); a
 * list of groups is a key itself and a prefix ("services[].name").
 */
static int cfg_key_paths(const struct cfg_keyset *set, char *path, size_t off, size_t len,
			 int (*fn)(const char *path, void *arg), void *arg)
{
	const struct cfg_key *k;
	size_t i, end;
	int w, rc = 0;

	for (i = 0; i < set->n && rc == 0; i++) {
		k = &set->keys[i];
		w = snprintf(path + off, len - off, "%s%s", off ? "." : "", k->name);
		if (w < 0 || (size_t)w + 2 >= len - off) /* room for "[]" */
			return -ENAMETOOLONG;
		end = off + (size_t)w;
		if (!k->sub || k->sub->list)
			rc = fn(path, arg);
		if (rc == 0 && k->sub) {
			if (k->sub->list) {
				memcpy(path + end, "[]", 3);
				end += 2;
			}
			rc = cfg_key_paths(k->sub, path, end, len, fn, arg);
		}
	}
	return rc;
}

int config_key_paths(int (*fn)(const char *path, void *arg), void *arg)
{
	char path[256];

	path[0] = '\0';
	return cfg_key_paths(&cfg_top_set, path, 0, sizeof(path), fn, arg);
}
