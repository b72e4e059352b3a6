/*
 * Unit tests for daemon/policy/policy.c: table-driven decisions (the seed example,
 * deny over allow, audit, default-deny, ports, principals and namespaces,
 * unauthenticated callers, hosts, paths and their normalisation, L7 rules
 * on non-HTTP connections), policy_needs_request, malformed patterns with
 * their messages, and glob edge cases including hostile patterns.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "ldmesh/common.h"
#include "policy/policy.h"

#define NAME "t.conf"

#define PAYMENTS "spiffe://cluster.local/ns/shop/sa/payments"
#define WEB "spiffe://cluster.local/ns/shop/sa/web"
#define EVIL "spiffe://cluster.local/ns/shop/sa/evil"
#define LEGACY "spiffe://cluster.local/ns/legacy/sa/old"
#define ORDERS "spiffe://cluster.local/ns/shop/sa/orders"

/* ------------------------------------------------------------------ */
/* Policy configs the decision table refers to                         */

enum {
	C_SEED,
	C_DENY,
	C_AUDIT,
	C_DEFDENY,
	C_PORTS,
	C_IDS,
	C_HOSTS,
	C_PATHS,
	C_EMPTY,
	C_EMPTY_DENY,
	C_COUNT
};

static const char *const configs[C_COUNT] = {
	/* issue 4: only payments may GET under /api/ on orders port 8080. */
	[C_SEED] = "policies = ( { name = \"orders-from-payments\"; action = \"allow\";\n"
		   "  ports = [ 8080 ];\n"
		   "  principals = [ \"" PAYMENTS "\" ];\n"
		   "  methods = [ \"GET\" ]; paths = [ \"/api/*\" ]; } );\n",
	[C_DENY] = "policies = (\n"
		   " { name = \"allow-shop\"; action = \"allow\"; namespaces = [ \"shop\" ]; },\n"
		   " { name = \"no-admin\"; action = \"deny\"; paths = [ \"/admin/*\" ]; },\n"
		   " { name = \"block-evil\"; action = \"deny\";\n"
		   "   principals = [ \"" EVIL "\" ]; } );\n",
	[C_AUDIT] =
		"policies = (\n"
		" { name = \"watch-all\"; action = \"audit\"; },\n"
		" { name = \"watch-posts\"; action = \"audit\"; methods = [ \"POST\" ]; },\n"
		" { name = \"deny-legacy\"; action = \"deny\"; namespaces = [ \"legacy\" ]; } );\n",
	[C_DEFDENY] = "policy_default = \"deny\";\n"
		      "policies = (\n"
		      " { name = \"probes\"; action = \"allow\"; ports = [ 8081 ];\n"
		      "   unauthenticated = true; },\n"
		      " { name = \"metrics-audit\"; action = \"audit\"; ports = [ 9100 ]; } );\n",
	[C_PORTS] = "policies = (\n"
		    " { name = \"web\"; action = \"allow\"; ports = [ 8080, 80 ];\n"
		    "   principals = [ \"*\" ]; },\n"
		    " { name = \"db\"; action = \"allow\"; ports = [ 5432 ];\n"
		    "   principals = [ \"" ORDERS "\" ]; } );\n",
	[C_IDS] = "policies = (\n"
		  " { name = \"shop-prefix\"; action = \"allow\"; ports = [ 7000 ];\n"
		  "   principals = [ \"spiffe://cluster.local/ns/shop/*\",\n"
		  "                  \"spiffe://partner.example/svc/billing\" ]; },\n"
		  " { name = \"ns-team\"; action = \"allow\"; ports = [ 7001 ];\n"
		  "   namespaces = [ \"team-*\", \"ops\" ]; },\n"
		  " { name = \"web-or-anonymous\"; action = \"allow\"; ports = [ 7002 ];\n"
		  "   principals = [ \"" WEB "\" ]; unauthenticated = true; },\n"
		  " { name = \"shop-web-only\"; action = \"allow\"; ports = [ 7003 ];\n"
		  "   principals = [ \"spiffe://cluster.local/*\" ]; namespaces = [ \"shop\" ]; } "
		  ");\n",
	[C_HOSTS] =
		"policies = (\n"
		" { name = \"api-host\"; action = \"allow\"; ports = [ 8443 ];\n"
		"   hosts = [ \"api.example.com\", \"*.shop.svc\", \"admin:9000\", \"[fd00::1]\" "
		"]; },\n"
		" { name = \"no-internal\"; action = \"deny\"; hosts = [ \"internal.*\" ]; } );\n",
	[C_PATHS] =
		"policies = ( { name = \"paths\"; action = \"allow\"; ports = [ 8000 ];\n"
		"  paths = [ \"/healthz\", \"/api/*\", \"*/info\", \"/v?/items/*/detail\" ]; },\n"
		" { name = \"vhost\"; action = \"allow\"; ports = [ 8001 ]; hosts = [ \"orders\" "
		"]; } );\n",
	[C_EMPTY] = "",
	[C_EMPTY_DENY] = "policy_default = \"deny\";\n",
};

static struct policy_set *sets[C_COUNT];

static int setup_sets(void **state)
{
	char err[512];
	int i;

	for (i = 0; i < C_COUNT; i++) {
		struct config *c = config_parse(configs[i], NAME, err, sizeof(err));

		if (!c) {
			fprintf(stderr, "config %d rejected: %s\n", i, err);
			return -1;
		}
		sets[i] = policy_compile(c, err, sizeof(err));
		/* The set must not borrow from the config: free it now. */
		config_free(c);
		if (!sets[i]) {
			fprintf(stderr, "config %d not compiled: %s\n", i, err);
			return -1;
		}
	}
	return 0;
}

static int teardown_sets(void **state)
{
	int i;

	for (i = 0; i < C_COUNT; i++) {
		policy_free(sets[i]);
		sets[i] = NULL;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Decisions                                                           */

#define A POLICY_ALLOW
#define D POLICY_DENY

struct decision_case {
	const char *name;
	int config;
	const char *principal;
	uint16_t port;
	const char *method, *path, *host;
	enum policy_decision want;
	const char *rule;
	const char *audit; /* matching audit rules, comma-separated, or NULL */
};

static const struct decision_case decision_cases[] = {
	/* The seed example. */
	{"seed: payments GET /api/*", C_SEED, PAYMENTS, 8080, "GET", "/api/orders", "orders", A,
	 "orders-from-payments", NULL},
	{"seed: payments POST is denied", C_SEED, PAYMENTS, 8080, "POST", "/api/orders", "orders",
	 D, "no-allow-rule-matched", NULL},
	{"seed: other identity is denied", C_SEED, WEB, 8080, "GET", "/api/orders", "orders", D,
	 "no-allow-rule-matched", NULL},
	{"seed: unauthenticated is denied", C_SEED, NULL, 8080, "GET", "/api/orders", "orders", D,
	 "no-allow-rule-matched", NULL},
	{"seed: empty principal is unauthenticated", C_SEED, "", 8080, "GET", "/api/orders",
	 "orders", D, "no-allow-rule-matched", NULL},
	{"seed: path outside /api/", C_SEED, PAYMENTS, 8080, "GET", "/healthz", NULL, D,
	 "no-allow-rule-matched", NULL},
	{"seed: /api itself is not under /api/*", C_SEED, PAYMENTS, 8080, "GET", "/api", NULL, D,
	 "no-allow-rule-matched", NULL},
	{"seed: paths are case-sensitive", C_SEED, PAYMENTS, 8080, "GET", "/API/orders", NULL, D,
	 "no-allow-rule-matched", NULL},
	{"seed: methods are case-sensitive", C_SEED, PAYMENTS, 8080, "get", "/api/orders", NULL, D,
	 "no-allow-rule-matched", NULL},
	{"seed: caller strips the query", C_SEED, PAYMENTS, 8080, "GET", "/api/orders", NULL, A,
	 "orders-from-payments", NULL},
	{"seed: a query left in is cut anyway", C_SEED, PAYMENTS, 8080, "GET",
	 "/api/orders?id=7&x=/admin", NULL, A, "orders-from-payments", NULL},
	{"seed: L7 rule never matches a TCP connection", C_SEED, PAYMENTS, 8080, NULL, NULL, NULL,
	 D, "no-allow-rule-matched", NULL},
	{"seed: other port follows the default", C_SEED, WEB, 9090, "POST", "/x", NULL, A,
	 "default-allow", NULL},
	{"seed: other port, TCP", C_SEED, NULL, 9090, NULL, NULL, NULL, A, "default-allow", NULL},
	{"seed: dot segments resolved", C_SEED, PAYMENTS, 8080, "GET", "/api/../admin", NULL, D,
	 "no-allow-rule-matched", NULL},
	{"seed: repeated slashes merged", C_SEED, PAYMENTS, 8080, "GET", "//api//orders", NULL, A,
	 "orders-from-payments", NULL},

	/* Deny is evaluated first and wins. */
	{"deny: allow rule allows", C_DENY, WEB, 80, "GET", "/shop", NULL, A, "allow-shop", NULL},
	{"deny: path deny wins over allow", C_DENY, WEB, 80, "GET", "/admin/users", NULL, D,
	 "no-admin", NULL},
	{"deny: principal deny wins over namespace allow", C_DENY, EVIL, 80, "GET", "/shop", NULL,
	 D, "block-evil", NULL},
	{"deny: principal deny on TCP", C_DENY, EVIL, 80, NULL, NULL, NULL, D, "block-evil", NULL},
	{"deny: L7 deny refuses non-HTTP (deny more)", C_DENY, WEB, 80, NULL, NULL, NULL, D,
	 "no-admin", NULL},
	{"deny: other namespace", C_DENY, LEGACY, 80, "GET", "/shop", NULL, D,
	 "no-allow-rule-matched", NULL},
	{"deny: percent-encoded letters decoded", C_DENY, WEB, 80, "GET", "/%61dmin/x", NULL, D,
	 "no-admin", NULL},
	{"deny: encoded slash decoded", C_DENY, WEB, 80, "GET", "/admin%2Fx", NULL, D, "no-admin",
	 NULL},
	{"deny: encoded dot-dot resolved", C_DENY, WEB, 80, "GET", "/x/%2e%2E/admin/y", NULL, D,
	 "no-admin", NULL},
	{"deny: backslash read as slash", C_DENY, WEB, 80, "GET", "/admin\\x", NULL, D, "no-admin",
	 NULL},
	{"deny: double slash merged", C_DENY, WEB, 80, "GET", "//admin//x", NULL, D, "no-admin",
	 NULL},
	{"deny: unreadable path fails closed", C_DENY, WEB, 80, "GET", "", NULL, D, "no-admin",
	 NULL},
	{"deny: absolute-form target fails closed", C_DENY, WEB, 80, "GET", "http://orders/admin/x",
	 NULL, D, "no-admin", NULL},
	{"deny: missing path on HTTP fails closed", C_DENY, WEB, 80, "GET", NULL, NULL, D,
	 "no-admin", NULL},
	{"deny: /administrator is not /admin/*", C_DENY, WEB, 80, "GET", "/administrator", NULL, A,
	 "allow-shop", NULL},

	/* Audit rules are reported and never decide. */
	{"audit: GET", C_AUDIT, WEB, 80, "GET", "/", NULL, A, "default-allow", "watch-all"},
	{"audit: POST matches both", C_AUDIT, WEB, 80, "POST", "/", NULL, A, "default-allow",
	 "watch-all,watch-posts"},
	{"audit: reported on a deny too", C_AUDIT, LEGACY, 80, "POST", "/", NULL, D, "deny-legacy",
	 "watch-all,watch-posts"},
	{"audit: L7 audit not on TCP", C_AUDIT, NULL, 80, NULL, NULL, NULL, A, "default-allow",
	 "watch-all"},

	/* Default deny, unauthenticated callers. */
	{"default-deny: probe port, anonymous", C_DEFDENY, NULL, 8081, NULL, NULL, NULL, A,
	 "probes", NULL},
	{"default-deny: probe port, meshed", C_DEFDENY, WEB, 8081, "GET", "/ready", NULL, A,
	 "probes", NULL},
	{"default-deny: no rule for the port", C_DEFDENY, WEB, 8080, "GET", "/", NULL, D,
	 "default-deny", NULL},
	{"default-deny: audit only is still denied", C_DEFDENY, WEB, 9100, NULL, NULL, NULL, D,
	 "default-deny", "metrics-audit"},
	{"default-deny: empty set", C_EMPTY_DENY, WEB, 1, NULL, NULL, NULL, D, "default-deny",
	 NULL},
	{"default-allow: empty set", C_EMPTY, NULL, 1, "GET", "/", "x", A, "default-allow", NULL},

	/* Ports select allow rules. */
	{"ports: listed port, any identity", C_PORTS, WEB, 8080, NULL, NULL, NULL, A, "web", NULL},
	{"ports: second listed port", C_PORTS, WEB, 80, NULL, NULL, NULL, A, "web", NULL},
	{"ports: * needs an identity", C_PORTS, NULL, 80, NULL, NULL, NULL, D,
	 "no-allow-rule-matched", NULL},
	{"ports: db allows orders", C_PORTS, ORDERS, 5432, NULL, NULL, NULL, A, "db", NULL},
	{"ports: db refuses web", C_PORTS, WEB, 5432, NULL, NULL, NULL, D, "no-allow-rule-matched",
	 NULL},
	{"ports: unlisted port follows the default", C_PORTS, NULL, 6379, NULL, NULL, NULL, A,
	 "default-allow", NULL},

	/* Principals: prefixes, namespaces, unauthenticated. */
	{"ids: prefix matches", C_IDS, WEB, 7000, NULL, NULL, NULL, A, "shop-prefix", NULL},
	{"ids: prefix stops at the slash", C_IDS, "spiffe://cluster.local/ns/shopping/sa/a", 7000,
	 NULL, NULL, NULL, D, "no-allow-rule-matched", NULL},
	{"ids: exact in another trust domain", C_IDS, "spiffe://partner.example/svc/billing", 7000,
	 NULL, NULL, NULL, A, "shop-prefix", NULL},
	{"ids: exact is not a prefix", C_IDS, "spiffe://partner.example/svc/billing2", 7000, NULL,
	 NULL, NULL, D, "no-allow-rule-matched", NULL},
	{"ids: namespace glob", C_IDS, "spiffe://cluster.local/ns/team-a/sa/x", 7001, NULL, NULL,
	 NULL, A, "ns-team", NULL},
	{"ids: namespace in any trust domain", C_IDS, "spiffe://other.td/ns/ops/sa/x", 7001, NULL,
	 NULL, NULL, A, "ns-team", NULL},
	{"ids: ns must be the first segment", C_IDS, "spiffe://cluster.local/x/ns/ops/sa/y", 7001,
	 NULL, NULL, NULL, D, "no-allow-rule-matched", NULL},
	{"ids: ns needs a segment after it", C_IDS, "spiffe://cluster.local/ns/ops", 7001, NULL,
	 NULL, NULL, D, "no-allow-rule-matched", NULL},
	{"ids: namespaces are case-sensitive", C_IDS, "spiffe://cluster.local/ns/Ops/sa/x", 7001,
	 NULL, NULL, NULL, D, "no-allow-rule-matched", NULL},
	{"ids: namespace rule needs an identity", C_IDS, NULL, 7001, NULL, NULL, NULL, D,
	 "no-allow-rule-matched", NULL},
	{"ids: unauthenticated = true admits anonymous", C_IDS, NULL, 7002, NULL, NULL, NULL, A,
	 "web-or-anonymous", NULL},
	{"ids: ... and the listed principal", C_IDS, WEB, 7002, NULL, NULL, NULL, A,
	 "web-or-anonymous", NULL},
	{"ids: ... but no other identity", C_IDS, PAYMENTS, 7002, NULL, NULL, NULL, D,
	 "no-allow-rule-matched", NULL},
	{"ids: principals and namespaces both apply", C_IDS, WEB, 7003, NULL, NULL, NULL, A,
	 "shop-web-only", NULL},
	{"ids: ... namespace fails", C_IDS, LEGACY, 7003, NULL, NULL, NULL, D,
	 "no-allow-rule-matched", NULL},

	/* Hosts: case, port, trailing dot, absent. */
	{"hosts: exact", C_HOSTS, NULL, 8443, "GET", "/", "api.example.com", A, "api-host", NULL},
	{"hosts: case-insensitive, port ignored", C_HOSTS, NULL, 8443, "GET", "/",
	 "API.Example.COM:8443", A, "api-host", NULL},
	{"hosts: trailing dot", C_HOSTS, NULL, 8443, "GET", "/", "api.example.com.", A, "api-host",
	 NULL},
	{"hosts: wildcard", C_HOSTS, NULL, 8443, "GET", "/", "orders.shop.svc:80", A, "api-host",
	 NULL},
	{"hosts: wildcard needs the label", C_HOSTS, NULL, 8443, "GET", "/", "shop.svc", D,
	 "no-allow-rule-matched", NULL},
	{"hosts: pattern with a port", C_HOSTS, NULL, 8443, "GET", "/", "admin:9000", A, "api-host",
	 NULL},
	{"hosts: pattern port needs a port", C_HOSTS, NULL, 8443, "GET", "/", "admin", D,
	 "no-allow-rule-matched", NULL},
	{"hosts: pattern port must be equal", C_HOSTS, NULL, 8443, "GET", "/", "admin:9001", D,
	 "no-allow-rule-matched", NULL},
	{"hosts: IPv6 literal with port", C_HOSTS, NULL, 8443, "GET", "/", "[FD00::1]:8443", A,
	 "api-host", NULL},
	{"hosts: absent Host matches no allow", C_PATHS, NULL, 8001, "GET", "/", NULL, D,
	 "no-allow-rule-matched", NULL},
	{"hosts: ... the vhost does", C_PATHS, NULL, 8001, "GET", "/", "Orders:8001", A, "vhost",
	 NULL},
	{"hosts: absent Host fails closed on a host deny", C_HOSTS, NULL, 8443, "GET", "/", NULL, D,
	 "no-internal", NULL},
	{"hosts: deny by host", C_HOSTS, WEB, 1234, "GET", "/", "INTERNAL.corp:80", D,
	 "no-internal", NULL},
	{"hosts: absent Host fails closed on deny", C_HOSTS, WEB, 1234, "GET", "/", "", D,
	 "no-internal", NULL},
	{"hosts: other host", C_HOSTS, WEB, 1234, "GET", "/", "internal", A, "default-allow", NULL},
	{"hosts: host deny refuses non-HTTP (deny more)", C_HOSTS, WEB, 1234, NULL, NULL, NULL, D,
	 "no-internal", NULL},

	/* Paths: exact, prefix, suffix, glob. */
	{"paths: exact", C_PATHS, NULL, 8000, "GET", "/healthz", NULL, A, "paths", NULL},
	{"paths: exact refuses a trailing slash", C_PATHS, NULL, 8000, "GET", "/healthz/", NULL, D,
	 "no-allow-rule-matched", NULL},
	{"paths: exact refuses a longer path", C_PATHS, NULL, 8000, "GET", "/healthzz", NULL, D,
	 "no-allow-rule-matched", NULL},
	{"paths: prefix matches the bare prefix", C_PATHS, NULL, 8000, "GET", "/api/", NULL, A,
	 "paths", NULL},
	{"paths: prefix crosses slashes", C_PATHS, NULL, 8000, "GET", "/api/a/b/c", NULL, A,
	 "paths", NULL},
	{"paths: suffix", C_PATHS, NULL, 8000, "GET", "/svc/info", NULL, A, "paths", NULL},
	{"paths: suffix of the root", C_PATHS, NULL, 8000, "GET", "/info", NULL, A, "paths", NULL},
	{"paths: glob with ? and *", C_PATHS, NULL, 8000, "GET", "/v1/items/42/detail", NULL, A,
	 "paths", NULL},
	{"paths: ? is one character", C_PATHS, NULL, 8000, "GET", "/v10/items/42/detail", NULL, D,
	 "no-allow-rule-matched", NULL},
	{"paths: dot segment resolved", C_PATHS, NULL, 8000, "GET", "/./healthz", NULL, A, "paths",
	 NULL},
	{"paths: OPTIONS * is not a path", C_PATHS, NULL, 8000, "OPTIONS", "*", NULL, D,
	 "no-allow-rule-matched", NULL},
	{"paths: .. above the root stays at the root", C_PATHS, NULL, 8000, "GET", "/../../healthz",
	 NULL, A, "paths", NULL},
};

/* The audit names in r, as "a,b". */
static void join_audit(const struct policy_result *r, char *buf, size_t len)
{
	size_t off = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; i < r->n_audit; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "", r->audit[i]);
}

static void test_decisions(void **state)
{
	char audit[256];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(decision_cases); i++) {
		const struct decision_case *c = &decision_cases[i];
		const struct policy_request req = {c->principal, c->port, c->method, c->path,
						   c->host};
		struct policy_result r;

		policy_eval(sets[c->config], &req, &r);
		join_audit(&r, audit, sizeof(audit));
		if (r.decision != c->want || !r.rule || strcmp(r.rule, c->rule) != 0 ||
		    strcmp(audit, c->audit ? c->audit : "") != 0)
			fail_msg("case \"%s\": got %s by \"%s\" (audit \"%s\"), want %s by "
				 "\"%s\" (audit \"%s\")",
				 c->name, r.decision == A ? "allow" : "deny",
				 r.rule ? r.rule : "(null)", audit, c->want == A ? "allow" : "deny",
				 c->rule, c->audit ? c->audit : "");
	}
	print_message("%zu decision cases\n", ARRAY_SIZE(decision_cases));
}

/* ------------------------------------------------------------------ */
/* policy_needs_request                                                */

struct needs_case {
	const char *name;
	int config;
	uint16_t port;
	const char *principal;
	int want;
};

static const struct needs_case needs_cases[] = {
	{"seed: payments on 8080 waits for requests", C_SEED, 8080, PAYMENTS, 1},
	{"seed: other identity is decided now", C_SEED, 8080, WEB, 0},
	{"seed: anonymous is decided now", C_SEED, 8080, NULL, 0},
	{"seed: other port is decided now", C_SEED, 9090, PAYMENTS, 0},
	{"deny: an L7 deny for anyone waits", C_DENY, 80, WEB, 1},
	{"deny: anonymous waits too", C_DENY, 80, NULL, 1},
	{"deny: a TCP deny for the caller is final", C_DENY, 80, EVIL, 0},
	{"audit: an L7 audit rule waits", C_AUDIT, 80, WEB, 1},
	{"audit: ... unless a TCP deny decides", C_AUDIT, 80, LEGACY, 0},
	{"ports: no L7 rules", C_PORTS, 8080, WEB, 0},
	{"hosts: host rule on its port", C_HOSTS, 8443, NULL, 1},
	{"hosts: deny host rule on every port", C_HOSTS, 1, WEB, 1},
	{"paths: on its port", C_PATHS, 8000, WEB, 1},
	{"paths: off its port", C_PATHS, 8002, WEB, 0},
	{"empty set", C_EMPTY, 80, WEB, 0},
};

static void test_needs_request(void **state)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(needs_cases); i++) {
		const struct needs_case *c = &needs_cases[i];
		int got = policy_needs_request(sets[c->config], c->port, c->principal);

		if (got != c->want)
			fail_msg("case \"%s\": got %d, want %d", c->name, got, c->want);
	}
}

/*
 * When policy_needs_request says 0, the connection-level decision must be
 * the one every request would get.  Checked over a grid of callers, ports
 * and requests for every config.
 */
static void test_needs_request_is_sound(void **state)
{
	static const char *const ids[] = {
		NULL, PAYMENTS, WEB, EVIL, LEGACY, ORDERS, "spiffe://cluster.local/ns/team-a/sa/x"};
	static const uint16_t ports[] = {1,    80,   1234, 5432, 7000, 7001, 7002,
					 7003, 8000, 8080, 8081, 8443, 9090, 9100};
	static const char *const reqs[][3] = {
		{"GET", "/api/x", "orders"},
		{"POST", "/admin/x", "internal.x"},
		{"GET", "/healthz", NULL},
		{"DELETE", "", "api.example.com"},
	};
	struct policy_result conn, one;
	size_t s, i, j, k;

	for (s = 0; s < C_COUNT; s++)
		for (i = 0; i < ARRAY_SIZE(ids); i++)
			for (j = 0; j < ARRAY_SIZE(ports); j++) {
				struct policy_request req = {ids[i], ports[j], NULL, NULL, NULL};

				if (policy_needs_request(sets[s], ports[j], ids[i]))
					continue;
				policy_eval(sets[s], &req, &conn);
				for (k = 0; k < ARRAY_SIZE(reqs); k++) {
					req.method = reqs[k][0];
					req.path = reqs[k][1];
					req.host = reqs[k][2];
					policy_eval(sets[s], &req, &one);
					/* A caller denied by a TCP-level rule never
					 * sends requests; another deny rule may be
					 * the first to match one, which is fine. */
					if (one.decision != conn.decision ||
					    (conn.decision == POLICY_ALLOW &&
					     strcmp(one.rule, conn.rule) != 0))
						fail_msg("config %zu, %s on port %u: connection "
							 "says %s, %s %s says %s",
							 s, ids[i] ? ids[i] : "anonymous", ports[j],
							 conn.rule, req.method, req.path, one.rule);
				}
			}
}

/* ------------------------------------------------------------------ */
/* More evaluation properties                                          */

static void test_audit_is_capped(void **state)
{
	struct config cfg = {0};
	struct config_policy pol[POLICY_MAX_AUDIT + 3];
	char names[POLICY_MAX_AUDIT + 3][16], err[256];
	const struct policy_request req = {WEB, 80, NULL, NULL, NULL};
	struct policy_result r;
	struct policy_set *p;
	size_t i;

	memset(pol, 0, sizeof(pol));
	for (i = 0; i < ARRAY_SIZE(pol); i++) {
		snprintf(names[i], sizeof(names[i]), "audit-%zu", i);
		pol[i].name = names[i];
		pol[i].action = CONFIG_ACTION_AUDIT;
	}
	cfg.policies = pol;
	cfg.n_policies = ARRAY_SIZE(pol);
	p = policy_compile(&cfg, err, sizeof(err));
	assert_non_null(p);
	policy_eval(p, &req, &r);
	assert_int_equal(r.decision, POLICY_ALLOW);
	assert_string_equal(r.rule, "default-allow");
	assert_int_equal(r.n_audit, POLICY_MAX_AUDIT);
	assert_string_equal(r.audit[0], "audit-0");
	assert_string_equal(r.audit[POLICY_MAX_AUDIT - 1], "audit-7");
	policy_free(p);
}

/* First matching rule in config order names the decision. */
static void test_rule_order(void **state)
{
	static const char text[] =
		"policies = (\n"
		" { name = \"a1\"; action = \"allow\"; principals = [ \"*\" ]; },\n"
		" { name = \"d1\"; action = \"deny\"; namespaces = [ \"legacy\" ]; },\n"
		" { name = \"a2\"; action = \"allow\"; },\n"
		" { name = \"d2\"; action = \"deny\"; principals = [ \"" LEGACY "\" ]; } );\n";
	const struct policy_request legacy = {LEGACY, 1, NULL, NULL, NULL};
	const struct policy_request anon = {NULL, 1, NULL, NULL, NULL};
	const struct policy_request web = {WEB, 1, NULL, NULL, NULL};
	struct policy_result r;
	struct policy_set *p;
	struct config *c;
	char err[256];

	c = config_parse(text, NAME, err, sizeof(err));
	assert_non_null(c);
	p = policy_compile(c, err, sizeof(err));
	config_free(c);
	assert_non_null(p);
	policy_eval(p, &legacy, &r);
	assert_string_equal(r.rule, "d1");
	policy_eval(p, &anon, &r);
	assert_string_equal(r.rule, "a2");
	policy_eval(p, &web, &r);
	assert_string_equal(r.rule, "a1");
	policy_free(p);
}

static void test_null_set(void **state)
{
	const struct policy_request req = {WEB, 80, "GET", "/", NULL};
	struct policy_result r;

	policy_free(NULL);
	/* A missing set is a caller bug: it must not open the door. */
	policy_eval(NULL, &req, &r);
	assert_int_equal(r.decision, POLICY_DENY);
	assert_int_equal(policy_needs_request(NULL, 80, WEB), 0);
}

/* A path longer than the normalisation buffer is unreadable: fail closed. */
/*
 * Random rule sets (fixed seed, so a failure repeats): the decision the
 * data path reaches (AT_CONNECT, then per request or NOT_HTTP when
 * pending) equals what `ldmeshctl policy check` answers for the same
 * caller, port and request (AT_REQUEST with a method, NOT_HTTP without),
 * and falling back to NOT_HTTP never allows a caller a request the rules
 * would deny.  Both sides go through policy_decide() as the daemon does
 * (l7.c, conn.c, ctl.c); this checks the stages agree with each other.
 */
static unsigned prop_rand(unsigned *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return (*seed >> 16) & 0x7fff;
}

static void prop_list(char *buf, size_t len, unsigned *seed, const char *key,
		      const char *const *items, size_t n)
{
	size_t used = strlen(buf), i;
	int any = 0;

	if (prop_rand(seed) % 2)
		return;
	used += (size_t)snprintf(buf + used, len - used, " %s = [ ", key);
	for (i = 0; i < n; i++)
		if (prop_rand(seed) % 2 || (!any && i == n - 1)) {
			used += (size_t)snprintf(buf + used, len - used, "%s%s", any ? ", " : "",
						 items[i]);
			any = 1;
		}
	snprintf(buf + used, len - used, " ];");
}

static enum policy_decision prop_data_path(const struct policy_set *p,
					   const struct policy_request *req)
{
	struct policy_result r;

	policy_decide(p, POLICY_AT_CONNECT, req, &r);
	if (r.decision != POLICY_PENDING)
		return r.decision;
	policy_decide(p, req->method ? POLICY_AT_REQUEST : POLICY_NOT_HTTP, req, &r);
	return r.decision;
}

static void test_random_sets_data_path_equals_check(void **state)
{
	static const char *const actions[] = {"allow", "deny", "audit"};
	static const char *const ports[] = {"80", "8080", "9000"};
	static const char *const principals[] = {"\"" PAYMENTS "\"", "\"" WEB "\"",
						 "\"spiffe://cluster.local/ns/shop/*\"", "\"*\""};
	static const char *const namespaces[] = {"\"shop\"", "\"legacy\""};
	static const char *const methods[] = {"\"GET\"", "\"POST\""};
	static const char *const paths[] = {"\"/api/*\"", "\"/admin\"", "\"/x/*/y\""};
	static const char *const hosts[] = {"\"orders\"", "\"*.example.com\""};
	static const char *const callers[] = {NULL, PAYMENTS, WEB, EVIL, LEGACY};
	static const uint16_t qports[] = {80, 8080, 9000, 1234};
	static const char *const reqs[][3] = {
		{NULL, NULL, NULL},
		{"GET", "/api/v1", "orders"},
		{"POST", "/admin", NULL},
		{"GET", "/x/a/y", "a.example.com"},
		{"DELETE", "/api/z", "orders"},
		{"PRI", "*", NULL},
	};
	unsigned seed = 18;
	int sets_done = 0, checks = 0, pending = 0;

	while (sets_done < 1500) {
		char text[4096], err[512];
		struct config *c;
		struct policy_set *p;
		int n = 1 + (int)(prop_rand(&seed) % 4), k;
		size_t used;

		used = (size_t)snprintf(text, sizeof(text),
					"policy_default = \"%s\";\npolicies = (",
					prop_rand(&seed) % 3 ? "allow" : "deny");
		for (k = 0; k < n; k++) {
			snprintf(text + used, sizeof(text) - used,
				 "%s\n { name = \"r%d\"; action = \"%s\";", k ? "," : "", k,
				 actions[prop_rand(&seed) % 3]);
			prop_list(text, sizeof(text), &seed, "ports", ports, ARRAY_SIZE(ports));
			prop_list(text, sizeof(text), &seed, "principals", principals,
				  ARRAY_SIZE(principals));
			if (prop_rand(&seed) % 4 == 0)
				prop_list(text, sizeof(text), &seed, "namespaces", namespaces,
					  ARRAY_SIZE(namespaces));
			prop_list(text, sizeof(text), &seed, "methods", methods,
				  ARRAY_SIZE(methods));
			prop_list(text, sizeof(text), &seed, "paths", paths, ARRAY_SIZE(paths));
			if (prop_rand(&seed) % 3 == 0)
				prop_list(text, sizeof(text), &seed, "hosts", hosts,
					  ARRAY_SIZE(hosts));
			used = strlen(text);
			used += (size_t)snprintf(text + used, sizeof(text) - used, " }");
		}
		snprintf(text + used, sizeof(text) - used, " );\n");
		c = config_parse(text, NAME, err, sizeof(err));
		if (!c)
			fail_msg("generated config rejected: %s\n%s", err, text);
		p = policy_compile(c, err, sizeof(err));
		config_free(c);
		if (!p)
			fail_msg("generated config not compiled: %s\n%s", err, text);
		for (size_t i = 0; i < ARRAY_SIZE(callers); i++)
			for (size_t j = 0; j < ARRAY_SIZE(qports); j++) {
				struct policy_request base = {callers[i], qports[j], NULL, NULL,
							      NULL};
				struct policy_result at_conn, not_http, one;

				policy_decide(p, POLICY_AT_CONNECT, &base, &at_conn);
				policy_decide(p, POLICY_NOT_HTTP, &base, &not_http);
				pending += at_conn.decision == POLICY_PENDING;
				if (at_conn.decision != POLICY_PENDING &&
				    at_conn.decision != not_http.decision)
					fail_msg("%s port %u: connect says %s, not-http %s\n%s",
						 callers[i] ? callers[i] : "anonymous", qports[j],
						 at_conn.rule, not_http.rule, text);
				for (size_t r = 0; r < ARRAY_SIZE(reqs); r++) {
					struct policy_request req = base;
					enum policy_decision live;

					req.method = reqs[r][0];
					req.path = reqs[r][1];
					req.host = reqs[r][2];
					live = prop_data_path(p, &req);
					policy_decide(
						p, req.method ? POLICY_AT_REQUEST : POLICY_NOT_HTTP,
						&req, &one);
					if (live != one.decision)
						fail_msg("%s port %u %s %s: data path %s, check %s "
							 "by "
							 "%s\n%s",
							 callers[i] ? callers[i] : "anonymous",
							 qports[j],
							 req.method ? req.method : "(not HTTP)",
							 req.path ? req.path : "",
							 live ? "deny" : "allow",
							 one.decision ? "deny" : "allow", one.rule,
							 text);
					if (req.method && not_http.decision == POLICY_ALLOW &&
					    one.decision != POLICY_ALLOW)
						fail_msg("%s port %u %s %s: not-http allows, the "
							 "request "
							 "is denied by %s\n%s",
							 callers[i] ? callers[i] : "anonymous",
							 qports[j], req.method, req.path, one.rule,
							 text);
					checks++;
				}
			}
		policy_free(p);
		sets_done++;
	}
	/* The generator must reach both kinds of port. */
	assert_true(pending > 1000);
	assert_true(checks > 100000);
}

static void test_huge_path(void **state)
{
	size_t n = 10000;
	char *path = malloc(n + 1);
	const struct policy_request deny_req = {WEB, 80, "GET", path, NULL};
	const struct policy_request allow_req = {NULL, 8000, "GET", path, NULL};
	struct policy_result r;

	assert_non_null(path);
	memset(path, 'a', n);
	memcpy(path, "/api/", 5);
	path[n] = '\0';
	policy_eval(sets[C_DENY], &deny_req, &r);
	assert_string_equal(r.rule, "no-admin");
	policy_eval(sets[C_PATHS], &allow_req, &r);
	assert_string_equal(r.rule, "no-allow-rule-matched");
	free(path);
}

/* The shipped example config compiles. */
static void test_example_config(void **state)
{
	struct policy_set *p;
	struct config *c;
	char err[512];

	if (access("conf/ldmesh.conf", R_OK) != 0)
		skip();
	c = config_load("conf/ldmesh.conf", err, sizeof(err));
	if (!c)
		fail_msg("conf/ldmesh.conf: %s", err);
	p = policy_compile(c, err, sizeof(err));
	if (!p)
		fail_msg("conf/ldmesh.conf policies: %s", err);
	policy_free(p);
	config_free(c);
}

/* ------------------------------------------------------------------ */
/* Patterns                                                            */

struct pattern_case {
	enum policy_pattern_kind kind;
	const char *pattern;
	const char *want; /* NULL: valid; else a substring of the message */
};

static const struct pattern_case good_patterns[] = {
	{PATTERN_PRINCIPAL, "*", NULL},
	{PATTERN_PRINCIPAL, PAYMENTS, NULL},
	{PATTERN_PRINCIPAL, "spiffe://cluster.local/ns/shop/*", NULL},
	{PATTERN_PRINCIPAL, "spiffe://cluster.local/ns/sh*", NULL},
	{PATTERN_PRINCIPAL, "spiffe://cluster.local/*", NULL},
	{PATTERN_PRINCIPAL, "spiffe://clus*", NULL},
	{PATTERN_PRINCIPAL, "spiffe://*", NULL},
	{PATTERN_NAMESPACE, "shop", NULL},
	{PATTERN_NAMESPACE, "team-*", NULL},
	{PATTERN_NAMESPACE, "*", NULL},
	{PATTERN_METHOD, "GET", NULL},
	{PATTERN_METHOD, "PURGE", NULL},
	{PATTERN_METHOD, "M-SEARCH", NULL},
	{PATTERN_PATH, "/", NULL},
	{PATTERN_PATH, "*", NULL},
	{PATTERN_PATH, "/api/*", NULL},
	{PATTERN_PATH, "*/info", NULL},
	{PATTERN_PATH, "/v?/items/*/detail", NULL},
	{PATTERN_PATH, "/files/a%20b", NULL},
	{PATTERN_PATH, "/x/.well-known/y", NULL},
	{PATTERN_PATH, "/a..b/.c", NULL},
	{PATTERN_HOST, "orders", NULL},
	{PATTERN_HOST, "*.example.com", NULL},
	{PATTERN_HOST, "Orders.Shop.svc.cluster.local", NULL},
	{PATTERN_HOST, "orders:8080", NULL},
	{PATTERN_HOST, "orders:*", NULL},
	{PATTERN_HOST, "10.1.2.3:80", NULL},
	{PATTERN_HOST, "[fd00::1]", NULL},
	{PATTERN_HOST, "[fd00::1]:8080", NULL},
	{PATTERN_HOST, "*", NULL},
};

static char long_principal[2100], long_ns[70], long_method[40], long_path[2100], long_host[270];

static const struct pattern_case bad_patterns[] = {
	/* Empty, for every kind. */
	{PATTERN_PRINCIPAL, "", "principal \"\" is empty"},
	{PATTERN_NAMESPACE, "", "namespace \"\" is empty"},
	{PATTERN_METHOD, "", "method \"\" is empty"},
	{PATTERN_PATH, "", "path \"\" is empty"},
	{PATTERN_HOST, "", "host \"\" is empty"},
	{PATTERN_PATH, NULL, "is empty"},

	/* Principals. */
	{PATTERN_PRINCIPAL, "cluster.local/ns/shop/sa/web",
	 "principal \"cluster.local/ns/shop/sa/web\" is neither \"*\", a SPIFFE ID"},
	{PATTERN_PRINCIPAL, "web", "is neither"},
	{PATTERN_PRINCIPAL, "**", "is neither"},
	{PATTERN_PRINCIPAL, "spiffe://cluster.local/ns/*/sa/web",
	 "may use '*' only as its last character"},
	{PATTERN_PRINCIPAL, "spiffe://td/sa/w?b", "contains '?'"},
	{PATTERN_PRINCIPAL, "spiffe://Cluster.local/x", "not a valid SPIFFE ID"},
	{PATTERN_PRINCIPAL, "spiffe://cluster.local", "not a valid SPIFFE ID"},
	{PATTERN_PRINCIPAL, "spiffe://td/a/../b", "not a valid SPIFFE ID"},
	{PATTERN_PRINCIPAL, "spiffe://td/a b", "contains a space"},
	{PATTERN_PRINCIPAL, "spiffe://td/a\nb", "control character (byte 0x0a)"},
	{PATTERN_PRINCIPAL, "spiffe:///x*", "empty trust domain"},
	{PATTERN_PRINCIPAL, "spiffe://TD/*", "invalid trust domain"},
	{PATTERN_PRINCIPAL, "spiffe://td//*", "empty path segment"},
	{PATTERN_PRINCIPAL, "spiffe://td/../*", "'.' or '..' path segment"},
	{PATTERN_PRINCIPAL, "spiffe://td/a:b*", "invalid path"},
	{PATTERN_PRINCIPAL, long_principal, "the limit is 2048"},

	/* Namespaces. */
	{PATTERN_NAMESPACE, "Shop", "uppercase"},
	{PATTERN_NAMESPACE, "shop_x", "contains '_'"},
	{PATTERN_NAMESPACE, "shop/x", "contains '/'"},
	{PATTERN_NAMESPACE, long_ns, "longer than 63"},

	/* Methods. */
	{PATTERN_METHOD, "get", "\"get\" is not uppercase"},
	{PATTERN_METHOD, "*", "uses a wildcard"},
	{PATTERN_METHOD, "GE T", "contains a space"},
	{PATTERN_METHOD, "G/ET", "contains '/'"},
	{PATTERN_METHOD, long_method, "longer than 32"},

	/* Paths. */
	{PATTERN_PATH, "api/*", "\"api/*\" must start with '/'"},
	{PATTERN_PATH, "/a b", "contains a space"},
	{PATTERN_PATH, "/a\tb", "\"/a\\x09b\" contains a control character (byte 0x09)"},
	{PATTERN_PATH, "/caf\xc3\xa9", "non-ASCII byte (0xc3)"},
	{PATTERN_PATH, "/a#b", "fragment"},
	{PATTERN_PATH, "/a//b", "'//'"},
	{PATTERN_PATH, "/a/../b", "'.' or '..' segment"},
	{PATTERN_PATH, "/a/.", "'.' or '..' segment"},
	{PATTERN_PATH, "/%41", "encodes 'A' as %41"},
	{PATTERN_PATH, "/a%2Fb", "encodes '/' as %2F"},
	{PATTERN_PATH, "/a%5cb", "%5C"},
	{PATTERN_PATH, "/a%zz", "two hex digits"},
	{PATTERN_PATH, "/a%2", "two hex digits"},
	{PATTERN_PATH, "/a%3f", "lowercase hex"},
	{PATTERN_PATH, "/a\\b", "contains '\\'"},
	{PATTERN_PATH, long_path, "longer than 2048"},

	/* Hosts. */
	{PATTERN_HOST, "a/b", "contains '/'"},
	{PATTERN_HOST, "a b", "contains a space"},
	{PATTERN_HOST, "a@b", "contains '@'"},
	{PATTERN_HOST, "fd00::1", "must be in brackets"},
	{PATTERN_HOST, "[fd00::1", "without a closing ']'"},
	{PATTERN_HOST, "[]", "empty IPv6"},
	{PATTERN_HOST, "[fd00::g]", "invalid IPv6"},
	{PATTERN_HOST, "[fd00::1]x", "other than ':port'"},
	{PATTERN_HOST, "a]b", "'[' or ']'"},
	{PATTERN_HOST, "a:99999", "outside 1..65535"},
	{PATTERN_HOST, "a:0", "outside 1..65535"},
	{PATTERN_HOST, "a:", "empty port"},
	{PATTERN_HOST, ":80", "empty name"},
	{PATTERN_HOST, "a:8x", "not a number"},
	{PATTERN_HOST, "a:123456", "longer than 5"},
	{PATTERN_HOST, long_host, "longer than 261"},

	/* Kinds. */
	{(enum policy_pattern_kind)99, "x", "unknown pattern kind"},
};

static int setup_long(void **state)
{
	memset(long_principal, 'a', sizeof(long_principal) - 1);
	memcpy(long_principal, "spiffe://td/", 12);
	memset(long_ns, 'a', sizeof(long_ns) - 1);
	memset(long_method, 'A', sizeof(long_method) - 1);
	memset(long_path, 'a', sizeof(long_path) - 1);
	long_path[0] = '/';
	memset(long_host, 'a', sizeof(long_host) - 1);
	return 0;
}

static void test_good_patterns(void **state)
{
	char err[256];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(good_patterns); i++) {
		const struct pattern_case *c = &good_patterns[i];

		err[0] = '\0';
		if (policy_check_pattern(c->kind, c->pattern, err, sizeof(err)) != 0)
			fail_msg("\"%s\" (kind %d) refused: %s", c->pattern, c->kind, err);
	}
}

static void test_bad_patterns(void **state)
{
	char err[256];
	size_t i;
	int rc;

	for (i = 0; i < ARRAY_SIZE(bad_patterns); i++) {
		const struct pattern_case *c = &bad_patterns[i];

		err[0] = '\0';
		rc = policy_check_pattern(c->kind, c->pattern, err, sizeof(err));
		if (rc != -EINVAL)
			fail_msg("bad pattern %zu \"%.40s\" accepted (rc %d)", i,
				 c->pattern ? c->pattern : "(null)", rc);
		if (!strstr(err, c->want))
			fail_msg("bad pattern %zu \"%.40s\": message \"%s\" lacks \"%s\"", i,
				 c->pattern ? c->pattern : "(null)", err, c->want);
		/* One line, so it fits a log or an ldmeshctl answer. */
		assert_null(strchr(err, '\n'));
	}
	print_message("%zu malformed patterns\n", ARRAY_SIZE(bad_patterns));
}

/* Long patterns are quoted cut short; tiny or absent buffers are fine. */
static void test_pattern_messages(void **state)
{
	char err[512], tiny[8];

	assert_int_equal(policy_check_pattern(PATTERN_PATH, long_path, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "...\" is longer than 2048 bytes"));
	assert_true(strlen(err) < 200);
	assert_int_equal(policy_check_pattern(PATTERN_HOST, "a b", tiny, sizeof(tiny)), -EINVAL);
	assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
	assert_int_equal(policy_check_pattern(PATTERN_HOST, "a b", NULL, 0), -EINVAL);
	assert_int_equal(policy_check_pattern(PATTERN_HOST, "ok", NULL, 0), 0);
}

/* ------------------------------------------------------------------ */
/* policy_compile errors                                               */

/* Through config_parse: patterns the config parser lets by, policy_compile
 * refuses. */
struct compile_case {
	const char *text;
	const char *want;
};

/* daemon/config/policies.c runs the policy engine's pattern check, so these
 * are refused at load with file:line and the key; policy_compile refuses them
 * as well. */
static const struct compile_case compile_cases[] = {
	{"policies = ( { name = \"m\"; action = \"allow\"; methods = [ \"GET\", \"get\" ]; } );",
	 "methods[1]: \"get\" method \"get\" is not uppercase"},
	{"policies = ( { name = \"a\"; action = \"deny\"; },\n"
	 " { name = \"h\"; action = \"allow\"; hosts = [ \"a@b\" ]; } );",
	 "policies[1].hosts[0]: \"a@b\" host \"a@b\" contains '@'"},
	{"policies = ( { name = \"p\"; action = \"allow\"; paths = [ \"/a/../b\" ]; } );",
	 "paths[0]: \"/a/../b\" path \"/a/../b\" has a '.' or '..' segment"},
	{"policies = ( { name = \"w\"; action = \"allow\"; methods = [ \"*\" ]; } );",
	 "methods[0]: \"*\" method \"*\" uses a wildcard"},
	{"policies = ( { name = \"v6\"; action = \"allow\"; hosts = [ \"fd00::1\" ]; } );",
	 "hosts[0]: \"fd00::1\" host \"fd00::1\" has several ':'"},
};

static void test_compile_errors(void **state)
{
	struct config *c;
	char err[512];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(compile_cases); i++) {
		err[0] = '\0';
		c = config_parse(compile_cases[i].text, NAME, err, sizeof(err));
		if (c) {
			config_free(c);
			fail_msg("compile case %zu: the config check let it through", i);
		}
		if (!strstr(err, NAME ":") || !strstr(err, compile_cases[i].want))
			fail_msg("compile case %zu: \"%s\" lacks file:line or \"%s\"", i, err,
				 compile_cases[i].want);
	}
}

/* By hand: what the config parser already refuses must be refused here too. */
static void test_compile_errors_by_hand(void **state)
{
	char *principals[] = {PAYMENTS, "cluster.local/ns/shop/sa/web"};
	char *paths[] = {"api/*"};
	char *nss[] = {""};
	uint16_t ports[] = {80, 0};
	struct config_policy pol = {.name = "bad", .action = CONFIG_ACTION_ALLOW};
	struct config cfg = {.policies = &pol, .n_policies = 1};
	char err[512];

	pol.principals = principals;
	pol.n_principals = 2;
	assert_null(policy_compile(&cfg, err, sizeof(err)));
	assert_non_null(strstr(err, "policies[0] (bad): principals[1]: principal "
				    "\"cluster.local/ns/shop/sa/web\" is neither"));

	pol.n_principals = 1;
	pol.paths = paths;
	pol.n_paths = 1;
	assert_null(policy_compile(&cfg, err, sizeof(err)));
	assert_non_null(strstr(err, "paths[0]: path \"api/*\" must start with '/'"));

	pol.n_paths = 0;
	pol.namespaces = nss;
	pol.n_namespaces = 1;
	assert_null(policy_compile(&cfg, err, sizeof(err)));
	assert_non_null(strstr(err, "namespaces[0]: namespace \"\" is empty"));

	pol.n_namespaces = 0;
	pol.ports = ports;
	pol.n_ports = 2;
	assert_null(policy_compile(&cfg, err, sizeof(err)));
	assert_non_null(strstr(err, "ports[1]: port 0"));

	pol.n_ports = 1;
	pol.action = (enum config_action)7;
	assert_null(policy_compile(&cfg, err, sizeof(err)));
	assert_non_null(strstr(err, "unknown action"));
}

/* ------------------------------------------------------------------ */
/* Glob                                                                */

struct glob_case {
	const char *pattern, *s;
	int fold, want;
};

static const struct glob_case glob_cases[] = {
	{"", "", 0, 1},
	{"", "a", 0, 0},
	{"a", "", 0, 0},
	{"*", "", 0, 1},
	{"*", "any/thing/with/slashes", 0, 1},
	{"**", "x", 0, 1},
	{"?", "", 0, 0},
	{"?", "a", 0, 1},
	{"?", "ab", 0, 0},
	{"a*", "a", 0, 1},
	{"*a", "ba", 0, 1},
	{"*a", "ab", 0, 0},
	{"a*a", "a", 0, 0},
	{"a*a", "aa", 0, 1},
	{"ab*ba", "aba", 0, 0},
	{"ab*ba", "abba", 0, 1},
	{"a*b*c", "abc", 0, 1},
	{"a*b*c", "aXbYc", 0, 1},
	{"a*b*c", "acb", 0, 0},
	{"a**b", "ab", 0, 1},
	{"*ab*ab", "abab", 0, 1},
	{"*ab*ab", "aab", 0, 0},
	{"*?", "", 0, 0},
	{"*?", "a", 0, 1},
	{"?*?", "a", 0, 0},
	{"?*?", "ab", 0, 1},
	{"a?c", "abc", 0, 1},
	{"a?c", "ac", 0, 0},
	{"*a?c*", "xxabcxx", 0, 1},
	{"*a?c*", "xxabxcx", 0, 0},
	{"/api/*", "/api/", 0, 1},
	{"/api/*", "/api", 0, 0},
	{"/api/*/items", "/api/v1/v2/items", 0, 1},
	{"*.example.com", "API.Example.COM", 1, 1},
	{"*.example.com", "API.Example.COM", 0, 0},
	{"*.example.com", "example.com", 1, 0},
	{"A?C", "abc", 1, 1},
	{"*X*", "abxcd", 1, 1},
	{"a*", "a\xff", 0, 1},
	{"\xff?", "\xff\x01", 0, 1},
};

static void test_glob(void **state)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(glob_cases); i++) {
		const struct glob_case *c = &glob_cases[i];
		int got = policy_glob(c->pattern, c->s, c->fold);

		if (got != c->want)
			fail_msg("glob \"%s\" on \"%s\" (fold %d): got %d, want %d", c->pattern,
				 c->s, c->fold, got, c->want);
	}
	assert_int_equal(policy_glob(NULL, "a", 0), 0);
	assert_int_equal(policy_glob("a", NULL, 0), 0);
}

/* The textbook backtracking matcher, as an oracle for short inputs. */
static int ref_glob(const char *p, const char *s)
{
	if (!*p)
		return !*s;
	if (*p == '*')
		return ref_glob(p + 1, s) || (*s && ref_glob(p, s + 1));
	return *s && (*p == '?' || *p == *s) && ref_glob(p + 1, s + 1);
}

static void test_glob_against_oracle(void **state)
{
	static const char alpha_p[] = "ab*?", alpha_s[] = "ab";
	char p[10], s[12];
	unsigned seed = 12345;
	int i, j, n;

	for (i = 0; i < 200000; i++) {
		seed = seed * 1103515245u + 12345u;
		n = (int)((seed >> 16) % 9);
		for (j = 0; j < n; j++) {
			seed = seed * 1103515245u + 12345u;
			p[j] = alpha_p[(seed >> 16) % 4];
		}
		p[n] = '\0';
		seed = seed * 1103515245u + 12345u;
		n = (int)((seed >> 16) % 11);
		for (j = 0; j < n; j++) {
			seed = seed * 1103515245u + 12345u;
			s[j] = alpha_s[(seed >> 16) % 2];
		}
		s[n] = '\0';
		if (policy_glob(p, s, 0) != ref_glob(p, s))
			fail_msg("glob \"%s\" on \"%s\": got %d, oracle %d", p, s,
				 policy_glob(p, s, 0), ref_glob(p, s));
	}
}

/*
 * Hostile patterns against 10,000 characters: a backtracking matcher takes
 * exponential time on these; this one must simply finish.
 */
static void test_glob_pathological(void **state)
{
	static const char *const pats[] = {
		"*a*a*a*a*a*b",
		"*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b",
		"*?a?a?a?a?a*b",
		"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*ab*",
		"*aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab*",
	};
	size_t n = 10000, i;
	char *s = malloc(n + 1), *big = malloc(2048 + 1);

	assert_non_null(s);
	assert_non_null(big);
	memset(s, 'a', n);
	s[n] = '\0';
	for (i = 0; i < ARRAY_SIZE(pats); i++) {
		assert_int_equal(policy_glob(pats[i], s, 0), 0);
		assert_int_equal(policy_glob(pats[i], s, 1), 0);
	}
	/* A 2 KiB piece that almost matches everywhere. */
	memset(big, 'a', 2048);
	big[0] = '*';
	big[2046] = 'b';
	big[2047] = '*';
	big[2048] = '\0';
	assert_int_equal(policy_glob(big, s, 0), 0);
	assert_int_equal(policy_glob(big, s, 1), 0);
	/* And a match at the very end still works. */
	s[n - 1] = 'b';
	assert_int_equal(policy_glob(pats[0], s, 0), 1);
	assert_int_equal(policy_glob(pats[1], s, 1), 1);
	free(big);
	free(s);
}

/* The built-in outcomes are told apart from configured rules (metrics
 * label them kind "default"), and every decision names one or the other. */
static void test_rule_builtin(void **state)
{
	(void)state;
	assert_true(policy_rule_builtin(POLICY_RULE_DEFAULT_ALLOW));
	assert_true(policy_rule_builtin(POLICY_RULE_DEFAULT_DENY));
	assert_true(policy_rule_builtin(POLICY_RULE_NO_ALLOW));
	assert_true(policy_rule_builtin(POLICY_RULE_PER_REQUEST));
	assert_false(policy_rule_builtin("orders-from-payments"));
	assert_false(policy_rule_builtin("default"));
	assert_false(policy_rule_builtin(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_decisions, setup_sets, teardown_sets),
		cmocka_unit_test_setup_teardown(test_needs_request, setup_sets, teardown_sets),
		cmocka_unit_test_setup_teardown(test_needs_request_is_sound, setup_sets,
						teardown_sets),
		cmocka_unit_test_setup_teardown(test_huge_path, setup_sets, teardown_sets),
		cmocka_unit_test(test_random_sets_data_path_equals_check),
		cmocka_unit_test(test_audit_is_capped),
		cmocka_unit_test(test_rule_order),
		cmocka_unit_test(test_null_set),
		cmocka_unit_test(test_example_config),
		cmocka_unit_test(test_good_patterns),
		cmocka_unit_test_setup(test_bad_patterns, setup_long),
		cmocka_unit_test_setup(test_pattern_messages, setup_long),
		cmocka_unit_test(test_compile_errors),
		cmocka_unit_test(test_compile_errors_by_hand),
		cmocka_unit_test(test_glob),
		cmocka_unit_test(test_glob_against_oracle),
		cmocka_unit_test(test_glob_pathological),
		cmocka_unit_test(test_rule_builtin),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
