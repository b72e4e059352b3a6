/*
 * Unit tests for daemon/telemetry/process.c: /proc/<pid>/stat and the
 * btime line of /proc/stat as the process_* gauges read them, including a
 * command name with spaces and parentheses, and malformed input.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry/process.h"
#include "util/strbuf.h"

/* Fields after the command as Linux 6 writes them: utime 250, stime 150,
 * starttime 12345, vsize 104857600, rss 2560 pages. */
#define TAIL                                                                                       \
	" S 1 1234 1234 0 -1 4194560 1000 0 0 0 250 150 0 0 20 0 3 0 12345 104857600 2560 "        \
	"18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 17 1 0 0 0 0 0\n"

static void test_parse_stat(void **state)
{
	struct process_stat ps;

	(void)state;
	assert_int_equal(process_parse_stat("4242 (ldmeshd)" TAIL, 100, 4096, 1700000000, &ps), 0);
	assert_true(ps.cpu_seconds > 3.99 && ps.cpu_seconds < 4.01);
	assert_true(ps.start_time > 1700000123.44 && ps.start_time < 1700000123.46);
	assert_int_equal(ps.virtual_bytes, 104857600);
	assert_int_equal(ps.resident_bytes, 2560 * 4096);
}

static void test_parse_odd_command(void **state)
{
	struct process_stat ps;

	(void)state;
	/* The name is whatever prctl set: the fields start after the last ')'. */
	assert_int_equal(process_parse_stat("7 (a) b (c)" TAIL, 100, 4096, 0, &ps), 0);
	assert_int_equal(ps.virtual_bytes, 104857600);
}

static void test_parse_malformed(void **state)
{
	struct process_stat ps;

	(void)state;
	assert_int_equal(process_parse_stat("no parenthesis" TAIL, 100, 4096, 0, &ps), -EINVAL);
	assert_int_equal(process_parse_stat("7 (x) S 1 2 3", 100, 4096, 0, &ps), -EINVAL);
	assert_int_equal(process_parse_stat("7 (x)", 100, 4096, 0, &ps), -EINVAL);
	assert_int_equal(process_parse_stat("7 (x)" TAIL, 0, 4096, 0, &ps), -EINVAL);
}

static void test_btime(void **state)
{
	(void)state;
	assert_int_equal(process_parse_btime("cpu  1 2 3\ncpu0 1 2 3\nintr 5\nctxt 9\n"
					     "btime 1765112000\nprocesses 77\n"),
			 1765112000);
	assert_int_equal(process_parse_btime("cpu 1\n"), -EINVAL);
	assert_int_equal(process_parse_btime("xbtime 5\n"), -EINVAL);
}

/* This process's own gauges: each a sample line after its HELP and TYPE. */
static void test_render_self(void **state)
{
	struct strbuf b = {0};
	static const char *const names[] = {
		"\nprocess_cpu_seconds_total ",
		"\nprocess_start_time_seconds ",
		"\nprocess_resident_memory_bytes ",
		"\nprocess_virtual_memory_bytes ",
		"\nprocess_open_fds ",
		"\nprocess_max_fds ",
	};
	size_t i;

	(void)state;
	process_render(&b);
	assert_false(b.oom);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *p = strstr(b.s, names[i]);
		char *end;
		double v;

		assert_non_null(p);
		v = strtod(p + strlen(names[i]), &end);
		assert_true(*end == '\n');
		assert_true(v >= 0);
	}
	sb_fini(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_stat),	cmocka_unit_test(test_parse_odd_command),
		cmocka_unit_test(test_parse_malformed), cmocka_unit_test(test_btime),
		cmocka_unit_test(test_render_self),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
