/*
 * The daemon's own SVID (identity.c): loaded from the files the config
 * names, watched for changes, swapped without touching live connections.
 */
#ifndef LDMESH_IDENTITY_H
#define LDMESH_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "identity/tls.h"

/* What the identity files looked like when last loaded. */
struct file_stamp {
	long long mtime_ns, size;
	unsigned long long ino;
	int missing;
};

struct identity {
	struct tls_ctx *tls; /* owned reference, NULL without identity */
	struct file_stamp stamps[3]; /* cert, key, bundle */
	struct { /* identity files that failed to load, waited for */
		struct file_stamp st[3];
		int64_t since_ms;
		int active;
	} settle;
	int64_t expiry_logged_ms;
	uint64_t reloads_total, reload_errors_total;
};

/* Loads (or reloads) the TLS identity named by cfg; keeps the old one on
 * failure.  Returns 0 or -errno with a sentence in err. */
int identity_load(struct identity *id, const struct config *cfg, char *err, size_t errlen);
/* Reloads when a file changed; logs loudly about an expired SVID. */
void identity_check(struct identity *id, const struct config *cfg, int64_t now);
/* Drops the identity (shutdown). */
void identity_free(struct identity *id);

#endif
