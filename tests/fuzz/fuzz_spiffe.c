/*
 * libFuzzer target for the SPIFFE ID parser (daemon/util/spiffe.c): the URI SAN
 * of every peer certificate, IDs in the config and on the CLI.
 *
 * Input: byte 0 picks an error-buffer size, the rest is the ID (up to the
 * first NUL, as a C string would be) and, whole, a trust domain of exactly
 * that many bytes without a terminator for spiffe_td_check_n.
 *
 * Checks, beyond "no crash, no sanitizer report":
 *  - spiffe_id_parse agrees with a reference parser written from the
 *    SPIFFE spec and spiffe.h's rules (scheme, authority without userinfo
 *    or port, trust domain charset and length, non-empty path of non-empty
 *    segments, no "." or "..", [A-Za-z0-9._-], at most 2048 bytes);
 *  - round trip: an accepted ID is exactly "spiffe://" + trust_domain +
 *    path, and parsing that again gives the same fields;
 *  - the trust domain it returns passes spiffe_trust_domain_check;
 *  - a refusal comes with a one-line message; the error buffer's size
 *    (none, 1 byte, any) and a NULL out never change the verdict, and the
 *    message never runs past the buffer;
 *  - spiffe_td_check_n reads exactly n bytes (a heap copy without a NUL)
 *    and agrees with spiffe_trust_domain_check on the same name.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Idaemon \
 *     tests/fuzz/fuzz_spiffe.c daemon/util/spiffe.c -o fuzz_spiffe
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/spiffe.h"

#include "fuzz_check.h"

#define MAX_INPUT 4096

static int ref_td(const char *td, size_t n)
{
	size_t i;

	if (n == 0 || n > SPIFFE_TD_MAX) {
		return 0;
	}
	for (i = 0; i < n; i++) {
		if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789.-_", td[i]) || !td[i]) {
			return 0;
		}
	}
	return 1;
}

static int ref_id(const char *id)
{
	const char *p, *seg;
	size_t n = strlen(id);

	if (n == 0 || n > SPIFFE_ID_MAX || strncmp(id, "spiffe://", 9) != 0) {
		return 0;
	}
	p = strchr(id + 9, '/');
	if (!p || !ref_td(id + 9, (size_t)(p - (id + 9)))) {
		return 0; /* no path, or '?', '#', '@', ':' in the authority */
	}
	seg = p + 1;
	for (;;) {
		size_t len = strcspn(seg, "/"), i;

		if (len == 0 || (len == 1 && seg[0] == '.') ||
		    (len == 2 && seg[0] == '.' && seg[1] == '.')) {
			return 0;
		}
		for (i = 0; i < len; i++) {
			if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
				    ".-_",
				    seg[i])) {
				return 0;
			}
		}
		if (!seg[len]) {
			return 1;
		}
		seg += len + 1;
	}
}

static void check_msg(const char *err, size_t cap)
{
	CHECK(memchr(err, 0, cap) != NULL);
	CHECK(err[0] && !strchr(err, '\n'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct spiffe_id out, again;
	static char rebuilt[SPIFFE_ID_MAX + 64];
	char err[256], *id, *td, *small;
	size_t n, errcap;
	int r, r2;

	if (size < 1 || size > MAX_INPUT) {
		return 0;
	}
	errcap = (size_t)data[0] % sizeof(err) + 1;
	n = size - 1;
	id = malloc(n + 1);
	CHECK(id != NULL);
	memcpy(id, data + 1, n);
	id[n] = '\0';

	small = malloc(errcap);
	CHECK(small != NULL);
	memset(err, 0, sizeof(err));
	r = spiffe_id_parse(id, &out, err, sizeof(err));
	CHECK(r == 0 || r == -EINVAL);
	CHECK((r == 0) == ref_id(id));
	CHECK(spiffe_id_parse(id, NULL, NULL, 0) == r);
	CHECK(spiffe_id_parse(id, NULL, small, errcap) == r);
	if (r < 0) {
		check_msg(err, sizeof(err));
		CHECK(memchr(small, 0, errcap) != NULL);
		CHECK(strncmp(small, err, errcap - 1) == 0);
	} else {
		CHECK(out.path[0] == '/' && out.path[1] != '\0');
		CHECK(spiffe_trust_domain_check(out.trust_domain, NULL, 0) == 0);
		snprintf(rebuilt, sizeof(rebuilt), "spiffe://%s%s", out.trust_domain, out.path);
		CHECK(strcmp(rebuilt, id) == 0);
		CHECK(spiffe_id_parse(rebuilt, &again, NULL, 0) == 0);
		CHECK(strcmp(again.trust_domain, out.trust_domain) == 0 &&
		      strcmp(again.path, out.path) == 0);
	}

	/* The whole input as a trust domain, without a terminator. */
	td = malloc(n ? n : 1);
	CHECK(td != NULL);
	memcpy(td, data + 1, n);
	r2 = spiffe_td_check_n(td, n, err, sizeof(err));
	CHECK(r2 == 0 || r2 == -EINVAL);
	CHECK((r2 == 0) == ref_td(td, n));
	if (r2 < 0) {
		check_msg(err, sizeof(err));
	}
	if (!memchr(id, 0, n) && strncmp(id, "spiffe://", 9) != 0) {
		CHECK(spiffe_trust_domain_check(id, NULL, 0) == r2);
	}
	free(td);
	free(small);
	free(id);
	return 0;
}
