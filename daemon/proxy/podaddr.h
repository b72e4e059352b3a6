/*
 * Which addresses are inside this pod: loopback and the addresses the
 * network namespace's interfaces carry now.  A connection between two of
 * them starts and ends inside the pod, one trust zone (docs/security.md):
 * it reaches the app as without the mesh.
 */
#ifndef LDMESH_PODADDR_H
#define LDMESH_PODADDR_H

#include <stdint.h>

#include "ldmesh/proto.h"

#define PODADDR_MAX 64

struct podaddr {
	struct ldm_addr list[PODADDR_MAX]; /* ports unused; v4 as AF_INET */
	int n;
	int64_t read_ms; /* when the interfaces were last read, 0: never */
};

/* 1 for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
int podaddr_is_loopback(const struct ldm_addr *a);

/*
 * 1 when a is loopback or one of the pod's addresses.  The interface list
 * is read again (getifaddrs) when a is not in it and the last read is more
 * than a second old, so an address added to the pod counts within a
 * second, and a remote peer costs at most one read a second.
 */
int podaddr_is_local(struct podaddr *p, const struct ldm_addr *a, int64_t now_ms);

#endif
