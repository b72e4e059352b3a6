/*
 * ldmesh-run [--runtime-dir DIR] -- CMD [ARGS...]
 *
 * Starts CMD under the seccomp filter (filter.c) and supervises its socket
 * setup (calls.c) for as long as CMD or any of its descendants runs.  glibc
 * programs also get the shim (LD_PRELOAD), which keeps their connections
 * hook-free; anything else (Go, static, musl) is meshed by the filter alone
 * and never sees the shim, which it could not load.  Exits with CMD's
 * status.  Built static (no glibc), so it runs inside any image.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "run.h"

static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD};

void run_log(const struct run_cfg *cfg, int level, const char *fmt, ...)
{
	char buf[512];
	int n, saved = errno;
	va_list ap;

	if (level > cfg->log_level) {
		return;
	}
	n = snprintf(buf, sizeof(buf), "ldmesh-run[%d]: ", (int)getpid());
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2) {
		n = (int)sizeof(buf) - 2;
	}
	buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, (size_t)n) < 0) {
		/* stderr is gone: nothing to tell */
	}
	errno = saved;
}

static void usage(void)
{
	fprintf(stderr, "usage: ldmesh-run [--runtime-dir DIR] -- CMD [ARGS...]\n"
			"  meshes CMD and all its descendants through ldmeshd at DIR\n"
			"  (default $LDMESH_RUNTIME_DIR, else " LDM_DEFAULT_RUNTIME_DIR ")\n");
}

/* Finds cmd on PATH as execvp would; "" when not found. */
static void resolve_cmd(const char *cmd, char *out, size_t len)
{
	const char *path = getenv("PATH");

	out[0] = '\0';
	if (strchr(cmd, '/')) {
		snprintf(out, len, "%s", cmd);
		return;
	}
	if (!path) {
		path = "/usr/local/bin:/usr/bin:/bin";
	}
	while (*path) {
		size_t n = strcspn(path, ":");

		snprintf(out, len, "%.*s/%s", (int)n, n ? path : ".", cmd);
		if (access(out, X_OK) == 0) {
			return;
		}
		path += n + (path[n] == ':');
	}
	out[0] = '\0';
}

/*
 * 1 when the program is dynamically linked against glibc: its ELF
 * interpreter is ld-linux.  A script counts as its interpreter.
 */
static int is_glibc_program(const char *file, int depth)
{
	unsigned char hdr[64];
	char interp[PATH_MAX];
	int fd = open(file, O_RDONLY | O_CLOEXEC), r = 0;
	ssize_t n;

	if (fd < 0) {
		return 0;
	}
	n = pread(fd, hdr, sizeof(hdr), 0);
	if (n > 2 && hdr[0] == '#' && hdr[1] == '!' && depth < 2) {
		char line[PATH_MAX], *p, *end;
		ssize_t m = pread(fd, line, sizeof(line) - 1, 2);

		close(fd);
		if (m <= 0) {
			return 0;
		}
		line[m] = '\0';
		p = line + strspn(line, " \t");
		end = p + strcspn(p, " \t\n");
		*end = '\0';
		return is_glibc_program(p, depth + 1);
	}
	/* 64-bit little-endian ELF: the program headers, for PT_INTERP. */
	if (n == (ssize_t)sizeof(hdr) && !memcmp(hdr, "\177ELF", 4) && hdr[4] == 2 && hdr[5] == 1) {
		uint64_t phoff;
		uint16_t phentsize, phnum;

		memcpy(&phoff, hdr + 32, 8);
		memcpy(&phentsize, hdr + 54, 2);
		memcpy(&phnum, hdr + 56, 2);
		for (uint16_t i = 0; i < phnum && phentsize >= 56; i++) {
			unsigned char ph[56];
			uint32_t type;
			uint64_t off, size;

			if (pread(fd, ph, sizeof(ph), (off_t)(phoff + (uint64_t)i * phentsize)) !=
			    (ssize_t)sizeof(ph)) {
				break;
			}
			memcpy(&type, ph, 4);
			if (type != 3 /* PT_INTERP */) {
				continue;
			}
			memcpy(&off, ph + 8, 8);
			memcpy(&size, ph + 32, 8);
			if (size == 0 || size >= sizeof(interp) ||
			    pread(fd, interp, size, (off_t)off) != (ssize_t)size) {
				break;
			}
			interp[size] = '\0';
			r = strstr(interp, "ld-linux") != NULL;
			break;
		}
	}
	close(fd);
	return r;
}

/* libldmesh.so: $LDMESH_SHIM, else beside this binary (the build tree) or
 * in ../lib/ldmesh (make install). */
static int find_shim(char *out, size_t len)
{
	static const char *const cands[] = {"libldmesh.so", "../lib/ldmesh/libldmesh.so"};
	const char *v = getenv("LDMESH_SHIM");
	char self[PATH_MAX];
	ssize_t n;
	char *slash;

	if (v && *v) {
		snprintf(out, len, "%s", v);
		return access(out, R_OK) == 0 ? 0 : -ENOENT;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0) {
		return -ENOENT;
	}
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (!slash) {
		return -ENOENT;
	}
	*slash = '\0';
	for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++) {
		if ((size_t)snprintf(out, len, "%s/%s", self, cands[i]) < len &&
		    access(out, R_OK) == 0) {
			return 0;
		}
	}
	return -ENOENT;
}

/* LD_PRELOAD without any libldmesh.so, then with `shim` last if given (a
 * sanitizer runtime already there must stay first). */
static int set_preload(const char *shim)
{
	const char *old = getenv("LD_PRELOAD");
	char v[4096];
	size_t w = 0;

	v[0] = '\0';
	for (const char *p = old ? old : ""; *p && w < sizeof(v);) {
		size_t n = strcspn(p, " :");

		if (n && !memmem(p, n, "libldmesh", 9)) {
			w += (size_t)snprintf(v + w, sizeof(v) - w, "%s%.*s", w ? " " : "", (int)n,
					      p);
		}
		p += n;
		p += strspn(p, " :");
	}
	if (shim && w < sizeof(v) &&
	    (size_t)snprintf(v + w, sizeof(v) - w, "%s%s", w ? " " : "", shim) >= sizeof(v) - w) {
		return -ENAMETOOLONG;
	}
	if (!v[0]) {
		return unsetenv("LD_PRELOAD");
	}
	return setenv("LD_PRELOAD", v, 1);
}

static int send_fd(int sock, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	char byte = 'f';
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &msg, MSG_NOSIGNAL) == 1 ? 0 : -errno;
}

/* The notification fd from the child, or -errno (the child's, if it sent
 * one instead of an fd). */
static int recv_fd(int sock)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	int err = 0, fd = -1;
	struct iovec iov = {.iov_base = &err, .iov_len = sizeof(err)};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf)};
	ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	if (n <= 0) {
		return -EPIPE;
	}
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
		memcpy(&fd, CMSG_DATA(c), sizeof(int));
		return fd;
	}
	return err < 0 ? err : -EPROTO;
}

static void child_main(int sock, char **cmd, const sigset_t *old_mask)
{
	int nfd = filter_install();

	if (nfd < 0) {
		int err = nfd;

		if (write(sock, &err, sizeof(err)) < 0) {
			/* the parent sees EOF instead */
		}
		_exit(127);
	}
	if (send_fd(sock, nfd) < 0) {
		_exit(127);
	}
	close(nfd);
	close(sock);
	sigprocmask(SIG_SETMASK, old_mask, NULL);
	execvp(cmd[0], cmd);
	fprintf(stderr, "ldmesh-run: cannot run %s: %s\n", cmd[0], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}

static void read_env(struct run_cfg *cfg, const char *runtime_dir)
{
	const char *v = getenv("LDMESH_LOG");
	char bad[64];

	cfg->log_level = RUN_ERR;
	if (v && (!strcmp(v, "off") || !strcmp(v, "0"))) {
		cfg->log_level = 0;
	} else if (v && !strcmp(v, "info")) {
		cfg->log_level = RUN_INFO;
	} else if (v && !strcmp(v, "debug")) {
		cfg->log_level = RUN_DEBUG;
	}
	snprintf(cfg->handoff_path, sizeof(cfg->handoff_path), "%s/%s", runtime_dir,
		 LDM_HANDOFF_SOCK);
	v = getenv("LDMESH_FAIL_OPEN");
	cfg->fail_open = v && !strcmp(v, "1");
	v = getenv("LDMESH_WAIT_READY_MS");
	cfg->wait_ready_ms = v ? atoi(v) : 30000;
	if (excl_parse_ports(&cfg->excl, getenv("LDMESH_EXCLUDE_PORTS"), bad, sizeof(bad)) < 0) {
		run_log(cfg, RUN_ERR, "LDMESH_EXCLUDE_PORTS: bad range '%s'", bad);
	}
	if (excl_parse_cidrs(&cfg->excl, getenv("LDMESH_EXCLUDE_CIDRS"), bad, sizeof(bad)) < 0) {
		run_log(cfg, RUN_ERR, "LDMESH_EXCLUDE_CIDRS: bad address or prefix '%s'", bad);
	}
}

int main(int argc, char **argv)
{
	static struct supervisor s; /* the socket table is large: not on the stack */
	const char *runtime_dir = getenv("LDMESH_RUNTIME_DIR");
	char exe[PATH_MAX], shim[PATH_MAX];
	sigset_t mask, old_mask;
	int i = 1, sp[2], sigfd, status = 0, r;
	pid_t child;

	while (i < argc && strcmp(argv[i], "--")) {
		if (!strcmp(argv[i], "--runtime-dir") && i + 1 < argc) {
			runtime_dir = argv[i + 1];
			i += 2;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage();
			return 0;
		} else {
			fprintf(stderr, "ldmesh-run: unknown option '%s'\n", argv[i]);
			usage();
			return 2;
		}
	}
	if (i + 1 >= argc) {
		usage();
		return 2;
	}
	if (!runtime_dir || !*runtime_dir) {
		runtime_dir = LDM_DEFAULT_RUNTIME_DIR;
	}
	if (strlen(runtime_dir) + 1 + strlen(LDM_HANDOFF_SOCK) >= sizeof(s.cfg.handoff_path)) {
		fprintf(stderr, "ldmesh-run: runtime dir too long: %s\n", runtime_dir);
		return 2;
	}
	read_env(&s.cfg, runtime_dir);
	s.dl.cfg = &s.cfg;
	s.mem.fd = -1;

	resolve_cmd(argv[i + 1], exe, sizeof(exe));
	r = exe[0] && is_glibc_program(exe, 0) && find_shim(shim, sizeof(shim)) == 0;
	if (set_preload(r ? shim : NULL) < 0 || setenv("LDMESH_RUNTIME_DIR", runtime_dir, 1) < 0 ||
	    setenv("LDMESH_SUPERVISED", "1", 1) < 0) {
		fprintf(stderr, "ldmesh-run: cannot set the environment: %s\n", strerror(errno));
		return 2;
	}
	run_log(&s.cfg, RUN_INFO, "%s: %s", argv[i + 1],
		r ? "glibc program: shim and filter" : "filter only");

	/* Orphaned descendants come to us: they stay ours to supervise
	 * (ptrace access to their memory) and to reap. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		fprintf(stderr, "ldmesh-run: %s\n", strerror(errno));
		return 2;
	}
	sigemptyset(&mask);
	for (size_t k = 0; k < sizeof(forwarded) / sizeof(forwarded[0]); k++) {
		sigaddset(&mask, forwarded[k]);
	}
	sigprocmask(SIG_BLOCK, &mask, &old_mask);
	sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sigfd < 0) {
		fprintf(stderr, "ldmesh-run: signalfd: %s\n", strerror(errno));
		return 2;
	}
	child = fork();
	if (child < 0) {
		fprintf(stderr, "ldmesh-run: fork: %s\n", strerror(errno));
		return 2;
	}
	if (child == 0) {
		close(sp[0]);
		close(sigfd);
		child_main(sp[1], argv + i + 1, &old_mask);
	}
	close(sp[1]);
	s.notify_fd = recv_fd(sp[0]);
	close(sp[0]);
	if (s.notify_fd < 0) {
		/* No filter, no exec: the command never ran unmeshed. */
		fprintf(stderr, "ldmesh-run: cannot install the seccomp filter: %s\n",
			strerror(-s.notify_fd));
		waitpid(child, NULL, 0);
		return 126;
	}
	r = supervise(&s, child, sigfd, &status);
	if (r < 0) {
		fprintf(stderr, "ldmesh-run: supervisor failed: %s\n", strerror(-r));
		return 125;
	}
	if (WIFSIGNALED(status)) {
		return 128 + WTERMSIG(status);
	}
	return WEXITSTATUS(status);
}
