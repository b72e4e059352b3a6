/*
 * Framing of handoff requests and status answers: see wire.h.
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "wire.h"

int64_t wire_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t wire_new_cookie(void)
{
	static atomic_uint_fast64_t seed, next;
	uint64_t s = atomic_load(&seed);

	if (!s) {
		uint64_t r = 0;
		uint_fast64_t expected = 0;

		if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r)) {
			r = (uint64_t)wire_now_ms() * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
		}
		r |= 1;
		atomic_compare_exchange_strong(&seed, &expected, r);
		s = atomic_load(&seed);
	}
	/* Unique per process and per call; the pid keeps forks apart. */
	return (s + ((uint64_t)getpid() << 40) + atomic_fetch_add(&next, 1)) & ~(1ULL << 63);
}

void wire_fill_header(struct ldm_handoff *h, enum ldm_op op, uint64_t cookie)
{
	memset(h, 0, sizeof(*h));
	h->magic = LDM_HANDOFF_MAGIC;
	h->version = LDM_PROTO_VERSION;
	h->op = (uint16_t)op;
	h->len = sizeof(*h);
	h->cookie = cookie;
	h->pid = (uint32_t)getpid();
}

int wire_send(int sock, const struct ldm_handoff *h, const int *fds, int nfds, const void *extra,
	      size_t extra_len)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} u;
	struct iovec iov[2] = {
		{.iov_base = (void *)h, .iov_len = sizeof(*h)},
		{.iov_base = (void *)extra, .iov_len = extra_len},
	};
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = extra_len ? 2 : 1};
	ssize_t n;

	if (nfds > 4) {
		return -EINVAL;
	}
	if (nfds > 0) {
		struct cmsghdr *c;
		memset(&u, 0, sizeof(u));
		msg.msg_control = u.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	/* Never block: a full socket here means the daemon is wedged. */
	n = sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0) {
		return -errno;
	}
	if ((size_t)n != sizeof(*h) + extra_len) {
		return -EPIPE;
	}
	return 0;
}

int wire_recv_status(int sock, struct ldm_status *st, int timeout_ms)
{
	size_t got = 0;
	int64_t deadline = wire_now_ms() + timeout_ms;

	while (got < sizeof(*st)) {
		struct pollfd p = {.fd = sock, .events = POLLIN};
		int left = (int)(deadline - wire_now_ms());
		ssize_t n;

		if (left <= 0) {
			return -ETIMEDOUT;
		}
		if (poll(&p, 1, left) < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -errno;
		}
		n = recv(sock, (char *)st + got, sizeof(*st) - got, MSG_DONTWAIT);
		if (n == 0) {
			return -ECONNRESET;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				continue;
			}
			return -errno;
		}
		got += (size_t)n;
	}
	return st->magic == LDM_STATUS_MAGIC ? 0 : -EPROTO;
}

/*
 * connect and close as raw system calls: inside libldmesh.so the names
 * are the shim's own hooks, which may take the shim's lock (held by some
 * callers of this file).
 */
static int raw_close(int fd)
{
	return (int)syscall(SYS_close, fd);
}

int wire_connect(const char *path, const char *bind_name, struct ucred *cred)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	socklen_t clen = sizeof(*cred);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (s < 0) {
		return -errno;
	}
	if (bind_name) {
		size_t n = strnlen(bind_name, sizeof(sun.sun_path) - 1);

		memcpy(sun.sun_path + 1, bind_name, n);
		if (bind(s, (struct sockaddr *)&sun,
			 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) < 0) {
			int err = -errno;
			raw_close(s);
			return err;
		}
		memset(sun.sun_path, 0, sizeof(sun.sun_path));
	}
	strncpy(sun.sun_path, path, sizeof(sun.sun_path) - 1);
	if (syscall(SYS_connect, s, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int err = -errno;
		raw_close(s);
		return err;
	}
	if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, cred, &clen) < 0) {
		memset(cred, 0, sizeof(*cred));
	}
	return s;
}

static void take_fds(struct msghdr *msg, int *fd)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		size_t n;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
			continue;
		}
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int x;

			memcpy(&x, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (*fd < 0) {
				*fd = x;
			} else {
				raw_close(x);
			}
		}
	}
}

int wire_recv_full(int s, void *buf, size_t len, int *fd, int wait_ms)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = {.fd = s, .events = POLLIN};
		union {
			char buf[CMSG_SPACE(sizeof(int) * 4)];
			struct cmsghdr align;
		} u;
		struct iovec iov = {.iov_base = (char *)buf + got, .iov_len = len - got};
		struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
		ssize_t n;

		if (fd) {
			msg.msg_control = u.buf;
			msg.msg_controllen = sizeof(u.buf);
		}
		n = recvmsg(s, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n > 0 && fd) {
			take_fds(&msg, fd);
		}
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
		if (poll(&p, 1, wait_ms) == 0) {
			return -ETIMEDOUT;
		}
	}
	return 0;
}
