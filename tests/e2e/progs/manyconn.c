/*
 * manyconn HOST PORT N: holds N connections open at once in one process.
 *
 * Raises RLIMIT_NOFILE, connects N blocking sockets one after another
 * (all stay open), writes an 8-byte tag "cNNNNNN\n" on each, then waits
 * (poll, 60 s overall) until every connection has echoed its own tag back.
 * Prints "nofile=L connected=C failed_connect=F first_error=NAME
 * echoed=E elapsed_ms=T" and exits 0 only when echoed == N.
 */
#include <poll.h>

#include "util.h"

/* The 8 bytes connection i sends and expects back: "cNNNNNN\n". */
static void make_tag(char tag[16], int i)
{
	snprintf(tag, 16, "c%06u\n", (unsigned)i % 1000000u);
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int n, connected = 0, failed = 0, first_err = 0, echoed = 0;
	long nofile, t0 = now_ms(), deadline;
	int *fds;
	size_t *got;
	char(*bufs)[8];
	struct pollfd *pfd;

	if (argc != 4) {
		fprintf(stderr, "usage: manyconn HOST PORT N\n");
		return 2;
	}
	sl = parse_addr(argv[1], argv[2], &ss);
	n = atoi(argv[3]);
	nofile = raise_nofile();
	fds = calloc((size_t)n, sizeof(*fds));
	got = calloc((size_t)n, sizeof(*got));
	bufs = calloc((size_t)n, sizeof(*bufs));
	pfd = calloc((size_t)n, sizeof(*pfd));
	if (!fds || !got || !bufs || !pfd)
		die("calloc");

	for (int i = 0; i < n; i++) {
		fds[i] = socket(ss.ss_family, SOCK_STREAM, 0);
		if (fds[i] < 0) {
			if (!first_err)
				first_err = errno;
			failed++;
			continue;
		}
		if (connect(fds[i], (struct sockaddr *)&ss, sl) < 0) {
			if (!first_err)
				first_err = errno;
			failed++;
			close(fds[i]);
			fds[i] = -1;
			continue;
		}
		connected++;
	}
	for (int i = 0; i < n; i++) {
		char tag[16];
		make_tag(tag, i);
		if (fds[i] >= 0 && write_all(fds[i], tag, 8) < 0) {
			if (!first_err)
				first_err = errno;
			close(fds[i]);
			fds[i] = -1;
		}
	}

	deadline = now_ms() + 60000;
	for (;;) {
		int m = 0;
		for (int i = 0; i < n; i++) {
			if (fds[i] >= 0 && got[i] < 8) {
				pfd[m].fd = fds[i];
				pfd[m].events = POLLIN;
				pfd[m].revents = 0;
				m++;
			}
		}
		if (m == 0 || now_ms() > deadline)
			break;
		if (poll(pfd, (nfds_t)m, 1000) < 0 && errno != EINTR)
			die("poll");
		for (int i = 0, k = 0; i < n && k < m; i++) {
			ssize_t r;
			if (fds[i] < 0 || got[i] >= 8)
				continue;
			if (pfd[k++].revents == 0)
				continue;
			r = read(fds[i], bufs[i] + got[i], 8 - got[i]);
			if (r <= 0) {
				if (!first_err)
					first_err = r < 0 ? errno : EPIPE;
				close(fds[i]);
				fds[i] = -1;
				continue;
			}
			got[i] += (size_t)r;
			if (got[i] == 8) {
				char tag[16];
				make_tag(tag, i);
				if (!memcmp(tag, bufs[i], 8))
					echoed++;
			}
		}
	}
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	printf("nofile=%ld connected=%d failed_connect=%d first_error=%s echoed=%d "
	       "elapsed_ms=%ld\n",
	       nofile, connected, failed, errname(first_err), echoed, now_ms() - t0);
	free(fds);
	free(got);
	free(bufs);
	free(pfd);
	return echoed == n ? 0 : 1;
}
