/*
 * A transport: one end of a proxied connection, seen as a byte stream
 * with asynchronous reads and writes.  The app's Unix socket and a plain
 * TCP socket are streams (stream.c); TLS runs over a stream (tls.c); an
 * HTTP/2 stream on a shared link is the next kind.  The proxy moves bytes
 * between two transports and never asks which kind it has.
 *
 * Calls return at once.  A read or write that cannot finish now returns
 * -EINPROGRESS and its outcome arrives later as an event, through the
 * callback the owner set; events never arrive from inside a call.  One
 * read and one write at most are outstanding; the buffers passed stay the
 * caller's and must stay valid until the event.
 */
#ifndef LDMESH_TRANSPORT_H
#define LDMESH_TRANSPORT_H

#include <errno.h>
#include <stddef.h>

struct transport;

enum transport_event {
	TEV_OPEN, /* the handshake ended: res 0, or -errno (failed) */
	TEV_READ, /* res: bytes now in the read buffer, 0 end of input, -errno */
	TEV_WRITTEN, /* res: bytes of the write that are gone, or -errno */
	TEV_SHUT, /* the half-close asked for has reached the wire: 0 or -errno */
	TEV_FLUSHED, /* everything queued (an alert, a goodbye) is out: 0 or -errno */
	TEV_READABLE, /* wait_readable: input, end of input or an error waits */
};

typedef void (*transport_event_fn)(void *owner, struct transport *t, enum transport_event ev,
				   int res);

struct transport_ops {
	const char *name;
	/* Starts the transport's own handshake: 0 when it has none (TEV_OPEN
	 * never comes), -EINPROGRESS (TEV_OPEN comes), or -errno. */
	int (*open)(struct transport *t);
	/* Reads into buf: > 0 bytes now, 0 end of input now, -EINPROGRESS
	 * (TEV_READ comes), or -errno. */
	int (*read)(struct transport *t, char *buf, size_t cap);
	/* Writes buf[0..n): > 0 bytes taken at once (buf is the caller's
	 * again), -EINPROGRESS (TEV_WRITTEN comes, possibly with fewer bytes:
	 * write the rest again) or -errno. */
	int (*write)(struct transport *t, const char *buf, size_t n);
	/* Ends our direction once written data is out: 0 done, -EINPROGRESS
	 * (TEV_SHUT comes), or -errno. */
	int (*shutdown)(struct transport *t);
	/* 0 when nothing of the transport's own is queued, else -EINPROGRESS
	 * and TEV_FLUSHED comes when it is out. */
	int (*flush)(struct transport *t);
	/* Calls off the outstanding read: its TEV_READ comes with -ECANCELED
	 * (or with what it got first).  0, or -ENOENT when none is out. */
	int (*cancel_read)(struct transport *t);
	/* Waits for input without a buffer: TEV_READABLE comes.  Cancelled
	 * by cancel_wait (its TEV_READABLE then comes with -ECANCELED). */
	int (*wait_readable)(struct transport *t);
	void (*cancel_wait)(struct transport *t);
	/* Idle: gives back memory of its own; -EAGAIN when it still holds
	 * bytes (the caller reads them first). */
	int (*trim)(struct transport *t);
	/* The connection closes: every operation is cancelled and no event
	 * comes any more.  The transport stays valid until destroy. */
	void (*close)(struct transport *t);
	/* Operations the loop still owns; destroy only when 0. */
	int (*inflight)(const struct transport *t);
	void (*destroy)(struct transport *t);
};

struct transport {
	const struct transport_ops *ops;
	transport_event_fn on_event;
	void *owner;
	int closed;
	int abort; /* set by the owner before close: end with a reset, not gracefully */
};

static inline void transport_set_owner(struct transport *t, transport_event_fn fn, void *owner)
{
	t->on_event = fn;
	t->owner = owner;
}

/* For implementations: tells the owner, unless the transport is closed. */
static inline void transport_event(struct transport *t, enum transport_event ev, int res)
{
	if (!t->closed && t->on_event) {
		t->on_event(t->owner, t, ev, res);
	}
}

static inline int transport_read(struct transport *t, char *buf, size_t cap)
{
	return t->ops->read(t, buf, cap);
}
static inline int transport_write(struct transport *t, const char *buf, size_t n)
{
	return t->ops->write(t, buf, n);
}
static inline int transport_shutdown(struct transport *t)
{
	return t->ops->shutdown(t);
}
static inline int transport_flush(struct transport *t)
{
	return t->ops->flush(t);
}

#endif
