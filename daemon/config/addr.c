/*
 * Addresses: CIDR prefixes and ip:port endpoints, for the config and for
 * the daemon's own matching (config_in_mesh, config_cidr_contains), and the
 * readers of CIDR values in a config.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* ------------------------------------------------------------------ */
/* Addresses                                                           */

/* Bits of byte i that belong to the network part of a /prefix. */
static uint8_t cfg_mask(int prefix, int i)
{
	int bit0 = i * 8;

	if (prefix >= bit0 + 8)
		return 0xff;
	if (prefix <= bit0)
		return 0;
	return (uint8_t)(0xff << (8 - (prefix - bit0)));
}

static int cfg_cidr_bytes(const struct config_cidr *c)
{
	return c->family == AF_INET ? 4 : 16;
}

static int cfg_host_bits(const struct config_cidr *c)
{
	int i;

	for (i = 0; i < cfg_cidr_bytes(c); i++)
		if (c->addr[i] & (uint8_t)~cfg_mask(c->prefix_len, i))
			return 1;
	return 0;
}

/* Digits only: no sign, no spaces, no hex, at most maxlen of them. */
static int cfg_digits(const char *s, size_t maxlen, unsigned long *out)
{
	unsigned long v = 0;
	size_t n;

	for (n = 0; s[n] >= '0' && s[n] <= '9'; n++)
		v = v * 10 + (unsigned long)(s[n] - '0');
	if (n == 0 || n > maxlen || s[n] != '\0')
		return -EINVAL;
	*out = v;
	return 0;
}

/* config_parse_cidr without the host-bits check, so callers can say which. */
static int cfg_cidr_parse(const char *s, struct config_cidr *out)
{
	struct config_cidr c;
	char buf[INET6_ADDRSTRLEN];
	const char *slash;
	unsigned long prefix;
	size_t alen;
	int rc = -EINVAL;

	if (!s || !out)
		goto out;
	memset(&c, 0, sizeof(c));
	slash = strchr(s, '/');
	alen = slash ? (size_t)(slash - s) : strlen(s);
	if (alen == 0 || alen >= sizeof(buf))
		goto out;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	c.family = strchr(buf, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(c.family, buf, c.addr) != 1)
		goto out;
	c.prefix_len = c.family == AF_INET ? 32 : 128;
	if (slash) {
		if (cfg_digits(slash + 1, 3, &prefix) < 0 || prefix > (unsigned long)c.prefix_len)
			goto out;
		c.prefix_len = (int)prefix;
	}
	*out = c;
	rc = 0;
out:
	return rc;
}

int config_parse_cidr(const char *s, struct config_cidr *out)
{
	struct config_cidr c;
	int rc;

	rc = cfg_cidr_parse(s, &c);
	if (rc == 0 && cfg_host_bits(&c))
		rc = -EINVAL;
	if (rc == 0)
		*out = c;
	return rc;
}

static int cfg_v4mapped(const uint8_t *a)
{
	static const uint8_t pfx[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	return memcmp(a, pfx, sizeof(pfx)) == 0;
}

int config_cidr_contains(const struct config_cidr *cidr, const struct ldm_addr *addr)
{
	const uint8_t *a = NULL;
	int i, in = 0;

	if (!cidr || !addr)
		goto out;
	if (cidr->family == AF_INET && addr->family == AF_INET)
		a = addr->addr;
	else if (cidr->family == AF_INET6 && addr->family == AF_INET6)
		a = addr->addr;
	else if (cidr->family == AF_INET && addr->family == AF_INET6 && cfg_v4mapped(addr->addr))
		/* A dual-stack socket dialling ::ffff:10.1.2.3 goes to 10.1.2.3. */
		a = addr->addr + 12;
	if (!a)
		goto out;
	in = 1;
	for (i = 0; i < cfg_cidr_bytes(cidr) && in; i++)
		if ((a[i] ^ cidr->addr[i]) & cfg_mask(cidr->prefix_len, i))
			in = 0;
out:
	return in;
}

int config_in_mesh(const struct config *c, const struct ldm_addr *addr)
{
	size_t i;

	if (!c)
		return 0;
	for (i = 0; i < c->n_mesh_networks; i++)
		if (config_cidr_contains(&c->mesh_networks[i], addr))
			return 1;
	return 0;
}

/* "%eth0" or "%3" after an IPv6 literal. */
static int cfg_scope(const char *zone, uint32_t *out)
{
	unsigned long v;
	unsigned idx;

	if (cfg_digits(zone, 10, &v) == 0 && v <= UINT32_MAX) {
		*out = (uint32_t)v;
		return 0;
	}
	if (zone[0] == '\0' || strlen(zone) >= IF_NAMESIZE)
		return -EINVAL;
	idx = if_nametoindex(zone);
	if (idx == 0)
		return -EINVAL;
	*out = idx;
	return 0;
}

int config_parse_hostport(const char *s, struct ldm_addr *out)
{
	struct ldm_addr a;
	char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2], *pct;
	const char *h, *hend, *port;
	unsigned long p;
	size_t hlen;
	int rc = -EINVAL;

	if (!s || !out)
		goto out;
	memset(&a, 0, sizeof(a));
	if (s[0] == '[') {
		h = s + 1;
		hend = strchr(h, ']');
		if (!hend || hend[1] != ':')
			goto out;
		port = hend + 2;
		a.family = AF_INET6;
	} else {
		/* An unbracketed IPv6 address has more than one colon. */
		h = s;
		hend = strchr(s, ':');
		if (!hend || strchr(hend + 1, ':'))
			goto out;
		port = hend + 1;
		a.family = AF_INET;
	}
	hlen = (size_t)(hend - h);
	if (hlen == 0 || hlen >= sizeof(host))
		goto out;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (cfg_digits(port, 5, &p) < 0 || p == 0 || p > 65535)
		goto out;
	a.port = htons((uint16_t)p);
	pct = a.family == AF_INET6 ? strchr(host, '%') : NULL;
	if (pct) {
		*pct = '\0';
		if (cfg_scope(pct + 1, &a.scope_id) < 0)
			goto out;
	}
	if (inet_pton(a.family, host, a.addr) != 1)
		goto out;
	*out = a;
	rc = 0;
out:
	return rc;
}

/* A CIDR string, with the message naming what is wrong with it. */
int cfg_cidr(struct cfg_ctx *x, const config_setting_t *s, struct config_cidr *out)
{
	char net[INET6_ADDRSTRLEN];
	const char *v;
	int i, rc;

	rc = cfg_get_string(x, s, &v);
	if (rc < 0)
		goto out;
	if (cfg_cidr_parse(v, out) < 0) {
		rc = cfg_fail(x, s, "%s is not a CIDR prefix like 10.0.0.0/8 or fd00::/8",
			      CFG_Q(v));
		goto out;
	}
	if (cfg_host_bits(out)) {
		for (i = 0; i < cfg_cidr_bytes(out); i++)
			out->addr[i] &= cfg_mask(out->prefix_len, i);
		inet_ntop(out->family, out->addr, net, sizeof(net));
		rc = cfg_fail(x, s, "host bits set in %s (did you mean %s/%d?)", v, net,
			      out->prefix_len);
	}
out:
	return rc;
}

int cfg_cidr_list(struct cfg_ctx *x, const config_setting_t *s, struct config_cidr **out,
		  size_t *nout)
{
	size_t i, j, n;
	int rc;

	rc = cfg_get_seq(x, s, &n);
	if (rc < 0 || n == 0)
		goto out;
	*out = calloc(n, sizeof(**out));
	if (!*out) {
		rc = cfg_oom(x);
		goto out;
	}
	*nout = n;
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

		rc = cfg_cidr(x, e, &(*out)[i]);
		if (rc < 0)
			goto out;
		for (j = 0; j < i; j++)
			if (memcmp(&(*out)[j], &(*out)[i], sizeof(**out)) == 0) {
				rc = cfg_fail(x, e, "duplicate prefix %s",
					      config_setting_get_string(e));
				goto out;
			}
	}
out:
	return rc;
}
