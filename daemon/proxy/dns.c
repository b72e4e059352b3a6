/*
 * DNS discovery with c-ares; see dns.h.
 *
 * Why no loop registration: c-ares opens and closes its sockets itself, and
 * an io_uring poll armed on a socket it has closed would hold the file
 * until cancelled.  Instead the daemon turns the channel from its loop:
 * every second, and on every turn (at most 50 ms apart) while a query is
 * out, dns_tick() polls the channel's sockets with a zero timeout and lets
 * c-ares read what is there.  An answer is applied within about 50 ms of
 * its arrival; a name is asked again at most a second after its TTL.
 */
#include <ares.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "ldmesh/addr.h"
#include "proxy/balance.h"
#include "proxy/dns.h"
#include "util/addr.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/strbuf.h"

/* One query out: which service it is for, by name (a reload may rebuild
 * the balancer's services before it is answered). */
struct dns_lookup {
	struct dns *r; /* borrowed */
	char *service; /* owned */
	char *name; /* owned */
	uint16_t port;
};

void dns_init(struct dns *r, struct balancer *b)
{
	memset(r, 0, sizeof(*r));
	r->bal = b;
	ares_library_init(ARES_LIB_INIT_ALL);
}

static void channel_close(struct dns *r)
{
	if (r->channel) {
		/* Every query out is answered ARES_EDESTRUCTION here. */
		ares_destroy(r->channel);
		r->channel = NULL;
	}
	free(r->servers);
	r->servers = NULL;
}

void dns_fini(struct dns *r)
{
	r->closing = 1;
	channel_close(r);
	ares_library_cleanup();
	memset(r, 0, sizeof(*r));
}

int dns_busy(const struct dns *r)
{
	return r->inflight > 0;
}

static int service_index(const struct balancer *b, const struct dns_lookup *q)
{
	size_t i;

	for (i = 0; i < b->n; i++) {
		const struct bal_dns *d = &b->svc[i].dns;

		if (!strcmp(b->svc[i].name, q->service) && d->name && !strcmp(d->name, q->name) &&
		    d->port == q->port) {
			return (int)i;
		}
	}
	return -1;
}

/* The addresses of an answer, at the service's port, and its shortest TTL. */
static size_t collect(const struct ares_addrinfo *res, uint16_t port, struct ldm_addr **out,
		      int *ttl)
{
	const struct ares_addrinfo_node *nd;
	size_t n = 0;

	*out = NULL;
	*ttl = DNS_TTL_MAX_S;
	for (nd = res ? res->nodes : NULL; nd; nd = nd->ai_next) {
		n++;
	}
	if (!n || !(*out = calloc(n, sizeof(**out)))) {
		return 0;
	}
	n = 0;
	for (nd = res->nodes; nd; nd = nd->ai_next) {
		if (ldm_addr_from_sockaddr(nd->ai_addr, nd->ai_addrlen, &(*out)[n]) < 0) {
			continue;
		}
		(*out)[n++].port = htons(port);
		if (nd->ai_ttl < *ttl) {
			*ttl = nd->ai_ttl;
		}
	}
	return n;
}

static void failed(struct dns *r, struct bal_service *s, const char *why, int64_t now)
{
	r->error_total++;
	s->dns.next_ms = now + DNS_RETRY_S * 1000;
	if (!s->dns.failing) {
		log_warn("service %s: DNS %s:%u failed (%s); keeping its %zu endpoints, asking "
			 "again every %d s",
			 s->name, s->dns.name, s->dns.port, why, s->n, DNS_RETRY_S);
		s->dns.failing = 1;
	}
}

static void apply(struct dns *r, struct bal_service *s, int idx, int status,
		  const struct ares_addrinfo *res, int64_t now)
{
	struct ldm_addr *addrs = NULL;
	size_t n;
	int ttl, changed;

	s->dns.inflight = 0;
	if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
		s->dns.next_ms = 0; /* the channel was replaced: ask the new one */
		return;
	}
	if (status != ARES_SUCCESS) {
		failed(r, s, ares_strerror(status), now);
		return;
	}
	n = collect(res, s->dns.port, &addrs, &ttl);
	if (!n) {
		failed(r, s, addrs || !res || !res->nodes ? "no addresses" : "out of memory", now);
		free(addrs);
		return;
	}
	changed = balancer_set_endpoints(r->bal, idx, addrs, n);
	free(addrs);
	if (changed < 0) {
		failed(r, s, "out of memory", now);
		return;
	}
	ttl = ttl < DNS_TTL_MIN_S ? DNS_TTL_MIN_S : ttl > DNS_TTL_MAX_S ? DNS_TTL_MAX_S : ttl;
	r->ok_total++;
	s->dns.ttl_s = (uint32_t)ttl;
	s->dns.next_ms = now + (int64_t)ttl * 1000;
	s->dns.answered = 1;
	s->dns.answered_ms = now;
	if (s->dns.failing) {
		log_info("service %s: DNS %s:%u answers again", s->name, s->dns.name, s->dns.port);
		s->dns.failing = 0;
	}
	if (changed) {
		char first[80];

		addr_format(&s->ep[0]->addr, first, sizeof(first));
		log_info("service %s: DNS %s:%u gives %zu endpoints (%s%s), ttl %d s", s->name,
			 s->dns.name, s->dns.port, s->n, first, s->n > 1 ? ", ..." : "", ttl);
	}
}

static void answered(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct dns_lookup *q = arg;
	struct dns *r = q->r;
	int idx;

	r->inflight--;
	/* A service gone, or asking another name since a reload: dropped. */
	if (!r->closing && (idx = service_index(r->bal, q)) >= 0) {
		apply(r, &r->bal->svc[idx], idx, status, res, now_ms());
	}
	ares_freeaddrinfo(res);
	free(q->service);
	free(q->name);
	free(q);
}

/* dns_servers as c-ares takes them ("ip:port,[ip6]:port"); NULL: none. */
static char *servers_csv(const struct config *cfg)
{
	struct strbuf sb = {0};
	size_t i, len;

	for (i = 0; i < cfg->n_dns_servers; i++) {
		char a[80];

		addr_format(&cfg->dns_servers[i], a, sizeof(a));
		sb_printf(&sb, "%s%s", i ? "," : "", a);
	}
	if (sb.oom) {
		sb_fini(&sb);
		return NULL;
	}
	return sb_take(&sb, &len);
}

/* A channel asking the configured resolvers: made when first needed, made
 * again when dns_servers changes.  0 or -errno (logged). */
static int channel_ready(struct dns *r, const struct config *cfg)
{
	struct ares_options o;
	char *csv = cfg->n_dns_servers ? servers_csv(cfg) : NULL;
	int rc;

	if (cfg->n_dns_servers && !csv) {
		return -ENOMEM;
	}
	if (r->channel && (csv == r->servers || (csv && r->servers && !strcmp(csv, r->servers)))) {
		free(csv);
		return 0;
	}
	channel_close(r);
	memset(&o, 0, sizeof(o));
	o.timeout = DNS_TIMEOUT_MS;
	o.tries = DNS_TRIES;
	o.lookups = (char *)"b"; /* DNS only: the endpoints are the records */
	rc = ares_init_options(&r->channel, &o,
			       ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS);
	if (rc != ARES_SUCCESS) {
		log_error("DNS: cannot start a resolver: %s", ares_strerror(rc));
		r->channel = NULL;
		goto err_free;
	}
	if (csv && (rc = ares_set_servers_ports_csv(r->channel, csv)) != ARES_SUCCESS) {
		log_error("DNS: dns_servers %s: %s", csv, ares_strerror(rc));
		channel_close(r);
		goto err_free;
	}
	r->servers = csv;
	log_info("DNS: asking %s", csv ? csv : "the resolvers of /etc/resolv.conf");
	return 0;
err_free:
	free(csv);
	return -EIO;
}

/* Reads what has come in and expires what timed out; never waits. */
static void channel_turn(struct dns *r)
{
	ares_socket_t socks[ARES_GETSOCK_MAXNUM];
	struct pollfd pfd[ARES_GETSOCK_MAXNUM];
	/* c-ares' ARES_GETSOCK_WRITABLE shifts a signed 1 into the sign bit. */
	unsigned bits = (unsigned)ares_getsock(r->channel, socks, ARES_GETSOCK_MAXNUM);
	int i, n = 0;

	for (i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
		short ev = (short)((bits & (1u << i) ? POLLIN : 0) |
				   (bits & (1u << (i + ARES_GETSOCK_MAXNUM)) ? POLLOUT : 0));

		if (ev) {
			pfd[n].fd = socks[i];
			pfd[n].events = ev;
			pfd[n++].revents = 0;
		}
	}
	if (n && poll(pfd, (nfds_t)n, 0) > 0) {
		for (i = 0; i < n && r->channel; i++) {
			int rd = pfd[i].revents & (POLLIN | POLLERR | POLLHUP);
			int wr = pfd[i].revents & POLLOUT;

			if (rd || wr) {
				ares_process_fd(r->channel, rd ? pfd[i].fd : ARES_SOCKET_BAD,
						wr ? pfd[i].fd : ARES_SOCKET_BAD);
			}
		}
	}
	if (r->channel) {
		ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* timeouts */
	}
}

static void ask(struct dns *r, struct bal_service *s)
{
	struct ares_addrinfo_hints h;
	struct dns_lookup *q = calloc(1, sizeof(*q));

	if (!q || !(q->service = strdup(s->name)) || !(q->name = strdup(s->dns.name))) {
		if (q) {
			free(q->service);
		}
		free(q);
		return; /* asked again next tick */
	}
	q->r = r;
	q->port = s->dns.port;
	memset(&h, 0, sizeof(h));
	h.ai_family = AF_UNSPEC; /* A and AAAA */
	h.ai_socktype = SOCK_STREAM;
	h.ai_flags = ARES_AI_NOSORT; /* the balancer orders them, no probe connects */
	s->dns.inflight = 1;
	r->inflight++;
	/* May answer at once (a cached failure): s is found again by name. */
	ares_getaddrinfo(r->channel, q->name, NULL, &h, answered, q);
}

void dns_tick(struct dns *r, const struct config *cfg, int64_t now)
{
	struct balancer *b = r->bal;
	size_t i;
	int want = 0;

	if (balancer_sync(b, cfg) < 0) {
		return;
	}
	for (i = 0; i < b->n; i++) {
		want |= b->svc[i].dns.name != NULL;
	}
	if (!want && !r->channel) {
		return;
	}
	if (want && channel_ready(r, cfg) < 0) {
		return; /* logged; tried again next second */
	}
	channel_turn(r);
	for (i = 0; r->channel && i < b->n; i++) {
		struct bal_service *s = &b->svc[i];

		if (s->dns.name && !s->dns.inflight && now >= s->dns.next_ms) {
			ask(r, s);
		}
	}
}

void dns_metrics(const struct dns *r, struct strbuf *out)
{
	sb_printf(out,
		  "# HELP ldmesh_dns_queries_total DNS lookups of services' names "
		  "(services[].dns), by result.\n"
		  "# TYPE ldmesh_dns_queries_total counter\n"
		  "ldmesh_dns_queries_total{result=\"ok\"} %" PRIu64 "\n"
		  "ldmesh_dns_queries_total{result=\"error\"} %" PRIu64 "\n",
		  r->ok_total, r->error_total);
}
