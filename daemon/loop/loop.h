/*
 * The event loop seen by the rest of the daemon: completion-based, like
 * io_uring.  Handlers queue operations; the loop starts them all at once at
 * the next turn and hands back each result as (user_data, res, more).  The
 * io_uring backend (loop.c) maps this one to one; the epoll backend
 * (loop_epoll.c) performs the same operations when the fd is ready, so the
 * connection state machine is written once.
 *
 * Rules: at most one read-type (accept, recv, recvmsg) and one write-type
 * (send, connect) operation per fd at a time.  Buffers passed in must stay
 * valid until the operation completes.  After loop_cancel_fd(fd) every
 * operation on fd completes (with -ECANCELED or its result) before the fd
 * may be closed.
 */
#ifndef LDMESH_LOOP_H
#define LDMESH_LOOP_H

#include <stdint.h>
#include <sys/socket.h>

struct loop;

/* Called for each completion.  more: a multishot accept stays armed. */
typedef void (*loop_cb)(void *ctx, uint64_t ud, int res, int more);

enum loop_backend { LOOP_IO_URING, LOOP_EPOLL };

struct loop_ops {
	int (*accept)(struct loop *l, int fd, uint64_t ud); /* multishot */
	int (*recv)(struct loop *l, int fd, void *buf, size_t len, uint64_t ud);
	int (*send)(struct loop *l, int fd, const void *buf, size_t len, uint64_t ud);
	int (*recvmsg)(struct loop *l, int fd, struct msghdr *msg, uint64_t ud);
	int (*connect)(struct loop *l, int fd, const struct sockaddr *sa, socklen_t len,
		       uint64_t ud);
	/* Completes (res > 0) once fd has input, end-of-file or an error,
	 * without reading: how idle connections wait with no buffer.  A
	 * read-type operation. */
	int (*poll_in)(struct loop *l, int fd, uint64_t ud);
	/* Completes with res 0 at the loop's next delivery, never from inside
	 * this call: how a handler defers work it may not do where it is (a
	 * transport's events that became due inside a call, transport.h). */
	int (*post)(struct loop *l, uint64_t ud);
	int (*cancel_fd)(struct loop *l, int fd);
	/* Cancels the one operation on fd queued with ud; it completes with
	 * -ECANCELED (or its result).  Cheaper than cancel_fd for io_uring,
	 * which finds it by user_data instead of scanning every request. */
	int (*cancel)(struct loop *l, int fd, uint64_t ud);
	/* Drops any registration for fd, which is about to be closed with
	 * nothing in flight. */
	void (*forget_fd)(struct loop *l, int fd);
	/* Starts queued operations, waits up to timeout_ms for at least one
	 * completion, delivers every available one.  Returns their count or
	 * -errno (-EINTR when a signal arrived). */
	int (*run)(struct loop *l, int timeout_ms, loop_cb cb, void *ctx);
	void (*free)(struct loop *l);
};

struct loop {
	const struct loop_ops *ops;
	enum loop_backend backend;
};

/* io_uring backend; returns NULL with -errno in *err when unavailable. */
struct loop *loop_uring_new(unsigned entries, int *err);
/* epoll backend, for kernels or sandboxes without io_uring. */
struct loop *loop_epoll_new(int max_fds, int *err);

static inline const char *loop_backend_name(const struct loop *l)
{
	return l->backend == LOOP_IO_URING ? "io_uring" : "epoll";
}

#endif
