/*
 * epoll backend of the event loop (see loop.h), for hosts where io_uring is
 * disabled (kernel.io_uring_disabled, or a seccomp profile such as Docker's
 * and Kubernetes' RuntimeDefault).  It keeps the completion interface: an
 * operation is attempted when its fd is ready (edge-triggered, one
 * registration per fd) and its result is queued as a completion.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "loop/loop.h"

enum ep_type { EP_NONE, EP_ACCEPT, EP_RECV, EP_RECVMSG, EP_POLL, EP_SEND, EP_CONNECT };

struct ep_op {
	enum ep_type type;
	uint64_t ud;
	void *buf;
	size_t len;
	struct msghdr *msg;
	struct sockaddr_storage sa;
	socklen_t salen;
};

struct ep_fd {
	unsigned registered : 1, readable : 1, writable : 1, connecting : 1, dirty : 1;
	struct ep_op rd, wr;
};

struct ep_cqe {
	uint64_t ud;
	int res, more;
};

struct loop_epoll {
	struct loop base;
	int epfd;
	struct ep_fd *fds; /* indexed by fd */
	int nfds;
	int *dirty; /* fds with work to try this turn */
	int ndirty, capdirty;
	int *spare; /* the other list, swapped in by run_dirty */
	int capspare;
	struct ep_cqe *cq; /* completions to deliver */
	int ncq, capcq;
};

static int grow_fds(struct loop_epoll *e, int fd)
{
	int n = e->nfds ? e->nfds : 1024;
	struct ep_fd *p;

	while (n <= fd) {
		n *= 2;
	}
	p = realloc(e->fds, sizeof(*p) * (size_t)n);
	if (!p) {
		return -ENOMEM;
	}
	memset(p + e->nfds, 0, sizeof(*p) * (size_t)(n - e->nfds));
	e->fds = p;
	e->nfds = n;
	return 0;
}

static int push_cqe(struct loop_epoll *e, uint64_t ud, int res, int more)
{
	if (e->ncq == e->capcq) {
		int cap = e->capcq ? e->capcq * 2 : 256;
		struct ep_cqe *p = realloc(e->cq, sizeof(*p) * (size_t)cap);
		if (!p) {
			return -ENOMEM;
		}
		e->cq = p;
		e->capcq = cap;
	}
	e->cq[e->ncq++] = (struct ep_cqe){ud, res, more};
	return 0;
}

static int mark_dirty(struct loop_epoll *e, int fd)
{
	if (e->fds[fd].dirty) {
		return 0;
	}
	if (e->ndirty == e->capdirty) {
		int cap = e->capdirty ? e->capdirty * 2 : 256;
		int *p = realloc(e->dirty, sizeof(*p) * (size_t)cap);
		if (!p) {
			return -ENOMEM;
		}
		e->dirty = p;
		e->capdirty = cap;
	}
	e->fds[fd].dirty = 1;
	e->dirty[e->ndirty++] = fd;
	return 0;
}

/* Returns the slot for fd, registered with epoll. */
static struct ep_fd *slot(struct loop_epoll *e, int fd, int *err)
{
	struct ep_fd *f;

	if (fd < 0) {
		*err = -EBADF;
		return NULL;
	}
	if (fd >= e->nfds && (*err = grow_fds(e, fd)) < 0) {
		return NULL;
	}
	f = &e->fds[fd];
	if (!f->registered) {
		struct epoll_event ev = {
			.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
			.data.fd = fd,
		};
		if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 &&
		    (errno != EEXIST || epoll_ctl(e->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)) {
			*err = -errno;
			return NULL;
		}
		f->registered = 1;
		/* Try at once: the fd may already be ready. */
		f->readable = f->writable = 1;
	}
	return f;
}

static int queue_op(struct loop_epoll *e, int fd, int write, const struct ep_op *op)
{
	int err = 0;
	struct ep_fd *f = slot(e, fd, &err);

	if (!f) {
		return err;
	}
	if (write) {
		f->wr = *op;
	} else {
		f->rd = *op;
	}
	return mark_dirty(e, fd);
}

static int e_accept(struct loop *l, int fd, uint64_t ud)
{
	struct ep_op op = {.type = EP_ACCEPT, .ud = ud};
	return queue_op((struct loop_epoll *)l, fd, 0, &op);
}

static int e_recv(struct loop *l, int fd, void *buf, size_t len, uint64_t ud)
{
	struct ep_op op = {.type = EP_RECV, .ud = ud, .buf = buf, .len = len};
	return queue_op((struct loop_epoll *)l, fd, 0, &op);
}

static int e_send(struct loop *l, int fd, const void *buf, size_t len, uint64_t ud)
{
	struct ep_op op = {.type = EP_SEND, .ud = ud, .buf = (void *)buf, .len = len};
	return queue_op((struct loop_epoll *)l, fd, 1, &op);
}

static int e_recvmsg(struct loop *l, int fd, struct msghdr *msg, uint64_t ud)
{
	struct ep_op op = {.type = EP_RECVMSG, .ud = ud, .msg = msg};
	return queue_op((struct loop_epoll *)l, fd, 0, &op);
}

static int e_connect(struct loop *l, int fd, const struct sockaddr *sa, socklen_t len, uint64_t ud)
{
	struct ep_op op = {.type = EP_CONNECT, .ud = ud, .salen = len};

	if (len > sizeof(op.sa)) {
		return -EINVAL;
	}
	memcpy(&op.sa, sa, len);
	return queue_op((struct loop_epoll *)l, fd, 1, &op);
}

static int e_poll_in(struct loop *l, int fd, uint64_t ud)
{
	struct ep_op op = {.type = EP_POLL, .ud = ud};
	return queue_op((struct loop_epoll *)l, fd, 0, &op);
}

static int e_post(struct loop *l, uint64_t ud)
{
	/* Delivered after the callback that posted it, in this turn or the
	 * next: the queue is walked until empty. */
	return push_cqe((struct loop_epoll *)l, ud, 0, 0);
}

static int e_cancel_fd(struct loop *l, int fd)
{
	struct loop_epoll *e = (struct loop_epoll *)l;
	struct ep_fd *f;

	if (fd < 0 || fd >= e->nfds) {
		return 0;
	}
	f = &e->fds[fd];
	if (f->rd.type != EP_NONE) {
		push_cqe(e, f->rd.ud, -ECANCELED, 0);
	}
	if (f->wr.type != EP_NONE) {
		push_cqe(e, f->wr.ud, -ECANCELED, 0);
	}
	if (f->registered) {
		epoll_ctl(e->epfd, EPOLL_CTL_DEL, fd, NULL);
	}
	/* Keep the dirty flag: the fd may still sit in the dirty list. */
	*f = (struct ep_fd){.dirty = f->dirty};
	return 0;
}

static int e_cancel(struct loop *l, int fd, uint64_t ud)
{
	struct loop_epoll *e = (struct loop_epoll *)l;
	struct ep_fd *f;

	if (fd < 0 || fd >= e->nfds) {
		return 0;
	}
	f = &e->fds[fd];
	if (f->rd.type != EP_NONE && f->rd.ud == ud) {
		push_cqe(e, ud, -ECANCELED, 0);
		f->rd.type = EP_NONE;
	} else if (f->wr.type != EP_NONE && f->wr.ud == ud) {
		push_cqe(e, ud, -ECANCELED, 0);
		f->wr.type = EP_NONE;
	}
	return 0;
}

static void e_forget_fd(struct loop *l, int fd)
{
	e_cancel_fd(l, fd);
}

/* Up to this many accepts per readiness edge, so one busy listener cannot
 * starve the rest of the turn. */
#define ACCEPT_BATCH 64

static void try_read(struct loop_epoll *e, int fd, struct ep_fd *f)
{
	struct ep_op *op = &f->rd;
	ssize_t n;
	int i;

	switch (op->type) {
	case EP_ACCEPT:
		for (i = 0; i < ACCEPT_BATCH; i++) {
			int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (c >= 0) {
				push_cqe(e, op->ud, c, 1);
				continue;
			}
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				f->readable = 0;
			} else if (errno != EINTR && errno != ECONNABORTED) {
				/* Like io_uring, an error ends the multishot accept. */
				push_cqe(e, op->ud, -errno, 0);
				op->type = EP_NONE;
			}
			return;
		}
		mark_dirty(e, fd); /* more may be waiting: come back next turn */
		return;
	case EP_RECV:
		n = recv(fd, op->buf, op->len, MSG_DONTWAIT);
		break;
	case EP_RECVMSG:
		n = recvmsg(fd, op->msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		break;
	case EP_POLL: {
		char c;
		/* Input, end-of-file or an error: all make the fd readable. */
		n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			op->type = EP_NONE;
			push_cqe(e, op->ud, POLLIN, 0);
			return;
		}
		break;
	}
	default:
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		f->readable = 0;
		return;
	}
	if (n < 0 && errno == EINTR) {
		return;
	}
	op->type = EP_NONE;
	push_cqe(e, op->ud, n < 0 ? -errno : (int)n, 0);
}

static void try_write(struct loop_epoll *e, int fd, struct ep_fd *f)
{
	struct ep_op *op = &f->wr;
	ssize_t n;

	if (op->type == EP_CONNECT) {
		if (!f->connecting) {
			if (connect(fd, (struct sockaddr *)&op->sa, op->salen) == 0) {
				n = 0;
			} else if (errno == EINPROGRESS || errno == EAGAIN) {
				f->connecting = 1;
				f->writable = 0;
				return;
			} else {
				n = -errno;
			}
		} else {
			int err = 0;
			socklen_t len = sizeof(err);
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
			f->connecting = 0;
			n = -err;
		}
		op->type = EP_NONE;
		push_cqe(e, op->ud, (int)n, 0);
		return;
	}
	if (op->type != EP_SEND) {
		return;
	}
	n = send(fd, op->buf, op->len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		f->writable = 0;
		return;
	}
	if (n < 0 && errno == EINTR) {
		return;
	}
	op->type = EP_NONE;
	push_cqe(e, op->ud, n < 0 ? -errno : (int)n, 0);
}

static void attempt(struct loop_epoll *e, int fd)
{
	struct ep_fd *f = &e->fds[fd];

	if (f->rd.type != EP_NONE && f->readable) {
		try_read(e, fd, f);
	}
	if (f->wr.type != EP_NONE &&
	    (f->writable || (f->wr.type == EP_CONNECT && !f->connecting))) {
		try_write(e, fd, f);
	}
}

static void run_dirty(struct loop_epoll *e)
{
	int *list = e->dirty, n = e->ndirty, cap = e->capdirty, i;

	/* Swap lists: work queued while we attempt lands in the next turn. */
	e->dirty = e->spare;
	e->capdirty = e->capspare;
	e->ndirty = 0;
	for (i = 0; i < n; i++) {
		if (list[i] < e->nfds) {
			e->fds[list[i]].dirty = 0;
		}
	}
	for (i = 0; i < n; i++) {
		if (list[i] < e->nfds && e->fds[list[i]].registered) {
			attempt(e, list[i]);
		}
	}
	e->spare = list;
	e->capspare = cap;
}

static int e_run(struct loop *l, int timeout_ms, loop_cb cb, void *ctx)
{
	struct loop_epoll *e = (struct loop_epoll *)l;
	struct epoll_event evs[256];
	int n, i, intr = 0, delivered;

	run_dirty(e);
	n = epoll_wait(e->epfd, evs, (int)(sizeof(evs) / sizeof(evs[0])),
		       e->ncq || e->ndirty ? 0 : timeout_ms);
	if (n < 0) {
		if (errno != EINTR) {
			return -errno;
		}
		intr = 1;
		n = 0;
	}
	for (i = 0; i < n; i++) {
		int fd = evs[i].data.fd;
		struct ep_fd *f;

		if (fd >= e->nfds || !e->fds[fd].registered) {
			continue;
		}
		f = &e->fds[fd];
		if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
			f->readable = 1;
		}
		if (evs[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
			f->writable = 1;
		}
		attempt(e, fd);
	}
	/* Callbacks may queue completions (cancel) while we deliver: walk by
	 * index until the queue is empty. */
	for (i = 0; i < e->ncq; i++) {
		struct ep_cqe c = e->cq[i];
		cb(ctx, c.ud, c.res, c.more);
	}
	delivered = e->ncq;
	e->ncq = 0;
	return intr ? -EINTR : delivered;
}

static void e_free(struct loop *l)
{
	struct loop_epoll *e = (struct loop_epoll *)l;

	if (e) {
		close(e->epfd);
		free(e->fds);
		free(e->dirty);
		free(e->spare);
		free(e->cq);
		free(e);
	}
}

static const struct loop_ops epoll_ops = {
	.accept = e_accept,
	.recv = e_recv,
	.send = e_send,
	.recvmsg = e_recvmsg,
	.connect = e_connect,
	.poll_in = e_poll_in,
	.post = e_post,
	.cancel_fd = e_cancel_fd,
	.cancel = e_cancel,
	.forget_fd = e_forget_fd,
	.run = e_run,
	.free = e_free,
};

struct loop *loop_epoll_new(int max_fds, int *err)
{
	struct loop_epoll *e = calloc(1, sizeof(*e));

	if (!e) {
		*err = -ENOMEM;
		return NULL;
	}
	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (e->epfd < 0 || grow_fds(e, max_fds > 0 ? max_fds : 1024) < 0) {
		*err = e->epfd < 0 ? -errno : -ENOMEM;
		if (e->epfd >= 0) {
			close(e->epfd);
		}
		free(e);
		return NULL;
	}
	e->base.ops = &epoll_ops;
	e->base.backend = LOOP_EPOLL;
	return &e->base;
}
