/*
 * The per-connection state machine: dial, proxy both ways with bounded
 * buffers, half-close, reset, timeouts, deferred free.  TLS (next issue)
 * slots in between the network fd and the pipes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <sys/syscall.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ldmesh/addr.h"
#include "ldmesh/addrname.h"
#include "ldmeshd.h"
#include "proto/l7.h"
#include "policy/policy.h"
#include "util/strbuf.h"
#include "util/log.h"

const char *conn_kind_name(enum conn_kind k)
{
	static const char *const names[] = {"handoff", "outbound", "inbound",
					    "link",    "ctl",	   "admin"};
	return (unsigned)k < ARRAY_SIZE(names) ? names[k] : "?";
}

struct conn *conn_new(struct ldmeshd *d, enum conn_kind kind, int a_fd)
{
	struct conn *c;
	uint32_t slot;

	if (d->live >= (uint32_t)d->cfg->max_connections) {
		return NULL;
	}
	if (!d->nfree) {
		uint32_t n = d->nslots ? d->nslots * 2 : 1024, i;
		struct conn **cs = realloc(d->conns, sizeof(*cs) * n);
		uint32_t *fs;
		if (!cs) {
			return NULL;
		}
		d->conns = cs;
		fs = realloc(d->free_slots, sizeof(*fs) * n);
		if (!fs) {
			return NULL;
		}
		d->free_slots = fs;
		for (i = n; i > d->nslots; i--) {
			cs[i - 1] = NULL;
			fs[d->nfree++] = i - 1;
		}
		d->nslots = n;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		return NULL;
	}
	slot = d->free_slots[--d->nfree];
	/* A daemon-wide counter: a stale user_data never matches a reused slot. */
	c->gen = ++d->gen_counter ? d->gen_counter : ++d->gen_counter;
	c->slot = slot;
	c->kind = kind;
	c->a_fd = a_fd;
	c->n_fd = -1;
	c->app_end_fd = -1;
	c->listener_slot = -1;
	c->started_ms = c->last_ms = now_ms();
	c->peer_id = "";
	d->conns[slot] = c;
	d->live++;
	d->live_by_kind[kind]++;
	return c;
}

struct conn *conn_from_ud(struct ldmeshd *d, uint64_t ud)
{
	uint32_t slot = ud_slot(ud);
	struct conn *c;

	if (slot >= d->nslots) {
		return NULL;
	}
	c = d->conns[slot];
	return c && c->gen == ud_gen(ud) ? c : NULL;
}

int conn_submit_recv(struct ldmeshd *d, struct conn *c, int fd, void *buf, size_t len,
		     enum ud_tag tag)
{
	int r = d->loop->ops->recv(d->loop, fd, buf, len, ud_make(tag, c->slot, c->gen));

	if (r == 0) {
		c->inflight++;
	}
	return r;
}

int conn_submit_send(struct ldmeshd *d, struct conn *c, int fd, const void *buf, size_t len,
		     enum ud_tag tag)
{
	int r = d->loop->ops->send(d->loop, fd, buf, len, ud_make(tag, c->slot, c->gen));

	if (r == 0) {
		c->inflight++;
	}
	return r;
}

/* The dial of outbound c ended with err (0 or -errno). */
static void dial_outcome(struct ldmeshd *d, const struct conn *c, int err)
{
	if (d->dial_observer) {
		d->dial_observer(d, c, err);
	}
}

static void reap_add(struct ldmeshd *d, struct conn *c)
{
	if (d->nreap == d->capreap) {
		uint32_t cap = d->capreap ? d->capreap * 2 : 64;
		struct conn **p = realloc(d->reap, sizeof(*p) * cap);
		if (!p) {
			return; /* found again by the sweep */
		}
		d->reap = p;
		d->capreap = cap;
	}
	d->reap[d->nreap++] = c;
}

void conn_close(struct ldmeshd *d, struct conn *c, int abort)
{
	if (c->state == CS_CLOSING) {
		return;
	}
	if (c->kind == CONN_LINK && c->listener_slot >= 0) {
		listener_unlink(d, c->listener_slot);
		c->listener_slot = -1;
	}
	c->state = CS_CLOSING;
	c->abort = abort;
	if (c->inflight) {
		if (c->a_fd >= 0) {
			d->loop->ops->cancel_fd(d->loop, c->a_fd);
		}
		if (c->n_fd >= 0) {
			d->loop->ops->cancel_fd(d->loop, c->n_fd);
		}
	}
	reap_add(d, c);
}

/*
 * Unix sockets have no RST, but closing one with unread data in its receive
 * queue makes the peer's next read fail with ECONNRESET.  Only the app's end
 * can put data there: during the dial we still hold it; later we borrow it
 * from the app with pidfd_getfd(), after checking by its abstract name
 * (ldmesh-o-<cookie>-...) that the fd number still is this connection.
 * Without the permission (no CAP_SYS_PTRACE over the app) the app sees
 * end-of-file instead.
 */
static void reset_app_side(const struct conn *c)
{
	struct sockaddr_un sun;
	socklen_t len = sizeof(sun);
	char want[40];
	int fd = c->app_end_fd, pidfd = -1, borrowed = 0;

	if (fd < 0) {
		if (c->kind != CONN_OUTBOUND || !c->pid || c->app_fd_num < 0) {
			return;
		}
		pidfd = (int)syscall(SYS_pidfd_open, (pid_t)c->pid, 0);
		if (pidfd < 0) {
			return;
		}
		fd = (int)syscall(SYS_pidfd_getfd, pidfd, c->app_fd_num, 0);
		close(pidfd);
		if (fd < 0) {
			return;
		}
		borrowed = 1;
		snprintf(want, sizeof(want), LDM_NAME_OUT "%016" PRIx64 "-", c->cookie);
		if (getsockname(fd, (struct sockaddr *)&sun, &len) < 0 ||
		    sun.sun_family != AF_UNIX ||
		    len <= offsetof(struct sockaddr_un, sun_path) + 1 + strlen(want) ||
		    sun.sun_path[0] != '\0' || strncmp(sun.sun_path + 1, want, strlen(want))) {
			close(fd); /* the app reused the number: not ours to touch */
			return;
		}
	}
	send(fd, "", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (borrowed) {
		close(fd);
	}
}

static void conn_free(struct ldmeshd *d, struct conn *c)
{
	if (c->n_fd >= 0) {
		if (c->abort) {
			/* Propagate the failure as a reset, not a clean end. */
			struct linger lg = {1, 0};
			setsockopt(c->n_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		d->loop->ops->forget_fd(d->loop, c->n_fd);
		close(c->n_fd);
	}
	if (c->abort && c->a_fd >= 0) {
		reset_app_side(c);
	}
	if (c->a_fd >= 0) {
		d->loop->ops->forget_fd(d->loop, c->a_fd);
		close(c->a_fd);
	}
	if (c->app_end_fd >= 0) {
		close(c->app_end_fd);
	}
	while (c->nhfds > 0) {
		close(c->hfds[--c->nhfds]);
	}
	l7_finish(d, c, c->l7);
	if (c->tel) {
		tel_tcp_close(c->tel, c->abort);
		accesslog_tcp(&d->alog, c, now_ms(), c->http_requests);
	}
	if (c->parked == PARK_PARKED) {
		d->parked--;
	}
	tls_conn_free(c->tls);
	free(c->bufs);
	free(c->ctl_in);
	free(c->ctl_out);
	d->conns[c->slot] = NULL;
	d->free_slots[d->nfree++] = c->slot;
	d->live--;
	d->live_by_kind[c->kind]--;
	free(c);
}

void conn_reap(struct ldmeshd *d)
{
	uint32_t i, keep = 0;

	for (i = 0; i < d->nreap; i++) {
		struct conn *c = d->reap[i];
		if (c->inflight == 0) {
			conn_free(d, c);
		} else {
			d->reap[keep++] = c;
		}
	}
	d->nreap = keep;
}

/* ---- answers (ctl and admin) -------------------------------------------- */

void conn_send_answer(struct ldmeshd *d, struct conn *c, struct strbuf *b, enum ud_tag tag)
{
	c->ctl_out = sb_take(b, &c->ctl_out_len);
	c->ctl_out_off = 0;
	c->state = CS_CTL_WRITE;
	if (conn_submit_send(d, c, c->a_fd, c->ctl_out, c->ctl_out_len, tag) < 0) {
		conn_close(d, c, 1);
	}
}

static void answer_sent(struct ldmeshd *d, struct conn *c, int res, enum ud_tag tag)
{
	if (res < 0) {
		conn_close(d, c, 1);
		return;
	}
	c->ctl_out_off += (size_t)res;
	if (c->ctl_out_off < c->ctl_out_len) {
		if (conn_submit_send(d, c, c->a_fd, c->ctl_out + c->ctl_out_off,
				     c->ctl_out_len - c->ctl_out_off, tag) < 0) {
			conn_close(d, c, 1);
		}
		return;
	}
	/* The whole answer is out: end our side, then let the client close. */
	shutdown(c->a_fd, SHUT_WR);
	conn_close(d, c, 0);
}

/* ---- proxying ---------------------------------------------------------- */

/*
 * Plaintext: each direction is src -> buf -> dst with one read or one write
 * in flight.  TLS: the network side of both directions goes through
 * c->tls; ciphertext is read into nin and written from nout.  Either way a
 * read is posted only when the previous chunk has gone out, so a slow
 * reader stops the writer and memory stays at the buffers.
 */

static void pump_both(struct ldmeshd *d, struct conn *c);
static void net_flush(struct ldmeshd *d, struct conn *c);
static int net_idle(const struct conn *c);
static void inject_sent(struct ldmeshd *d, struct conn *c);
static int want_l7(struct ldmeshd *d, struct conn *c);
static int saw_bytes(struct ldmeshd *d, struct conn *c, struct pipe *p, const char *buf, size_t n);

static void check_done(struct ldmeshd *d, struct conn *c)
{
	if (c->up.shut && c->down.shut) {
		conn_close(d, c, 0);
	}
}

/*
 * Gets the request-direction input in down.buf[off..len) to the app: as is,
 * or through the HTTP layer (l7.c), which may rewrite heads, drop denied
 * requests and hold input.  Returns 1 while something is in flight or held
 * (the caller waits), 0 once the input is used up.
 */
static int down_deliver(struct ldmeshd *d, struct conn *c)
{
	struct pipe *p = &c->down;
	/* Outbound l7 state only watches; nothing goes through it. */
	struct l7 *h = c->kind == CONN_INBOUND ? c->l7 : NULL;

	if (p->spending) {
		return 1;
	}
	if (c->ctl_out_off < c->ctl_out_len) {
		/* Inbound: the preamble goes first. */
		if (conn_submit_send(d, c, c->a_fd, c->ctl_out + c->ctl_out_off,
				     c->ctl_out_len - c->ctl_out_off, UD_PREAMBLE_SEND) < 0) {
			conn_close(d, c, 1);
			return 1;
		}
		p->spending = 1;
		return 1;
	}
	if (h) {
		if (h->out_off < h->out_len) {
			if (conn_submit_send(d, c, c->a_fd, h->out + h->out_off,
					     h->out_len - h->out_off, UD_L7_SEND) < 0) {
				conn_close(d, c, 1);
				return 1;
			}
			p->spending = 1;
			return 1;
		}
		h->out_off = h->out_len = 0;
		if (h->opaque && !h->inject_len) {
			if (c->l7_policy) {
				/* Opaque with no decision for the connection: never raw. */
				log_warn("conn %u: undecided non-HTTP connection; closing",
					 c->slot);
				conn_close(d, c, 1);
				return 1;
			}
			/* Not HTTP after all: drop the HTTP state, pass bytes raw. */
			l7_finish(d, c, h);
			c->l7 = NULL;
			c->l7_done = 1;
			return down_deliver(d, c);
		}
		if (p->off < p->len && !h->hold) {
			if (l7_down(d, c) < 0) {
				conn_close(d, c, 1);
				return 1;
			}
			if (c->state != CS_PROXY) {
				return 1;
			}
			if (h->out_len || h->opaque) {
				return down_deliver(d, c);
			}
		}
		if (p->off < p->len) {
			return 1; /* held until an injected answer is out */
		}
		p->off = p->len = 0;
		return 0;
	}
	if (p->off < p->len) {
		if (conn_submit_send(d, c, c->a_fd, p->buf + p->off, p->len - p->off,
				     UD_DOWN_SEND) < 0) {
			conn_close(d, c, 1);
			return 1;
		}
		p->spending = 1;
		return 1;
	}
	p->off = p->len = 0;
	return 0;
}

/* Sends an answer of ours (a 403) to the client once its turn has come.
 * Returns 1 when the up direction must wait. */
static int inject(struct ldmeshd *d, struct conn *c)
{
	struct l7 *h = c->l7;

	if (!h || !h->inject_len) {
		return 0;
	}
	if (h->resp_broken && h->answered < h->forwarded) {
		/* We cannot tell where the app's answer ends: no 403 in order. */
		conn_close(d, c, 1);
		return 1;
	}
	if (!l7_inject_ready(h)) {
		return 0; /* keep reading the app's earlier answers */
	}
	if (c->tls) {
		if (!net_idle(c)) {
			return 1;
		}
		if (tls_conn_write(c->tls, h->inject, h->inject_len) < 0) {
			conn_close(d, c, 1);
			return 1;
		}
		inject_sent(d, c);
		net_flush(d, c);
		return 1;
	}
	if (conn_submit_send(d, c, c->n_fd, h->inject, h->inject_len, UD_INJECT_SEND) < 0) {
		conn_close(d, c, 1);
		return 1;
	}
	c->up.spending = 1;
	return 1;
}

static void pump_plain(struct ldmeshd *d, struct conn *c, struct pipe *p, enum ud_tag recv_tag,
		       enum ud_tag send_tag)
{
	if (p->spending) {
		return;
	}
	/* Output of the HTTP layer may be ready while a read is posted. */
	if (p == &c->down &&
	    ((c->l7 && c->l7->out_off < c->l7->out_len) || c->ctl_out_off < c->ctl_out_len)) {
		down_deliver(d, c);
		return;
	}
	/* An answer of ours waits only for the app's earlier answers to be
	 * out, not for the read posted on the app's side. */
	if (p == &c->up && p->off == p->len && c->l7 && c->l7->inject_len && inject(d, c)) {
		return;
	}
	if (p->rpending) {
		return;
	}
	if (p == &c->down) {
		if (down_deliver(d, c)) {
			return;
		}
	} else if (p->off < p->len) {
		if (conn_submit_send(d, c, p->dst, p->buf + p->off, p->len - p->off, send_tag) <
		    0) {
			conn_close(d, c, 1);
			return;
		}
		p->spending = 1;
		return;
	} else if (inject(d, c)) {
		return;
	}
	p->len = p->off = 0;
	if (p->eof) {
		if (!p->shut) {
			/* Half-close travels on: the other direction keeps going. */
			shutdown(p->dst, SHUT_WR);
			p->shut = 1;
			check_done(d, c);
		}
		return;
	}
	if (conn_submit_recv(d, c, p->src, p->buf, (size_t)d->cfg->buffer_size, recv_tag) < 0) {
		conn_close(d, c, 1);
		return;
	}
	p->rpending = 1;
}

/* Sends ciphertext the TLS engine produced, one buffer at a time. */
static void net_flush(struct ldmeshd *d, struct conn *c)
{
	if (c->nout_spending || c->state == CS_CLOSING) {
		return;
	}
	if (c->nout_off == c->nout_len) {
		c->nout_off = 0;
		c->nout_len =
			(uint32_t)tls_conn_out_take(c->tls, c->nout, (size_t)d->cfg->buffer_size);
		if (!c->nout_len) {
			return;
		}
	}
	if (conn_submit_send(d, c, c->n_fd, c->nout + c->nout_off, c->nout_len - c->nout_off,
			     UD_NET_SEND) < 0) {
		conn_close(d, c, 1);
		return;
	}
	c->nout_spending = 1;
}

static int net_idle(const struct conn *c)
{
	return !c->nout_spending && c->nout_off == c->nout_len && tls_conn_out_pending(c->tls) == 0;
}

static void net_want_input(struct ldmeshd *d, struct conn *c)
{
	if (c->nin_rpending || c->net_eof || c->state == CS_CLOSING) {
		return;
	}
	if (conn_submit_recv(d, c, c->n_fd, c->nin, (size_t)d->cfg->buffer_size, UD_NET_RECV) < 0) {
		conn_close(d, c, 1);
		return;
	}
	c->nin_rpending = 1;
}

/* app -> TLS -> network */
static void pump_tls_up(struct ldmeshd *d, struct conn *c)
{
	struct pipe *p = &c->up;

	if (p->off < p->len) {
		/* Hand plaintext to TLS only when the last ciphertext is gone. */
		if (!net_idle(c)) {
			return;
		}
		if (tls_conn_write(c->tls, p->buf + p->off, p->len - p->off) < 0) {
			conn_close(d, c, 1);
			return;
		}
		p->off = p->len;
		net_flush(d, c);
		return;
	}
	p->len = p->off = 0;
	if (inject(d, c)) {
		return;
	}
	if (p->eof) {
		if (!c->notify_sent) {
			tls_conn_close_notify(c->tls);
			c->notify_sent = 1;
			net_flush(d, c);
		}
		if (!p->shut && net_idle(c)) {
			shutdown(c->n_fd, SHUT_WR);
			p->shut = 1;
			check_done(d, c);
		}
		return;
	}
	if (!p->rpending) {
		if (conn_submit_recv(d, c, c->a_fd, p->buf, (size_t)d->cfg->buffer_size,
				     UD_UP_RECV) < 0) {
			conn_close(d, c, 1);
			return;
		}
		p->rpending = 1;
	}
}

/* network -> TLS -> app */
static void pump_tls_down(struct ldmeshd *d, struct conn *c)
{
	struct pipe *p = &c->down;
	int r;

	if (p->spending || p->shut) {
		return;
	}
	if (down_deliver(d, c)) {
		return;
	}
	r = tls_conn_read(c->tls, p->buf, (size_t)d->cfg->buffer_size);
	if (r > 0) {
		p->len = (uint32_t)r;
		if (saw_bytes(d, c, p, p->buf, (size_t)r) == 0) {
			pump_tls_down(d, c);
		}
		return;
	}
	/* Reading may have produced output (a key update answer). */
	net_flush(d, c);
	if (r == 0 || (r == -EAGAIN && c->net_eof)) {
		/* close_notify, or the TCP stream ended: end of the app's input. */
		p->eof = 1;
		shutdown(c->a_fd, SHUT_WR);
		p->shut = 1;
		check_done(d, c);
		return;
	}
	if (r == -EAGAIN) {
		net_want_input(d, c);
		return;
	}
	log_debug("conn %u: TLS read: %s", c->slot, tls_conn_detail(c->tls));
	conn_close(d, c, 1);
}

static void pump_both(struct ldmeshd *d, struct conn *c)
{
	if (c->state != CS_PROXY || c->parked) {
		return;
	}
	if (c->tls) {
		pump_tls_up(d, c);
		if (c->state == CS_PROXY) {
			pump_tls_down(d, c);
		}
	} else {
		pump_plain(d, c, &c->up, UD_UP_RECV, UD_UP_SEND);
		if (c->state == CS_PROXY) {
			pump_plain(d, c, &c->down, UD_DOWN_RECV, UD_DOWN_SEND);
		}
	}
	/* A request just denied queues an answer for the up direction. */
	if (c->state == CS_PROXY && c->l7 && c->l7->inject_len && !c->up.spending) {
		if (c->tls) {
			pump_tls_up(d, c);
		} else {
			pump_plain(d, c, &c->up, UD_UP_RECV, UD_UP_SEND);
		}
	}
}

static int alloc_bufs(struct ldmeshd *d, struct conn *c)
{
	size_t bs = (size_t)d->cfg->buffer_size;

	if (!c->bufs || (c->tls && !c->bufs_tls)) {
		/* Grows from plain to TLS size on an inbound TLS connection. */
		char *b = realloc(c->bufs, (c->tls ? 4 : 2) * bs);
		if (!b) {
			return -ENOMEM;
		}
		c->bufs = b;
		c->bufs_tls = c->tls != NULL;
	}
	c->up.buf = c->bufs;
	c->down.buf = c->bufs + bs;
	if (c->tls) {
		c->nin = c->bufs + 2 * bs;
		c->nout = c->bufs + 3 * bs;
	}
	c->up.src = c->a_fd;
	c->up.dst = c->n_fd;
	c->down.src = c->n_fd;
	c->down.dst = c->a_fd;
	return 0;
}

/*
 * Connections get HTTP awareness until they prove not to be HTTP: inbound
 * always (policy, identity header), outbound when request metrics or the
 * access log want it (scan only).
 */
static int want_l7(struct ldmeshd *d, struct conn *c)
{
	if (c->l7 || c->l7_done) {
		return c->l7 != NULL;
	}
	if (c->kind == CONN_OUTBOUND) {
		if (c->state != CS_PROXY || (!d->cfg->http_metrics && !accesslog_on(&d->alog))) {
			return 0;
		}
		c->l7 = l7_new(d, 0);
		c->l7_done = c->l7 == NULL;
		if (c->l7) {
			c->l7->requests = c->http_requests; /* made again after parking */
		}
		return c->l7 != NULL;
	}
	if (c->kind != CONN_INBOUND) {
		return 0;
	}
	c->l7 = l7_new(d, (size_t)d->cfg->buffer_size);
	if (!c->l7) {
		c->l7_done = 1; /* no memory: raw bytes, still correct */
		if (c->l7_policy) {
			conn_close(d, c, 1);
		}
		return 0;
	}
	c->l7->requests = c->http_requests; /* made again after parking */
	return 1;
}

static void inject_sent(struct ldmeshd *d, struct conn *c)
{
	struct l7 *h = c->l7;

	h->inject_len = 0;
	h->hold = 0;
	if (h->close_after) {
		/* End both ways gracefully: FIN (or close_notify) to the client,
		 * end-of-file to the app. */
		c->up.eof = 1;
		c->down.eof = 1;
		c->down.off = c->down.len = 0;
		if (!c->down.shut) {
			shutdown(c->a_fd, SHUT_WR);
			c->down.shut = 1;
		}
	}
}

/* Outbound scan-only HTTP state that has nothing left to follow goes. */
static void scan_check(struct ldmeshd *d, struct conn *c)
{
	if (c->l7 && l7_scan_over(c->l7)) {
		l7_finish(d, c, c->l7);
		c->l7 = NULL;
		c->l7_done = 1;
	}
}

/* Plaintext bytes that came in on pipe p: metrics, and HTTP following for
 * whatever the HTTP layer does not consume itself (l7_down).  -errno: the
 * HTTP layer refused the connection, which is closed now. */
static int saw_bytes(struct ldmeshd *d, struct conn *c, struct pipe *p, const char *buf, size_t n)
{
	int r = 0;

	p->bytes += (uint64_t)n;
	if (c->tel) {
		if (p == &c->down) {
			c->tel->tcp_read += n;
		} else {
			c->tel->tcp_write += n;
		}
	}
	if (!want_l7(d, c)) {
		return 0;
	}
	if (c->kind == CONN_INBOUND) {
		if (p == &c->up) {
			r = l7_responses(d, c, buf, n);
		}
	} else if (p == &c->up) {
		l7_out_requests(d, c, buf, n);
		scan_check(d, c);
	} else {
		r = l7_responses(d, c, buf, n);
		if (r == 0) {
			scan_check(d, c);
		}
	}
	if (r < 0) {
		conn_close(d, c, 1);
	}
	return r;
}

static void park_read_cancelled(struct ldmeshd *d, struct conn *c);
static void park_wake(struct ldmeshd *d, struct conn *c, enum ud_tag tag);

static void recv_done(struct ldmeshd *d, struct conn *c, struct pipe *p, int res)
{
	p->rpending = 0;
	if (res == -ECANCELED) {
		park_read_cancelled(d, c);
		return;
	}
	if (c->parked) {
		c->parked = PARK_NO; /* input raced the cancel: stay awake */
	}
	if (res > 0) {
		p->len = (uint32_t)res;
		p->off = 0;
		if (saw_bytes(d, c, p, p->buf, (size_t)res) < 0) {
			return;
		}
	} else if (res == 0) {
		p->eof = 1;
	} else {
		log_debug("conn %u: recv: %s", c->slot, strerror(-res));
		conn_close(d, c, 1);
		return;
	}
	pump_both(d, c);
}

static void send_done(struct ldmeshd *d, struct conn *c, struct pipe *p, int res)
{
	p->spending = 0;
	if (res < 0) {
		log_debug("conn %u: send: %s", c->slot, strerror(-res));
		conn_close(d, c, 1);
		return;
	}
	p->off += (uint32_t)res;
	pump_both(d, c);
}

/* ---- TLS handshake ------------------------------------------------------- */

static void outbound_ready(struct ldmeshd *d, struct conn *c);
static void inbound_authenticated(struct ldmeshd *d, struct conn *c);

#define VERDICT_WAIT_MS 1000

static void handshake_step(struct ldmeshd *d, struct conn *c)
{
	int out = c->kind == CONN_OUTBOUND, r;
	char peer[80];

	if (c->handshake_failed) {
		return; /* only the alert is still going out */
	}
	r = tls_conn_handshake(c->tls);
	net_flush(d, c);
	if (r == 0) {
		if (c->net_eof) {
			r = -EPROTO;
		} else {
			if (out && tls_conn_finished(c->tls) && !c->verdict_wait) {
				/* Waiting for the server to accept our certificate; a
				 * server that sends no ticket gets the benefit of the
				 * doubt after VERDICT_WAIT_MS (see conn_sweep). */
				c->verdict_wait = 1;
				c->deadline_ms = now_ms() + VERDICT_WAIT_MS;
			}
			net_want_input(d, c);
			return;
		}
	}
	if (r < 0) {
		enum tls_reason why = tls_conn_reason(c->tls);
		if (why == TLS_OK) {
			why = TLS_PROTOCOL; /* the peer hung up mid-handshake */
		}
		addr_format(&c->peer, peer, sizeof(peer));
		d->stats.handshake_errors_total[out][why]++;
		log_warn("%s TLS handshake with %s failed: %s (%s)", out ? "outbound" : "inbound",
			 peer, tls_reason_name(why), tls_conn_detail(c->tls));
		c->handshake_failed = 1;
		if (out) {
			d->stats.dial_errors_total++;
			dial_outcome(d, c, -ECONNREFUSED);
		}
		/* Let the alert reach the peer first (net_send_done closes), so it
		 * learns why instead of seeing a bare reset; bounded by a second. */
		if (!net_idle(c)) {
			net_flush(d, c);
			c->deadline_ms = now_ms() + 1000;
			return;
		}
		conn_close(d, c, 1);
		return;
	}
	d->stats.handshakes_total[out]++;
	if (tls_conn_resumed(c->tls)) {
		d->stats.handshakes_resumed_total[out]++;
	}
	c->peer_id = tls_conn_peer_id(c->tls);
	c->deadline_ms = 0;
	if (out) {
		outbound_ready(d, c);
	} else {
		inbound_authenticated(d, c);
	}
}

static void net_recv_done(struct ldmeshd *d, struct conn *c, int res)
{
	c->nin_rpending = 0;
	if (res == -ECANCELED && c->state == CS_PROXY) {
		park_read_cancelled(d, c);
		return;
	}
	if (c->parked) {
		c->parked = PARK_NO; /* input raced the cancel: stay awake */
	}
	if (res < 0) {
		log_debug("conn %u: network recv: %s", c->slot, strerror(-res));
		if (c->state == CS_TLS_HS) {
			c->net_eof = 1;
			handshake_step(d, c);
			return;
		}
		conn_close(d, c, 1);
		return;
	}
	if (res == 0) {
		c->net_eof = 1;
	} else if (tls_conn_feed(c->tls, c->nin, (size_t)res) < 0) {
		conn_close(d, c, 1);
		return;
	}
	if (c->state == CS_TLS_HS) {
		handshake_step(d, c);
	} else if (c->state == CS_PROXY) {
		pump_both(d, c);
	} else if (!c->net_eof) {
		/* Waiting for the app side (inbound dial): data stays in the engine;
		 * read on only when the app can take it. */
	}
}

static void net_send_done(struct ldmeshd *d, struct conn *c, int res)
{
	c->nout_spending = 0;
	if (res < 0) {
		log_debug("conn %u: network send: %s", c->slot, strerror(-res));
		conn_close(d, c, 1);
		return;
	}
	c->nout_off += (uint32_t)res;
	net_flush(d, c);
	if (c->handshake_failed && net_idle(c)) {
		conn_close(d, c, 1);
		return;
	}
	if (c->state == CS_PROXY) {
		pump_both(d, c);
	}
}

static int start_tls(struct ldmeshd *d, struct conn *c, int server)
{
	char key[80];

	if (!c->tls) {
		addr_format(&c->peer, key, sizeof(key));
		c->tls = tls_conn_new(d->tls, server, c->pin, server ? NULL : key);
		if (!c->tls) {
			return -ENOMEM;
		}
	}
	if (alloc_bufs(d, c) < 0) {
		return -ENOMEM;
	}
	c->state = CS_TLS_HS;
	c->deadline_ms = now_ms() + d->cfg->connect_timeout_ms;
	return 0;
}

/* ---- metrics -------------------------------------------------------------- */

static enum config_mtls port_mtls(const struct ldmeshd *d, uint16_t port_net);

/* Proxying starts: the connection joins its TCP series (tcp_open_total). */
static void tel_open(struct ldmeshd *d, struct conn *c)
{
	enum tel_tls tls = TEL_TLS_TRUE;
	int in = c->kind == CONN_INBOUND;

	if (c->same_pod) {
		tls = TEL_TLS_LOOPBACK;
	} else if (!c->tls) {
		if (in) {
			tls = port_mtls(d, c->local.port) == CONFIG_MTLS_DISABLE
				      ? TEL_TLS_DISABLED
				      : TEL_TLS_NOT_PROVIDED;
		} else {
			tls = c->in_mesh ? TEL_TLS_DISABLED : TEL_TLS_NO_MESH;
		}
	}
	c->tel = tel_tcp_series(&d->tel, in ? TEL_INBOUND : TEL_OUTBOUND, in ? &c->local : &c->peer,
				tls, c->peer_id);
	if (c->tel) {
		tel_tcp_open(c->tel);
		/* Bytes read while detecting TLS or HTTP count too. */
		c->tel->tcp_read += c->down.bytes;
		c->tel->tcp_write += c->up.bytes;
	}
}

/* ---- outbound ------------------------------------------------------------ */

/* Dialled (and authenticated): discard the filler, which makes the app's fd
 * writable, then proxy. */
static void outbound_ready(struct ldmeshd *d, struct conn *c)
{
	dial_outcome(d, c, 0);
	if (alloc_bufs(d, c) < 0) {
		conn_close(d, c, 1);
		return;
	}
	c->state = CS_FILLER;
	if (conn_submit_recv(d, c, c->a_fd, c->up.buf,
			     c->filler_left < (uint32_t)d->cfg->buffer_size
				     ? c->filler_left
				     : (uint32_t)d->cfg->buffer_size,
			     UD_FILLER_RECV) < 0) {
		conn_close(d, c, 1);
	}
}

static void outbound_connected(struct ldmeshd *d, struct conn *c)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int one = 1;

	if (getsockname(c->n_fd, (struct sockaddr *)&ss, &len) == 0) {
		addr_from_sockaddr((struct sockaddr *)&ss, len, &c->local);
	}
	/* Small writes from the app should not wait for Nagle on our hop. */
	setsockopt(c->n_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (c->tls_wanted) {
		if (start_tls(d, c, 0) < 0) {
			dial_outcome(d, c, -ENOMEM);
			conn_close(d, c, 1);
			return;
		}
		handshake_step(d, c);
		return;
	}
	outbound_ready(d, c);
}

static void filler_done(struct ldmeshd *d, struct conn *c, int res)
{
	if (res <= 0) {
		/* The app went away before it could use the connection. */
		conn_close(d, c, res < 0);
		return;
	}
	c->filler_left -= (uint32_t)res < c->filler_left ? (uint32_t)res : c->filler_left;
	if (c->filler_left) {
		if (conn_submit_recv(d, c, c->a_fd, c->up.buf, c->filler_left, UD_FILLER_RECV) <
		    0) {
			conn_close(d, c, 1);
		}
		return;
	}
	/* The app's fd is writable now; give it back a normal send buffer.  Its
	 * end must not stay open here, or we would never see the app close. */
	if (c->app_end_fd >= 0) {
		int sb = (int)(c->sndbuf / 2);
		if (sb > 0) {
			setsockopt(c->app_end_fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
		}
		close(c->app_end_fd);
		c->app_end_fd = -1;
	}
	c->state = CS_PROXY;
	tel_open(d, c);
	pump_both(d, c);
}

static void dial_done(struct ldmeshd *d, struct conn *c, int res)
{
	char dst[80];

	if (res == 0) {
		outbound_connected(d, c);
		return;
	}
	addr_format(&c->peer, dst, sizeof(dst));
	log_info("outbound dial to %s for pid %u failed: %s", dst, c->pid, strerror(-res));
	d->stats.dial_errors_total++;
	dial_outcome(d, c, res);
	/* Closing with the filler unread gives the app's fd an error. */
	conn_close(d, c, 1);
}

/* Which destinations get mTLS, and with which pinned identity. */
static void choose_outbound_tls(struct ldmeshd *d, struct conn *c)
{
	const struct config *cfg = d->cfg;
	size_t i, j;

	c->tls_wanted = 0;
	c->in_mesh = 0;
	c->pin = NULL;
	/* The pod's own address: the listener there is ours too, and hands
	 * the connection to its app as same-pod traffic, in plaintext. */
	if (podaddr_is_local(&d->pod, &c->peer, now_ms())) {
		c->same_pod = 1;
		d->stats.same_pod_proxied_total++;
		return;
	}
	for (i = 0; i < cfg->n_services; i++) {
		const struct config_service *svc = &cfg->services[i];
		for (j = 0; j < svc->n_endpoints; j++) {
			const struct ldm_addr *e = &svc->endpoints[j];
			if (e->family == c->peer.family && e->port == c->peer.port &&
			    !memcmp(e->addr, c->peer.addr, e->family == AF_INET6 ? 16 : 4)) {
				c->tls_wanted = d->tls != NULL;
				c->in_mesh = 1;
				c->pin = svc->identity;
				return;
			}
		}
	}
	c->in_mesh = config_in_mesh(cfg, &c->peer) != 0;
	/* Without an identity the daemon is a plaintext proxy (mTLS off). */
	c->tls_wanted = c->in_mesh && d->tls;
}

/*
 * Egress control: destinations outside the mesh are allowed when
 * outbound.egress = "allow", or when an egress_allow entry covers them.
 */
static int egress_allowed(const struct ldmeshd *d, const struct conn *c, int in_mesh)
{
	const struct config *cfg = d->cfg;
	uint16_t port = ntohs(c->peer.port);
	size_t i, j;

	if (in_mesh || c->same_pod || cfg->egress_allow_all) {
		return 1;
	}
	for (i = 0; i < cfg->n_egress_allow; i++) {
		const struct config_egress_rule *r = &cfg->egress_allow[i];
		if (!config_cidr_contains(&r->cidr, &c->peer)) {
			continue;
		}
		if (!r->n_ports) {
			return 1;
		}
		for (j = 0; j < r->n_ports; j++) {
			if (r->ports[j] == port) {
				return 1;
			}
		}
	}
	return 0;
}

void conn_start_outbound(struct ldmeshd *d, struct conn *c, int tcp_fd, int app_end_fd)
{
	c->kind = CONN_OUTBOUND;
	d->live_by_kind[CONN_HANDOFF]--;
	d->live_by_kind[CONN_OUTBOUND]++;
	c->n_fd = tcp_fd;
	c->app_end_fd = app_end_fd;
	c->state = CS_DIAL;
	c->deadline_ms = now_ms() + d->cfg->connect_timeout_ms;
	d->stats.outbound_total++;
	choose_outbound_tls(d, c);
	if (!egress_allowed(d, c, c->in_mesh)) {
		char dst[80];
		addr_format(&c->peer, dst, sizeof(dst));
		log_info("egress to %s denied for pid %u (outbound.egress = \"deny\", no "
			 "egress_allow entry)",
			 dst, c->pid);
		d->stats.egress_denied_total++;
		/* The app's connect() reports EACCES, as for a firewall rule. */
		dial_outcome(d, c, -EACCES);
		conn_close(d, c, 1);
		return;
	}
	c->dial_len = addr_to_sockaddr(&c->peer, &c->dial_sa);
	if (d->loop->ops->connect(d->loop, tcp_fd, (struct sockaddr *)&c->dial_sa, c->dial_len,
				  ud_make(UD_DIAL, c->slot, c->gen)) < 0) {
		dial_outcome(d, c, -ENOMEM);
		conn_close(d, c, 1);
		return;
	}
	c->inflight++;
}

/* ---- inbound ------------------------------------------------------------- */

/* Room kept in front of sniffed plaintext for the preamble. */
#define PREAMBLE_ROOM (sizeof(struct ldm_preamble))

/*
 * A same-pod connection: the preamble goes to the app's listener with the
 * accepted TCP socket attached, and the daemon lets go of both.  The app's
 * accept() puts the socket in place of the Unix connection (shim/
 * hook_accept.c), so its bytes never pass through here.
 */
static void hand_over_socket(struct ldmeshd *d, struct conn *c)
{
	struct ldm_preamble pre;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = &pre, .iov_len = sizeof(pre)};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *cm;
	ssize_t n;

	memset(&pre, 0, sizeof(pre));
	pre.magic = LDM_PREAMBLE_MAGIC;
	pre.version = LDM_PROTO_VERSION;
	pre.conn_id = c->cookie;
	pre.peer = c->peer;
	pre.local = c->local;
	memset(&u, 0, sizeof(u));
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &c->n_fd, sizeof(int));
	/* A fresh Unix connection has room for one small message: this send
	 * does not wait. */
	n = sendmsg(c->a_fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n != (ssize_t)sizeof(pre)) {
		char peer[80];
		addr_format(&c->peer, peer, sizeof(peer));
		log_warn("same-pod connection from %s: handing the socket to the app failed: %s",
			 peer, n < 0 ? strerror(errno) : "short send");
		conn_close(d, c, 1);
		return;
	}
	d->stats.same_pod_handed_total++;
	/* Ours was only a second reference: closing it sends nothing. */
	close(c->n_fd);
	c->n_fd = -1;
	conn_close(d, c, 0);
}

static void app_dial_done(struct ldmeshd *d, struct conn *c, int res)
{
	struct ldm_preamble pre;
	size_t idlen = strlen(c->peer_id), held = c->down.len;

	if (res < 0) {
		char peer[80];
		addr_format(&c->peer, peer, sizeof(peer));
		log_warn("inbound from %s: app listener unreachable: %s", peer, strerror(-res));
		conn_close(d, c, 1);
		return;
	}
	if (c->hand_socket) {
		hand_over_socket(d, c);
		return;
	}
	if (c->same_pod) {
		d->stats.same_pod_proxied_total++; /* a shim that cannot take it */
	}
	if (alloc_bufs(d, c) < 0) {
		conn_close(d, c, 1);
		return;
	}
	/* The preamble is the first thing the app reads; it goes out on its
	 * own (down_deliver), and plaintext the client already sent (held at
	 * PREAMBLE_ROOM by the detection read) follows through the HTTP layer
	 * like any other request bytes. */
	memset(&pre, 0, sizeof(pre));
	pre.magic = LDM_PREAMBLE_MAGIC;
	pre.version = LDM_PROTO_VERSION;
	pre.id_len = (uint16_t)idlen;
	pre.conn_id = c->cookie;
	pre.peer = c->peer;
	pre.local = c->local;
	c->ctl_out = malloc(sizeof(pre) + idlen);
	if (!c->ctl_out) {
		conn_close(d, c, 1);
		return;
	}
	memcpy(c->ctl_out, &pre, sizeof(pre));
	memcpy(c->ctl_out + sizeof(pre), c->peer_id, idlen);
	c->ctl_out_len = sizeof(pre) + idlen;
	c->ctl_out_off = 0;
	c->down.off = held ? (uint32_t)PREAMBLE_ROOM : 0;
	c->down.len = held ? (uint32_t)(PREAMBLE_ROOM + held) : 0;
	c->state = CS_PROXY;
	tel_open(d, c);
	if (held) {
		want_l7(d, c);
	}
	pump_both(d, c);
}

static void connect_app(struct ldmeshd *d, struct conn *c)
{
	c->state = CS_APP_DIAL;
	c->deadline_ms = now_ms() + d->cfg->connect_timeout_ms;
	if (d->loop->ops->connect(d->loop, c->a_fd, (struct sockaddr *)&c->dial_sa, c->dial_len,
				  ud_make(UD_APP_DIAL, c->slot, c->gen)) < 0) {
		conn_close(d, c, 1);
		return;
	}
	c->inflight++;
}

/*
 * The connection-level policy decision, once the caller's identity is known
 * (after the handshake, or none for plaintext).  When rules for this port
 * look at requests, the decision waits for each HTTP request instead.
 */
static void inbound_admit(struct ldmeshd *d, struct conn *c)
{
	struct policy_request req = {0};
	struct policy_result res;

	req.principal = c->peer_id;
	req.port = ntohs(c->local.port);
	policy_decide(d->policy, POLICY_AT_CONNECT, &req, &res);
	if (res.decision == POLICY_PENDING) {
		c->l7_policy = 1;
	} else {
		policy_account(d, &req, &res);
		if (res.decision == POLICY_DENY) {
			char peer[80];
			addr_format(&c->peer, peer, sizeof(peer));
			log_info("inbound connection from %s (%s) to port %u denied by %s", peer,
				 c->peer_id[0] ? c->peer_id : "no identity", req.port, res.rule);
			if (c->tls) {
				/* close_notify before any ticket tells a meshed client it
				 * was refused; flushed, then reset (net_send_done). */
				tls_conn_close_notify(c->tls);
				c->handshake_failed = 1;
				c->deadline_ms = now_ms() + 1000;
				net_flush(d, c);
				if (net_idle(c)) {
					conn_close(d, c, 1);
				}
				return;
			}
			conn_close(d, c, 1);
			return;
		}
		if (res.rule) {
			snprintf(c->rule, sizeof(c->rule), "%s", res.rule);
		}
	}
	if (c->tls) {
		tls_conn_admit(c->tls);
		net_flush(d, c);
	}
	connect_app(d, c);
}

static void inbound_authenticated(struct ldmeshd *d, struct conn *c)
{
	inbound_admit(d, c);
}

static enum config_mtls port_mtls(const struct ldmeshd *d, uint16_t port_net)
{
	const struct config *cfg = d->cfg;
	uint16_t port = ntohs(port_net);
	size_t i;

	for (i = 0; i < cfg->n_inbound_ports; i++) {
		if (cfg->inbound_ports[i].port == port) {
			return cfg->inbound_ports[i].mtls;
		}
	}
	return cfg->inbound_mtls;
}

#define DETECT_TIMEOUT_MS 1000

static void detect_done(struct ldmeshd *d, struct conn *c, int res)
{
	const uint8_t *first = (const uint8_t *)c->down.buf + PREAMBLE_ROOM;
	char peer[80];

	c->down.rpending = 0;
	if (c->detect_expired && res < 0) {
		/* Cancelled after the detection timeout: nothing was said. */
		c->down.len = 0;
		d->stats.plaintext_accepted_total++;
		inbound_admit(d, c);
		return;
	}
	if (res <= 0) {
		conn_close(d, c, res < 0);
		return;
	}
	addr_format(&c->peer, peer, sizeof(peer));
	if (tls_looks_like_client_hello(first, (size_t)res)) {
		/* Feed before start_tls grows the buffers (and may move them). */
		c->tls = tls_conn_new(d->tls, 1, NULL, NULL);
		if (!c->tls || tls_conn_feed(c->tls, first, (size_t)res) < 0 ||
		    start_tls(d, c, 1) < 0) {
			conn_close(d, c, 1);
			return;
		}
		handshake_step(d, c);
		return;
	}
	if (port_mtls(d, c->local.port) == CONFIG_MTLS_STRICT) {
		log_warn("inbound plaintext connection from %s refused: port %u requires mTLS",
			 peer, ntohs(c->local.port));
		d->stats.plaintext_refused_total++;
		conn_close(d, c, 1);
		return;
	}
	/* Permissive: an unmeshed client, no identity. */
	d->stats.plaintext_accepted_total++;
	c->down.len = (uint32_t)res;
	inbound_admit(d, c);
}

/* The client said nothing in time.  Strict: give up.  Permissive: it may be
 * waiting for a server that speaks first; cancel the read and hand it to
 * the app as plaintext when the cancellation reports back. */
static void detect_timeout(struct ldmeshd *d, struct conn *c)
{
	if (port_mtls(d, c->local.port) == CONFIG_MTLS_STRICT) {
		char peer[80];
		addr_format(&c->peer, peer, sizeof(peer));
		log_info("inbound connection from %s sent nothing; closing", peer);
		conn_close(d, c, 1);
		return;
	}
	c->detect_expired = 1;
	d->loop->ops->cancel_fd(d->loop, c->n_fd);
}

/*
 * Names our end after the TCP addresses, so an app that passes the accepted
 * fd to an exec'd child (sshd does) can still get them (addrname.h).
 */
static void bind_inbound_name(const struct conn *c)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char *p = sun.sun_path + 1;
	size_t left = sizeof(sun.sun_path) - 1;
	int w;

	w = snprintf(p, left, LDM_NAME_IN "%x%x-", (unsigned)getpid(), c->gen);
	w += addrname_put(p + w, left - (size_t)w, &c->peer);
	w += snprintf(p + w, left - (size_t)w, "-");
	w += addrname_put(p + w, left - (size_t)w, &c->local);
	if (w > 0 && (size_t)w < left) {
		/* Best effort: without the name only exec'd children lose out. */
		bind(c->a_fd, (struct sockaddr *)&sun,
		     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)w));
	}
}

void conn_start_inbound(struct ldmeshd *d, int tcp_fd, int listener_slot)
{
	struct listener *l = &d->listeners[listener_slot];
	struct sockaddr_storage ss;
	struct sockaddr_un *sun;
	socklen_t len = sizeof(ss);
	size_t nlen;
	struct conn *c;
	int u, one = 1;

	u = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u < 0) {
		log_warn("inbound: socket: %s", strerror(errno));
		close(tcp_fd);
		return;
	}
	c = conn_new(d, CONN_INBOUND, u);
	if (!c) {
		log_warn("inbound: connection limit reached, refusing");
		close(u);
		close(tcp_fd);
		return;
	}
	c->n_fd = tcp_fd;
	c->listener_slot = listener_slot;
	c->pid = l->pid;
	/* Our own id for LDM_OP_RESET; the top bit keeps it apart from shim
	 * cookies, which never set it (see shim/link.c). */
	c->cookie = (1ULL << 63) | ((uint64_t)c->gen << 24) | c->slot;
	d->stats.inbound_total++;
	if (getpeername(tcp_fd, (struct sockaddr *)&ss, &len) == 0) {
		addr_from_sockaddr((struct sockaddr *)&ss, len, &c->peer);
	}
	len = sizeof(ss);
	if (getsockname(tcp_fd, (struct sockaddr *)&ss, &len) == 0) {
		addr_from_sockaddr((struct sockaddr *)&ss, len, &c->local);
	}
	bind_inbound_name(c);

	memset(&c->dial_sa, 0, sizeof(c->dial_sa));
	sun = (struct sockaddr_un *)&c->dial_sa;
	sun->sun_family = AF_UNIX;
	nlen = strnlen(l->name, sizeof(l->name));
	memcpy(sun->sun_path + 1, l->name, nlen);
	c->dial_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + nlen);

	/* Inside the pod: one trust zone, the app gets the client as it is,
	 * with no detection, mTLS, policy or HTTP layer (docs/security.md). */
	if (podaddr_is_local(&d->pod, &c->peer, now_ms())) {
		c->same_pod = 1;
		c->l7_done = 1;
		c->hand_socket = (uint8_t)l->takes_socket;
		connect_app(d, c);
		return;
	}
	setsockopt(tcp_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	if (!d->tls || port_mtls(d, c->local.port) == CONFIG_MTLS_DISABLE) {
		/* No detection: server-speaks-first protocols start at once. */
		inbound_admit(d, c);
		return;
	}
	/* Plain buffers first: the sniffed bytes may be the app's plaintext. */
	if (alloc_bufs(d, c) < 0) {
		conn_close(d, c, 1);
		return;
	}
	c->state = CS_DETECT;
	c->deadline_ms = now_ms() + (port_mtls(d, c->local.port) == CONFIG_MTLS_PERMISSIVE
					     ? DETECT_TIMEOUT_MS
					     : d->cfg->connect_timeout_ms);
	if (conn_submit_recv(d, c, tcp_fd, c->down.buf + PREAMBLE_ROOM,
			     (size_t)d->cfg->buffer_size - PREAMBLE_ROOM, UD_DETECT_RECV) < 0) {
		conn_close(d, c, 1);
		return;
	}
	c->down.rpending = 1;
}

/* ---- dispatch and timers ------------------------------------------------- */

void conn_set_handler(struct ldmeshd *d, enum ud_tag tag, conn_done_fn fn)
{
	if (tag > 0 && tag < UD_TAG_COUNT) {
		d->conn_handlers[tag] = fn;
	}
}

void conn_set_dial_observer(struct ldmeshd *d, conn_dial_fn fn)
{
	d->dial_observer = fn;
}

void conn_complete(struct ldmeshd *d, struct conn *c, enum ud_tag tag, int res)
{
	c->inflight--;
	c->last_ms = now_ms();
	if (c->state == CS_CLOSING) {
		return;
	}
	switch (tag) {
	case UD_DIAL:
		c->deadline_ms = 0;
		dial_done(d, c, res);
		break;
	case UD_FILLER_RECV:
		filler_done(d, c, res);
		break;
	case UD_APP_DIAL:
		c->deadline_ms = 0;
		app_dial_done(d, c, res);
		break;
	case UD_DETECT_RECV:
		detect_done(d, c, res);
		break;
	case UD_NET_RECV:
		net_recv_done(d, c, res);
		break;
	case UD_NET_SEND:
		net_send_done(d, c, res);
		break;
	case UD_UP_RECV:
		recv_done(d, c, &c->up, res);
		break;
	case UD_DOWN_RECV:
		recv_done(d, c, &c->down, res);
		break;
	case UD_UP_SEND:
		send_done(d, c, &c->up, res);
		break;
	case UD_PREAMBLE_SEND:
		c->down.spending = 0;
		if (res < 0) {
			conn_close(d, c, 1);
			break;
		}
		c->ctl_out_off += (size_t)res;
		pump_both(d, c);
		break;
	case UD_L7_SEND:
		c->down.spending = 0;
		if (res < 0) {
			conn_close(d, c, 1);
			break;
		}
		c->l7->out_off += (uint32_t)res;
		pump_both(d, c);
		break;
	case UD_INJECT_SEND:
		c->up.spending = 0;
		if (res < 0 || (uint32_t)res < c->l7->inject_len) {
			/* 256 bytes on a connected socket: short only when it broke. */
			conn_close(d, c, 1);
			break;
		}
		inject_sent(d, c);
		pump_both(d, c);
		break;
	case UD_DOWN_SEND:
		send_done(d, c, &c->down, res);
		break;
	case UD_PARK_POLL_APP:
	case UD_PARK_POLL_NET:
		park_wake(d, c, tag);
		break;
	case UD_LINK_RECV:
		/* The shim never writes on a link: data or EOF both end it. */
		conn_close(d, c, 0);
		break;
	case UD_CTL_SEND:
	case UD_ADMIN_SEND:
		answer_sent(d, c, res, tag);
		break;
	default:
		if (tag > 0 && tag < UD_TAG_COUNT && d->conn_handlers[tag]) {
			d->conn_handlers[tag](d, c, res);
		}
		break;
	}
}

void conn_detect_sweep(struct ldmeshd *d, int64_t now)
{
	uint32_t i;

	d->l7_detect_armed = 0;
	for (i = 0; i < d->nslots; i++) {
		struct conn *c = d->conns[i];
		if (!c || c->state != CS_PROXY || !c->l7 || !c->l7->held_since) {
			continue;
		}
		if (now - c->l7->held_since < L7_DETECT_MS) {
			d->l7_detect_armed = 1;
			continue;
		}
		if (l7_detect_timeout(d, c) < 0) {
			conn_close(d, c, 1);
		} else {
			pump_both(d, c);
		}
	}
}

/* ---- idle connections ---------------------------------------------------- */

/*
 * A proxied connection quiet for PARK_AFTER_MS with nothing buffered gives
 * its buffers back (2 or 4 * buffer_size, the HTTP output buffer, the TLS
 * engine's): its two reads are cancelled and replaced by polls, which hold
 * no memory, and the first input on either side brings the buffers back.
 * This is what keeps thousands of idle keep-alive connections cheap.
 */
#define PARK_AFTER_MS 2000

static int parkable(const struct conn *c)
{
	const struct l7 *h = c->l7;

	if (c->state != CS_PROXY || c->parked || !c->bufs || c->inflight != 2) {
		return 0;
	}
	if (c->up.len || c->down.len || c->up.eof || c->down.eof || c->up.spending ||
	    c->down.spending || c->ctl_out_off < c->ctl_out_len) {
		return 0;
	}
	/* Exactly a read posted on each side, nothing else. */
	if (!c->up.rpending ||
	    (c->tls ? !c->nin_rpending || c->down.rpending : !c->down.rpending)) {
		return 0;
	}
	if (c->tls && (!net_idle(c) || c->net_eof)) {
		return 0;
	}
	if (h && (h->out_len || h->inject_len || h->hold || h->held_since || h->head_since)) {
		return 0;
	}
	return 1;
}

static void park_start(struct ldmeshd *d, struct conn *c)
{
	const struct loop_ops *ops = d->loop->ops;

	c->parked = PARK_CANCELLING;
	ops->cancel(d->loop, c->a_fd, ud_make(UD_UP_RECV, c->slot, c->gen));
	ops->cancel(d->loop, c->n_fd,
		    ud_make(c->tls ? UD_NET_RECV : UD_DOWN_RECV, c->slot, c->gen));
}

/* Both reads are back (cancelled): let go of the buffers, wait by poll. */
static void park_finish(struct ldmeshd *d, struct conn *c)
{
	if (c->tls && tls_conn_trim(c->tls) == -EAGAIN) {
		c->parked = PARK_NO; /* bytes arrived into the engine meanwhile */
		pump_both(d, c);
		return;
	}
	free(c->bufs);
	c->bufs = NULL;
	c->bufs_tls = 0;
	c->up.buf = c->down.buf = c->nin = c->nout = NULL;
	if (c->l7 && l7_idle(c->l7)) {
		/* Between requests: made again by want_l7() at the next byte. */
		l7_free(c->l7);
		c->l7 = NULL;
	} else if (c->l7) {
		l7_trim(c->l7);
	}
	if (d->loop->ops->poll_in(d->loop, c->a_fd, ud_make(UD_PARK_POLL_APP, c->slot, c->gen)) <
	    0) {
		conn_close(d, c, 1);
		return;
	}
	c->inflight++;
	if (d->loop->ops->poll_in(d->loop, c->n_fd, ud_make(UD_PARK_POLL_NET, c->slot, c->gen)) <
	    0) {
		conn_close(d, c, 1);
		return;
	}
	c->inflight++;
	c->parked = PARK_PARKED;
	d->parked++;
}

static void park_read_cancelled(struct ldmeshd *d, struct conn *c)
{
	if (c->parked == PARK_CANCELLING) {
		if (!c->up.rpending && !c->down.rpending && !c->nin_rpending) {
			park_finish(d, c);
		}
		return;
	}
	pump_both(d, c); /* parking was called off: read again */
}

static void park_wake(struct ldmeshd *d, struct conn *c, enum ud_tag tag)
{
	if (c->parked != PARK_PARKED) {
		return; /* the other side's poll, cancelled after a wake */
	}
	c->parked = PARK_NO;
	d->parked--;
	if (tag == UD_PARK_POLL_APP) {
		d->loop->ops->cancel(d->loop, c->n_fd, ud_make(UD_PARK_POLL_NET, c->slot, c->gen));
	} else {
		d->loop->ops->cancel(d->loop, c->a_fd, ud_make(UD_PARK_POLL_APP, c->slot, c->gen));
	}
	if (alloc_bufs(d, c) < 0 || (c->l7 && l7_untrim(c->l7) < 0)) {
		conn_close(d, c, 1);
		return;
	}
	pump_both(d, c);
}

void conn_sweep(struct ldmeshd *d, int64_t now)
{
	uint32_t i;

	for (i = 0; i < d->nslots; i++) {
		struct conn *c = d->conns[i];
		if (!c || c->state == CS_CLOSING) {
			continue;
		}
		if (c->deadline_ms && now >= c->deadline_ms && c->state == CS_TLS_HS &&
		    c->verdict_wait) {
			c->deadline_ms = 0;
			tls_conn_accept_verdict(c->tls);
			handshake_step(d, c);
			continue;
		}
		if (c->deadline_ms && now >= c->deadline_ms && c->state == CS_DETECT) {
			c->deadline_ms = 0;
			detect_timeout(d, c);
			continue;
		}
		if (c->deadline_ms && now >= c->deadline_ms) {
			char peer[80];
			addr_format(&c->peer, peer, sizeof(peer));
			if (c->state == CS_TLS_HS && c->handshake_failed) {
				/* The alert did not get out in time: counted already. */
			} else if (c->state == CS_TLS_HS) {
				int out = c->kind == CONN_OUTBOUND;
				log_warn("%s TLS handshake with %s timed out",
					 out ? "outbound" : "inbound", peer);
				d->stats.handshake_errors_total[out][TLS_PROTOCOL]++;
				d->stats.timeouts_total[TIMEOUT_TLS_HANDSHAKE]++;
				if (out) {
					dial_outcome(d, c, -ETIMEDOUT);
				}
			} else if (c->state == CS_DIAL) {
				log_info("outbound dial to %s timed out", peer);
				d->stats.dial_errors_total++;
				d->stats.timeouts_total[TIMEOUT_DIAL]++;
				dial_outcome(d, c, -ETIMEDOUT);
			} else if (c->kind == CONN_HANDOFF || c->kind == CONN_CTL ||
				   c->kind == CONN_ADMIN) {
				log_warn("%s client sent no complete request in time; closing",
					 conn_kind_name(c->kind));
				d->stats.timeouts_total[TIMEOUT_CONTROL]++;
				if (c->kind == CONN_HANDOFF) {
					d->stats.handoff_errors_total++;
				} else {
					d->stats.ctl_errors_total++;
				}
			} else {
				log_info("%s connection %s timed out", conn_kind_name(c->kind),
					 peer);
			}
			conn_close(d, c, 1);
			continue;
		}
		if (c->state == CS_PROXY && c->l7 && c->l7->head_since &&
		    d->cfg->http_head_timeout_ms > 0 &&
		    now - c->l7->head_since >= d->cfg->http_head_timeout_ms) {
			char peer[80];
			addr_format(&c->peer, peer, sizeof(peer));
			log_info("inbound from %s: request head not complete after %d ms; closing",
				 peer, d->cfg->http_head_timeout_ms);
			d->stats.timeouts_total[TIMEOUT_HTTP_HEAD]++;
			conn_close(d, c, 1);
			continue;
		}
		if (c->state == CS_PROXY && d->cfg->idle_timeout_ms > 0 &&
		    now - c->last_ms >= d->cfg->idle_timeout_ms) {
			log_debug("conn %u idle for %d ms; closing", c->slot,
				  d->cfg->idle_timeout_ms);
			d->stats.timeouts_total[TIMEOUT_IDLE]++;
			conn_close(d, c, 1);
			continue;
		}
		if (now - c->last_ms >= PARK_AFTER_MS && parkable(c)) {
			park_start(d, c);
		}
	}
}
