/*
 * Accounting for policy decisions: ldmesh_policy_decisions_total{decision,
 * rule, port} and the audit log lines.  Series are bounded: rule names come
 * from the config and ports from listeners; past DECISION_SERIES_MAX new
 * combinations fold into rule="other".
 */
#include <stdio.h>
#include <string.h>

#include "policy/policy.h"
#include "util/log.h"

static void add(struct policy_counts *d, const char *rule, uint16_t port, int decision, uint64_t n)
{
	int i;

	for (i = 0; i < d->n_decisions; i++) {
		struct decision_count *e = &d->decisions[i];
		if (e->port == port && e->decision == decision && !strcmp(e->rule, rule)) {
			e->count += n;
			return;
		}
	}
	if (d->n_decisions == DECISION_SERIES_MAX) {
		if (strcmp(rule, "other")) {
			add(d, "other", 0, decision, n);
		} else {
			d->decisions[DECISION_SERIES_MAX - 1].count += n;
		}
		return;
	}
	i = d->n_decisions++;
	snprintf(d->decisions[i].rule, sizeof(d->decisions[i].rule), "%s", rule);
	d->decisions[i].port = port;
	d->decisions[i].decision = (uint8_t)decision;
	d->decisions[i].count = n;
}

static void count(struct policy_counts *d, const char *rule, uint16_t port, int decision)
{
	add(d, rule, port, decision, 1);
}

void policy_counts_merge(struct policy_counts *dst, const struct policy_counts *src)
{
	int i;

	for (i = 0; i < src->n_decisions; i++) {
		const struct decision_count *e = &src->decisions[i];
		add(dst, e->rule, e->port, e->decision, e->count);
	}
}

int policy_rule_builtin(const char *rule)
{
	static const char *const names[] = {POLICY_RULE_DEFAULT_ALLOW, POLICY_RULE_DEFAULT_DENY,
					    POLICY_RULE_NO_ALLOW, POLICY_RULE_PER_REQUEST};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcmp(rule, names[i])) {
			return 1;
		}
	}
	return 0;
}

void policy_account(struct policy_counts *d, const struct policy_request *req,
		    const struct policy_result *res)
{
	int i;

	if (res->decision == POLICY_PENDING) {
		return; /* not a decision yet: each request is counted */
	}
	count(d, res->rule, req->port, res->decision);
	for (i = 0; i < res->n_audit; i++) {
		count(d, res->audit[i], req->port, 2);
		log_info("policy audit: rule %s matched %s on port %u%s%s%s%s (decision %s by %s)",
			 res->audit[i],
			 req->principal && req->principal[0] ? req->principal
							     : "an unauthenticated caller",
			 req->port, req->method ? " " : "", req->method ? req->method : "",
			 req->path ? " " : "", req->path ? req->path : "",
			 res->decision == POLICY_ALLOW ? "allow" : "deny", res->rule);
	}
}
