/*
 * Exclusions shared by the shim and ldmesh-run: see exclude.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exclude.h"

static void note_bad(char *bad, int badlen, const char *s, size_t n)
{
	if (bad && badlen > 0 && !bad[0]) {
		snprintf(bad, (size_t)badlen, "%.*s", (int)n, s);
	}
}

int excl_parse_ports(struct exclusions *ex, const char *s, char *bad, int badlen)
{
	int r = 0;

	if (bad && badlen > 0) {
		bad[0] = '\0';
	}
	while (s && *s && ex->n_ports < EXCL_MAX_RANGES) {
		char *end;
		unsigned long lo = strtoul(s, &end, 10), hi = lo;

		if (end == s) {
			note_bad(bad, badlen, s, strcspn(s, ","));
			return -EINVAL;
		}
		if (*end == '-') {
			hi = strtoul(end + 1, &end, 10);
		}
		if (lo >= 1 && hi <= 65535 && lo <= hi) {
			ex->port_lo[ex->n_ports] = (uint16_t)lo;
			ex->port_hi[ex->n_ports] = (uint16_t)hi;
			ex->n_ports++;
		} else {
			note_bad(bad, badlen, s, strcspn(s, ","));
			r = -EINVAL;
		}
		s = strchr(end, ',');
		if (s) {
			s++;
		}
	}
	return r;
}

int excl_parse_cidrs(struct exclusions *ex, const char *s, char *bad, int badlen)
{
	char buf[64];
	int r = 0;

	if (bad && badlen > 0) {
		bad[0] = '\0';
	}
	while (s && *s && ex->n_cidrs < EXCL_MAX_RANGES) {
		size_t n = strcspn(s, ",");
		struct excl_cidr *c = &ex->cidrs[ex->n_cidrs];
		const char *item = s;
		char *slash;
		int maxlen;

		if (n >= sizeof(buf)) {
			n = sizeof(buf) - 1;
		}
		memcpy(buf, s, n);
		buf[n] = '\0';
		s += n + (s[n] == ',');
		slash = strchr(buf, '/');
		if (slash) {
			*slash = '\0';
		}
		if (inet_pton(AF_INET, buf, c->addr) == 1) {
			c->family = AF_INET;
			maxlen = 32;
		} else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
			c->family = AF_INET6;
			maxlen = 128;
		} else {
			note_bad(bad, badlen, item, n);
			r = -EINVAL;
			continue;
		}
		c->prefix_len = slash ? atoi(slash + 1) : maxlen;
		if (c->prefix_len < 0 || c->prefix_len > maxlen) {
			note_bad(bad, badlen, item, n);
			r = -EINVAL;
			continue;
		}
		ex->n_cidrs++;
	}
	return r;
}

static int cidr_match(const struct excl_cidr *c, const uint8_t *addr)
{
	int full = c->prefix_len / 8, rest = c->prefix_len % 8;

	if (memcmp(c->addr, addr, (size_t)full)) {
		return 0;
	}
	if (rest) {
		uint8_t mask = (uint8_t)(0xff << (8 - rest));
		return (c->addr[full] & mask) == (addr[full] & mask);
	}
	return 1;
}

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int excl_bypass(const struct exclusions *ex, const struct ldm_addr *a)
{
	int family = a->family;
	const uint8_t *ip = a->addr;
	uint16_t port = ntohs(a->port);
	int i;

	if (family == AF_INET6 && !memcmp(ip, v4mapped_prefix, 12)) {
		family = AF_INET;
		ip += 12;
	}
	if (family == AF_INET && (ip[0] == 127 || !memcmp(ip, "\0\0\0\0", 4))) {
		return 1;
	}
	if (family == AF_INET6 && (IN6_IS_ADDR_LOOPBACK((const struct in6_addr *)ip) ||
				   IN6_IS_ADDR_UNSPECIFIED((const struct in6_addr *)ip))) {
		return 1;
	}
	for (i = 0; i < ex->n_ports; i++) {
		if (port >= ex->port_lo[i] && port <= ex->port_hi[i]) {
			return 1;
		}
	}
	for (i = 0; i < ex->n_cidrs; i++) {
		if (ex->cidrs[i].family == family && cidr_match(&ex->cidrs[i], ip)) {
			return 1;
		}
	}
	return 0;
}

int excl_bypass_listener(const struct exclusions *ex, const struct ldm_addr *a)
{
	struct ldm_addr probe = *a;
	int any = (a->family == AF_INET && !memcmp(a->addr, "\0\0\0\0", 4)) ||
		  (a->family == AF_INET6 &&
		   IN6_IS_ADDR_UNSPECIFIED((const struct in6_addr *)a->addr));

	if (any) {
		probe.addr[0] = a->family == AF_INET6 ? 0x20 : 1; /* check only the port */
	}
	return excl_bypass(ex, &probe);
}
