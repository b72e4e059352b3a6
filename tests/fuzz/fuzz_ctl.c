/*
 * libFuzzer target for the control-socket request parser (daemon/control/ctl_parse.c):
 * framing of "LDMCTL1 text|json VERB [ARGS]\n" as it arrives on ctl.sock,
 * the split into words and the drain timeout argument.
 *
 * Input: byte 0 picks the recv sizes, the rest is what the client writes.
 * The target receives it the way ctl_recv_done in daemon/control/ctl.c does (into
 * a LDM_CTL_MAX_REQUEST buffer, framing after every piece).
 *
 * Checks, beyond "no crash, no sanitizer report":
 *  - ctl_frame reads only the bytes received (a heap copy of exactly that
 *    size) and agrees with the rule: a line ends at the first '\n', a NUL
 *    before it is refused, LDM_CTL_MAX_REQUEST bytes without one is too
 *    long, anything else waits for more;
 *  - the verdict is the same whatever the recv sizes;
 *  - the words agree with a reference splitter (spaces and tabs, at most
 *    CTL_MAX_WORDS kept), are non-empty, in order, inside the line and
 *    free of separators; a request is accepted exactly when it starts with
 *    LDMCTL1, a format and a verb, and json is set for "json" only;
 *  - round trip: the words joined by single spaces parse to the same words;
 *  - drain timeouts are positive, never overflow, and match atoi's reading
 *    of the argument capped at CTL_DRAIN_MAX_S.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Idaemon \
 *     tests/fuzz/fuzz_ctl.c daemon/control/ctl_parse.c -o fuzz_ctl
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/ctl_parse.h"
#include "ldmesh/ctl.h"

#include "fuzz_check.h"

#define MAX LDM_CTL_MAX_REQUEST
#define DEFAULT_MS 30000

static enum ctl_frame frame(const char *buf, size_t len, size_t *line_len)
{
	char *copy = malloc(len ? len : 1);
	enum ctl_frame f;

	CHECK(copy != NULL);
	memcpy(copy, buf, len);
	f = ctl_frame(copy, len, MAX, line_len);
	free(copy);
	return f;
}

static enum ctl_frame ref_frame(const char *buf, size_t len, size_t *line_len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (buf[i] == '\n') {
			*line_len = i;
			return memchr(buf, 0, i) ? CTL_FRAME_NUL : CTL_FRAME_LINE;
		}
	}
	return len >= MAX ? CTL_FRAME_TOO_LONG : CTL_FRAME_MORE;
}

/* Splits without strtok: returns the number of words, at most max. */
static int ref_split(const char *s, char words[][MAX + 1], int max)
{
	int n = 0;

	while (*s && n < max) {
		size_t len;

		s += strspn(s, " \t");
		len = strcspn(s, " \t");
		if (!len) {
			break;
		}
		memcpy(words[n], s, len);
		words[n][len] = '\0';
		n++;
		s += len;
	}
	return n;
}

static int ref_drain_ms(const char *arg)
{
	long long secs = 0;
	const char *p = arg;
	int neg = 0;

	if (!arg) {
		return DEFAULT_MS;
	}
	while (*p == ' ' || (*p >= '\t' && *p <= '\r')) {
		p++;
	}
	if (*p == '+' || *p == '-') {
		neg = *p++ == '-';
	}
	for (; *p >= '0' && *p <= '9'; p++) {
		if (secs <= CTL_DRAIN_MAX_S) {
			secs = secs * 10 + (*p - '0');
		}
	}
	if (neg || secs <= 0) {
		return DEFAULT_MS;
	}
	return (int)(secs > CTL_DRAIN_MAX_S ? CTL_DRAIN_MAX_S : secs) * 1000;
}

static void check_request(char *line, size_t line_len)
{
	static char ref[CTL_MAX_WORDS][MAX + 1], joined[MAX + CTL_MAX_WORDS + 1];
	struct ctl_request req, req2;
	char *orig = strdup(line);
	int n, i, r, r2;
	size_t off = 0;

	CHECK(orig != NULL);
	n = ref_split(orig, ref, CTL_MAX_WORDS);
	r = ctl_parse_request(line, &req);
	CHECK(r == 0 || r == -EINVAL);
	CHECK(req.n == n);
	for (i = 0; i < n; i++) {
		CHECK(req.words[i] >= line && req.words[i] < line + line_len);
		CHECK(i == 0 || req.words[i] > req.words[i - 1] + strlen(req.words[i - 1]));
		CHECK(req.words[i][0] && !strpbrk(req.words[i], " \t"));
		CHECK(strcmp(req.words[i], ref[i]) == 0);
	}
	CHECK((r == 0) == (n >= 3 && !strcmp(ref[0], LDM_CTL_PREFIX) &&
			   (!strcmp(ref[1], "text") || !strcmp(ref[1], "json"))));
	if (r == 0) {
		CHECK(req.json == !strcmp(ref[1], "json"));
		/* The drain argument and every other one, as drain would read it. */
		CHECK(ctl_drain_ms(NULL, DEFAULT_MS) == DEFAULT_MS);
		for (i = 2; i < n; i++) {
			int ms = ctl_drain_ms(req.words[i], DEFAULT_MS);

			CHECK(ms > 0 && ms <= CTL_DRAIN_MAX_S * 1000);
			CHECK(ms == ref_drain_ms(req.words[i]));
		}
	}

	/* Round trip: single spaces between the same words. */
	joined[0] = '\0';
	for (i = 0; i < n; i++) {
		off += (size_t)snprintf(joined + off, sizeof(joined) - off, "%s%s", i ? " " : "",
					ref[i]);
	}
	r2 = ctl_parse_request(joined, &req2);
	CHECK(r2 == r && req2.n == n && req2.json == req.json);
	for (i = 0; i < n; i++) {
		CHECK(strcmp(req2.words[i], ref[i]) == 0);
	}
	free(orig);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char buf[MAX + 1];
	const char *in = (const char *)data + 1;
	size_t len, got, piece, ll = 0, ref_ll = 0, whole_ll = 0;
	enum ctl_frame f = CTL_FRAME_MORE, whole;

	if (size < 1) {
		return 0;
	}
	len = size - 1;
	piece = (size_t)data[0] + 1;

	/* At once, up to what one request may be. */
	whole = frame(in, len < MAX ? len : MAX, &whole_ll);
	CHECK(whole == ref_frame(in, len < MAX ? len : MAX, &ref_ll));
	if (whole == CTL_FRAME_LINE) {
		CHECK(whole_ll == ref_ll && in[whole_ll] == '\n');
	}

	/* In pieces, as ctl_recv_done gets them. */
	for (got = 0; got < len && f == CTL_FRAME_MORE;) {
		size_t n = piece;

		if (n > len - got) {
			n = len - got;
		}
		if (n > MAX - got) {
			n = MAX - got;
		}
		memcpy(buf + got, in + got, n);
		got += n;
		buf[got] = '\0';
		f = frame(buf, got, &ll);
		CHECK(f == ref_frame(buf, got, &ref_ll));
		piece = piece * 7 % 253 + 1;
	}
	/* Stopped early or not, the first newline is the same one. */
	CHECK(f == whole);
	if (f != CTL_FRAME_LINE) {
		return 0;
	}
	CHECK(ll == whole_ll && ll < got && buf[ll] == '\n' && !memchr(buf, 0, ll));
	buf[ll] = '\0';
	check_request(buf, ll);
	return 0;
}
