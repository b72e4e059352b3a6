/*
 * idlehold: holds many idle TCP connections open, for the idle-connection
 * memory benchmark (tests/bench/bench.py).  Built by ci/bench.sh with cc
 * into build/bench/idlehold; not part of `make all`.
 *
 *   idlehold serve ADDR PORT
 *       Listens on ADDR:PORT and echoes whatever each connection sends;
 *       keeps every connection open until the peer closes it.  Prints
 *       "listening" once the socket listens.
 *
 *   idlehold hold ADDR PORT N [WINDOW]
 *       Opens N connections to ADDR:PORT, at most WINDOW (default 64)
 *       connecting at once (non-blocking connect + epoll), sends one byte
 *       on each and waits for its echo, so that every hop of the path
 *       (TLS handshakes included) is set up.  Then prints
 *       "held=N failed=F elapsed_ms=T" and keeps them open, idle, until
 *       stdin reaches end-of-file or a signal ends the process.
 *
 * Both modes raise RLIMIT_NOFILE to the hard limit first.  Runs with or
 * without the ldmesh shim preloaded; it uses only ordinary socket calls.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void parse(const char *host, const char *port, struct sockaddr_in *sin)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((unsigned short)atoi(port));
	if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
		fprintf(stderr, "idlehold: bad IPv4 address %s\n", host);
		exit(2);
	}
}

static int serve(const char *host, const char *port)
{
	struct sockaddr_in sin;
	struct epoll_event ev, evs[256];
	int one = 1, lfd, ep;
	char buf[4096];

	parse(host, port, &sin);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 4096) < 0) {
		perror("idlehold: listen");
		return 1;
	}
	ep = epoll_create1(0);
	ev.events = EPOLLIN;
	ev.data.fd = lfd;
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
		perror("idlehold: epoll");
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perror("idlehold: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == lfd) {
				int c;

				while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					ev.events = EPOLLIN;
					ev.data.fd = c;
					if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) < 0)
						close(c);
				}
				continue;
			}
			ssize_t r = read(fd, buf, sizeof(buf));

			if (r > 0) {
				if (write(fd, buf, (size_t)r) < 0) {
					/* the peer went away; its EOF closes it */
				}
			} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
				close(fd);
			}
		}
	}
}

enum { ST_CONNECTING = 1, ST_WAIT_ECHO, ST_DONE, ST_FAILED };

static int hold(const char *host, const char *port, int n, int window)
{
	struct sockaddr_in sin;
	struct epoll_event ev, evs[256];
	int *fds = calloc((size_t)n, sizeof(int));
	unsigned char *st = calloc((size_t)n, 1);
	int ep, next = 0, inflight = 0, done = 0, failed = 0, first_err = 0;
	long t0 = now_ms(), deadline = t0 + 300000;
	char c;

	if (!fds || !st) {
		fprintf(stderr, "idlehold: out of memory\n");
		return 1;
	}
	parse(host, port, &sin);
	ep = epoll_create1(0);
	if (ep < 0) {
		perror("idlehold: epoll");
		return 1;
	}
	while (done + failed < n && now_ms() < deadline) {
		while (next < n && inflight < window) {
			int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
			int i = next++;

			if (fd < 0) {
				first_err = first_err ? first_err : errno;
				st[i] = ST_FAILED;
				failed++;
				continue;
			}
			fds[i] = fd;
			if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 &&
			    errno != EINPROGRESS) {
				first_err = first_err ? first_err : errno;
				close(fd);
				st[i] = ST_FAILED;
				failed++;
				continue;
			}
			st[i] = ST_CONNECTING;
			ev.events = EPOLLOUT;
			ev.data.u32 = (unsigned)i;
			epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
			inflight++;
		}
		int k = epoll_wait(ep, evs, 256, 1000);

		for (int j = 0; j < k; j++) {
			int i = (int)evs[j].data.u32, fd = fds[i], err = 0;
			socklen_t el = sizeof(err);

			if (st[i] == ST_CONNECTING) {
				getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
				if (err || (evs[j].events & (EPOLLERR | EPOLLHUP)) ||
				    write(fd, "x", 1) != 1) {
					first_err = first_err ? first_err : (err ? err : EPIPE);
					goto fail;
				}
				st[i] = ST_WAIT_ECHO;
				ev.events = EPOLLIN;
				ev.data.u32 = (unsigned)i;
				epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
			} else if (st[i] == ST_WAIT_ECHO) {
				ssize_t r = read(fd, &c, 1);

				if (r < 0 && (errno == EAGAIN || errno == EINTR))
					continue;
				if (r != 1) {
					first_err = first_err ? first_err : (r < 0 ? errno : ECONNRESET);
					goto fail;
				}
				epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
				st[i] = ST_DONE;
				done++;
				inflight--;
			}
			continue;
fail:
			epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
			close(fd);
			st[i] = ST_FAILED;
			failed++;
			inflight--;
		}
	}
	printf("held=%d failed=%d first_error=%s elapsed_ms=%ld\n", done, failed,
	       first_err ? strerror(first_err) : "none", now_ms() - t0);
	fflush(stdout);
	/* Idle until told to let go: stdin EOF (or a signal). */
	while (read(0, &c, 1) > 0) {
	}
	return 0;
}

int main(int argc, char **argv)
{
	raise_nofile();
	if (argc == 4 && !strcmp(argv[1], "serve"))
		return serve(argv[2], argv[3]);
	if ((argc == 5 || argc == 6) && !strcmp(argv[1], "hold"))
		return hold(argv[2], argv[3], atoi(argv[4]), argc == 6 ? atoi(argv[5]) : 64);
	fprintf(stderr, "usage: idlehold serve ADDR PORT | idlehold hold ADDR PORT N [WINDOW]\n");
	return 2;
}
