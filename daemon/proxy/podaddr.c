/*
 * The pod's own addresses (see podaddr.h), from getifaddrs(3).
 */
#include <ifaddrs.h>
#include <netinet/in.h>
#include <string.h>

#include "ldmesh/addr.h"
#include "proxy/podaddr.h"

#define PODADDR_REFRESH_MS 1000

/* v4-mapped v6 addresses compare as v4. */
static int unmap(const struct ldm_addr *a, uint8_t out[16])
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (a->family == AF_INET6 && !memcmp(a->addr, mapped, 12)) {
		memcpy(out, a->addr + 12, 4);
		return AF_INET;
	}
	memcpy(out, a->addr, a->family == AF_INET6 ? 16 : 4);
	return a->family;
}

int podaddr_is_loopback(const struct ldm_addr *a)
{
	static const uint8_t one6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	uint8_t ip[16];
	int fam = unmap(a, ip);

	return fam == AF_INET ? ip[0] == 127 : fam == AF_INET6 && !memcmp(ip, one6, 16);
}

static int listed(const struct podaddr *p, const struct ldm_addr *a)
{
	uint8_t ip[16], other[16];
	int fam = unmap(a, ip);

	for (int i = 0; i < p->n; i++) {
		if (unmap(&p->list[i], other) == fam &&
		    !memcmp(ip, other, fam == AF_INET ? 4 : 16)) {
			return 1;
		}
	}
	return 0;
}

static void refresh(struct podaddr *p, int64_t now_ms)
{
	struct ifaddrs *ifs, *i;

	p->read_ms = now_ms;
	if (getifaddrs(&ifs) < 0) {
		return; /* keep what we had */
	}
	p->n = 0;
	for (i = ifs; i && p->n < PODADDR_MAX; i = i->ifa_next) {
		if (!i->ifa_addr) {
			continue;
		}
		if (ldm_addr_from_sockaddr(i->ifa_addr,
					   i->ifa_addr->sa_family == AF_INET
						   ? sizeof(struct sockaddr_in)
						   : sizeof(struct sockaddr_in6),
					   &p->list[p->n]) == 0) {
			p->list[p->n].port = 0;
			p->n++;
		}
	}
	freeifaddrs(ifs);
}

int podaddr_is_local(struct podaddr *p, const struct ldm_addr *a, int64_t now_ms)
{
	if (a->family != AF_INET && a->family != AF_INET6) {
		return 0;
	}
	if (podaddr_is_loopback(a) || listed(p, a)) {
		return 1;
	}
	if (!p->read_ms || now_ms - p->read_ms >= PODADDR_REFRESH_MS) {
		refresh(p, now_ms);
		return listed(p, a);
	}
	return 0;
}
