/* Addresses for logs and socket calls: see addr.h. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "ldmesh/addr.h"
#include "util/addr.h"

void addr_format(const struct ldm_addr *a, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (a->family == AF_INET) {
		inet_ntop(AF_INET, a->addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(a->port));
	} else if (a->family == AF_INET6) {
		inet_ntop(AF_INET6, a->addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(a->port));
	} else {
		snprintf(buf, len, "-");
	}
}

int addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct ldm_addr *out)
{
	return ldm_addr_from_sockaddr(sa, len, out);
}

socklen_t addr_to_sockaddr(const struct ldm_addr *a, struct sockaddr_storage *out)
{
	memset(out, 0, sizeof(*out));
	if (a->family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = a->port;
		s6->sin6_scope_id = a->scope_id;
		memcpy(&s6->sin6_addr, a->addr, 16);
		return sizeof(*s6);
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)out;
	s4->sin_family = AF_INET;
	s4->sin_port = a->port;
	memcpy(&s4->sin_addr, a->addr, 4);
	return sizeof(*s4);
}
