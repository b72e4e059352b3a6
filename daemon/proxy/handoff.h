/*
 * The handoff header check, apart from the socket code in handoff.c so that
 * it can be tested and fuzzed on plain bytes.  The rest of handoff.c's
 * interface is in ldmeshd.h.
 */
#ifndef LDMESH_HANDOFF_H
#define LDMESH_HANDOFF_H

#include <stddef.h>

#include "ldmesh/proto.h"

/*
 * Judges the first len bytes of a handoff header as received from a shim
 * (the header arrives in pieces; bytes of *h past len are never read).
 * Checks magic, version and length as soon as they have arrived, then, on
 * a whole header, the operation and the fields it uses: a CONNECT's
 * destination family, port and filler_len, a LISTEN's listen_name.  The fds
 * sent with the header are the caller's to check.
 *
 * Returns 0 for a whole, well-formed header, -EAGAIN while the bytes so far
 * are a valid prefix, or -EPROTO with a one-line reason in why (why_len
 * bytes, always NUL-terminated when why_len > 0).
 */
int handoff_validate(const struct ldm_handoff *h, size_t len, char *why, size_t why_len);

/* The largest filler_len a CONNECT may announce. */
#define HANDOFF_FILLER_MAX 65536u

#endif
