/*
 * ldmeshctl's certificate authority: `ca init` makes a root, `ca issue`
 * makes SPIFFE X.509-SVIDs signed by it.  Everything goes through the
 * OpenSSL 3 APIs; nothing shells out to the openssl binary.
 *
 * Functions return 0 or -errno and, on failure, put one sentence for the
 * user in err (never NULL, len > 0).  -EINVAL means the input was wrong
 * (the CLI exits 1), -EEXIST that a file would be overwritten, anything
 * else a system or OpenSSL failure.
 */
#ifndef LDMESH_CTL_CA_H
#define LDMESH_CTL_CA_H

#include <stddef.h>

#include "util/spiffe.h"

struct ca_init_opts {
	const char *dir; /* borrowed; created (0700) if missing */
	const char *trust_domain; /* borrowed; checked here */
	int days; /* validity of the root, > 0 */
	int force; /* replace an existing ca.pem/ca-key.pem */
};

/*
 * Makes an ECDSA P-256 self-signed root for opts->trust_domain and writes
 * dir/ca-key.pem (0600, PKCS#8) then dir/ca.pem (0644), each atomically.
 * Refuses with -EEXIST if either file exists and force is not set.  On
 * success, *not_after (if not NULL) gets the root's expiry as
 * "YYYY-MM-DD HH:MM:SS UTC".
 */
int ca_init(const struct ca_init_opts *opts, char *not_after, size_t na_len, char *err, size_t len);

struct ca_issue_opts {
	const char *dir; /* borrowed; holds ca.pem and ca-key.pem */
	const char *id; /* borrowed; SPIFFE ID, checked here */
	const char *out; /* borrowed; created (0700) if missing */
	int hours; /* validity of the SVID, > 0 */
};

/*
 * Issues an X.509-SVID for opts->id from the CA in opts->dir and writes, in
 * this order, out/bundle.pem (every certificate in dir/ca.pem: the first
 * signs, any others are extra roots kept trusted during a CA rotation),
 * out/svid-key.pem (0600, PKCS#8) and out/svid.pem.  Each file is replaced
 * by rename so a watching daemon never reads half a file; svid.pem comes
 * last so its change means the set is complete.  Refuses with -EINVAL when
 * the ID's trust domain is not the CA's, or when the SVID would outlive the
 * CA.  On success, *not_after (if not NULL) gets the SVID's expiry as
 * "YYYY-MM-DD HH:MM:SS UTC".
 */
int ca_issue(const struct ca_issue_opts *opts, char *not_after, size_t na_len, char *err,
	     size_t len);

#endif
