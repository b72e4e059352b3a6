/*
 * Whole configs: the walk from the root, defaults, cross-key checks, and
 * the public entry points config_parse, config_load, config_default and
 * config_free.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A per-pod config is a few kilobytes; this only stops /dev/zero. */
#define CFG_MAX_FILE (16u << 20)
#define CFG_STRING_NAME "<string>"
#define CFG_DEFAULT_NAME "<built-in default>"

/* ------------------------------------------------------------------ */
/* Whole config                                                        */

static const char *const cfg_default_mesh[] = {
	"10.0.0.0/8",
	"172.16.0.0/12",
	"192.168.0.0/16",
	"fd00::/8",
};

static int cfg_defaults(struct cfg_ctx *x, struct cfg_state *st)
{
	struct config *c = st->c;
	size_t i;
	int rc = 0;

	if (!c->trust_domain)
		rc = cfg_dup(x, "cluster.local", &c->trust_domain);
	if (rc == 0 && !c->runtime_dir)
		rc = cfg_dup(x, LDM_DEFAULT_RUNTIME_DIR, &c->runtime_dir);
	if (rc == 0 && !c->admin_addr)
		rc = cfg_dup(x, "0.0.0.0:4191", &c->admin_addr);
	if (rc == 0 && !st->mesh_set) {
		c->mesh_networks = calloc(ARRAY_SIZE(cfg_default_mesh), sizeof(*c->mesh_networks));
		if (!c->mesh_networks) {
			rc = cfg_oom(x);
		} else {
			c->n_mesh_networks = ARRAY_SIZE(cfg_default_mesh);
			for (i = 0; i < ARRAY_SIZE(cfg_default_mesh); i++)
				config_parse_cidr(cfg_default_mesh[i], &c->mesh_networks[i]);
		}
	}
	/* Zero trust once there is an identity to present; plain TCP before. */
	if (!st->mtls_set)
		c->inbound_mtls = c->cert ? CONFIG_MTLS_STRICT : CONFIG_MTLS_DISABLE;
	for (i = 0; i < c->n_inbound_ports; i++)
		if (!c->inbound_ports[i].mtls_set)
			c->inbound_ports[i].mtls = c->inbound_mtls;
	return rc;
}

/* Settings that are valid alone but need an identity to mean anything. */
static int cfg_cross_check(struct cfg_ctx *x, struct cfg_state *st)
{
	static const char need[] = "needs identity { cert; key; bundle; } for mTLS";
	const struct config *c = st->c;
	const config_setting_t *in, *list, *e;
	size_t i;
	int rc = 0;

	if (c->cert)
		goto out;
	in = config_setting_get_member(st->root, "inbound");
	if (c->inbound_mtls != CONFIG_MTLS_DISABLE) {
		rc = cfg_fail(x, in ? config_setting_get_member(in, "mtls") : NULL, "%s %s",
			      cfg_mtls_names[c->inbound_mtls].name, need);
		goto out;
	}
	list = in ? config_setting_get_member(in, "ports") : NULL;
	for (i = 0; i < c->n_inbound_ports; i++) {
		if (c->inbound_ports[i].mtls == CONFIG_MTLS_DISABLE)
			continue;
		e = list ? config_setting_get_elem(list, (unsigned)i) : NULL;
		rc = cfg_fail(x, e ? config_setting_get_member(e, "mtls") : NULL, "%s %s",
			      cfg_mtls_names[c->inbound_ports[i].mtls].name, need);
		goto out;
	}
	list = config_setting_get_member(st->root, "services");
	for (i = 0; i < c->n_services; i++) {
		if (!c->services[i].identity)
			continue;
		e = list ? config_setting_get_elem(list, (unsigned)i) : NULL;
		rc = cfg_fail(x, e ? config_setting_get_member(e, "identity") : NULL,
			      "pinning a server identity %s", need);
		goto out;
	}
out:
	return rc;
}

static int cfg_build(struct cfg_ctx *x, const config_setting_t *root, struct config *c)
{
	struct cfg_state st = {.c = c, .root = root};
	int rc;

	c->inbound_mtls = CONFIG_MTLS_DISABLE;
	c->egress_allow_all = 1;
	c->workers = 0;
	c->max_workers = 8;
	c->io_backend = CONFIG_IO_AUTO;
	c->connect_timeout_ms = 10000;
	c->idle_timeout_ms = 3600000;
	c->http_head_timeout_ms = 30000;
	c->drain_timeout_ms = 30000;
	c->buffer_size = 32768;
	c->max_connections = 100000;
	c->log_level = 2;
	c->http_metrics = 1;
	c->max_series = 1000;
	c->link_port = 15008;
	c->links = (struct config_links){.enabled = 1,
					 .max_streams = 100,
					 .max_links = 32,
					 .idle_timeout_ms = 60000,
					 .ping_interval_ms = 10000,
					 .ping_timeout_ms = 20000,
					 .fallback_ms = 60000};

	rc = cfg_top(x, root, &st);
	if (rc == 0)
		rc = cfg_defaults(x, &st);
	if (rc == 0)
		rc = cfg_cross_check(x, &st);
	if (rc == 0)
		rc = cfg_opaque_check(x, root, c);
	return rc;
}

/*
 * Parses one text.  name is used in messages; keep_name stores it as
 * config->file (the built-in default has none).
 */
static struct config *cfg_parse_text(const char *text, const char *name, int keep_name, char *err,
				     size_t errlen)
{
	struct cfg_ctx x = {name ? name : CFG_STRING_NAME, err, errlen};
	struct cfg_scan sc;
	struct config *c = NULL;
	config_t lc;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (!text) {
		cfg_errf(&x, "%s: no configuration text", x.name);
		goto out;
	}
	memset(&sc, 0, sizeof(sc));
	cfg_prescan(text, &sc);
	if (sc.include_line) {
		cfg_errf(&x,
			 "%s:%u: @include is not supported: one file holds the whole "
			 "configuration",
			 x.name, sc.include_line);
		goto out;
	}
	if (sc.string_line) {
		cfg_errf(&x,
			 "%s:%u: syntax error: unexpected string; strings are "
			 "values, as in key = \"value\";",
			 x.name, sc.string_line);
		goto out;
	}
	config_init(&lc);
	if (!config_read_string(&lc, text)) {
		cfg_errf(&x, "%s:%d: %s", config_error_file(&lc) ? config_error_file(&lc) : x.name,
			 config_error_line(&lc),
			 config_error_text(&lc) ? config_error_text(&lc) : "parse error");
		goto out_destroy;
	}
	if (sc.overflow_line) {
		cfg_errf(&x,
			 "%s:%u: integer %s is out of range (32-bit integers, or a "
			 "64-bit one with an L suffix)",
			 x.name, sc.overflow_line, sc.overflow);
		goto out_destroy;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		cfg_oom(&x);
		goto out_destroy;
	}
	{
		static uint64_t made; /* reloads happen on the loop's thread */

		c->generation = ++made;
	}
	if (keep_name && name && !(c->file = strdup(name))) {
		cfg_oom(&x);
		goto err_free;
	}
	rc = cfg_build(&x, config_root_setting(&lc), c);
	if (rc < 0)
		goto err_free;
	goto out_destroy;

err_free:
	config_free(c);
	c = NULL;
out_destroy:
	config_destroy(&lc);
out:
	return c;
}

struct config *config_parse(const char *text, const char *name, char *err, size_t errlen)
{
	return cfg_parse_text(text, name, 1, err, errlen);
}

/* Reads the whole file; the limit turns /dev/zero into an error, not a hang. */
static int cfg_read_file(const char *file, char **out, size_t *outlen)
{
	size_t len = 0, cap = 0;
	char *buf = NULL, *nb;
	ssize_t n;
	int fd, rc = 0;

	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 16384;
			if (cap > CFG_MAX_FILE + 1)
				cap = CFG_MAX_FILE + 1;
			if (cap - len == 0) {
				rc = -EFBIG;
				goto err_free;
			}
			nb = realloc(buf, cap + 1);
			if (!nb) {
				rc = -ENOMEM;
				goto err_free;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto err_free;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > CFG_MAX_FILE) {
		rc = -EFBIG;
		goto err_free;
	}
	/* The first turn of the loop allocated buf, with room for the NUL. */
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	goto out_close;

err_free:
	free(buf);
out_close:
	close(fd);
out:
	return rc;
}

struct config *config_load(const char *file, char *err, size_t errlen)
{
	struct cfg_ctx x = {file ? file : "(null)", err, errlen};
	struct config *c = NULL;
	const char *nul;
	char *text = NULL;
	size_t len = 0;
	unsigned line = 1;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (!file || !file[0]) {
		cfg_errf(&x, "no configuration file given");
		goto out;
	}
	rc = cfg_read_file(file, &text, &len);
	if (rc == -EFBIG) {
		cfg_errf(&x, "%s: larger than %u bytes; is this a config file?", file,
			 CFG_MAX_FILE);
		goto out;
	}
	if (rc < 0) {
		cfg_errf(&x, "cannot read %s: %s", file, strerror(-rc));
		goto out;
	}
	/* libconfig would stop at a NUL and ignore the rest without a word. */
	nul = memchr(text, '\0', len);
	if (nul) {
		for (const char *p = text; p < nul; p++)
			line += *p == '\n';
		cfg_errf(&x, "%s:%u: contains a NUL byte; is this a text file?", file, line);
		goto out_free;
	}
	c = cfg_parse_text(text, file, 1, err, errlen);
out_free:
	free(text);
out:
	return c;
}

/* Writes s as a libconfig string literal body: \" \\ and \xNN escapes. */
static void cfg_escape(const char *s, char *out)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\') {
			*out++ = '\\';
			*out++ = *s;
		} else if (cfg_is_ctl(*s)) {
			out += sprintf(out, "\\x%02x", (unsigned char)*s);
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

struct config *config_default(const char *runtime_dir, char *err, size_t errlen)
{
	static const char fmt[] =
		"trust_domain = \"cluster.local\";\n"
		"runtime_dir = \"%s\";\n"
		/* Off, so several pods on one machine do not fight over a port. */
		"admin_addr = \"\";\n"
		"inbound = { mtls = \"disable\"; };\n"
		"outbound = {\n"
		"  mesh_networks = [ \"10.0.0.0/8\", \"172.16.0.0/12\",\n"
		"                    \"192.168.0.0/16\", \"fd00::/8\" ];\n"
		"  egress = \"allow\";\n"
		"};\n";
	struct cfg_ctx x = {CFG_DEFAULT_NAME, err, errlen};
	struct config *c = NULL;
	char *esc, *text = NULL;

	if (!runtime_dir)
		runtime_dir = LDM_DEFAULT_RUNTIME_DIR;
	/* Cap before multiplying; the parser rejects long paths anyway. */
	if (strlen(runtime_dir) > 4096) {
		cfg_errf(&x, "%s: runtime_dir is too long", CFG_DEFAULT_NAME);
		goto out;
	}
	esc = malloc(strlen(runtime_dir) * 4 + 1);
	if (!esc) {
		cfg_oom(&x);
		goto out;
	}
	cfg_escape(runtime_dir, esc);
	if (asprintf(&text, fmt, esc) < 0) {
		text = NULL;
		cfg_oom(&x);
		goto out_esc;
	}
	c = cfg_parse_text(text, CFG_DEFAULT_NAME, 0, err, errlen);
	free(text);
out_esc:
	free(esc);
out:
	return c;
}

static void cfg_strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

void config_free(struct config *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; c->services && i < c->n_services; i++) {
		free(c->services[i].name);
		free(c->services[i].identity);
		free(c->services[i].endpoints);
		free(c->services[i].dns);
		free(c->services[i].addresses);
		for (size_t k = 0; k < c->services[i].n_splits; k++)
			free(c->services[i].splits[k].service);
		free(c->services[i].splits);
		for (size_t k = 0; c->services[i].routes && k < c->services[i].n_routes; k++) {
			free(c->services[i].routes[k].path_prefix);
			cfg_strv_free(c->services[i].routes[k].methods,
				      c->services[i].routes[k].n_methods);
		}
		free(c->services[i].routes);
	}
	free(c->services);
	free(c->dns_servers);
	for (i = 0; c->policies && i < c->n_policies; i++) {
		struct config_policy *p = &c->policies[i];

		free(p->name);
		free(p->ports);
		cfg_strv_free(p->principals, p->n_principals);
		cfg_strv_free(p->namespaces, p->n_namespaces);
		cfg_strv_free(p->methods, p->n_methods);
		cfg_strv_free(p->paths, p->n_paths);
		cfg_strv_free(p->hosts, p->n_hosts);
	}
	free(c->policies);
	for (i = 0; c->egress_allow && i < c->n_egress_allow; i++)
		free(c->egress_allow[i].ports);
	free(c->egress_allow);
	free(c->mesh_networks);
	free(c->inbound_ports);
	free(c->inbound_exclude_ports);
	free(c->allowed_uids);
	free(c->access_log);
	free(c->cert);
	free(c->key);
	free(c->bundle);
	free(c->admin_addr);
	free(c->runtime_dir);
	free(c->trust_domain);
	free(c->file);
	free(c);
}
