/*
 * The trapped socket-setup calls, performed for the app as the shim would
 * perform them (see shim/hook_*.c and include/ldmesh/proto.h):
 *
 *   bind     a TCP socket gets a twin made and bound here (SK_BOUND), put in
 *            place of the app's, so that listen and connect find it;
 *   listen   the twin goes to ldmeshd; a Unix listener takes the app's fd;
 *   accept   connections the daemon delivers to that listener are read
 *            here (preamble: peer address) and installed in the app;
 *   connect  a TCP socket and the app end of a Unix connection go to the
 *            daemon, which dials; the Unix end takes the app's fd and
 *            POLLOUT on it means "connected";
 *   names, SO_ERROR  answered as TCP for the sockets above.
 *
 * Anything else (Unix and UDP sockets, loopback, excluded ports) continues
 * in the kernel untouched.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "ldmesh/addr.h"
#include "run.h"
#include "wire.h"

#define PREAMBLE_WAIT_MS 2000

static uint64_t fd_ino(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

static int set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) < 0) {
		return -errno;
	}
	return 0;
}

/* The family of a TCP socket from its protocol name, 0 when not TCP. */
static int tcp_family(const char *proto)
{
	if (!strcmp(proto, "TCP") || !strcmp(proto, "MPTCP")) {
		return AF_INET;
	}
	if (!strcmp(proto, "TCPv6") || !strcmp(proto, "MPTCPv6")) {
		return AF_INET6;
	}
	return 0;
}

static int app_tcp_family(const struct trap *t, int fd)
{
	char proto[32];

	if (target_sock_proto(t->tid, fd, proto, sizeof(proto)) < 0) {
		return 0;
	}
	return tcp_family(proto);
}

/* Reads the call's sockaddr argument into a struct ldm_addr. */
static int read_addr(struct supervisor *s, const struct trap *t, uint64_t ptr, uint64_t len,
		     struct sockaddr_storage *ss, socklen_t *sl)
{
	size_t n = len < sizeof(*ss) ? (size_t)len : sizeof(*ss);
	int r;

	memset(ss, 0, sizeof(*ss));
	if (n < sizeof(sa_family_t)) {
		return -EINVAL;
	}
	r = target_read(&s->mem, t->tid, ptr, ss, n);
	*sl = (socklen_t)n;
	return r;
}

/* Copies a TCP address to the app's (addr, *len) with the kernel's
 * truncation rules.  A NULL addr is allowed (accept(fd, NULL, NULL)). */
static int write_addr(struct supervisor *s, const struct trap *t, uint64_t addr_ptr,
		      uint64_t len_ptr, const struct ldm_addr *a, int family)
{
	struct sockaddr_storage ss;
	socklen_t want = ldm_addr_to_sockaddr(a, family, &ss);
	uint32_t have;
	int r;

	if (!addr_ptr || !len_ptr) {
		return 0;
	}
	r = target_read(&s->mem, t->tid, len_ptr, &have, sizeof(have));
	if (r < 0) {
		return r;
	}
	if ((int32_t)have < 0) {
		return -EINVAL;
	}
	r = target_write(&s->mem, t->tid, addr_ptr, &ss, have < want ? have : want);
	if (r == 0) {
		r = target_write(&s->mem, t->tid, len_ptr, &want, sizeof(want));
	}
	return r;
}

static struct sock_entry *lookup(struct supervisor *s, const struct trap *t, int fd,
				 uint64_t *ino_out)
{
	uint64_t ino = target_sock_ino(t->tid, fd);

	if (ino_out) {
		*ino_out = ino;
	}
	return socktab_get(&s->tab, ino);
}

/* ---- connect ---------------------------------------------------------- */

/* A connect() or bind() on a TCP socket, with its address read. */
struct tcp_call {
	int fd, family, st_flags, cloexec;
	struct sockaddr_storage ss;
	socklen_t sl;
	struct ldm_addr addr;
};

/*
 * What connect() and bind() share: is this a TCP socket going to (or
 * being bound at) an address the mesh handles?  1 with *tc filled when it
 * is; 0 when the call is answered already: continued in the kernel (Unix,
 * UDP, loopback, excluded), or refused because its address cannot be read
 * (a non-dumpable process: closed, never plaintext).
 */
static int meshed_tcp_call(struct supervisor *s, const struct trap *t, int listener,
			   struct tcp_call *tc)
{
	int r;

	tc->fd = (int)t->args[0];
	tc->family = app_tcp_family(t, tc->fd);
	if (!tc->family) {
		trap_continue(s, t);
		return 0;
	}
	r = read_addr(s, t, t->args[1], t->args[2], &tc->ss, &tc->sl);
	if (r == -EINVAL) {
		trap_continue(s, t);
		return 0;
	}
	if (r < 0) {
		run_log(&s->cfg, RUN_ERR, "pid %d: cannot read %s()'s address (%s); refusing",
			(int)t->tid, listener ? "bind" : "connect", strerror(-r));
		trap_reply(s, t, -EACCES);
		return 0;
	}
	if ((tc->ss.ss_family != AF_INET && tc->ss.ss_family != AF_INET6) ||
	    ldm_addr_from_sockaddr((struct sockaddr *)&tc->ss, tc->sl, &tc->addr) < 0 ||
	    (listener ? excl_bypass_listener(&s->cfg.excl, &tc->addr)
		      : excl_bypass(&s->cfg.excl, &tc->addr))) {
		trap_continue(s, t);
		return 0;
	}
	if (target_fd_flags(t->tid, tc->fd, &tc->st_flags, &tc->cloexec) < 0 || !trap_valid(s, t)) {
		trap_reply(s, t, -EBADF);
		return 0;
	}
	return 1;
}

/* Outcome of a dial, without blocking: 0 connected, -EINPROGRESS, -errno. */
static int dial_check(struct supervisor *s, struct sock_entry *e)
{
	struct pollfd p = {.fd = e->dial_fd, .events = POLLOUT | POLLIN | POLLRDHUP};
	struct ldm_status st;
	int r;

	if (e->state == CS_FAILED) {
		return -e->fail_err;
	}
	if (e->state == CS_CONNECTED) {
		return 0;
	}
	if (poll(&p, 1, 0) < 0) {
		return -EINPROGRESS;
	}
	if (p.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLIN)) {
		/* Failed, or connected and the peer already spoke or left: only
		 * the daemon knows which. */
		r = dl_query(&s->dl, e->cookie, &st);
		if (r == 0 && st.err == -EINPROGRESS) {
			return -EINPROGRESS;
		}
		if (r == 0 && st.err == 0) {
			e->state = CS_CONNECTED;
			if (st.local.family) {
				e->local = st.local;
			}
		} else {
			e->state = CS_FAILED;
			e->fail_err = (r == 0 && st.err < 0 && st.err != -ENOENT) ? -st.err
										  : ECONNREFUSED;
		}
	} else if (p.revents & POLLOUT) {
		e->state = CS_CONNECTED;
	} else {
		return -EINPROGRESS;
	}
	close(e->dial_fd);
	e->dial_fd = -1;
	return e->state == CS_CONNECTED ? 0 : -e->fail_err;
}

/* connect() again on a socket we dialled: EALREADY/EISCONN, or for a
 * blocking socket (and a blocking connect resumed) the dial's outcome. */
static void connect_again(struct supervisor *s, const struct trap *t, struct sock_entry *e,
			  int resumed)
{
	int r = dial_check(s, e);

	if (r == -EINPROGRESS) {
		int fl = fcntl(e->dial_fd, F_GETFL);

		if (fl >= 0 && !(fl & O_NONBLOCK)) {
			if (trap_park(s, t, e->dial_fd, POLLOUT | POLLIN | POLLRDHUP, e->ino) ==
			    0) {
				return;
			}
		}
		trap_reply(s, t, -EALREADY);
		return;
	}
	if (r == 0) {
		trap_reply(s, t, resumed ? 0 : -EISCONN);
		return;
	}
	trap_reply(s, t, r);
}

static void do_connect(struct supervisor *s, const struct trap *t, int resumed)
{
	int fd = (int)t->args[0], tcp, u = -1, r;
	struct sock_entry *e, *bound = NULL;
	struct tcp_call tc;
	uint64_t cookie;
	pid_t tgid;

	e = lookup(s, t, fd, NULL);
	if (e && e->kind == SK_CONN) {
		connect_again(s, t, e, resumed);
		return;
	}
	if (e && e->kind != SK_BOUND) {
		trap_reply(s, t, -EISCONN);
		return;
	}
	bound = e;
	if (!meshed_tcp_call(s, t, 0, &tc)) {
		return;
	}
	tcp = bound ? dup(bound->tcp_fd) : socket(tc.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (tcp < 0) {
		trap_reply(s, t, -errno);
		return;
	}
	cookie = wire_new_cookie();
	tgid = target_tgid(t->tid);
	r = dl_connect(&s->dl, tcp, &tc.addr, cookie, tc.st_flags & O_NONBLOCK, tgid, fd, &u);
	close(tcp);
	if (r < 0) {
		if (s->cfg.fail_open) {
			run_log(&s->cfg, RUN_ERR,
				"ldmeshd unreachable at %s (%s); LDMESH_FAIL_OPEN=1, "
				"connecting without the mesh",
				s->cfg.handoff_path, strerror(-r));
			trap_continue(s, t);
			return;
		}
		run_log(&s->cfg, RUN_ERR,
			"ldmeshd unreachable at %s (%s); refusing connection (fail closed)",
			s->cfg.handoff_path, strerror(-r));
		trap_reply(s, t, -ECONNREFUSED);
		return;
	}
	e = socktab_add(&s->tab, fd_ino(u), SK_CONN);
	if (!e || set_nonblock(u, tc.st_flags & O_NONBLOCK) < 0) {
		if (e) {
			socktab_del(&s->tab, e);
		}
		close(u);
		trap_reply(s, t, -ENOMEM);
		return;
	}
	e->family = tc.family;
	e->peer = tc.addr;
	e->cookie = cookie;
	e->state = CS_CONNECTING;
	e->dial_fd = u;
	/* The Unix end takes the app's fd number; the socket the app made
	 * closes with it (the daemon dials with ours). */
	r = trap_install(s, t, u, fd, tc.cloexec);
	if (r < 0) {
		socktab_del(&s->tab, e);
		trap_reply(s, t, r);
		return;
	}
	if (bound) {
		socktab_del(&s->tab, bound);
	}
	if (tc.st_flags & O_NONBLOCK) {
		trap_reply(s, t, -EINPROGRESS);
		return;
	}
	connect_again(s, t, e, 1);
}

/* ---- bind and listen -------------------------------------------------- */

static void do_bind(struct supervisor *s, const struct trap *t)
{
	int tcp, one = 1, r;
	struct sock_entry *e;
	struct tcp_call tc;

	e = lookup(s, t, (int)t->args[0], NULL);
	if (e) {
		/* Bound, listening or connected already: as TCP says. */
		trap_reply(s, t, -EINVAL);
		return;
	}
	if (!meshed_tcp_call(s, t, 1, &tc)) {
		return;
	}
	/* Our twin of the app's socket; the app's options before bind are not
	 * copied (SO_REUSEADDR is what servers set, so the twin has it). */
	tcp = socket(tc.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (tcp < 0) {
		trap_reply(s, t, -errno);
		return;
	}
	setsockopt(tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	r = bind(tcp, (struct sockaddr *)&tc.ss, tc.sl) < 0 ? -errno : 0;
	if (r == -EADDRINUSE && socktab_sweep(&s->tab, &s->cfg, s->dl.daemon_pid) > 0) {
		/* A listener the app closed a moment ago still held the port. */
		r = bind(tcp, (struct sockaddr *)&tc.ss, tc.sl) < 0 ? -errno : 0;
	}
	if (r == 0) {
		r = set_nonblock(tcp, tc.st_flags & O_NONBLOCK);
	}
	e = r == 0 ? socktab_add(&s->tab, fd_ino(tcp), SK_BOUND) : NULL;
	if (r == 0 && !e) {
		r = -ENOMEM;
	}
	if (r < 0) {
		close(tcp);
		trap_reply(s, t, r);
		return;
	}
	e->family = tc.family;
	e->tcp_fd = tcp;
	{
		struct sockaddr_storage ls;
		socklen_t ll = sizeof(ls);

		if (getsockname(tcp, (struct sockaddr *)&ls, &ll) == 0) {
			ldm_addr_from_sockaddr((struct sockaddr *)&ls, ll, &e->local);
		}
	}
	r = trap_install(s, t, tcp, tc.fd, tc.cloexec);
	if (r < 0) {
		socktab_del(&s->tab, e);
		trap_reply(s, t, r);
		return;
	}
	trap_reply(s, t, 0);
}

static int unix_backlog(int backlog)
{
	return backlog < SOMAXCONN ? SOMAXCONN : backlog;
}

static int unix_listener(const char *name, int backlog)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	size_t n = strlen(name);
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (l < 0) {
		return -errno;
	}
	memcpy(sun.sun_path + 1, name, n);
	if (bind(l, (struct sockaddr *)&sun,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) < 0 ||
	    listen(l, unix_backlog(backlog)) < 0) {
		int err = -errno;
		close(l);
		return err;
	}
	return l;
}

static void do_listen(struct supervisor *s, const struct trap *t)
{
	int fd = (int)t->args[0], backlog = (int)t->args[1], st_flags = 0, cloexec = 0, l, r;
	struct sock_entry *b, *e;
	uint64_t id;

	b = lookup(s, t, fd, NULL);
	if (!b) {
		/* Not a socket we bound (Unix, UDP, loopback, excluded, or one the
		 * process did not bind under us): the kernel's.  A TCP listener
		 * left this way is what ldmeshd reports as unprotected. */
		trap_continue(s, t);
		return;
	}
	if (b->kind == SK_LISTENER) {
		/* listen() again only changes the backlog. */
		b->backlog = backlog;
		trap_reply(s, t, listen(b->unix_fd, unix_backlog(backlog)) < 0 ? -errno : 0);
		return;
	}
	if (b->kind != SK_BOUND) {
		trap_reply(s, t, -EINVAL);
		return;
	}
	if (target_fd_flags(t->tid, fd, &st_flags, &cloexec) < 0 || !trap_valid(s, t)) {
		trap_reply(s, t, -EBADF);
		return;
	}
	if (listen(b->tcp_fd, backlog) < 0) {
		trap_reply(s, t, -errno);
		return;
	}
	id = wire_new_cookie();
	e = NULL;
	{
		char name[LDM_LISTEN_NAME_MAX];
		pid_t tgid = target_tgid(t->tid);

		snprintf(name, sizeof(name), "ldmesh-in-%d-%016" PRIx64, (int)tgid, id);
		l = unix_listener(name, backlog);
		if (l < 0 || set_nonblock(l, st_flags & O_NONBLOCK) < 0 ||
		    !(e = socktab_add(&s->tab, fd_ino(l), SK_LISTENER))) {
			if (l >= 0) {
				close(l);
			}
			trap_reply(s, t, l < 0 ? l : -ENOMEM);
			return;
		}
		memcpy(e->name, name, sizeof(e->name));
		e->owner = tgid;
	}
	e->family = b->family;
	e->local = b->local;
	e->backlog = backlog;
	e->id = id;
	e->unix_fd = l;
	e->tcp_fd = b->tcp_fd;
	b->tcp_fd = -1;
	r = trap_install(s, t, l, fd, cloexec);
	if (r < 0) {
		b->tcp_fd = e->tcp_fd;
		e->tcp_fd = -1;
		socktab_del(&s->tab, e);
		trap_reply(s, t, r);
		return;
	}
	socktab_del(&s->tab, b);
	e->link_fd = dl_listen(&s->dl, e->tcp_fd, e->id, &e->local, backlog, e->name, e->owner);
	if (e->link_fd < 0) {
		/* The port is bound and held here; the retry timer hands it over
		 * when the daemon comes up.  Until then clients wait in the backlog. */
		run_log(&s->cfg, RUN_ERR,
			"cannot register listener %s with ldmeshd (%s); will retry", e->name,
			strerror(-e->link_fd));
		e->link_fd = -1;
	}
	trap_reply(s, t, 0);
}

int calls_retry_listeners(struct supervisor *s)
{
	int down = 0;

	for (unsigned int b = 0; b < SOCKTAB_BUCKETS; b++) {
		for (struct sock_entry *e = s->tab.b[b]; e; e = e->next) {
			if (e->kind != SK_LISTENER || e->link_fd >= 0) {
				continue;
			}
			e->link_fd = dl_listen(&s->dl, e->tcp_fd, e->id, &e->local, e->backlog,
					       e->name, e->owner);
			if (e->link_fd < 0) {
				e->link_fd = -1;
				down = 1;
			} else {
				run_log(&s->cfg, RUN_INFO, "listener %s registered with ldmeshd",
					e->name);
			}
		}
	}
	return down;
}

void calls_link_down(struct supervisor *s, struct sock_entry *e)
{
	run_log(&s->cfg, RUN_INFO, "ldmeshd went away; holding %s", e->name);
	close(e->link_fd);
	e->link_fd = -1;
}

/* ---- accept ----------------------------------------------------------- */

/* Takes one connection off listener e: 1 and *out, 0 when none waits. */
static int take_conn(struct supervisor *s, struct sock_entry *e, struct pending_conn **out)
{
	for (;;) {
		struct pollfd p = {.fd = e->unix_fd, .events = POLLIN};
		struct ldm_preamble pre;
		char id[LDM_PEER_ID_MAX];
		struct ucred cred;
		socklen_t clen = sizeof(cred);
		struct pending_conn *pc;
		int c, sock = -1, r;

		if (e->stash) {
			*out = e->stash;
			e->stash = e->stash->next;
			return 1;
		}
		if (poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN)) {
			return 0;
		}
		/* Nobody else accepts here: the app's accept calls all come to us. */
		c = accept4(e->unix_fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
				return 0;
			}
			return -errno;
		}
		/* Only the daemon may claim a peer address: anyone in the pod can
		 * reach an abstract socket. */
		r = getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 ? -errno : 0;
		if (r == 0 && cred.uid != 0 && cred.uid != s->dl.daemon_uid) {
			r = -EPERM;
		}
		if (r == 0) {
			r = wire_recv_full(c, &pre, sizeof(pre), &sock, PREAMBLE_WAIT_MS);
		}
		if (r == 0) {
			r = preamble_check(&pre);
		}
		if (r == 0) {
			r = wire_recv_full(c, id, pre.id_len, NULL, PREAMBLE_WAIT_MS);
		}
		pc = r == 0 ? calloc(1, sizeof(*pc)) : NULL;
		if (!pc) {
			run_log(&s->cfg, RUN_ERR, "dropping a connection on %s: %s", e->name,
				strerror(r < 0 ? -r : ENOMEM));
			if (sock >= 0) {
				close(sock);
			}
			close(c);
			continue;
		}
		pc->peer = pre.peer;
		pc->local = pre.local;
		pc->conn_id = pre.conn_id;
		if (sock >= 0) {
			/* Same pod: the TCP socket itself, nothing in between. */
			close(c);
			pc->fd = sock;
			pc->is_tcp = 1;
		} else {
			pc->fd = c;
		}
		*out = pc;
		return 1;
	}
}

static void stash_front(struct sock_entry *e, struct pending_conn *pc)
{
	pc->next = e->stash;
	e->stash = pc;
}

static void do_accept(struct supervisor *s, const struct trap *t)
{
	int fd = (int)t->args[0], flags = t->nr == __NR_accept4 ? (int)t->args[3] : 0, r;
	struct pending_conn *pc = NULL;
	struct sock_entry *e, *ae = NULL;

	e = lookup(s, t, fd, NULL);
	if (!e || e->kind != SK_LISTENER) {
		trap_continue(s, t);
		return;
	}
	if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) {
		trap_reply(s, t, -EINVAL);
		return;
	}
	r = take_conn(s, e, &pc);
	if (r == 0) {
		int fl = fcntl(e->unix_fd, F_GETFL);

		if (fl >= 0 && !(fl & O_NONBLOCK) &&
		    trap_park(s, t, e->unix_fd, POLLIN, e->ino) == 0) {
			return;
		}
		trap_reply(s, t, -EAGAIN);
		return;
	}
	if (r < 0) {
		trap_reply(s, t, r);
		return;
	}
	if (!trap_valid(s, t)) {
		stash_front(e, pc); /* interrupted: the next accept gets it */
		return;
	}
	r = write_addr(s, t, t->args[1], t->args[2], &pc->peer, e->family);
	if (r == 0) {
		r = set_nonblock(pc->fd, flags & SOCK_NONBLOCK);
	}
	if (r == 0 && !pc->is_tcp) {
		ae = socktab_add(&s->tab, fd_ino(pc->fd), SK_ACCEPTED);
		if (!ae) {
			r = -ENOMEM;
		} else {
			ae->family = e->family;
			ae->peer = pc->peer;
			ae->local = pc->local;
			ae->cookie = pc->conn_id;
		}
	}
	if (r == 0) {
		r = trap_install(s, t, pc->fd, -1, flags & SOCK_CLOEXEC);
	}
	if (r < 0) {
		if (ae) {
			socktab_del(&s->tab, ae);
		}
		stash_front(e, pc);
		trap_reply(s, t, r == -EFAULT || r == -EINVAL ? r : -ECONNABORTED);
		return;
	}
	close(pc->fd);
	free(pc);
}

/* ---- names and SO_ERROR ----------------------------------------------- */

static void do_name(struct supervisor *s, const struct trap *t)
{
	int fd = (int)t->args[0], peer = t->nr == __NR_getpeername, r;
	struct sock_entry *e = lookup(s, t, fd, NULL);
	struct ldm_addr any;

	if (!e || e->kind == SK_BOUND) {
		trap_continue(s, t); /* the kernel's socket answers for itself */
		return;
	}
	if (peer) {
		if (e->kind == SK_LISTENER ||
		    (e->kind == SK_CONN &&
		     (e->dial_fd >= 0 ? dial_check(s, e) != 0 : e->state != CS_CONNECTED))) {
			trap_reply(s, t, -ENOTCONN);
			return;
		}
		r = write_addr(s, t, t->args[1], t->args[2], &e->peer, e->family);
		trap_reply(s, t, r);
		return;
	}
	if (e->kind == SK_CONN && !e->local.family && e->state == CS_CONNECTED) {
		struct ldm_status st;

		if (dl_query(&s->dl, e->cookie, &st) == 0 && st.err == 0 && st.local.family) {
			e->local = st.local;
		}
	}
	if (!e->local.family) {
		/* Not bound yet (or unknown): the wildcard, port 0. */
		memset(&any, 0, sizeof(any));
		any.family = (uint16_t)e->family;
		r = write_addr(s, t, t->args[1], t->args[2], &any, e->family);
	} else {
		r = write_addr(s, t, t->args[1], t->args[2], &e->local, e->family);
	}
	trap_reply(s, t, r);
}

static void do_so_error(struct supervisor *s, const struct trap *t)
{
	struct sock_entry *e = lookup(s, t, (int)t->args[0], NULL);
	int32_t v;
	uint32_t len;
	int r;

	if (!e || e->kind != SK_CONN || e->state == CS_CONNECTED || e->err_reported) {
		trap_continue(s, t);
		return;
	}
	r = dial_check(s, e);
	v = r == -EINPROGRESS ? 0 : -r;
	if (r < 0 && r != -EINPROGRESS) {
		e->err_reported = 1; /* once, like the kernel */
	}
	r = target_read(&s->mem, t->tid, t->args[4], &len, sizeof(len));
	if (r == 0 && len < sizeof(v)) {
		r = -EINVAL;
	}
	if (r == 0) {
		r = target_write(&s->mem, t->tid, t->args[3], &v, sizeof(v));
	}
	if (r == 0) {
		len = sizeof(v);
		r = target_write(&s->mem, t->tid, t->args[4], &len, sizeof(len));
	}
	trap_reply(s, t, r);
}

static void dispatch(struct supervisor *s, const struct trap *t, int resumed)
{
	switch (t->nr) {
	case __NR_connect:
		do_connect(s, t, resumed);
		break;
	case __NR_bind:
		do_bind(s, t);
		break;
	case __NR_listen:
		do_listen(s, t);
		break;
	case __NR_accept:
	case __NR_accept4:
		do_accept(s, t);
		break;
	case __NR_getsockname:
	case __NR_getpeername:
		do_name(s, t);
		break;
	case __NR_getsockopt:
		do_so_error(s, t);
		break;
	default:
		trap_continue(s, t);
	}
}

void calls_dispatch(struct supervisor *s, const struct trap *t)
{
	dispatch(s, t, 0);
}

void calls_resume(struct supervisor *s, const struct trap *t, uint64_t ino)
{
	(void)ino;
	dispatch(s, t, 1);
}
