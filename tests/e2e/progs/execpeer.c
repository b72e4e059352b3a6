/*
 * execpeer ADDR PORT: accepts one client, then hands the accepted fd to a
 * freshly exec'd copy of itself, as sshd and inetd-style servers do.
 *
 *   parent: accepted peer=IP:PORT getpeername=IP:PORT
 *   child:  child getpeername=IP:PORT getsockname=IP:PORT domain=AF_INET
 *           then reads a line and answers "echo:LINE"
 * The parent prints "child exit=N" after waiting for it, then keeps the
 * listener open until killed.
 */
#include <fcntl.h>
#include <sys/wait.h>

#include "util.h"

static int child(int fd)
{
	struct sockaddr_storage p, l;
	socklen_t plen = sizeof(p), llen = sizeof(l);
	char a1[128], a2[128], line[256], reply[300];
	size_t got = 0;
	ssize_t n;

	if (getpeername(fd, (struct sockaddr *)&p, &plen) < 0)
		snprintf(a1, sizeof(a1), "error:%s", errname(errno));
	else
		fmt_addr((struct sockaddr *)&p, a1, sizeof(a1));
	if (getsockname(fd, (struct sockaddr *)&l, &llen) < 0)
		snprintf(a2, sizeof(a2), "error:%s", errname(errno));
	else
		fmt_addr((struct sockaddr *)&l, a2, sizeof(a2));
	printf("child getpeername=%s getsockname=%s domain=%s\n", a1, a2,
	       domain_name(sockopt_int(fd, SOL_SOCKET, SO_DOMAIN)));
	fflush(stdout);
	while (got < sizeof(line) - 1) {
		n = read(fd, line + got, sizeof(line) - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memchr(line, '\n', got))
			break;
	}
	line[got] = 0;
	line[strcspn(line, "\n")] = 0;
	n = snprintf(reply, sizeof(reply), "echo:%s\n", line);
	write_all(fd, reply, (size_t)n);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_storage peer, gp;
	socklen_t plen = sizeof(peer), gplen = sizeof(gp);
	char a1[128], a2[128], fdarg[16];
	int lfd, c, status;
	pid_t pid;

	if (argc == 3 && !strcmp(argv[1], "child"))
		return child(atoi(argv[2]));
	if (argc != 3) {
		fprintf(stderr, "usage: execpeer ADDR PORT\n");
		return 2;
	}
	lfd = listen_on(argv[1], argv[2], 16);
	printf("listening\n");
	fflush(stdout);
	c = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
	if (c < 0)
		die("accept4");
	if (getpeername(c, (struct sockaddr *)&gp, &gplen) < 0)
		snprintf(a2, sizeof(a2), "error:%s", errname(errno));
	else
		fmt_addr((struct sockaddr *)&gp, a2, sizeof(a2));
	printf("accepted peer=%s getpeername=%s\n",
	       fmt_addr((struct sockaddr *)&peer, a1, sizeof(a1)), a2);
	fflush(stdout);

	/* Like sshd: the accepted fd survives exec at a known number. */
	if (fcntl(c, F_SETFD, 0) < 0)
		die("fcntl");
	snprintf(fdarg, sizeof(fdarg), "%d", c);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		execl("/proc/self/exe", argv[0], "child", fdarg, (char *)NULL);
		_exit(127);
	}
	close(c);
	if (waitpid(pid, &status, 0) < 0)
		die("waitpid");
	printf("child exit=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128);
	fflush(stdout);
	for (;;)
		pause();
}
