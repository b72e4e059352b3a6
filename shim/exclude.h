/*
 * What the mesh leaves alone: loopback, the unspecified address, and the
 * operator's LDMESH_EXCLUDE_PORTS / LDMESH_EXCLUDE_CIDRS.  Shared by the
 * preloaded shim and the seccomp launcher so both paths agree.
 */
#ifndef LDMESH_EXCLUDE_H
#define LDMESH_EXCLUDE_H

#include <stdint.h>

#include "ldmesh/proto.h"

#define EXCL_MAX_RANGES 32

struct excl_cidr {
	int family;
	uint8_t addr[16];
	int prefix_len;
};

struct exclusions {
	uint16_t port_lo[EXCL_MAX_RANGES], port_hi[EXCL_MAX_RANGES];
	int n_ports;
	struct excl_cidr cidrs[EXCL_MAX_RANGES];
	int n_cidrs;
};

/* Parse "80,8000-8100" and "10.0.0.0/8,fd00::/8" into ex.  Entries that do
 * not parse are skipped; the first one is copied to bad (for a log line)
 * and the call returns -EINVAL. */
int excl_parse_ports(struct exclusions *ex, const char *s, char *bad, int badlen);
int excl_parse_cidrs(struct exclusions *ex, const char *s, char *bad, int badlen);
/* 1 when a connection to a must be left alone (loopback, excluded). */
int excl_bypass(const struct exclusions *ex, const struct ldm_addr *a);
/* 1 when a listener bound to a must stay plain: as excl_bypass, except that
 * the unspecified address means "every address" here, so only its port
 * counts. */
int excl_bypass_listener(const struct exclusions *ex, const struct ldm_addr *a);

#endif
