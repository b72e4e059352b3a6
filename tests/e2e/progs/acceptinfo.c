/*
 * acceptinfo ADDR PORT COUNT: listens, prints "listening", then accepts
 * COUNT clients one after another.  For each it prints one line
 *   accepted n=N peer=IP:PORT getpeername=IP:PORT local=IP:PORT
 *            domain=AF_INET type=SOCK_STREAM
 * (peer is what accept() returned), reads a line and answers "echo:LINE".
 * Then prints "done" and keeps the listener open (so the daemon still
 * lists it) until it is killed.
 */
#include "util.h"

int main(int argc, char **argv)
{
	int lfd, count;

	if (argc != 4) {
		fprintf(stderr, "usage: acceptinfo ADDR PORT COUNT\n");
		return 2;
	}
	count = atoi(argv[3]);
	lfd = listen_on(argv[1], argv[2], 128);
	printf("listening\n");
	fflush(stdout);

	for (int i = 1; i <= count; i++) {
		struct sockaddr_storage peer, gp, local;
		socklen_t plen = sizeof(peer), gplen = sizeof(gp), llen = sizeof(local);
		char a1[128], a2[128], a3[128], line[256], reply[300];
		size_t got = 0;
		ssize_t n;
		int c = accept(lfd, (struct sockaddr *)&peer, &plen);

		if (c < 0) {
			if (errno == EINTR) {
				i--;
				continue;
			}
			die("accept");
		}
		if (getpeername(c, (struct sockaddr *)&gp, &gplen) < 0)
			snprintf(a2, sizeof(a2), "error:%s", errname(errno));
		else
			fmt_addr((struct sockaddr *)&gp, a2, sizeof(a2));
		if (getsockname(c, (struct sockaddr *)&local, &llen) < 0)
			snprintf(a3, sizeof(a3), "error:%s", errname(errno));
		else
			fmt_addr((struct sockaddr *)&local, a3, sizeof(a3));
		printf("accepted n=%d peer=%s getpeername=%s local=%s domain=%s type=%s\n", i,
		       fmt_addr((struct sockaddr *)&peer, a1, sizeof(a1)), a2, a3,
		       domain_name(sockopt_int(c, SOL_SOCKET, SO_DOMAIN)),
		       type_name(sockopt_int(c, SOL_SOCKET, SO_TYPE)));
		fflush(stdout);

		while (got < sizeof(line) - 1) {
			n = read(c, line + got, sizeof(line) - 1 - got);
			if (n <= 0)
				break;
			got += (size_t)n;
			if (memchr(line, '\n', got))
				break;
		}
		line[got] = 0;
		line[strcspn(line, "\n")] = 0;
		n = snprintf(reply, sizeof(reply), "echo:%s\n", line);
		write_all(c, reply, (size_t)n);
		close(c);
	}
	printf("done\n");
	fflush(stdout);
	for (;;)
		pause();
}
