/*
 * Unit tests for daemon/util/spiffe.c: table-driven checks of spiffe_id_parse,
 * spiffe_trust_domain_check and spiffe_td_check_n.  Every malformed input
 * must return -EINVAL with a non-empty message that names the problem;
 * every valid one must return 0 and give back the trust domain and path.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldmesh/common.h"
#include "util/spiffe.h"

/* ------------------------------------------------------------------ */
/* spiffe_id_parse                                                     */

struct id_case {
	const char *name;
	const char *id;
	int rc; /* 0 or -EINVAL */
	const char *td; /* expected trust domain when rc == 0 */
	const char *path; /* expected path when rc == 0 */
	const char *want; /* substring of the message when rc != 0 */
};

static const struct id_case id_cases[] = {
	/* Valid. */
	{"workload id", "spiffe://cluster.local/ns/default/sa/web", 0, "cluster.local",
	 "/ns/default/sa/web", NULL},
	{"one-letter td and path", "spiffe://a/b", 0, "a", "/b", NULL},
	{"all td characters", "spiffe://a-b_c.9z/x", 0, "a-b_c.9z", "/x", NULL},
	{"uppercase path is fine", "spiffe://td/Ns/Default/SA/Web", 0, "td", "/Ns/Default/SA/Web",
	 NULL},
	{"all path characters", "spiffe://td/aZ09._-", 0, "td", "/aZ09._-", NULL},
	{"dot prefix segment", "spiffe://td/.hidden", 0, "td", "/.hidden", NULL},
	{"three dots segment", "spiffe://td/.../x", 0, "td", "/.../x", NULL},
	{"dotdot prefix segment", "spiffe://td/..x/y..", 0, "td", "/..x/y..", NULL},
	{"numeric td", "spiffe://10.0.0.1/x", 0, "10.0.0.1", "/x", NULL},

	/* Scheme. */
	{"empty", "", -EINVAL, NULL, NULL, "empty"},
	{"no scheme", "cluster.local/ns/default", -EINVAL, NULL, NULL, "spiffe://"},
	{"http scheme", "https://cluster.local/x", -EINVAL, NULL, NULL, "spiffe://"},
	{"single slash", "spiffe:/cluster.local/x", -EINVAL, NULL, NULL, "spiffe://"},
	{"scheme only without colon", "spiffe", -EINVAL, NULL, NULL, "spiffe://"},
	{"uppercase scheme", "SPIFFE://cluster.local/x", -EINVAL, NULL, NULL, "lowercase"},
	{"mixed-case scheme", "Spiffe://cluster.local/x", -EINVAL, NULL, NULL, "lowercase"},
	{"leading space", " spiffe://cluster.local/x", -EINVAL, NULL, NULL, "spiffe://"},

	/* Authority. */
	{"scheme only", "spiffe://", -EINVAL, NULL, NULL, "trust domain is empty"},
	{"empty trust domain", "spiffe:///x", -EINVAL, NULL, NULL, "trust domain is empty"},
	{"uppercase trust domain", "spiffe://Cluster.local/x", -EINVAL, NULL, NULL, "lowercase"},
	{"port", "spiffe://cluster.local:8443/x", -EINVAL, NULL, NULL, "port"},
	{"empty port", "spiffe://cluster.local:/x", -EINVAL, NULL, NULL, "port"},
	{"userinfo", "spiffe://user@cluster.local/x", -EINVAL, NULL, NULL, "userinfo"},
	{"userinfo with password", "spiffe://u:p@cluster.local/x", -EINVAL, NULL, NULL, "userinfo"},
	{"bad td char", "spiffe://clu$ter/x", -EINVAL, NULL, NULL, "'$'"},
	{"td percent-encoded", "spiffe://clu%41ster/x", -EINVAL, NULL, NULL, "'%'"},
	{"td with space", "spiffe://clu ster/x", -EINVAL, NULL, NULL, "a space"},
	{"td with utf-8", "spiffe://caf\xc3\xa9/x", -EINVAL, NULL, NULL, "0xc3"},
	{"ipv6 literal td", "spiffe://[::1]/x", -EINVAL, NULL, NULL, "':'"},
	{"bracket in td", "spiffe://[td]/x", -EINVAL, NULL, NULL, "'['"},

	/* Query and fragment, in the authority and in the path. */
	{"query after td", "spiffe://cluster.local?x=1", -EINVAL, NULL, NULL, "query"},
	{"query in path", "spiffe://cluster.local/x?y=1", -EINVAL, NULL, NULL, "query"},
	{"fragment after td", "spiffe://cluster.local#f", -EINVAL, NULL, NULL, "fragment"},
	{"fragment in path", "spiffe://cluster.local/x#f", -EINVAL, NULL, NULL, "fragment"},

	/* Path. */
	{"no path", "spiffe://cluster.local", -EINVAL, NULL, NULL, "no path"},
	{"root path", "spiffe://cluster.local/", -EINVAL, NULL, NULL, "end with '/'"},
	{"trailing slash", "spiffe://cluster.local/ns/x/", -EINVAL, NULL, NULL, "end with '/'"},
	{"empty first segment", "spiffe://cluster.local//x", -EINVAL, NULL, NULL, "empty segment"},
	{"empty middle segment", "spiffe://cluster.local/a//b", -EINVAL, NULL, NULL,
	 "empty segment"},
	{"dot segment", "spiffe://cluster.local/./x", -EINVAL, NULL, NULL, "'.'"},
	{"dot segment last", "spiffe://cluster.local/x/.", -EINVAL, NULL, NULL, "'.'"},
	{"dotdot segment", "spiffe://cluster.local/a/../b", -EINVAL, NULL, NULL, "'..'"},
	{"dotdot segment last", "spiffe://cluster.local/a/..", -EINVAL, NULL, NULL, "'..'"},
	{"percent-encoding", "spiffe://cluster.local/a%2Fb", -EINVAL, NULL, NULL,
	 "percent-encoded"},
	{"space in path", "spiffe://cluster.local/a b", -EINVAL, NULL, NULL, "a space"},
	{"star in path", "spiffe://cluster.local/ns/*", -EINVAL, NULL, NULL, "'*'"},
	{"colon in path", "spiffe://cluster.local/a:b", -EINVAL, NULL, NULL, "':'"},
	{"at in path", "spiffe://cluster.local/a@b", -EINVAL, NULL, NULL, "'@'"},
	{"tab in path", "spiffe://cluster.local/a\tb", -EINVAL, NULL, NULL, "0x09"},
	{"newline in path", "spiffe://cluster.local/a\n", -EINVAL, NULL, NULL, "0x0a"},
	{"DEL in path", "spiffe://cluster.local/a\x7f", -EINVAL, NULL, NULL, "0x7f"},
	{"utf-8 in path", "spiffe://cluster.local/caf\xc3\xa9", -EINVAL, NULL, NULL, "0xc3"},
	{"backslash in path", "spiffe://cluster.local/a\\b", -EINVAL, NULL, NULL, "'\\'"},
};

static void test_id_table(void **state)
{
	size_t i, fails = 0;

	for (i = 0; i < ARRAY_SIZE(id_cases); i++) {
		const struct id_case *tc = &id_cases[i];
		struct spiffe_id out;
		char err[256];
		int rc;

		memset(&out, 0x5a, sizeof(out));
		memset(err, 0, sizeof(err));
		rc = spiffe_id_parse(tc->id, &out, err, sizeof(err));
		if (rc != tc->rc) {
			print_error("case '%s' (%s): rc %d, want %d (err: %s)\n", tc->name, tc->id,
				    rc, tc->rc, err);
			fails++;
			continue;
		}
		if (rc == 0) {
			if (strcmp(out.trust_domain, tc->td) || strcmp(out.path, tc->path)) {
				print_error("case '%s': got td '%s' path '%s', want '%s' '%s'\n",
					    tc->name, out.trust_domain, out.path, tc->td, tc->path);
				fails++;
			}
			/* Validation only, no output. */
			if (spiffe_id_parse(tc->id, NULL, NULL, 0) != 0) {
				print_error("case '%s': fails with out == NULL\n", tc->name);
				fails++;
			}
			continue;
		}
		if (!err[0] || !strstr(err, tc->want)) {
			print_error("case '%s' (%s): message '%s' does not mention '%s'\n",
				    tc->name, tc->id, err, tc->want);
			fails++;
		}
		/* No message buffer: still refused, no crash. */
		if (spiffe_id_parse(tc->id, &out, NULL, 0) != tc->rc) {
			print_error("case '%s': differs with err == NULL\n", tc->name);
			fails++;
		}
	}
	print_message("%zu spiffe_id_parse cases\n", ARRAY_SIZE(id_cases));
	assert_int_equal(fails, 0);
}

/* Builds "spiffe://" + td + path with the given lengths, all 'a'/'b'. */
static char *make_id(size_t td_len, size_t path_len)
{
	size_t n = SPIFFE_SCHEME_LEN + td_len + path_len;
	char *s = malloc(n + 1);

	assert_non_null(s);
	memcpy(s, SPIFFE_SCHEME, SPIFFE_SCHEME_LEN);
	memset(s + SPIFFE_SCHEME_LEN, 'a', td_len);
	if (path_len) {
		s[SPIFFE_SCHEME_LEN + td_len] = '/';
		memset(s + SPIFFE_SCHEME_LEN + td_len + 1, 'b', path_len - 1);
	}
	s[n] = '\0';
	return s;
}

static void test_id_lengths(void **state)
{
	struct spiffe_id *out = malloc(sizeof(*out));
	char err[256];
	char *id;

	assert_non_null(out);

	/* Exactly SPIFFE_ID_MAX bytes: accepted, path copied whole. */
	id = make_id(10, SPIFFE_ID_MAX - SPIFFE_SCHEME_LEN - 10);
	assert_int_equal(strlen(id), SPIFFE_ID_MAX);
	err[0] = '\0';
	assert_int_equal(spiffe_id_parse(id, out, err, sizeof(err)), 0);
	assert_int_equal(strlen(out->path), SPIFFE_ID_MAX - SPIFFE_SCHEME_LEN - 10);
	assert_string_equal(out->trust_domain, "aaaaaaaaaa");
	free(id);

	/* One byte over. */
	id = make_id(10, SPIFFE_ID_MAX - SPIFFE_SCHEME_LEN - 10 + 1);
	err[0] = '\0';
	assert_int_equal(spiffe_id_parse(id, out, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "2049 bytes"));
	assert_non_null(strstr(err, "2048"));
	free(id);

	/* Far over: still a message, no overflow. */
	id = make_id(10, 100000);
	err[0] = '\0';
	assert_int_equal(spiffe_id_parse(id, out, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "limit is 2048"));
	free(id);

	/* Trust domain of exactly SPIFFE_TD_MAX bytes. */
	id = make_id(SPIFFE_TD_MAX, 2);
	err[0] = '\0';
	assert_int_equal(spiffe_id_parse(id, out, err, sizeof(err)), 0);
	assert_int_equal(strlen(out->trust_domain), SPIFFE_TD_MAX);
	assert_string_equal(out->path, "/b");
	free(id);

	/* One byte over. */
	id = make_id(SPIFFE_TD_MAX + 1, 2);
	err[0] = '\0';
	assert_int_equal(spiffe_id_parse(id, out, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "trust domain is 256 bytes"));
	assert_non_null(strstr(err, "255"));
	free(id);

	/* An over-long trust domain with no path at all. */
	id = make_id(SPIFFE_TD_MAX + 1, 0);
	err[0] = '\0';
	assert_int_equal(spiffe_id_parse(id, out, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "255"));
	free(id);

	free(out);
}

static void test_id_nul(void **state)
{
	/* A C string ends at its NUL: what follows is never looked at, so
	 * "x\0/../y" is the valid ID spiffe://td/x. */
	static const char with_nul[] = "spiffe://td/x\0/../y";
	struct spiffe_id out;
	char err[128] = "";

	assert_int_equal(spiffe_id_parse(with_nul, &out, err, sizeof(err)), 0);
	assert_string_equal(out.trust_domain, "td");
	assert_string_equal(out.path, "/x");

	/* NUL right after the scheme: an empty trust domain. */
	assert_int_equal(spiffe_id_parse("spiffe://\0td/x", &out, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "trust domain is empty"));

	/* NUL right after the trust domain: no path. */
	assert_int_equal(spiffe_id_parse("spiffe://td\0/x", &out, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no path"));
}

static void test_id_small_err_buffer(void **state)
{
	char err[8];

	memset(err, 'Z', sizeof(err));
	assert_int_equal(spiffe_id_parse("spiffe://td/a/../b", NULL, err, sizeof(err)), -EINVAL);
	/* Truncated, but terminated inside the buffer. */
	assert_non_null(memchr(err, '\0', sizeof(err)));
	assert_int_equal(strlen(err), sizeof(err) - 1);

	/* len == 0 with a non-NULL buffer: nothing written. */
	err[0] = 'Q';
	assert_int_equal(spiffe_id_parse("", NULL, err, 0), -EINVAL);
	assert_int_equal(err[0], 'Q');
}

static void test_id_message_names_details(void **state)
{
	char err[256];

	/* The no-path message shows the trust domain in the example. */
	assert_int_equal(spiffe_id_parse("spiffe://prod.example", NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "spiffe://prod.example/ns/"));
	/* The offending segment is quoted. */
	assert_int_equal(spiffe_id_parse("spiffe://td/ns/../sa", NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "segment '..'"));
	/* The offending uppercase letter is quoted. */
	assert_int_equal(spiffe_id_parse("spiffe://clusTer/x", NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "'T'"));
}

/* ------------------------------------------------------------------ */
/* spiffe_trust_domain_check / spiffe_td_check_n                       */

struct td_case {
	const char *name;
	const char *td;
	size_t n; /* (size_t)-1: NUL-terminated, use the _check form */
	int rc;
	const char *want; /* substring of the message when rc != 0 */
};

#define Z ((size_t)-1)

static const struct td_case td_cases[] = {
	{"plain", "cluster.local", Z, 0, NULL},
	{"one letter", "a", Z, 0, NULL},
	{"digits", "123", Z, 0, NULL},
	{"all allowed", "a-b_c.d-0", Z, 0, NULL},
	{"leading dot", ".local", Z, 0, NULL}, /* only the alphabet is checked */
	{"empty", "", Z, -EINVAL, "empty"},
	{"spiffe uri", "spiffe://cluster.local", Z, -EINVAL, "without the spiffe:// prefix"},
	{"spiffe uri with path", "spiffe://cluster.local/ns/x", Z, -EINVAL, "spiffe:// prefix"},
	{"uppercase", "Cluster.local", Z, -EINVAL, "lowercase"},
	{"uppercase inside", "cluster.LOCAL", Z, -EINVAL, "'L'"},
	{"uppercase scheme is not a prefix", "SPIFFE://x", Z, -EINVAL, "lowercase"},
	{"port", "cluster.local:443", Z, -EINVAL, "':'"},
	{"slash", "cluster.local/", Z, -EINVAL, "'/'"},
	{"at", "u@cluster.local", Z, -EINVAL, "'@'"},
	{"space", "cluster local", Z, -EINVAL, "a space"},
	{"tab", "cluster\tlocal", Z, -EINVAL, "0x09"},
	{"percent", "clu%41ster", Z, -EINVAL, "'%'"},
	{"utf-8", "caf\xc3\xa9", Z, -EINVAL, "0xc3"},
	{"star", "*.local", Z, -EINVAL, "'*'"},
	/* Counted forms. */
	{"n shorter than string", "cluster.local!!", 13, 0, NULL},
	{"n zero", "cluster.local", 0, -EINVAL, "empty"},
	{"n covers a NUL", "clu\0ster", 8, -EINVAL, "0x00"},
	{"n covers the terminator", "cluster", 8, -EINVAL, "0x00"},
	{"counted uppercase", "abC", 3, -EINVAL, "lowercase"},
	/* The counted form does not look for the scheme: it sees ':'. */
	{"counted spiffe uri", "spiffe://td", 11, -EINVAL, "':'"},
};

static void test_td_table(void **state)
{
	size_t i, fails = 0;

	for (i = 0; i < ARRAY_SIZE(td_cases); i++) {
		const struct td_case *tc = &td_cases[i];
		char err[256] = "";
		int rc;

		if (tc->n == Z)
			rc = spiffe_trust_domain_check(tc->td, err, sizeof(err));
		else
			rc = spiffe_td_check_n(tc->td, tc->n, err, sizeof(err));
		if (rc != tc->rc) {
			print_error("td case '%s': rc %d, want %d (err: %s)\n", tc->name, rc,
				    tc->rc, err);
			fails++;
			continue;
		}
		if (rc != 0 && (!err[0] || !strstr(err, tc->want))) {
			print_error("td case '%s': message '%s' does not mention '%s'\n", tc->name,
				    err, tc->want);
			fails++;
		}
		if (tc->n == Z && spiffe_trust_domain_check(tc->td, NULL, 0) != tc->rc) {
			print_error("td case '%s': differs with err == NULL\n", tc->name);
			fails++;
		}
		/* The NUL-terminated check and the counted one agree (apart
		 * from the spiffe:// hint, which only the former gives). */
		if (tc->n == Z && strncmp(tc->td, "spiffe://", 9) &&
		    spiffe_td_check_n(tc->td, strlen(tc->td), NULL, 0) != tc->rc) {
			print_error("td case '%s': spiffe_td_check_n disagrees\n", tc->name);
			fails++;
		}
	}
	print_message("%zu trust domain cases\n", ARRAY_SIZE(td_cases));
	assert_int_equal(fails, 0);
}

static void test_td_lengths(void **state)
{
	char td[SPIFFE_TD_MAX + 2];
	char err[256];

	memset(td, 'x', sizeof(td));
	td[SPIFFE_TD_MAX] = '\0';
	assert_int_equal(spiffe_trust_domain_check(td, err, sizeof(err)), 0);

	td[SPIFFE_TD_MAX] = 'x';
	td[SPIFFE_TD_MAX + 1] = '\0';
	err[0] = '\0';
	assert_int_equal(spiffe_trust_domain_check(td, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "256 bytes"));
	assert_non_null(strstr(err, "limit is 255"));

	/* Counted, not terminated: the length check comes first. */
	err[0] = '\0';
	assert_int_equal(spiffe_td_check_n(td, SPIFFE_TD_MAX + 1, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "256 bytes"));
	assert_int_equal(spiffe_td_check_n(td, SPIFFE_TD_MAX, err, sizeof(err)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_id_table),
		cmocka_unit_test(test_id_lengths),
		cmocka_unit_test(test_id_nul),
		cmocka_unit_test(test_id_small_err_buffer),
		cmocka_unit_test(test_id_message_names_details),
		cmocka_unit_test(test_td_table),
		cmocka_unit_test(test_td_lengths),
	};

	return cmocka_run_group_tests_name("spiffe", tests, NULL, NULL);
}
