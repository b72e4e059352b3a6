/*
 * Unit tests for daemon/proxy/balance_merge.c: two event loops' balancers
 * shown as one.  Counters add up; an endpoint shows the state of the loop
 * that last had a connect result from it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "proxy/balance.h"
#include "util/strbuf.h"

static const char two[] =
	"services = ( { name = \"web\"; port = 8080; addresses = [ \"10.96.0.10:80\" ];\n"
	"  endpoints = [ \"10.1.0.1:8080\", \"10.1.0.2:8080\" ]; } );\n";

static void test_merge(void **state)
{
	char err[512];
	struct config *c = config_parse(two, "test.conf", err, sizeof(err));
	struct balancer l0, l1, m;
	struct strbuf out = {0};
	struct bal_endpoint *e;
	int64_t now = 5000000000;
	int i;

	(void)state;
	assert_non_null(c);
	balancer_init(&l0);
	balancer_init(&l1);
	assert_int_equal(balancer_sync(&l0, c), 0);
	assert_int_equal(balancer_sync(&l1, c), 0);
	/* loop 0: endpoint 0 fails three times (out); loop 1 connects to it
	 * later, fine: loop 1's verdict is the newer one */
	for (i = 0; i < BAL_FAILURES; i++) {
		balancer_result(l0.svc[0].ep[0], 0, 0, now);
	}
	assert_int_equal(l0.svc[0].ep[0]->state, BAL_OUT);
	e = balancer_pick(&l1, 0, NULL, now);
	balancer_result(e, 1, 1000, now + 1000);
	l1.retries_total = 2;
	l0.unavailable_total = 1;

	balancer_init(&m);
	assert_int_equal(balancer_merge(&m, &l0), 0);
	assert_int_equal(balancer_merge(&m, &l1), 0);
	assert_int_equal(m.n, 1);
	assert_int_equal(m.svc[0].n, 2);
	assert_int_equal(m.retries_total, 2);
	assert_int_equal(m.unavailable_total, 1);
	for (i = 0; i < 2; i++) {
		const struct bal_endpoint *x = m.svc[0].ep[i];
		const struct bal_endpoint *a0 = l0.svc[0].ep[i], *a1 = l1.svc[0].ep[i];
		assert_int_equal(x->connections_total,
				 a0->connections_total + a1->connections_total);
		assert_int_equal(x->failures_total, a0->failures_total + a1->failures_total);
		assert_int_equal(x->outstanding, a0->outstanding + a1->outstanding);
		if (a1 == e) {
			assert_int_equal(x->state, BAL_READY); /* loop 1 heard from it last */
		}
	}
	balancer_list(&m, &out, 1, now);
	assert_false(out.oom);
	assert_non_null(strstr(out.s, "\"name\":\"web\""));
	sb_fini(&out);
	/* loop 0 fails it again after that: now it shows out */
	for (i = 0; i < BAL_FAILURES; i++) {
		balancer_result(l0.svc[0].ep[0], 0, 0, now + 5000);
	}
	balancer_fini(&m);
	balancer_init(&m);
	assert_int_equal(balancer_merge(&m, &l0), 0);
	assert_int_equal(balancer_merge(&m, &l1), 0);
	assert_int_equal(m.svc[0].ep[0]->state, BAL_OUT);
	balancer_fini(&m);
	balancer_release(e);
	balancer_fini(&l0);
	balancer_fini(&l1);
	config_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merge),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
