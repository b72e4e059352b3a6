/*
 * listen(): the TCP listener goes to the daemon, which accepts, runs mTLS
 * and policy, and connects each client to a Unix listener that takes the
 * app's fd number.  The shim keeps its own copy of the TCP listener so the
 * port stays bound across a daemon restart.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "shim.h"

/*
 * The app's Unix listener queues what the daemon took from the TCP
 * backlog.  A Unix connect() to a full queue fails at once (EAGAIN), where
 * a TCP client would have waited and retried its SYN, so the queue is at
 * least SOMAXCONN deep: a burst waits for the app instead of being reset.
 */
static int unix_backlog(int backlog)
{
	return backlog < SOMAXCONN ? SOMAXCONN : backlog;
}

static int unix_listener(const char *name, int backlog)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	size_t n = strlen(name);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (s < 0) {
		return -errno;
	}
	/* Abstract address: lives in the pod's network namespace, no file to
	 * clean up.  accept() checks the peer is the daemon. */
	memcpy(sun.sun_path + 1, name, n);
	if (bind(s, (struct sockaddr *)&sun,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) < 0 ||
	    real.listen(s, unix_backlog(backlog)) < 0) {
		int err = -errno;
		real.close(s);
		return err;
	}
	return s;
}

static int handoff_listen(int fd, int backlog, const struct ldm_addr *addr, int family)
{
	struct listener_reg *reg;
	struct managed *m;
	sigset_t saved;
	int fl, fdfl, l, tcp, r;

	fl = real.fcntl(fd, F_GETFL);
	fdfl = real.fcntl(fd, F_GETFD);
	if (fl < 0 || fdfl < 0) {
		return -errno;
	}
	reg = calloc(1, sizeof(*reg));
	m = managed_new(MANAGED_LISTENER, family);
	if (!reg || !m) {
		free(reg);
		free(m);
		return -ENOMEM;
	}
	reg->id = wire_new_cookie();
	reg->addr = *addr;
	reg->backlog = backlog;
	reg->link_fd = -1;
	snprintf(reg->name, sizeof(reg->name), "ldmesh-in-%d-%016" PRIx64, (int)getpid(), reg->id);

	l = unix_listener(reg->name, backlog);
	if (l < 0) {
		free(reg);
		free(m);
		return l;
	}
	tcp = real.fcntl(fd, F_DUPFD_CLOEXEC, 100);
	if (tcp < 0) {
		tcp = real.fcntl(fd, F_DUPFD_CLOEXEC, 3);
	}
	if (tcp < 0) {
		r = -errno;
		real.close(l);
		free(reg);
		free(m);
		return r;
	}
	reg->tcp_fd = tcp;

	shim_lock(&saved);
	fdtab_mark_hidden(tcp);
	if (real.dup3(l, fd, (fdfl & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) {
		r = -errno;
		fdtab_clear_hidden(tcp);
		shim_unlock(&saved);
		real.close(tcp);
		real.close(l);
		free(reg);
		free(m);
		return r;
	}
	real.close(l);
	if (fl & O_NONBLOCK) {
		real.fcntl(fd, F_SETFL, O_NONBLOCK);
	}
	m->reg = reg;
	reg->refs = 1;
	reg->next = shim.listeners;
	shim.listeners = reg;
	m->local_len = shim_ldm_to_sockaddr(addr, family, &m->local);
	fdtab_set(fd, m);
	r = link_register_listener(reg, 1);
	if (r < 0) {
		/* The port is bound and held; the monitor hands it over when the
		 * daemon comes up.  Until then clients wait in the backlog. */
		shim_log(SHIM_ERR, "cannot register listener with ldmeshd (%s); will retry",
			 strerror(-r));
	}
	link_monitor_ensure();
	shim_unlock(&saved);
	return 0;
}

SHIM_EXPORT int listen(int fd, int backlog)
{
	struct sockaddr_storage ss;
	socklen_t slen = sizeof(ss);
	struct ldm_addr addr;
	int proto = 0, domain = 0, r;
	socklen_t plen = sizeof(proto), dlen = sizeof(domain);

	shim_init();
	if (!shim.active || shim.supervised) {
		return real.listen(fd, backlog);
	}
	if (fdtab_maybe(fd)) {
		/* listen() again on a handed-off listener only changes the backlog. */
		return real.listen(fd, unix_backlog(backlog));
	}
	if (real.getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &plen) < 0 ||
	    proto != IPPROTO_TCP) {
		return real.listen(fd, backlog);
	}
	r = real.listen(fd, backlog);
	if (r < 0) {
		return r;
	}
	if (real.getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dlen) < 0 ||
	    real.getsockname(fd, (struct sockaddr *)&ss, &slen) < 0 ||
	    shim_sockaddr_to_ldm((struct sockaddr *)&ss, slen, &addr) < 0) {
		return 0;
	}
	/* Loopback and excluded ports stay plain; so does 0.0.0.0, which is
	 * "every address" here, not a destination. */
	if (excl_bypass_listener(&shim.excl, &addr)) {
		return 0;
	}
	if (!atomic_load(&shim.ready_seen) && shim.fail_open) {
		int s = link_open(1, NULL);
		if (s < 0) {
			shim_log(SHIM_ERR, "ldmeshd unreachable; LDMESH_FAIL_OPEN=1, listening "
					   "without the mesh");
			return 0;
		}
		real.close(s);
	}
	r = handoff_listen(fd, backlog, &addr, domain);
	if (r < 0) {
		/* The real listener is up; refusing now would surprise the app more
		 * than serving without the mesh would hurt, except that fail-closed
		 * forbids plaintext: report the error. */
		shim_log(SHIM_ERR, "listen handoff failed: %s", strerror(-r));
		errno = -r;
		return -1;
	}
	return 0;
}
