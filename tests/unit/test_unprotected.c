/*
 * Unit tests for daemon/proxy/unprotected.c: the /proc/net/tcp and tcp6 line
 * parser (the fallback when sock_diag is unavailable), on lines as the
 * kernel prints them, and that loopback addresses come out as loopback
 * (podaddr_is_loopback), which the scan skips.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy/podaddr.h"
#include "proxy/unprotected.h"

static const char header4[] = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when "
			      "retrnsmt   uid  timeout inode\n";
static const char header6[] =
	"  sl  local_address                         remote_address         "
	"               st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
	"inode\n";

static void test_ipv4_listener(void **state)
{
	struct unprotected_sock s;
	char ip[INET_ADDRSTRLEN];

	assert_int_equal(
		unprotected_parse_proc_line(
			"   0: 00000000:1F91 00000000:0000 0A 00000000:00000000 00:00000000 "
			"00000000     0        0 340 1 0000000037cda766 100 0 0 10 0\n",
			AF_INET, &s),
		1);
	assert_int_equal(s.addr.family, AF_INET);
	assert_int_equal(ntohs(s.addr.port), 8081);
	assert_true(s.ino == 340);
	inet_ntop(AF_INET, s.addr.addr, ip, sizeof(ip));
	assert_string_equal(ip, "0.0.0.0");
	assert_false(podaddr_is_loopback(&s.addr));

	/* 10.250.1.2:80, printed as the little-endian word 0x02 01 FA 0A */
	assert_int_equal(
		unprotected_parse_proc_line(
			"  12: 0201FA0A:0050 00000000:0000 0A 00000000:00000000 00:00000000 "
			"00000000  1000        0 98765 1 0000000000000000 100 0 0 10 0\n",
			AF_INET, &s),
		1);
	inet_ntop(AF_INET, s.addr.addr, ip, sizeof(ip));
	assert_string_equal(ip, "10.250.1.2");
	assert_int_equal(ntohs(s.addr.port), 80);
	assert_true(s.ino == 98765);

	assert_int_equal(
		unprotected_parse_proc_line(
			"   1: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000 "
			"00000000     0        0 20958 1 0000000000000000 100 0 0 10 0\n",
			AF_INET, &s),
		1);
	assert_true(podaddr_is_loopback(&s.addr));
}

static void test_ipv6_listener(void **state)
{
	struct unprotected_sock s;
	char ip[INET6_ADDRSTRLEN];

	assert_int_equal(
		unprotected_parse_proc_line(
			"   0: 00000000000000000000000000000000:1F91 "
			"00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 "
			"00000000     0        0 9782321 1 0000000000000000 100 0 0 10 0\n",
			AF_INET6, &s),
		1);
	assert_int_equal(s.addr.family, AF_INET6);
	assert_int_equal(ntohs(s.addr.port), 8081);
	assert_true(s.ino == 9782321);
	inet_ntop(AF_INET6, s.addr.addr, ip, sizeof(ip));
	assert_string_equal(ip, "::");
	assert_false(podaddr_is_loopback(&s.addr));

	/* ::1 */
	assert_int_equal(
		unprotected_parse_proc_line(
			"   1: 00000000000000000000000001000000:80A1 "
			"00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 "
			"00000000     0        0 9803944 1 000000007d810059 100 0 0 10 0\n",
			AF_INET6, &s),
		1);
	inet_ntop(AF_INET6, s.addr.addr, ip, sizeof(ip));
	assert_string_equal(ip, "::1");
	assert_true(podaddr_is_loopback(&s.addr));

	/* ::ffff:127.0.0.1, a v6 socket bound to a mapped loopback address */
	assert_int_equal(
		unprotected_parse_proc_line(
			"   0: 0000000000000000FFFF00000100007F:EDC9 "
			"00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 "
			"00000000     0        0 9803943 1 000000000453ab61 100 0 0 10 0\n",
			AF_INET6, &s),
		1);
	inet_ntop(AF_INET6, s.addr.addr, ip, sizeof(ip));
	assert_string_equal(ip, "::ffff:127.0.0.1");
	assert_true(podaddr_is_loopback(&s.addr));
}

static void test_not_listening(void **state)
{
	struct unprotected_sock s;

	assert_int_equal(unprotected_parse_proc_line(header4, AF_INET, &s), 0);
	assert_int_equal(unprotected_parse_proc_line(header6, AF_INET6, &s), 0);
	/* ESTABLISHED (01) and TIME_WAIT (06) */
	assert_int_equal(
		unprotected_parse_proc_line(
			"   3: 0201FA0A:0050 0101FA0A:D431 01 00000000:00000000 02:000AFC80 "
			"00000000     0        0 4242 2 0000000000000000 20 4 30 10 -1\n",
			AF_INET, &s),
		0);
	assert_int_equal(
		unprotected_parse_proc_line(
			"   4: 0201FA0A:0050 0101FA0A:D432 06 00000000:00000000 03:00001770 "
			"00000000     0        0 0 3 0000000000000000\n",
			AF_INET, &s),
		0);
}

static void test_malformed(void **state)
{
	struct unprotected_sock s;

	assert_int_equal(unprotected_parse_proc_line("", AF_INET, &s), -EINVAL);
	assert_int_equal(unprotected_parse_proc_line("garbage\n", AF_INET, &s), -EINVAL);
	/* an IPv6 address in the IPv4 file, and the other way round */
	assert_int_equal(
		unprotected_parse_proc_line(
			"   0: 00000000000000000000000000000000:1F91 "
			"00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 "
			"00000000     0        0 1 1 0000000000000000 100 0 0 10 0\n",
			AF_INET, &s),
		-EINVAL);
	assert_int_equal(
		unprotected_parse_proc_line(
			"   0: 00000000:1F91 00000000:0000 0A 00000000:00000000 00:00000000 "
			"00000000     0        0 340 1 0000000037cda766 100 0 0 10 0\n",
			AF_INET6, &s),
		-EINVAL);
	/* cut short before the inode */
	assert_int_equal(
		unprotected_parse_proc_line("   0: 00000000:1F91 00000000:0000 0A 00000000:"
					    "00000000 00:00000000 00000000     0",
					    AF_INET, &s),
		-EINVAL);
	/* a port past 65535 */
	assert_int_equal(
		unprotected_parse_proc_line(
			"   0: 00000000:11F91 00000000:0000 0A 00000000:00000000 00:00000000 "
			"00000000     0        0 340 1 0000000037cda766 100 0 0 10 0\n",
			AF_INET, &s),
		-EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4_listener),
		cmocka_unit_test(test_ipv6_listener),
		cmocka_unit_test(test_not_listening),
		cmocka_unit_test(test_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
