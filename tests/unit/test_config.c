/*
 * Unit tests for daemon/config/: valid and invalid configs (errors must
 * name file:line and the key path), defaults, the built-in default, file
 * loading, CIDR and host:port parsing and matching, and a mutation run that
 * feeds damaged configs through the parser under ASan/UBSan.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"
#include "ldmesh/common.h"

#define NAME "t.conf"

static const char id_block[] =
	"identity = { cert = \"/c.pem\"; key = \"/k.pem\"; bundle = \"/b.pem\"; };\n";

/* ------------------------------------------------------------------ */
/* Valid configs                                                       */

struct good_case {
	const char *name;
	const char *text;
};

static const struct good_case good_cases[] = {
	{"empty text", ""},
	{"comments only", "# nothing\n// here\n/* at\n all */\n"},
	{"identity and strict", "identity = { cert = \"/c\"; key = \"/k\"; "
				"bundle = \"/b\"; };\ninbound = { mtls = \"strict\"; };\n"},
	{"empty identity group is no identity", "identity = { };\n"},
	{"empty lists", "services = ( );\npolicies = [ ];\nallowed_uids = [ ];\n"
			"outbound = { mesh_networks = [ ]; egress_allow = ( ); };\n"},
	{"lists in either bracket", "allowed_uids = ( 1, 2 );\n"
				    "outbound = { mesh_networks = ( \"10.0.0.0/8\" ); };\n"},
	{"64-bit and hex integers", "max_connections = 100000L;\nworkers = 0x1;\n"},
	{"idle timeout zero", "idle_timeout_ms = 0;\ndrain_timeout_ms = 0;\n"},
	{"admin disabled", "admin_addr = \"\";\n"},
	{"admin on ipv6", "admin_addr = \"[::]:4191\";\n"},
	{"access log empty is off", "access_log = \"\";\n"},
	{"telemetry group",
	 "telemetry = { http = false; access_log = \"off\"; max_series = 16; };\n"},
	{"telemetry access log", "telemetry = { access_log = \"stderr\"; };\n"},
	{"string concatenation", "trust_domain = \"example\" \".org\";\n"},
	{"opaque port alone",
	 "inbound = { ports = ( { port = 5432; opaque = true; } ); };\n"
	 "policies = ( { name = \"p\"; action = \"allow\"; ports = [ 5432 ];\n"
	 "  principals = [ \"*\" ]; },\n"
	 "  { name = \"h\"; action = \"allow\"; ports = [ 80 ]; paths = [ \"/\" ]; } );\n"},
	{"per-port disable needs no identity",
	 "inbound = { ports = ( { port = 8080; mtls = \"disable\"; } ); };\n"},
	{"policy with every field",
	 "policies = ( { name = \"p\"; action = \"audit\"; ports = [ 1, 65535 ];\n"
	 "  principals = [ \"*\", \"spiffe://td/ns/a/*\", \"spiffe://td/x\" ];\n"
	 "  namespaces = [ \"shop\", \"team-*\" ]; methods = [ \"GET\", \"PURGE\" ];\n"
	 "  paths = [ \"/api/*\", \"*/info\", \"*\" ]; hosts = [ \"a.b:80\" ];\n"
	 "  unauthenticated = false; } );\n"},
	{"uid at the top of the range", "allowed_uids = [ 4294967294L ];\n"},
	{"service without identity",
	 "services = ( { name = \"a\"; port = 1; endpoints = [ \"[fe80::1%1]:80\" ]; } );\n"},
	{"tcp service retrying dials",
	 "services = ( { name = \"a\"; port = 1; endpoints = [ \"10.0.0.1:1\" ];\n"
	 "  protocol = \"tcp\"; connect_timeout_ms = 600000;\n"
	 "  retry = { on = [ \"connect-failure\" ]; max = 0; }; } );\n"},
	{"tcp service with an empty retry list",
	 "services = ( { name = \"a\"; port = 1; endpoints = [ \"10.0.0.1:1\" ];\n"
	 "  protocol = \"tcp\"; timeout_ms = 0; routes = ( ); retry = { on = [ ]; }; } );\n"},
	{"retry limits", "services = ( { name = \"a\"; port = 1; endpoints = [ \"10.0.0.1:1\" ];\n"
			 "  timeout_ms = 86400000; retry = { max = 10; budget_percent = 1000;\n"
			 "  min_per_s = 100000; ttl_s = 60; on = [ \"100\", \"599\" ]; }; } );\n"},
	{"route with methods only",
	 "services = ( { name = \"a\"; port = 1; endpoints = [ \"10.0.0.1:1\" ];\n"
	 "  routes = ( { methods = [ \"GET\", \"M-SEARCH\", \"X_Y\" ]; } ); } );\n"},
};

static void test_good_configs(void **state)
{
	char err[512];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(good_cases); i++) {
		struct config *c = config_parse(good_cases[i].text, NAME, err, sizeof(err));

		if (!c)
			fail_msg("good case \"%s\" rejected: %s", good_cases[i].name, err);
		config_free(c);
	}
}

/* ------------------------------------------------------------------ */
/* Invalid configs: every message names file:line and the key           */

struct bad_case {
	const char *name;
	const char *text;
	const char *want[3]; /* substrings of the error */
};

#define ID "identity = { cert = \"/c\"; key = \"/k\"; bundle = \"/b\"; };\n"
#define SVC(body)                                                                                  \
	"services = (\n  { name = \"a\"; port = 80; endpoints = [ \"10.0.0.1:80\" ]; },\n  " body  \
	"\n);\n"
#define POL(body) "policies = (\n  { name = \"p\"; action = \"allow\"; " body " }\n);\n"

static const struct bad_case bad_cases[] = {
	/* libconfig's own errors */
	{"syntax error", "workers = 1;\ntrust_domain = ;\n", {NAME ":2:", "syntax error"}},
	{"duplicate key", "workers = 1;\nworkers = 2;\n", {NAME ":2:", "duplicate"}},
	{"unterminated group", "inbound = {\n  mtls = \"disable\";\n", {NAME ":"}},
	{"integer wraps in libconfig",
	 "\n\nmax_connections = 4294967396;\n",
	 {NAME ":3:", "4294967396", "out of range"}},
	{"negative integer wraps", "workers = -99999999999;\n", {NAME ":1:", "out of range"}},
	{"hex wider than 32 bits",
	 "# 0x1FFFFFFFF in a comment is fine\n"
	 "workers = 0x1FFFFFFFF;\n",
	 {NAME ":2:", "out of range"}},
	{"include",
	 "workers = 1;\n@include \"/etc/passwd\"\n",
	 {NAME ":2:", "@include is not supported"}},
	/* libconfig 1.5 leaks a string it meets where none belongs: caught first */
	{"string as key", "workers = 1;\n\"workers\" = 2;\n", {NAME ":2:", "unexpected string"}},
	{"missing equals",
	 "workers = 1;\ntrust_domain \"x\";\n",
	 {NAME ":2:", "unexpected string"}},
	{"string in a group", "identity = {\n \"/c.pem\" };\n", {NAME ":2:", "unexpected string"}},
	{"string after a comma in a group",
	 "identity = { cert = \"/c\",\n \"/k\" };\n",
	 {NAME ":2:", "unexpected string"}},
	{"string after a value",
	 "outbound = { mesh_networks = [ \"10.0.0.0/8\" ]\n \"x\" };\n",
	 {NAME ":2:", "unexpected string"}},

	/* unknown keys at every level */
	{"unknown top-level key", "workers = 1;\nfoo = 1;\n", {NAME ":2:", "unknown key foo"}},
	{"unknown key in outbound",
	 "outbound = {\n  egress = \"allow\";\n  foo = 1;\n};\n",
	 {NAME ":3:", "unknown key outbound.foo"}},
	{"typo gets a suggestion",
	 "outbound = { egres = \"deny\"; };\n",
	 {"unknown key outbound.egres", "did you mean egress?"}},
	{"unknown key in a service",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ]; colour = 1; }"),
	 {NAME ":3:", "unknown key services[1].colour"}},
	{"unknown key in identity",
	 ID "identity2 = 1;\n",
	 {NAME ":2:", "unknown key identity2", "did you mean identity?"}},
	{"unknown key in egress rule",
	 "outbound = { egress_allow = (\n { cidr = \"1.2.3.0/24\"; port = 1; } ); };\n",
	 {NAME ":2:", "unknown key outbound.egress_allow[0].port", "did you mean ports?"}},

	/* types */
	{"string expected", "trust_domain = 5;\n", {NAME ":1:", "trust_domain: expected a string"}},
	{"integer expected", "\nworkers = 1.5;\n", {NAME ":2:", "workers: expected an integer"}},
	{"integer expected, got string",
	 "buffer_size = \"big\";\n",
	 {"buffer_size: expected an integer"}},
	{"bool expected",
	 POL("unauthenticated = \"yes\";"),
	 {NAME ":2:", "policies[0].unauthenticated: expected true or false"}},
	{"group expected", "identity = \"/c.pem\";\n", {NAME ":1:", "identity: expected a group"}},
	{"list expected",
	 "outbound = {\n  mesh_networks = \"10.0.0.0/8\";\n};\n",
	 {NAME ":2:", "outbound.mesh_networks: expected a list"}},
	{"list of groups expected",
	 "services = { name = \"a\"; };\n",
	 {NAME ":1:", "services: expected a list of groups"}},
	{"group element expected",
	 "policies = ( \"p\" );\n",
	 {NAME ":1:", "policies[0]: expected a group"}},
	{"element type",
	 "outbound = { mesh_networks = (\n \"10.0.0.0/8\",\n 7 ); };\n",
	 {NAME ":3:", "outbound.mesh_networks[1]: expected a string"}},

	/* enums */
	{"mtls value",
	 ID "inbound = {\n  mtls = \"strcit\";\n};\n",
	 {NAME ":3:", "inbound.mtls: expected one of strict, permissive, disable", "strcit"}},
	{"mtls type",
	 ID "inbound = { mtls = 1; };\n",
	 {NAME ":2:", "inbound.mtls: expected a string"}},
	{"egress value",
	 "outbound = { egress = \"block\"; };\n",
	 {"outbound.egress: expected one of allow, deny"}},
	{"policy_default value",
	 "policy_default = \"maybe\";\n",
	 {NAME ":1:", "policy_default: expected one of allow, deny"}},
	{"io_backend value",
	 "io_backend = \"kqueue\";\n",
	 {"io_backend: expected one of auto, io_uring, epoll"}},
	{"log_level value",
	 "log_level = \"verbose\";\n",
	 {"log_level: expected one of error, warn, info, debug"}},

	/* ranges */
	{"workers zero", "workers = 0;\n", {"workers: must be between 1 and 64, got 0"}},
	{"workers too many", "workers = 65;\n", {"workers: must be between 1 and 64, got 65"}},
	{"max_workers zero",
	 "max_workers = 0;\n",
	 {"max_workers: must be between 1 and 64, got 0"}},
	{"buffer too small",
	 "buffer_size = 1024;\n",
	 {"buffer_size: must be between 4096 and 1048576"}},
	{"buffer too big", "buffer_size = 2097152;\n", {"buffer_size"}},
	{"connect timeout zero",
	 "connect_timeout_ms = 0;\n",
	 {"connect_timeout_ms: must be between 1"}},
	{"idle timeout negative",
	 "idle_timeout_ms = -1;\n",
	 {"idle_timeout_ms: must be between 0"}},
	{"max_connections zero", "max_connections = 0;\n", {"max_connections"}},
	{"uid negative",
	 "allowed_uids = [ 0,\n -1 ];\n",
	 {NAME ":2:", "allowed_uids[1]: must be between 0"}},
	{"uid -1 as unsigned", "allowed_uids = [ 4294967295L ];\n", {"allowed_uids[0]"}},
	{"uid duplicate", "allowed_uids = [ 5, 5 ];\n", {"allowed_uids[1]: duplicate uid 5"}},

	/* strings */
	{"trust domain uppercase",
	 "trust_domain = \"Cluster.Local\";\n",
	 {NAME ":1:", "trust_domain: \"Cluster.Local\" is not a trust domain"}},
	{"trust domain empty", "trust_domain = \"\";\n", {"trust_domain: must not be empty"}},
	{"runtime_dir relative",
	 "\nruntime_dir = \"run/ldmesh\";\n",
	 {NAME ":2:", "runtime_dir", "absolute"}},
	{"runtime_dir too long",
	 "runtime_dir = \"/0123456789012345678901234567890123456789012345678901234567890123456789"
	 "01234567890123456789012345678901234567890123456789\";\n",
	 {"runtime_dir", "too long"}},
	{"admin_addr hostname",
	 "admin_addr = \"localhost:4191\";\n",
	 {NAME ":1:", "admin_addr", "is not an address"}},
	{"admin_addr port 0", "admin_addr = \"0.0.0.0:0\";\n", {"admin_addr"}},
	{"access_log set twice",
	 "access_log = \"stderr\";\ntelemetry = { access_log = \"/tmp/a\"; };\n",
	 {NAME ":2:", "telemetry.access_log: access_log is set twice"}},
	{"telemetry max_series too small",
	 "telemetry = { max_series = 3; };\n",
	 {NAME ":1:", "telemetry.max_series"}},
	{"telemetry unknown key",
	 "telemetry = { metrics = true; };\n",
	 {NAME ":1:", "unknown key telemetry.metrics"}},
	{"access_log control char",
	 "access_log = \"/tmp/a\\nb\";\n",
	 {"access_log: \"/tmp/a\\x0ab\" contains a control character"}},

	/* identity */
	{"identity missing bundle",
	 "identity = {\n  cert = \"/c\";\n  key = \"/k\";\n};\n",
	 {NAME ":1:", "identity: cert, key and bundle go together; missing bundle"}},
	{"identity empty cert",
	 "identity = { cert = \"\"; key = \"/k\"; bundle = \"/b\"; };\n",
	 {"identity.cert: must not be empty"}},
	{"strict without identity",
	 "inbound = {\n  mtls = \"strict\";\n};\n",
	 {NAME ":2:", "inbound.mtls: strict needs identity"}},
	{"permissive port without identity",
	 "inbound = { ports = (\n { port = 1; mtls = \"disable\"; },\n { port = 2; mtls = "
	 "\"permissive\"; } ); };\n",
	 {NAME ":3:", "inbound.ports[1].mtls: permissive needs identity"}},
	{"pinned identity without identity",
	 "services = ( { name = \"a\"; port = 1; endpoints = [ \"10.0.0.1:1\" ];\n"
	 "  identity = \"spiffe://td/a\"; } );\n",
	 {NAME ":2:", "services[0].identity: pinning a server identity needs identity"}},

	/* inbound ports */
	{"port zero",
	 ID "inbound = { ports = ( { port = 0; mtls = \"strict\"; } ); };\n",
	 {NAME ":2:", "inbound.ports[0].port: must be between 1 and 65535, got 0"}},
	{"port too big",
	 ID "inbound = { ports = ( { port = 70000; mtls = \"strict\"; } ); };\n",
	 {"inbound.ports[0].port: must be between 1 and 65535, got 70000"}},
	{"duplicate inbound port",
	 ID "inbound = { ports = (\n  { port = 9000; mtls = \"strict\"; },\n"
	    "  { port = 9000; mtls = \"disable\"; } ); };\n",
	 {NAME ":4:", "inbound.ports[1].port: duplicate port 9000"}},
	{"duplicate excluded port",
	 ID "inbound = { exclude_ports = [ 8081,\n  8081 ]; };\n",
	 {NAME ":3:", "inbound.exclude_ports[1]: duplicate port 8081"}},
	{"excluded port zero",
	 ID "inbound = { exclude_ports = [ 0 ]; };\n",
	 {"inbound.exclude_ports[0]: must be between 1 and 65535, got 0"}},
	{"inbound port missing mtls",
	 ID "inbound = { ports = (\n  { port = 9000; } ); };\n",
	 {NAME ":3:", "inbound.ports[0]: missing required key mtls"}},
	{"opaque not a boolean",
	 ID "inbound = { ports = (\n  { port = 5432; opaque = 1; } ); };\n",
	 {NAME ":3:", "inbound.ports[0].opaque: expected true or false"}},
	{"opaque port missing port",
	 ID "inbound = { ports = (\n  { opaque = true; } ); };\n",
	 {NAME ":3:", "inbound.ports[0]: missing required key port"}},
	{"HTTP rule on an opaque port",
	 ID "inbound = { ports = ( { port = 5432; opaque = true; } ); };\n"
	    "policies = (\n  { name = \"p\"; action = \"allow\"; ports = [ 80, 5432 ];\n"
	    "    paths = [ \"/api/*\" ]; } );\n",
	 {NAME ":5:", "policies[0].paths: HTTP conditions cannot apply to opaque port 5432",
	  "inbound.ports[0]"}},
	{"HTTP rule on every port, one of them opaque",
	 ID "inbound = { ports = ( { port = 8080; mtls = \"permissive\"; },\n"
	    "  { port = 5432; opaque = true; } ); };\n"
	    "policies = ( { name = \"p\"; action = \"deny\";\n  methods = [ \"POST\" ]; } );\n",
	 {NAME ":5:", "policies[0].methods: HTTP conditions cannot apply to opaque port 5432",
	  "list the rule's ports"}},

	/* CIDRs */
	{"host bits set",
	 "outbound = {\n  mesh_networks = [ \"10.0.0.1/8\" ];\n};\n",
	 {NAME ":2:", "outbound.mesh_networks[0]: host bits set in 10.0.0.1/8", "10.0.0.0/8"}},
	{"ipv6 host bits set",
	 "outbound = { mesh_networks = [ \"fd00::1/8\" ]; };\n",
	 {"host bits set in fd00::1/8"}},
	{"prefix too long v4",
	 "outbound = { mesh_networks = [ \"10.0.0.0/33\" ]; };\n",
	 {"outbound.mesh_networks[0]", "is not a CIDR prefix"}},
	{"prefix too long v6",
	 "outbound = { mesh_networks = [ \"fd00::/129\" ]; };\n",
	 {"is not a CIDR prefix"}},
	{"not an address",
	 "outbound = { mesh_networks = [ \"10.0.0/8\" ]; };\n",
	 {"is not a CIDR prefix"}},
	{"duplicate prefix",
	 "outbound = { mesh_networks = [ \"10.0.0.0/8\", \"10.0.0.0/8\" ]; };\n",
	 {"outbound.mesh_networks[1]: duplicate prefix 10.0.0.0/8"}},
	{"egress rule missing cidr",
	 "outbound = { egress_allow = (\n { ports = [ 443 ]; } ); };\n",
	 {NAME ":2:", "outbound.egress_allow[0]: missing required key cidr"}},
	{"egress rule bad port",
	 "outbound = { egress_allow = ( { cidr = \"1.2.3.4\"; ports = [ 443, 0 ]; } ); };\n",
	 {"outbound.egress_allow[0].ports[1]: must be between 1 and 65535"}},
	{"egress rule host bits",
	 "outbound = { egress_allow = ( { cidr = \"203.0.113.9/24\"; } ); };\n",
	 {"outbound.egress_allow[0].cidr: host bits set in 203.0.113.9/24"}},
	{"links not a group",
	 "outbound = { links = true; };\n",
	 {"outbound.links", "expected a group"}},
	{"links unknown key",
	 "outbound = { links = {\n enable = true; }; };\n",
	 {NAME ":2:", "unknown key outbound.links.enable"}},
	{"links enabled not a boolean",
	 "outbound = { links = { enabled = 1; }; };\n",
	 {"outbound.links.enabled"}},
	{"links zero streams",
	 "outbound = { links = { max_streams_per_link = 0; }; };\n",
	 {"outbound.links.max_streams_per_link: must be between 1 and 10000, got 0"}},
	{"links ping too fast",
	 "outbound = { links = { ping_interval_ms = 10; }; };\n",
	 {"outbound.links.ping_interval_ms: must be between 100 and 3600000, got 10"}},
	{"link port out of range",
	 "inbound = { link_port = 65536; };\n",
	 {"inbound.link_port: must be between 0 and 65535, got 65536"}},

	/* services */
	{"service empty name",
	 SVC("{ name = \"\"; port = 1; endpoints = [ \"10.0.0.2:1\" ]; }"),
	 {NAME ":3:", "services[1].name: must not be empty"}},
	{"service duplicate name",
	 SVC("{ name = \"a\"; port = 1; endpoints = [ \"10.0.0.2:1\" ]; }"),
	 {NAME ":3:", "services[1].name: duplicate service name \"a\""}},
	{"service name with space",
	 SVC("{ name = \"a b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ]; }"),
	 {"services[1].name: \"a b\" may only contain"}},
	{"service missing port",
	 SVC("{ name = \"b\"; endpoints = [ \"10.0.0.2:1\" ]; }"),
	 {NAME ":3:", "services[1]: missing required key port"}},
	{"service missing endpoints",
	 SVC("{ name = \"b\"; port = 1; }"),
	 {"services[1]: missing required key endpoints"}},
	{"service no endpoints",
	 SVC("{ name = \"b\"; port = 1; endpoints = ( ); }"),
	 {"services[1].endpoints: at least one endpoint"}},
	{"endpoint without port",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2\" ]; }"),
	 {NAME ":3:", "services[1].endpoints[0]: \"10.0.0.2\" is not an address"}},
	{"endpoint unbracketed ipv6",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"fd00::1:80\" ]; }"),
	 {"services[1].endpoints[0]"}},
	{"endpoint duplicate",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\", \"10.0.0.2:1\" ]; }"),
	 {"services[1].endpoints[1]: duplicate endpoint"}},
	{"service identity not spiffe",
	 ID SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];\n"
		"    identity = \"cluster.local/ns/a/sa/b\"; }"),
	 {NAME ":5:", "services[1].identity", "must start with spiffe://"}},
	{"service identity wildcard",
	 ID SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];"
		" identity = \"spiffe://td/*\"; }"),
	 {"services[1].identity", "'*' is not allowed"}},
	/* services[].protocol, timeout_ms, connect_timeout_ms, retry, routes */
	{"service protocol",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ]; protocol = \"udp\"; }"),
	 {NAME ":3:", "services[1].protocol: expected one of auto, http, tcp, got \"udp\""}},
	{"service timeout range",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ]; timeout_ms = -1; }"),
	 {NAME ":3:", "services[1].timeout_ms: must be between 0 and 86400000"}},
	{"service connect timeout range",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];"
	     " connect_timeout_ms = 600001; }"),
	 {"services[1].connect_timeout_ms: must be between 0 and 600000"}},
	{"retry on unknown value",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];\n"
	     "    retry = { on = [ \"5xx\", \"6xx\" ]; }; }"),
	 {NAME ":4:", "services[1].retry.on[1]: \"6xx\" is not a retry condition",
	  "gateway-error, connect-failure, reset, cancelled, deadline-exceeded, "
	  "resource-exhausted, internal, unavailable or an HTTP status 100..599"}},
	{"retry on status out of range",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];"
	     " retry = { on = [ \"600\" ]; }; }"),
	 {"services[1].retry.on[0]: \"600\" is not a retry condition"}},
	{"retry on status not three digits",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];"
	     " retry = { on = [ \"5030\" ]; }; }"),
	 {"services[1].retry.on[0]: \"5030\" is not a retry condition"}},
	{"retry on integer status",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];"
	     " retry = { on = [ 503 ]; }; }"),
	 {"services[1].retry.on[0]: expected a string"}},
	{"retry on not a list",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];"
	     " retry = { on = \"5xx\"; }; }"),
	 {"services[1].retry.on: expected a list"}},
	{"retry duplicate status",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];"
	     " retry = { on = [ \"503\", \"5xx\", \"503\" ]; }; }"),
	 {NAME ":3:", "services[1].retry.on[2]: duplicate status \"503\""}},
	{"retry duplicate condition",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];"
	     " retry = { on = [ \"reset\", \"reset\" ]; }; }"),
	 {"services[1].retry.on[1]: duplicate value \"reset\""}},
	{"retry too many statuses",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];"
	     " retry = { on = [ \"500\", \"501\", \"502\", \"503\", \"504\", \"505\","
	     " \"506\", \"507\", \"508\", \"509\", \"510\", \"511\", \"512\", \"513\","
	     " \"514\", \"515\", \"516\" ]; }; }"),
	 {"services[1].retry.on[16]: at most 16 HTTP statuses"}},
	{"retry max range",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ]; retry = { max = 11; }; }"),
	 {"services[1].retry.max: must be between 0 and 10, got 11"}},
	{"retry budget range",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];"
	     " retry = { budget_percent = 1001; }; }"),
	 {"services[1].retry.budget_percent: must be between 0 and 1000"}},
	{"retry min_per_s range",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];"
	     " retry = { min_per_s = 100001; }; }"),
	 {"services[1].retry.min_per_s: must be between 0 and 100000"}},
	{"retry ttl range",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ]; retry = { ttl_s = 0; }; }"),
	 {"services[1].retry.ttl_s: must be between 1 and 60, got 0"}},
	{"retry non_idempotent type",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];"
	     " retry = { non_idempotent = 1; }; }"),
	 {"services[1].retry.non_idempotent: expected true or false"}},
	{"retry unknown key",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ]; retry = { maxx = 1; }; }"),
	 {"unknown key services[1].retry.maxx", "did you mean max?"}},
	{"retry not a group",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ]; retry = 2; }"),
	 {"services[1].retry: expected a group"}},
	{"route bad method",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];\n"
	     "    routes = ( { methods = [ \"GET\", \"get\" ]; } ); }"),
	 {NAME ":4:",
	  "services[1].routes[0].methods[1]: \"get\" is not an upper-case HTTP method"}},
	{"route long method",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];"
	     " routes = ( { methods = [ \"ABCDEFGHIJKLMNOP\" ]; } ); }"),
	 {"services[1].routes[0].methods[0]", "longer than 15 characters"}},
	{"route empty method",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];"
	     " routes = ( { methods = [ \"\" ]; } ); }"),
	 {"services[1].routes[0].methods[0]: must not be empty"}},
	{"route duplicate method",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];"
	     " routes = ( { methods = [ \"PUT\", \"PUT\" ]; } ); }"),
	 {"services[1].routes[0].methods[1]: duplicate value \"PUT\""}},
	{"route without prefix or methods",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];\n"
	     "    routes = ( { path_prefix = \"/a/\"; },\n"
	     "               { timeout_ms = 5; } ); }"),
	 {NAME ":5:", "services[1].routes[1]: a route needs path_prefix or methods"}},
	{"route with an empty methods list only",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];"
	     " routes = ( { methods = [ ]; } ); }"),
	 {"services[1].routes[0]: a route needs path_prefix or methods"}},
	{"route prefix without slash",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];"
	     " routes = ( { path_prefix = \"api/\"; } ); }"),
	 {"services[1].routes[0].path_prefix: \"api/\" must start with '/'"}},
	{"route prefix with a space",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];"
	     " routes = ( { path_prefix = \"/a b\"; } ); }"),
	 {"services[1].routes[0].path_prefix", "contains a space"}},
	{"route prefix outside ASCII",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];"
	     " routes = ( { path_prefix = \"/caf\xc3\xa9\"; } ); }"),
	 {"services[1].routes[0].path_prefix", "outside ASCII"}},
	{"route timeout range",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];"
	     " routes = ( { path_prefix = \"/\"; timeout_ms = -1; } ); }"),
	 {"services[1].routes[0].timeout_ms: must be between 0 and 86400000"}},
	{"route retry on unknown value",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];"
	     " routes = ( { path_prefix = \"/\"; retry = { on = [ \"retriable-4xx\" ]; }; } ); }"),
	 {"services[1].routes[0].retry.on[0]: \"retriable-4xx\" is not a retry condition"}},
	{"route unknown key",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];"
	     " routes = ( { prefix = \"/\"; } ); }"),
	 {"unknown key services[1].routes[0].prefix"}},
	{"routes not groups",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];"
	     " routes = [ \"/a\" ]; }"),
	 {"services[1].routes: expected a list of groups"}},
	{"tcp with timeout",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];\n"
	     "    timeout_ms = 100; protocol = \"tcp\"; }"),
	 {NAME ":4:", "services[1].timeout_ms: a request timeout needs protocol \"http\" or "
		      "\"auto\""}},
	{"tcp with routes",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ]; protocol = \"tcp\";\n"
	     "    routes = ( { path_prefix = \"/\"; } ); }"),
	 {NAME ":4:", "services[1].routes: routing requests needs protocol \"http\" or \"auto\""}},
	{"tcp retrying on 5xx",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ]; protocol = \"tcp\";\n"
	     "    retry = { on = [ \"connect-failure\", \"5xx\" ]; }; }"),
	 {NAME ":4:", "services[1].retry.on: retrying on anything but connect-failure needs "
		      "protocol \"http\" or \"auto\""}},
	{"tcp retrying on a status",
	 SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ]; protocol = \"tcp\";"
	     " retry = { on = [ \"503\" ]; }; }"),
	 {"services[1].retry.on: retrying on anything but connect-failure"}},
	{"service identity trailing slash",
	 ID SVC("{ name = \"b\"; port = 1; endpoints = [ \"10.0.0.2:1\" ];"
		" identity = \"spiffe://td/ns/\"; }"),
	 {"services[1].identity", "empty path segment"}},

	/* policies */
	{"policy missing action",
	 "policies = (\n  { name = \"p\"; } );\n",
	 {NAME ":2:", "policies[0]: missing required key action"}},
	{"policy missing name",
	 "policies = (\n  { action = \"deny\"; } );\n",
	 {NAME ":2:", "policies[0]: missing required key name"}},
	{"policy bad action",
	 "policies = (\n  { name = \"p\"; action = \"permit\"; } );\n",
	 {NAME ":2:", "policies[0].action: expected one of allow, deny, audit"}},
	{"policy duplicate name",
	 "policies = (\n { name = \"p\"; action = \"allow\"; },\n"
	 " { name = \"p\"; action = \"deny\"; } );\n",
	 {NAME ":3:", "policies[1].name: duplicate policy name \"p\""}},
	{"policy principal not spiffe",
	 POL("principals = [ \"cluster.local/ns/a/sa/b\" ];"),
	 {NAME ":2:", "policies[0].principals[0]", "must start with spiffe://"}},
	{"policy principal inner star",
	 POL("principals = [ \"spiffe://td/*/sa/b\" ];"),
	 {"policies[0].principals[0]", "only use '*' at the end"}},
	{"policy principal bad trust domain",
	 POL("principals = [ \"spiffe://TD/a\" ];"),
	 {"policies[0].principals[0]", "invalid trust domain"}},
	{"policy empty principal",
	 POL("principals = [ \"\" ];"),
	 {"policies[0].principals[0]: must not be empty"}},
	{"policy duplicate port",
	 POL("ports = [ 8080, 8080 ];"),
	 {"policies[0].ports[1]: duplicate port 8080"}},
	{"policy path",
	 POL("paths = [ \"api/*\" ];"),
	 {"policies[0].paths[0]", "must start with '/'"}},
	{"policy method",
	 POL("methods = [ \"GET POST\" ];"),
	 {"policies[0].methods[0]", "not an HTTP method"}},
	{"policy namespace",
	 POL("namespaces = [ \"Shop\" ];"),
	 {"policies[0].namespaces[0]", "not a namespace"}},
	{"policy host", POL("hosts = [ \"a/b\" ];"), {"policies[0].hosts[0]", "not a host"}},
	{"policy duplicate method",
	 POL("methods = [ \"GET\", \"GET\" ];"),
	 {"policies[0].methods[1]: duplicate value \"GET\""}},
	{"policy unknown key",
	 POL("principal = [ \"*\" ];"),
	 {NAME ":2:", "unknown key policies[0].principal", "did you mean principals?"}},
	{"hostile value is escaped", POL("methods = [ \"\\x1b[31m\" ];"), {"\\x1b"}},
};

static void test_bad_configs(void **state)
{
	char err[512];
	size_t i, j;

	for (i = 0; i < ARRAY_SIZE(bad_cases); i++) {
		const struct bad_case *b = &bad_cases[i];
		struct config *c;

		memset(err, 'X', sizeof(err));
		c = config_parse(b->text, NAME, err, sizeof(err));
		if (c) {
			config_free(c);
			fail_msg("bad case \"%s\" was accepted", b->name);
		}
		if (!memchr(err, '\0', sizeof(err)))
			fail_msg("bad case \"%s\": error not terminated", b->name);
		for (j = 0; j < ARRAY_SIZE(b->want) && b->want[j]; j++)
			if (!strstr(err, b->want[j]))
				fail_msg("bad case \"%s\": error \"%s\" lacks \"%s\"", b->name, err,
					 b->want[j]);
	}
}

/* Every message starts with "FILE:LINE: ". */
static void test_bad_configs_name_file_line(void **state)
{
	char err[512];
	size_t i;
	unsigned line;
	int n;

	for (i = 0; i < ARRAY_SIZE(bad_cases); i++) {
		struct config *c = config_parse(bad_cases[i].text, NAME, err, sizeof(err));

		assert_null(c);
		n = 0;
		if (sscanf(err, NAME ":%u: %n", &line, &n) != 1 || n == 0 || line == 0)
			fail_msg("bad case \"%s\": \"%s\" does not start with file:line",
				 bad_cases[i].name, err);
	}
}

/* ------------------------------------------------------------------ */
/* Defaults and full configs                                           */

static struct config *parse_ok(const char *text)
{
	char err[512];
	struct config *c = config_parse(text, NAME, err, sizeof(err));

	if (!c)
		fail_msg("unexpected error: %s", err);
	return c;
}

static struct ldm_addr addr_of(const char *ip)
{
	struct ldm_addr a;

	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, ip, a.addr) == 1)
		a.family = AF_INET;
	else if (inet_pton(AF_INET6, ip, a.addr) == 1)
		a.family = AF_INET6;
	else
		fail_msg("bad test address %s", ip);
	return a;
}

static void assert_default_mesh(const struct config *c)
{
	struct ldm_addr a;

	assert_int_equal(c->n_mesh_networks, 4);
	a = addr_of("10.1.2.3");
	assert_true(config_in_mesh(c, &a));
	a = addr_of("172.31.255.255");
	assert_true(config_in_mesh(c, &a));
	a = addr_of("192.168.0.1");
	assert_true(config_in_mesh(c, &a));
	a = addr_of("fd12::1");
	assert_true(config_in_mesh(c, &a));
	a = addr_of("::ffff:10.9.9.9");
	assert_true(config_in_mesh(c, &a));
	a = addr_of("8.8.8.8");
	assert_false(config_in_mesh(c, &a));
	a = addr_of("172.32.0.1");
	assert_false(config_in_mesh(c, &a));
	a = addr_of("2001:db8::1");
	assert_false(config_in_mesh(c, &a));
}

static void test_defaults_of_empty_file(void **state)
{
	struct config *c = parse_ok("");

	assert_string_equal(c->file, NAME);
	assert_string_equal(c->trust_domain, "cluster.local");
	assert_string_equal(c->runtime_dir, "/run/ldmesh");
	assert_string_equal(c->admin_addr, "0.0.0.0:4191");
	assert_null(c->cert);
	assert_null(c->key);
	assert_null(c->bundle);
	assert_int_equal(c->inbound_mtls, CONFIG_MTLS_DISABLE);
	assert_int_equal(c->n_inbound_ports, 0);
	assert_int_equal(c->n_inbound_exclude_ports, 0);
	assert_default_mesh(c);
	assert_int_equal(c->egress_allow_all, 1);
	assert_int_equal(c->n_egress_allow, 0);
	assert_int_equal(c->n_services, 0);
	assert_int_equal(c->n_policies, 0);
	assert_int_equal(c->default_deny, 0);
	assert_int_equal(c->workers, 0); /* the usable CPUs, up to max_workers */
	assert_int_equal(c->max_workers, 8);
	assert_int_equal(c->io_backend, CONFIG_IO_AUTO);
	assert_int_equal(c->connect_timeout_ms, 10000);
	assert_int_equal(c->idle_timeout_ms, 3600000);
	assert_int_equal(c->drain_timeout_ms, 30000);
	assert_int_equal(c->http_metrics, 1);
	assert_int_equal(c->http_head_timeout_ms, 30000);
	assert_int_equal(c->max_series, 1000);
	assert_int_equal(c->buffer_size, 32768);
	assert_int_equal(c->max_connections, 100000);
	assert_int_equal(c->n_allowed_uids, 0);
	assert_null(c->access_log);
	assert_int_equal(c->log_level, 2);
	assert_int_equal(c->link_port, 15008);
	assert_int_equal(c->links.enabled, 1);
	assert_int_equal(c->links.max_streams, 100);
	assert_int_equal(c->links.max_links, 32);
	assert_int_equal(c->links.idle_timeout_ms, 60000);
	assert_int_equal(c->links.ping_interval_ms, 10000);
	assert_int_equal(c->links.ping_timeout_ms, 20000);
	assert_int_equal(c->links.fallback_ms, 60000);
	config_free(c);
}

static void test_links(void **state)
{
	struct config *c =
		parse_ok("inbound = { link_port = 0; };\n"
			 "outbound = { links = { enabled = false; max_streams_per_link = 250;\n"
			 "  max_links_per_peer = 2; idle_timeout_ms = 0; ping_interval_ms = 500;\n"
			 "  ping_timeout_ms = 1000; fallback_ms = 5000; }; };\n");

	(void)state;
	assert_int_equal(c->link_port, 0);
	assert_int_equal(c->links.enabled, 0);
	assert_int_equal(c->links.max_streams, 250);
	assert_int_equal(c->links.max_links, 2);
	assert_int_equal(c->links.idle_timeout_ms, 0);
	assert_int_equal(c->links.ping_interval_ms, 500);
	assert_int_equal(c->links.ping_timeout_ms, 1000);
	assert_int_equal(c->links.fallback_ms, 5000);
	config_free(c);
}

static void test_mtls_defaults_to_strict_with_identity(void **state)
{
	struct config *c = parse_ok(id_block);

	assert_string_equal(c->cert, "/c.pem");
	assert_string_equal(c->key, "/k.pem");
	assert_string_equal(c->bundle, "/b.pem");
	assert_int_equal(c->inbound_mtls, CONFIG_MTLS_STRICT);
	config_free(c);
}

/* inbound.ports[].opaque: a port without its own mode takes inbound.mtls. */
static void test_opaque_ports(void **state)
{
	struct config *c = parse_ok(
		"identity = { cert = \"/c\"; key = \"/k\"; bundle = \"/b\"; };\n"
		"inbound = { mtls = \"permissive\"; ports = ( { port = 5432; opaque = true; },\n"
		"  { port = 6379; mtls = \"strict\"; opaque = true; },\n"
		"  { port = 8080; mtls = \"strict\"; opaque = false; } ); };\n");

	assert_int_equal(c->n_inbound_ports, 3);
	assert_int_equal(c->inbound_ports[0].port, 5432);
	assert_int_equal(c->inbound_ports[0].opaque, 1);
	assert_int_equal(c->inbound_ports[0].mtls, CONFIG_MTLS_PERMISSIVE);
	assert_int_equal(c->inbound_ports[1].opaque, 1);
	assert_int_equal(c->inbound_ports[1].mtls, CONFIG_MTLS_STRICT);
	assert_int_equal(c->inbound_ports[2].opaque, 0);
	assert_int_equal(c->inbound_ports[2].mtls, CONFIG_MTLS_STRICT);
	config_free(c);
	/* Without identity, an opaque port without a mode is plaintext. */
	c = parse_ok("inbound = { ports = ( { port = 5432; opaque = true; } ); };\n");
	assert_int_equal(c->inbound_ports[0].mtls, CONFIG_MTLS_DISABLE);
	config_free(c);
}

static void test_empty_mesh_networks(void **state)
{
	struct config *c = parse_ok("outbound = { mesh_networks = [ ]; };");
	struct ldm_addr a = addr_of("10.1.2.3");

	assert_int_equal(c->n_mesh_networks, 0);
	assert_false(config_in_mesh(c, &a));
	config_free(c);
}

static const char full_text[] =
	"trust_domain = \"example.org\";\n"
	"runtime_dir = \"/tmp/ldm\";\n"
	"admin_addr = \"127.0.0.1:9999\";\n"
	"identity = { cert = \"/c.pem\"; key = \"/k.pem\"; bundle = \"/b.pem\"; };\n"
	"inbound = { mtls = \"permissive\";\n"
	"  ports = ( { port = 9000; mtls = \"strict\"; }, { port = 9090; mtls = \"disable\"; } );\n"
	"  exclude_ports = [ 15020, 8086 ]; };\n"
	"outbound = { mesh_networks = [ \"10.0.0.0/8\", \"fd00::/8\" ];\n"
	"  egress = \"deny\";\n"
	"  egress_allow = ( { cidr = \"203.0.113.0/24\"; ports = [ 443, 8443 ]; },\n"
	"                   { cidr = \"2001:db8::1\"; } ); };\n"
	"services = ( { name = \"orders\"; port = 8080;\n"
	"  identity = \"spiffe://example.org/ns/shop/sa/orders\";\n"
	"  endpoints = ( \"10.1.2.3:8080\", \"[fd00::1]:8081\" ); } );\n"
	"policies = ( { name = \"r1\"; action = \"deny\"; ports = [ 8080 ];\n"
	"  principals = [ \"spiffe://example.org/ns/shop/sa/payments\" ];\n"
	"  namespaces = [ \"shop\" ]; methods = [ \"GET\" ]; paths = [ \"/api/*\" ];\n"
	"  hosts = [ \"orders\" ]; unauthenticated = true; },\n"
	"  { name = \"r2\"; action = \"audit\"; } );\n"
	"policy_default = \"deny\";\n"
	"workers = 1;\n"
	"io_backend = \"epoll\";\n"
	"connect_timeout_ms = 1500;\n"
	"idle_timeout_ms = 0;\n"
	"drain_timeout_ms = 5000;\n"
	"buffer_size = 65536;\n"
	"max_connections = 1000;\n"
	"allowed_uids = [ 0, 1000 ];\n"
	"access_log = \"stderr\";\n"
	"log_level = \"debug\";\n";

static void test_full_config(void **state)
{
	struct config *c = parse_ok(full_text);
	const struct config_policy *p;
	const struct config_service *s;
	struct ldm_addr a;

	assert_string_equal(c->trust_domain, "example.org");
	assert_string_equal(c->runtime_dir, "/tmp/ldm");
	assert_string_equal(c->admin_addr, "127.0.0.1:9999");
	assert_int_equal(c->inbound_mtls, CONFIG_MTLS_PERMISSIVE);
	assert_int_equal(c->n_inbound_ports, 2);
	assert_int_equal(c->inbound_ports[0].port, 9000);
	assert_int_equal(c->inbound_ports[0].mtls, CONFIG_MTLS_STRICT);
	assert_int_equal(c->inbound_ports[1].port, 9090);
	assert_int_equal(c->inbound_ports[1].mtls, CONFIG_MTLS_DISABLE);
	assert_int_equal(c->n_inbound_exclude_ports, 2);
	assert_int_equal(c->inbound_exclude_ports[0], 15020);
	assert_int_equal(c->inbound_exclude_ports[1], 8086);

	assert_int_equal(c->n_mesh_networks, 2);
	assert_int_equal(c->mesh_networks[0].family, AF_INET);
	assert_int_equal(c->mesh_networks[0].prefix_len, 8);
	assert_int_equal(c->mesh_networks[1].family, AF_INET6);
	assert_int_equal(c->egress_allow_all, 0);
	assert_int_equal(c->n_egress_allow, 2);
	assert_int_equal(c->egress_allow[0].n_ports, 2);
	assert_int_equal(c->egress_allow[0].ports[1], 8443);
	assert_int_equal(c->egress_allow[1].n_ports, 0);
	assert_int_equal(c->egress_allow[1].cidr.prefix_len, 128);
	a = addr_of("203.0.113.77");
	assert_true(config_cidr_contains(&c->egress_allow[0].cidr, &a));

	assert_int_equal(c->n_services, 1);
	s = &c->services[0];
	assert_string_equal(s->name, "orders");
	assert_int_equal(s->port, 8080);
	assert_string_equal(s->identity, "spiffe://example.org/ns/shop/sa/orders");
	assert_int_equal(s->n_endpoints, 2);
	assert_int_equal(s->endpoints[0].family, AF_INET);
	assert_int_equal(ntohs(s->endpoints[0].port), 8080);
	assert_memory_equal(s->endpoints[0].addr, "\x0a\x01\x02\x03", 4);
	assert_int_equal(s->endpoints[1].family, AF_INET6);
	assert_int_equal(ntohs(s->endpoints[1].port), 8081);

	assert_int_equal(c->n_policies, 2);
	p = &c->policies[0];
	assert_string_equal(p->name, "r1");
	assert_int_equal(p->action, CONFIG_ACTION_DENY);
	assert_int_equal(p->n_ports, 1);
	assert_int_equal(p->ports[0], 8080);
	assert_int_equal(p->n_principals, 1);
	assert_string_equal(p->principals[0], "spiffe://example.org/ns/shop/sa/payments");
	assert_string_equal(p->namespaces[0], "shop");
	assert_string_equal(p->methods[0], "GET");
	assert_string_equal(p->paths[0], "/api/*");
	assert_string_equal(p->hosts[0], "orders");
	assert_int_equal(p->unauthenticated, 1);
	p = &c->policies[1];
	assert_int_equal(p->action, CONFIG_ACTION_AUDIT);
	assert_int_equal(p->n_ports + p->n_principals + p->n_namespaces + p->n_methods +
				 p->n_paths + p->n_hosts,
			 0);
	assert_int_equal(p->unauthenticated, 0);
	assert_int_equal(c->default_deny, 1);

	assert_int_equal(c->workers, 1);
	assert_int_equal(c->io_backend, CONFIG_IO_EPOLL);
	assert_int_equal(c->connect_timeout_ms, 1500);
	assert_int_equal(c->idle_timeout_ms, 0);
	assert_int_equal(c->drain_timeout_ms, 5000);
	assert_int_equal(c->buffer_size, 65536);
	assert_int_equal(c->max_connections, 1000);
	assert_int_equal(c->n_allowed_uids, 2);
	assert_int_equal(c->allowed_uids[1], 1000);
	assert_string_equal(c->access_log, "stderr");
	assert_int_equal(c->log_level, 3);
	config_free(c);
}

/* services[]: protocol, timeouts, retry and routes, every key read back. */
static const char traffic_text[] =
	"connect_timeout_ms = 3000;\n"
	"services = (\n"
	"  { name = \"orders\"; port = 8080; endpoints = [ \"10.1.2.3:8080\" ];\n"
	"    protocol = \"http\"; timeout_ms = 1000; connect_timeout_ms = 250;\n"
	"    retry = { on = [ \"5xx\", \"gateway-error\", \"connect-failure\", \"reset\",\n"
	"                     \"cancelled\", \"deadline-exceeded\", \"resource-exhausted\",\n"
	"                     \"internal\", \"unavailable\", \"503\", \"429\" ];\n"
	"              max = 3; budget_percent = 50; min_per_s = 5; ttl_s = 30;\n"
	"              non_idempotent = true; };\n"
	"    routes = ( { path_prefix = \"/api/\"; methods = [ \"GET\", \"POST\" ];\n"
	"                 timeout_ms = 500;\n"
	"                 retry = { on = [ \"409\" ]; max = 1; budget_percent = 0;\n"
	"                           min_per_s = 0; ttl_s = 1; non_idempotent = false; }; },\n"
	"               { path_prefix = \"/slow\"; timeout_ms = 0; },\n"
	"               { methods = [ \"DELETE\" ]; retry = { max = 0; }; } ); },\n"
	"  { name = \"db\"; port = 5432; endpoints = [ \"10.1.2.4:5432\" ];\n"
	"    protocol = \"tcp\"; connect_timeout_ms = 0;\n"
	"    retry = { on = [ \"connect-failure\" ]; max = 5; }; },\n"
	"  { name = \"web\"; port = 80; endpoints = [ \"10.1.2.5:80\" ];\n"
	"    protocol = \"auto\"; retry = { }; }\n"
	");\n";

static void assert_retry_defaults(const struct config_retry *r, int set)
{
	assert_int_equal(r->set, set);
	assert_int_equal(r->on, RETRY_ON_CONNECT_FAILURE);
	assert_int_equal(r->n_statuses, 0);
	assert_int_equal(r->max, 2);
	assert_int_equal(r->budget_percent, 20);
	assert_int_equal(r->min_per_s, 10);
	assert_int_equal(r->ttl_s, 10);
	assert_int_equal(r->non_idempotent, 0);
}

static void test_service_traffic(void **state)
{
	struct config *c = parse_ok(traffic_text);
	const struct config_service *s;
	const struct config_route *r;

	assert_int_equal(c->connect_timeout_ms, 3000);
	assert_int_equal(c->n_services, 3);
	s = &c->services[0];
	assert_int_equal(s->protocol, SVC_PROTO_HTTP);
	assert_int_equal(s->timeout_ms, 1000);
	assert_int_equal(s->connect_timeout_ms, 250);
	assert_int_equal(s->retry.set, 1);
	assert_int_equal(s->retry.on, RETRY_ON_5XX | RETRY_ON_GATEWAY_ERROR |
					      RETRY_ON_CONNECT_FAILURE | RETRY_ON_RESET |
					      RETRY_ON_GRPC_CANCELLED |
					      RETRY_ON_GRPC_DEADLINE_EXCEEDED |
					      RETRY_ON_GRPC_RESOURCE_EXHAUSTED |
					      RETRY_ON_GRPC_INTERNAL | RETRY_ON_GRPC_UNAVAILABLE);
	assert_int_equal(s->retry.n_statuses, 2);
	assert_int_equal(s->retry.statuses[0], 503);
	assert_int_equal(s->retry.statuses[1], 429);
	assert_int_equal(s->retry.max, 3);
	assert_int_equal(s->retry.budget_percent, 50);
	assert_int_equal(s->retry.min_per_s, 5);
	assert_int_equal(s->retry.ttl_s, 30);
	assert_int_equal(s->retry.non_idempotent, 1);

	assert_int_equal(s->n_routes, 3);
	r = &s->routes[0];
	assert_string_equal(r->path_prefix, "/api/");
	assert_int_equal(r->n_methods, 2);
	assert_string_equal(r->methods[0], "GET");
	assert_string_equal(r->methods[1], "POST");
	assert_int_equal(r->timeout_ms, 500);
	assert_int_equal(r->retry.set, 1);
	/* The route's group is whole: "on" replaces the default, not adds to it. */
	assert_int_equal(r->retry.on, 0);
	assert_int_equal(r->retry.n_statuses, 1);
	assert_int_equal(r->retry.statuses[0], 409);
	assert_int_equal(r->retry.max, 1);
	assert_int_equal(r->retry.budget_percent, 0);
	assert_int_equal(r->retry.min_per_s, 0);
	assert_int_equal(r->retry.ttl_s, 1);
	assert_int_equal(r->retry.non_idempotent, 0);
	r = &s->routes[1];
	assert_string_equal(r->path_prefix, "/slow");
	assert_int_equal(r->n_methods, 0);
	assert_null(r->methods);
	assert_int_equal(r->timeout_ms, 0);
	assert_retry_defaults(&r->retry, 0);
	r = &s->routes[2];
	assert_null(r->path_prefix);
	assert_int_equal(r->n_methods, 1);
	assert_string_equal(r->methods[0], "DELETE");
	assert_int_equal(r->timeout_ms, -1);
	/* Keys a route's group leaves out take the defaults, not the service's. */
	assert_int_equal(r->retry.set, 1);
	assert_int_equal(r->retry.on, RETRY_ON_CONNECT_FAILURE);
	assert_int_equal(r->retry.max, 0);
	assert_int_equal(r->retry.budget_percent, 20);
	assert_int_equal(r->retry.ttl_s, 10);
	assert_int_equal(r->retry.non_idempotent, 0);

	s = &c->services[1];
	assert_int_equal(s->protocol, SVC_PROTO_TCP);
	assert_int_equal(s->timeout_ms, 0);
	assert_int_equal(s->connect_timeout_ms, 0);
	assert_int_equal(s->retry.set, 1);
	assert_int_equal(s->retry.on, RETRY_ON_CONNECT_FAILURE);
	assert_int_equal(s->retry.max, 5);
	assert_int_equal(s->n_routes, 0);

	/* An empty group is given: set, with every default. */
	s = &c->services[2];
	assert_int_equal(s->protocol, SVC_PROTO_AUTO);
	assert_retry_defaults(&s->retry, 1);
	config_free(c);
}

static void test_service_traffic_defaults(void **state)
{
	struct config *c = parse_ok(
		"services = ( { name = \"a\"; port = 80; endpoints = [ \"10.0.0.1:80\" ]; },\n"
		"  { name = \"b\"; port = 80; endpoints = [ \"10.0.0.2:80\" ];\n"
		"    routes = ( { path_prefix = \"/\"; } ); } );\n");
	const struct config_service *s = &c->services[0];

	assert_int_equal(s->protocol, SVC_PROTO_AUTO);
	assert_int_equal(s->timeout_ms, 0);
	assert_int_equal(s->connect_timeout_ms, 0);
	assert_retry_defaults(&s->retry, 0);
	assert_int_equal(s->n_routes, 0);
	assert_null(s->routes);
	s = &c->services[1];
	assert_retry_defaults(&s->retry, 0);
	assert_int_equal(s->n_routes, 1);
	assert_int_equal(s->routes[0].timeout_ms, -1);
	assert_int_equal(s->routes[0].n_methods, 0);
	assert_retry_defaults(&s->routes[0].retry, 0);
	config_free(c);
}

/* Built text: a service with n routes and one path_prefix of plen bytes. */
static char *routes_text(size_t n, size_t plen)
{
	size_t cap = 256 + n * 64 + plen, off = 0, i;
	char *t = malloc(cap);

	assert_non_null(t);
	off += (size_t)snprintf(t + off, cap - off,
				"services = ( { name = \"a\"; port = 80;\n"
				"  endpoints = [ \"10.0.0.1:80\" ];\n"
				"  routes = ( { path_prefix = \"/");
	for (i = 1; i < plen; i++)
		t[off++] = 'p';
	off += (size_t)snprintf(t + off, cap - off, "\"; }");
	for (i = 1; i < n; i++)
		off += (size_t)snprintf(t + off, cap - off, ",\n { path_prefix = \"/r%zu\"; }", i);
	snprintf(t + off, cap - off, " ); } );\n");
	return t;
}

/* At most 64 routes, prefixes of at most 1024 characters. */
static void test_route_limits(void **state)
{
	char err[512], *t;
	struct config *c;

	t = routes_text(64, 1024);
	c = parse_ok(t);
	assert_int_equal(c->services[0].n_routes, 64);
	assert_int_equal(strlen(c->services[0].routes[0].path_prefix), 1024);
	assert_string_equal(c->services[0].routes[63].path_prefix, "/r63");
	config_free(c);
	free(t);

	t = routes_text(65, 1);
	assert_null(config_parse(t, NAME, err, sizeof(err)));
	assert_non_null(strstr(err, NAME ":3: services[0].routes: has 65 routes; at most 64"));
	free(t);

	t = routes_text(1, 1025);
	assert_null(config_parse(t, NAME, err, sizeof(err)));
	assert_non_null(strstr(err, "services[0].routes[0].path_prefix"));
	assert_non_null(strstr(err, "is longer than 1024 characters"));
	free(t);
}

static void test_log_levels(void **state)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	char text[64];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(names); i++) {
		struct config *c;

		snprintf(text, sizeof(text), "log_level = \"%s\";", names[i]);
		c = parse_ok(text);
		assert_int_equal(c->log_level, (int)i);
		config_free(c);
	}
}

/* ------------------------------------------------------------------ */
/* Built-in default                                                    */

static void test_config_default(void **state)
{
	char err[256];
	struct config *c = config_default(NULL, err, sizeof(err));

	assert_non_null(c);
	assert_null(c->file);
	assert_string_equal(c->trust_domain, "cluster.local");
	assert_string_equal(c->runtime_dir, "/run/ldmesh");
	assert_string_equal(c->admin_addr, "");
	assert_null(c->cert);
	assert_int_equal(c->inbound_mtls, CONFIG_MTLS_DISABLE);
	assert_int_equal(c->egress_allow_all, 1);
	assert_default_mesh(c);
	assert_int_equal(c->workers, 0);
	assert_int_equal(c->log_level, 2);
	config_free(c);
}

static void test_config_default_runtime_dir(void **state)
{
	char err[256];
	struct config *c;

	c = config_default("/tmp/pod \"a\" \\b", err, sizeof(err));
	if (!c)
		fail_msg("%s", err);
	/* Quotes and backslashes survive the trip through the config text. */
	assert_string_equal(c->runtime_dir, "/tmp/pod \"a\" \\b");
	config_free(c);

	c = config_default("relative/dir", err, sizeof(err));
	assert_null(c);
	assert_non_null(strstr(err, "runtime_dir"));
	assert_non_null(strstr(err, "absolute"));

	c = config_default("/tmp/a\nb", err, sizeof(err));
	assert_null(c);
	assert_non_null(strstr(err, "control character"));
}

/* ------------------------------------------------------------------ */
/* Files                                                               */

static char *write_temp(const void *data, size_t len)
{
	char *path = strdup("/tmp/test_config_XXXXXX");
	int fd;

	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

static void test_load_file(void **state)
{
	static const char text[] = "workers = 1;\n";
	char err[512], *path = write_temp(text, sizeof(text) - 1);
	struct config *c = config_load(path, err, sizeof(err));

	if (!c)
		fail_msg("%s", err);
	assert_string_equal(c->file, path);
	assert_int_equal(c->workers, 1);
	config_free(c);
	unlink(path);
	free(path);
}

static void test_load_errors_name_the_file(void **state)
{
	static const char bad[] = "workers = 1;\n\ninbound = { mtls = \"strcit\"; };\n";
	static const char nul[] = "workers = 1;\nlog_level = \"info\0\";\n";
	char err[512], want[128], *path;

	path = write_temp(bad, sizeof(bad) - 1);
	assert_null(config_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:3: inbound.mtls: expected one of", path);
	assert_non_null(strstr(err, want));
	unlink(path);
	free(path);

	path = write_temp(nul, sizeof(nul) - 1);
	assert_null(config_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:2:", path);
	assert_non_null(strstr(err, want));
	assert_non_null(strstr(err, "NUL"));
	unlink(path);
	free(path);

	assert_null(config_load("/nonexistent/ldmesh.conf", err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/ldmesh.conf"));
	assert_non_null(strstr(err, strerror(ENOENT)));

	assert_null(config_load("/tmp", err, sizeof(err)));
	assert_non_null(strstr(err, "/tmp"));

	assert_null(config_load(NULL, err, sizeof(err)));
	assert_null(config_load("", err, sizeof(err)));
}

/* The shipped example must stay valid and use every top-level key. */
static void test_example_config(void **state)
{
	static const char *const keys[] = {
		"trust_domain",	   "runtime_dir",      "admin_addr",
		"identity",	   "inbound",	       "outbound",
		"mesh_networks",   "egress",	       "egress_allow",
		"services",	   "policies",	       "principals",
		"namespaces",	   "methods",	       "paths",
		"hosts",	   "unauthenticated",  "policy_default",
		"workers",	   "io_backend",       "connect_timeout_ms",
		"idle_timeout_ms", "drain_timeout_ms", "buffer_size",
		"max_connections", "allowed_uids",     "access_log",
		"log_level",	   "exclude_ports",
	};
	const char *path = "conf/ldmesh.conf";
	char err[512], buf[16384];
	struct config *c;
	size_t i, n;
	FILE *f;

	if (access(path, R_OK) != 0)
		path = "../../conf/ldmesh.conf";
	if (access(path, R_OK) != 0)
		skip();
	c = config_load(path, err, sizeof(err));
	if (!c)
		fail_msg("%s", err);
	assert_non_null(c->cert);
	assert_true(c->n_services > 0);
	assert_true(c->n_policies > 0);
	config_free(c);

	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	for (i = 0; i < ARRAY_SIZE(keys); i++) {
		char pat[64];

		snprintf(pat, sizeof(pat), "\n%s = ", keys[i]);
		if (!strstr(buf, pat)) {
			snprintf(pat, sizeof(pat), " %s = ", keys[i]);
			if (!strstr(buf, pat))
				fail_msg("conf/ldmesh.conf does not set %s", keys[i]);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Error buffer handling                                               */

static void test_error_buffers(void **state)
{
	char small[16];

	assert_null(config_parse("workers = 0;", NAME, NULL, 0));
	memset(small, 'X', sizeof(small));
	assert_null(config_parse("workers = 0;", NAME, small, sizeof(small)));
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_null(config_parse(NULL, NAME, small, sizeof(small)));
	config_free(NULL);
}

static void test_unnamed_text(void **state)
{
	char err[256];
	struct config *c;

	assert_null(config_parse("workers = 0;", NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "<string>:1: workers"));
	c = config_parse("", NULL, err, sizeof(err));
	assert_non_null(c);
	assert_null(c->file);
	config_free(c);
}

/* ------------------------------------------------------------------ */
/* CIDR parsing                                                        */

struct cidr_case {
	const char *in;
	int ok;
	int family, prefix;
};

static const struct cidr_case cidr_cases[] = {
	{"10.0.0.0/8", 1, AF_INET, 8},
	{"0.0.0.0/0", 1, AF_INET, 0},
	{"192.168.1.7", 1, AF_INET, 32},
	{"192.168.1.7/32", 1, AF_INET, 32},
	{"172.16.0.0/12", 1, AF_INET, 12},
	{"fd00::/8", 1, AF_INET6, 8},
	{"::/0", 1, AF_INET6, 0},
	{"::1", 1, AF_INET6, 128},
	{"2001:db8::/32", 1, AF_INET6, 32},
	{"::ffff:10.0.0.0/104", 1, AF_INET6, 104},
	{"10.0.0.1/8", 0, 0, 0}, /* host bits */
	{"fd00::1/8", 0, 0, 0}, /* host bits */
	{"10.0.0.0/33", 0, 0, 0},
	{"fd00::/129", 0, 0, 0},
	{"10.0.0.0/", 0, 0, 0},
	{"10.0.0.0/-1", 0, 0, 0},
	{"10.0.0.0/+8", 0, 0, 0},
	{"10.0.0.0/8 ", 0, 0, 0},
	{"10.0.0.0/0008", 0, 0, 0},
	{"10.0.0/8", 0, 0, 0},
	{"010.0.0.0/8", 0, 0, 0},
	{"256.0.0.0/8", 0, 0, 0},
	{"/8", 0, 0, 0},
	{"", 0, 0, 0},
	{"fe80::1%eth0/64", 0, 0, 0},
	{"10.0.0.0/8/8", 0, 0, 0},
	{"example.com/8", 0, 0, 0},
};

static void test_parse_cidr(void **state)
{
	struct config_cidr c;
	size_t i;
	int rc;

	for (i = 0; i < ARRAY_SIZE(cidr_cases); i++) {
		const struct cidr_case *t = &cidr_cases[i];

		memset(&c, 0xaa, sizeof(c));
		rc = config_parse_cidr(t->in, &c);
		if (t->ok != (rc == 0))
			fail_msg("cidr \"%s\": rc %d", t->in, rc);
		if (rc == 0 && (c.family != t->family || c.prefix_len != t->prefix))
			fail_msg("cidr \"%s\": family %d prefix %d", t->in, c.family, c.prefix_len);
		if (rc != 0)
			assert_int_equal(rc, -EINVAL);
	}
	assert_int_equal(config_parse_cidr(NULL, &c), -EINVAL);
}

struct contains_case {
	const char *cidr, *addr;
	int in;
};

static const struct contains_case contains_cases[] = {
	{"10.0.0.0/8", "10.255.255.255", 1},
	{"10.0.0.0/8", "11.0.0.0", 0},
	{"10.0.0.0/8", "9.255.255.255", 0},
	{"172.16.0.0/12", "172.31.0.1", 1},
	{"172.16.0.0/12", "172.32.0.1", 0},
	{"192.168.1.0/25", "192.168.1.127", 1},
	{"192.168.1.0/25", "192.168.1.128", 0},
	{"1.2.3.4", "1.2.3.4", 1},
	{"1.2.3.4", "1.2.3.5", 0},
	{"0.0.0.0/0", "255.255.255.255", 1},
	{"fd00::/8", "fdff:ffff::1", 1},
	{"fd00::/8", "fe00::1", 0},
	{"2001:db8::/33", "2001:db8:7fff::1", 1},
	{"2001:db8::/33", "2001:db8:8000::1", 0},
	{"::/0", "::1", 1},
	{"::1", "::1", 1},
	/* IPv4-mapped IPv6 addresses match IPv4 prefixes */
	{"10.0.0.0/8", "::ffff:10.1.2.3", 1},
	{"10.0.0.0/8", "::ffff:11.1.2.3", 0},
	{"0.0.0.0/0", "::ffff:1.1.1.1", 1},
	/* ... but other IPv6 addresses never do, nor IPv4 in IPv6 prefixes */
	{"0.0.0.0/0", "::1", 0},
	{"0.0.0.0/0", "::10.1.2.3", 0},
	{"0.0.0.0/0", "64:ff9b::10.1.2.3", 0},
	{"::/0", "10.1.2.3", 0},
	{"::ffff:10.0.0.0/104", "::ffff:10.1.2.3", 1},
	{"::ffff:10.0.0.0/104", "::ffff:11.1.2.3", 0},
};

static void test_cidr_contains(void **state)
{
	struct config_cidr c;
	struct ldm_addr a;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(contains_cases); i++) {
		const struct contains_case *t = &contains_cases[i];

		assert_int_equal(config_parse_cidr(t->cidr, &c), 0);
		a = addr_of(t->addr);
		if (config_cidr_contains(&c, &a) != t->in)
			fail_msg("%s in %s: expected %d", t->addr, t->cidr, t->in);
	}
	a = addr_of("10.0.0.1");
	a.family = AF_UNIX;
	assert_int_equal(config_parse_cidr("0.0.0.0/0", &c), 0);
	assert_false(config_cidr_contains(&c, &a));
	assert_false(config_cidr_contains(NULL, &a));
	assert_false(config_cidr_contains(&c, NULL));
	assert_false(config_in_mesh(NULL, &a));
}

/* ------------------------------------------------------------------ */
/* host:port parsing                                                   */

struct hostport_case {
	const char *in;
	int ok;
	int family;
	const char *ip;
	unsigned port;
	uint32_t scope;
};

static const struct hostport_case hostport_cases[] = {
	{"10.1.2.3:8080", 1, AF_INET, "10.1.2.3", 8080, 0},
	{"0.0.0.0:4191", 1, AF_INET, "0.0.0.0", 4191, 0},
	{"255.255.255.255:65535", 1, AF_INET, "255.255.255.255", 65535, 0},
	{"[fd00::1]:8080", 1, AF_INET6, "fd00::1", 8080, 0},
	{"[::]:1", 1, AF_INET6, "::", 1, 0},
	{"[::ffff:10.1.2.3]:80", 1, AF_INET6, "::ffff:10.1.2.3", 80, 0},
	{"[fe80::1%7]:80", 1, AF_INET6, "fe80::1", 80, 7},
	{"10.1.2.3", 0, 0, NULL, 0, 0},
	{"10.1.2.3:", 0, 0, NULL, 0, 0},
	{"10.1.2.3:0", 0, 0, NULL, 0, 0},
	{"10.1.2.3:65536", 0, 0, NULL, 0, 0},
	{"10.1.2.3:-1", 0, 0, NULL, 0, 0},
	{"10.1.2.3:+80", 0, 0, NULL, 0, 0},
	{"10.1.2.3:80 ", 0, 0, NULL, 0, 0},
	{"10.1.2.3:0x50", 0, 0, NULL, 0, 0},
	{"10.1.2.3:123456", 0, 0, NULL, 0, 0},
	{":80", 0, 0, NULL, 0, 0},
	{"fd00::1:80", 0, 0, NULL, 0, 0},
	{"[fd00::1]80", 0, 0, NULL, 0, 0},
	{"[fd00::1]:", 0, 0, NULL, 0, 0},
	{"[fd00::1:80", 0, 0, NULL, 0, 0},
	{"[10.1.2.3]:80", 0, 0, NULL, 0, 0},
	{"[]:80", 0, 0, NULL, 0, 0},
	{"[fe80::1%]:80", 0, 0, NULL, 0, 0},
	{"[fe80::1%no-such-if0]:80", 0, 0, NULL, 0, 0},
	{"10.1.2.3%1:80", 0, 0, NULL, 0, 0},
	{"localhost:80", 0, 0, NULL, 0, 0},
	{"", 0, 0, NULL, 0, 0},
};

static void test_parse_hostport(void **state)
{
	struct ldm_addr a, want, untouched;
	size_t i;
	int rc;

	for (i = 0; i < ARRAY_SIZE(hostport_cases); i++) {
		const struct hostport_case *t = &hostport_cases[i];

		memset(&a, 0x5a, sizeof(a));
		untouched = a;
		rc = config_parse_hostport(t->in, &a);
		if (t->ok != (rc == 0))
			fail_msg("hostport \"%s\": rc %d", t->in, rc);
		if (!t->ok) {
			assert_int_equal(rc, -EINVAL);
			/* A failed parse leaves the output alone. */
			assert_memory_equal(&a, &untouched, sizeof(a));
			continue;
		}
		want = addr_of(t->ip);
		want.port = htons((uint16_t)t->port);
		want.scope_id = t->scope;
		if (memcmp(&a, &want, sizeof(a)) != 0)
			fail_msg("hostport \"%s\" parsed wrong", t->in);
	}
	assert_int_equal(config_parse_hostport(NULL, &a), -EINVAL);
}

/* ------------------------------------------------------------------ */
/* Robustness                                                          */

/*
 * Damaged versions of a full config: every one must either parse or fail
 * with a message, never crash or leak (ASan runs this).  Deterministic, so
 * a failure reproduces.
 */
static void mutate(const char *text)
{
	static const char alphabet[] = "{}()[];=,\"\\#/*@-+.:0123456789LxXe \nabz";
	size_t len = strlen(text), i, j, n, pos;
	unsigned seed = 12345;
	char err[512], *buf;
	struct config *c;

	buf = malloc(len + 64);
	assert_non_null(buf);
	for (i = 0; i < 4000; i++) {
		memcpy(buf, text, len + 1);
		n = 1 + rand_r(&seed) % 4;
		for (j = 0; j < n; j++) {
			size_t cur = strlen(buf);

			pos = (size_t)rand_r(&seed) % (cur + 1);
			switch (rand_r(&seed) % 3) {
			case 0: /* replace */
				if (pos < cur)
					buf[pos] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
				break;
			case 1: /* delete */
				if (pos < cur)
					memmove(buf + pos, buf + pos + 1, cur - pos);
				break;
			default: /* insert */
				memmove(buf + pos + 1, buf + pos, cur - pos + 1);
				buf[pos] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
				break;
			}
		}
		err[0] = '\0';
		c = config_parse(buf, NAME, err, sizeof(err));
		if (!c && strncmp(err, NAME ":", strlen(NAME ":")) != 0)
			fail_msg("mutation %zu: error without file name: \"%s\"", i, err);
		config_free(c);
	}
	free(buf);
}

static void test_mutations(void **state)
{
	mutate(full_text);
	mutate(traffic_text);
}

/* Lists longer than the limit are refused without a quadratic stall. */
static void test_huge_list(void **state)
{
	size_t n = 10001, i, off = 0, cap = n * 4 + 64;
	char *text = malloc(cap), err[256];

	assert_non_null(text);
	off += (size_t)snprintf(text + off, cap - off, "allowed_uids = [ ");
	for (i = 0; i < n; i++)
		off += (size_t)snprintf(text + off, cap - off, "%s1", i ? "," : "");
	snprintf(text + off, cap - off, " ];");
	assert_null(config_parse(text, NAME, err, sizeof(err)));
	assert_non_null(strstr(err, "allowed_uids: has 10001 entries"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_configs),
		cmocka_unit_test(test_bad_configs),
		cmocka_unit_test(test_bad_configs_name_file_line),
		cmocka_unit_test(test_links),
		cmocka_unit_test(test_defaults_of_empty_file),
		cmocka_unit_test(test_mtls_defaults_to_strict_with_identity),
		cmocka_unit_test(test_opaque_ports),
		cmocka_unit_test(test_empty_mesh_networks),
		cmocka_unit_test(test_full_config),
		cmocka_unit_test(test_service_traffic),
		cmocka_unit_test(test_service_traffic_defaults),
		cmocka_unit_test(test_route_limits),
		cmocka_unit_test(test_log_levels),
		cmocka_unit_test(test_config_default),
		cmocka_unit_test(test_config_default_runtime_dir),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_load_errors_name_the_file),
		cmocka_unit_test(test_example_config),
		cmocka_unit_test(test_error_buffers),
		cmocka_unit_test(test_unnamed_text),
		cmocka_unit_test(test_parse_cidr),
		cmocka_unit_test(test_cidr_contains),
		cmocka_unit_test(test_parse_hostport),
		cmocka_unit_test(test_mutations),
		cmocka_unit_test(test_huge_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
