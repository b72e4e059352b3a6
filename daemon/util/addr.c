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
	} else if (a->family == AF_INET6 &&
		   IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a->addr)) {
		/* A dual-stack socket's IPv4 peer: shown (and labelled) as IPv4. */
		inet_ntop(AF_INET, a->addr + 12, ip, sizeof(ip));
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

void addr_unmap(const struct ldm_addr *a, struct ldm_addr *out)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	struct ldm_addr r = *a;

	if (a->family == AF_INET6 && !memcmp(a->addr, mapped, 12)) {
		memset(r.addr, 0, sizeof(r.addr));
		memcpy(r.addr, a->addr + 12, 4);
		r.family = AF_INET;
		r.scope_id = 0;
	}
	*out = r;
}

int addr_same_ip(const struct ldm_addr *a, const struct ldm_addr *b)
{
	struct ldm_addr x, y;

	addr_unmap(a, &x);
	addr_unmap(b, &y);
	return x.family == y.family && !memcmp(x.addr, y.addr, x.family == AF_INET6 ? 16 : 4);
}
