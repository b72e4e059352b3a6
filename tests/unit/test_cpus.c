/*
 * Unit tests for daemon/util/cpus.c: the CPUs a cgroup v2 cpu.max allows,
 * and that the usable count is at least 1 and within the affinity mask.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sched.h>

#include "util/cpus.h"

static void test_cpu_max(void **state)
{
	(void)state;
	assert_int_equal(cpus_from_cpu_max("max 100000\n"), -1);
	assert_int_equal(cpus_from_cpu_max("100000 100000\n"), 1);
	assert_int_equal(cpus_from_cpu_max("150000 100000\n"), 2); /* rounded up */
	assert_int_equal(cpus_from_cpu_max("50000 100000"), 1);
	assert_int_equal(cpus_from_cpu_max("400000 100000"), 4);
	assert_int_equal(cpus_from_cpu_max("1 100000"), 1);
	assert_int_equal(cpus_from_cpu_max(""), -1);
	assert_int_equal(cpus_from_cpu_max("garbage"), -1);
	assert_int_equal(cpus_from_cpu_max("100000 0"), -1);
	assert_int_equal(cpus_from_cpu_max("-5 100000"), -1);
	assert_int_equal(cpus_from_cpu_max(NULL), -1);
}

static void test_usable(void **state)
{
	cpu_set_t set;
	int n = cpus_usable();

	(void)state;
	assert_true(n >= 1);
	assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
	assert_true(n <= CPU_COUNT(&set));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cpu_max),
		cmocka_unit_test(test_usable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
