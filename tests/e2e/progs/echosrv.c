/*
 * echosrv ADDR PORT: an epoll echo server with a non-blocking listener, as
 * event-driven servers (nginx, node) have.  Raises RLIMIT_NOFILE, prints
 * "listening", then for every accepted client "accepted n=N peer=IP:PORT"
 * and echoes bytes back until the client closes.
 */
#include <fcntl.h>
#include <sys/epoll.h>

#include "util.h"

int main(int argc, char **argv)
{
	struct epoll_event ev, evs[256];
	char buf[65536], a[128];
	int lfd, ep, accepted = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: echosrv ADDR PORT\n");
		return 2;
	}
	raise_nofile();
	lfd = listen_on(argv[1], argv[2], 4096);
	if (fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK) < 0)
		die("fcntl");
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1");
	ev.events = EPOLLIN;
	ev.data.fd = lfd;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
		die("epoll_ctl");
	printf("listening\n");
	fflush(stdout);

	for (;;) {
		int n = epoll_wait(ep, evs, (int)ARRAY_LEN(evs), -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == lfd) {
				for (;;) {
					struct sockaddr_storage peer;
					socklen_t plen = sizeof(peer);
					int c = accept4(lfd, (struct sockaddr *)&peer, &plen,
							SOCK_CLOEXEC);
					if (c < 0) {
						if (errno != EAGAIN && errno != EINTR &&
						    errno != ECONNABORTED)
							fprintf(stderr, "accept4: %s\n",
								errname(errno));
						break;
					}
					printf("accepted n=%d peer=%s\n", ++accepted,
					       fmt_addr((struct sockaddr *)&peer, a, sizeof(a)));
					fflush(stdout);
					ev.events = EPOLLIN;
					ev.data.fd = c;
					if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) < 0)
						die("epoll_ctl");
				}
				continue;
			}
			ssize_t r = read(fd, buf, sizeof(buf));
			if (r <= 0 || write_all(fd, buf, (size_t)r) < 0) {
				epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
				close(fd);
			}
		}
	}
}
