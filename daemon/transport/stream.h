/*
 * A transport over a connected stream socket (TCP, or the Unix socket to
 * the app): each read, write and wait is one loop operation on the fd.
 * The fd is borrowed: its owner closes it after destroy.
 */
#ifndef LDMESH_STREAM_H
#define LDMESH_STREAM_H

#include <stdint.h>

#include "transport/transport.h"

struct loop;

/* The owner's user_data for each kind of operation, so that completions
 * find their way back: the owner hands them to stream_complete(). */
struct stream_uds {
	uint64_t recv, send, poll;
};

enum stream_op { STREAM_RECV, STREAM_SEND, STREAM_POLL };

struct stream {
	struct transport t;
	struct loop *loop;
	int fd;
	struct stream_uds ud;
	uint8_t rpending, spending, ppending;
};

/* Makes s a transport over fd; no operation is queued yet. */
void stream_init(struct stream *s, struct loop *loop, int fd, const struct stream_uds *ud);
/* A completion of one of s's operations. */
void stream_complete(struct stream *s, enum stream_op op, int res);

#endif
