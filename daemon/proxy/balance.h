/*
 * Services: the virtual addresses apps dial (a Kubernetes ClusterIP) are
 * balanced over their endpoints, one choice per connection: power of two
 * choices over a peak-EWMA of each endpoint's connect latency weighted by
 * the connections it has open or opening (linkerd2-proxy's balancer), and
 * failure accrual: an endpoint whose connects fail in a row is taken out
 * with exponential backoff and let back in through one trial connection.
 * Knows addresses and numbers, no connection.  Not for use outside
 * daemon/proxy/.
 */
#ifndef LDMESH_BALANCE_H
#define LDMESH_BALANCE_H

#include <stddef.h>
#include <stdint.h>

#include "ldmesh/addr.h"

struct config;
struct conn;
struct strbuf;

/* Consecutive connect failures that take an endpoint out, and its backoff. */
#define BAL_FAILURES 3
#define BAL_BACKOFF_MIN_MS 1000
#define BAL_BACKOFF_MAX_MS 60000
/* The latency assumed while no endpoint of a service is measured yet
 * (Linkerd's default RTT estimate), and the EWMA's decay time: shorter
 * than Linkerd's 10 s.  A peak sample counts at once, and with power of
 * two choices the costliest of three endpoints is never picked while it
 * stays costliest: one slow answer must not keep an endpoint aside for
 * long when a client sends one request at a time. */
#define BAL_DEFAULT_RTT_US 30000
#define BAL_DECAY_US 1000000
/* Other endpoints a connection whose dial failed may try, unseen by the app. */
#define BAL_TRIES 2

/* How a routed request's attempt on an endpoint ended. */
enum bal_result {
	BAL_RES_SUCCESS, /* a response below 500 (gRPC: status 0 or not a failure) */
	BAL_RES_5XX, /* a 5xx response */
	BAL_RES_ERROR, /* no response: reset, closed, refused */
	BAL_RES_TIMEOUT, /* no response within the request timeout */
	BAL_RESULTS,
};

/* The retry budget's window: one counter pair per second. */
#define BAL_BUDGET_SLOTS 60

/* Retries allowed to a service, as Linkerd's budget: over the last ttl
 * seconds, retries stay below min_per_s * ttl + percent of the requests. */
struct bal_budget {
	int64_t slot_s[BAL_BUDGET_SLOTS]; /* which second each slot counts */
	uint32_t requests[BAL_BUDGET_SLOTS], retries[BAL_BUDGET_SLOTS];
};

enum bal_state {
	BAL_READY, /* chosen by the balancer */
	BAL_OUT, /* failure accrual: out until out_until_ms */
	BAL_PROBING, /* back from accrual: one trial connection out */
};

/* One endpoint: heap-allocated and counted, so a connection keeps it
 * across a reload that drops it from its service. */
struct bal_endpoint {
	struct ldm_addr addr;
	uint32_t refs; /* the service's, plus one per connection */
	uint8_t detached; /* no longer in a service (reload) */
	enum bal_state state;
	uint32_t outstanding; /* connections open or opening */
	double ewma_us; /* peak-EWMA of connect latency; 0: not measured */
	int64_t ewma_at_us;
	uint32_t failures; /* in a row */
	uint32_t backoff_ms;
	int64_t out_until_ms;
	uint64_t connections_total, failures_total;
	int64_t verdict_us; /* when the last connect result came, 0: none yet */
	/* Routed requests (route.h): attempts sent to it, by how they ended. */
	uint64_t requests_total;
	uint64_t responses_total[BAL_RESULTS]; /* enum bal_result */
	/* Idle upstream connections to it (route.c's pool), newest first;
	 * this loop's own (a merged copy shows them, never follows them). */
	struct conn *pool;
	uint32_t pooled;
};

/* Where a DNS service's endpoints come from, and when they are asked for
 * again; written by dns.c, kept across a reload that keeps the name. */
struct bal_dns {
	char *name; /* owned (a reload frees the config first); NULL: a list */
	uint16_t port; /* host order */
	uint8_t inflight; /* a query is out */
	uint8_t failing; /* the last query failed (logged once) */
	uint8_t answered; /* an answer came since the name was set */
	uint32_t ttl_s; /* of the last answer, as used (bounded) */
	int64_t next_ms; /* when to ask again; 0: at once */
	int64_t answered_ms; /* when the last good answer came */
};

struct bal_service {
	char *name; /* owned */
	size_t cfg_index; /* its place in the config it came from */
	struct bal_endpoint **ep; /* owned references */
	size_t n;
	struct bal_dns dns;
	int *split_to; /* owned: balancer services its splits go to */
	size_t n_split;
	/* Routed requests (route.h), kept across a reload that keeps the name. */
	struct bal_budget budget;
	uint64_t requests_total, retries_total, budget_exhausted_total, timeouts_total;
	int64_t unavailable_logged_ms; /* its "every endpoint is out" line, rate-limited */
};

struct balancer {
	const struct config *cfg; /* what the services were built from (borrowed) */
	uint64_t cfg_generation; /* its generation: the pointer alone may be reused */
	struct bal_service *svc; /* owned */
	size_t n;
	uint64_t rng;
	uint64_t unavailable_total; /* connections refused: every endpoint out */
	uint64_t retries_total; /* dials sent to another endpoint after a failure */
};

void balancer_init(struct balancer *b);
void balancer_fini(struct balancer *b);

/* Brings b in line with cfg (once per config): services and endpoints
 * that stay keep their state; a DNS service whose name and port stay keeps
 * its resolved endpoints, one whose name is new has none until
 * balancer_set_endpoints().  0 or -ENOMEM (b then keeps the old). */
int balancer_sync(struct balancer *b, const struct config *cfg);

/*
 * Service s's endpoints become addrs[0..n) (copied; duplicates count
 * once): an address that stays keeps its state (EWMA, accrual), a new one
 * starts fresh, one gone is detached (a connection holding it keeps it).
 * Returns how many were added or removed (0: the same set), or -ENOMEM
 * (s then keeps its endpoints).
 */
int balancer_set_endpoints(struct balancer *b, int s, const struct ldm_addr *addrs, size_t n);

/* The service whose virtual address dst is, or -1. */
int balancer_service_of(const struct balancer *b, const struct ldm_addr *dst);
/* Where a connection to service s goes after its weighted splits: s, or
 * the service a split drew. */
int balancer_route(struct balancer *b, int s);

/*
 * An endpoint of service s for a new connection, with a reference the
 * caller gives back with balancer_release(); avoid (may be NULL) is not
 * chosen when another one can be.  NULL when every endpoint is out.
 */
struct bal_endpoint *balancer_pick(struct balancer *b, int s, const struct bal_endpoint *avoid,
				   int64_t now_us);
/* The connection to e was made (ok 1, latency_us from the dial to ready;
 * < 0: not a sample for the EWMA) or failed (ok 0). */
void balancer_result(struct bal_endpoint *e, int ok, int64_t latency_us, int64_t now_us);
/* A request on a connection to e was answered after latency_us: where a
 * connection carries HTTP, its requests are what its latency is (as
 * Linkerd balances on), not only its connect. */
void balancer_observe(struct bal_endpoint *e, int64_t latency_us, int64_t now_us);
/* The connection that picked e has ended. */
void balancer_release(struct bal_endpoint *e);

/* An endpoint reference held without counting as load (an idle pooled
 * connection to it); given back with balancer_unref(). */
void balancer_ref(struct bal_endpoint *e);
void balancer_unref(struct bal_endpoint *e);

/* A routed request to service s starts (counted in its retry budget). */
void balancer_budget_request(struct balancer *b, int s, int64_t now_us);
/* 1 when one more retry fits s's budget (and counts it), 0 when it is
 * spent (counted in budget_exhausted_total). */
int balancer_budget_retry(struct balancer *b, int s, int percent, int min_per_s, int ttl_s,
			  int64_t now_us);

/*
 * Adds src's services into dst for showing several event loops' balancers
 * as one (balance_merge.c): the first src is copied; later ones add their
 * counters, and each endpoint shows the state of the loop that heard from
 * it last.  dst is a scratch balancer (balancer_fini() frees it); it
 * borrows the first src's config.  0 or -ENOMEM.
 */
int balancer_merge(struct balancer *dst, const struct balancer *src);

/* `ldmeshctl services`: a table, or a JSON array. */
void balancer_list(const struct balancer *b, struct strbuf *out, int json, int64_t now_us);
/* `stats raw` lines for `ldmeshctl top`: "svc NAME requests retries
 * budget_exhausted timeouts" and "endpoint NAME ADDR requests success 5xx
 * error timeout ewma_ms state". */
void balancer_stats_raw(const struct balancer *b, struct strbuf *out);
/* Prometheus lines: endpoints by state, connections and failures. */
void balancer_metrics(const struct balancer *b, struct strbuf *out);

#endif
