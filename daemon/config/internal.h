/*
 * Private to daemon/config/: what the section files share.  The public API
 * is daemon/config/config.h.
 *
 * libconfig text -> validated, immutable struct config.  One text goes
 * through three passes:
 *   1. a small lexical pre-scan (scan.c) for what libconfig 1.5 gets wrong
 *      or does behind our back: integer literals that silently wrap to 32
 *      bits and @include directives that open other files;
 *   2. libconfig's own parser, whose errors become "FILE:LINE: message";
 *   3. a walk over the setting tree (core.c), one table of known keys per
 *      group, that type-checks and range-checks every value while filling
 *      the struct.
 * Members are walked in file order, so the error reported is the first one
 * in the file.  Every error is a sentence naming file:line and the full key
 * path ("services[1].endpoints[0]").
 *
 * Files: core.c (messages, typed getters, the walk, lists), values.c
 * (checks of names, SPIFFE IDs, paths), addr.c (CIDR and ip:port), one file
 * per section (identity.c, inbound.c, outbound.c, services.c, policies.c,
 * top.c for the top-level keys), scan.c (the pre-scan), load.c (defaults,
 * cross-key checks, the public entry points).
 *
 * Ownership while building: every array is attached to the config before it
 * is filled, and its count is set with it (elements start zeroed), so
 * config_free() releases a half-built config on any error path.
 */
#ifndef LDMESH_CONFIG_INTERNAL_H
#define LDMESH_CONFIG_INTERNAL_H

#include <libconfig.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "ldmesh/common.h"

/* Where messages go and which file they name. */
struct cfg_ctx {
	const char *name; /* borrowed: file name used in messages */
	char *err; /* borrowed: caller's buffer, may be NULL */
	size_t errlen;
};

/* State of one top-level walk. */
struct cfg_state {
	struct config *c; /* borrowed: the config being filled */
	const config_setting_t *root; /* borrowed: for cross-key checks */
	int mtls_set; /* inbound.mtls was written */
	int mesh_set; /* outbound.mesh_networks was written */
};

struct cfg_keyset;

/* One known key of a group and what parses it into obj. */
struct cfg_key {
	const char *name;
	int (*parse)(struct cfg_ctx *x, const config_setting_t *s, void *obj);
	/*
	 * The keys inside the value, NULL for a scalar or a list of scalars.
	 * Only config_key_paths() reads it; parse walks the same table.
	 */
	const struct cfg_keyset *sub;
};

/* A table of keys: the members of a group, or of each group in a list. */
struct cfg_keyset {
	const struct cfg_key *keys;
	size_t n;
	int list; /* 1: the value is a list of such groups ( { ... }, ... ) */
};

struct cfg_enum {
	const char *name;
	int value;
};

/* core.c: messages.  Each returns -EINVAL (cfg_oom -ENOMEM) for rc = ... */
LDM_PRINTF(2, 3)
int cfg_errf(struct cfg_ctx *x, const char *fmt, ...);
int cfg_oom(struct cfg_ctx *x);
/* "FILE:LINE: PATH: message" */
LDM_PRINTF(3, 4)
int cfg_fail(struct cfg_ctx *x, const config_setting_t *s, const char *fmt, ...);
/* A user string quoted, escaped and truncated into buf. */
const char *cfg_quote(const char *v, char *buf, size_t len);
#define CFG_Q(v) cfg_quote((v), (char[96]){0}, 96)

/* core.c: typed access.  0 or a negative errno with the message written. */
int cfg_get_string(struct cfg_ctx *x, const config_setting_t *s, const char **out);
int cfg_get_int(struct cfg_ctx *x, const config_setting_t *s, long long min, long long max,
		long long *out);
int cfg_get_bool(struct cfg_ctx *x, const config_setting_t *s, int *out);
int cfg_get_enum(struct cfg_ctx *x, const config_setting_t *s, const struct cfg_enum *tab, size_t n,
		 int *out);
int cfg_get_seq(struct cfg_ctx *x, const config_setting_t *s, size_t *n);
int cfg_get_group_list(struct cfg_ctx *x, const config_setting_t *s, size_t *n);
/* Walks the members of grp in file order; unknown keys are errors. */
int cfg_walk(struct cfg_ctx *x, const config_setting_t *grp, const struct cfg_key *keys,
	     size_t nkeys, void *obj);
int cfg_require(struct cfg_ctx *x, const config_setting_t *grp, const char *key);
int cfg_dup(struct cfg_ctx *x, const char *v, char **out);
int cfg_bad_value(struct cfg_ctx *x, const config_setting_t *s, const char *v, const char *why);

/* core.c: lists; *out is owned by the config as soon as it is set. */
int cfg_port_list(struct cfg_ctx *x, const config_setting_t *s, uint16_t **out, size_t *nout);
int cfg_string_list(struct cfg_ctx *x, const config_setting_t *s, const char *(*why)(const char *),
		    char ***out, size_t *nout);

/* values.c: NULL when v is fine, else a phrase that follows the value. */
int cfg_is_ctl(char ch);
const char *cfg_why_path(const char *v);
const char *cfg_why_name(const char *v);
const char *cfg_why_trust_domain(const char *v);
const char *cfg_why_identity(const char *v);
const char *cfg_why_principal(const char *v);
const char *cfg_why_namespace(const char *v);
const char *cfg_why_method(const char *v);
const char *cfg_why_http_path(const char *v);
const char *cfg_why_host(const char *v);
/* A service or policy name, copied to *out. */
int cfg_name(struct cfg_ctx *x, const config_setting_t *s, char **out);

/* addr.c: CIDR values. */
int cfg_cidr(struct cfg_ctx *x, const config_setting_t *s, struct config_cidr *out);
int cfg_cidr_list(struct cfg_ctx *x, const config_setting_t *s, struct config_cidr **out,
		  size_t *nout);

/*
 * The sections: each parses one top-level key into the struct cfg_state
 * passed as obj; the keysets describe their members for config_key_paths.
 */
int cfg_identity(struct cfg_ctx *x, const config_setting_t *s, void *obj);
extern const struct cfg_keyset cfg_identity_set;
int cfg_inbound(struct cfg_ctx *x, const config_setting_t *s, void *obj);
/* inbound.c: no policy rule with HTTP conditions covers an opaque port. */
int cfg_opaque_check(struct cfg_ctx *x, const config_setting_t *root, const struct config *c);
extern const struct cfg_keyset cfg_inbound_set;
extern const struct cfg_enum cfg_mtls_names[]; /* indexed by enum config_mtls */
int cfg_outbound(struct cfg_ctx *x, const config_setting_t *s, void *obj);
extern const struct cfg_keyset cfg_outbound_set;
int cfg_services(struct cfg_ctx *x, const config_setting_t *s, void *obj);
extern const struct cfg_keyset cfg_service_set;
int cfg_dns_servers(struct cfg_ctx *x, const config_setting_t *s, void *obj);
int cfg_policies(struct cfg_ctx *x, const config_setting_t *s, void *obj);
extern const struct cfg_keyset cfg_policy_set;
/* top.c: the root group, every top-level key. */
int cfg_top(struct cfg_ctx *x, const config_setting_t *s, void *obj);

/* scan.c: what the pre-scan found, before libconfig sees the text. */
struct cfg_scan {
	unsigned include_line; /* first @include, 0 if none */
	unsigned string_line; /* first misplaced string, 0 if none */
	unsigned overflow_line; /* first out-of-range literal, 0 if none */
	char overflow[40]; /* that literal, truncated */
};

/* Fills sc (zeroed by the caller) from the NUL-terminated text p. */
void cfg_prescan(const char *p, struct cfg_scan *sc);

#endif
