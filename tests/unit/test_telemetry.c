/*
 * Unit tests for daemon/telemetry/telemetry.c and render.c: Linkerd's
 * families added for issue 14 as Prometheus text (tcp_close_total{errno},
 * tcp_connection_duration_ms, route_*, inbound_{http,tcp}_authz_*), the
 * errno names and histogram buckets they use, the cardinality bound on the
 * new series, and `ldmeshctl stats` not counting route series twice.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "telemetry/telemetry.h"
#include "util/strbuf.h"

#define PAYMENTS "spiffe://cluster.local/ns/shop/sa/payments"

static struct ldm_addr v4(const char *ip, uint16_t port)
{
	struct ldm_addr a = {.family = AF_INET, .port = htons(port)};

	assert_int_equal(inet_pton(AF_INET, ip, a.addr), 1);
	return a;
}

static struct ldm_addr v6(const char *ip, uint16_t port)
{
	struct ldm_addr a = {.family = AF_INET6, .port = htons(port)};

	assert_int_equal(inet_pton(AF_INET6, ip, a.addr), 1);
	return a;
}

/* The rendered text of t; free() it. */
static char *render(const struct telemetry *t)
{
	struct strbuf b = {0};
	size_t len;
	char *s;

	tel_render(t, &b);
	assert_false(b.oom);
	s = sb_take(&b, &len);
	assert_non_null(s);
	return s;
}

/* Asserts text holds line (a whole line). */
static void has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	const char *p = text;

	while ((p = strstr(p, line))) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n') {
			return;
		}
		p += n;
	}
	fail_msg("missing line:\n%s\nin:\n%s", line, text);
}

static void test_errno_names(void **state)
{
	char buf[32];

	(void)state;
	assert_string_equal(tel_errno_name(ECONNREFUSED, buf, sizeof(buf)), "ECONNREFUSED");
	assert_string_equal(tel_errno_name(ECONNRESET, buf, sizeof(buf)), "ECONNRESET");
	assert_string_equal(tel_errno_name(ETIMEDOUT, buf, sizeof(buf)), "ETIMEDOUT");
	assert_string_equal(tel_errno_name(0, buf, sizeof(buf)), "");
	/* No name: the number, as Linkerd prints an unknown code. */
	assert_string_equal(tel_errno_name(4000, buf, sizeof(buf)), "4000");
}

static void test_buckets(void **state)
{
	(void)state;
	assert_int_equal(tel_bucket_us(0), 0);
	assert_int_equal(tel_bucket_us(1000), 0); /* le="1" holds 1 ms itself */
	assert_int_equal(tel_bucket_us(1001), 1);
	assert_int_equal(tel_bucket_us(10 * 1000), 5);
	assert_int_equal(tel_bucket_us(50000ull * 1000), LDM_LATENCY_NBOUNDS - 1);
	assert_int_equal(tel_bucket_us(50000ull * 1000 + 1), LDM_LATENCY_NBOUNDS); /* +Inf */
}

static void test_tcp_close_by_errno(void **state)
{
	struct telemetry t;
	struct ldm_addr dst = v4("10.0.0.2", 8080);
	struct tel_series *s;
	char *text;
	int i;

	(void)state;
	assert_int_equal(tel_init(&t, 100), 0);
	s = tel_tcp_series(&t, TEL_OUTBOUND, &dst, TEL_TLS_TRUE, PAYMENTS);
	assert_non_null(s);
	for (i = 0; i < 3; i++) {
		tel_tcp_open(s);
	}
	tel_tcp_close(s, 0, 0, 4); /* clean, 4 ms */
	tel_tcp_close(s, 1, ECONNREFUSED, 0); /* refused dial */
	tel_tcp_open(s);
	tel_tcp_close(s, 0, ECONNRESET, 70000); /* an errno is a failure */
	tel_tcp_close(s, 1, 0, 12); /* failed without an OS error */
	text = render(&t);

#define L                                                                                          \
	"{direction=\"outbound\",peer=\"dst\",target_addr=\"10.0.0.2:8080\",tls=\"true\","         \
	"server_id=\"" PAYMENTS "\""
	has_line(text, "tcp_close_total" L ",classification=\"success\",errno=\"\"} 1");
	has_line(text, "tcp_close_total" L ",classification=\"failure\",errno=\"ECONNREFUSED\"} 1");
	has_line(text, "tcp_close_total" L ",classification=\"failure\",errno=\"ECONNRESET\"} 1");
	has_line(text, "tcp_close_total" L ",classification=\"failure\",errno=\"\"} 1");
	has_line(text, "tcp_connection_duration_ms_bucket" L
		       ",classification=\"success\",errno=\"\",le=\"4\"} 1");
	has_line(text, "tcp_connection_duration_ms_bucket" L
		       ",classification=\"success\",errno=\"\",le=\"3\"} 0");
	has_line(text,
		 "tcp_connection_duration_ms_sum" L ",classification=\"success\",errno=\"\"} 4");
	has_line(text, "tcp_connection_duration_ms_count" L
		       ",classification=\"failure\",errno=\"ECONNREFUSED\"} 1");
	has_line(text, "tcp_connection_duration_ms_bucket" L
		       ",classification=\"failure\",errno=\"ECONNRESET\",le=\"50000\"} 0");
	has_line(text, "tcp_connection_duration_ms_bucket" L
		       ",classification=\"failure\",errno=\"ECONNRESET\",le=\"+Inf\"} 1");
	has_line(text, "tcp_open_total" L "} 4");
	has_line(text, "tcp_open_connections" L "} 0");
#undef L
	free(text);
	tel_fini(&t);
}

static void test_route_series(void **state)
{
	struct telemetry t;
	struct tel_series *r, *again;
	struct strbuf b = {0};
	char *text;

	(void)state;
	assert_int_equal(tel_init(&t, 100), 0);
	r = tel_route_series(&t, TEL_INBOUND, "orders:8080", "api-get");
	again = tel_route_series(&t, TEL_INBOUND, "orders:8080", "api-get");
	assert_ptr_equal(r, again);
	assert_ptr_not_equal(r, tel_route_series(&t, TEL_INBOUND, "orders:8080", "no-admin"));
	r->requests += 3;
	tel_response(r, 200, 1500);
	tel_response(r, 200, 2500);
	tel_response(r, 503, 100);
	text = render(&t);
#define L "{direction=\"inbound\",dst=\"orders:8080\",rt_route=\"api-get\""
	has_line(text, "route_request_total" L "} 3");
	has_line(text,
		 "route_response_total" L ",status_code=\"200\",classification=\"success\"} 2");
	has_line(text,
		 "route_response_total" L ",status_code=\"503\",classification=\"failure\"} 1");
	has_line(text, "route_response_latency_ms_bucket" L
		       ",status_code=\"200\",classification=\"success\",le=\"2\"} 1");
	has_line(text, "route_response_latency_ms_sum" L
		       ",status_code=\"200\",classification=\"success\"} 4.000");
#undef L
	/* Route series are the same requests again: not in `ldmeshctl stats`. */
	assert_null(strstr(text, "request_total{direction=\"inbound\",authority"));
	tel_stats(&t, &b, TEL_JSON, 0);
	assert_non_null(strstr(b.s, "\"rows\":[]"));
	sb_fini(&b);
	free(text);
	tel_fini(&t);
}

static void test_authz_labels(void **state)
{
	struct telemetry t;
	struct ldm_addr six = v6("fd00::2", 9000), four = v4("10.0.0.2", 8080);
	char *text;

	(void)state;
	assert_int_equal(tel_init(&t, 100), 0);
	tel_authz(&t, 1, &four, TEL_TLS_TRUE, PAYMENTS, "api-get", 1);
	tel_authz(&t, 1, &four, TEL_TLS_TRUE, PAYMENTS, "api-get", 1);
	tel_authz(&t, 1, &four, TEL_TLS_TRUE, PAYMENTS, "default-deny", 0);
	tel_authz(&t, 0, &six, TEL_TLS_NOT_PROVIDED, "", "no-allow-rule-matched", 0);
	text = render(&t);
	has_line(text,
		 "inbound_http_authz_allow_total{direction=\"inbound\",target_addr=\"10.0.0.2:"
		 "8080\","
		 "target_ip=\"10.0.0.2\",target_port=\"8080\",srv_group=\"\",srv_kind=\"port\","
		 "srv_name=\"8080\",srv_port=\"8080\",route_group=\"\",route_kind=\"policy\","
		 "route_name=\"api-get\",authz_group=\"\",authz_kind=\"policy\",authz_name=\"api-"
		 "get\","
		 "tls=\"true\",client_id=\"" PAYMENTS "\"} 2");
	has_line(
		text,
		"inbound_http_authz_deny_total{direction=\"inbound\",target_addr=\"10.0.0.2:8080\","
		"target_ip=\"10.0.0.2\",target_port=\"8080\",srv_group=\"\",srv_kind=\"port\","
		"srv_name=\"8080\",srv_port=\"8080\",route_group=\"\",route_kind=\"default\","
		"route_name=\"default-deny\",authz_group=\"\",authz_kind=\"default\","
		"authz_name=\"default-deny\",tls=\"true\",client_id=\"" PAYMENTS "\"} 1");
	/* TCP: no route labels; the IPv6 target_ip without brackets. */
	has_line(
		text,
		"inbound_tcp_authz_deny_total{direction=\"inbound\",target_addr=\"[fd00::2]:9000\","
		"target_ip=\"fd00::2\",target_port=\"9000\",srv_group=\"\",srv_kind=\"port\","
		"srv_name=\"9000\",srv_port=\"9000\",authz_group=\"\",authz_kind=\"default\","
		"authz_name=\"no-allow-rule-matched\",tls=\"no_identity\","
		"no_tls_reason=\"not_provided_by_remote\"} 1");
	/* A series shows only in the family it has counts for. */
	assert_null(strstr(text,
			   "inbound_http_authz_deny_total{direction=\"inbound\",target_addr="
			   "\"10.0.0.2:8080\",target_ip=\"10.0.0.2\",target_port=\"8080\","
			   "srv_group=\"\",srv_kind=\"port\",srv_name=\"8080\",srv_port=\"8080\","
			   "route_group=\"\",route_kind=\"policy\""));
	assert_null(strstr(text, "inbound_tcp_authz_allow_total{"));
	free(text);
	tel_fini(&t);
}

static void test_new_series_are_bounded(void **state)
{
	struct telemetry t;
	struct ldm_addr a = v4("10.0.0.2", 8080);
	char rule[32], *text;
	int i;

	(void)state;
	assert_int_equal(tel_init(&t, 2), 0);
	for (i = 0; i < 5; i++) {
		snprintf(rule, sizeof(rule), "rule-%d", i);
		tel_route_series(&t, TEL_INBOUND, "orders:8080", rule)->requests++;
		tel_authz(&t, 1, &a, TEL_TLS_TRUE, PAYMENTS, rule, 1);
	}
	assert_int_equal(t.n, 2);
	assert_int_equal(t.overflow_total, 8); /* 4 of each kind */
	text = render(&t);
	has_line(text, "route_request_total{direction=\"inbound\",dst=\"overflow\","
		       "rt_route=\"overflow\"} 4");
	assert_non_null(strstr(text, "authz_name=\"overflow\",tls=\"true\"} 4\n"));
	free(text);
	tel_fini(&t);
}

/* Two event loops' series rendered as one: the same label sets add up
 * (counters, closes, statuses), the others are kept, and each loop's
 * overflow series lands in the merged overflow series, uncounted. */
static void test_merge(void **state)
{
	struct telemetry l0, l1, m;
	struct ldm_addr a = v4("10.0.0.2", 8080), b = v6("fd00::2", 9090);
	struct tel_series *s;
	struct strbuf out = {0};
	char *text;
	int i;

	(void)state;
	assert_int_equal(tel_init(&l0, 3), 0);
	assert_int_equal(tel_init(&l1, 3), 0);
	for (i = 0; i < 2; i++) {
		struct telemetry *t = i ? &l1 : &l0;
		s = tel_tcp_series(t, TEL_INBOUND, &a, TEL_TLS_TRUE, PAYMENTS);
		tel_tcp_open(s);
		s->tcp_read += 100;
		tel_tcp_close(s, 0, 0, 5);
		s = tel_http_series(t, s, "orders");
		s->requests += 2;
		tel_response(s, 200, 1000);
		tel_response(s, i ? 503 : 200, 2000);
	}
	tel_tcp_open(tel_tcp_series(&l1, TEL_OUTBOUND, &b, TEL_TLS_NO_MESH, ""));
	/* l1 is full (3): a fourth label set goes to its overflow series */
	tel_route_series(&l1, TEL_INBOUND, "orders:8080", "r1")->requests++;
	assert_int_equal(l1.overflow_total, 1);

	assert_int_equal(tel_init(&m, 100), 0);
	assert_int_equal(tel_merge(&m, &l0), 0);
	assert_int_equal(tel_merge(&m, &l1), 0);
	assert_int_equal(m.n, 3); /* tcp in, http in, tcp out: overflow not counted */
	assert_int_equal(m.overflow_total, 1);
	text = render(&m);
	has_line(text, "tcp_open_total{direction=\"inbound\",peer=\"src\",target_addr=\"10.0.0.2:"
		       "8080\",tls=\"true\",client_id=\"" PAYMENTS "\"} 2");
	has_line(text, "tcp_read_bytes_total{direction=\"inbound\",peer=\"src\",target_addr=\"10."
		       "0.0.2:8080\",tls=\"true\",client_id=\"" PAYMENTS "\"} 200");
	has_line(text, "tcp_open_connections{direction=\"inbound\",peer=\"src\",target_addr=\"10."
		       "0.0.2:8080\",tls=\"true\",client_id=\"" PAYMENTS "\"} 0");
	assert_non_null(strstr(text, "request_total{direction=\"inbound\",authority=\"orders\""));
	assert_non_null(strstr(text, "status_code=\"200\",classification=\"success\"} 3\n"));
	assert_non_null(strstr(text, "status_code=\"503\",classification=\"failure\"} 1\n"));
	assert_non_null(strstr(text, "rt_route=\"overflow\"} 1\n"));
	free(text);
	/* `ldmeshctl stats` of the merge: one row with both loops' requests */
	tel_stats(&m, &out, TEL_JSON, 0);
	assert_false(out.oom);
	assert_non_null(strstr(out.s, "\"requests\":4"));
	sb_fini(&out);
	tel_fini(&m);
	tel_fini(&l0);
	tel_fini(&l1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errno_names),
		cmocka_unit_test(test_buckets),
		cmocka_unit_test(test_tcp_close_by_errno),
		cmocka_unit_test(test_route_series),
		cmocka_unit_test(test_authz_labels),
		cmocka_unit_test(test_new_series_are_bounded),
		cmocka_unit_test(test_merge),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
