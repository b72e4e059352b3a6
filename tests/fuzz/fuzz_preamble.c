/*
 * libFuzzer target for preamble_check (shim/preamble.c): the fixed part of
 * the struct ldm_preamble that accept() reads from the daemon on a mesh
 * listener, followed by id_len bytes of peer SPIFFE ID.
 *
 * Input: the bytes on the accepted Unix connection.  The target reads them
 * the way take_preamble in shim/hook_accept.c does: the fixed part, the
 * check, then id_len bytes into a LDM_PEER_ID_MAX buffer.
 *
 * Checks, beyond "no crash, no sanitizer report":
 *  - the check reads only the fixed part (a heap copy of exactly that size);
 *  - it agrees with a reference model (magic, version, id_len bound);
 *  - an accepted preamble's ID fits the shim's buffer (a heap buffer of
 *    exactly LDM_PEER_ID_MAX bytes, so an overflow is an ASan report), and
 *    the application's first byte comes right after it;
 *  - conn_id and the two addresses never change the verdict.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Idaemon -Ishim \
 *     tests/fuzz/fuzz_preamble.c shim/preamble.c -o fuzz_preamble
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim.h"

#include "fuzz_check.h"

#define PLEN sizeof(struct ldm_preamble)

static int check_copy(const uint8_t *in)
{
	struct ldm_preamble *copy = malloc(PLEN);
	int r;

	CHECK(copy != NULL);
	memcpy(copy, in, PLEN);
	r = preamble_check(copy);
	free(copy);
	return r;
}

static int model(const uint8_t *in)
{
	uint32_t magic;
	uint16_t version, id_len;

	memcpy(&magic, in, 4);
	memcpy(&version, in + 4, 2);
	memcpy(&id_len, in + 6, 2);
	return magic == LDM_PREAMBLE_MAGIC && version == LDM_PROTO_VERSION &&
			       id_len <= LDM_PEER_ID_MAX
		       ? 0
		       : -EPROTO;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t fixed[PLEN];
	struct ldm_preamble pre;
	char *id;
	size_t off, i;
	int r;

	if (size < PLEN) {
		return 0; /* the shim would still be waiting for the fixed part */
	}
	memcpy(fixed, data, PLEN);
	r = check_copy(fixed);
	CHECK(r == 0 || r == -EPROTO);
	CHECK(r == model(fixed));

	/* What the daemon does not promise anything about is not judged. */
	for (i = offsetof(struct ldm_preamble, conn_id); i < PLEN; i++) {
		fixed[i] ^= 0x5a;
	}
	CHECK(check_copy(fixed) == r);
	if (r < 0) {
		return 0;
	}

	/* Accepted: read the ID as take_preamble does, into a buffer of the
	 * size it uses. */
	memcpy(&pre, data, PLEN);
	CHECK(pre.magic == LDM_PREAMBLE_MAGIC && pre.version == LDM_PROTO_VERSION);
	CHECK(pre.id_len <= LDM_PEER_ID_MAX);
	id = malloc(LDM_PEER_ID_MAX);
	CHECK(id != NULL);
	off = PLEN;
	if (size - off >= pre.id_len) {
		memcpy(id, data + off, pre.id_len);
		off += pre.id_len;
		/* The app's own bytes start here and nothing of them was eaten. */
		CHECK(off <= size && off == PLEN + pre.id_len);
		CHECK(off - PLEN <= LDM_PEER_ID_MAX);
	}
	free(id);
	return 0;
}
