/*
 * The event loops (`workers`): one thread each, each with its own ring (or
 * epoll set), connections, links, balancer and DNS in its own struct proxy.
 * A connection belongs to the loop that adopted it for its whole life.
 *
 * What the loops share, and how:
 *   - the listening sockets (handoff.sock, the apps' listeners): every loop
 *     arms its own accept on a duplicate of the same socket; the link
 *     listener only in loop 0.  A loop that accepts a connection while
 *     another one holds fewer passes it there (spread()) through the
 *     other's mailbox, so both keep-alive and short connections spread
 *     however the kernel hands out the accepts;
 *   - the config, its compiled policy and the SVID: immutable, counted
 *     references published by loop 0 (workers_publish()) and adopted by
 *     each loop between two turns;
 *   - the shim's dial results (proxy/handoff.c), behind a small lock;
 *   - nothing else on the data path.  The control surfaces read what each
 *     loop owns by running a function in its thread (workers_call()).
 *
 * A mailbox is a locked array of messages and a datagram socket pair whose
 * read end each loop keeps a read armed on: the lock is taken once per
 * message posted and once per turn that has mail.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ldmeshd.h"
#include "util/cpus.h"
#include "util/log.h"

/* A config and the policy compiled from it, as the loops hold them. */
struct shared_conf {
	atomic_int refs;
	struct config *cfg; /* owned */
	struct policy_set *policy; /* owned */
};

enum wmsg_kind {
	WM_HANDOFF_FD, /* a shim connection to serve */
	WM_LISTENER_FD, /* an inbound connection of listener key */
	WM_LINK_FD, /* a link from another daemon */
	WM_MIRROR, /* accept on listener l too (fd: a duplicate) */
	WM_UNMIRROR, /* the sender let go of listener key */
	WM_RESET, /* a shim's LDM_OP_RESET, maybe for a connection here */
	WM_DRAIN, /* drain, for up to key ms */
	WM_CALL, /* run call->fn here */
};

struct reset_req {
	uint64_t cookie;
	int reply_fd; /* owned: answered once every loop looked */
	atomic_int left, found;
};

struct wcall {
	void (*fn)(struct worker *w, void *arg);
	void *arg;
	int pending; /* guarded by d->call_lock */
};

struct wmsg {
	enum wmsg_kind kind;
	int fd; /* owned by the message */
	uint64_t key;
	struct listener l; /* WM_MIRROR */
	struct reset_req *reset;
	struct wcall *call;
};

/* ---- the config the loops run -------------------------------------------------- */

static void conf_put(struct shared_conf *c)
{
	if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1) {
		config_free(c->cfg);
		policy_free(c->policy);
		free(c);
	}
}

int workers_wanted(const struct config *cfg)
{
	int n;

	if (cfg->workers > 0) {
		return cfg->workers;
	}
	n = cpus_usable();
	return n < cfg->max_workers ? n : cfg->max_workers;
}

int workers_series_cap(const struct ldmeshd *d, const struct config *cfg)
{
	int n = d->nworkers > 1 ? d->nworkers : 1;

	/* Each loop holds its share, so that the scrape, which adds them up,
	 * shows at most max_series label sets. */
	return cfg->max_series / n > 0 ? cfg->max_series / n : 1;
}

/* w takes what loop 0 published last, if it has not yet. */
static void adopt(struct worker *w)
{
	struct ldmeshd *d = w->d;
	struct shared_conf *conf, *old;
	struct tls_ctx *tls;
	unsigned long long gen;

	if (atomic_load_explicit(&d->pub_gen, memory_order_acquire) == w->conf_gen) {
		return;
	}
	pthread_mutex_lock(&d->pub_lock);
	conf = d->pub_conf;
	atomic_fetch_add_explicit(&conf->refs, 1, memory_order_relaxed);
	tls = d->pub_tls;
	if (tls) {
		tls_ctx_ref(tls);
	}
	gen = atomic_load(&d->pub_gen);
	pthread_mutex_unlock(&d->pub_lock);

	old = w->conf;
	w->conf = conf;
	w->conf_gen = gen;
	w->px->cfg = conf->cfg;
	w->px->policy = conf->policy;
	conf_put(old);
	if (w->index) {
		/* Loop 0's is the identity itself; the others hold the same
		 * context.  Connections keep the one they started with. */
		tls_ctx_unref(w->id->tls);
		w->id->tls = tls;
		if (old) {
			char err[256];
			if (accesslog_configure(w->alog, conf->cfg->access_log, err, sizeof(err)) <
			    0) {
				log_warn("loop %d: access log: %s", w->index, err);
			}
		}
	} else {
		tls_ctx_unref(tls);
	}
	tel_set_max(w->tel, workers_series_cap(d, conf->cfg));
}

int workers_publish(struct ldmeshd *d, struct config *cfg, struct policy_set *policy)
{
	struct shared_conf *c = calloc(1, sizeof(*c)), *old;
	struct tls_ctx *tls_old;
	int i;

	if (!c) {
		return -ENOMEM;
	}
	atomic_init(&c->refs, 1); /* the publication's */
	c->cfg = cfg;
	c->policy = policy;
	if (d->id.tls) {
		tls_ctx_ref(d->id.tls);
	}
	pthread_mutex_lock(&d->pub_lock);
	old = d->pub_conf;
	tls_old = d->pub_tls;
	d->pub_conf = c;
	d->pub_tls = d->id.tls;
	atomic_fetch_add_explicit(&d->pub_gen, 1, memory_order_release);
	pthread_mutex_unlock(&d->pub_lock);
	conf_put(old);
	tls_ctx_unref(tls_old);
	if (d->nworkers) {
		adopt(d->workers[0]);
	}
	for (i = 1; i < d->nworkers; i++) {
		struct worker *w = d->workers[i];
		if (!atomic_exchange(&w->mail, 1)) {
			(void)!write(w->wake_wr, "c", 1);
		}
	}
	return 0;
}

void workers_publish_identity(struct ldmeshd *d)
{
	struct tls_ctx *old;
	int i;

	if (d->pub_tls == d->id.tls) { /* only loop 0 writes either */
		return;
	}
	if (d->id.tls) {
		tls_ctx_ref(d->id.tls);
	}
	pthread_mutex_lock(&d->pub_lock);
	old = d->pub_tls;
	d->pub_tls = d->id.tls;
	atomic_fetch_add_explicit(&d->pub_gen, 1, memory_order_release);
	pthread_mutex_unlock(&d->pub_lock);
	tls_ctx_unref(old);
	for (i = 0; i < d->nworkers; i++) {
		struct worker *w = d->workers[i];
		if (i == 0) {
			adopt(w);
		} else if (!atomic_exchange(&w->mail, 1)) {
			(void)!write(w->wake_wr, "c", 1);
		}
	}
}

void workers_publish_end(struct ldmeshd *d)
{
	conf_put(d->pub_conf);
	tls_ctx_unref(d->pub_tls);
	d->pub_conf = NULL;
	d->pub_tls = NULL;
}

/* ---- mailboxes ---------------------------------------------------------------------- */

/* Queues m for w and wakes it; -EPIPE when w has stopped (m not taken). */
static int post(struct worker *w, const struct wmsg *m)
{
	int r = 0;

	pthread_mutex_lock(&w->lock);
	if (w->exited) {
		r = -EPIPE;
	} else if (w->n_inbox == w->cap_inbox) {
		size_t nc = w->cap_inbox ? w->cap_inbox * 2 : 64;
		struct wmsg *p = realloc(w->inbox, nc * sizeof(*p));
		if (!p) {
			r = -ENOMEM;
		} else {
			w->inbox = p;
			w->cap_inbox = nc;
		}
	}
	if (r == 0) {
		w->inbox[w->n_inbox++] = *m;
	}
	pthread_mutex_unlock(&w->lock);
	if (r == 0 && !atomic_exchange(&w->mail, 1)) {
		(void)!write(w->wake_wr, "m", 1); /* full: a wake-up is pending anyway */
	}
	return r;
}

void workers_wake_all(struct ldmeshd *d)
{
	int i;

	for (i = 0; i < d->nworkers; i++) {
		struct worker *w = d->workers[i];
		if (!atomic_exchange(&w->mail, 1)) {
			(void)!write(w->wake_wr, "w", 1);
		}
	}
}

void workers_arm_wake(struct worker *w)
{
	struct loop *l = w->px->loop;

	if (w->wake_armed || w->d->nworkers < 2) {
		return;
	}
	if (l->ops->recv(l, w->wake_rd, w->wake_buf, sizeof(w->wake_buf),
			 ud_make(UD_WORKER_WAKE, 0, 0)) == 0) {
		w->wake_armed = 1;
	}
}

void workers_wake_done(struct worker *w, int res)
{
	(void)res;
	w->wake_armed = 0;
	/* Several wake-ups may have queued: read them all, nothing blocks. */
	while (recv(w->wake_rd, w->wake_buf, sizeof(w->wake_buf), MSG_DONTWAIT) > 0) {
	}
}

static void reset_done(struct reset_req *r)
{
	if (atomic_fetch_sub(&r->left, 1) == 1) {
		handoff_answer(r->reply_fd, r->cookie, atomic_load(&r->found) ? 0 : -ENOENT);
		close(r->reply_fd);
		free(r);
	}
}

static void call_done(struct ldmeshd *d, struct wcall *c)
{
	pthread_mutex_lock(&d->call_lock);
	c->pending--;
	pthread_cond_broadcast(&d->call_cond);
	pthread_mutex_unlock(&d->call_lock);
}

/* One message in w's thread; what cannot be served any more is closed. */
static void deliver(struct worker *w, struct wmsg *m, int stopped)
{
	struct proxy *px = w->px;

	switch (m->kind) {
	case WM_HANDOFF_FD:
		if (stopped || px->handoff_fd < 0) {
			close(m->fd);
		} else {
			handoff_adopt(px, m->fd);
		}
		break;
	case WM_LISTENER_FD:
		if (stopped) {
			close(m->fd);
		} else {
			listener_adopt(px, m->key, m->fd);
		}
		break;
	case WM_LINK_FD:
		if (stopped) {
			close(m->fd);
		} else {
			links_adopt(px, m->fd);
		}
		break;
	case WM_MIRROR:
		if (stopped) {
			close(m->fd);
		} else {
			listener_mirror(px, &m->l, m->fd);
		}
		break;
	case WM_UNMIRROR:
		if (!stopped) {
			listener_unmirror(px, m->key);
		}
		break;
	case WM_RESET:
		if (!stopped && handoff_reset_here(px, m->reset->cookie) == 0) {
			atomic_store(&m->reset->found, 1);
		}
		reset_done(m->reset);
		break;
	case WM_DRAIN:
		if (!stopped) {
			w->drain_deadline_ms = now_ms() + (int64_t)m->key;
			ldmeshd_drain_loop(w);
		}
		break;
	case WM_CALL:
		m->call->fn(w, m->call->arg);
		call_done(w->d, m->call);
		break;
	}
}

/* Takes w's mail; stopped: w's loop no longer runs (exit). */
static unsigned take_mail(struct worker *w, int stopped)
{
	struct wmsg *msgs;
	size_t n, i;
	unsigned adopted = 0;

	atomic_store(&w->mail, 0);
	pthread_mutex_lock(&w->lock);
	msgs = w->inbox;
	n = w->n_inbox;
	w->inbox = NULL;
	w->n_inbox = w->cap_inbox = 0;
	if (stopped) {
		w->exited = 1;
	}
	pthread_mutex_unlock(&w->lock);
	for (i = 0; i < n; i++) {
		adopted += msgs[i].kind <= WM_LINK_FD;
		deliver(w, &msgs[i], stopped);
	}
	free(msgs);
	return adopted;
}

/* What a loop carries: its proxied connections (and shim connections on
 * their way to being one), and its links to other daemons, which count
 * before their streams arrive.  Listener registrations and control clients
 * carry nothing. */
static unsigned load_of(const struct proxy *px)
{
	return px->live_by_kind[CONN_OUTBOUND] + px->live_by_kind[CONN_INBOUND] +
	       px->live_by_kind[CONN_HANDOFF] + px->links.n;
}

void workers_turn(struct worker *w)
{
	unsigned adopted = 0;

	/* The config first: what the mail asks (a control surface reading
	 * this loop) then sees what loop 0 already runs. */
	adopt(w);
	if (atomic_load_explicit(&w->mail, memory_order_acquire)) {
		adopted = take_mail(w, 0);
	}
	/* What the others compare against: the connections adopted here are
	 * in live before they leave incoming, never in neither. */
	atomic_store_explicit(&w->load, load_of(w->px), memory_order_relaxed);
	if (adopted) {
		atomic_fetch_sub(&w->incoming, adopted);
	}
}

/* ---- spreading connections ---------------------------------------------------------- */

static int spread(struct proxy *px, enum spread_kind kind, uint64_t key, int fd)
{
	struct ldmeshd *d = ldmeshd_of(px);
	struct worker *best = NULL;
	unsigned mine = load_of(px) + atomic_load(&d->workers[px->worker]->incoming), least = mine;
	struct wmsg m = {.fd = fd, .key = key};
	int i;

	if (d->nworkers < 2 || px->draining) {
		return 0;
	}
	for (i = 0; i < d->nworkers; i++) {
		struct worker *w = d->workers[i];
		unsigned load;

		if (i == px->worker || atomic_load(&w->draining)) {
			continue;
		}
		load = atomic_load_explicit(&w->load, memory_order_relaxed) +
		       atomic_load(&w->incoming);
		if (load < least) {
			least = load;
			best = w;
		}
	}
	if (!best) {
		return 0;
	}
	m.kind = kind == SPREAD_HANDOFF	   ? WM_HANDOFF_FD
		 : kind == SPREAD_LISTENER ? WM_LISTENER_FD
					   : WM_LINK_FD;
	atomic_fetch_add(&best->incoming, 1);
	if (post(best, &m) < 0) {
		atomic_fetch_sub(&best->incoming, 1);
		return 0;
	}
	return 1;
}

static void listener_changed(struct proxy *px, const struct listener *l, int added)
{
	struct ldmeshd *d = ldmeshd_of(px);
	int i;

	for (i = 0; i < d->nworkers; i++) {
		struct wmsg m = {.kind = added ? WM_MIRROR : WM_UNMIRROR, .fd = -1, .key = l->id};

		if (i == px->worker) {
			continue;
		}
		if (added) {
			m.l = *l;
			m.fd = fcntl(l->tcp_fd, F_DUPFD_CLOEXEC, 0);
			if (m.fd < 0) {
				log_warn("listener mirror for loop %d: %s", i, strerror(errno));
				continue;
			}
		}
		if (post(d->workers[i], &m) < 0 && m.fd >= 0) {
			close(m.fd);
		}
	}
}

static int reset_elsewhere(struct proxy *px, uint64_t cookie, int reply_fd)
{
	struct ldmeshd *d = ldmeshd_of(px);
	struct reset_req *r = calloc(1, sizeof(*r));
	int i, posted = 0;

	if (!r) {
		return -ENOMEM;
	}
	r->cookie = cookie;
	r->reply_fd = reply_fd;
	/* One count per other loop, and ours until they are all asked, so
	 * that no loop answers while others are still to be asked. */
	atomic_init(&r->left, d->nworkers);
	for (i = 0; i < d->nworkers; i++) {
		struct wmsg m = {.kind = WM_RESET, .fd = -1, .reset = r};
		if (i == px->worker) {
			continue;
		}
		if (post(d->workers[i], &m) < 0) {
			atomic_fetch_sub(&r->left, 1);
		} else {
			posted++;
		}
	}
	if (!posted) {
		free(r);
		return -ENOENT;
	}
	reset_done(r); /* ours */
	return 0;
}

/* ---- starting and stopping -------------------------------------------------------- */

static void proxy_setup(struct ldmeshd *d, struct worker *w)
{
	struct proxy *px = w->px;

	px->owner = d;
	px->worker = w->index;
	px->dial_tab = &d->px.dials;
	if (d->nworkers > 1) { /* one loop runs as it always did */
		px->spread = spread;
		px->listener_observer = listener_changed;
		px->reset_elsewhere = reset_elsewhere;
	}
}

/* The ring is made in the thread that submits to it: io_uring's
 * SINGLE_ISSUER (loop.c) holds a ring to the task that made it. */
static void *thread_main(void *arg)
{
	struct worker *w = arg;
	struct ldmeshd *d = w->d;
	struct proxy *px = w->px;
	int err = 0;

	px->loop = d->px.loop->backend == LOOP_EPOLL ? loop_epoll_new(1024, &err)
						     : loop_uring_new(4096, &err);
	pthread_mutex_lock(&d->call_lock);
	w->ready = px->loop ? 1 : (err ? err : -ENOMEM);
	pthread_cond_broadcast(&d->call_cond);
	pthread_mutex_unlock(&d->call_lock);
	if (px->loop) {
		w->exit_code = ldmeshd_run(w);
	}
	take_mail(w, 1);
	return NULL;
}

static struct worker *worker_new(struct ldmeshd *d, int index)
{
	struct worker *w = calloc(1, sizeof(*w));
	int sv[2];

	if (!w) {
		return NULL;
	}
	w->d = d;
	w->index = index;
	w->wake_rd = w->wake_wr = -1;
	pthread_mutex_init(&w->lock, NULL);
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
		free(w);
		return NULL;
	}
	w->wake_rd = sv[0];
	w->wake_wr = sv[1];
	return w;
}

/* Loop index's own proxy, telemetry and log, and its copy of the sockets. */
static int worker_setup(struct ldmeshd *d, struct worker *w)
{
	struct proxy *px = &w->own_px;
	char err[256];
	int fd;

	w->px = px;
	w->tel = &w->own_tel;
	w->alog = &w->own_alog;
	w->id = &w->own_id;
	proxy_setup(d, w);
	px->handoff_fd = px->admin_fd = px->links.listen_fd = -1;
	px->id = w->id;
	px->tel = w->tel;
	px->alog = w->alog;
	if (tel_init(w->tel, workers_series_cap(d, d->px.cfg)) < 0) {
		return -ENOMEM;
	}
	accesslog_init(w->alog);
	w->alog->write_lock = &d->alog_lock;
	if (accesslog_configure(w->alog, d->px.cfg->access_log, err, sizeof(err)) < 0) {
		log_error("loop %d: access log: %s", w->index, err);
		return -EINVAL;
	}
	adopt(w);
	unprotected_init(&px->unprot);
	balancer_init(&px->bal);
	dns_init(&px->dns, &px->bal);
	memcpy(px->handoff_path, d->px.handoff_path, sizeof(px->handoff_path));
	fd = fcntl(d->px.handoff_fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	handoff_share(px, fd, d->px.handoff_ino);
	return 0;
}

int workers_start(struct ldmeshd *d, int n)
{
	sigset_t all, old;
	int i, r;

	d->workers = calloc((size_t)n, sizeof(*d->workers));
	if (!d->workers) {
		return -ENOMEM;
	}
	d->workers[0] = worker_new(d, 0);
	if (!d->workers[0]) {
		return -ENOMEM;
	}
	d->workers[0]->px = &d->px;
	d->workers[0]->tel = &d->tel;
	d->workers[0]->alog = &d->alog;
	d->workers[0]->id = &d->id;
	d->workers[0]->conf_gen = atomic_load(&d->pub_gen);
	d->workers[0]->conf = d->pub_conf;
	atomic_fetch_add(&d->pub_conf->refs, 1);
	d->px.cfg = d->pub_conf->cfg;
	d->px.policy = d->pub_conf->policy;
	d->nworkers = n; /* for proxy_setup() and workers_series_cap() from here */
	proxy_setup(d, d->workers[0]);
	if (n > 1) {
		d->alog.write_lock = &d->alog_lock;
	}
	for (i = 1; i < n; i++) {
		struct worker *w = worker_new(d, i);
		if (!w) {
			return -ENOMEM;
		}
		d->workers[i] = w;
		r = worker_setup(d, w);
		if (r < 0) {
			return r;
		}
	}
	/* Signals are loop 0's: the other threads never take them. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 1; i < n; i++) {
		struct worker *w = d->workers[i];
		r = pthread_create(&w->thread, NULL, thread_main, w);
		if (r) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			log_error("cannot start event loop %d: %s", i, strerror(r));
			return -r;
		}
		w->started = 1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	tel_set_max(&d->tel, workers_series_cap(d, d->px.cfg));
	pthread_mutex_lock(&d->call_lock);
	for (i = 1, r = 0; i < n; i++) {
		struct worker *w = d->workers[i];
		while (!w->ready) {
			pthread_cond_wait(&d->call_cond, &d->call_lock);
		}
		if (w->ready < 0 && !r) {
			r = w->ready;
			log_error("event loop %d: cannot make its %s loop: %s", i,
				  loop_backend_name(d->px.loop), strerror(-r));
		}
	}
	pthread_mutex_unlock(&d->call_lock);
	return r;
}

void workers_drain_others(struct ldmeshd *d, int timeout_ms)
{
	int i;

	for (i = 1; i < d->nworkers; i++) {
		struct wmsg m = {.kind = WM_DRAIN, .fd = -1, .key = (uint64_t)timeout_ms};
		atomic_store(&d->workers[i]->draining, 1);
		post(d->workers[i], &m);
	}
}

int workers_others_done(struct ldmeshd *d)
{
	int i, done = 1;

	for (i = 1; i < d->nworkers && done; i++) {
		struct worker *w = d->workers[i];
		pthread_mutex_lock(&w->lock);
		done = w->exited;
		pthread_mutex_unlock(&w->lock);
	}
	return done;
}

void workers_stop(struct ldmeshd *d)
{
	int i;

	if (!d->workers) {
		return;
	}
	atomic_store(&d->stop, 1);
	workers_wake_all(d);
	for (i = 1; i < d->nworkers; i++) {
		struct worker *w = d->workers[i];
		struct proxy *px;

		if (!w) {
			continue; /* workers_start() failed before it */
		}
		px = &w->own_px;
		if (w->started) {
			pthread_join(w->thread, NULL);
		} else {
			take_mail(w, 1);
		}
		links_close_all(px);
		if (px->handoff_fd >= 0) {
			close(px->handoff_fd);
			px->handoff_fd = -1;
		}
		if (px->loop) {
			px->loop->ops->free(px->loop); /* io_uring: any thread may tear it down */
			px->loop = NULL;
		}
		dns_fini(&px->dns);
		accesslog_fini(w->alog); /* its last lines */
		/* What the loop still held (its connections, their buffers and
		 * endpoints) stays allocated and reachable from d until the
		 * process ends, as loop 0's does. */
	}
}

/* ---- reading every loop ------------------------------------------------------------ */

void workers_call(struct ldmeshd *d, void (*fn)(struct worker *w, void *arg), void *arg)
{
	struct wcall call = {.fn = fn, .arg = arg};
	int i;

	fn(d->workers[0], arg);
	pthread_mutex_lock(&d->call_lock);
	for (i = 1; i < d->nworkers; i++) {
		struct wmsg m = {.kind = WM_CALL, .fd = -1, .call = &call};
		call.pending++;
		if (post(d->workers[i], &m) < 0) {
			/* Stopped: nothing runs there any more, so read it here. */
			call.pending--;
			pthread_mutex_unlock(&d->call_lock);
			fn(d->workers[i], arg);
			pthread_mutex_lock(&d->call_lock);
		}
	}
	while (call.pending) {
		pthread_cond_wait(&d->call_cond, &d->call_lock);
	}
	pthread_mutex_unlock(&d->call_lock);
}

static void add_up(struct worker *w, void *arg)
{
	struct daemon_totals *t = arg;
	struct ldmeshd *d = w->d;
	struct proxy *px = w->px;
	const uint64_t *src = (const uint64_t *)(const void *)&px->stats;
	uint64_t *dst = (uint64_t *)(void *)&t->stats;
	size_t i;
	int k;

	_Static_assert(sizeof(struct proxy_stats) % sizeof(uint64_t) == 0,
		       "proxy_stats holds counters only");
	pthread_mutex_lock(&t->lock);
	for (i = 0; i < sizeof(px->stats) / sizeof(uint64_t); i++) {
		dst[i] += src[i];
	}
	policy_counts_merge(&t->counts, &px->counts);
	t->dns_ok += px->dns.ok_total;
	t->dns_error += px->dns.error_total;
	t->parked += px->parked;
	t->links_open += px->links.open;
	t->streams_total += px->links.streams_total;
	t->fallbacks_total += px->links.fallbacks_total;
	for (k = 0; k < 6; k++) {
		t->live_by_kind[k] += px->live_by_kind[k];
	}
	for (k = 0; k < LISTENERS_MAX; k++) {
		const struct listener *l = &px->listeners[k];
		int j;

		if (!l->used || l->closing) {
			continue;
		}
		/* Loop 0 holds every listener (its own or mirrored); it waits
		 * in workers_call() while this reads its table. */
		for (j = 0; j < LISTENERS_MAX; j++) {
			const struct listener *l0 = &d->px.listeners[j];
			if (l0->used && !l0->closing && l0->id == l->id) {
				t->listener_links[j] += l->links;
				t->listener_accepted[j] += l->accepted;
				break;
			}
		}
	}
	if (t->tel.tab && tel_merge(&t->tel, w->tel) < 0) {
		log_warn("metrics: out of memory merging loop %d's series", w->index);
	}
	if (t->bal.rng) {
		balancer_sync(&px->bal, px->cfg); /* a reload since its last connection */
		if (balancer_merge(&t->bal, &px->bal) < 0) {
			log_warn("metrics: out of memory merging loop %d's services", w->index);
		}
	}
	pthread_mutex_unlock(&t->lock);
}

int workers_totals(struct ldmeshd *d, struct daemon_totals *t, int what)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	if ((what & TOTALS_TEL) &&
	    tel_init(&t->tel, d->px.cfg->max_series * (d->nworkers ? d->nworkers : 1) + 1) < 0) {
		pthread_mutex_destroy(&t->lock);
		return -ENOMEM;
	}
	if (what & TOTALS_BAL) {
		balancer_init(&t->bal); /* rng != 0 says "wanted" to add_up() */
	}
	workers_call(d, add_up, t);
	return 0;
}

void workers_totals_fini(struct daemon_totals *t)
{
	if (t->tel.tab) {
		tel_fini(&t->tel);
	}
	balancer_fini(&t->bal);
	pthread_mutex_destroy(&t->lock);
}
