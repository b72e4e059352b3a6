/*
 * TCP listeners handed over by apps.  A listener is keyed by the shim's
 * listener id, so the same socket registered again (a fork child, or every
 * process after a daemon restart) joins the existing entry instead of
 * competing with it.  It lives while any registration link is open.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proxy/proxy.h"
#include "util/log.h"

#define ACCEPT_RETRY_MS 100

/* A listener re-arms at l->retry_ms; the loop looks only once one is due. */
static void retry_later(struct proxy *d, struct listener *l)
{
	l->retry_ms = now_ms() + ACCEPT_RETRY_MS;
	if (!d->listener_retry_ms || l->retry_ms < d->listener_retry_ms) {
		d->listener_retry_ms = l->retry_ms;
	}
}

static void arm(struct proxy *d, int slot)
{
	struct listener *l = &d->listeners[slot];

	if (l->armed || l->closing || d->draining) {
		return;
	}
	if (d->loop->ops->accept(d->loop, l->tcp_fd,
				 ud_make(UD_LISTENER_ACCEPT, (uint32_t)slot, l->gen)) == 0) {
		l->armed = 1;
		l->retry_ms = 0;
	} else {
		retry_later(d, l);
	}
}

int listener_register(struct proxy *d, const struct ldm_handoff *h, int tcp_fd, struct conn *link)
{
	char where[80];
	int i, free_slot = -1;

	for (i = 0; i < LISTENERS_MAX; i++) {
		struct listener *l = &d->listeners[i];
		if (l->used && !l->closing && l->id == h->cookie) {
			/* Same socket again: one accept loop is enough. */
			close(tcp_fd);
			if (l->links++ == 0 && d->listener_observer) {
				d->listener_observer(d, l, 1); /* held only as a mirror so far */
			}
			free_slot = i;
			goto linked;
		}
		if (!l->used && free_slot < 0) {
			free_slot = i;
		}
	}
	if (free_slot < 0) {
		log_warn("listener limit (%d) reached; refusing registration", LISTENERS_MAX);
		close(tcp_fd);
		return -ENOSPC;
	}
	{
		struct listener *l = &d->listeners[free_slot];
		uint32_t gen = l->gen + 1;
		struct stat st;

		memset(l, 0, sizeof(*l));
		l->used = 1;
		l->gen = gen;
		l->id = h->cookie;
		l->tcp_fd = tcp_fd;
		l->links = 1;
		l->pid = h->pid;
		l->addr = h->addr;
		memcpy(l->name, h->listen_name, sizeof(l->name));
		l->takes_socket = (h->flags & LDM_HF_TAKES_SOCKET) != 0;
		l->name[sizeof(l->name) - 1] = '\0';
		if (fstat(tcp_fd, &st) == 0) {
			l->ino = (unsigned long long)st.st_ino;
		}
		fcntl(tcp_fd, F_SETFL, fcntl(tcp_fd, F_GETFL) | O_NONBLOCK);
		addr_format(&l->addr, where, sizeof(where));
		log_info("listener %s registered by pid %u", where, l->pid);
		arm(d, free_slot);
		if (d->listener_observer) {
			d->listener_observer(d, l, 1);
		}
	}
linked:
	d->live_by_kind[link->kind]--;
	link->kind = CONN_LINK;
	d->live_by_kind[CONN_LINK]++;
	link->state = CS_LINK;
	link->listener_slot = free_slot;
	link->cookie = h->cookie;
	link->peer = h->addr;
	return 0;
}

static void release(struct proxy *d, struct listener *l)
{
	char where[80];

	if (d->worker == 0) { /* said once, not by every loop */
		addr_format(&l->addr, where, sizeof(where));
		log_info("listener %s released", where);
	}
	d->loop->ops->forget_fd(d->loop, l->tcp_fd);
	close(l->tcp_fd);
	l->tcp_fd = -1;
	l->used = 0;
}

/* Nothing holds l any more: stop accepting, close once the accept is back. */
static void retire(struct proxy *d, struct listener *l)
{
	l->closing = 1;
	if (l->armed) {
		/* Freed when the cancelled accept reports back. */
		d->loop->ops->cancel_fd(d->loop, l->tcp_fd);
	} else {
		release(d, l);
	}
}

void listener_unlink(struct proxy *d, int slot)
{
	struct listener *l = &d->listeners[slot];

	if (!l->used || --l->links > 0) {
		return;
	}
	if (d->listener_observer) {
		d->listener_observer(d, l, 0);
	}
	if (l->mirrors <= 0) {
		retire(d, l);
	}
}

static int slot_of(const struct proxy *d, uint64_t id)
{
	int i;

	for (i = 0; i < LISTENERS_MAX; i++) {
		const struct listener *l = &d->listeners[i];
		if (l->used && !l->closing && l->id == id) {
			return i;
		}
	}
	return -1;
}

void listener_mirror(struct proxy *d, const struct listener *src, int fd)
{
	int i = slot_of(d, src->id), free_slot = -1;
	struct listener *l;
	uint32_t gen;

	if (i >= 0) {
		close(fd);
		d->listeners[i].mirrors++;
		return;
	}
	for (i = 0; i < LISTENERS_MAX && free_slot < 0; i++) {
		if (!d->listeners[i].used) {
			free_slot = i;
		}
	}
	if (free_slot < 0) {
		log_warn("listener limit (%d) reached; not accepting a mirrored listener here",
			 LISTENERS_MAX);
		close(fd);
		return;
	}
	l = &d->listeners[free_slot];
	gen = l->gen + 1;
	memset(l, 0, sizeof(*l));
	l->used = 1;
	l->gen = gen;
	l->id = src->id;
	l->tcp_fd = fd;
	l->mirrors = 1;
	l->pid = src->pid;
	l->addr = src->addr;
	memcpy(l->name, src->name, sizeof(l->name));
	l->takes_socket = src->takes_socket;
	l->ino = src->ino;
	arm(d, free_slot);
}

void listener_unmirror(struct proxy *d, uint64_t id)
{
	int i = slot_of(d, id);
	struct listener *l;

	if (i < 0) {
		return;
	}
	l = &d->listeners[i];
	if (--l->mirrors <= 0 && l->links <= 0) {
		retire(d, l);
	}
}

void listener_adopt(struct proxy *d, uint64_t id, int fd)
{
	int i = slot_of(d, id);

	if (i < 0 || d->draining) {
		close(fd); /* gone meanwhile: the client sees a reset, as at a close */
		return;
	}
	d->listeners[i].accepted++;
	conn_start_inbound(d, fd, i);
}

void listener_accept_done(struct proxy *d, uint64_t ud, int res, int more)
{
	uint32_t slot = ud_slot(ud);
	struct listener *l;

	if (slot >= LISTENERS_MAX) {
		return;
	}
	l = &d->listeners[slot];
	if (!l->used || l->gen != ud_gen(ud)) {
		if (res >= 0) {
			close(res);
		}
		return;
	}
	if (!more) {
		l->armed = 0;
	}
	if (l->closing || d->draining) {
		if (res >= 0) {
			close(res);
		}
		if (l->closing && !l->armed) {
			release(d, l);
		}
		return;
	}
	if (res >= 0) {
		if (!d->spread || !d->spread(d, SPREAD_LISTENER, l->id, res)) {
			l->accepted++;
			conn_start_inbound(d, res, (int)slot);
		}
	} else if (res != -ECANCELED) {
		/* EMFILE and friends: back off instead of spinning, then retry. */
		log_warn("accept on listener pid %u: %s; retrying in %d ms", l->pid, strerror(-res),
			 ACCEPT_RETRY_MS);
		retry_later(d, l);
		return;
	}
	if (!l->armed) {
		arm(d, (int)slot);
	}
}

void listener_arm_all(struct proxy *d, int64_t now)
{
	int i;

	if (!d->listener_retry_ms || now < d->listener_retry_ms) {
		return; /* nothing due: no scan on every loop turn */
	}
	d->listener_retry_ms = 0;
	for (i = 0; i < LISTENERS_MAX; i++) {
		struct listener *l = &d->listeners[i];
		if (!l->used || l->armed || l->closing || !l->retry_ms) {
			continue;
		}
		if (now >= l->retry_ms) {
			arm(d, i); /* may schedule another retry */
		} else if (!d->listener_retry_ms || l->retry_ms < d->listener_retry_ms) {
			d->listener_retry_ms = l->retry_ms;
		}
	}
}

void listener_stop_all(struct proxy *d)
{
	int i;

	for (i = 0; i < LISTENERS_MAX; i++) {
		struct listener *l = &d->listeners[i];
		if (l->used && l->armed) {
			d->loop->ops->cancel_fd(d->loop, l->tcp_fd);
		}
	}
}

int listener_count(const struct proxy *d)
{
	int i, n = 0;

	for (i = 0; i < LISTENERS_MAX; i++) {
		n += d->listeners[i].used && !d->listeners[i].closing;
	}
	return n;
}
