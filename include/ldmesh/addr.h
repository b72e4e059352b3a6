/*
 * struct ldm_addr from a sockaddr, shared by the shim and the daemon.
 */
#ifndef LDMESH_ADDR_H
#define LDMESH_ADDR_H

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "ldmesh/proto.h"

/* Returns 0, or -EAFNOSUPPORT for anything but a whole sockaddr_in/in6. */
static inline int ldm_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len,
					 struct ldm_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		out->family = AF_INET;
		out->port = s4->sin_port;
		memcpy(out->addr, &s4->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		out->family = AF_INET6;
		out->port = s6->sin6_port;
		out->scope_id = s6->sin6_scope_id;
		memcpy(out->addr, &s6->sin6_addr, 16);
		return 0;
	}
	return -EAFNOSUPPORT;
}

#endif
