/*
 * fdops HOST PORT: what an app does to a connected socket's fd, against an
 * echo server.  Prints one key=value per check:
 *   flags=nonblock,cloexec     O_NONBLOCK/FD_CLOEXEC kept across connect
 *   dup_peers=4/4              dup, F_DUPFD_CLOEXEC, dup2, dup3: getpeername
 *   dup_io=ok                  write on one dup, read on another, original closed
 *   fork_io=ok                 a forked child uses the inherited fd
 *   exec_peer=IP:PORT          an exec'd child's getpeername on the inherited fd
 *   closed=EBADF               getpeername after close
 *   dup2_over=ENOTSOCK         a managed fd replaced by dup2 of a non-socket
 *   threads_ok=N/M             T threads x K connect/echo/close rounds
 * "fdops child FD" is the exec'd child: prints its getpeername.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/wait.h>

#include "util.h"

#define THREADS 8
#define ROUNDS 25

static struct sockaddr_storage dst;
static socklen_t dstlen;
static char dst_str[128];

/* Why the last echo_once failed: "write:ERRNO", "read:ERRNO", "eof", "mismatch". */
static __thread char echo_err[64];

static int echo_once(int rfd, int wfd, const char *msg)
{
	char buf[64];
	size_t len = strlen(msg), got = 0;
	int r = write_all(wfd, msg, len);

	if (r < 0) {
		snprintf(echo_err, sizeof(echo_err), "write:%s", errname(-r));
		return -1;
	}
	while (got < len) {
		ssize_t n = read(rfd, buf + got, len - got);
		if (n <= 0) {
			snprintf(echo_err, sizeof(echo_err), "%s%s", n ? "read:" : "eof",
				 n ? errname(errno) : "");
			return -1;
		}
		got += (size_t)n;
	}
	if (memcmp(buf, msg, len)) {
		snprintf(echo_err, sizeof(echo_err), "mismatch");
		return -1;
	}
	return 0;
}

static const char *echo_result(int r)
{
	return r == 0 ? "ok" : echo_err;
}

static int peer_is_dst(int fd)
{
	struct sockaddr_storage p;
	socklen_t plen = sizeof(p);
	char a[128];

	if (getpeername(fd, (struct sockaddr *)&p, &plen) < 0)
		return 0;
	return !strcmp(fmt_addr((struct sockaddr *)&p, a, sizeof(a)), dst_str);
}

static int connect_blocking(void)
{
	int fd = socket(dst.ss_family, SOCK_STREAM, 0), e;

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&dst, dstlen) < 0) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static void *worker(void *arg)
{
	long ok = 0, id = (long)arg;

	for (int i = 0; i < ROUNDS; i++) {
		char msg[32];
		int fd = connect_blocking();

		if (fd < 0) {
			fprintf(stderr, "thread %ld round %d: connect: %s\n", id, i,
				errname(errno));
			continue;
		}
		snprintf(msg, sizeof(msg), "t%ld-%d\n", id, i);
		if (echo_once(fd, fd, msg) < 0)
			fprintf(stderr, "thread %ld round %d: echo: %s\n", id, i, echo_err);
		else if (!peer_is_dst(fd))
			fprintf(stderr, "thread %ld round %d: getpeername is not the TCP peer\n",
				id, i);
		else
			ok++;
		close(fd);
	}
	return (void *)ok;
}

static int child(int fd)
{
	struct sockaddr_storage p;
	socklen_t plen = sizeof(p);
	char a[128];

	if (getpeername(fd, (struct sockaddr *)&p, &plen) < 0)
		printf("exec_peer=error:%s\n", errname(errno));
	else
		printf("exec_peer=%s\n", fmt_addr((struct sockaddr *)&p, a, sizeof(a)));
	fflush(stdout);
	if (echo_once(fd, fd, "exec\n")) {
		fprintf(stderr, "exec child: %s\n", echo_err);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int s, d[4], ok = 0, status, fl, fdfl;
	pthread_t th[THREADS];
	long total = 0;
	pid_t pid;

	if (argc == 3 && !strcmp(argv[1], "child"))
		return child(atoi(argv[2]));
	if (argc != 3) {
		fprintf(stderr, "usage: fdops HOST PORT\n");
		return 2;
	}
	dstlen = parse_addr(argv[1], argv[2], &dst);
	fmt_addr((struct sockaddr *)&dst, dst_str, sizeof(dst_str));

	/* Non-blocking, close-on-exec socket: both flags survive the handoff. */
	s = socket(dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0)
		die("socket");
	if (connect(s, (struct sockaddr *)&dst, dstlen) < 0 && errno != EINPROGRESS)
		die("connect");
	{
		struct pollfd p = {.fd = s, .events = POLLOUT};
		if (poll(&p, 1, 15000) != 1 || sockopt_int(s, SOL_SOCKET, SO_ERROR) != 0)
			die("connect completion");
	}
	fl = fcntl(s, F_GETFL);
	fdfl = fcntl(s, F_GETFD);
	printf("flags=%s,%s\n", fl & O_NONBLOCK ? "nonblock" : "blocking",
	       fdfl & FD_CLOEXEC ? "cloexec" : "inherit");
	fcntl(s, F_SETFL, fl & ~O_NONBLOCK);

	d[0] = dup(s);
	d[1] = fcntl(s, F_DUPFD_CLOEXEC, 100);
	d[2] = dup2(s, 200);
	d[3] = dup3(s, 201, O_CLOEXEC);
	for (int i = 0; i < 4; i++)
		ok += d[i] >= 0 && peer_is_dst(d[i]);
	printf("dup_peers=%d/4\n", ok);

	close(s);
	printf("dup_io=%s\n", echo_result(echo_once(d[1], d[0], "dup\n")));
	fflush(stdout);

	pid = fork();
	if (pid == 0) {
		int r = echo_once(d[2], d[2], "fork\n");
		if (r)
			fprintf(stderr, "fork child: %s\n", echo_err);
		_exit(r == 0 ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	printf("fork_io=%s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "ok" : "failed");
	fflush(stdout);

	pid = fork();
	if (pid == 0) {
		execl("/proc/self/exe", argv[0], "child", "200", (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &status, 0);
	printf("exec_io=%s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "ok" : "failed");

	for (int i = 0; i < 4; i++)
		close(d[i]);
	{
		struct sockaddr_storage p;
		socklen_t plen = sizeof(p);
		int r = getpeername(d[0], (struct sockaddr *)&p, &plen);
		printf("closed=%s\n", r < 0 ? errname(errno) : "still-open");
	}

	/* dup2 of a non-socket over a managed fd closes the socket first. */
	s = connect_blocking();
	{
		int nul = open("/dev/null", O_RDONLY), r;
		struct sockaddr_storage p;
		socklen_t plen = sizeof(p);

		if (s < 0 || nul < 0 || dup2(nul, s) < 0)
			die("dup2 over");
		r = getpeername(s, (struct sockaddr *)&p, &plen);
		printf("dup2_over=%s\n", r < 0 ? errname(errno) : "still-a-socket");
		close(nul);
		close(s);
	}
	fflush(stdout);

	for (long i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, worker, (void *)i);
	for (int i = 0; i < THREADS; i++) {
		void *r;
		pthread_join(th[i], &r);
		total += (long)r;
	}
	printf("threads_ok=%ld/%d\n", total, THREADS * ROUNDS);
	return 0;
}
