/*
 * Connection facts carried in abstract Unix socket names, so a process that
 * inherits a handed-off fd across exec (sshd re-executes itself for every
 * connection) can still answer getpeername()/getsockname() with TCP
 * addresses.  The shim binds the app end of an outbound connection to
 *     "ldmesh-o-" COOKIE "-" PEER
 * and the daemon binds its end of an inbound connection to
 *     "ldmesh-i-" RANDOM "-" PEER "-" LOCAL
 * where an address is "4" or "6", 4 hex digits of port (network order as
 * written by the kernel, printed big-endian) and 8 or 32 hex digits of IP.
 * Names are at most 107 bytes, the abstract-name limit.
 */
#ifndef LDMESH_ADDRNAME_H
#define LDMESH_ADDRNAME_H

#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "ldmesh/proto.h"

#define LDM_NAME_OUT "ldmesh-o-"
#define LDM_NAME_IN "ldmesh-i-"
#define LDM_NAME_MAX 107

static inline int addrname_put(char *p, size_t left, const struct ldm_addr *a)
{
	int n = a->family == AF_INET6 ? 16 : 4, i, w;

	w = snprintf(p, left, "%c%02x%02x", a->family == AF_INET6 ? '6' : '4',
		     ((const uint8_t *)&a->port)[0], ((const uint8_t *)&a->port)[1]);
	for (i = 0; i < n && w > 0 && (size_t)w < left; i++) {
		w += snprintf(p + w, left - (size_t)w, "%02x", a->addr[i]);
	}
	return w;
}

static inline int addrname_hex(const char *p, uint8_t *out, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(p + 2 * i, "%2x", &v) != 1) {
			return -1;
		}
		out[i] = (uint8_t)v;
	}
	return 0;
}

/* Parses one address at p; returns the characters used or -1. */
static inline int addrname_get(const char *p, struct ldm_addr *a)
{
	int n;

	memset(a, 0, sizeof(*a));
	if (p[0] == '4') {
		a->family = AF_INET;
		n = 4;
	} else if (p[0] == '6') {
		a->family = AF_INET6;
		n = 16;
	} else {
		return -1;
	}
	if (strnlen(p, 1 + 4 + 2 * (size_t)n) < 1 + 4 + 2 * (size_t)n ||
	    addrname_hex(p + 1, (uint8_t *)&a->port, 2) < 0 ||
	    addrname_hex(p + 5, a->addr, n) < 0) {
		return -1;
	}
	return 1 + 4 + 2 * n;
}

#endif
