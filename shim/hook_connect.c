/*
 * connect(): hand the app's TCP socket to the daemon, which dials with it.
 * See include/ldmesh/proto.h for why POLLOUT on the app's fd means
 * "connected" without any in-band status.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ldmesh/addrname.h"
#include "shim.h"

static const char filler[LDM_FILLER_LEN];

/* One skb (see proto.h): (2 * LDM_PENDING_SNDBUF) / 2 - 64 bytes at most. */
_Static_assert(sizeof(struct ldm_handoff) + LDM_FILLER_LEN <= LDM_PENDING_SNDBUF - 64,
	       "CONNECT header and filler must fit one Unix skb");

/* Outcome of the dial as seen on the app's fd, without blocking. */
int connect_check(int fd, struct managed *m)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT | POLLIN | POLLRDHUP};
	struct ldm_status st;
	int r;

	if (m->failed) {
		return -m->fail_err;
	}
	if (!m->connecting) {
		return 0;
	}
	if (poll(&p, 1, 0) < 0) {
		return -EINPROGRESS;
	}
	if (p.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLIN)) {
		/* Either the dial failed or it worked and the peer already spoke or
		 * left: only the daemon knows which. */
		r = link_query(m->cookie, &st);
		if (r == 0 && st.err == 0) {
			m->connecting = 0;
			return 0;
		}
		if (r == 0 && st.err == -EINPROGRESS) {
			return -EINPROGRESS;
		}
		m->connecting = 0;
		m->failed = 1;
		m->fail_err = (r == 0 && st.err < 0 && st.err != -ENOENT) ? -st.err : ECONNREFUSED;
		shim_log(SHIM_DEBUG, "dial %016llx failed: query %d, daemon says %d, revents 0x%x",
			 (unsigned long long)m->cookie, r, r == 0 ? st.err : 0, p.revents);
		return -m->fail_err;
	}
	if (p.revents & POLLOUT) {
		m->connecting = 0;
		return 0;
	}
	return -EINPROGRESS;
}

/* connect() again on a managed fd, as apps do to learn a dial's outcome. */
static int connect_again(int fd, struct managed *m)
{
	int r;

	if (m->kind != MANAGED_CONN) {
		return -EINVAL;
	}
	if (!m->connecting && !m->failed) {
		return -EISCONN;
	}
	r = connect_check(fd, m);
	if (r == -EINPROGRESS) {
		return -EALREADY;
	}
	return r == 0 ? -EISCONN : r;
}

static int wait_connected(int fd, struct managed *m)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLOUT | POLLIN | POLLRDHUP};
		sigset_t saved;
		int r;

		if (poll(&p, 1, -1) < 0 && errno != EINTR) {
			return -errno;
		}
		shim_lock(&saved);
		r = connect_check(fd, m);
		shim_unlock(&saved);
		if (r != -EINPROGRESS) {
			return r;
		}
	}
}

static int handoff_connect(int fd, const struct ldm_addr *dst, int *unreachable)
{
	struct ldm_handoff h;
	struct managed *m;
	sigset_t saved;
	int fl, fdfl, u, sndbuf = 0, small = LDM_PENDING_SNDBUF, r;
	socklen_t slen = sizeof(sndbuf);
	int fds[2];
	char name[LDM_NAME_MAX + 1];

	fl = real.fcntl(fd, F_GETFL);
	fdfl = real.fcntl(fd, F_GETFD);
	if (fl < 0 || fdfl < 0) {
		return -errno;
	}
	wire_fill_header(&h, LDM_OP_CONNECT, wire_new_cookie());
	{
		int w = snprintf(name, sizeof(name), LDM_NAME_OUT "%016" PRIx64 "-", h.cookie);
		addrname_put(name + w, sizeof(name) - (size_t)w, dst);
	}
	u = link_open(1, name);
	if (u < 0) {
		*unreachable = 1;
		return u;
	}
	real.getsockopt(u, SOL_SOCKET, SO_SNDBUF, &sndbuf, &slen);
	real.setsockopt(u, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));

	h.addr = *dst;
	h.flags = (fl & O_NONBLOCK) ? LDM_HF_NONBLOCK : 0;
	h.filler_len = LDM_FILLER_LEN;
	h.app_fd = fd;
	h.sndbuf = (uint32_t)sndbuf;
	fds[0] = fd;
	fds[1] = u;
	r = wire_send(u, &h, fds, 2, filler, sizeof(filler));
	if (r < 0) {
		*unreachable = 1;
		real.close(u);
		return r;
	}

	m = managed_new(MANAGED_CONN, dst->family == AF_INET6 ? AF_INET6 : AF_INET);
	if (!m) {
		real.close(u);
		return -ENOMEM;
	}
	{
		int domain = 0;
		socklen_t dl = sizeof(domain);
		if (real.getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dl) == 0) {
			m->family = domain;
		}
	}
	m->connecting = 1;
	m->cookie = h.cookie;
	m->peer_len = shim_ldm_to_sockaddr(dst, m->family, &m->peer);

	shim_lock(&saved);
	/* The fd number now names our Unix connection; the TCP socket lives on
	 * in the daemon. */
	r = real.dup3(u, fd, (fdfl & FD_CLOEXEC) ? O_CLOEXEC : 0);
	if (r < 0) {
		r = -errno;
		shim_unlock(&saved);
		real.close(u);
		free(m);
		return r;
	}
	real.close(u);
	if (fl & O_NONBLOCK) {
		real.fcntl(fd, F_SETFL, O_NONBLOCK | O_RDWR);
	}
	fdtab_set(fd, m);
	shim_unlock(&saved);

	if (fl & O_NONBLOCK) {
		return -EINPROGRESS;
	}
	return wait_connected(fd, m);
}

SHIM_EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	struct ldm_addr dst;
	struct managed *m;
	int proto = 0, r, saved_errno, unreachable = 0;
	socklen_t plen = sizeof(proto);

	shim_init();
	if (!shim.active || !addr || len < sizeof(sa_family_t)) {
		return real.connect(fd, addr, len);
	}
	if (fdtab_maybe(fd)) {
		sigset_t saved;
		shim_lock(&saved);
		m = fdtab_lookup(fd);
		r = m ? connect_again(fd, m) : 1;
		shim_unlock(&saved);
		if (r != 1) {
			if (r < 0) {
				errno = -r;
				return -1;
			}
			return 0;
		}
	}
	if ((addr->sa_family != AF_INET && addr->sa_family != AF_INET6) ||
	    shim_sockaddr_to_ldm(addr, len, &dst) < 0 || shim_bypass(&dst)) {
		return real.connect(fd, addr, len);
	}
	/* Only TCP: SOCK_STREAM with IPPROTO_TCP (not SCTP, not UDP). */
	if (real.getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &plen) < 0 ||
	    proto != IPPROTO_TCP) {
		return real.connect(fd, addr, len);
	}
	r = handoff_connect(fd, &dst, &unreachable);
	if (unreachable) {
		/* No usable daemon.  Fail closed unless the operator chose otherwise. */
		if (shim.fail_open) {
			shim_log(SHIM_ERR,
				 "ldmeshd unreachable at %s (%s); LDMESH_FAIL_OPEN=1, "
				 "connecting without the mesh",
				 shim.handoff_path, strerror(-r));
			return real.connect(fd, addr, len);
		}
		shim_log(SHIM_ERR,
			 "ldmeshd unreachable at %s (%s); refusing connection "
			 "(fail closed)",
			 shim.handoff_path, strerror(-r));
		r = -ECONNREFUSED;
	}
	if (r < 0) {
		saved_errno = -r;
		errno = saved_errno;
		return -1;
	}
	return 0;
}
