/*
 * Connections: life cycle (new, close, deferred free), queueing operations
 * on the loop, answers of the control surfaces, per-connection metrics,
 * and the dispatch of completions and timers.  The data path is in
 * pump.c, the TLS handshake in handshake.c, dialing in outbound.c and
 * inbound.c, idle parking in park.c (see conn_internal.h).
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
#include "proxy/proxy.h"
#include "proxy/conn_internal.h"
#include "proxy/l7.h"
#include "proxy/route.h"
#include "policy/policy.h"
#include "util/strbuf.h"
#include "util/log.h"

const char *conn_kind_name(enum conn_kind k)
{
	static const char *const names[] = {"handoff", "outbound", "inbound", "link",
					    "ctl",     "admin",	   "upstream"};
	return (unsigned)k < ARRAY_SIZE(names) ? names[k] : "?";
}

struct conn *conn_new(struct proxy *d, enum conn_kind kind, int a_fd)
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
	c->svc = -1;
	c->started_ms = c->last_ms = now_ms();
	c->peer_id = "";
	d->conns[slot] = c;
	if (++d->live > d->live_peak) {
		d->live_peak = d->live; /* a spike's height, for park.c's trim */
	}
	d->live_by_kind[kind]++;
	return c;
}

struct conn *conn_from_ud(struct proxy *d, uint64_t ud)
{
	uint32_t slot = ud_slot(ud);
	struct conn *c;

	if (slot >= d->nslots) {
		return NULL;
	}
	c = d->conns[slot];
	return c && c->gen == ud_gen(ud) ? c : NULL;
}

int conn_submit_recv(struct proxy *d, struct conn *c, int fd, void *buf, size_t len,
		     enum ud_tag tag)
{
	int r = d->loop->ops->recv(d->loop, fd, buf, len, ud_make(tag, c->slot, c->gen));

	if (r == 0) {
		c->inflight++;
	}
	return r;
}

int conn_submit_send(struct proxy *d, struct conn *c, int fd, const void *buf, size_t len,
		     enum ud_tag tag)
{
	int r = d->loop->ops->send(d->loop, fd, buf, len, ud_make(tag, c->slot, c->gen));

	if (r == 0) {
		c->inflight++;
	}
	return r;
}

void conn_transports_init(struct proxy *d, struct conn *c)
{
	struct stream_uds app = {ud_make(UD_APP_RECV, c->slot, c->gen),
				 ud_make(UD_APP_SEND, c->slot, c->gen),
				 ud_make(UD_APP_POLL, c->slot, c->gen)};
	struct stream_uds net = {ud_make(UD_NET_RECV, c->slot, c->gen),
				 ud_make(UD_NET_SEND, c->slot, c->gen),
				 ud_make(UD_NET_POLL, c->slot, c->gen)};

	c->d = d;
	c->bufsize = (uint32_t)d->cfg->buffer_size;
	stream_init(&c->app_io, d->loop, c->a_fd, &app);
	stream_init(&c->net_io, d->loop, c->n_fd, &net);
	transport_set_owner(&c->app_io.t, conn_transport_event, c);
	transport_set_owner(&c->net_io.t, conn_transport_event, c);
	c->app = &c->app_io.t;
	c->net = &c->net_io.t;
}

void conn_net_unlayer(struct proxy *d, struct conn *c)
{
	if (c->net != &c->net_io.t) {
		/* A link's stream or a TLS engine over the socket. */
		c->net->ops->close(c->net);
		c->net->ops->destroy(c->net);
		c->net = &c->net_io.t;
		c->tls = NULL;
	}
	links_conn_gone(d, c);
	c->via_link = 0;
}

/*
 * After a failed dial, before c tries another endpoint: its network side
 * starts again on a new socket (one whose connect failed cannot connect
 * again, and the endpoint may be of the other family).  0 or -errno.
 */
int conn_renew_net(struct proxy *d, struct conn *c)
{
	struct stream_uds net = {ud_make(UD_NET_RECV, c->slot, c->gen),
				 ud_make(UD_NET_SEND, c->slot, c->gen),
				 ud_make(UD_NET_POLL, c->slot, c->gen)};
	int fd;

	conn_net_unlayer(d, c);
	fd = socket(c->peer.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	if (c->n_fd >= 0) {
		d->loop->ops->forget_fd(d->loop, c->n_fd);
		close(c->n_fd);
	}
	c->n_fd = fd;
	stream_init(&c->net_io, d->loop, c->n_fd, &net);
	transport_set_owner(&c->net_io.t, conn_transport_event, c);
	c->net = &c->net_io.t;
	return 0;
}

/* Operations in flight: the connection's own and its transports'. */
static int conn_inflight(const struct conn *c)
{
	int n = c->inflight;

	if (c->app) {
		n += c->app->ops->inflight(c->app);
		n += c->net->ops->inflight(c->net);
	}
	if (c->rt) {
		n += (int)c->rt->stale; /* upstreams still reading or writing c's buffers */
	}
	return n;
}

/* The dial of outbound c ended with err (0 or -errno). */
void dial_outcome(struct proxy *d, const struct conn *c, int err)
{
	if (err < 0 && err != -EACCES) {
		conn_tel_dial_failed(d, c, -err);
	}
	if (c->bal && err != -EACCES) {
		int64_t now = tel_now_us();

		balancer_result(c->bal, err == 0, now - c->dial_start_us, now);
	}
	if (d->dial_observer && c->kind == CONN_OUTBOUND && !c->late_dial) {
		d->dial_observer(d, c, err);
	}
}

static void reap_add(struct proxy *d, struct conn *c)
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

void conn_close(struct proxy *d, struct conn *c, int abort)
{
	if (c->state == CS_CLOSING) {
		return;
	}
	if (c->kind == CONN_LINK && c->listener_slot >= 0) {
		listener_unlink(d, c->listener_slot);
		c->listener_slot = -1;
	}
	if (c->rt) {
		route_close(d, c);
	}
	if (c->kind == CONN_UPSTREAM) {
		route_upstream_gone(d, c);
	}
	c->state = CS_CLOSING;
	c->abort = abort;
	if (c->app) {
		c->app->abort = c->net->abort = abort;
		c->app->ops->close(c->app);
		c->net->ops->close(c->net);
	}
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

static void conn_free(struct proxy *d, struct conn *c)
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
		struct accesslog_conn v;

		tel_tcp_close(c->tel, c->abort, c->close_errno, now_ms() - c->started_ms);
		conn_log_view(c, &v);
		accesslog_tcp(d->alog, &v, now_ms(), c->http_requests);
	}
	if (c->parked == PARK_PARKED) {
		d->parked--;
	}
	if (c->net && c->net != &c->net_io.t) {
		c->net->ops->destroy(c->net); /* TLS: with its engine */
	}
	links_conn_gone(d, c);
	if (c->kind == CONN_UPSTREAM) {
		if (c->borrowing) {
			route_returned(d, c);
		}
		if (c->bal) {
			balancer_unref(c->bal); /* a plain reference, not load */
		}
	} else if (c->bal) {
		balancer_release(c->bal);
	}
	route_free(c);
	free(c->bufs);
	free(c->ctl_in);
	free(c->ctl_out);
	d->conns[c->slot] = NULL;
	d->free_slots[d->nfree++] = c->slot;
	d->live--;
	d->live_by_kind[c->kind]--;
	free(c);
}

void conn_reap(struct proxy *d)
{
	uint32_t i, keep = 0;

	for (i = 0; i < d->nreap; i++) {
		struct conn *c = d->reap[i];
		if (conn_inflight(c) == 0) {
			conn_free(d, c);
		} else {
			d->reap[keep++] = c;
		}
	}
	d->nreap = keep;
}

/* ---- answers (ctl and admin) -------------------------------------------- */

void conn_send_answer(struct proxy *d, struct conn *c, struct strbuf *b, enum ud_tag tag)
{
	c->ctl_out = sb_take(b, &c->ctl_out_len);
	c->ctl_out_off = 0;
	c->state = CS_CTL_WRITE;
	if (conn_submit_send(d, c, c->a_fd, c->ctl_out, c->ctl_out_len, tag) < 0) {
		conn_close(d, c, 1);
	}
}

static void answer_sent(struct proxy *d, struct conn *c, int res, enum ud_tag tag)
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

/* ---- metrics -------------------------------------------------------------- */

/* Linkerd's tls / no_tls_reason of a connection. */
static enum tel_tls conn_tel_tls(const struct proxy *d, const struct conn *c)
{
	if (c->same_pod) {
		return TEL_TLS_LOOPBACK;
	}
	if (c->tls) {
		return TEL_TLS_TRUE;
	}
	if (c->kind == CONN_INBOUND) {
		return port_mtls(d, c->local.port) == CONFIG_MTLS_DISABLE ? TEL_TLS_DISABLED
									  : TEL_TLS_NOT_PROVIDED;
	}
	return c->in_mesh ? TEL_TLS_DISABLED : TEL_TLS_NO_MESH;
}

static struct tel_series *conn_tel_series(struct proxy *d, const struct conn *c)
{
	int in = c->kind == CONN_INBOUND;

	return tel_tcp_series(d->tel, in ? TEL_INBOUND : TEL_OUTBOUND, in ? &c->local : &c->peer,
			      conn_tel_tls(d, c), c->peer_id);
}

/* An outbound dial that failed (refused, timed out, unreachable): opened
 * and closed at once with its errno, so tcp_close_total{errno} shows it
 * and open minus closed stays the open count. */
void conn_tel_dial_failed(struct proxy *d, const struct conn *c, int err)
{
	struct tel_series *s;

	if (c->tel || c->kind != CONN_OUTBOUND) {
		return; /* counted when it closes */
	}
	s = conn_tel_series(d, c);
	if (s) {
		tel_tcp_open(s);
		tel_tcp_close(s, 1, err, now_ms() - c->started_ms);
	}
}

void conn_authz_tel(struct proxy *d, const struct conn *c, int http, const char *rule, int allowed)
{
	tel_authz(d->tel, http, &c->local, conn_tel_tls(d, c), c->peer_id, rule, allowed);
}

void conn_authz(struct proxy *d, const struct conn *c, const struct policy_request *req,
		const struct policy_result *res)
{
	policy_account(&d->counts, req, res);
	if (res->decision != POLICY_PENDING) {
		conn_authz_tel(d, c, req->method != NULL, res->rule, res->decision == POLICY_ALLOW);
	}
}

/* Proxying starts: the connection joins its TCP series (tcp_open_total). */
void conn_tel_open(struct proxy *d, struct conn *c)
{
	c->tel = conn_tel_series(d, c);
	if (c->tel) {
		tel_tcp_open(c->tel);
		/* Bytes read while detecting TLS or HTTP count too. */
		c->tel->tcp_read += c->down.bytes;
		c->tel->tcp_write += c->up.bytes;
	}
}

/* ---- dispatch and timers ------------------------------------------------- */

void conn_set_handler(struct proxy *d, enum ud_tag tag, conn_done_fn fn)
{
	if (tag > 0 && tag < UD_TAG_COUNT) {
		d->conn_handlers[tag] = fn;
	}
}

void conn_set_dial_observer(struct proxy *d, conn_dial_fn fn)
{
	d->dial_observer = fn;
}

void conn_complete(struct proxy *d, struct conn *c, enum ud_tag tag, int res)
{
	c->last_ms = now_ms();
	switch (tag) {
	case UD_APP_RECV:
		stream_complete(&c->app_io, STREAM_RECV, res);
		return;
	case UD_APP_SEND:
		stream_complete(&c->app_io, STREAM_SEND, res);
		return;
	case UD_APP_POLL:
		stream_complete(&c->app_io, STREAM_POLL, res);
		return;
	case UD_NET_RECV:
		stream_complete(&c->net_io, STREAM_RECV, res);
		return;
	case UD_NET_SEND:
		stream_complete(&c->net_io, STREAM_SEND, res);
		return;
	case UD_NET_POLL:
		stream_complete(&c->net_io, STREAM_POLL, res);
		return;
	default:
		break;
	}
	c->inflight--;
	if (c->state == CS_CLOSING) {
		return;
	}
	switch (tag) {
	case UD_DIAL:
		c->deadline_ms = 0;
		dial_done(d, c, res);
		break;
	case UD_APP_DIAL:
		c->deadline_ms = 0;
		app_dial_done(d, c, res);
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

void conn_detect_sweep(struct proxy *d, int64_t now)
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
