/*
 * The shim-facing socket, <runtime_dir>/handoff.sock: accept shim
 * connections, read and check their versioned header and the fds passed
 * with it, and hand each one to its handler.  Anything malformed is logged
 * with the sender's pid and uid and closed; the daemon keeps serving.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "proxy/handoff.h"
#include "proxy/proxy.h"
#include "util/log.h"

#define HEADER_TIMEOUT_MS 5000

static int unix_listen_at(const char *path, mode_t mode)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char tmp[sizeof(sun.sun_path)];
	int s;

	if (snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid()) >= (int)sizeof(tmp)) {
		return -ENAMETOOLONG;
	}
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0) {
		return -errno;
	}
	unlink(tmp);
	memcpy(sun.sun_path, tmp, strlen(tmp) + 1);
	if (bind(s, (struct sockaddr *)&sun, sizeof(sun)) < 0 || chmod(tmp, mode) < 0 ||
	    listen(s, 4096) < 0) {
		int err = -errno;
		close(s);
		unlink(tmp);
		return err;
	}
	/* Appear under the real name only when ready: connecting to it is how
	 * shims learn the daemon is up. */
	if (rename(tmp, path) < 0) {
		int err = -errno;
		close(s);
		unlink(tmp);
		return err;
	}
	return s;
}

static void header_done(struct proxy *d, struct conn *c, int res);
static void record_dial(struct proxy *d, const struct conn *c, int err);

int handoff_open(struct proxy *d)
{
	int s = unix_listen_at(d->handoff_path, 0666);

	if (s < 0) {
		log_error("cannot listen on %s: %s", d->handoff_path, strerror(-s));
		return s;
	}
	d->handoff_fd = s;
	conn_set_handler(d, UD_HDR_RECV, header_done);
	conn_set_dial_observer(d, record_dial);
	{
		struct stat st;
		if (stat(d->handoff_path, &st) == 0) {
			d->handoff_ino = (unsigned long long)st.st_ino;
		}
	}
	return 0;
}

void handoff_share(struct proxy *d, int fd, unsigned long long ino)
{
	d->handoff_fd = fd;
	d->handoff_ino = ino;
	conn_set_handler(d, UD_HDR_RECV, header_done);
	conn_set_dial_observer(d, record_dial);
}

void handoff_arm(struct proxy *d)
{
	if (d->handoff_fd < 0 || d->handoff_armed ||
	    (d->handoff_retry_ms && now_ms() < d->handoff_retry_ms)) {
		return; /* after EMFILE: wait, do not spin */
	}
	if (d->loop->ops->accept(d->loop, d->handoff_fd, ud_make(UD_HANDOFF_ACCEPT, 0, 0)) == 0) {
		d->handoff_armed = 1;
	}
}

static int uid_allowed(const struct proxy *d, uid_t uid)
{
	size_t i;

	if (!d->cfg->n_allowed_uids || uid == 0 || uid == geteuid()) {
		return 1;
	}
	for (i = 0; i < d->cfg->n_allowed_uids; i++) {
		if (d->cfg->allowed_uids[i] == uid) {
			return 1;
		}
	}
	return 0;
}

static void arm_header_recv(struct proxy *d, struct conn *c)
{
	c->iov.iov_base = (char *)&c->hdr + c->hdr_got;
	c->iov.iov_len = sizeof(c->hdr) - c->hdr_got;
	memset(&c->msg, 0, sizeof(c->msg));
	c->msg.msg_iov = &c->iov;
	c->msg.msg_iovlen = 1;
	c->msg.msg_control = c->cmsg.buf;
	c->msg.msg_controllen = sizeof(c->cmsg.buf);
	if (d->loop->ops->recvmsg(d->loop, c->a_fd, &c->msg,
				  ud_make(UD_HDR_RECV, c->slot, c->gen)) < 0) {
		conn_close(d, c, 1);
		return;
	}
	c->inflight++;
}

void handoff_accept_done(struct proxy *d, int res, int more)
{
	if (!more) {
		d->handoff_armed = 0;
	}
	if (res < 0) {
		if (res != -ECANCELED) {
			log_warn("handoff accept: %s; retrying shortly", strerror(-res));
			d->handoff_retry_ms = now_ms() + 100;
		}
		return;
	}
	if (d->spread && d->spread(d, SPREAD_HANDOFF, 0, res)) {
		return; /* a less busy loop serves it */
	}
	handoff_adopt(d, res);
}

void handoff_adopt(struct proxy *d, int res)
{
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct conn *c;

	if (getsockopt(res, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
		close(res);
		return;
	}
	if (!uid_allowed(d, cred.uid)) {
		log_warn("handoff from pid %d uid %u refused: uid not in allowed_uids",
			 (int)cred.pid, (unsigned)cred.uid);
		d->stats.handoff_errors_total++;
		close(res);
		return;
	}
	c = conn_new(d, CONN_HANDOFF, res);
	if (!c) {
		log_warn("handoff from pid %d refused: connection limit reached", (int)cred.pid);
		close(res);
		return;
	}
	c->pid = (uint32_t)cred.pid;
	c->peer_uid = cred.uid;
	c->state = CS_HEADER;
	c->deadline_ms = now_ms() + HEADER_TIMEOUT_MS;
	arm_header_recv(d, c);
}

int handoff_validate(const struct ldm_handoff *h, size_t len, char *why, size_t why_len)
{
	/* Each field is judged as soon as it has arrived, so that garbage is
	 * refused at once rather than after a timeout. */
	if (len >= 4 && h->magic != LDM_HANDOFF_MAGIC) {
		snprintf(why, why_len, "bad magic 0x%08x", h->magic);
		return -EPROTO;
	}
	if (len >= 6 && h->version != LDM_PROTO_VERSION) {
		snprintf(why, why_len, "unknown protocol version %u (this daemon speaks %u)",
			 (unsigned)h->version, (unsigned)LDM_PROTO_VERSION);
		return -EPROTO;
	}
	if (len >= 12 && h->len != sizeof(*h)) {
		snprintf(why, why_len, "header length %u, expected %zu", h->len, sizeof(*h));
		return -EPROTO;
	}
	if (len < sizeof(*h)) {
		return -EAGAIN;
	}
	switch (h->op) {
	case LDM_OP_CONNECT:
		if ((h->addr.family != AF_INET && h->addr.family != AF_INET6) ||
		    h->addr.port == 0) {
			snprintf(why, why_len,
				 "CONNECT destination is not an IPv4/IPv6 address with a port");
			return -EPROTO;
		}
		if (h->filler_len > HANDOFF_FILLER_MAX) {
			snprintf(why, why_len, "CONNECT filler too large");
			return -EPROTO;
		}
		return 0;
	case LDM_OP_LISTEN:
		if (memchr(h->listen_name, '\0', sizeof(h->listen_name)) == NULL ||
		    !h->listen_name[0]) {
			snprintf(why, why_len, "LISTEN name is empty or not terminated");
			return -EPROTO;
		}
		return 0;
	case LDM_OP_QUERY:
	case LDM_OP_RESET:
		return 0;
	default:
		snprintf(why, why_len, "unknown operation %u", h->op);
		return -EPROTO;
	}
}

static void reject(struct proxy *d, struct conn *c, const char *why)
{
	log_warn("handoff from pid %u uid %u rejected: %s; closing", c->pid, c->peer_uid, why);
	d->stats.handoff_errors_total++;
	conn_close(d, c, 1);
}

static void take_fds(struct conn *c)
{
	struct cmsghdr *cm;

	for (cm = CMSG_FIRSTHDR(&c->msg); cm; cm = CMSG_NXTHDR(&c->msg, cm)) {
		int *fds = (int *)CMSG_DATA(cm);
		size_t n, i;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
			continue;
		}
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			if (c->nhfds < (int)ARRAY_SIZE(c->hfds)) {
				c->hfds[c->nhfds++] = fds[i];
			} else {
				close(fds[i]); /* more than any message may carry */
			}
		}
	}
}

static int sockopt_int(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	return getsockopt(fd, level, name, &v, &len) < 0 ? -1 : v;
}

static int send_status(int fd, uint64_t cookie, int err, const struct ldm_addr *local,
		       const struct ldm_addr *peer)
{
	struct ldm_status st;

	memset(&st, 0, sizeof(st));
	st.magic = LDM_STATUS_MAGIC;
	st.err = err;
	st.cookie = cookie;
	if (local) {
		st.local = *local;
	}
	if (peer) {
		st.peer = *peer;
	}
	/* Tiny answer on a fresh socket: it fits, no need to queue it. */
	return send(fd, &st, sizeof(st), MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)sizeof(st) ? 0
											     : -EIO;
}

int handoff_answer(int fd, uint64_t cookie, int err)
{
	return send_status(fd, cookie, err, NULL, NULL);
}

static struct dial_table *dial_table(struct proxy *d)
{
	return d->dial_tab ? d->dial_tab : &d->dials;
}

static void record(struct proxy *d, uint64_t cookie, int err, const struct ldm_addr *local,
		   const struct ldm_addr *peer)
{
	struct dial_table *t = dial_table(d);
	struct dial_result *r;

	pthread_mutex_lock(&t->lock);
	r = &t->dials[t->next++ % DIAL_RESULTS];
	r->cookie = cookie;
	r->err = err;
	r->local = *local;
	r->peer = *peer;
	pthread_mutex_unlock(&t->lock);
}

/* Remembers a dial's outcome for the shim's LDM_OP_QUERY. */
static void record_dial(struct proxy *d, const struct conn *c, int err)
{
	record(d, c->cookie, err, &c->local, &c->peer);
}

static void handle_query(struct proxy *d, struct conn *c)
{
	struct dial_table *t = dial_table(d);
	uint64_t cookie = c->hdr.cookie;
	struct dial_result found;
	uint32_t i;
	int hit = 0;

	for (i = 0; i < d->nslots; i++) {
		struct conn *o = d->conns[i];
		if (o && o->kind == CONN_OUTBOUND && o->cookie == cookie &&
		    o->state != CS_CLOSING) {
			send_status(c->a_fd, cookie, o->state == CS_DIAL ? -EINPROGRESS : 0,
				    &o->local, &o->peer);
			conn_close(d, c, 0);
			return;
		}
	}
	/* Not here: another loop's dial, as it stands or as it ended. */
	pthread_mutex_lock(&t->lock);
	for (i = 0; i < DIAL_RESULTS && cookie; i++) {
		const struct dial_result *r = &t->dials[(t->next - 1 - i) % DIAL_RESULTS];
		if (r->cookie == cookie) {
			found = *r;
			hit = 1;
			break;
		}
	}
	pthread_mutex_unlock(&t->lock);
	if (hit) {
		send_status(c->a_fd, cookie, found.err, &found.local, &found.peer);
	} else {
		send_status(c->a_fd, cookie, -ENOENT, NULL, NULL);
	}
	conn_close(d, c, 0);
}

int handoff_reset_here(struct proxy *d, uint64_t cookie)
{
	uint32_t i;

	for (i = 0; cookie && i < d->nslots; i++) {
		struct conn *o = d->conns[i];
		if (o && (o->kind == CONN_OUTBOUND || o->kind == CONN_INBOUND) &&
		    o->cookie == cookie && o->state != CS_CLOSING) {
			log_debug("conn %u: the app reset it (SO_LINGER 0)", o->slot);
			conn_close(d, o, 1);
			return 0;
		}
	}
	return -ENOENT;
}

static void handle_reset(struct proxy *d, struct conn *c)
{
	uint64_t cookie = c->hdr.cookie;
	int err = handoff_reset_here(d, cookie), fd;

	if (err == -ENOENT && cookie && d->reset_elsewhere) {
		/* Another loop may hold it; the answer waits until each looked,
		 * so that the reset still beats the app's FIN. */
		fd = dup(c->a_fd);
		if (fd >= 0 && d->reset_elsewhere(d, cookie, fd) == 0) {
			conn_close(d, c, 0);
			return;
		}
		if (fd >= 0) {
			close(fd);
		}
	}
	send_status(c->a_fd, cookie, err, NULL, NULL);
	conn_close(d, c, 0);
}

static void handle_connect(struct proxy *d, struct conn *c)
{
	const struct ldm_handoff *h = &c->hdr;
	int tcp, app_end, dom;

	if (c->nhfds != 2) {
		reject(d, c, "CONNECT needs exactly 2 fds");
		return;
	}
	tcp = c->hfds[0];
	app_end = c->hfds[1];
	dom = sockopt_int(tcp, SOL_SOCKET, SO_DOMAIN);
	if ((dom != AF_INET && dom != AF_INET6) ||
	    sockopt_int(tcp, SOL_SOCKET, SO_PROTOCOL) != IPPROTO_TCP) {
		reject(d, c, "CONNECT fd is not a TCP socket");
		return;
	}
	if (sockopt_int(app_end, SOL_SOCKET, SO_DOMAIN) != AF_UNIX) {
		reject(d, c, "CONNECT second fd is not a Unix socket");
		return;
	}
	fcntl(tcp, F_SETFL, fcntl(tcp, F_GETFL) | O_NONBLOCK);
	c->nhfds = 0; /* ownership moves to the outbound connection */
	c->cookie = h->cookie;
	c->pid = h->pid ? h->pid : c->pid;
	c->peer = h->addr;
	c->filler_left = h->filler_len;
	c->sndbuf = h->sndbuf;
	c->app_fd_num = h->app_fd;
	d->stats.handoffs_total++;
	if (d->spread) {
		/* Several loops: a query reaching another one learns that this
		 * dial is under way. */
		struct ldm_addr none = {0};
		record(d, c->cookie, -EINPROGRESS, &none, &c->peer);
	}
	conn_start_outbound(d, c, tcp, app_end);
}

static void handle_listen(struct proxy *d, struct conn *c)
{
	const struct ldm_handoff *h = &c->hdr;
	int tcp, r;

	if (c->nhfds != 1) {
		reject(d, c, "LISTEN needs exactly 1 fd");
		return;
	}
	tcp = c->hfds[0];
	if (sockopt_int(tcp, SOL_SOCKET, SO_PROTOCOL) != IPPROTO_TCP ||
	    sockopt_int(tcp, SOL_SOCKET, SO_ACCEPTCONN) != 1) {
		reject(d, c, "LISTEN fd is not a listening TCP socket");
		return;
	}
	c->nhfds = 0;
	r = listener_register(d, h, tcp, c);
	if (r < 0) {
		send_status(c->a_fd, h->cookie, r, NULL, NULL);
		conn_close(d, c, 0);
		return;
	}
	send_status(c->a_fd, h->cookie, 0, NULL, NULL);
	/* Watch the link: end-of-file means the app let go of the listener. */
	if (conn_submit_recv(d, c, c->a_fd, &c->hdr, sizeof(c->hdr), UD_LINK_RECV) < 0) {
		conn_close(d, c, 0);
	}
}

/* A header (or part of one) arrived on c. */
static void header_done(struct proxy *d, struct conn *c, int res)
{
	char why[96];
	int r;

	if (res < 0) {
		reject(d, c, strerror(-res));
		return;
	}
	if (c->msg.msg_flags & MSG_CTRUNC) {
		take_fds(c);
		/* The kernel drops fds it cannot install: more than a message may
		 * carry, or this daemon is out of file descriptors. */
		reject(d, c,
		       "attached fds were dropped (more than 4, or the daemon is out of "
		       "file descriptors: see RLIMIT_NOFILE)");
		return;
	}
	take_fds(c);
	if (res == 0) {
		if (c->hdr_got == 0 && c->nhfds == 0) {
			/* A readiness probe: connected and left. */
			conn_close(d, c, 0);
		} else {
			snprintf(why, sizeof(why), "truncated header (%u of %zu bytes)", c->hdr_got,
				 sizeof(c->hdr));
			reject(d, c, why);
		}
		return;
	}
	c->hdr_got += (uint32_t)res;
	r = handoff_validate(&c->hdr, c->hdr_got, why, sizeof(why));
	if (r == -EAGAIN) {
		arm_header_recv(d, c);
		return;
	}
	if (r < 0) {
		reject(d, c, why);
		return;
	}
	c->deadline_ms = 0;
	switch (c->hdr.op) {
	case LDM_OP_CONNECT:
		handle_connect(d, c);
		break;
	case LDM_OP_LISTEN:
		handle_listen(d, c);
		break;
	case LDM_OP_QUERY:
		if (c->nhfds) {
			reject(d, c, "QUERY carries no fds");
			break;
		}
		handle_query(d, c);
		break;
	case LDM_OP_RESET:
		if (c->nhfds) {
			reject(d, c, "RESET carries no fds");
			break;
		}
		handle_reset(d, c);
		break;
	default: /* refused by handoff_validate */
		reject(d, c, "unknown operation");
	}
}
