/*
 * What the policy files share: the compiled form of a policy set and the
 * limits they share.  compile.c turns the config into a policy_set,
 * policy.c evaluates requests against it; the pattern grammar both use is
 * config/pattern.c.
 */
#ifndef LDMESH_POLICY_INTERNAL_H
#define LDMESH_POLICY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "ldmesh/common.h"
#include "policy/policy.h"

/* Request paths up to this many bytes are normalised; longer ones are
 * treated as unreadable (fail closed). */
#define POL_NORM_MAX 4096

/* ------------------------------------------------------------------ */
/* Compiled form                                                       */

enum pol_principal_kind { PRIN_ANY, PRIN_EXACT, PRIN_PREFIX };

struct pol_principal {
	enum pol_principal_kind kind;
	const char *s; /* arena; for PRIN_PREFIX without the '*' */
	size_t len;
};

/* A namespace or path pattern: plain strings compare with strcmp. */
struct pol_pattern {
	const char *s; /* arena */
	size_t len;
	int glob; /* contains '*' or '?' */
};

struct pol_host {
	const char *name; /* arena, lowercase, no trailing dot */
	size_t name_len;
	const char *port; /* arena, NULL: any port or none */
	size_t port_len;
};

struct pol_rule {
	const char *name; /* arena; what policy_result.rule points to */
	enum config_action action;
	uint16_t *ports;
	size_t n_ports; /* arena, sorted; empty: any */
	struct pol_principal *principals;
	size_t n_principals;
	struct pol_pattern *namespaces;
	size_t n_namespaces;
	const char **methods;
	size_t n_methods;
	struct pol_pattern *paths;
	size_t n_paths;
	struct pol_host *hosts;
	size_t n_hosts;
	int unauthenticated;
	int l7; /* sets methods, paths or hosts */
};

struct policy_set {
	/* Deny rules first, then allow, then audit, each in config order. */
	struct pol_rule *rules;
	size_t n_deny, n_allow, n_audit;
	int default_deny;
	char *arena; /* owns everything the rules point to */
};

#endif
