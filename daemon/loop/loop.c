/*
 * io_uring backend of the event loop (see loop.h).  One ring per worker;
 * every operation is one SQE, user_data passes through untouched, and all
 * queued SQEs go to the kernel in one io_uring_enter per loop turn.
 */
#include <errno.h>
#include <poll.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>

#include "loop/loop.h"

/* user_data of our own cancel requests: their results are not delivered. */
#define UD_INTERNAL 0

struct loop_uring {
	struct loop base;
	struct io_uring ring;
	int multishot_accept; /* 0 once the kernel refused it: re-arm by hand */
};

static struct io_uring_sqe *get_sqe(struct loop_uring *u)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

	if (!sqe) {
		/* SQ full: hand what we have to the kernel and take a fresh slot. */
		io_uring_submit(&u->ring);
		sqe = io_uring_get_sqe(&u->ring);
	}
	return sqe;
}

static int u_accept(struct loop *l, int fd, uint64_t ud)
{
	struct loop_uring *u = (struct loop_uring *)l;
	struct io_uring_sqe *sqe = get_sqe(u);

	if (!sqe) {
		return -EBUSY;
	}
	if (u->multishot_accept) {
		io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	} else {
		io_uring_prep_accept(sqe, fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	}
	io_uring_sqe_set_data64(sqe, ud);
	return 0;
}

static int u_recv(struct loop *l, int fd, void *buf, size_t len, uint64_t ud)
{
	struct io_uring_sqe *sqe = get_sqe((struct loop_uring *)l);

	if (!sqe) {
		return -EBUSY;
	}
	io_uring_prep_recv(sqe, fd, buf, len, 0);
	io_uring_sqe_set_data64(sqe, ud);
	return 0;
}

static int u_send(struct loop *l, int fd, const void *buf, size_t len, uint64_t ud)
{
	struct io_uring_sqe *sqe = get_sqe((struct loop_uring *)l);

	if (!sqe) {
		return -EBUSY;
	}
	/* MSG_NOSIGNAL: a peer that went away is an error code, not SIGPIPE. */
	io_uring_prep_send(sqe, fd, buf, len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud);
	return 0;
}

static int u_recvmsg(struct loop *l, int fd, struct msghdr *msg, uint64_t ud)
{
	struct io_uring_sqe *sqe = get_sqe((struct loop_uring *)l);

	if (!sqe) {
		return -EBUSY;
	}
	/* MSG_CMSG_CLOEXEC: received fds must not leak into anything we run. */
	io_uring_prep_recvmsg(sqe, fd, msg, MSG_CMSG_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud);
	return 0;
}

static int u_connect(struct loop *l, int fd, const struct sockaddr *sa, socklen_t len, uint64_t ud)
{
	struct io_uring_sqe *sqe = get_sqe((struct loop_uring *)l);

	if (!sqe) {
		return -EBUSY;
	}
	io_uring_prep_connect(sqe, fd, sa, len);
	io_uring_sqe_set_data64(sqe, ud);
	return 0;
}

static int u_poll_in(struct loop *l, int fd, uint64_t ud)
{
	struct io_uring_sqe *sqe = get_sqe((struct loop_uring *)l);

	if (!sqe) {
		return -EBUSY;
	}
	io_uring_prep_poll_add(sqe, fd, POLLIN | POLLRDHUP);
	io_uring_sqe_set_data64(sqe, ud);
	return 0;
}

static int u_post(struct loop *l, uint64_t ud)
{
	struct io_uring_sqe *sqe = get_sqe((struct loop_uring *)l);

	if (!sqe) {
		return -EBUSY;
	}
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data64(sqe, ud);
	return 0;
}

static int u_cancel_fd(struct loop *l, int fd)
{
	struct io_uring_sqe *sqe = get_sqe((struct loop_uring *)l);

	if (!sqe) {
		return -EBUSY;
	}
	io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, UD_INTERNAL);
	return 0;
}

static int u_cancel(struct loop *l, int fd, uint64_t ud)
{
	struct io_uring_sqe *sqe = get_sqe((struct loop_uring *)l);

	(void)fd;
	if (!sqe) {
		return -EBUSY;
	}
	io_uring_prep_cancel64(sqe, ud, 0);
	io_uring_sqe_set_data64(sqe, UD_INTERNAL);
	return 0;
}

static void u_forget_fd(struct loop *l, int fd)
{
	/* The ring keeps no per-fd state. */
}

static int u_run(struct loop *l, int timeout_ms, loop_cb cb, void *ctx)
{
	struct loop_uring *u = (struct loop_uring *)l;
	struct __kernel_timespec ts = {
		.tv_sec = timeout_ms / 1000,
		.tv_nsec = (long long)(timeout_ms % 1000) * 1000000,
	};
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	int r, delivered = 0;

	r = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, timeout_ms >= 0 ? &ts : NULL, NULL);
	if (r < 0 && r != -ETIME && r != -EINTR) {
		return r;
	}
	io_uring_for_each_cqe(&u->ring, head, cqe)
	{
		uint64_t ud = io_uring_cqe_get_data64(cqe);
		int more = (cqe->flags & IORING_CQE_F_MORE) != 0;

		n++;
		if (ud == UD_INTERNAL) {
			continue;
		}
		delivered++;
		cb(ctx, ud, cqe->res, more);
	}
	io_uring_cq_advance(&u->ring, n);
	return r == -EINTR ? -EINTR : (int)delivered;
}

static void u_free(struct loop *l)
{
	struct loop_uring *u = (struct loop_uring *)l;

	if (u) {
		io_uring_queue_exit(&u->ring);
		free(u);
	}
}

static const struct loop_ops uring_ops = {
	.accept = u_accept,
	.recv = u_recv,
	.send = u_send,
	.recvmsg = u_recvmsg,
	.connect = u_connect,
	.poll_in = u_poll_in,
	.post = u_post,
	.cancel_fd = u_cancel_fd,
	.cancel = u_cancel,
	.forget_fd = u_forget_fd,
	.run = u_run,
	.free = u_free,
};

struct loop *loop_uring_new(unsigned entries, int *err)
{
	struct io_uring_params p;
	struct loop_uring *u = calloc(1, sizeof(*u));
	int r;

	if (!u) {
		*err = -ENOMEM;
		return NULL;
	}
	memset(&p, 0, sizeof(p));
	/*
	 * SINGLE_ISSUER: only this worker's thread submits, which lets the
	 * kernel skip locking.  DEFER_TASKRUN: completion work runs when we
	 * wait, not by interrupting us mid-turn, so batches stay batches.
	 * Both need Linux 6.1; older kernels get a plain ring.
	 */
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	/* CQ twice the SQ: multishot accepts can post more than we queued. */
	p.flags |= IORING_SETUP_CQSIZE;
	p.cq_entries = entries * 4;
	r = io_uring_queue_init_params(entries, &u->ring, &p);
	if (r == -EINVAL) {
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = entries * 4;
		r = io_uring_queue_init_params(entries, &u->ring, &p);
	}
	if (r < 0) {
		free(u);
		*err = r;
		return NULL;
	}
	/* Multishot accept arrived with Linux 5.19, like IORING_OP_SOCKET, which
	 * the probe can see; older kernels get one accept per SQE. */
	{
		struct io_uring_probe *probe = io_uring_get_probe_ring(&u->ring);
		u->multishot_accept = probe && io_uring_opcode_supported(probe, IORING_OP_SOCKET);
		io_uring_free_probe(probe);
	}
	u->base.ops = &uring_ops;
	u->base.backend = LOOP_IO_URING;
	return &u->base;
}
