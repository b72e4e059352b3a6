/*
 * services = ( { name; port; identity; addresses; endpoints | dns; split;
 * protocol; timeout_ms; connect_timeout_ms; retry; routes; } ): named
 * destinations with their endpoints (a list, or a DNS name's addresses),
 * the virtual addresses apps dial for them (balanced over the endpoints),
 * an optional pinned identity, and how their requests are timed out,
 * retried and routed; dns_servers, the resolvers the DNS names are asked of.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <stdio.h>
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

/* NULL when name is a DNS name: labels of letters, digits, '-' and '_'
 * (SRV-style), 1..63 each, at most 253 in all, an optional final dot. */
static const char *why_dns_name(const char *name, size_t len)
{
	size_t i, label = 0;

	if (len == 0 || len > 254 || (len == 254 && name[253] != '.'))
		return "needs a host name of 1 to 253 characters before the port";
	for (i = 0; i < len; i++) {
		char ch = name[i];

		if (ch == '.') {
			if (label == 0)
				return "has an empty label in its host name";
			label = 0;
		} else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			   (ch >= '0' && ch <= '9') || ch == '-' || ch == '_') {
			if (++label > 63)
				return "has a label longer than 63 characters";
		} else {
			return "is not a host name: letters, digits, '-', '_' and '.' only";
		}
	}
	return NULL;
}

/* dns = "name:port": the endpoints are the name's addresses, at port. */
static int cfg_svc_dns(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct config_service *svc = obj;
	const char *v, *colon, *bad;
	char *end;
	long port;
	int rc;

	rc = cfg_get_string(x, s, &v);
	if (rc < 0)
		return rc;
	colon = strrchr(v, ':');
	if (!colon || !colon[1])
		return cfg_bad_value(x, s, v, "is not like web.shop.svc.cluster.local:8080");
	port = strtol(colon + 1, &end, 10);
	if (*end || colon[1] < '0' || colon[1] > '9' || port < 1 || port > 65535)
		return cfg_bad_value(x, s, v, "has no port 1..65535 after the last ':'");
	bad = why_dns_name(v, (size_t)(colon - v));
	if (bad)
		return cfg_bad_value(x, s, v, bad);
	svc->dns = strndup(v, (size_t)(colon - v));
	if (!svc->dns)
		return cfg_oom(x);
	svc->dns_port = (uint16_t)port;
	return 0;
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

/* ------------------------------------------------------------------ */
/* protocol, timeouts, retry = { ... }, routes = ( { ... } )           */

#define CFG_MAX_TIMEOUT_MS 86400000 /* a day */
#define CFG_MAX_CONNECT_TIMEOUT_MS 600000 /* ten minutes */
#define CFG_MAX_ROUTES 64
#define CFG_MAX_PREFIX 1024
#define CFG_MAX_METHOD 15

static const struct cfg_enum cfg_protocol_names[] = {
	{"auto", SVC_PROTO_AUTO},
	{"http", SVC_PROTO_HTTP},
	{"tcp", SVC_PROTO_TCP},
};

static int cfg_svc_protocol(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	int v = 0, rc;

	rc = cfg_get_enum(x, s, cfg_protocol_names, ARRAY_SIZE(cfg_protocol_names), &v);
	if (rc == 0)
		((struct config_service *)obj)->protocol = (enum config_svc_protocol)v;
	return rc;
}

static int cfg_svc_timeout(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	long long v;
	int rc = cfg_get_int(x, s, 0, CFG_MAX_TIMEOUT_MS, &v);

	if (rc == 0)
		((struct config_service *)obj)->timeout_ms = (int)v;
	return rc;
}

static int cfg_svc_connect_timeout(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	long long v;
	int rc = cfg_get_int(x, s, 0, CFG_MAX_CONNECT_TIMEOUT_MS, &v);

	if (rc == 0)
		((struct config_service *)obj)->connect_timeout_ms = (int)v;
	return rc;
}

/* Every service and route starts here; a retry group overrides key by key. */
static void retry_defaults(struct config_retry *r)
{
	*r = (struct config_retry){.on = RETRY_ON_CONNECT_FAILURE,
				   .max = 2,
				   .budget_percent = 20,
				   .min_per_s = 10,
				   .ttl_s = 10};
}

static const struct {
	const char *name;
	uint32_t bit;
} cfg_retry_on_names[] = {
	{"5xx", RETRY_ON_5XX},
	{"gateway-error", RETRY_ON_GATEWAY_ERROR},
	{"connect-failure", RETRY_ON_CONNECT_FAILURE},
	{"reset", RETRY_ON_RESET},
	{"cancelled", RETRY_ON_GRPC_CANCELLED},
	{"deadline-exceeded", RETRY_ON_GRPC_DEADLINE_EXCEEDED},
	{"resource-exhausted", RETRY_ON_GRPC_RESOURCE_EXHAUSTED},
	{"internal", RETRY_ON_GRPC_INTERNAL},
	{"unavailable", RETRY_ON_GRPC_UNAVAILABLE},
};

/* "100".."599": exactly three digits; 0 when v is not one. */
static int retry_status(const char *v)
{
	if (strlen(v) != 3 || v[0] < '1' || v[0] > '5' || v[1] < '0' || v[1] > '9' || v[2] < '0' ||
	    v[2] > '9')
		return 0;
	return (v[0] - '0') * 100 + (v[1] - '0') * 10 + (v[2] - '0');
}

/* on = [ "5xx", "connect-failure", "503" ]: replaces the default. */
static int cfg_retry_on(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct config_retry *r = obj;
	const char *v;
	size_t i, k, n;
	int j, code, rc;

	rc = cfg_get_seq(x, s, &n);
	if (rc < 0)
		return rc;
	r->on = 0;
	r->n_statuses = 0;
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

		rc = cfg_get_string(x, e, &v);
		if (rc < 0)
			return rc;
		for (k = 0; k < ARRAY_SIZE(cfg_retry_on_names); k++)
			if (strcmp(v, cfg_retry_on_names[k].name) == 0)
				break;
		if (k < ARRAY_SIZE(cfg_retry_on_names)) {
			if (r->on & cfg_retry_on_names[k].bit)
				return cfg_fail(x, e, "duplicate value %s", CFG_Q(v));
			r->on |= cfg_retry_on_names[k].bit;
			continue;
		}
		code = retry_status(v);
		if (!code)
			return cfg_bad_value(
				x, e, v,
				"is not a retry condition: use 5xx, gateway-error, "
				"connect-failure, reset, cancelled, deadline-exceeded, "
				"resource-exhausted, internal, unavailable or an HTTP status "
				"100..599");
		for (j = 0; j < r->n_statuses; j++)
			if (r->statuses[j] == code)
				return cfg_fail(x, e, "duplicate status %s", CFG_Q(v));
		if (r->n_statuses == RETRY_STATUSES_MAX)
			return cfg_fail(x, e, "at most %d HTTP statuses may be listed",
					RETRY_STATUSES_MAX);
		r->statuses[r->n_statuses++] = (uint16_t)code;
	}
	return 0;
}

static int cfg_retry_int(struct cfg_ctx *x, const config_setting_t *s, long long min, long long max,
			 int *out)
{
	long long v;
	int rc = cfg_get_int(x, s, min, max, &v);

	if (rc == 0)
		*out = (int)v;
	return rc;
}

static int cfg_retry_max(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return cfg_retry_int(x, s, 0, 10, &((struct config_retry *)obj)->max);
}

static int cfg_retry_budget(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return cfg_retry_int(x, s, 0, 1000, &((struct config_retry *)obj)->budget_percent);
}

static int cfg_retry_min_per_s(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return cfg_retry_int(x, s, 0, 100000, &((struct config_retry *)obj)->min_per_s);
}

static int cfg_retry_ttl(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return cfg_retry_int(x, s, 1, 60, &((struct config_retry *)obj)->ttl_s);
}

static int cfg_retry_non_idempotent(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return cfg_get_bool(x, s, &((struct config_retry *)obj)->non_idempotent);
}

static const struct cfg_key cfg_retry_keys[] = {
	{"on", cfg_retry_on, NULL},
	{"max", cfg_retry_max, NULL},
	{"budget_percent", cfg_retry_budget, NULL},
	{"min_per_s", cfg_retry_min_per_s, NULL},
	{"ttl_s", cfg_retry_ttl, NULL},
	{"non_idempotent", cfg_retry_non_idempotent, NULL},
};

static const struct cfg_keyset cfg_retry_set = {
	.keys = cfg_retry_keys, .n = ARRAY_SIZE(cfg_retry_keys), .list = 0};

/* The group is whole: keys it leaves out keep the defaults, not a service's. */
static int retry_group(struct cfg_ctx *x, const config_setting_t *s, struct config_retry *r)
{
	int rc;

	retry_defaults(r);
	rc = cfg_walk(x, s, cfg_retry_keys, ARRAY_SIZE(cfg_retry_keys), r);
	if (rc == 0)
		r->set = 1;
	return rc;
}

static int cfg_svc_retry(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return retry_group(x, s, &((struct config_service *)obj)->retry);
}

/* routes[].path_prefix: "/api/", matched byte for byte against the path. */
static int cfg_route_prefix(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct config_route *r = obj;
	const char *v, *p;
	int rc;

	rc = cfg_get_string(x, s, &v);
	if (rc < 0)
		return rc;
	if (v[0] != '/')
		return cfg_bad_value(x, s, v, "must start with '/'");
	if (strlen(v) > CFG_MAX_PREFIX)
		return cfg_bad_value(x, s, v, "is longer than 1024 characters");
	for (p = v; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return cfg_bad_value(x, s, v,
					     "contains a space, a control character or a "
					     "byte outside ASCII");
	return cfg_dup(x, v, &r->path_prefix);
}

/*
 * Methods are matched exactly against the request line, which is
 * upper-case in practice; a lower-case "get" here would never match.
 */
static const char *cfg_why_route_method(const char *v)
{
	const char *p;

	if (strlen(v) > CFG_MAX_METHOD)
		return "is longer than 15 characters";
	for (p = v; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || *p == '-' || *p == '_'))
			return "is not an upper-case HTTP method: A-Z, '-' and '_' only";
	return NULL;
}

static int cfg_route_methods(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct config_route *r = obj;

	return cfg_string_list(x, s, cfg_why_route_method, &r->methods, &r->n_methods);
}

static int cfg_route_timeout(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	long long v;
	int rc = cfg_get_int(x, s, 0, CFG_MAX_TIMEOUT_MS, &v);

	if (rc == 0)
		((struct config_route *)obj)->timeout_ms = (int)v;
	return rc;
}

static int cfg_route_retry(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	return retry_group(x, s, &((struct config_route *)obj)->retry);
}

static const struct cfg_key cfg_route_keys[] = {
	{"path_prefix", cfg_route_prefix, NULL},
	{"methods", cfg_route_methods, NULL},
	{"timeout_ms", cfg_route_timeout, NULL},
	{"retry", cfg_route_retry, &cfg_retry_set},
};

static const struct cfg_keyset cfg_route_set = {
	.keys = cfg_route_keys, .n = ARRAY_SIZE(cfg_route_keys), .list = 1};

static int cfg_svc_routes(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct config_service *svc = obj;
	size_t i, n;
	int rc;

	rc = cfg_get_group_list(x, s, &n);
	if (rc < 0 || n == 0)
		return rc;
	if (n > CFG_MAX_ROUTES)
		return cfg_fail(x, s, "has %zu routes; at most %d are allowed", n, CFG_MAX_ROUTES);
	svc->routes = calloc(n, sizeof(*svc->routes));
	if (!svc->routes)
		return cfg_oom(x);
	svc->n_routes = n;
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		struct config_route *r = &svc->routes[i];

		r->timeout_ms = -1;
		retry_defaults(&r->retry);
		rc = cfg_walk(x, e, cfg_route_keys, ARRAY_SIZE(cfg_route_keys), r);
		if (rc < 0)
			return rc;
		/* A route that matches everything would hide the ones after it. */
		if (!r->path_prefix && r->n_methods == 0)
			return cfg_fail(x, e, "a route needs path_prefix or methods (or both)");
	}
	return 0;
}

/*
 * Requests, and so timeouts, routes and retries on answers, exist only
 * when the connection is read as HTTP.
 */
static int svc_tcp_check(struct cfg_ctx *x, const struct config_service *svc,
			 const config_setting_t *e)
{
	static const char need[] = "needs protocol \"http\" or \"auto\" (a \"tcp\" service has no "
				   "requests)";
	const config_setting_t *r;

	if (svc->protocol != SVC_PROTO_TCP)
		return 0;
	if (svc->timeout_ms)
		return cfg_fail(x, config_setting_get_member(e, "timeout_ms"),
				"a request timeout %s", need);
	if (svc->n_routes)
		return cfg_fail(x, config_setting_get_member(e, "routes"), "routing requests %s",
				need);
	if ((svc->retry.on & ~RETRY_ON_CONNECT_FAILURE) || svc->retry.n_statuses) {
		r = config_setting_get_member(e, "retry");
		return cfg_fail(x, r ? config_setting_get_member(r, "on") : e,
				"retrying on anything but connect-failure %s", need);
	}
	return 0;
}

static const struct cfg_key cfg_service_keys[] = {
	{"name", cfg_svc_name, NULL},
	{"port", cfg_svc_port, NULL},
	{"identity", cfg_svc_identity, NULL},
	{"endpoints", cfg_svc_endpoints, NULL},
	{"addresses", cfg_svc_addresses, NULL},
	{"split", cfg_svc_split, &cfg_split_set},
	{"dns", cfg_svc_dns, NULL},
	{"protocol", cfg_svc_protocol, NULL},
	{"timeout_ms", cfg_svc_timeout, NULL},
	{"connect_timeout_ms", cfg_svc_connect_timeout, NULL},
	{"retry", cfg_svc_retry, &cfg_retry_set},
	{"routes", cfg_svc_routes, &cfg_route_set},
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
		svc->protocol = SVC_PROTO_AUTO;
		retry_defaults(&svc->retry);
		rc = cfg_walk(x, e, cfg_service_keys, ARRAY_SIZE(cfg_service_keys), svc);
		if (rc == 0)
			rc = cfg_require(x, e, "name");
		if (rc == 0)
			rc = cfg_require(x, e, "port");
		if (rc == 0 && !svc->endpoints == !svc->dns)
			rc = cfg_fail(x, e,
				      svc->dns ? "endpoints and dns are both set: one of the two"
					       : "missing required key endpoints (or dns)");
		if (rc == 0)
			rc = svc_tcp_check(x, svc, e);
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

/* dns_servers = [ "10.0.0.10", "10.0.0.10:5353", "[fd00::a]:53" ] */
int cfg_dns_servers(struct cfg_ctx *x, const config_setting_t *s, void *obj)
{
	struct config *c = ((struct cfg_state *)obj)->c;
	size_t i, j, n;
	int rc;

	rc = cfg_get_seq(x, s, &n);
	if (rc < 0 || n == 0)
		return rc;
	c->dns_servers = calloc(n, sizeof(*c->dns_servers));
	if (!c->dns_servers)
		return cfg_oom(x);
	c->n_dns_servers = n;
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		struct ldm_addr *a = &c->dns_servers[i];
		char bare[INET6_ADDRSTRLEN + 8];
		const char *v;

		rc = cfg_get_string(x, e, &v);
		if (rc < 0)
			return rc;
		/* A bare address gets the DNS port. */
		snprintf(bare, sizeof(bare),
			 strchr(v, ':') && !strchr(v, '[') ? "[%s]:53" : "%s:53", v);
		if (config_parse_hostport(v, a) < 0 &&
		    (strlen(v) > INET6_ADDRSTRLEN || config_parse_hostport(bare, a) < 0))
			return cfg_bad_value(x, e, v,
					     "is not an address like 10.96.0.10, 10.96.0.10:53 "
					     "or [fd00::a]:53");
		for (j = 0; j < i; j++)
			if (!memcmp(&c->dns_servers[j], a, sizeof(*a)))
				return cfg_fail(x, e, "duplicate DNS server %s", CFG_Q(v));
	}
	return 0;
}
