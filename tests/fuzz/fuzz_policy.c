/*
 * libFuzzer target for the policy pattern checker, the glob matcher and the
 * request matcher.
 *
 * Input: one kind byte (mod 5: principal, namespace, method, path, host),
 * the pattern, a NUL, then the subject string.  Without a NUL the whole
 * rest is the pattern and the subject is empty.
 *
 * Checks, beyond "no crash, no sanitizer report":
 *  - a refused pattern comes with a one-line message naming its kind;
 *  - policy_glob agrees with a plain backtracking matcher on short inputs;
 *  - a valid pattern compiles into a one-rule policy, and evaluating the
 *    subject as the caller's ID, the path or the Host gives a decision.
 *
 * Build and run (new inputs go to the first directory, so the seeds in
 * the tree stay as they are):
 *   ci/fuzz.sh --time 60 policy
 * (which links the policy files, the config parser and spiffe.c; see its
 * needs() list).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "policy/policy.h"

#define MAX_INPUT 8192

static const char *const kind_names[] = {"principal", "namespace", "method", "path", "host"};

/* The textbook matcher: exponential in the worst case, so short inputs only. */
static int ref_glob(const char *p, const char *s, int fold)
{
	unsigned char a, b;

	if (!*p)
		return !*s;
	if (*p == '*')
		return ref_glob(p + 1, s, fold) || (*s && ref_glob(p, s + 1, fold));
	if (!*s)
		return 0;
	a = (unsigned char)*p;
	b = (unsigned char)*s;
	if (fold) {
		a = a >= 'A' && a <= 'Z' ? (unsigned char)(a + 32) : a;
		b = b >= 'A' && b <= 'Z' ? (unsigned char)(b + 32) : b;
	}
	return (*p == '?' || a == b) && ref_glob(p + 1, s + 1, fold);
}

static size_t count_stars(const char *p)
{
	size_t n = 0;

	for (; *p; p++)
		n += *p == '*';
	return n;
}

/* One rule using the pattern; the subject goes where the kind says. */
static void eval_one(enum policy_pattern_kind kind, char *pattern, const char *subject, int action)
{
	char *list[1] = {pattern}, err[512];
	struct config_policy pol = {.name = "fuzz", .action = (enum config_action)action};
	struct config cfg = {.policies = &pol, .n_policies = 1};
	struct policy_request req = {.port = 80};
	struct policy_result res;
	struct policy_set *p;

	switch (kind) {
	case PATTERN_PRINCIPAL:
		pol.principals = list, pol.n_principals = 1;
		req.principal = subject;
		break;
	case PATTERN_NAMESPACE:
		pol.namespaces = list, pol.n_namespaces = 1;
		req.principal = subject;
		break;
	case PATTERN_METHOD:
		pol.methods = list, pol.n_methods = 1;
		req.method = subject;
		req.path = "/";
		break;
	case PATTERN_PATH:
		pol.paths = list, pol.n_paths = 1;
		req.method = "GET";
		req.path = subject;
		break;
	default:
		pol.hosts = list, pol.n_hosts = 1;
		req.method = "GET";
		req.path = "/";
		req.host = subject;
		break;
	}
	p = policy_compile(&cfg, err, sizeof(err));
	if (!p) {
		fprintf(stderr, "valid %s pattern not compiled: %s\n", kind_names[kind], err);
		abort();
	}
	policy_eval(p, &req, &res);
	if (!res.rule || (res.decision != POLICY_ALLOW && res.decision != POLICY_DENY))
		abort();
	if (action == CONFIG_ACTION_AUDIT && res.decision != POLICY_ALLOW)
		abort(); /* audit never decides; the default is allow */
	(void)policy_needs_request(p, 80, req.principal);
	policy_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char buf[MAX_INPUT + 2];
	enum policy_pattern_kind kind;
	char err[256], *pattern, *subject, *nul;
	size_t n;
	int rc, fold;

	if (size < 1 || size > MAX_INPUT)
		return 0;
	kind = (enum policy_pattern_kind)(data[0] % 5);
	n = size - 1;
	memcpy(buf, data + 1, n);
	buf[n] = '\0';
	buf[n + 1] = '\0';
	pattern = buf;
	nul = memchr(buf, '\0', n);
	subject = nul ? nul + 1 : buf + n + 1;

	err[0] = '\0';
	rc = policy_check_pattern(kind, pattern, err, sizeof(err));
	if (rc != 0) {
		if (!err[0] || strchr(err, '\n') ||
		    strncmp(err, kind_names[kind], strlen(kind_names[kind])) != 0) {
			fprintf(stderr, "bad message for a refused pattern: \"%s\"\n", err);
			abort();
		}
		return 0;
	}

	fold = kind == PATTERN_HOST;
	rc = policy_glob(pattern, subject, fold);
	if (strlen(pattern) <= 16 && strlen(subject) <= 32 && count_stars(pattern) <= 6 &&
	    rc != ref_glob(pattern, subject, fold)) {
		fprintf(stderr, "glob \"%s\" on \"%s\": %d, reference %d\n", pattern, subject, rc,
			!rc);
		abort();
	}
	/* Without wildcards a pattern matches itself. */
	if (!strpbrk(pattern, "*?") && !policy_glob(pattern, pattern, fold))
		abort();

	eval_one(kind, pattern, subject, CONFIG_ACTION_ALLOW);
	eval_one(kind, pattern, subject, CONFIG_ACTION_DENY);
	eval_one(kind, pattern, subject, CONFIG_ACTION_AUDIT);
	return 0;
}
