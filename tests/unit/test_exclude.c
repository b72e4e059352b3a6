/*
 * Unit tests for shim/exclude.c, which the shim and ldmesh-run share:
 * what is left alone (loopback, the unspecified address, excluded ports
 * and CIDRs), how bad entries are reported, and for ldmesh/addr.h the
 * sockaddr an app is shown (IPv4 as ::ffff:a.b.c.d to an AF_INET6 socket).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "exclude.h"
#include "ldmesh/addr.h"

static struct ldm_addr addr(const char *ip, uint16_t port)
{
	struct ldm_addr a;

	memset(&a, 0, sizeof(a));
	a.port = htons(port);
	if (inet_pton(AF_INET, ip, a.addr) == 1) {
		a.family = AF_INET;
	} else {
		assert_int_equal(inet_pton(AF_INET6, ip, a.addr), 1);
		a.family = AF_INET6;
	}
	return a;
}

static int bypass(const struct exclusions *ex, const char *ip, uint16_t port)
{
	struct ldm_addr a = addr(ip, port);

	return excl_bypass(ex, &a);
}

static void test_loopback_and_unspecified_always_bypass(void **state)
{
	struct exclusions ex = {0};

	assert_true(bypass(&ex, "127.0.0.1", 80));
	assert_true(bypass(&ex, "127.255.0.9", 80));
	assert_true(bypass(&ex, "::1", 80));
	assert_true(bypass(&ex, "::ffff:127.0.0.1", 80));
	assert_true(bypass(&ex, "0.0.0.0", 80));
	assert_true(bypass(&ex, "::", 80));
	assert_false(bypass(&ex, "10.250.0.2", 80));
	assert_false(bypass(&ex, "::ffff:10.250.0.2", 80));
	assert_false(bypass(&ex, "fd00::2", 80));
}

static void test_ports_and_cidrs(void **state)
{
	struct exclusions ex = {0};
	char bad[64];

	assert_int_equal(excl_parse_ports(&ex, "22,8000-8100", bad, sizeof(bad)), 0);
	assert_int_equal(excl_parse_cidrs(&ex, "169.254.0.0/16,fd00:1::/32", bad, sizeof(bad)), 0);
	assert_true(bypass(&ex, "10.250.0.2", 22));
	assert_true(bypass(&ex, "10.250.0.2", 8000));
	assert_true(bypass(&ex, "10.250.0.2", 8100));
	assert_false(bypass(&ex, "10.250.0.2", 8101));
	assert_true(bypass(&ex, "169.254.169.254", 80));
	assert_true(bypass(&ex, "::ffff:169.254.1.1", 80)); /* v4-mapped counts as IPv4 */
	assert_true(bypass(&ex, "fd00:1:ffff::1", 443));
	assert_false(bypass(&ex, "fd00:2::1", 443));
}

static void test_bad_entries_are_named_and_the_rest_kept(void **state)
{
	struct exclusions ex = {0};
	char bad[64];

	assert_int_equal(excl_parse_ports(&ex, "0,443,9-3,70000", bad, sizeof(bad)), -EINVAL);
	assert_string_equal(bad, "0");
	assert_int_equal(ex.n_ports, 1);
	assert_true(bypass(&ex, "10.0.0.1", 443));
	assert_int_equal(excl_parse_ports(&ex, "x", bad, sizeof(bad)), -EINVAL);
	assert_string_equal(bad, "x");
	assert_int_equal(
		excl_parse_cidrs(&ex, "10.0.0.0/33,nonsense,192.0.2.0/24", bad, sizeof(bad)),
		-EINVAL);
	assert_string_equal(bad, "10.0.0.0/33");
	assert_int_equal(ex.n_cidrs, 1);
	assert_true(bypass(&ex, "192.0.2.7", 1));
	assert_int_equal(excl_parse_ports(&ex, NULL, bad, sizeof(bad)), 0);
}

static void test_listener_on_every_address_counts_only_its_port(void **state)
{
	struct exclusions ex = {0};
	struct ldm_addr any4 = addr("0.0.0.0", 8080), any6 = addr("::", 8080);
	struct ldm_addr lo = addr("127.0.0.1", 8080), pod = addr("10.250.0.2", 8080);
	char bad[64];

	assert_false(excl_bypass_listener(&ex, &any4));
	assert_false(excl_bypass_listener(&ex, &any6));
	assert_true(excl_bypass_listener(&ex, &lo));
	assert_false(excl_bypass_listener(&ex, &pod));
	assert_int_equal(excl_parse_ports(&ex, "8080", bad, sizeof(bad)), 0);
	assert_true(excl_bypass_listener(&ex, &any4));
	assert_true(excl_bypass_listener(&ex, &any6));
}

static void test_sockaddr_shown_to_the_app(void **state)
{
	struct ldm_addr v4 = addr("10.250.0.2", 8080), v6 = addr("fd00::2", 443);
	struct sockaddr_storage ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	char buf[INET6_ADDRSTRLEN];

	assert_int_equal(ldm_addr_to_sockaddr(&v4, AF_INET6, &ss), sizeof(*s6));
	assert_int_equal(s6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(s6->sin6_port), 8080);
	assert_string_equal(inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof(buf)),
			    "::ffff:10.250.0.2");
	assert_int_equal(ldm_addr_to_sockaddr(&v4, AF_INET, &ss), sizeof(*s4));
	assert_string_equal(inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof(buf)), "10.250.0.2");
	assert_int_equal(ldm_addr_to_sockaddr(&v6, AF_INET6, &ss), sizeof(*s6));
	assert_string_equal(inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof(buf)), "fd00::2");
	/* A mapped address shown to an AF_INET socket: its IPv4 part. */
	v6 = addr("::ffff:192.0.2.1", 80);
	assert_int_equal(ldm_addr_to_sockaddr(&v6, AF_INET, &ss), sizeof(*s4));
	assert_string_equal(inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof(buf)), "192.0.2.1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loopback_and_unspecified_always_bypass),
		cmocka_unit_test(test_ports_and_cidrs),
		cmocka_unit_test(test_bad_entries_are_named_and_the_rest_kept),
		cmocka_unit_test(test_listener_on_every_address_counts_only_its_port),
		cmocka_unit_test(test_sockaddr_shown_to_the_app),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
