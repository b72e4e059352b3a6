/*
 * Authorization policy: a pure decision from the config's `policies`, the
 * caller's identity and (for HTTP/1.x) the request.  No I/O, no clock, no
 * allocation during evaluation.
 *
 * Semantics (Istio AuthorizationPolicy):
 *   1. a matching deny rule denies (deny is evaluated first and wins);
 *   2. if any allow rule selects the port (its ports list contains it, or
 *      is empty), a request that matches no allow rule is denied;
 *   3. otherwise the default applies: allow, or deny with
 *      policy_default = "deny";
 *   audit rules never change the decision; every audit rule that matches is
 *   reported so the caller can log and count it.
 *
 * A rule matches when every condition it sets matches:
 *   ports       the destination port is listed (empty: any port)
 *   principals  the caller's SPIFFE ID equals one entry, or starts with an
 *               entry's prefix when the entry ends in '*' ("spiffe://td/ns/shop/"
 *               followed by a star),
 *               or the entry is "*" (any authenticated caller)
 *   namespaces  the caller's ID has the form spiffe://<td>/ns/<ns>/... with
 *               <ns> listed (glob patterns allowed)
 *   unauthenticated = true   also matches callers without an identity
 *               (when principals/namespaces are empty, any caller matches)
 *   methods     exact, case-sensitive ("GET")
 *   paths       exact ("/api/v1"), prefix ("/api/" followed by a star), or
 *               glob with * and ? anywhere ("/api/", a star, "/items"); the
 *               query string is not part of the path
 *   hosts       case-insensitive glob ("*.example.com"), port ignored
 * methods, paths and hosts are request (L7) conditions.  On a connection
 * that is not HTTP/1.x (or not yet decoded, such as HTTP/2) an allow or
 * audit rule that sets any of them never matches, and a deny rule that sets
 * any of them matches on its other conditions alone (Istio's "deny more"):
 * whatever the mesh cannot read is refused, never let through.
 */
#ifndef LDMESH_POLICY_H
#define LDMESH_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "config/pattern.h"

struct config;

enum policy_decision {
	POLICY_ALLOW,
	POLICY_DENY,
	POLICY_PENDING /* POLICY_AT_CONNECT only: decided per HTTP request */
};

/*
 * What the data path knows when it decides, in the order a connection
 * meets them.  policy_decide() takes the stage, so the data path and
 * `ldmeshctl policy check` ask the same question of the same function.
 */
enum policy_stage {
	POLICY_AT_CONNECT, /* caller and port, no byte yet: final or pending */
	POLICY_AT_REQUEST, /* one HTTP/1.x request head */
	POLICY_NOT_HTTP /* the bytes are not HTTP/1.x, or detection could not
			 * finish: the connection-level decision, final */
};

#define POLICY_MAX_AUDIT 8

struct policy_request {
	const char *principal; /* caller's SPIFFE ID; NULL or "" when unauthenticated */
	uint16_t port; /* destination port, host order */
	const char *method; /* NULL: not an HTTP request (TCP-level decision) */
	const char *path; /* request target without the query; NULL if not HTTP */
	const char *host; /* Host header (may carry :port); NULL if absent */
};

/* The names policy_result.rule has when no configured rule decided. */
#define POLICY_RULE_DEFAULT_ALLOW "default-allow"
#define POLICY_RULE_DEFAULT_DENY "default-deny"
#define POLICY_RULE_NO_ALLOW "no-allow-rule-matched"
#define POLICY_RULE_PER_REQUEST "per-request"

/* 1 when rule is one of the names above rather than a configured rule
 * (metrics label it kind "default", docs/observability.md). */
int policy_rule_builtin(const char *rule);

struct policy_result {
	enum policy_decision decision;
	/* The rule that decided (borrowed from the policy set), or one of
	 * "default-allow", "default-deny", "no-allow-rule-matched". */
	const char *rule;
	int n_audit;
	const char *audit[POLICY_MAX_AUDIT]; /* names of matching audit rules */
};

struct policy_set;

/*
 * Compiles cfg->policies, checking every pattern.  Returns NULL with a
 * sentence naming the policy and the pattern in err when one is malformed.
 * A config without policies gives an empty set (everything follows the
 * default).
 */
struct policy_set *policy_compile(const struct config *cfg, char *err, size_t errlen);
void policy_free(struct policy_set *p); /* NULL is a no-op */

/*
 * The one decision function of the data path and of `policy check`.
 * POLICY_AT_CONNECT answers POLICY_PENDING (rule "per-request") when some
 * rule selecting this port and caller has L7 conditions; otherwise, and at
 * POLICY_NOT_HTTP, the connection-level decision (req's method, path and
 * host are ignored).  POLICY_AT_REQUEST decides req as an HTTP request.
 * POLICY_NOT_HTTP allowing a caller implies every request of theirs on
 * that port is allowed, so falling back to it never opens anything.
 */
void policy_decide(const struct policy_set *p, enum policy_stage stage,
		   const struct policy_request *req, struct policy_result *out);

/* Decides one request, or the connection when req->method is NULL (the
 * same as POLICY_NOT_HTTP).  The data path calls policy_decide(). */
void policy_eval(const struct policy_set *p, const struct policy_request *req,
		 struct policy_result *out);

/*
 * 1 when some rule that could select this port and caller has request (L7)
 * conditions, so the decision must wait for each HTTP request; 0 when the
 * connection-level decision is final.
 */
int policy_needs_request(const struct policy_set *p, uint16_t port, const char *principal);

/* One ldmesh_policy_decisions_total series. */
struct decision_count {
	char rule[64];
	uint16_t port;
	uint8_t decision; /* enum policy_decision, or 2 for audit */
	uint64_t count;
};

#define DECISION_SERIES_MAX 512

/* The decisions counted so far, by rule, port and decision (decisions.c). */
struct policy_counts {
	struct decision_count decisions[DECISION_SERIES_MAX];
	int n_decisions;
};

/* Counts a policy decision (and its audit matches) and logs audit rules. */
void policy_account(struct policy_counts *d, const struct policy_request *req,
		    const struct policy_result *res);
/* Adds src's counts into dst (the event loops' counts, merged for a scrape). */
void policy_counts_merge(struct policy_counts *dst, const struct policy_counts *src);

#endif
