/*
 * libFuzzer target for the inbound detector on ports with HTTP rules: the
 * first bytes of a connection (the client's, or the app's when it speaks
 * first) go through the HTTP/1 framer and policy_decide() at the stage the
 * data path (daemon/proxy/l7.c: l7_down, l7_responses) uses for each framer
 * event: a request head is decided as a request, bytes that are not
 * HTTP/1.x as a connection (POLICY_NOT_HTTP), a malformed head is a 400, a
 * head still arriving is held and decides nothing.
 *
 * Input: byte 0 picks the caller, the port, the rule set and whether the
 * app speaks first; byte 1 the chunk size the bytes arrive in; the rest is
 * the stream.
 *
 * The invariant: nothing ends in allow unless a rule allows it.
 *  - POLICY_NOT_HTTP never allows through a rule with L7 conditions, and
 *    with these rule sets never allows on a port with HTTP rules at all;
 *  - an allow by an L7 rule comes only from a parsed request head whose
 *    method, Host and caller meet that rule's conditions (checked here
 *    against the rule's text, independently of policy.c);
 *  - "default-allow" only where no allow rule selects the port.
 *
 *   ci/fuzz.sh --time 60 detect
 * (which links http1.c, the policy files, the config parser and spiffe.c).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "proto/http1.h"
#include "policy/policy.h"

#include "fuzz_check.h"

#define CLIENT "spiffe://cluster.local/ns/acc/sa/client"
#define OTHER "spiffe://cluster.local/ns/acc/sa/other"

/* api: L7 allow on 8080; tcp-9000: TCP allow with an L7 deny beside it;
 * web: host rule on 8443; nothing selects 1234. */
static const char *const sets_text[2] = {
	"policy_default = \"deny\";\n"
	"policies = (\n"
	" { name = \"api\"; action = \"allow\"; ports = [ 8080 ];\n"
	"   principals = [ \"" CLIENT "\" ]; methods = [ \"GET\", \"POST\" ];\n"
	"   paths = [ \"/api/*\" ]; },\n"
	" { name = \"tcp-9000\"; action = \"allow\"; ports = [ 9000 ]; },\n"
	" { name = \"no-admin\"; action = \"deny\"; ports = [ 8443, 9000 ];\n"
	"   paths = [ \"/admin/*\" ]; },\n"
	" { name = \"web\"; action = \"allow\"; ports = [ 8443 ];\n"
	"   hosts = [ \"web.example\" ]; } );\n",
	"policy_default = \"allow\";\n"
	"policies = (\n"
	" { name = \"api\"; action = \"allow\"; ports = [ 8080 ];\n"
	"   principals = [ \"" CLIENT "\" ]; methods = [ \"GET\", \"POST\" ];\n"
	"   paths = [ \"/api/*\" ]; },\n"
	" { name = \"watch\"; action = \"audit\"; methods = [ \"DELETE\" ]; } );\n",
};
static struct policy_set *sets[2];

static void load(void)
{
	char err[512];

	for (int i = 0; i < 2; i++) {
		struct config *c = config_parse(sets_text[i], "fuzz.conf", err, sizeof(err));

		CHECK(c != NULL);
		sets[i] = policy_compile(c, err, sizeof(err));
		config_free(c);
		CHECK(sets[i] != NULL);
	}
}

/* The allow the rules' own text permits for this decision. */
static void check_allow(int set, const struct policy_result *r, enum policy_stage stage,
			uint16_t port, const char *caller, const struct http1_head *hd)
{
	if (r->decision != POLICY_ALLOW)
		return;
	if (strcmp(r->rule, "api") == 0) {
		CHECK(stage == POLICY_AT_REQUEST && port == 8080 && caller &&
		      strcmp(caller, CLIENT) == 0);
		CHECK(strcmp(hd->method, "GET") == 0 || strcmp(hd->method, "POST") == 0);
	} else if (strcmp(r->rule, "web") == 0) {
		CHECK(stage == POLICY_AT_REQUEST && port == 8443);
		CHECK(strncasecmp(hd->host, "web.example", 11) == 0);
	} else if (strcmp(r->rule, "tcp-9000") == 0) {
		/* The L7 deny beside it refuses whatever is not a request. */
		CHECK(stage == POLICY_AT_REQUEST && port == 9000);
	} else if (strcmp(r->rule, "default-allow") == 0) {
		/* Only where no allow rule selects the port. */
		CHECK(set == 1 && port != 8080);
	} else {
		CHECK(!"allowed by a rule that cannot allow");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint16_t ports[] = {8080, 9000, 8443, 1234};
	static const char *const callers[] = {CLIENT, OTHER, NULL, ""};
	struct policy_request req = {0};
	struct policy_result res;
	struct http1_stream s;
	const struct policy_set *p;
	int app_first, set;
	size_t chunk, off = 2;
	enum http1_event ev = HTTP1_MORE;

	if (!sets[0])
		load();
	if (size < 2)
		return 0;
	req.port = ports[data[0] & 3];
	req.principal = callers[(data[0] >> 2) & 3];
	set = (data[0] >> 4) & 1;
	p = sets[set];
	app_first = (data[0] >> 5) & 1;
	chunk = (size_t)(data[1] % 16) + 1;

	policy_decide(p, POLICY_AT_CONNECT, &req, &res);
	if (res.decision != POLICY_PENDING) {
		/* Final at the handshake: never by a rule with L7 conditions. */
		static const struct http1_head none;
		check_allow(set, &res, POLICY_NOT_HTTP, req.port, req.principal, &none);
		return 0;
	}

	http1_init(&s, app_first ? HTTP1_RESPONSE : HTTP1_REQUEST);
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk, consumed = 0;

		ev = http1_feed(&s, (const char *)data + off, n, &consumed);
		CHECK(consumed <= n);
		off += consumed;
		if (ev != HTTP1_MORE || !consumed)
			break;
	}
	switch (ev) {
	case HTTP1_HEAD:
		if (app_first)
			break; /* an HTTP/1 answer before any request: nothing decided */
		req.method = s.head.method;
		req.path = s.head.path;
		req.host = s.head.host[0] ? s.head.host : NULL;
		policy_decide(p, POLICY_AT_REQUEST, &req, &res);
		check_allow(set, &res, POLICY_AT_REQUEST, req.port, req.principal, &s.head);
		break;
	case HTTP1_OPAQUE:
		policy_decide(p, POLICY_NOT_HTTP, &req, &res);
		check_allow(set, &res, POLICY_NOT_HTTP, req.port, req.principal, &s.head);
		/* Where allow rules or L7 deny rules select the port, what is not
		 * HTTP is refused. */
		if (req.port == 8080 || (set == 0 && req.port != 1234))
			CHECK(res.decision == POLICY_DENY);
		break;
	default:
		/* MORE: held, nothing forwarded; ERROR: 400 and close. */
		break;
	}
	http1_fini(&s);
	return 0;
}
