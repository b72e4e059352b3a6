/*
 * getsockopt/setsockopt/getpeername/getsockname on handed-off fds answer as
 * the TCP socket would.  SOL_SOCKET options apply to the Unix socket that
 * carries the data (timeouts, buffers); options at TCP, IP and IPv6 levels
 * are remembered and read back, since the daemon owns the real socket.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

#include "shim.h"

static int put_int(void *val, socklen_t *len, int v)
{
	if (!val || !len || *len < sizeof(int)) {
		return -EINVAL;
	}
	memcpy(val, &v, sizeof(int));
	*len = sizeof(int);
	return 0;
}

/* Returns 1 when the call was not for us. */
static int managed_getsockopt(int fd, struct managed *m, int level, int name, void *val,
			      socklen_t *len)
{
	int i, r;

	if (level == SOL_SOCKET) {
		switch (name) {
		case SO_DOMAIN:
			return put_int(val, len, m->family);
		case SO_PROTOCOL:
			return put_int(val, len, IPPROTO_TCP);
		case SO_ACCEPTCONN:
			return put_int(val, len, m->kind == MANAGED_LISTENER);
		case SO_ERROR:
			if (m->kind == MANAGED_CONN && (m->connecting || m->failed)) {
				int e = 0;
				socklen_t el = sizeof(e);
				r = connect_check(fd, m);
				if (r == -EINPROGRESS) {
					return put_int(val, len, 0);
				}
				if (r < 0) {
					/* Reported once, like the kernel. */
					m->fail_err = 0;
					real.getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
					return put_int(val, len, -r);
				}
			}
			return 1;
		default:
			return 1;
		}
	}
	for (i = 0; i < m->n_opts; i++) {
		if (m->opts[i].level == level && m->opts[i].name == name) {
			return put_int(val, len, m->opts[i].val);
		}
	}
	if (level == IPPROTO_IP && name == IP_OPTIONS) {
		/* No IP options on our hop (sshd refuses connections that have some). */
		if (len) {
			*len = 0;
		}
		return 0;
	}
	if (level == IPPROTO_TCP && name == TCP_MAXSEG) {
		return put_int(val, len, 1448);
	}
	if (level == IPPROTO_TCP || level == IPPROTO_IP || level == IPPROTO_IPV6) {
		if (len && *len >= sizeof(int)) {
			memset(val, 0, *len);
			return put_int(val, len, 0);
		}
		return -EINVAL;
	}
	return 1;
}

SHIM_EXPORT int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	struct managed *m;
	sigset_t saved;
	int r = 1;

	shim_init();
	if (!shim.active) {
		return real.getsockopt(fd, level, name, val, len);
	}
	if (!fdtab_maybe(fd)) {
		r = real.getsockopt(fd, level, name, val, len);
		if (r < 0 || level != SOL_SOCKET || name != SO_DOMAIN || !val || !len ||
		    *len < sizeof(int) || *(int *)val != AF_UNIX) {
			return r;
		}
	}
	shim_lock(&saved);
	m = fdtab_lookup(fd);
	if (!m && r == 0) {
		m = rehydrate(fd);
	}
	if (m) {
		r = managed_getsockopt(fd, m, level, name, val, len);
	}
	shim_unlock(&saved);
	if (r == 1) {
		return real.getsockopt(fd, level, name, val, len);
	}
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return 0;
}

SHIM_EXPORT int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	struct managed *m;
	sigset_t saved;
	int r = 1, i, v = 0;

	shim_init();
	if (!shim.active || !fdtab_maybe(fd)) {
		return real.setsockopt(fd, level, name, val, len);
	}
	if (level == SOL_SOCKET) {
		if (name == SO_LINGER && val && len >= sizeof(struct linger)) {
			const struct linger *lg = val;
			shim_lock(&saved);
			m = fdtab_lookup(fd);
			if (m) {
				/* On TCP this turns close() into a reset: remember it. */
				m->linger0 = lg->l_onoff && lg->l_linger == 0;
			}
			shim_unlock(&saved);
		}
		return real.setsockopt(fd, level, name, val, len);
	}
	shim_lock(&saved);
	m = fdtab_lookup(fd);
	if (m) {
		r = 0;
		if (val && len >= sizeof(int)) {
			memcpy(&v, val, sizeof(int));
		}
		for (i = 0; i < m->n_opts; i++) {
			if (m->opts[i].level == level && m->opts[i].name == name) {
				break;
			}
		}
		if (i == m->n_opts && i < MANAGED_MAX_OPTS) {
			m->n_opts++;
		}
		if (i < MANAGED_MAX_OPTS) {
			m->opts[i].level = level;
			m->opts[i].name = name;
			m->opts[i].val = v;
		}
	}
	shim_unlock(&saved);
	return r == 1 ? real.setsockopt(fd, level, name, val, len) : 0;
}

SHIM_EXPORT int getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
	struct managed *m;
	sigset_t saved;
	int r = 1;

	shim_init();
	if (!shim.active) {
		return real.getpeername(fd, addr, len);
	}
	if (!fdtab_maybe(fd)) {
		r = real.getpeername(fd, addr, len);
		if (r < 0 || !addr || !len || *len < sizeof(sa_family_t) ||
		    addr->sa_family != AF_UNIX) {
			return r;
		}
	}
	shim_lock(&saved);
	m = fdtab_lookup(fd);
	if (!m && r == 0) {
		m = rehydrate(fd);
	}
	if (m) {
		if (m->kind == MANAGED_LISTENER || m->failed ||
		    (m->connecting && connect_check(fd, m) != 0)) {
			r = -ENOTCONN;
		} else {
			shim_copy_addr(&m->peer, m->peer_len, addr, len);
			r = 0;
		}
	}
	shim_unlock(&saved);
	if (r == 1) {
		return real.getpeername(fd, addr, len);
	}
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return 0;
}

SHIM_EXPORT int getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
	struct managed *m;
	sigset_t saved;
	int r = 1;

	shim_init();
	if (!shim.active) {
		return real.getsockname(fd, addr, len);
	}
	if (!fdtab_maybe(fd)) {
		r = real.getsockname(fd, addr, len);
		if (r < 0 || !addr || !len || *len < sizeof(sa_family_t) ||
		    addr->sa_family != AF_UNIX) {
			return r;
		}
	}
	shim_lock(&saved);
	m = fdtab_lookup(fd);
	if (!m && r == 0) {
		m = rehydrate(fd);
	}
	if (m) {
		if (!m->local_len && m->kind == MANAGED_CONN && !m->connecting && !m->failed) {
			struct ldm_status st;
			if (link_query(m->cookie, &st) == 0 && st.err == 0 && st.local.family) {
				m->local_len =
					shim_ldm_to_sockaddr(&st.local, m->family, &m->local);
			}
		}
		if (m->local_len) {
			shim_copy_addr(&m->local, m->local_len, addr, len);
		} else {
			/* Not bound yet (or unknown): the wildcard, port 0. */
			struct ldm_addr any = {.family = (uint16_t)m->family};
			struct sockaddr_storage tmp;
			socklen_t tl = shim_ldm_to_sockaddr(&any, m->family, &tmp);
			shim_copy_addr(&tmp, tl, addr, len);
		}
		r = 0;
	}
	shim_unlock(&saved);
	if (r == 1) {
		return real.getsockname(fd, addr, len);
	}
	return 0;
}
