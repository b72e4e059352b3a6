/*
 * A pod's config.ldmesh.io/ annotations, checked, and the ldmeshd config
 * they render to (inject.h).  The names follow Linkerd's config.linkerd.io/
 * ones where the meaning is the same (docs/kubernetes.md has the table).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inject.h"
#include "util/spiffe.h"

#define MAX_PORTS 10000

struct conf_key {
	const char *name; /* after config.ldmesh.io/ */
	size_t off; /* of the const char * in struct inject_conf */
	const char *const *choices; /* NULL: checked by kind */
	int kind;
};

enum { K_CHOICE, K_PORTS, K_CIDRS, K_TD, K_QUANTITY, K_NAMES, K_IMAGE };

static const char *const mtls_modes[] = {"strict", "permissive", "disable", NULL};
static const char *const allow_deny[] = {"allow", "deny", NULL};
static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const backends[] = {"auto", "io_uring", "epoll", NULL};
static const char *const identities[] = {"csi-driver-spiffe", "spire", NULL};

#define KEY(n, f, c, k)                                                                            \
	{                                                                                          \
		n, offsetof(struct inject_conf, f), c, k                                           \
	}
static const struct conf_key conf_keys[] = {
	KEY("mtls-mode", mtls, mtls_modes, K_CHOICE),
	KEY("policy-default", policy_default, allow_deny, K_CHOICE),
	KEY("log-level", log_level, levels, K_CHOICE),
	KEY("io-backend", io_backend, backends, K_CHOICE),
	KEY("trust-domain", trust_domain, NULL, K_TD),
	KEY("mesh-networks", mesh_networks, NULL, K_CIDRS),
	KEY("skip-inbound-ports", skip_inbound, NULL, K_PORTS),
	KEY("skip-outbound-ports", skip_outbound, NULL, K_PORTS),
	KEY("skip-outbound-ips", skip_outbound_ips, NULL, K_CIDRS),
	KEY("opaque-ports", opaque_ports, NULL, K_PORTS),
	KEY("identity", identity, identities, K_CHOICE),
	KEY("spiffe-helper-image", spiffe_helper_image, NULL, K_IMAGE),
	KEY("mesh-init-containers", mesh_init, NULL, K_NAMES),
	KEY("proxy-cpu-request", cpu_request, NULL, K_QUANTITY),
	KEY("proxy-cpu-limit", cpu_limit, NULL, K_QUANTITY),
	KEY("proxy-memory-request", memory_request, NULL, K_QUANTITY),
	KEY("proxy-memory-limit", memory_limit, NULL, K_QUANTITY),
};

static int parse_port(const char *s, size_t n, long *out)
{
	long v = 0;

	if (n == 0 || n > 5)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return -EINVAL;
	*out = v;
	return 0;
}

int inject_ports_parse(const char *s, json_t *out, char *err, size_t errlen)
{
	const char *p = s;

	if (!*s) {
		snprintf(err, errlen, "an empty port list");
		return -EINVAL;
	}
	while (*p) {
		size_t n = strcspn(p, ",");
		const char *dash = memchr(p, '-', n);
		long lo, hi;

		if (dash ? parse_port(p, (size_t)(dash - p), &lo) ||
				    parse_port(dash + 1, n - (size_t)(dash - p) - 1, &hi)
			 : parse_port(p, n, &lo)) {
			snprintf(err, errlen,
				 "\"%.*s\" is not a port (1-65535) or a range like 8000-8100",
				 (int)(n > 40 ? 40 : n), p);
			return -EINVAL;
		}
		if (!dash)
			hi = lo;
		if (hi < lo) {
			snprintf(err, errlen, "the range %ld-%ld is backwards", lo, hi);
			return -EINVAL;
		}
		for (long v = lo; out && v <= hi; v++) {
			json_t *x;
			size_t i;
			int dup = 0;

			json_array_foreach(out, i, x) dup |= json_integer_value(x) == v;
			if (dup)
				continue; /* the config refuses duplicates: keep one */
			if (json_array_size(out) >= MAX_PORTS) {
				snprintf(err, errlen, "more than %d ports", MAX_PORTS);
				return -EINVAL;
			}
			if (json_array_append_new(out, json_integer(v)))
				return -ENOMEM;
		}
		p += n;
		if (*p == ',' && !*++p) {
			snprintf(err, errlen, "a trailing comma");
			return -EINVAL;
		}
	}
	return 0;
}

/* "10.0.0.0/8" or a bare address; v4 or v6; host bits are the daemon's to check. */
static int cidr_ok(const char *s, size_t n)
{
	char buf[64];
	unsigned char addr[16];
	const char *slash;
	long len = -1;

	if (n == 0 || n >= sizeof(buf))
		return 0;
	memcpy(buf, s, n);
	buf[n] = '\0';
	slash = strchr(buf, '/');
	if (slash) {
		char *end;

		len = strtol(slash + 1, &end, 10);
		if (end == slash + 1 || *end || len < 0)
			return 0;
		buf[slash - buf] = '\0';
	}
	if (inet_pton(AF_INET, buf, addr) == 1)
		return len <= 32;
	if (inet_pton(AF_INET6, buf, addr) == 1)
		return len <= 128;
	return 0;
}

static int check_list(const char *v, int (*ok)(const char *, size_t), const char *what, char *err,
		      size_t errlen)
{
	const char *p = v;

	for (;;) {
		size_t n = strcspn(p, ",");

		if (!ok(p, n)) {
			snprintf(err, errlen, "\"%.*s\" is not %s", (int)(n > 60 ? 60 : n), p,
				 what);
			return -EINVAL;
		}
		if (!p[n])
			return 0;
		p += n + 1;
	}
}

/* A Kubernetes quantity as resources take it: 100m, 64Mi, 0.5, 1e3. */
static int quantity_ok(const char *s, size_t n)
{
	size_t i = 0, digits = 0;
	static const char *const suffixes[] = {"",  "m",  "k",	"M",  "G",  "T",  "P",
					       "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};

	while (i < n && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.')) {
		digits += s[i] != '.';
		i++;
	}
	if (!digits)
		return 0;
	for (size_t k = 0; k < ARRAY_SIZE(suffixes); k++)
		if (strlen(suffixes[k]) == n - i && !memcmp(s + i, suffixes[k], n - i))
			return 1;
	return 0;
}

/* A container name (RFC 1123 label) or "*". */
static int name_ok(const char *s, size_t n)
{
	if (n == 1 && s[0] == '*')
		return 1;
	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
	return 1;
}

static int port_item_ok(const char *s, size_t n)
{
	const char *dash = memchr(s, '-', n);
	long a, b;

	if (!dash)
		return parse_port(s, n, &a) == 0;
	return !parse_port(s, (size_t)(dash - s), &a) &&
	       !parse_port(dash + 1, n - (size_t)(dash - s) - 1, &b) && a <= b;
}

static int check_value(const struct conf_key *k, const char *v, char *err, size_t errlen)
{
	switch (k->kind) {
	case K_CHOICE:
		for (const char *const *c = k->choices; *c; c++)
			if (!strcmp(v, *c))
				return 0;
		snprintf(err, errlen, "expected one of %s%s%s%s%s%s%s, got \"%.60s\"",
			 k->choices[0], k->choices[1] ? ", " : "",
			 k->choices[1] ? k->choices[1] : "",
			 k->choices[1] && k->choices[2] ? ", " : "",
			 k->choices[1] && k->choices[2] ? k->choices[2] : "",
			 k->choices[1] && k->choices[2] && k->choices[3] ? ", " : "",
			 k->choices[1] && k->choices[2] && k->choices[3] ? k->choices[3] : "", v);
		return -EINVAL;
	case K_PORTS:
		return check_list(v, port_item_ok, "a port or a range like 8000-8100", err, errlen);
	case K_CIDRS:
		return check_list(v, cidr_ok, "an address or CIDR prefix", err, errlen);
	case K_QUANTITY:
		return check_list(v, quantity_ok, "a quantity like 100m or 64Mi", err, errlen) ||
				       strchr(v, ',')
			       ? (snprintf(err, errlen, "\"%.60s\" is not one quantity", v),
				  -EINVAL)
			       : 0;
	case K_NAMES:
		return check_list(v, name_ok, "a container name", err, errlen);
	case K_TD:
		return spiffe_trust_domain_check(v, err, errlen);
	case K_IMAGE:
		/* An image reference: no spaces or control characters. */
		for (const char *c = v; *c; c++)
			if ((unsigned char)*c <= ' ' || *c == 0x7f) {
				snprintf(err, errlen, "\"%.60s\" is not an image reference", v);
				return -EINVAL;
			}
		if (!*v) {
			snprintf(err, errlen, "an empty image reference");
			return -EINVAL;
		}
		return 0;
	}
	return -EINVAL;
}

int inject_conf_read(struct inject_conf *conf, const json_t *annotations, char *err, size_t errlen)
{
	const char *key;
	json_t *val;

	memset(conf, 0, sizeof(*conf));
	conf->mtls = "strict";
	conf->policy_default = "allow";
	conf->log_level = "info";
	conf->trust_domain = "cluster.local";
	conf->io_backend = "auto";
	conf->identity = "csi-driver-spiffe";
	conf->spiffe_helper_image = INJECT_SPIRE_HELPER_IMAGE;
	conf->cpu_request = "10m";
	conf->memory_request = "16Mi";
	conf->memory_limit = "256Mi";
	if (!annotations)
		return 0;
	json_object_foreach((json_t *)annotations, key, val)
	{
		const size_t plen = strlen(INJECT_CONF_PREFIX);
		const struct conf_key *k = NULL;
		char why[200];

		if (strncmp(key, INJECT_CONF_PREFIX, plen) != 0)
			continue;
		if (!strncmp(key + plen, "command-", 8))
			continue; /* per container, read by inject.c */
		for (size_t i = 0; i < ARRAY_SIZE(conf_keys); i++)
			if (!strcmp(key + plen, conf_keys[i].name))
				k = &conf_keys[i];
		if (!k) {
			snprintf(err, errlen,
				 "unknown annotation %.100s (docs/kubernetes.md lists them)", key);
			return -EINVAL;
		}
		if (!json_is_string(val)) {
			snprintf(err, errlen, "annotation %s: expected a string", key);
			return -EINVAL;
		}
		if (check_value(k, json_string_value(val), why, sizeof(why))) {
			snprintf(err, errlen, "annotation %s: %s", key, why);
			return -EINVAL;
		}
		*(const char **)(void *)((char *)conf + k->off) = json_string_value(val);
	}
	return 0;
}

/* ---- rendering -------------------------------------------------------- */

static void put_ports(FILE *f, const char *list)
{
	json_t *ports = json_array();
	char err[200];
	json_t *v;
	size_t i;

	if (!ports || inject_ports_parse(list, ports, err, sizeof(err)) < 0) {
		json_decref(ports);
		return; /* checked by inject_conf_read already */
	}
	fputs("[ ", f);
	json_array_foreach(ports, i, v)
		fprintf(f, "%s%lld", i ? ", " : "", (long long)json_integer_value(v));
	fputs(" ]", f);
	json_decref(ports);
}

static void put_strings(FILE *f, const char *list)
{
	const char *p = list;

	fputs("[ ", f);
	for (int first = 1;; first = 0) {
		size_t n = strcspn(p, ",");

		fprintf(f, "%s\"%.*s\"", first ? "" : ", ", (int)n, p);
		if (!p[n])
			break;
		p += n + 1;
	}
	fputs(" ]", f);
}

int inject_conf_spire(const struct inject_conf *conf)
{
	return strcmp(conf->identity, "spire") == 0;
}

static int port_listed(const json_t *ports, int port)
{
	const json_t *v;
	size_t i;

	json_array_foreach(ports, i, v) if (json_integer_value(v) == port) return 1;
	return 0;
}

/*
 * inbound.ports: the kubelet probes in plaintext, so probe ports take it
 * (unless the whole pod already does); opaque ports get no HTTP layer.  A
 * port both is one entry.
 */
static void put_inbound_ports(FILE *f, const struct inject_conf *conf, const json_t *opaque,
			      const struct inject_probe *probes, size_t n_probes)
{
	int first = 1, permissive = strcmp(conf->mtls, "strict") == 0;
	const json_t *v;
	size_t i;

	for (i = 0; permissive && i < n_probes; i++) {
		int dup = 0;

		for (size_t j = 0; j < i; j++)
			dup |= probes[j].port == probes[i].port;
		if (dup)
			continue;
		fprintf(f, "%s{ port = %d; mtls = \"permissive\";%s }",
			first ? "  ports = ( " : ", ", probes[i].port,
			port_listed(opaque, probes[i].port) ? " opaque = true;" : "");
		first = 0;
	}
	json_array_foreach(opaque, i, v)
	{
		int port = (int)json_integer_value(v), probed = 0;

		for (size_t j = 0; permissive && j < n_probes; j++)
			probed |= probes[j].port == port;
		if (probed)
			continue;
		fprintf(f, "%s{ port = %d; opaque = true; }", first ? "  ports = ( " : ", ", port);
		first = 0;
	}
	if (!first)
		fputs(" );\n", f);
}

char *inject_conf_render(const struct inject_conf *conf, const struct inject_probe *probes,
			 size_t n_probes)
{
	json_t *opaque = json_array();
	char *text = NULL, err[200];
	size_t len = 0;
	FILE *f;

	if (!opaque)
		return NULL;
	/* Checked by inject_conf_read already. */
	if (conf->opaque_ports &&
	    inject_ports_parse(conf->opaque_ports, opaque, err, sizeof(err))) {
		json_decref(opaque);
		return NULL;
	}
	f = open_memstream(&text, &len);
	if (!f) {
		json_decref(opaque);
		return NULL;
	}
	fputs("# Rendered by ldmeshctl inject from the pod's annotations (docs/kubernetes.md).\n",
	      f);
	fprintf(f, "trust_domain = \"%s\";\n", conf->trust_domain);
	fputs("runtime_dir = \"" INJECT_RUNTIME_DIR "\";\n", f);
	fprintf(f, "admin_addr = \"0.0.0.0:%d\";\n", INJECT_ADMIN_PORT);
	if (inject_conf_spire(conf))
		fputs("identity = {\n"
		      "  cert = \"" INJECT_ID_DIR "/" INJECT_SPIRE_SVID "\";\n"
		      "  key = \"" INJECT_ID_DIR "/" INJECT_SPIRE_KEY "\";\n"
		      "  bundle = \"" INJECT_ID_DIR "/" INJECT_SPIRE_BUNDLE "\";\n"
		      "};\n",
		      f);
	else
		fputs("identity = {\n"
		      "  cert = \"" INJECT_ID_DIR "/tls.crt\";\n"
		      "  key = \"" INJECT_ID_DIR "/tls.key\";\n"
		      "  bundle = \"" INJECT_ID_DIR "/ca.crt\";\n"
		      "};\n",
		      f);
	fprintf(f, "inbound = {\n  mtls = \"%s\";\n  link_port = %d;\n", conf->mtls,
		INJECT_LINK_PORT);
	if (conf->skip_inbound) {
		fputs("  exclude_ports = ", f);
		put_ports(f, conf->skip_inbound);
		fputs(";\n", f);
	}
	put_inbound_ports(f, conf, opaque, probes, n_probes);
	fputs("};\n", f);
	if (conf->mesh_networks) {
		fputs("outbound = { mesh_networks = ", f);
		put_strings(f, conf->mesh_networks);
		fputs("; };\n", f);
	}
	fprintf(f, "policy_default = \"%s\";\n", conf->policy_default);
	if (n_probes && strcmp(conf->policy_default, "deny") == 0) {
		fputs("policies = (\n", f);
		for (size_t i = 0; i < n_probes; i++) {
			fprintf(f,
				"  { name = \"kubelet-probe-%zu\"; action = \"allow\"; ports = [ "
				"%d ];"
				" unauthenticated = true;",
				i, probes[i].port);
			/* An opaque port's requests are not read: the rule
			 * allows the port (the daemon refuses HTTP rules there). */
			if (probes[i].path[0] && !port_listed(opaque, probes[i].port))
				fprintf(f, " methods = [ \"GET\" ]; paths = [ \"%s\" ];",
					probes[i].path);
			fprintf(f, " }%s\n", i + 1 < n_probes ? "," : "");
		}
		fputs(");\n", f);
	}
	if (strcmp(conf->io_backend, "auto") != 0)
		fprintf(f, "io_backend = \"%s\";\n", conf->io_backend);
	fprintf(f, "log_level = \"%s\";\n", conf->log_level);
	json_decref(opaque);
	if (fclose(f)) {
		free(text);
		return NULL;
	}
	return text;
}
