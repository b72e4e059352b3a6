/*
 * Outbound connections: the dial with the app's own socket, the shim's
 * filler, egress policy and mesh destinations.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include "proxy/proxy.h"
#include "proxy/conn_internal.h"
#include "proxy/route.h"
#include "util/log.h"

/* ---- outbound ------------------------------------------------------------ */

/* The shim's filler is discarded through the app end, in up's buffer. */
static void read_filler(struct proxy *d, struct conn *c)
{
	size_t n = c->filler_left < c->bufsize ? c->filler_left : c->bufsize;

	if (transport_read(c->app, c->up.buf, n) != -EINPROGRESS) {
		conn_close(d, c, 1);
	}
}

/* Dialled (and authenticated): discard the filler, which makes the app's fd
 * writable, then proxy. */
void outbound_ready(struct proxy *d, struct conn *c)
{
	dial_outcome(d, c, 0);
	if (c->kind == CONN_UPSTREAM) {
		c->state = CS_PROXY;
		route_upstream_ready(d, c);
		return;
	}
	if (c->late_dial) {
		/* The app's connect() succeeded long ago: its first bytes wait.
		 * The pipes take the network end the dial made (a link's stream,
		 * TLS). */
		conn_alloc_bufs(d, c);
		c->state = CS_PROXY;
		pump_both(d, c);
		return;
	}
	if (conn_alloc_bufs(d, c) < 0) {
		conn_close(d, c, 1);
		return;
	}
	c->state = CS_FILLER;
	read_filler(d, c);
}

static void outbound_connected(struct proxy *d, struct conn *c)
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
		handshake_begin(d, c);
		return;
	}
	outbound_ready(d, c);
}

void filler_done(struct proxy *d, struct conn *c, int res)
{
	if (res <= 0) {
		/* The app went away before it could use the connection. */
		conn_close(d, c, res < 0);
		return;
	}
	c->filler_left -= (uint32_t)res < c->filler_left ? (uint32_t)res : c->filler_left;
	if (c->filler_left) {
		read_filler(d, c);
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
	conn_tel_open(d, c);
	pump_both(d, c);
}

void dial_done(struct proxy *d, struct conn *c, int res)
{
	char dst[80];

	if (res == 0) {
		outbound_connected(d, c);
		return;
	}
	addr_format(&c->peer, dst, sizeof(dst));
	log_info("outbound dial to %s for pid %u failed: %s", dst, c->pid, strerror(-res));
	if (c->exdev_fallback) {
		links_fallback_forget(d, &c->peer);
	}
	if (outbound_service_retry(d, c, res)) {
		return; /* another endpoint of its service */
	}
	d->stats.dial_errors_total++;
	dial_outcome(d, c, res);
	/* Closing with the filler unread gives the app's fd an error. */
	conn_close(d, c, 1);
}

/* Which destinations get mTLS, and with which pinned identity. */
static void choose_outbound_tls(struct proxy *d, struct conn *c)
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
	/* An endpoint a DNS service resolved: the mesh's when mesh_networks
	 * says so, then with the service's pinned identity.  (The balancer
	 * was synced to cfg when the connection picked it.) */
	if (c->bal && c->svc >= 0 && d->bal.svc[c->svc].dns.name) {
		const struct config_service *svc = &cfg->services[d->bal.svc[c->svc].cfg_index];

		c->in_mesh = config_in_mesh(cfg, &c->peer) != 0;
		c->tls_wanted = c->in_mesh && d->id->tls;
		c->pin = c->in_mesh ? svc->identity : NULL;
		return;
	}
	for (i = 0; i < cfg->n_services; i++) {
		const struct config_service *svc = &cfg->services[i];
		for (j = 0; j < svc->n_endpoints; j++) {
			const struct ldm_addr *e = &svc->endpoints[j];
			if (e->family == c->peer.family && e->port == c->peer.port &&
			    !memcmp(e->addr, c->peer.addr, e->family == AF_INET6 ? 16 : 4)) {
				c->tls_wanted = d->id->tls != NULL;
				c->in_mesh = 1;
				c->pin = svc->identity;
				return;
			}
		}
	}
	c->in_mesh = config_in_mesh(cfg, &c->peer) != 0;
	/* Without an identity the daemon is a plaintext proxy (mTLS off). */
	c->tls_wanted = c->in_mesh && d->id->tls;
}

/*
 * Egress control: destinations outside the mesh are allowed when
 * outbound.egress = "allow", or when an egress_allow entry covers them.
 */
static int egress_allowed(const struct proxy *d, const struct conn *c, int in_mesh)
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

/*
 * A service's virtual address: the balancer picks the endpoint this
 * connection goes to (avoid: the one that just failed it).  0, or
 * -ECONNREFUSED when every endpoint is out: the app's connect fails at
 * once rather than waiting on a dead one.
 */
void outbound_log_unavailable(struct proxy *d, const struct conn *c, int svc, int limit)
{
	struct bal_service *s = &d->bal.svc[svc];
	int64_t now = now_ms();
	char dst[80];

	if (limit && s->unavailable_logged_ms && now - s->unavailable_logged_ms < 1000) {
		return; /* routed requests may fail fast by thousands a second */
	}
	s->unavailable_logged_ms = now;
	addr_format(&c->svc_addr, dst, sizeof(dst));
	if (!s->n && s->dns.name) {
		log_info("outbound to service %s (%s) for pid %u: no endpoints: DNS %s:%u %s",
			 s->name, dst, c->pid, s->dns.name, s->dns.port,
			 s->dns.answered ? "gave none" : "has not answered yet");
	} else {
		log_info("outbound to service %s (%s) for pid %u: every endpoint is out", s->name,
			 dst, c->pid);
	}
}

static int service_pick(struct proxy *d, struct conn *c, const struct bal_endpoint *avoid)
{
	struct bal_endpoint *e = balancer_pick(&d->bal, c->svc, avoid, tel_now_us());

	if (!e) {
		outbound_log_unavailable(d, c, c->svc, 0);
		return -ECONNREFUSED;
	}
	c->bal = e;
	e->connections_total++;
	c->peer = e->addr;
	c->dial_start_us = tel_now_us();
	if (c->n_fd >= 0) {
		int fam = 0;
		socklen_t len = sizeof(fam);

		/* The app's dual-stack socket dialled a service address as
		 * ::ffff:a.b.c.d; an IPv4 endpoint needs a socket of its own. */
		if (getsockopt(c->n_fd, SOL_SOCKET, SO_DOMAIN, &fam, &len) == 0 &&
		    fam != e->addr.family && conn_renew_net(d, c) < 0) {
			return -ENOMEM;
		}
	}
	return 0;
}

static int retryable(int err)
{
	return err == -ECONNREFUSED || err == -ETIMEDOUT || err == -EHOSTUNREACH ||
	       err == -ENETUNREACH || err == -ECONNRESET;
}

/* Starts c towards c->peer: over a link, or on its own connection. */
static void outbound_go(struct proxy *d, struct conn *c)
{
	int r = links_connect(d, c);

	if (r < 0) {
		dial_outcome(d, c, r);
		conn_close(d, c, 1);
		return;
	}
	if (r == 0) {
		outbound_dial_direct(d, c);
	}
}

/* The dial deadline: the service's connect_timeout_ms when it sets one. */
static int64_t dial_deadline(const struct proxy *d, const struct conn *c)
{
	int ms = d->cfg->connect_timeout_ms;

	if (c->svc >= 0 && (size_t)c->svc < d->bal.n) {
		const struct config_service *cs = &d->cfg->services[d->bal.svc[c->svc].cfg_index];

		if (cs->connect_timeout_ms) {
			ms = cs->connect_timeout_ms;
		}
	}
	return now_ms() + ms;
}

int outbound_service_retry(struct proxy *d, struct conn *c, int err)
{
	struct bal_endpoint *failed = c->bal;
	int64_t now = tel_now_us();
	int r;

	if (!failed || c->svc < 0 || c->bal_tries >= BAL_TRIES || !retryable(err) ||
	    c->state != CS_DIAL || c->kind == CONN_UPSTREAM) {
		return 0;
	}
	/* Counted against the endpoint here, once: c lets go of it either
	 * way, so dial_outcome() does not count the same failure again. */
	balancer_result(failed, 0, now - c->dial_start_us, now);
	c->bal = NULL;
	r = service_pick(d, c, failed);
	balancer_release(failed);
	if (r < 0) {
		return 0; /* no other endpoint: the app gets err */
	}
	c->bal_tries++;
	d->bal.retries_total++;
	if (conn_renew_net(d, c) < 0) {
		dial_outcome(d, c, -ENOMEM);
		conn_close(d, c, 1);
		return 1;
	}
	choose_outbound_tls(d, c);
	c->deadline_ms = dial_deadline(d, c);
	outbound_go(d, c);
	return 1;
}

void conn_start_outbound(struct proxy *d, struct conn *c, int tcp_fd, int app_end_fd)
{
	int r;

	c->kind = CONN_OUTBOUND;
	d->live_by_kind[CONN_HANDOFF]--;
	d->live_by_kind[CONN_OUTBOUND]++;
	c->n_fd = tcp_fd;
	c->app_end_fd = app_end_fd;
	conn_transports_init(d, c);
	c->state = CS_DIAL;
	c->deadline_ms = now_ms() + d->cfg->connect_timeout_ms;
	d->stats.outbound_total++;
	c->svc = -1;
	if (balancer_sync(&d->bal, d->cfg) == 0 &&
	    (c->svc = (int16_t)balancer_service_of(&d->bal, &c->peer)) >= 0) {
		enum config_svc_protocol proto =
			d->cfg->services[d->bal.svc[c->svc].cfg_index].protocol;

		c->svc_addr = c->peer;
		if (proto != SVC_PROTO_TCP) {
			/* Requests are routed one by one: no dial now. */
			r = route_start(c, proto == SVC_PROTO_HTTP);
			if (r < 0) {
				dial_outcome(d, c, r);
				conn_close(d, c, 1);
				return;
			}
			c->in_mesh = 1;
			outbound_ready(d, c);
			return;
		}
		c->svc = (int16_t)balancer_route(&d->bal, c->svc); /* its splits */
		r = service_pick(d, c, NULL);
		if (r < 0) {
			dial_outcome(d, c, r);
			conn_close(d, c, 1);
			return;
		}
	}
	choose_outbound_tls(d, c);
	if (c->svc >= 0) {
		c->deadline_ms = dial_deadline(d, c);
	}
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
	outbound_go(d, c);
}

void outbound_dial_direct(struct proxy *d, struct conn *c)
{
	c->dial_len = addr_to_sockaddr(&c->peer, &c->dial_sa);
	if (d->loop->ops->connect(d->loop, c->n_fd, (struct sockaddr *)&c->dial_sa, c->dial_len,
				  ud_make(UD_DIAL, c->slot, c->gen)) < 0) {
		dial_outcome(d, c, -ENOMEM);
		conn_close(d, c, 1);
		return;
	}
	c->inflight++;
}

/*
 * A connection to a service address that routed nothing (not HTTP/1):
 * it goes to one endpoint after all, with the app's socket, as for a
 * "tcp" service.  The app's connect() succeeded already, so a failure
 * now reaches it as a reset.
 */
void outbound_dial_late(struct proxy *d, struct conn *c)
{
	int r;

	c->late_dial = 1;
	c->state = CS_DIAL;
	if (balancer_sync(&d->bal, d->cfg) < 0 ||
	    (c->svc = (int16_t)balancer_service_of(&d->bal, &c->svc_addr)) < 0) {
		log_info("conn %u: its service is no longer configured; closing", c->slot);
		conn_close(d, c, 1);
		return;
	}
	c->svc = (int16_t)balancer_route(&d->bal, c->svc);
	r = service_pick(d, c, NULL);
	if (r < 0) {
		conn_close(d, c, 1);
		return;
	}
	c->deadline_ms = dial_deadline(d, c);
	choose_outbound_tls(d, c);
	outbound_go(d, c);
}

struct conn *outbound_upstream_new(struct proxy *d, struct conn *owner, int svc,
				   struct bal_endpoint *e)
{
	const struct config_service *cs = &d->cfg->services[d->bal.svc[svc].cfg_index];
	struct conn *u;
	int fd;

	fd = socket(e->addr.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return NULL;
	}
	u = conn_new(d, CONN_UPSTREAM, -1);
	if (!u) {
		close(fd);
		return NULL;
	}
	u->n_fd = fd;
	u->pid = owner->pid;
	u->owner_slot = owner->slot;
	u->owner_gen = owner->gen;
	conn_transports_init(d, u);
	u->state = CS_DIAL;
	u->deadline_ms = now_ms() + (cs->connect_timeout_ms ? cs->connect_timeout_ms
							    : d->cfg->connect_timeout_ms);
	u->svc = (int16_t)svc;
	u->peer = e->addr;
	u->bal = e;
	balancer_ref(e);
	e->connections_total++;
	u->dial_start_us = tel_now_us();
	choose_outbound_tls(d, u);
	return u;
}

void outbound_upstream_dial(struct proxy *d, struct conn *u)
{
	if (!egress_allowed(d, u, u->in_mesh)) {
		char dst[80];

		addr_format(&u->peer, dst, sizeof(dst));
		log_info("egress to service endpoint %s denied (outbound.egress = \"deny\")", dst);
		d->stats.egress_denied_total++;
		conn_close(d, u, 1);
		return;
	}
	outbound_go(d, u);
}
