/*
 * holdconns HOST PORT N HOLD_S: N connections open at once, all dialled
 * non-blocking at the same time (as an event-driven client does).
 *
 * Sets RLIMIT_NOFILE to N + 256 (soft and hard: the e2e tests run as root),
 * starts N non-blocking connects, polls until every one is writable (or has
 * failed, read from SO_ERROR), sends one byte on each ('A' + i % 26) and
 * polls until every connection has echoed its byte, 45 s at most overall.
 * Prints "nofile=L connected=C failed_connect=F first_error=NAME
 * echoed=E elapsed_ms=T", then "holding", keeps every connection open until
 * stdin reaches end-of-file or HOLD_S seconds pass, closes them all and
 * prints "closed". Exits 0 only when echoed == N.
 */
#include <fcntl.h>
#include <poll.h>

#include "util.h"

/* Dial-and-echo budget unless DEADLINE_S is given: a bound against a hang,
 * not a speed target (the bench measures speed). */
#define DEADLINE_MS 45000

static int set_nofile(long want)
{
	struct rlimit rl = {.rlim_cur = (rlim_t)want, .rlim_max = (rlim_t)want};
	struct rlimit cur;

	if (getrlimit(RLIMIT_NOFILE, &cur) == 0 && cur.rlim_max >= (rlim_t)want) {
		cur.rlim_cur = (rlim_t)want;
		return setrlimit(RLIMIT_NOFILE, &cur);
	}
	return setrlimit(RLIMIT_NOFILE, &rl);
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int n, connected = 0, failed = 0, first_err = 0, echoed = 0, pending;
	long t0 = now_ms(), deadline, hold_s;
	struct rlimit rl;
	int *fds;
	unsigned char *state; /* 0 connecting, 1 echo awaited, 2 done, 3 failed */
	struct pollfd *pfd;
	int *idx;

	if (argc != 5 && argc != 6) {
		fprintf(stderr, "usage: holdconns HOST PORT N HOLD_S [DEADLINE_S]\n");
		return 2;
	}
	sl = parse_addr(argv[1], argv[2], &ss);
	n = atoi(argv[3]);
	hold_s = atol(argv[4]);
	if (n <= 0) {
		fprintf(stderr, "bad N\n");
		return 2;
	}
	if (set_nofile((long)n + 256) < 0)
		die("setrlimit");
	getrlimit(RLIMIT_NOFILE, &rl);
	fds = calloc((size_t)n, sizeof(*fds));
	state = calloc((size_t)n, 1);
	pfd = calloc((size_t)n + 1, sizeof(*pfd));
	idx = calloc((size_t)n + 1, sizeof(*idx));
	if (!fds || !state || !pfd || !idx)
		die("calloc");

	for (int i = 0; i < n; i++) {
		int r;

		fds[i] = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (fds[i] < 0) {
			if (!first_err)
				first_err = errno;
			failed++;
			state[i] = 3;
			continue;
		}
		r = connect(fds[i], (struct sockaddr *)&ss, sl);
		if (r < 0 && errno != EINPROGRESS) {
			if (!first_err)
				first_err = errno;
			failed++;
			close(fds[i]);
			fds[i] = -1;
			state[i] = 3;
		}
	}

	/* One poll set serves both phases: POLLOUT while connecting, POLLIN
	 * while waiting for the echo. */
	deadline = t0 + (argc == 6 ? atol(argv[5]) * 1000 : DEADLINE_MS);
	for (;;) {
		int m = 0, r;

		for (int i = 0; i < n; i++) {
			if (state[i] == 0 || state[i] == 1) {
				pfd[m].fd = fds[i];
				pfd[m].events = state[i] == 0 ? POLLOUT : POLLIN;
				pfd[m].revents = 0;
				idx[m++] = i;
			}
		}
		pending = m;
		if (!m || now_ms() > deadline)
			break;
		r = poll(pfd, (nfds_t)m, 1000);
		if (r < 0 && errno != EINTR)
			die("poll");
		for (int k = 0; r > 0 && k < m; k++) {
			int i = idx[k];

			if (!pfd[k].revents)
				continue;
			if (state[i] == 0) {
				int err = 0;
				socklen_t el = sizeof(err);
				unsigned char b = (unsigned char)('A' + i % 26);

				getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &err, &el);
				if (err || write(fds[i], &b, 1) != 1) {
					if (!err)
						err = errno;
					if (!first_err)
						first_err = err;
					failed++;
					state[i] = 3;
					continue;
				}
				connected++;
				state[i] = 1;
			} else {
				unsigned char b;
				ssize_t got = read(fds[i], &b, 1);

				if (got == 1 && b == (unsigned char)('A' + i % 26)) {
					echoed++;
					state[i] = 2;
				} else if (got == 0 || (got < 0 && errno != EAGAIN)) {
					if (!first_err)
						first_err = got == 0 ? EPIPE : errno;
					state[i] = 3;
				} else if (got == 1) {
					state[i] = 3; /* wrong byte */
				}
			}
		}
	}
	printf("nofile=%ld connected=%d failed_connect=%d first_error=%s echoed=%d pending=%d "
	       "elapsed_ms=%ld\n",
	       (long)rl.rlim_cur, connected, failed, errname(first_err), echoed, pending,
	       now_ms() - t0);
	printf("holding\n");
	fflush(stdout);

	/* Hold until stdin closes (the test is done looking) or HOLD_S. */
	{
		struct pollfd in = {.fd = 0, .events = POLLIN};
		long end = now_ms() + hold_s * 1000;
		char buf[64];

		while (now_ms() < end) {
			if (poll(&in, 1, 200) > 0) {
				if (read(0, buf, sizeof(buf)) <= 0)
					break;
			}
		}
	}
	for (int i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
	}
	printf("closed\n");
	fflush(stdout);
	return echoed == n ? 0 : 1;
}
