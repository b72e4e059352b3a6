/*
 * struct ldm_addr to and from a sockaddr, shared by the shim, ldmesh-run
 * and the daemon.
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

/*
 * Builds a sockaddr for an app whose socket domain is `family`: an IPv4
 * address shown to an AF_INET6 socket becomes ::ffff:a.b.c.d, as the kernel
 * would report it.
 */
static inline socklen_t ldm_addr_to_sockaddr(const struct ldm_addr *a, int family,
					     struct sockaddr_storage *out)
{
	static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	memset(out, 0, sizeof(*out));
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = a->port;
		if (a->family == AF_INET) {
			memcpy(&s6->sin6_addr, v4mapped, 12);
			memcpy((uint8_t *)&s6->sin6_addr + 12, a->addr, 4);
		} else {
			memcpy(&s6->sin6_addr, a->addr, 16);
			s6->sin6_scope_id = a->scope_id;
		}
		return sizeof(*s6);
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)out;
	s4->sin_family = AF_INET;
	s4->sin_port = a->port;
	if (a->family == AF_INET6) {
		memcpy(&s4->sin_addr, a->addr + 12, 4); /* v4-mapped */
	} else {
		memcpy(&s4->sin_addr, a->addr, 4);
	}
	return sizeof(*s4);
}

#endif
