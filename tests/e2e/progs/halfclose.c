/*
 * Half-close, end to end.
 *
 * halfclose server ADDR PORT REPLY_BYTES
 *   Accepts one client, reads until end-of-file (the client's SHUT_WR),
 *   only then answers "count=N fnv=HEX\n" followed by REPLY_BYTES bytes of
 *   pattern, and closes.  Prints "server count=N fnv=HEX peer=IP:PORT", then
 *   keeps the listener open (so the daemon still lists it) until killed.
 * halfclose client HOST PORT NBYTES
 *   Sends NBYTES bytes of pattern, shutdown(SHUT_WR), reads the reply to
 *   end-of-file and prints
 *     sent_count=N sent_fnv=HEX
 *     reply_line=count=N fnv=HEX
 *     reply_extra=M extra_fnv=HEX
 * A server that never sees the end-of-file never answers: the client then
 * hangs until the test's timeout, which is the failure we look for.
 */
#include "util.h"

static void pattern(unsigned char *buf, size_t len, size_t off)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(((off + i) * 7 + 3) % 251);
}

static __attribute__((noreturn)) void server(const char *addr, const char *port, size_t reply)
{
	unsigned char buf[65536];
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	uint64_t h = FNV_INIT;
	size_t count = 0, off = 0;
	char line[128], a[128];
	int lfd = listen_on(addr, port, 16), c, n;
	ssize_t r;

	printf("listening\n");
	fflush(stdout);
	c = accept(lfd, (struct sockaddr *)&peer, &plen);
	if (c < 0)
		die("accept");
	while ((r = read(c, buf, sizeof(buf))) > 0) {
		h = fnv1a(h, buf, (size_t)r);
		count += (size_t)r;
	}
	if (r < 0)
		die("read");
	n = snprintf(line, sizeof(line), "count=%zu fnv=%016llx\n", count, (unsigned long long)h);
	if (write_all(c, line, (size_t)n) < 0)
		die("write");
	while (off < reply) {
		size_t k = reply - off < sizeof(buf) ? reply - off : sizeof(buf);
		pattern(buf, k, off);
		if (write_all(c, buf, k) < 0)
			die("write");
		off += k;
	}
	close(c);
	printf("server count=%zu fnv=%016llx peer=%s\n", count, (unsigned long long)h,
	       fmt_addr((struct sockaddr *)&peer, a, sizeof(a)));
	fflush(stdout);
	for (;;)
		pause();
}

static int client(const char *host, const char *port, size_t nbytes)
{
	unsigned char buf[65536];
	struct sockaddr_storage ss;
	socklen_t sl = parse_addr(host, port, &ss);
	uint64_t h = FNV_INIT, eh = FNV_INIT;
	size_t off = 0, extra = 0, linelen = 0;
	char line[256];
	int fd = socket(ss.ss_family, SOCK_STREAM, 0), in_line = 1;
	ssize_t r;

	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0)
		die("connect");
	while (off < nbytes) {
		size_t k = nbytes - off < sizeof(buf) ? nbytes - off : sizeof(buf);
		pattern(buf, k, off);
		if (write_all(fd, buf, k) < 0)
			die("write");
		h = fnv1a(h, buf, k);
		off += k;
	}
	if (shutdown(fd, SHUT_WR) < 0)
		die("shutdown");
	printf("sent_count=%zu sent_fnv=%016llx\n", nbytes, (unsigned long long)h);
	fflush(stdout);

	while ((r = read(fd, buf, sizeof(buf))) > 0) {
		size_t i = 0;
		while (in_line && i < (size_t)r) {
			if (buf[i] == '\n')
				in_line = 0;
			else if (linelen < sizeof(line) - 1)
				line[linelen++] = (char)buf[i];
			i++;
		}
		eh = fnv1a(eh, buf + i, (size_t)r - i);
		extra += (size_t)r - i;
	}
	if (r < 0)
		die("read");
	line[linelen] = 0;
	printf("reply_line=%s\nreply_extra=%zu extra_fnv=%016llx\n", line, extra,
	       (unsigned long long)eh);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "server"))
		server(argv[2], argv[3], strtoul(argv[4], NULL, 10));
	if (argc == 5 && !strcmp(argv[1], "client"))
		return client(argv[2], argv[3], strtoul(argv[4], NULL, 10));
	fprintf(stderr, "usage: halfclose server ADDR PORT REPLY_BYTES | "
			"client HOST PORT NBYTES\n");
	return 2;
}
