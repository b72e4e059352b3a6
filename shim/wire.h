/*
 * The handoff protocol's framing (include/ldmesh/proto.h), shared by the
 * preloaded shim and the seccomp launcher ldmesh-run, which speak it to
 * the same daemon.  Nothing here knows which of the two is calling.
 */
#ifndef LDMESH_WIRE_H
#define LDMESH_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "ldmesh/proto.h"

int64_t wire_now_ms(void);
/* A header for `op`; pid is the caller's, which the caller may override. */
void wire_fill_header(struct ldm_handoff *h, enum ldm_op op, uint64_t cookie);
/* Sends h, then extra, with up to 4 fds attached; never blocks. */
int wire_send(int sock, const struct ldm_handoff *h, const int *fds, int nfds, const void *extra,
	      size_t extra_len);
/* Reads one struct ldm_status within timeout_ms: 0 or -errno. */
int wire_recv_status(int sock, struct ldm_status *st, int timeout_ms);
/* A cookie no other process or call of this process uses (top bit clear:
 * the daemon's inbound ids set it). */
uint64_t wire_new_cookie(void);
/* A Unix stream connection to path, bound first to the abstract name
 * bind_name when not NULL (it tells any process what the connection is);
 * *cred gets the daemon's credentials.  The fd or -errno. */
struct ucred;
int wire_connect(const char *path, const char *bind_name, struct ucred *cred);
/* Reads exactly len bytes from s, waiting at most wait_ms for each piece;
 * with fd not NULL the first fd attached (SCM_RIGHTS) goes to *fd and any
 * other is closed.  0, -ECONNABORTED at end-of-file, -ETIMEDOUT, -errno. */
int wire_recv_full(int s, void *buf, size_t len, int *fd, int wait_ms);

/* preamble.c: checks the fixed part of an inbound preamble read from the
 * daemon: magic, version, and id_len <= LDM_PEER_ID_MAX (the ID's buffer).
 * 0 or -EPROTO. */
int preamble_check(const struct ldm_preamble *pre);

#endif
