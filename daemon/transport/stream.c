/*
 * A stream socket as a transport: one loop operation per call.
 */
#include <errno.h>
#include <sys/socket.h>

#include "loop/loop.h"
#include "transport/stream.h"

static struct stream *of(struct transport *t)
{
	return (struct stream *)t;
}

static int stream_open(struct transport *t)
{
	(void)t;
	return 0;
}

static int stream_read(struct transport *t, char *buf, size_t cap)
{
	struct stream *s = of(t);
	int r;

	/* A poll may still be on its way back from a cancel: the loop takes a
	 * read beside it (loop.h). */
	if (s->rpending) {
		return -EBUSY;
	}
	r = s->loop->ops->recv(s->loop, s->fd, buf, cap, s->ud.recv);
	if (r < 0) {
		return r;
	}
	s->rpending = 1;
	return -EINPROGRESS;
}

static int stream_write(struct transport *t, const char *buf, size_t n)
{
	struct stream *s = of(t);
	int r;

	if (s->spending) {
		return -EBUSY;
	}
	r = s->loop->ops->send(s->loop, s->fd, buf, n, s->ud.send);
	if (r < 0) {
		return r;
	}
	s->spending = 1;
	return -EINPROGRESS;
}

static int stream_shutdown(struct transport *t)
{
	/* Written data is already in the kernel: the FIN queues behind it.  A
	 * peer that is gone already shows up on the next read. */
	shutdown(of(t)->fd, SHUT_WR);
	return 0;
}

static int stream_flush(struct transport *t)
{
	(void)t;
	return 0; /* nothing of its own is ever queued here */
}

static int stream_cancel_read(struct transport *t)
{
	struct stream *s = of(t);

	if (!s->rpending) {
		return -ENOENT;
	}
	return s->loop->ops->cancel(s->loop, s->fd, s->ud.recv);
}

static int stream_wait_readable(struct transport *t)
{
	struct stream *s = of(t);
	int r;

	if (s->rpending || s->ppending) {
		return -EBUSY;
	}
	r = s->loop->ops->poll_in(s->loop, s->fd, s->ud.poll);
	if (r < 0) {
		return r;
	}
	s->ppending = 1;
	return 0;
}

static void stream_cancel_wait(struct transport *t)
{
	struct stream *s = of(t);

	if (s->ppending) {
		s->loop->ops->cancel(s->loop, s->fd, s->ud.poll);
	}
}

static int stream_trim(struct transport *t)
{
	(void)t;
	return 0;
}

static void stream_close(struct transport *t)
{
	struct stream *s = of(t);

	t->closed = 1;
	if (s->rpending || s->spending || s->ppending) {
		s->loop->ops->cancel_fd(s->loop, s->fd);
	}
}

static int stream_inflight(const struct transport *t)
{
	const struct stream *s = (const struct stream *)t;

	return s->rpending + s->spending + s->ppending;
}

static void stream_destroy(struct transport *t)
{
	(void)t; /* embedded in its owner; the fd is the owner's */
}

static const struct transport_ops stream_ops = {
	.name = "stream",
	.open = stream_open,
	.read = stream_read,
	.write = stream_write,
	.shutdown = stream_shutdown,
	.flush = stream_flush,
	.cancel_read = stream_cancel_read,
	.wait_readable = stream_wait_readable,
	.cancel_wait = stream_cancel_wait,
	.trim = stream_trim,
	.close = stream_close,
	.inflight = stream_inflight,
	.destroy = stream_destroy,
};

void stream_init(struct stream *s, struct loop *loop, int fd, const struct stream_uds *ud)
{
	s->t.ops = &stream_ops;
	s->t.on_event = 0;
	s->t.owner = 0;
	s->t.closed = 0;
	s->loop = loop;
	s->fd = fd;
	s->ud = *ud;
	s->rpending = s->spending = s->ppending = 0;
}

void stream_complete(struct stream *s, enum stream_op op, int res)
{
	switch (op) {
	case STREAM_RECV:
		s->rpending = 0;
		transport_event(&s->t, TEV_READ, res);
		break;
	case STREAM_SEND:
		s->spending = 0;
		transport_event(&s->t, TEV_WRITTEN, res);
		break;
	case STREAM_POLL:
		s->ppending = 0;
		transport_event(&s->t, TEV_READABLE, res);
		break;
	}
}
