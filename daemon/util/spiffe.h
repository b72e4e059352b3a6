/*
 * SPIFFE ID checks shared by the daemon (peer certificates, config) and
 * ldmeshctl (ca issue).  Messages are sentences for users.
 */
#ifndef LDMESH_SPIFFE_H
#define LDMESH_SPIFFE_H

#include <stddef.h>

#define SPIFFE_SCHEME "spiffe://"
#define SPIFFE_SCHEME_LEN (sizeof(SPIFFE_SCHEME) - 1)

/* The SPIFFE spec: IDs up to 2048 bytes, trust domains up to 255. */
#define SPIFFE_ID_MAX 2048
#define SPIFFE_TD_MAX 255

/* Accepted ranges for --days and --hours (a century, ten years). */
#define CA_DAYS_MAX 36500
#define CA_HOURS_MAX 87600

/* A parsed SPIFFE ID; both strings are NUL-terminated copies. */
struct spiffe_id {
	char trust_domain[SPIFFE_TD_MAX + 1];
	char path[SPIFFE_ID_MAX + 1]; /* starts with '/', never empty */
};

/*
 * Checks that td is a bare SPIFFE trust domain name ("cluster.local"):
 * non-empty, at most SPIFFE_TD_MAX bytes, only lowercase letters, digits,
 * '.', '-' and '_'.  Returns 0 or -EINVAL with a message in err.
 */
int spiffe_trust_domain_check(const char *td, char *err, size_t len);

/* The same check on td[0..n), which need not be NUL-terminated. */
int spiffe_td_check_n(const char *td, size_t n, char *err, size_t len);

/*
 * Parses a workload SPIFFE ID "spiffe://<trust-domain>/<path>" strictly:
 * no userinfo, port, query or fragment, a non-empty path whose segments
 * are non-empty, not "." or "..", and made of [A-Za-z0-9._-].  Fills *out
 * (may be NULL to only validate).  Returns 0 or -EINVAL with a message.
 */
int spiffe_id_parse(const char *id, struct spiffe_id *out, char *err, size_t len);

#endif
