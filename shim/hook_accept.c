/*
 * accept()/accept4() on a handed-off listener: take a connection from the
 * daemon, read its preamble and give the app the real TCP peer address.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

#define PREAMBLE_WAIT_MS 2000

static int read_full(int s, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = {.fd = s, .events = POLLIN};
		ssize_t n = recv(s, (char *)buf + got, len - got, MSG_DONTWAIT);

		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == 0) {
			return -ECONNABORTED;
		}
		if (errno == EINTR) {
			continue;
		}
		if (errno != EAGAIN) {
			return -errno;
		}
		/* The daemon writes the preamble right after connecting. */
		n = poll(&p, 1, PREAMBLE_WAIT_MS);
		if (n == 0) {
			return -ETIMEDOUT;
		}
	}
	return 0;
}

static int take_preamble(int c, struct managed *m)
{
	struct ldm_preamble pre;
	char id[LDM_PEER_ID_MAX];
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	int r;

	/* Only the daemon may claim a peer address: anyone in the pod can
	 * reach an abstract socket. */
	if (real.getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 ||
	    (cred.uid != 0 && cred.uid != shim.daemon_uid)) {
		return -EPERM;
	}
	r = read_full(c, &pre, sizeof(pre));
	if (r < 0) {
		return r;
	}
	r = preamble_check(&pre);
	if (r < 0) {
		return r;
	}
	r = read_full(c, id, pre.id_len);
	if (r < 0) {
		return r;
	}
	m->cookie = pre.conn_id;
	m->peer_len = shim_ldm_to_sockaddr(&pre.peer, m->family, &m->peer);
	m->local_len = shim_ldm_to_sockaddr(&pre.local, m->family, &m->local);
	return 0;
}

static int do_accept(int fd, struct sockaddr *addr, socklen_t *alen, int flags)
{
	struct managed *l, *m;
	sigset_t saved;
	int family, c, r;

	shim_init();
	if (!shim.active || !fdtab_maybe(fd)) {
		return real.accept4(fd, addr, alen, flags);
	}
	shim_lock(&saved);
	l = fdtab_lookup(fd);
	family = l && l->kind == MANAGED_LISTENER ? l->family : 0;
	if (family && shim.monitor_pid != shim.pid) {
		link_monitor_ensure();
	}
	shim_unlock(&saved);
	if (!family) {
		return real.accept4(fd, addr, alen, flags);
	}
	for (;;) {
		c = real.accept4(fd, NULL, NULL, flags);
		if (c < 0) {
			return -1;
		}
		m = managed_new(MANAGED_CONN, family);
		if (!m) {
			real.close(c);
			errno = ENOMEM;
			return -1;
		}
		r = take_preamble(c, m);
		if (r == 0) {
			break;
		}
		shim_log(SHIM_ERR, "dropping a connection on a mesh listener: %s", strerror(-r));
		free(m);
		real.close(c);
	}
	shim_lock(&saved);
	fdtab_set(c, m);
	shim_unlock(&saved);
	shim_copy_addr(&m->peer, m->peer_len, addr, alen);
	return c;
}

SHIM_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *alen)
{
	return do_accept(fd, addr, alen, 0);
}

SHIM_EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *alen, int flags)
{
	return do_accept(fd, addr, alen, flags);
}
