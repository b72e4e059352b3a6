/*
 * sockinfo HOST PORT: connects (blocking), then prints what the socket API
 * says about the connection, the way a TCP socket would answer:
 *   connect=ok | connect=ERRNO_NAME
 *   peer=IP:PORT local=IP:PORT (getpeername / getsockname)
 *   domain=AF_INET type=SOCK_STREAM so_error=0 nodelay=1
 *   reply=...   (the server's answer to "ping\n")
 */
#include <netinet/tcp.h>

#include "util.h"

int main(int argc, char **argv)
{
	struct sockaddr_storage ss, peer, local;
	socklen_t sl, plen = sizeof(peer), llen = sizeof(local);
	char buf[256], a[128];
	int fd, one = 1;
	ssize_t n;
	size_t got = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: sockinfo HOST PORT\n");
		return 2;
	}
	sl = parse_addr(argv[1], argv[2], &ss);
	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
		printf("connect=%s\n", errname(errno));
		return 1;
	}
	printf("connect=ok\n");

	if (getpeername(fd, (struct sockaddr *)&peer, &plen) < 0)
		printf("peer=error:%s\n", errname(errno));
	else
		printf("peer=%s\n", fmt_addr((struct sockaddr *)&peer, a, sizeof(a)));
	if (getsockname(fd, (struct sockaddr *)&local, &llen) < 0)
		printf("local=error:%s\n", errname(errno));
	else
		printf("local=%s\n", fmt_addr((struct sockaddr *)&local, a, sizeof(a)));

	printf("domain=%s\n", domain_name(sockopt_int(fd, SOL_SOCKET, SO_DOMAIN)));
	printf("type=%s\n", type_name(sockopt_int(fd, SOL_SOCKET, SO_TYPE)));
	printf("so_error=%s\n", errname(sockopt_int(fd, SOL_SOCKET, SO_ERROR)));
	printf("protocol=%d\n", sockopt_int(fd, SOL_SOCKET, SO_PROTOCOL));
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		printf("set_nodelay=%s\n", errname(errno));
	printf("nodelay=%d\n", sockopt_int(fd, IPPROTO_TCP, TCP_NODELAY) ? 1 : 0);
	fflush(stdout);

	if (write_all(fd, "ping\n", 5) < 0)
		die("write");
	while (got < sizeof(buf) - 1) {
		n = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memchr(buf, '\n', got))
			break;
	}
	buf[got] = 0;
	buf[strcspn(buf, "\n")] = 0;
	printf("reply=%s\n", buf);
	close(fd);
	return 0;
}
