/*
 * The link pool (links.h): links to peer daemons opened on demand, kept
 * while they carry streams, closed when idle; the link listener; and the
 * hand-over between a link's streams and the proxy's connections.
 *
 * A link is a TCP connection, TLS 1.3 with ALPN h2 over it (the daemon's
 * SVID both ways, as for any mesh connection), and an HTTP/2 session over
 * that (transport/h2link.c).  A client link is keyed by the peer daemon's
 * address and the pinned identity its streams need, so a stream only ever
 * rides a link whose verified peer may serve it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proxy/proxy.h"
#include "proxy/conn_internal.h"
#include "proxy/links.h"
#include "transport/h2link.h"
#include "transport/tls.h"
#include "util/log.h"
#include "util/strbuf.h"

enum plink_state {
	PL_DIAL, /* client: TCP connect to the peer's link port */
	PL_TLS, /* the TLS handshake */
	PL_OPEN, /* HTTP/2: carries streams */
	PL_CLOSING, /* ended: waiting for its operations, then for its conns */
};

struct plink_wait {
	uint32_t slot, gen;
};

struct plink {
	struct proxy *d;
	uint32_t slot, gen;
	int server;
	enum plink_state state;
	int fd;
	struct stream tcp;
	struct transport *tls; /* owned: TLS over tcp; NULL before */
	struct h2link *h2; /* owned: NULL until open */
	struct ldm_addr peer; /* the peer daemon's TCP address */
	struct ldm_addr local;
	char *pin; /* owned: the identity the peer must have, NULL: any */
	char *peer_id; /* owned: its verified SPIFFE ID, "" before */
	int refs; /* conns whose network end is (or waits for) a stream here */
	int inflight; /* dial and post operations */
	uint8_t kick_pending;
	uint8_t counted_open; /* in pool->open */
	uint8_t flushing; /* a failed handshake's alert is going out */
	const struct tls_ctx *ctx; /* the identity it was made with (compared only) */
	struct plink_wait *wait; /* outbound conns waiting for the link to open */
	uint32_t nwait, capwait;
	struct sockaddr_storage sa;
	socklen_t salen;
	int64_t started_ms, deadline_ms, idle_since_ms;
	uint8_t sole; /* idle, and found the only usable link of its key */
};

/*
 * A burst of connections to one peer opens up to max_links_per_peer links
 * (each ~250 KiB of buffers, TLS and HTTP/2 state in each daemon).  Once the
 * burst is over, the links beyond the first to that peer drain after this
 * long without a stream, rather than after links.idle_timeout_ms: memory
 * comes back within seconds of a spike; the first link stays for the next
 * connection.  pick() fills the lowest slots first, so the surplus empties.
 */
#define LINK_SURPLUS_IDLE_MS 3000

static struct link_pool *pool(struct proxy *d)
{
	return &d->links;
}

/* "out-3", "in-7": unique in the daemon, each event loop past the first
 * naming its own ("out-w1-3"). */
static void link_name(const struct plink *ml, char *buf, size_t len)
{
	if (ml->d->worker) {
		snprintf(buf, len, "%sw%d-%u", ml->server ? "in-" : "out-", ml->d->worker, ml->gen);
	} else {
		snprintf(buf, len, "%s%u", ml->server ? "in-" : "out-", ml->gen);
	}
}

static uint16_t peer_link_port(const struct proxy *d)
{
	/* Peers listen where we do; with ours off, at the default. */
	return (uint16_t)(d->cfg->link_port ? d->cfg->link_port : 15008);
}

/* ---- fallback memory ---------------------------------------------------- */

/* Whether dst goes without a link for now: its whole address (no link
 * port there) or this port of it (the peer daemon does not serve it). */
static int fallback_active(struct proxy *d, const struct ldm_addr *dst, int64_t now)
{
	int i;

	for (i = 0; i < LINK_FALLBACKS; i++) {
		struct link_fallback *f = &pool(d)->fb[i];
		if (f->until_ms > now && addr_same_ip(&f->ip, dst) &&
		    (!f->ip.port || f->ip.port == dst->port)) {
			return 1;
		}
	}
	return 0;
}

/* ip's port 0: the whole address. */
static void fallback_remember(struct proxy *d, const struct ldm_addr *ip, int64_t now)
{
	struct link_fallback *oldest = &pool(d)->fb[0];
	int i;

	if (d->cfg->links.fallback_ms <= 0) {
		return;
	}
	for (i = 0; i < LINK_FALLBACKS; i++) {
		struct link_fallback *f = &pool(d)->fb[i];
		if (f->until_ms <= now || (addr_same_ip(&f->ip, ip) && f->ip.port == ip->port)) {
			oldest = f;
			break;
		}
		if (f->until_ms < oldest->until_ms) {
			oldest = f;
		}
	}
	oldest->ip = *ip;
	oldest->until_ms = now + d->cfg->links.fallback_ms;
}

void links_fallback_forget(struct proxy *d, const struct ldm_addr *dst)
{
	int i;

	for (i = 0; i < LINK_FALLBACKS; i++) {
		struct link_fallback *f = &pool(d)->fb[i];
		if (addr_same_ip(&f->ip, dst) && f->ip.port == dst->port) {
			f->until_ms = 0;
		}
	}
}

/* ---- the table ------------------------------------------------------------ */

static struct plink *link_new(struct proxy *d, int server, int fd)
{
	struct link_pool *p = pool(d);
	struct plink *ml;
	uint32_t i;

	for (i = 0; i < p->cap && p->tab[i]; i++) {
	}
	if (i == p->cap) {
		uint32_t cap = p->cap ? p->cap * 2 : 16;
		struct plink **t;
		if (cap > 0xffffff) {
			return NULL;
		}
		t = realloc(p->tab, sizeof(*t) * cap);
		if (!t) {
			return NULL;
		}
		memset(t + p->cap, 0, sizeof(*t) * (cap - p->cap));
		p->tab = t;
		p->cap = cap;
	}
	ml = calloc(1, sizeof(*ml));
	if (!ml) {
		return NULL;
	}
	ml->d = d;
	ml->slot = i;
	ml->gen = ++p->gen;
	ml->server = server;
	ml->fd = fd;
	ml->started_ms = now_ms();
	ml->idle_since_ms = ml->started_ms;
	ml->deadline_ms = ml->started_ms + d->cfg->connect_timeout_ms;
	ml->peer_id = strdup("");
	if (!ml->peer_id) {
		free(ml);
		return NULL;
	}
	{
		struct stream_uds ud = {ud_make(UD_PLINK_RECV, i, ml->gen),
					ud_make(UD_PLINK_SEND, i, ml->gen),
					ud_make(UD_PLINK_POLL, i, ml->gen)};
		stream_init(&ml->tcp, d->loop, fd, &ud);
	}
	p->tab[i] = ml;
	p->n++;
	return ml;
}

static void link_free(struct plink *ml)
{
	struct proxy *d = ml->d;

	if (ml->h2) {
		h2link_release(ml->h2);
	}
	if (ml->tls) {
		ml->tls->ops->destroy(ml->tls);
	}
	if (ml->fd >= 0) {
		d->loop->ops->forget_fd(d->loop, ml->fd);
		close(ml->fd);
	}
	free(ml->wait);
	free(ml->pin);
	free(ml->peer_id);
	free(ml);
}

/* Freed once nothing of the loop's refers to it and no conn does either
 * (they borrow its peer identity and TLS engine).  Called only where
 * nothing uses ml after: the end of its completion, the sweep. */
static void link_reap(struct plink *ml)
{
	struct link_pool *p = pool(ml->d);

	if (ml->state != PL_CLOSING || ml->inflight || ml->tcp.t.ops->inflight(&ml->tcp.t) ||
	    ml->refs) {
		return;
	}
	ml->d->links_untrimmed++; /* its memory: worth a heap trim (park.c) */
	p->tab[ml->slot] = NULL;
	p->n--;
	link_free(ml);
}

static struct plink *link_from_ud(struct proxy *d, uint64_t ud)
{
	struct link_pool *p = pool(d);
	uint32_t slot = ud_slot(ud);

	if (slot >= p->cap || !p->tab[slot] || p->tab[slot]->gen != ud_gen(ud)) {
		return NULL;
	}
	return p->tab[slot];
}

/* ---- waiting conns --------------------------------------------------------- */

static int wait_add(struct plink *ml, struct conn *c)
{
	if (ml->nwait == ml->capwait) {
		uint32_t cap = ml->capwait ? ml->capwait * 2 : 8;
		struct plink_wait *w = realloc(ml->wait, sizeof(*w) * cap);
		if (!w) {
			return -ENOMEM;
		}
		ml->wait = w;
		ml->capwait = cap;
	}
	ml->wait[ml->nwait++] = (struct plink_wait){c->slot, c->gen};
	return 0;
}

static struct conn *waiter(struct plink *ml, uint32_t i)
{
	struct conn *c = conn_from_ud(ml->d, ud_make(UD_DIAL, ml->wait[i].slot, ml->wait[i].gen));

	return c && c->plink == ml && c->state == CS_DIAL && c->net == &c->net_io.t ? c : NULL;
}

/* ---- ending a link --------------------------------------------------------- */

static void link_closing(struct plink *ml)
{
	struct link_pool *p = pool(ml->d);

	if (ml->state == PL_CLOSING) {
		return;
	}
	ml->state = PL_CLOSING;
	if (ml->counted_open) {
		ml->counted_open = 0;
		p->open--;
	}
	if (ml->tls) {
		ml->tls->ops->close(ml->tls); /* closes tcp under it */
	} else {
		ml->tcp.t.ops->close(&ml->tcp.t);
	}
	/* Freed by link_reap() where nothing uses it any more: at the end of
	 * its completion (links_complete) or in the sweep. */
}

/*
 * The link failed before it could carry anything.  Its waiting conns go
 * without a link when the peer has no link port (fallback), else fail as
 * a failed handshake does.
 */
static void link_failed_early(struct plink *ml, int err, int fallback)
{
	struct proxy *d = ml->d;
	char peer[80];
	uint32_t i;

	addr_format(&ml->peer, peer, sizeof(peer));
	if (fallback) {
		struct ldm_addr whole = ml->peer;
		whole.port = 0;
		fallback_remember(d, &whole, now_ms());
		log_info("link to %s: %s; connections to it go without a link for %d ms", peer,
			 strerror(-err), d->cfg->links.fallback_ms);
	}
	for (i = 0; i < ml->nwait; i++) {
		struct conn *c = waiter(ml, i);
		if (!c) {
			continue;
		}
		c->plink = NULL;
		c->via_link = 0;
		ml->refs--;
		if (fallback) {
			pool(d)->fallbacks_total++;
			outbound_dial_direct(d, c);
		} else {
			d->stats.dial_errors_total++;
			dial_outcome(d, c, -ECONNREFUSED);
			conn_close(d, c, 1);
		}
	}
	ml->nwait = 0;
	link_closing(ml);
}

/* ---- streams for waiting conns ----------------------------------------------- */

/* The app's own socket keeps a real source port for the connection, which
 * the peer's app sees (Forwarded: for=...) and ours reports. */
static void reserve_source(struct plink *ml, struct conn *c)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct ldm_addr a;

	if (c->n_fd < 0) {
		return;
	}
	/* The link's local address, in the family of the app's socket (an
	 * IPv6 socket takes an IPv4 address in its mapped form). */
	addr_unmap(&ml->local, &a);
	a.port = 0;
	if (getsockname(c->n_fd, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_INET6 &&
	    a.family == AF_INET) {
		memmove(a.addr + 12, a.addr, 4);
		memset(a.addr, 0, 10);
		a.addr[10] = a.addr[11] = 0xff;
		a.family = AF_INET6;
	}
	len = addr_to_sockaddr(&a, &ss);
	/* Bound already when the stream is tried a second time. */
	bind(c->n_fd, (struct sockaddr *)&ss, len);
	len = sizeof(ss);
	if (getsockname(c->n_fd, (struct sockaddr *)&ss, &len) == 0) {
		addr_from_sockaddr((struct sockaddr *)&ss, len, &c->local);
		if (c->local.port) {
			return;
		}
	}
	c->local = ml->local;
}

static int attach(struct plink *ml, struct conn *c)
{
	struct proxy *d = ml->d;
	char auth[80], src[80], fwd[96];
	struct transport *t;
	struct ldm_addr a;
	int err = 0, r;

	reserve_source(ml, c);
	addr_unmap(&c->peer, &a);
	addr_format(&a, auth, sizeof(auth));
	addr_unmap(&c->local, &a);
	addr_format(&a, src, sizeof(src));
	snprintf(fwd, sizeof(fwd), "for=\"%s\"", src);
	t = h2link_connect(ml->h2, auth, fwd, &err);
	if (!t) {
		return err;
	}
	transport_set_owner(t, conn_transport_event, c);
	c->net = t;
	c->tls = tls_transport_engine(ml->tls);
	r = t->ops->open(t);
	if (r != -EINPROGRESS) {
		return r < 0 ? r : -EPROTO;
	}
	pool(d)->streams_total++;
	return 0;
}

static void attach_or_fail(struct plink *ml, struct conn *c)
{
	struct proxy *d = ml->d;
	int r;

	/* A service's balancer measures the stream, not the link's own
	 * set-up, which a connection waiting for the link would count. */
	c->dial_start_us = tel_now_us();
	r = attach(ml, c);

	if (r == -EAGAIN || r == -EPIPE) {
		/* The link is full (the peer allows fewer streams than we
		 * thought) or going away: this one goes on its own. */
		links_conn_gone(d, c);
		c->via_link = 0;
		pool(d)->fallbacks_total++;
		outbound_dial_direct(d, c);
		return;
	}
	if (r < 0) {
		char peer[80];
		addr_format(&c->peer, peer, sizeof(peer));
		log_info("outbound to %s: no stream on the link: %s", peer, strerror(-r));
		d->stats.dial_errors_total++;
		dial_outcome(d, c, -ECONNREFUSED);
		conn_close(d, c, 1);
	}
}

/* ---- events ------------------------------------------------------------------ */

static int link_post(void *owner, struct h2link *l)
{
	struct plink *ml = owner;
	int r;

	(void)l;
	if (ml->kick_pending) {
		return 0;
	}
	r = ml->d->loop->ops->post(ml->d->loop, ud_make(UD_PLINK_KICK, ml->slot, ml->gen));
	if (r == 0) {
		ml->kick_pending = 1;
		ml->inflight++;
	}
	return r;
}

static void link_event(void *owner, struct h2link *l, enum h2link_event ev, struct transport *st,
		       int res)
{
	struct plink *ml = owner;
	struct proxy *d = ml->d;

	(void)l;
	switch (ev) {
	case H2L_OPEN:
		break;
	case H2L_STREAM:
		if (ml->state != PL_OPEN || d->draining) {
			h2stream_respond(st, 503);
			st->ops->destroy(st);
			break;
		}
		ml->idle_since_ms = 0;
		pool(d)->streams_total++;
		inbound_link_stream(d, ml, st, &ml->peer, ml->peer_id);
		break;
	case H2L_IDLE:
		ml->idle_since_ms = now_ms();
		break;
	case H2L_CLOSED:
		if (res < 0) {
			char peer[80];
			addr_format(&ml->peer, peer, sizeof(peer));
			log_info("link %s %s ended: %s", ml->server ? "from" : "to", peer,
				 strerror(-res));
		}
		link_closing(ml);
		break;
	}
}

static void link_opened(struct plink *ml)
{
	struct proxy *d = ml->d;
	struct h2link_params p = {.max_streams = (uint32_t)d->cfg->links.max_streams,
				  .stream_window = 256 * 1024,
				  .ping_interval_ms = (uint32_t)d->cfg->links.ping_interval_ms,
				  .ping_timeout_ms = (uint32_t)d->cfg->links.ping_timeout_ms,
				  .buf_size = (size_t)d->cfg->buffer_size};
	struct h2link_owner o = {link_event, link_post, ml};
	struct tls_conn *e = tls_transport_engine(ml->tls);
	char *id;
	uint32_t i;

	d->stats.handshakes_total[!ml->server]++;
	if (tls_conn_resumed(e)) {
		d->stats.handshakes_resumed_total[!ml->server]++;
	}
	id = strdup(tls_conn_peer_id(e));
	if (!id || !tls_conn_alpn_h2(e)) {
		free(id);
		log_warn("link with a peer that did not agree on h2: closed");
		link_failed_early(ml, -EPROTO, 0);
		return;
	}
	free(ml->peer_id);
	ml->peer_id = id;
	if (ml->server && tls_transport_admit(ml->tls) < 0) {
		link_closing(ml);
		return;
	}
	ml->h2 = h2link_new(ml->tls, ml->server, &p, &o);
	if (!ml->h2) {
		link_failed_early(ml, -ENOMEM, 0);
		return;
	}
	/* Open before the session starts: the peer's first streams can come
	 * in the same read as its preface, and are handed over from inside
	 * h2link_start() (they were answered 503 when this came after). */
	ml->state = PL_OPEN;
	ml->deadline_ms = 0;
	ml->idle_since_ms = now_ms();
	ml->counted_open = 1;
	pool(d)->open++;
	if (h2link_start(ml->h2, now_ms()) < 0) {
		link_failed_early(ml, -EPROTO, 0);
		return;
	}
	for (i = 0; i < ml->nwait; i++) {
		struct conn *c = waiter(ml, i);
		if (c) {
			attach_or_fail(ml, c);
		}
	}
	ml->nwait = 0;
}

/* The TLS transport's events, until the HTTP/2 session takes it over. */
static void tls_event(void *owner, struct transport *t, enum transport_event ev, int res)
{
	struct plink *ml = owner;
	struct proxy *d = ml->d;

	(void)t;
	if (ev == TEV_FLUSHED && ml->flushing) {
		ml->flushing = 0;
		link_failed_early(ml, -EPROTO, 0);
		return;
	}
	if (ev != TEV_OPEN || ml->state != PL_TLS || ml->flushing) {
		return;
	}
	if (res < 0) {
		struct tls_conn *e = tls_transport_engine(ml->tls);
		enum tls_reason why = tls_conn_reason(e);
		char peer[80];
		if (why == TLS_OK) {
			why = TLS_PROTOCOL;
		}
		d->stats.handshake_errors_total[!ml->server][why]++;
		addr_format(&ml->peer, peer, sizeof(peer));
		/* Worded as a connection's own handshake, which it stands for. */
		log_warn("%s TLS handshake with %s failed: %s (%s) on a link",
			 ml->server ? "inbound" : "outbound", peer, tls_reason_name(why),
			 tls_conn_detail(e));
		/* The alert goes out first, so the peer learns why (bounded by
		 * the handshake's deadline). */
		if (transport_flush(ml->tls) == -EINPROGRESS) {
			ml->flushing = 1;
			ml->deadline_ms = now_ms() + 1000;
			return;
		}
		link_failed_early(ml, res, 0);
		return;
	}
	link_opened(ml);
}

static void link_start_tls(struct plink *ml)
{
	struct proxy *d = ml->d;
	char key[96], peer[80];
	struct tls_conn *e;
	int r;

	addr_format(&ml->peer, peer, sizeof(peer));
	snprintf(key, sizeof(key), "link %s", peer);
	ml->ctx = d->id->tls;
	e = tls_conn_new(d->id->tls, ml->server, ml->pin, ml->server ? NULL : key);
	if (!e || tls_conn_use_h2(e) < 0) {
		tls_conn_free(e);
		link_failed_early(ml, -ENOMEM, 0);
		return;
	}
	ml->tls = tls_transport_new(e, &ml->tcp.t, (size_t)d->cfg->buffer_size);
	if (!ml->tls) {
		tls_conn_free(e);
		link_failed_early(ml, -ENOMEM, 0);
		return;
	}
	transport_set_owner(ml->tls, tls_event, ml);
	ml->state = PL_TLS;
	r = ml->tls->ops->open(ml->tls);
	if (r != -EINPROGRESS) {
		tls_event(ml, ml->tls, TEV_OPEN, r);
	}
}

static void link_dial_done(struct plink *ml, int res)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int one = 1;

	if (ml->state != PL_DIAL) {
		return;
	}
	if (res < 0) {
		link_failed_early(ml, res, 1);
		return;
	}
	if (getsockname(ml->fd, (struct sockaddr *)&ss, &len) == 0) {
		addr_from_sockaddr((struct sockaddr *)&ss, len, &ml->local);
	}
	setsockopt(ml->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	link_start_tls(ml);
}

/* ---- outbound ------------------------------------------------------------------ */

static int pin_same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

/* A client link to ip that may carry one more stream, or NULL; *n counts
 * the links to ip. */
static struct plink *pick(struct proxy *d, const struct ldm_addr *ip, const char *pin, int *n)
{
	struct link_pool *p = pool(d);
	uint32_t i, max = (uint32_t)d->cfg->links.max_streams;

	*n = 0;
	for (i = 0; i < p->cap; i++) {
		struct plink *ml = p->tab[i];
		struct h2link_stats s = {0};
		if (!ml || ml->server || ml->state == PL_CLOSING || !addr_same_ip(&ml->peer, ip) ||
		    !pin_same(ml->pin, pin)) {
			continue;
		}
		if (ml->h2) {
			h2link_get_stats(ml->h2, &s);
			if (s.draining || s.dead) {
				continue;
			}
		}
		(*n)++;
		if (s.streams_open + ml->nwait < max) {
			return ml;
		}
	}
	return NULL;
}

static struct plink *dial(struct proxy *d, const struct ldm_addr *ip, const char *pin)
{
	struct plink *ml;
	int fd;

	fd = socket(ip->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return NULL;
	}
	ml = link_new(d, 0, fd);
	if (!ml) {
		close(fd);
		return NULL;
	}
	ml->peer = *ip;
	ml->peer.port = htons(peer_link_port(d));
	if (pin && !(ml->pin = strdup(pin))) {
		ml->state = PL_CLOSING;
		link_reap(ml);
		return NULL;
	}
	ml->state = PL_DIAL;
	ml->salen = addr_to_sockaddr(&ml->peer, &ml->sa);
	if (d->loop->ops->connect(d->loop, fd, (struct sockaddr *)&ml->sa, ml->salen,
				  ud_make(UD_PLINK_DIAL, ml->slot, ml->gen)) < 0) {
		ml->state = PL_CLOSING;
		link_reap(ml);
		return NULL;
	}
	ml->inflight++;
	return ml;
}

int links_connect(struct proxy *d, struct conn *c)
{
	struct plink *ml;
	int n;

	if (!d->cfg->links.enabled || !c->tls_wanted || c->same_pod || d->draining ||
	    fallback_active(d, &c->peer, now_ms())) {
		if (d->cfg->links.enabled && c->tls_wanted && !c->same_pod) {
			pool(d)->fallbacks_total++;
		}
		return 0;
	}
	ml = pick(d, &c->peer, c->pin, &n);
	if (!ml && n < d->cfg->links.max_links) {
		ml = dial(d, &c->peer, c->pin);
	}
	if (!ml) {
		return 0; /* every link full: this one goes on its own */
	}
	c->via_link = 1;
	c->plink = ml;
	ml->refs++;
	ml->idle_since_ms = 0;
	ml->sole = 0;
	if (ml->state == PL_OPEN) {
		attach_or_fail(ml, c);
		return 1;
	}
	if (wait_add(ml, c) < 0) {
		c->via_link = 0;
		c->plink = NULL;
		ml->refs--;
		return -ENOMEM;
	}
	return 1;
}

/* The peer refused c's stream unseen (it drains): c tries again, on
 * another link or on its own connection, as if it had just started. */
static void retry(struct proxy *d, struct conn *c, int direct)
{
	int r = 0;

	c->retried = 1;
	conn_net_unlayer(d, c);
	if (!direct) {
		r = links_connect(d, c);
	}
	if (r < 0) {
		dial_outcome(d, c, r);
		conn_close(d, c, 1);
	} else if (r == 0) {
		outbound_dial_direct(d, c);
	}
}

void links_stream_opened(struct proxy *d, struct conn *c, int res)
{
	if (res == -EAGAIN && !c->retried) {
		retry(d, c, 0);
		return;
	}
	if (res == -EXDEV) {
		/* The peer daemon does not hold that port (a server outside the
		 * mesh in its pod, or nothing): dial it as without links, and
		 * send this port there directly for a while. */
		fallback_remember(d, &c->peer, now_ms());
		pool(d)->fallbacks_total++;
		c->exdev_fallback = 1;
		retry(d, c, 1);
		return;
	}
	if (res == -EAGAIN) {
		res = -ECONNREFUSED;
	}
	if (res < 0) {
		char peer[80];
		addr_format(&c->peer, peer, sizeof(peer));
		log_info("outbound to %s over a link refused: %s", peer, strerror(-res));
		if (outbound_service_retry(d, c, res)) {
			return; /* another endpoint of its service */
		}
		if (res != -EACCES) {
			d->stats.dial_errors_total++;
		}
		dial_outcome(d, c, res);
		conn_close(d, c, 1);
		return;
	}
	c->peer_id = c->plink->peer_id;
	c->deadline_ms = 0;
	outbound_ready(d, c);
}

void links_answer(struct proxy *d, struct conn *c, int status)
{
	(void)d;
	h2stream_respond(c->net, status);
}

void links_conn_added(struct plink *ml)
{
	ml->refs++;
}

struct tls_conn *links_engine(const struct plink *ml)
{
	return ml->tls ? tls_transport_engine(ml->tls) : NULL;
}

void links_conn_gone(struct proxy *d, struct conn *c)
{
	struct plink *ml = c->plink;

	(void)d;
	if (!ml) {
		return;
	}
	c->plink = NULL;
	ml->refs--; /* a closing link is freed by the sweep (link_reap) */
}

void links_conn_name(const struct conn *c, char *buf, size_t len)
{
	if (!c->plink) {
		snprintf(buf, len, "%s", "");
		return;
	}
	link_name(c->plink, buf, len);
}

/* ---- inbound: the listener ------------------------------------------------------- */

static void arm_listener(struct proxy *d)
{
	struct link_pool *p = pool(d);

	if (p->listen_fd < 0 || p->armed) {
		return;
	}
	if (d->loop->ops->accept(d->loop, p->listen_fd, ud_make(UD_PLINK_ACCEPT, 0, 0)) == 0) {
		p->armed = 1;
	}
}

/* Opens the link listener; quiet: 0 or -errno. */
static int listen_links(struct proxy *d);

int links_open(struct proxy *d)
{
	int r;

	pool(d)->listen_fd = -1;
	if (!d->cfg->link_port || !d->id->tls) {
		return 0;
	}
	r = listen_links(d);
	if (r < 0) {
		/* Another daemon of the pod still draining holds it, most
		 * likely: tried again every few seconds (links_sweep). */
		log_warn("cannot listen on link port %d: %s; peers reach this pod without links "
			 "until it is free",
			 d->cfg->link_port, strerror(-r));
		pool(d)->retry_ms = now_ms() + LINK_LISTEN_RETRY_MS;
	}
	return 0;
}

static int listen_links(struct proxy *d)
{
	struct link_pool *p = pool(d);
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
	struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
	int s, one = 1, zero = 0, port = d->cfg->link_port;
	struct stat st;

	a6.sin6_port = a4.sin_port = htons((uint16_t)port);
	s = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s >= 0) {
		setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(s, (struct sockaddr *)&a6, sizeof(a6)) < 0) {
			close(s);
			s = -1;
		}
	}
	if (s < 0) { /* no IPv6 here */
		s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (s < 0) {
			return -errno;
		}
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(s, (struct sockaddr *)&a4, sizeof(a4)) < 0) {
			int err = -errno;
			close(s);
			return err;
		}
	}
	if (listen(s, 1024) < 0) {
		int err = -errno;
		close(s);
		return err;
	}
	p->listen_fd = s;
	if (fstat(s, &st) == 0) {
		p->listen_ino = (unsigned long long)st.st_ino;
	}
	arm_listener(d);
	return 0;
}

static void accepted(struct proxy *d, int fd)
{
	if (d->spread && d->spread(d, SPREAD_LINK, 0, fd)) {
		return; /* a less busy loop serves it */
	}
	links_adopt(d, fd);
}

void links_adopt(struct proxy *d, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct plink *ml;
	int one = 1;

	if (d->draining || !d->id->tls) {
		close(fd);
		return;
	}
	ml = link_new(d, 1, fd);
	if (!ml) {
		log_warn("link listener: out of memory, refusing a link");
		close(fd);
		return;
	}
	/* The listener is dual-stack: IPv4 peers show as IPv4. */
	if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
		addr_from_sockaddr((struct sockaddr *)&ss, len, &ml->peer);
		addr_unmap(&ml->peer, &ml->peer);
	}
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
		addr_from_sockaddr((struct sockaddr *)&ss, len, &ml->local);
		addr_unmap(&ml->local, &ml->local);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	link_start_tls(ml);
}

/* ---- the loop's completions -------------------------------------------------------- */

void links_complete(struct proxy *d, uint64_t ud, int res, int more)
{
	struct link_pool *p = pool(d);
	struct plink *ml;

	if (ud_tag(ud) == UD_PLINK_ACCEPT) {
		if (!more) {
			p->armed = 0;
		}
		if (res >= 0) {
			if (p->listen_fd < 0) {
				close(res);
			} else {
				accepted(d, res);
			}
		} else if (res != -ECANCELED && p->listen_fd >= 0) {
			log_warn("link listener: accept: %s", strerror(-res));
		}
		if (!p->armed && res != -ECANCELED) {
			arm_listener(d);
		}
		return;
	}
	ml = link_from_ud(d, ud);
	if (!ml) {
		return;
	}
	switch (ud_tag(ud)) {
	case UD_PLINK_DIAL:
		ml->inflight--;
		link_dial_done(ml, res);
		break;
	case UD_PLINK_KICK:
		ml->inflight--;
		ml->kick_pending = 0;
		if (ml->h2) {
			h2link_run(ml->h2);
		}
		break;
	case UD_PLINK_RECV:
		stream_complete(&ml->tcp, STREAM_RECV, res);
		break;
	case UD_PLINK_SEND:
		stream_complete(&ml->tcp, STREAM_SEND, res);
		break;
	case UD_PLINK_POLL:
		stream_complete(&ml->tcp, STREAM_POLL, res);
		break;
	default:
		break;
	}
	link_reap(ml);
}

/* Whether ml can take a stream now: open, neither draining nor dead. */
static int usable(struct plink *ml)
{
	struct h2link_stats s;

	if (ml->state != PL_OPEN || !ml->h2) {
		return 0;
	}
	h2link_get_stats(ml->h2, &s);
	return !s.draining && !s.dead;
}

/* An idle client link drains when a lower slot holds a usable link of the
 * same key (LINK_SURPLUS_IDLE_MS): of idle twins the lowest stays, as
 * pick() would choose it.  Otherwise it is the one left, which it stays
 * while idle (a new link of its key is only dialled when all are full). */
static void drain_if_surplus(struct plink *ml)
{
	struct link_pool *p = pool(ml->d);
	struct h2link_stats s;
	uint32_t i;

	h2link_get_stats(ml->h2, &s);
	if (s.streams_open || ml->nwait || s.draining || s.dead) {
		return;
	}
	for (i = 0; i < ml->slot && i < p->cap; i++) {
		struct plink *o = p->tab[i];
		if (o && !o->server && addr_same_ip(&o->peer, &ml->peer) &&
		    pin_same(o->pin, ml->pin) && usable(o)) {
			h2link_drain(ml->h2);
			return;
		}
	}
	ml->sole = 1;
}

void links_sweep(struct proxy *d, int64_t now)
{
	struct link_pool *p = pool(d);
	uint32_t i;

	if (p->retry_ms && now >= p->retry_ms) {
		p->retry_ms = 0;
		if (!d->draining && p->listen_fd < 0 && d->cfg->link_port && d->id->tls) {
			if (listen_links(d) == 0) {
				log_info("listening for links on port %d", d->cfg->link_port);
			} else {
				p->retry_ms = now + LINK_LISTEN_RETRY_MS;
			}
		}
	}

	for (i = 0; i < p->cap; i++) {
		struct plink *ml = p->tab[i];
		if (!ml) {
			continue;
		}
		if (ml->state == PL_TLS && !ml->server && !ml->flushing) {
			int r = tls_transport_tick(ml->tls, now);
			if (r != -EINPROGRESS) {
				tls_event(ml, ml->tls, TEV_OPEN, r);
				continue;
			}
		}
		if ((ml->state == PL_DIAL || ml->state == PL_TLS) && ml->deadline_ms &&
		    now >= ml->deadline_ms) {
			/* A link port that swallows packets: go without. */
			link_failed_early(ml, -ETIMEDOUT, ml->state == PL_DIAL);
			continue;
		}
		if (ml->state != PL_OPEN) {
			link_reap(ml);
			continue;
		}
		h2link_tick(ml->h2, now);
		if (ml->ctx != d->id->tls) {
			/* A new SVID (rotation): links made with the old one end
			 * gracefully, new streams go on links that present it. */
			h2link_drain(ml->h2);
			ml->ctx = d->id->tls;
		}
		if (!ml->server && ml->idle_since_ms && d->cfg->links.idle_timeout_ms > 0 &&
		    now - ml->idle_since_ms >= d->cfg->links.idle_timeout_ms) {
			struct h2link_stats s;
			h2link_get_stats(ml->h2, &s);
			if (!s.streams_open && !ml->nwait) {
				h2link_drain(ml->h2);
			}
		} else if (!ml->server && ml->idle_since_ms && !ml->sole &&
			   now - ml->idle_since_ms >= LINK_SURPLUS_IDLE_MS) {
			drain_if_surplus(ml);
		}
	}
}

void links_drain(struct proxy *d)
{
	struct link_pool *p = pool(d);
	uint32_t i;

	if (p->listen_fd >= 0) {
		if (p->armed) {
			d->loop->ops->cancel_fd(d->loop, p->listen_fd);
		}
		/* Out of listening now: under io_uring the ring's accept would
		 * keep the socket alive until the process is gone. */
		shutdown(p->listen_fd, SHUT_RDWR);
		d->loop->ops->forget_fd(d->loop, p->listen_fd);
		close(p->listen_fd);
		p->listen_fd = -1;
	}
	for (i = 0; i < p->cap; i++) {
		struct plink *ml = p->tab[i];
		if (ml && ml->h2 && ml->state == PL_OPEN) {
			h2link_drain(ml->h2);
		}
	}
}

void links_close_all(struct proxy *d)
{
	struct link_pool *p = pool(d);
	uint32_t i;

	links_drain(d);
	for (i = 0; i < p->cap; i++) {
		struct plink *ml = p->tab[i];
		if (!ml) {
			continue;
		}
		if (ml->h2) {
			h2link_abort(ml->h2, -ECONNRESET);
		}
		link_closing(ml);
		link_reap(ml);
	}
}

/* ---- ldmeshctl links ----------------------------------------------------------------- */

void links_list(struct proxy *d, struct strbuf *b, int json)
{
	struct link_pool *p = pool(d);
	int64_t now = now_ms();
	uint32_t i;
	int first = 1;

	if (json) {
		sb_printf(b, "[");
	} else {
		sb_printf(b, "%-10s %-9s %-8s %-26s %8s %13s %12s %12s %9s %s\n", "LINK",
			  "DIRECTION", "STATE", "PEER", "STREAMS", "STREAMS_TOTAL", "BYTES_IN",
			  "BYTES_OUT", "AGE_MS", "PEER_ID");
	}
	for (i = 0; i < p->cap; i++) {
		const struct plink *ml = p->tab[i];
		static const char *const states[] = {"dialing", "tls", "open", "closing"};
		struct h2link_stats s = {0};
		char peer[80], name[24];

		if (!ml) {
			continue;
		}
		if (ml->h2) {
			h2link_get_stats(ml->h2, &s);
		}
		addr_format(&ml->peer, peer, sizeof(peer));
		link_name(ml, name, sizeof(name));
		if (json) {
			sb_printf(b,
				  "%s{\"link\":\"%s\",\"direction\":\"%s\",\"state\":\"%s\","
				  "\"peer_addr\":\"%s\",\"peer_id\":",
				  first ? "" : ",", name, ml->server ? "inbound" : "outbound",
				  s.draining && ml->state == PL_OPEN ? "draining"
								     : states[ml->state],
				  peer);
			sb_json_str(b, ml->peer_id);
			sb_printf(b,
				  ",\"streams_open\":%u,\"streams_total\":%" PRIu64
				  ",\"streams_waiting\":%u,\"bytes_in\":%" PRIu64
				  ",\"bytes_out\":%" PRIu64 ",\"age_ms\":%" PRId64 "}",
				  s.streams_open, s.streams_total, ml->nwait, s.bytes_in,
				  s.bytes_out, now - ml->started_ms);
		} else {
			sb_printf(b,
				  "%-10s %-9s %-8s %-26s %8u %13" PRIu64 " %12" PRIu64 " %12" PRIu64
				  " %9" PRId64 " %s\n",
				  name, ml->server ? "inbound" : "outbound",
				  s.draining && ml->state == PL_OPEN ? "draining"
								     : states[ml->state],
				  peer, s.streams_open, s.streams_total, s.bytes_in, s.bytes_out,
				  now - ml->started_ms, ml->peer_id[0] ? ml->peer_id : "-");
		}
		first = 0;
	}
	if (json) {
		sb_printf(b, "]\n");
	}
}
