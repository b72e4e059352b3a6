/*
 * Unit tests for daemon/proto/upgrade.c: which request heads ask for h2c, what
 * Upgrade and Connection lines replace theirs, and that the rewritten head
 * (as l7.c builds it) parses again without asking to switch.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proto/http1.h"
#include "ldmesh/common.h"
#include "proto/upgrade.h"

/* Feeds head to a fresh request stream; asserts it is one whole head. */
static void feed_head(struct http1_stream *s, const char *head)
{
	size_t consumed = 0;

	http1_init(s, HTTP1_REQUEST);
	assert_int_equal(http1_feed(s, head, strlen(head), &consumed), HTTP1_HEAD);
}

struct strip_case {
	const char *name;
	const char *headers; /* between the request line and the blank line */
	int want; /* upgrade_strip_h2c's return */
	const char *want_extra;
	int want_all_gone;
};

static const struct strip_case cases[] = {
	{"h2c alone",
	 "Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: "
	 "AAMAAABkAAQAAP__\r\n",
	 1, "", 1},
	{"h2c beside websocket",
	 "Upgrade: websocket, h2c\r\nConnection: keep-alive, Upgrade, HTTP2-Settings\r\n", 1,
	 "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n", 0},
	{"case and spaces", "upgrade:  H2C \r\nCONNECTION: upgrade ,http2-settings, close\r\n", 1,
	 "Connection: close\r\n", 1},
	{"two Upgrade lines", "Upgrade: foo\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n", 1,
	 "Upgrade: foo\r\nConnection: Upgrade\r\n", 0},
	{"websocket only", "Upgrade: websocket\r\nConnection: Upgrade\r\n", 0, NULL, 0},
	{"h2c as part of a token", "Upgrade: h2c-x, xh2c\r\nConnection: Upgrade\r\n", 0, NULL, 0},
	{"no upgrade", "Connection: keep-alive\r\n", 0, NULL, 0},
};

static void test_strip_table(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct strip_case *tc = &cases[i];
		char head[1024], extra[512] = "untouched";
		struct http1_stream s;
		int all_gone = -1, r;

		snprintf(head, sizeof(head), "GET /api/1 HTTP/1.1\r\nHost: b\r\n%s\r\n",
			 tc->headers);
		feed_head(&s, head);
		r = upgrade_strip_h2c(&s, extra, sizeof(extra), &all_gone);
		if (r != tc->want)
			fail_msg("case '%s': returned %d, want %d", tc->name, r, tc->want);
		if (tc->want == 1) {
			if (strcmp(extra, tc->want_extra) != 0 || all_gone != tc->want_all_gone)
				fail_msg("case '%s': extra '%s' all_gone %d, want '%s' %d",
					 tc->name, extra, all_gone, tc->want_extra,
					 tc->want_all_gone);
		} else {
			assert_string_equal(extra, "untouched");
		}
		http1_fini(&s);
	}
}

/* What l7.c sends on: parsed again, it no longer asks to switch, and
 * nothing else of the head changed. */
static void test_rewritten_head_no_longer_upgrades(void **state)
{
	static const char *const drop[] = {"x-forwarded-client-cert", "upgrade", "connection",
					   "http2-settings", NULL};
	const char *head = "GET /api/1 HTTP/1.1\r\nHost: b\r\nConnection: Upgrade, "
			   "HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n"
			   "Accept: */*\r\n\r\n";
	struct http1_stream s, again;
	char extra[256], out[1024];
	int all_gone, n;
	size_t consumed = 0;

	feed_head(&s, head);
	assert_true(s.head.upgrade);
	assert_int_equal(upgrade_strip_h2c(&s, extra, sizeof(extra), &all_gone), 1);
	n = http1_rewrite_head(&s, drop, extra[0] ? extra : NULL, out, sizeof(out));
	assert_true(n > 0);
	out[n] = '\0';
	assert_string_equal(out, "GET /api/1 HTTP/1.1\r\nHost: b\r\nAccept: */*\r\n\r\n");
	http1_init(&again, HTTP1_REQUEST);
	assert_int_equal(http1_feed(&again, out, (size_t)n, &consumed), HTTP1_HEAD);
	assert_false(again.head.upgrade);
	http1_fini(&again);
	http1_fini(&s);
}

static void test_too_small(void **state)
{
	struct http1_stream s;
	char extra[8];
	int all_gone;

	feed_head(&s, "GET / HTTP/1.1\r\nHost: b\r\nUpgrade: websocket, h2c\r\n"
		      "Connection: Upgrade\r\n\r\n");
	assert_int_equal(upgrade_strip_h2c(&s, extra, sizeof(extra), &all_gone), -ENOSPC);
	http1_fini(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strip_table),
		cmocka_unit_test(test_rewritten_head_no_longer_upgrades),
		cmocka_unit_test(test_too_small),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
