/*
 * The grammar of policy patterns (principals, namespaces, methods, paths,
 * hosts): checked when the config loads (policy_check_pattern) and matched
 * by policy/ at request time (the glob and the host and path helpers).
 * See policy/policy.h for what the patterns mean.
 */
#ifndef LDMESH_CONFIG_PATTERN_H
#define LDMESH_CONFIG_PATTERN_H

#include <stddef.h>

#include "ldmesh/common.h"

/* Longest patterns accepted, in bytes. */
#define POL_NS_MAX 63 /* a Kubernetes namespace is a DNS label */
#define POL_METHOD_MAX 32
#define POL_PATH_MAX 2048 /* what the HTTP/1 parser keeps of a target */
#define POL_HOST_MAX (255 + 6) /* a DNS name and ":65535" */

enum policy_pattern_kind {
	PATTERN_PRINCIPAL,
	PATTERN_NAMESPACE,
	PATTERN_METHOD,
	PATTERN_PATH,
	PATTERN_HOST
};

/* Checks one pattern of the given kind; 0 or -EINVAL with a sentence.
 * The config validator, the fuzz target and the tests use it. */
int policy_check_pattern(enum policy_pattern_kind kind, const char *pattern, char *err,
			 size_t errlen);
/* Glob match with * and ?; case-insensitive when fold is set. */
int policy_glob(const char *pattern, const char *s, int fold);
/* The same over counted strings, so callers can match parts of a Host. */
int pol_glob_n(const char *p, size_t pn, const char *s, size_t sn, int fold);
/* Splits "name:port" at the port's colon; the name's length. */
size_t pol_host_split(const char *h, size_t n, const char **port, size_t *port_len);
unsigned char pol_lower(unsigned char c);
int pol_hexval(char c);
int pol_unreserved(unsigned char c);
/* A message into err (policy's and the config's wording). */
void LDM_PRINTF(3, 4) pol_err(char *err, size_t len, const char *fmt, ...);

#endif
