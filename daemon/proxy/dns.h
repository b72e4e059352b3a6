/*
 * DNS discovery: the endpoints of a service with services[].dns are the A
 * and AAAA records of its name, asked of the resolvers in dns_servers (or
 * /etc/resolv.conf's) with c-ares, never a blocking call: the daemon's
 * loop drives the channel through dns_tick() and the answers go to the
 * balancer (balancer_set_endpoints()).  A name is asked again when the
 * shortest TTL of its answer runs out (DNS_TTL_MIN_S..DNS_TTL_MAX_S);
 * after a failure its last good endpoints stay and it is asked again in
 * DNS_RETRY_S.  Not for use outside daemon/.
 */
#ifndef LDMESH_DNS_H
#define LDMESH_DNS_H

#include <stdint.h>

struct ares_channeldata; /* c-ares' channel (ares_channel) */
struct balancer;
struct config;
struct strbuf;

#define DNS_TTL_MIN_S 1
#define DNS_TTL_MAX_S 300
#define DNS_RETRY_S 5
/* How long one resolver has to answer, and how many times each is asked. */
#define DNS_TIMEOUT_MS 2000
#define DNS_TRIES 2

struct dns {
	struct ares_channeldata *channel; /* owned; NULL until a name is asked */
	char *servers; /* owned: the channel's dns_servers as c-ares CSV, NULL: system's */
	struct balancer *bal; /* borrowed: its services say what to ask, answers go there */
	unsigned inflight; /* queries out */
	int closing; /* dns_fini: answers go nowhere */
	uint64_t ok_total, error_total; /* ldmesh_dns_queries_total */
};

/* b must outlive r (dns_fini first). */
void dns_init(struct dns *r, struct balancer *b);
void dns_fini(struct dns *r);

/*
 * One turn, without blocking: brings the balancer in line with cfg, reads
 * what the resolvers sent (answers go to the balancer), handles c-ares'
 * timeouts and sends the queries that are due.  The daemon calls it from
 * its once-a-second sweep and, while dns_busy(), on every loop turn.
 */
void dns_tick(struct dns *r, const struct config *cfg, int64_t now);
/* 1 while a query is out: the loop should turn again soon. */
int dns_busy(const struct dns *r);
/* Prometheus lines: ldmesh_dns_queries_total{result="ok|error"}. */
void dns_metrics(const struct dns *r, struct strbuf *out);

#endif
