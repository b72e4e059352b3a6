/*
 * libFuzzer target for handoff_validate (daemon/proxy/handoff.c): the check of a
 * struct ldm_handoff as a shim (or anyone who can reach handoff.sock)
 * sends it, in pieces.
 *
 * Input: byte 0 picks the piece sizes, the rest is the header (bytes past
 * sizeof(struct ldm_handoff) are ignored, like the filler).
 *
 * Checks, beyond "no crash, no sanitizer report":
 *  - the header is only read up to len: every call gets a heap copy of
 *    exactly len bytes, so ASan reports any read past it;
 *  - the verdict matches a reference model written from proto.h: -EAGAIN
 *    only for a valid prefix, 0 only for a whole header with the right
 *    magic, version, length, a known op and, per op, a sane destination,
 *    filler_len or listen_name;
 *  - verdicts are monotonic: a refused prefix stays refused with the same
 *    reason, and fed in pieces the header gets the verdict it gets whole;
 *  - a reason is one non-empty line naming the field (magic, version,
 *    length), and a short or absent reason buffer changes nothing;
 *  - fields the daemon does not judge (cookie, pid, sndbuf...) never
 *    change the verdict.
 *
 *   ci/fuzz.sh --time 60 handoff
 * (handoff.c calls into the rest of the daemon: it links every daemon
 * source but main.c.)
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy/handoff.h"

#include "fuzz_check.h"

#define HLEN sizeof(struct ldm_handoff)

/* handoff_validate on a heap copy of exactly len bytes. */
static int validate(const uint8_t *in, size_t len, char *why, size_t why_len)
{
	void *copy = malloc(len ? len : 1);
	int r;

	CHECK(copy != NULL);
	memcpy(copy, in, len);
	r = handoff_validate(copy, len, why, why_len);
	free(copy);
	return r;
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

/* The reference: -EAGAIN, 0 or -EPROTO; *field names what was refused. */
static int model(const uint8_t *in, size_t len, const char **field)
{
	const uint8_t *a = in + offsetof(struct ldm_handoff, addr);
	const uint8_t *name = in + offsetof(struct ldm_handoff, listen_name);
	uint16_t op;

	*field = NULL;
	if (len >= 4 && get32(in) != LDM_HANDOFF_MAGIC) {
		*field = "magic";
		return -EPROTO;
	}
	if (len >= 6 && get16(in + 4) != LDM_PROTO_VERSION) {
		*field = "version";
		return -EPROTO;
	}
	if (len >= 12 && get32(in + 8) != HLEN) {
		*field = "length";
		return -EPROTO;
	}
	if (len < HLEN) {
		return -EAGAIN;
	}
	op = get16(in + 6);
	*field = "op";
	if (op == LDM_OP_CONNECT) {
		uint16_t fam = get16(a), port = get16(a + 2);
		uint32_t filler = get32(in + offsetof(struct ldm_handoff, filler_len));

		return (fam == AF_INET || fam == AF_INET6) && port && filler <= 65536 ? 0 : -EPROTO;
	}
	if (op == LDM_OP_LISTEN) {
		return name[0] && memchr(name, 0, LDM_LISTEN_NAME_MAX) ? 0 : -EPROTO;
	}
	return op == LDM_OP_QUERY || op == LDM_OP_RESET ? 0 : -EPROTO;
}

static void check_why(const char *why, size_t cap, const char *field)
{
	CHECK(memchr(why, 0, cap) != NULL);
	CHECK(why[0] != '\0' && strchr(why, '\n') == NULL);
	if (field && strcmp(field, "op") != 0) {
		CHECK(strstr(why, field) != NULL);
	}
}

/* Every field the daemon copies but never judges. */
static const struct {
	size_t off, len;
} unjudged[] = {
	{offsetof(struct ldm_handoff, flags), 4},
	{offsetof(struct ldm_handoff, cookie), 8},
	{offsetof(struct ldm_handoff, sndbuf), 4},
	{offsetof(struct ldm_handoff, pid), 4},
	{offsetof(struct ldm_handoff, backlog), 4},
	{offsetof(struct ldm_handoff, app_fd), 4},
	{offsetof(struct ldm_handoff, reserved), 4},
	{offsetof(struct ldm_handoff, addr.scope_id), 4},
	{offsetof(struct ldm_handoff, addr.addr), 16},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char why[96], why2[96], prev_why[96];
	uint8_t hdr[HLEN], flipped[HLEN];
	const char *field, *pfield;
	size_t len, k, got, piece;
	int r, m, prev = -EAGAIN;
	char tiny[1];

	if (size < 1) {
		return 0;
	}
	len = size - 1 < HLEN ? size - 1 : HLEN;
	memcpy(hdr, data + 1, len);

	/* Whole, against the model. */
	memset(why, 0x55, sizeof(why));
	r = validate(hdr, len, why, sizeof(why));
	m = model(hdr, len, &field);
	CHECK(r == 0 || r == -EAGAIN || r == -EPROTO);
	CHECK(r == m);
	CHECK(r != 0 || len == HLEN);
	if (r == -EPROTO) {
		check_why(why, sizeof(why), field);
	}
	if (r == 0) {
		const struct ldm_handoff *h = (const struct ldm_handoff *)hdr;

		CHECK(h->magic == LDM_HANDOFF_MAGIC && h->version == LDM_PROTO_VERSION);
		CHECK(h->len == HLEN && h->op >= LDM_OP_CONNECT && h->op <= LDM_OP_RESET);
		if (h->op == LDM_OP_CONNECT) {
			CHECK(h->addr.family == AF_INET || h->addr.family == AF_INET6);
			CHECK(h->addr.port != 0 && h->filler_len <= HANDOFF_FILLER_MAX);
		}
		if (h->op == LDM_OP_LISTEN) {
			CHECK(strnlen(h->listen_name, sizeof(h->listen_name)) > 0 &&
			      strnlen(h->listen_name, sizeof(h->listen_name)) <
				      sizeof(h->listen_name));
		}
	}
	/* The reason buffer's size never changes the verdict. */
	CHECK(validate(hdr, len, NULL, 0) == r);
	tiny[0] = 'x';
	CHECK(validate(hdr, len, tiny, sizeof(tiny)) == r);
	CHECK(r != -EPROTO || tiny[0] == '\0');

	/* Every prefix: valid prefixes, then one refusal for good. */
	for (k = 0; k <= len; k++) {
		int rk = validate(hdr, k, why2, sizeof(why2));

		CHECK(rk == model(hdr, k, &pfield));
		CHECK(rk != 0 || k == len);
		if (prev == -EPROTO) {
			CHECK(rk == -EPROTO && strcmp(why2, prev_why) == 0);
		}
		if (rk == -EPROTO) {
			memcpy(prev_why, why2, sizeof(prev_why));
		}
		prev = rk;
	}
	CHECK(prev == r);

	/* In pieces, as recvmsg delivers it: stop at the first verdict. */
	piece = (size_t)(data[0] % 32) + 1;
	for (got = 0, r = -EAGAIN; got < len && r == -EAGAIN;) {
		size_t n = piece < len - got ? piece : len - got;

		got += n;
		r = validate(hdr, got, why2, sizeof(why2));
		piece = piece * 5 % 37 + 1;
	}
	CHECK(r == validate(hdr, len, why, sizeof(why)) || (r == -EPROTO && got < len));
	if (r == -EPROTO) {
		CHECK(validate(hdr, len, why, sizeof(why)) == -EPROTO && strcmp(why, why2) == 0);
	}

	/* Fields nobody judges: change them all, keep the verdict. */
	memcpy(flipped, hdr, len);
	for (k = 0; k < sizeof(unjudged) / sizeof(unjudged[0]); k++) {
		size_t i;

		for (i = unjudged[k].off; i < unjudged[k].off + unjudged[k].len && i < len; i++) {
			flipped[i] ^= 0xa5;
		}
	}
	CHECK(validate(flipped, len, NULL, 0) == validate(hdr, len, NULL, 0));
	return 0;
}
