/*
 * tcpget [--raw] HOST PORT PATH: one HTTP/1.0 GET over a blocking socket,
 * prints the response.  --raw calls connect through syscall(SYS_connect),
 * past libc and so past the shim, as static and Go programs do.  The tests
 * build it with both cc (glibc) and musl-gcc.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
	char req[512], buf[4096];
	int raw = argc > 1 && !strcmp(argv[1], "--raw"), s, r;
	ssize_t n;

	if (argc != 4 + raw) {
		fprintf(stderr, "usage: tcpget [--raw] HOST PORT PATH\n");
		return 2;
	}
	argv += raw;
	r = getaddrinfo(argv[1], argv[2], &hints, &ai);
	if (r) {
		fprintf(stderr, "getaddrinfo: %s\n", gai_strerror(r));
		return 2;
	}
	s = socket(ai->ai_family, SOCK_STREAM, 0);
	if (s < 0) {
		perror("socket");
		return 2;
	}
	r = raw ? (int)syscall(SYS_connect, s, ai->ai_addr, ai->ai_addrlen)
		: connect(s, ai->ai_addr, ai->ai_addrlen);
	if (r < 0) {
		printf("connect: %s\n", strerror(errno));
		return 1;
	}
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", argv[3], argv[1]);
	if (write(s, req, strlen(req)) < 0) {
		printf("write: %s\n", strerror(errno));
		return 1;
	}
	while ((n = read(s, buf, sizeof(buf))) > 0) {
		fwrite(buf, 1, (size_t)n, stdout);
	}
	close(s);
	freeaddrinfo(ai);
	return 0;
}
