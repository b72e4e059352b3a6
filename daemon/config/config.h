/*
 * Daemon configuration: a libconfig file turned into a validated, immutable
 * struct config.  A reload builds a new one and swaps the pointer; the old
 * one is freed once nothing refers to it.
 */
#ifndef LDMESH_CONFIG_H
#define LDMESH_CONFIG_H

/* workers and max_workers: at most this many event loops. */
#define CONFIG_WORKERS_MAX 64

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ldmesh/proto.h"

enum config_mtls { CONFIG_MTLS_STRICT, CONFIG_MTLS_PERMISSIVE, CONFIG_MTLS_DISABLE };
enum config_io { CONFIG_IO_AUTO, CONFIG_IO_URING, CONFIG_IO_EPOLL };
enum config_action { CONFIG_ACTION_ALLOW, CONFIG_ACTION_DENY, CONFIG_ACTION_AUDIT };

/* An IPv4 or IPv6 prefix; addresses are in network byte order. */
struct config_cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	int prefix_len;
};

/* inbound.ports[]: a port's own mTLS mode (inbound.mtls when not given)
 * and whether it is opaque: no HTTP detection or handling there. */
struct config_port_mtls {
	uint16_t port;
	enum config_mtls mtls;
	int mtls_set; /* 0: mtls is inbound.mtls (filled in by the loader) */
	int opaque; /* opaque = true: bytes pass as they are from the first */
};

struct config_egress_rule {
	struct config_cidr cidr;
	uint16_t *ports; /* owned; empty means every port */
	size_t n_ports;
};

/* A share of a service's connections sent to another service. */
struct config_split {
	char *service; /* owned: the name of another service */
	int weight; /* percent, 0..100 */
};

/* What a service's connections carry (services[].protocol). */
enum config_svc_protocol {
	SVC_PROTO_AUTO, /* "auto": HTTP/1 and HTTP/2 per request, anything else per connection */
	SVC_PROTO_HTTP, /* "http": HTTP only; a connection that is not HTTP is refused */
	SVC_PROTO_TCP, /* "tcp": per connection, the dial at the app's connect() */
};

/* retry.on conditions (Envoy's retry_on names where it has them). */
#define RETRY_ON_5XX (1u << 0) /* "5xx": any 5xx answer */
#define RETRY_ON_GATEWAY_ERROR (1u << 1) /* "gateway-error": 502, 503, 504 */
#define RETRY_ON_CONNECT_FAILURE (1u << 2) /* "connect-failure": the dial failed */
#define RETRY_ON_RESET (1u << 3) /* "reset": closed or reset before a response head */
#define RETRY_ON_GRPC_CANCELLED (1u << 4) /* "cancelled": grpc-status 1 */
#define RETRY_ON_GRPC_DEADLINE_EXCEEDED (1u << 5) /* "deadline-exceeded": 4 */
#define RETRY_ON_GRPC_RESOURCE_EXHAUSTED (1u << 6) /* "resource-exhausted": 8 */
#define RETRY_ON_GRPC_INTERNAL (1u << 7) /* "internal": 13 */
#define RETRY_ON_GRPC_UNAVAILABLE (1u << 8) /* "unavailable": 14 */
#define RETRY_STATUSES_MAX 16

/* retry = { on; max; budget_percent; min_per_s; ttl_s; non_idempotent; } */
struct config_retry {
	int set; /* the group was given (a route without one uses its service's) */
	uint32_t on; /* RETRY_ON_*; a code such as "503" goes to statuses */
	uint16_t statuses[RETRY_STATUSES_MAX]; /* 100..599 */
	int n_statuses;
	int max; /* attempts after the first: 0..10, default 2 */
	int budget_percent; /* retries per request over ttl_s: 0..1000, default 20 */
	int min_per_s; /* retries always allowed per second: 0..100000, default 10 */
	int ttl_s; /* the budget's window: 1..60, default 10 */
	int non_idempotent; /* HTTP/1 POST, PATCH, CONNECT... retried too: default false */
};

/* routes = ( { path_prefix; methods; timeout_ms; retry; } ): the first
 * route whose prefix and method match a request gives its settings. */
struct config_route {
	char *path_prefix; /* owned, NULL: every path; starts with '/' */
	char **methods; /* owned, empty: every method; upper-case tokens */
	size_t n_methods;
	int timeout_ms; /* -1: the service's */
	struct config_retry retry; /* set 0: the service's */
};

struct config_service {
	char *name; /* owned */
	uint16_t port;
	char *identity; /* owned, may be NULL: no pinned server identity */
	struct ldm_addr *endpoints; /* owned; none when dns is set */
	size_t n_endpoints;
	char *dns; /* owned, NULL: endpoints is the list.  A host name whose A and
		    * AAAA records are the endpoints (daemon/proxy/dns.c) */
	uint16_t dns_port; /* host order: the endpoints' port with dns */
	struct ldm_addr *addresses; /* owned: virtual addresses apps dial, may be none */
	size_t n_addresses;
	struct config_split *splits; /* owned; the rest (100 - sum) stays here */
	size_t n_splits;
	enum config_svc_protocol protocol; /* default SVC_PROTO_AUTO */
	int timeout_ms; /* request timeout -> 504; 0: none (default) */
	int connect_timeout_ms; /* 0: the daemon's connect_timeout_ms */
	struct config_retry retry; /* set 0: only connect failures, max 2 */
	struct config_route *routes; /* owned */
	size_t n_routes;
};

struct config_policy {
	char *name; /* owned */
	enum config_action action;
	uint16_t *ports;
	size_t n_ports; /* owned; empty: every port */
	char **principals;
	size_t n_principals; /* owned strings: spiffe:// IDs,
						 * "*", or a prefix ending in '*' */
	char **namespaces;
	size_t n_namespaces;
	char **methods;
	size_t n_methods;
	char **paths;
	size_t n_paths;
	char **hosts;
	size_t n_hosts;
	int unauthenticated; /* 1: rule matches callers without identity */
};

/* outbound.links: connections to mesh peers as streams on shared links. */
struct config_links {
	int enabled; /* enabled = false (for now: docs/configuration.md) */
	int max_streams; /* max_streams_per_link = 100 */
	int max_links; /* max_links_per_peer = 4 */
	int idle_timeout_ms; /* idle_timeout_ms = 60000: a link with no stream */
	int ping_interval_ms; /* ping_interval_ms = 10000: quiet this long, PING */
	int ping_timeout_ms; /* ping_timeout_ms = 20000: no answer, the link is dead */
	int fallback_ms; /* fallback_ms = 60000: a peer without a link port */
};

struct config {
	uint64_t generation; /* unique per config made in this process: a new one
			      * may land where a freed one was */
	char *file; /* owned; NULL for the built-in default */
	char *trust_domain; /* owned */
	char *runtime_dir; /* owned */
	char *admin_addr; /* owned, "" disables the admin listener */

	char *cert, *key, *bundle; /* owned; NULL when identity is not set */

	enum config_mtls inbound_mtls;
	struct config_port_mtls *inbound_ports;
	size_t n_inbound_ports;
	uint16_t *inbound_exclude_ports; /* owned; listeners left outside the mesh */
	size_t n_inbound_exclude_ports;
	int link_port; /* inbound.link_port = 15008; 0: no link listener */

	struct config_cidr *mesh_networks;
	size_t n_mesh_networks;
	int egress_allow_all; /* outbound.egress: 1 allow, 0 deny */
	struct config_egress_rule *egress_allow;
	size_t n_egress_allow;
	struct config_links links;

	struct config_service *services;
	size_t n_services;
	struct ldm_addr *dns_servers; /* owned; none: /etc/resolv.conf's */
	size_t n_dns_servers;
	struct config_policy *policies;
	size_t n_policies;
	int default_deny; /* policy_default = "deny" */

	/* Daemon tuning (top-level keys). */
	int workers; /* workers = N; 0 (unset): the usable CPUs (util/cpus.h) */
	int max_workers; /* max_workers = 8: the cap on that default */
	enum config_io io_backend; /* io_backend = "auto" | "io_uring" | "epoll" */
	int connect_timeout_ms; /* connect_timeout_ms = 10000 */
	int idle_timeout_ms; /* idle_timeout_ms = 3600000, 0 = none */
	int http_head_timeout_ms; /* http_head_timeout_ms = 30000, 0 = none */
	int drain_timeout_ms; /* drain_timeout_ms = 30000 */
	int buffer_size; /* buffer_size = 32768: bytes per direction */
	int max_connections; /* max_connections = 100000 */
	uid_t *allowed_uids;
	size_t n_allowed_uids; /* empty: any local uid */
	char *access_log; /* owned, NULL: off; "stderr" or a path */
	int http_metrics; /* telemetry.http = true: HTTP/1 request metrics */
	int max_series; /* telemetry.max_series = 1000: metric label sets */
	int log_level; /* log_level = "info": 0 error .. 3 debug */
};

/*
 * Parses and validates FILE.  Returns a new config, or NULL with a sentence
 * naming file:line and the key in err.  Unknown keys are errors.
 */
struct config *config_load(const char *file, char *err, size_t errlen);

/* Same as config_load, from a string (for tests and the built-in default). */
struct config *config_parse(const char *text, const char *name, char *err, size_t errlen);

/* The built-in default used when ldmeshd runs without -c. */
struct config *config_default(const char *runtime_dir, char *err, size_t errlen);

/* Frees a config; NULL is a no-op. */
void config_free(struct config *c);

/* 1 when addr (an ldm_addr) falls in any mesh_networks prefix. */
int config_in_mesh(const struct config *c, const struct ldm_addr *addr);

/*
 * 1 when addr is inside the prefix.  An IPv4 prefix also contains the
 * IPv4-mapped IPv6 form of its addresses (::ffff:10.1.2.3).
 */
int config_cidr_contains(const struct config_cidr *cidr, const struct ldm_addr *addr);

/*
 * Parses "10.0.0.0/8" or "fd00::/8" (a bare address is a /32 or /128).
 * Returns 0 or -EINVAL, also when host bits are set ("10.0.0.1/8").
 */
int config_parse_cidr(const char *s, struct config_cidr *out);

/*
 * Parses "10.1.2.3:8080" or "[fd00::1]:8080". Returns 0 or -EINVAL.
 * IP literals only; the port is 1..65535; IPv6 needs brackets and may carry
 * a zone ("[fe80::1%eth0]:80", "%3") that sets scope_id.  out is left
 * untouched on error.
 */
int config_parse_hostport(const char *s, struct ldm_addr *out);

/*
 * Calls fn(path, arg) for every key the validator accepts, as written in
 * docs/configuration.md: "trust_domain", "identity.cert", "inbound.ports",
 * "inbound.ports[].port".  A group is only a prefix ("identity" is not a
 * key of its own); a list of groups is both a key and a prefix.  The paths
 * come from the validator's own key tables, in table order; path is only
 * valid during the call.  Returns 0, the first non-zero value fn returned,
 * or -ENAMETOOLONG if a path does not fit in 256 bytes.
 */
int config_key_paths(int (*fn)(const char *path, void *arg), void *arg);

#endif
