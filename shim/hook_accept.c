/*
 * accept()/accept4() on a handed-off listener: take a connection from the
 * daemon, read its preamble and give the app the real TCP peer address.  A
 * connection from inside the pod comes with the TCP socket itself attached
 * to the preamble: it takes the Unix connection's place, so the app talks
 * to its local peer over the kernel socket, as without the mesh.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

#define PREAMBLE_WAIT_MS 2000

/* Reads the preamble of accepted connection c into m; *sock gets the TCP
 * socket of a same-pod connection, -1 for a proxied one. */
static int take_preamble(int c, struct managed *m, int *sock)
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
	r = wire_recv_full(c, &pre, sizeof(pre), sock, PREAMBLE_WAIT_MS);
	if (r < 0) {
		return r;
	}
	r = preamble_check(&pre);
	if (r < 0) {
		return r;
	}
	r = wire_recv_full(c, id, pre.id_len, NULL, PREAMBLE_WAIT_MS);
	if (r < 0) {
		return r;
	}
	m->cookie = pre.conn_id;
	m->peer_len = shim_ldm_to_sockaddr(&pre.peer, m->family, &m->peer);
	m->local_len = shim_ldm_to_sockaddr(&pre.local, m->family, &m->local);
	return 0;
}

/* The same-pod TCP socket sock takes the place of accepted fd c, with the
 * flags accept4() was asked for; the daemon keeps no part of it. */
static int adopt_socket(int c, int sock, int flags)
{
	int fl;

	if (real.dup3(sock, c, flags & SOCK_CLOEXEC ? O_CLOEXEC : 0) < 0) {
		int e = errno;
		real.close(sock);
		return -e;
	}
	real.close(sock);
	fl = real.fcntl(c, F_GETFL);
	if (fl < 0 || real.fcntl(c, F_SETFL,
				 flags & SOCK_NONBLOCK ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) < 0) {
		return -errno;
	}
	return 0;
}

static int do_accept(int fd, struct sockaddr *addr, socklen_t *alen, int flags)
{
	struct managed *l, *m;
	sigset_t saved;
	int family, c, r, sock;

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
		sock = -1;
		r = take_preamble(c, m, &sock);
		if (r == 0 && sock >= 0) {
			/* Same pod: a plain TCP socket, which the shim leaves alone. */
			r = adopt_socket(c, sock, flags);
			if (r == 0) {
				shim_copy_addr(&m->peer, m->peer_len, addr, alen);
				free(m);
				return c;
			}
			sock = -1;
		}
		if (r == 0) {
			break;
		}
		shim_log(SHIM_ERR, "dropping a connection on a mesh listener: %s", strerror(-r));
		if (sock >= 0) {
			real.close(sock);
		}
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
