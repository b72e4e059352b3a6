/*
 * Unit tests for daemon/proxy/balance.c: a service's virtual address, the
 * power-of-two-choices pick over peak-EWMA cost, failure accrual with its
 * backoff and trial, a reload that keeps what stays, an endpoint a
 * connection still holds after a reload dropped it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>

#include <cmocka.h>

#include "config/config.h"
#include "proxy/balance.h"
#include "util/strbuf.h"

static struct config *load(const char *text)
{
	char err[512];
	struct config *c = config_parse(text, "test.conf", err, sizeof(err));

	if (!c) {
		fail_msg("%s", err);
	}
	return c;
}

static const char three[] =
	"services = ( { name = \"web\"; port = 8080; addresses = [ \"10.96.0.10:80\" ];\n"
	"  endpoints = [ \"10.1.0.1:8080\", \"10.1.0.2:8080\", \"10.1.0.3:8080\" ]; },\n"
	"  { name = \"db\"; port = 5432; endpoints = [ \"10.2.0.1:5432\" ]; } );\n";

static struct ldm_addr addr(const char *s)
{
	struct ldm_addr a;

	assert_int_equal(config_parse_hostport(s, &a), 0);
	return a;
}

static int index_of(const struct balancer *b, const struct bal_endpoint *e)
{
	size_t i;

	for (i = 0; i < b->svc[0].n; i++) {
		if (b->svc[0].ep[i] == e) {
			return (int)i;
		}
	}
	return -1;
}

static void test_service_of_virtual_address(void **state)
{
	struct config *c = load(three);
	struct balancer b;
	struct ldm_addr v = addr("10.96.0.10:80"), other = addr("10.96.0.10:81"),
			ep = addr("10.1.0.1:8080");

	(void)state;
	balancer_init(&b);
	assert_int_equal(balancer_sync(&b, c), 0);
	assert_int_equal(b.n, 2); /* db too: a split could go there */
	assert_int_equal(balancer_service_of(&b, &v), 0);
	assert_int_equal(balancer_service_of(&b, &other), -1);
	assert_int_equal(balancer_service_of(&b, &ep), -1);
	/* A dual-stack socket's form of the same address. */
	{
		struct ldm_addr m = addr("[::ffff:10.96.0.10]:80");

		assert_int_equal(balancer_service_of(&b, &m), 0);
	}
	balancer_fini(&b);
	config_free(c);
}

/* Equal endpoints share the load; a slow one is picked only while the
 * others carry more connections than it costs. */
static void test_p2c_prefers_low_cost(void **state)
{
	struct config *c = load(three);
	struct balancer b;
	int counts[3] = {0, 0, 0}, i;
	int64_t now = 1000000000;

	(void)state;
	balancer_init(&b);
	assert_int_equal(balancer_sync(&b, c), 0);
	for (i = 0; i < 3000; i++) {
		struct bal_endpoint *e = balancer_pick(&b, 0, NULL, now);
		int k = index_of(&b, e);

		counts[k]++;
		balancer_result(e, 1, k == 2 ? 100000 : 1000, now); /* endpoint 2: 100 ms */
		balancer_release(e);
		now += 1000;
	}
	assert_true(counts[0] > 1200 && counts[1] > 1200);
	assert_true(counts[2] < 30); /* only its first, unmeasured picks */
	/* Outstanding connections count: with 200 held on 0 and 1, the slow
	 * one becomes the cheaper choice. */
	{
		struct bal_endpoint *held[400];
		int n = 0, got2 = 0;

		while (n < 400) {
			struct bal_endpoint *e = balancer_pick(&b, 0, NULL, now);
			if (index_of(&b, e) == 2) {
				got2++;
				balancer_release(e);
			} else {
				held[n++] = e;
			}
		}
		assert_true(got2 > 0);
		while (n) {
			balancer_release(held[--n]);
		}
	}
	balancer_fini(&b);
	config_free(c);
}

/* Three failures in a row take an endpoint out; after the backoff one
 * trial connection goes to it: success brings it back, failure doubles
 * the backoff.  When every endpoint is out, no pick. */
static void test_failure_accrual(void **state)
{
	struct config *c = load(three);
	struct balancer b;
	struct bal_endpoint *e0, *e;
	int64_t now = 5000000000;
	int i;

	(void)state;
	balancer_init(&b);
	assert_int_equal(balancer_sync(&b, c), 0);
	e0 = b.svc[0].ep[0];
	for (i = 0; i < BAL_FAILURES; i++) {
		assert_int_equal(e0->state, BAL_READY);
		balancer_result(e0, 0, 0, now);
	}
	assert_int_equal(e0->state, BAL_OUT);
	assert_int_equal(e0->backoff_ms, BAL_BACKOFF_MIN_MS);
	for (i = 0; i < 100; i++) {
		e = balancer_pick(&b, 0, NULL, now);
		assert_ptr_not_equal(e, e0);
		balancer_release(e);
	}
	/* Its time is up: the next pick is its trial, and only one. */
	now += (int64_t)BAL_BACKOFF_MIN_MS * 1000;
	e = balancer_pick(&b, 0, NULL, now);
	assert_ptr_equal(e, e0);
	assert_int_equal(e0->state, BAL_PROBING);
	{
		struct bal_endpoint *other = balancer_pick(&b, 0, NULL, now);
		assert_ptr_not_equal(other, e0);
		balancer_release(other);
	}
	balancer_result(e, 0, 0, now); /* the trial fails: out for twice as long */
	balancer_release(e);
	assert_int_equal(e0->state, BAL_OUT);
	assert_int_equal(e0->backoff_ms, 2 * BAL_BACKOFF_MIN_MS);
	now += 2 * (int64_t)BAL_BACKOFF_MIN_MS * 1000;
	e = balancer_pick(&b, 0, NULL, now);
	assert_ptr_equal(e, e0);
	balancer_result(e, 1, 2000, now); /* the trial works: back */
	balancer_release(e);
	assert_int_equal(e0->state, BAL_READY);
	assert_int_equal(e0->backoff_ms, 0);
	/* All out: nothing to pick, counted. */
	for (i = 0; i < 3; i++) {
		int k;
		for (k = 0; k < BAL_FAILURES; k++) {
			balancer_result(b.svc[0].ep[i], 0, 0, now);
		}
	}
	assert_null(balancer_pick(&b, 0, NULL, now));
	assert_int_equal(b.unavailable_total, 1);
	balancer_fini(&b);
	config_free(c);
}

/* The one that just failed a connection is avoided while another is in. */
static void test_avoid(void **state)
{
	struct config *c = load(three);
	struct balancer b;
	int i;

	(void)state;
	balancer_init(&b);
	assert_int_equal(balancer_sync(&b, c), 0);
	for (i = 0; i < 200; i++) {
		struct bal_endpoint *e = balancer_pick(&b, 0, b.svc[0].ep[1], 1000);
		assert_ptr_not_equal(e, b.svc[0].ep[1]);
		balancer_release(e);
	}
	balancer_fini(&b);
	config_free(c);
}

/* A reload keeps the state of endpoints that stay; one it drops lives on
 * while a connection holds it. */
static void test_reload_keeps_state(void **state)
{
	struct config *c1 = load(three), *c2;
	struct balancer b;
	struct bal_endpoint *kept, *dropped;
	struct strbuf out = {0};

	(void)state;
	balancer_init(&b);
	assert_int_equal(balancer_sync(&b, c1), 0);
	kept = b.svc[0].ep[0];
	balancer_result(kept, 1, 5000, 1000);
	dropped = balancer_pick(&b, 0, kept, 1000);
	while (dropped == b.svc[0].ep[1]) { /* want endpoint 3 */
		balancer_release(dropped);
		dropped = balancer_pick(&b, 0, kept, 1000);
	}
	assert_ptr_equal(dropped, b.svc[0].ep[2]);
	c2 = load("services = ( { name = \"web\"; port = 8080; addresses = [ \"10.96.0.10:80\" ];\n"
		  "  endpoints = [ \"10.1.0.1:8080\", \"10.1.0.4:8080\" ]; } );\n");
	assert_int_equal(balancer_sync(&b, c2), 0);
	assert_int_equal(b.svc[0].n, 2);
	assert_ptr_equal(b.svc[0].ep[0], kept);
	assert_true(kept->ewma_us > 4999 && kept->ewma_us < 5001);
	assert_true(dropped->detached);
	assert_int_equal(dropped->outstanding, 1);
	balancer_list(&b, &out, 1, 1000);
	assert_non_null(strstr(out.s, "\"addr\":\"10.1.0.4:8080\""));
	assert_null(strstr(out.s, "10.1.0.3"));
	sb_fini(&out);
	balancer_release(dropped); /* freed here: ASan says if not */
	balancer_fini(&b);
	config_free(c1);
	config_free(c2);
}

/* 10 % of web's connections go to canary, the rest stay. */
static void test_split(void **state)
{
	struct config *c = load(
		"services = ( { name = \"web\"; port = 80; addresses = [ \"10.96.0.10:80\" ];\n"
		"  endpoints = [ \"10.1.0.1:80\" ]; split = ( { service = \"canary\"; weight = 10; "
		"} ); },\n"
		" { name = \"canary\"; port = 80; endpoints = [ \"10.1.0.9:80\" ]; } );\n");
	struct balancer b;
	int i, to_canary = 0;

	(void)state;
	balancer_init(&b);
	assert_int_equal(balancer_sync(&b, c), 0);
	for (i = 0; i < 10000; i++) {
		to_canary += balancer_route(&b, 0) == 1;
	}
	assert_true(to_canary > 850 && to_canary < 1150);
	assert_int_equal(balancer_route(&b, 1), 1);
	balancer_fini(&b);
	config_free(c);
}

static void test_config_errors(void **state)
{
	char err[512];

	(void)state;
	assert_null(config_parse(
		"services = ( { name = \"a\"; port = 1; addresses = [ \"10.96.0.1:80\" ];\n"
		"  endpoints = [ \"10.1.0.1:80\" ]; },\n"
		" { name = \"b\"; port = 1; addresses = [ \"10.96.0.1:80\" ];\n"
		"  endpoints = [ \"10.1.0.2:80\" ]; } );\n",
		"test.conf", err, sizeof(err)));
	assert_non_null(strstr(err, "test.conf:3:"));
	assert_non_null(strstr(err, "address also in services[0] (a)"));
	assert_null(config_parse(
		"services = ( { name = \"a\"; port = 1; endpoints = [ \"10.1.0.1:80\" ];\n"
		"  split = ( { service = \"b\"; weight = 60; },\n"
		"            { service = \"c\"; weight = 50; } ); } );\n",
		"test.conf", err, sizeof(err)));
	assert_non_null(strstr(err, "test.conf:3:"));
	assert_non_null(strstr(err, "split weights add up to 110"));
	assert_null(config_parse(
		"services = ( { name = \"a\"; port = 1; endpoints = [ \"10.1.0.1:80\" ];\n"
		"  split = ( { service = \"nope\"; weight = 5; } ); } );\n",
		"test.conf", err, sizeof(err)));
	assert_non_null(strstr(err, "no service named \"nope\""));
}

static const char dns_conf[] =
	"services = ( { name = \"web\"; port = 8080; addresses = [ \"10.96.0.10:80\" ];\n"
	"  dns = \"web.shop.svc.cluster.local:8080\"; } );\n";

/* A DNS service has no endpoint before its first answer; an answer keeps
 * the state of the addresses that stay, adds the new ones and detaches
 * those gone (a connection still holds one); a reload that keeps the name
 * keeps what it resolved, one that changes it starts over. */
static void test_set_endpoints(void **state)
{
	struct config *c = load(dns_conf), *c2, *c3;
	struct balancer b;
	struct bal_endpoint *e1, *e2, *held;
	struct ldm_addr first[] = {addr("10.1.0.1:8080"), addr("10.1.0.2:8080"),
				   addr("10.1.0.1:8080")};
	struct ldm_addr second[] = {addr("10.1.0.2:8080"), addr("[fd00::3]:8080")};
	int64_t now = 5000000000;
	int i;

	(void)state;
	assert_string_equal(c->services[0].dns, "web.shop.svc.cluster.local");
	assert_int_equal(c->services[0].dns_port, 8080);
	assert_int_equal(c->services[0].n_endpoints, 0);
	balancer_init(&b);
	assert_int_equal(balancer_sync(&b, c), 0);
	assert_string_equal(b.svc[0].dns.name, "web.shop.svc.cluster.local");
	assert_int_equal(b.svc[0].n, 0);
	assert_null(balancer_pick(&b, 0, NULL, now)); /* no answer yet: refused */
	assert_int_equal(b.unavailable_total, 1);

	assert_int_equal(balancer_set_endpoints(&b, 0, first, 3), 2); /* the duplicate once */
	assert_int_equal(b.svc[0].n, 2);
	e1 = b.svc[0].ep[0];
	e2 = b.svc[0].ep[1];
	assert_int_equal(balancer_set_endpoints(&b, 0, first, 2), 0); /* the same set */
	assert_ptr_equal(b.svc[0].ep[1], e2);
	balancer_result(e2, 1, 4000, now); /* measured */
	for (i = 0; i < BAL_FAILURES; i++) {
		balancer_result(e1, 0, 0, now);
	}
	assert_int_equal(e1->state, BAL_OUT);
	held = balancer_pick(&b, 0, NULL, now); /* e2: e1 is out */
	assert_ptr_equal(held, e2);
	balancer_release(held);
	/* A connection holds e1 (as one that was open before it went out). */
	e1->refs++;
	e1->outstanding++;

	/* 10.1.0.1 gone, 10.1.0.2 stays, fd00::3 new. */
	assert_int_equal(balancer_set_endpoints(&b, 0, second, 2), 2);
	assert_int_equal(b.svc[0].n, 2);
	assert_ptr_equal(b.svc[0].ep[0], e2);
	assert_true(e2->ewma_us > 0 && !e2->detached);
	assert_int_equal(e1->detached, 1);
	assert_int_equal(e1->refs, 1); /* only the connection's now */
	assert_int_equal(b.svc[0].ep[1]->ewma_us, 0);
	balancer_release(e1); /* the connection ends: freed (ASan would say) */

	/* A reload with the same name keeps the endpoints and their state. */
	c2 = load(dns_conf);
	assert_int_equal(balancer_sync(&b, c2), 0);
	assert_int_equal(b.svc[0].n, 2);
	assert_ptr_equal(b.svc[0].ep[0], e2);
	assert_false(e2->detached);
	/* Another name: none until it answers. */
	c3 = load("services = ( { name = \"web\"; port = 8080; addresses = [ \"10.96.0.10:80\" ];\n"
		  "  dns = \"web2.shop.svc.cluster.local:8080\"; } );\n");
	assert_int_equal(balancer_sync(&b, c3), 0);
	assert_int_equal(b.svc[0].n, 0);
	assert_string_equal(b.svc[0].dns.name, "web2.shop.svc.cluster.local");
	balancer_fini(&b);
	config_free(c);
	config_free(c2);
	config_free(c3);
}

/* dns or endpoints, exactly one; a name and a port; dns_servers. */
/* Linkerd's budget: retries <= min_per_s * ttl + percent of the requests
 * of the last ttl seconds; older seconds fall out of the window. */
static void test_retry_budget(void **state)
{
	struct config *c = load(three);
	struct balancer b;
	int64_t t = 1000 * 1000000LL; /* an arbitrary second */
	int i, allowed = 0;

	(void)state;
	balancer_init(&b);
	assert_int_equal(balancer_sync(&b, c), 0);
	/* No request yet: the minimum alone, 1 per second over 10 s. */
	for (i = 0; i < 20; i++) {
		allowed += balancer_budget_retry(&b, 0, 20, 1, 10, t);
	}
	assert_int_equal(allowed, 10);
	assert_int_equal(b.svc[0].budget_exhausted_total, 10);
	assert_int_equal(b.svc[0].retries_total, 10);
	/* 100 requests add 20 % of them. */
	for (i = 0; i < 100; i++) {
		balancer_budget_request(&b, 0, t);
	}
	allowed = 0;
	for (i = 0; i < 40; i++) {
		allowed += balancer_budget_retry(&b, 0, 20, 1, 10, t);
	}
	assert_int_equal(allowed, 20);
	assert_int_equal(b.svc[0].requests_total, 100);
	/* Ten seconds on, the window has none of it: the minimum again. */
	allowed = 0;
	for (i = 0; i < 40; i++) {
		allowed += balancer_budget_retry(&b, 0, 20, 1, 10, t + 10 * 1000000LL);
	}
	assert_int_equal(allowed, 10);
	/* Without a minimum and without requests, nothing. */
	assert_int_equal(balancer_budget_retry(&b, 1, 20, 0, 10, t), 0);
	/* Counters stay across a reload that keeps the service. */
	{
		struct config *c2 = load(three);
		uint64_t was = b.svc[0].retries_total;

		assert_int_equal(balancer_sync(&b, c2), 0);
		assert_int_equal(b.svc[0].retries_total, was);
		balancer_fini(&b);
		config_free(c2);
	}
	config_free(c);
}

static void test_dns_config_errors(void **state)
{
	char err[512];
	struct config *c;

	(void)state;
	assert_null(config_parse("services = ( { name = \"a\"; port = 1;\n"
				 "  endpoints = [ \"10.1.0.1:80\" ]; dns = \"a.test:80\"; } );\n",
				 "test.conf", err, sizeof(err)));
	assert_non_null(strstr(err, "test.conf:1: services[0]: endpoints and dns are both set"));
	assert_null(config_parse("services = ( { name = \"a\"; port = 1; } );\n", "test.conf", err,
				 sizeof(err)));
	assert_non_null(strstr(err, "test.conf:1: services[0]: missing required key endpoints"));
	assert_null(config_parse("services = ( { name = \"a\"; port = 1;\n"
				 "  dns = \"a.test\"; } );\n",
				 "test.conf", err, sizeof(err)));
	assert_non_null(strstr(err, "test.conf:2: services[0].dns: \"a.test\""));
	assert_null(config_parse("services = ( { name = \"a\"; port = 1;\n"
				 "  dns = \"a..test:80\"; } );\n",
				 "test.conf", err, sizeof(err)));
	assert_non_null(strstr(err, "empty label"));
	assert_null(config_parse("services = ( { name = \"a\"; port = 1;\n"
				 "  dns = \"a.test:0\"; } );\n",
				 "test.conf", err, sizeof(err)));
	assert_non_null(strstr(err, "no port 1..65535"));
	assert_null(config_parse("dns_servers = [ \"10.0.0.10\", \"nameserver\" ];\n", "test.conf",
				 err, sizeof(err)));
	assert_non_null(
		strstr(err, "test.conf:1: dns_servers[1]: \"nameserver\" is not an address"));
	c = config_parse("dns_servers = [ \"10.0.0.10\", \"10.0.0.11:5353\", \"fd00::a\",\n"
			 "  \"[fd00::b]:53\" ];\n",
			 "test.conf", err, sizeof(err));
	if (!c) {
		fail_msg("%s", err);
	}
	assert_int_equal(c->n_dns_servers, 4);
	assert_int_equal(ntohs(c->dns_servers[0].port), 53);
	assert_int_equal(ntohs(c->dns_servers[1].port), 5353);
	assert_int_equal(c->dns_servers[2].family, AF_INET6);
	assert_int_equal(ntohs(c->dns_servers[2].port), 53);
	config_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_service_of_virtual_address),
		cmocka_unit_test(test_p2c_prefers_low_cost),
		cmocka_unit_test(test_failure_accrual),
		cmocka_unit_test(test_avoid),
		cmocka_unit_test(test_reload_keeps_state),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_set_endpoints),
		cmocka_unit_test(test_dns_config_errors),
		cmocka_unit_test(test_retry_budget),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
