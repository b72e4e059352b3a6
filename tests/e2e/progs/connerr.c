/*
 * connerr block|nonblock HOST PORT: the errno probe.
 *
 * block:    connect() on a blocking socket; prints connect=0|-1 and
 *           errno=NAME (strerrorname_np, "0" on success).
 * nonblock: connect() on a SOCK_NONBLOCK socket; prints connect, errno and
 *           elapsed_ms (how long the call itself took).  On EINPROGRESS it
 *           polls for POLLOUT (15 s at most) and prints poll=, revents=,
 *           so_error=NAME, then so_error2=NAME (a second read, which TCP
 *           has cleared to 0).
 * On success it also prints peer=IP:PORT.  Exit status 0 unless usage.
 */
#include <poll.h>

#include "util.h"

static void revents_str(short r, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s%s", r & POLLOUT ? "OUT|" : "", r & POLLERR ? "ERR|" : "",
		 r & POLLHUP ? "HUP|" : "", r & POLLIN ? "IN|" : "");
	if (!buf[0])
		snprintf(buf, len, "none");
	else
		buf[strlen(buf) - 1] = 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int nonblock, fd, r, e, connected;
	long t0, t1;

	if (argc != 4 || (strcmp(argv[1], "block") && strcmp(argv[1], "nonblock"))) {
		fprintf(stderr, "usage: connerr block|nonblock HOST PORT\n");
		return 2;
	}
	nonblock = !strcmp(argv[1], "nonblock");
	sl = parse_addr(argv[2], argv[3], &ss);
	fd = socket(ss.ss_family, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0)
		die("socket");

	t0 = now_ms();
	r = connect(fd, (struct sockaddr *)&ss, sl);
	e = r < 0 ? errno : 0;
	t1 = now_ms();
	printf("connect=%d\nerrno=%s\nelapsed_ms=%ld\n", r, errname(e), t1 - t0);
	fflush(stdout);
	connected = r == 0;

	if (nonblock && r < 0 && e == EINPROGRESS) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		char rs[64];
		int n = poll(&p, 1, 15000);
		int so1 = sockopt_int(fd, SOL_SOCKET, SO_ERROR);
		int so2 = sockopt_int(fd, SOL_SOCKET, SO_ERROR);

		revents_str(p.revents, rs, sizeof(rs));
		printf("poll=%d\nrevents=%s\npoll_ms=%ld\n", n, rs, now_ms() - t1);
		printf("so_error=%s\n", so1 < -999 ? "getsockopt-failed" : errname(so1));
		printf("so_error2=%s\n", so2 < -999 ? "getsockopt-failed" : errname(so2));
		connected = n == 1 && so1 == 0;
	}
	if (connected) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		char a[128];

		if (getpeername(fd, (struct sockaddr *)&peer, &plen) == 0)
			printf("peer=%s\n", fmt_addr((struct sockaddr *)&peer, a, sizeof(a)));
		else
			printf("peer=error:%s\n", errname(errno));
	}
	close(fd);
	return 0;
}
