/*
 * `ldmeshctl run`: runs a stock program in the mesh under ldmesh-run,
 * starting a daemon for it when none serves the runtime directory
 * (docs/cli.md, *run*).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ldmesh/common.h"
#include "cli.h"

/* `run`: how long a daemon we started gets to open handoff.sock, and to
 * drain and exit once the command is done. */
#define RUN_READY_TIMEOUT_MS 10000
#define RUN_STOP_TIMEOUT_MS 5000
#define RUN_POLL_MS 20

/*
 * The pid of the command `run` waits for, read by the signal handler: a
 * handler can only reach a global.  0 when there is none.
 */
static volatile sig_atomic_t run_child_pid;

static const int run_forwarded_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

static void run_forward_signal(int sig, siginfo_t *si, void *uctx)
{
	pid_t pid = (pid_t)run_child_pid;
	int saved = errno;

	/*
	 * The terminal sends ^C, ^\ and hangups (SI_KERNEL) to the whole
	 * foreground process group, which includes the command: forwarding
	 * them would deliver them twice.
	 */
	if (pid > 0 && si->si_code != SI_KERNEL)
		kill(pid, sig);
	errno = saved;
}

/* Directory of the running ldmeshctl binary, for finding its siblings. */
static int exe_dir(char *buf, size_t size)
{
	ssize_t n = readlink("/proc/self/exe", buf, size - 1);
	char *slash;

	if (n < 0)
		return -errno;
	if ((size_t)n >= size - 1)
		return -ENAMETOOLONG;
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (!slash)
		return -ENOENT;
	*slash = '\0';
	return 0;
}

/*
 * Finds a file: $env if set (must exist), else the first of the candidates
 * (relative to ldmeshctl's directory) that is accessible with `mode`.
 * Writes the canonical absolute path into out.
 */
static int find_file(const char *what, const char *env, const char *const *cands, size_t n,
		     int mode, char *out)
{
	char dir[PATH_MAX], path[PATH_MAX * 2], tried[PATH_MAX * 4] = "";
	const char *v = getenv(env);
	size_t tlen = 0;
	int rc;

	if (v && *v) {
		if (!realpath(v, out) || access(out, mode) != 0) {
			rc = -errno;
			errorf("%s=%s: %s", env, v, strerror(-rc));
			return rc;
		}
		return 0;
	}
	rc = exe_dir(dir, sizeof(dir));
	if (rc) {
		errorf("cannot find %s: /proc/self/exe: %s; set %s", what, strerror(-rc), env);
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, cands[i]);
		if (access(path, mode) == 0 && realpath(path, out))
			return 0;
		if (tlen < sizeof(tried))
			tlen += (size_t)snprintf(tried + tlen, sizeof(tried) - tlen, "%s%s",
						 i ? ", " : "", path);
	}
	errorf("cannot find %s (tried %s); set %s to its path", what, tried, env);
	return -ENOENT;
}

/*
 * Execs `ldmesh-run --runtime-dir DIR -- cmd`: the launcher meshes cmd and
 * its descendants whatever they are linked against, and preloads `shim`
 * (passed as LDMESH_SHIM) into the glibc ones.  Returns only on failure.
 */
static int exec_in_mesh(char **cmd, const char *launcher, const char *shim, const char *runtime_dir)
{
	size_t n = 0;
	char **argv;
	int e;

	while (cmd[n])
		n++;
	argv = calloc(n + 5, sizeof(*argv));
	if (!argv || setenv("LDMESH_SHIM", shim, 1) != 0) {
		errorf("cannot set up %s: %s", launcher, strerror(errno));
		free(argv);
		return EXIT_ERROR;
	}
	argv[0] = (char *)launcher;
	argv[1] = "--runtime-dir";
	argv[2] = (char *)runtime_dir;
	argv[3] = "--";
	memcpy(argv + 4, cmd, n * sizeof(*argv));
	execv(launcher, argv);
	e = errno;
	errorf("cannot run %s: %s", launcher, strerror(e));
	free(argv);
	/* What a shell returns for "not found" and "not executable". */
	return e == ENOENT ? 127 : 126;
}

static long ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void describe_status(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(st),
			 strsignal(WTERMSIG(st)));
	else
		snprintf(buf, len, "stopped (status 0x%x)", st);
}

/*
 * Starts ldmeshd for `run`.  It gets its own process group so a ^C meant
 * for the command does not take the daemon down while the command may
 * still be closing connections; PR_SET_PDEATHSIG stops it if ldmeshctl
 * dies without cleaning up.  Returns its pid or -errno.
 */
static pid_t daemon_start(const char *ldmeshd, const char *config, const char *runtime_dir)
{
	const char *argv[6];
	pid_t parent = getpid(), pid;
	sigset_t none;
	int i = 0, null_fd;

	argv[i++] = "ldmeshd";
	if (config) {
		argv[i++] = "-c";
		argv[i++] = config;
	}
	argv[i++] = "--runtime-dir";
	argv[i++] = runtime_dir;
	argv[i] = NULL;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		errorf("cannot start ldmeshd: fork: %s", strerror(errno));
		return -errno;
	}
	if (pid > 0)
		return pid;

	/* Child: only async-signal-safe calls and exec from here on. */
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(1);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* The daemon must never load the shim into itself. */
	unsetenv("LD_PRELOAD");
	/* stdout belongs to the command (it may be piped); logs go to stderr. */
	null_fd = open("/dev/null", O_RDONLY);
	if (null_fd > STDIN_FILENO) {
		dup2(null_fd, STDIN_FILENO);
		close(null_fd);
	}
	dup2(STDERR_FILENO, STDOUT_FILENO);
	execv(ldmeshd, (char *const *)argv);
	dprintf(STDERR_FILENO, "ldmeshctl: cannot run %s: %s\n", ldmeshd, strerror(errno));
	_exit(127);
}

/* SIGTERM (the daemon drains), then SIGKILL after RUN_STOP_TIMEOUT_MS. */
static void daemon_stop(pid_t pid)
{
	struct timespec t0;
	char how[128];
	int st;
	pid_t r;

	r = waitpid(pid, &st, WNOHANG);
	if (r == pid) {
		describe_status(st, how, sizeof(how));
		errorf("warning: ldmeshd %s while the command ran", how);
		return;
	}
	kill(pid, SIGTERM);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (ms_since(&t0) < RUN_STOP_TIMEOUT_MS) {
		r = waitpid(pid, &st, WNOHANG);
		if (r == pid || (r < 0 && errno != EINTR))
			return;
		sleep_ms(RUN_POLL_MS);
	}
	errorf("ldmeshd did not stop within %d s; killing it", RUN_STOP_TIMEOUT_MS / 1000);
	kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
}

/*
 * Waits until handoff.sock accepts a connection.  Returns 0, or an exit
 * code after saying why (the daemon exited, or took too long).
 */
static int daemon_wait_ready(pid_t pid, const char *runtime_dir)
{
	struct timespec t0;
	char how[128];
	int st, fd;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (waitpid(pid, &st, WNOHANG) == pid) {
			describe_status(st, how, sizeof(how));
			errorf("ldmeshd %s before it was ready (its messages are above)", how);
			return EXIT_UNREACHABLE;
		}
		fd = unix_connect(runtime_dir, LDM_HANDOFF_SOCK, 1);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (ms_since(&t0) >= RUN_READY_TIMEOUT_MS) {
			errorf("ldmeshd did not open %s/%s within %d s", runtime_dir,
			       LDM_HANDOFF_SOCK, RUN_READY_TIMEOUT_MS / 1000);
			daemon_stop(pid);
			return EXIT_UNREACHABLE;
		}
		sleep_ms(RUN_POLL_MS);
	}
}

/*
 * Runs cmd as a child under the launcher, forwards signals to it and returns
 * its exit status the way a shell reports it (128+N when killed by N).
 */
static int run_child(char **cmd, const char *launcher, const char *shim, const char *runtime_dir)
{
	struct sigaction sa = {.sa_sigaction = run_forward_signal,
			       .sa_flags = SA_SIGINFO | SA_RESTART};
	sigset_t set, old;
	pid_t pid;
	int st;

	/* Blocked across fork so none is lost or hits a half-set-up parent. */
	sigemptyset(&set);
	for (size_t i = 0; i < ARRAY_SIZE(run_forwarded_signals); i++)
		sigaddset(&set, run_forwarded_signals[i]);
	sigprocmask(SIG_BLOCK, &set, &old);
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		errorf("cannot run %s: fork: %s", cmd[0], strerror(errno));
		sigprocmask(SIG_SETMASK, &old, NULL);
		return EXIT_ERROR;
	}
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		_exit(exec_in_mesh(cmd, launcher, shim, runtime_dir));
	}
	run_child_pid = pid;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < ARRAY_SIZE(run_forwarded_signals); i++)
		sigaction(run_forwarded_signals[i], &sa, NULL);
	sigprocmask(SIG_SETMASK, &old, NULL);

	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			errorf("waitpid: %s", strerror(errno));
			run_child_pid = 0;
			return EXIT_ERROR;
		}
	}
	run_child_pid = 0;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return EXIT_ERROR;
}

int cmd_run(const struct cli *c)
{
	static const char synopsis[] = "run [--config FILE] -- CMD [ARGS...]";
	static const char *const shim_cands[] = {"libldmesh.so", "../lib/ldmesh/libldmesh.so"};
	static const char *const daemon_cands[] = {"ldmeshd"};
	static const char *const run_cands[] = {"ldmesh-run"};
	char shim[PATH_MAX], ldmeshd[PATH_MAX], launcher[PATH_MAX], rt[PATH_MAX];
	const char *config = NULL;
	char **cmd = NULL;
	pid_t dpid;
	int fd, i, rc;

	for (i = 1; i < c->argc; i++) {
		const char *a = c->argv[i];

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(a, "--config") == 0) {
			if (i + 1 >= c->argc)
				return usage_error(synopsis, "--config needs a file");
			config = c->argv[++i];
		} else if (strncmp(a, "--config=", 9) == 0) {
			config = a + 9;
		} else if (a[0] == '-') {
			return usage_error(synopsis, "unknown option '%s'", a);
		} else {
			break;
		}
	}
	if (i >= c->argc)
		return usage_error(synopsis, "run needs a command");
	cmd = c->argv + i;
	if (config && access(config, R_OK) != 0) {
		errorf("--config %s: %s", config, strerror(errno));
		return EXIT_ERROR;
	}

	/*
	 * The command may chdir, and the daemon wants an absolute runtime_dir:
	 * hand both the directory as seen from here.
	 */
	if (c->runtime_dir[0] == '/') {
		snprintf(rt, sizeof(rt), "%s", c->runtime_dir);
	} else {
		char cwd[PATH_MAX];

		if (!getcwd(cwd, sizeof(cwd)) ||
		    snprintf(rt, sizeof(rt), "%s/%s", cwd, c->runtime_dir) >= (int)sizeof(rt)) {
			errorf("cannot make --runtime-dir %s absolute", c->runtime_dir);
			return EXIT_ERROR;
		}
	}

	if (find_file("libldmesh.so", "LDMESH_SHIM", shim_cands, ARRAY_SIZE(shim_cands), R_OK,
		      shim))
		return EXIT_ERROR;
	/* LD_PRELOAD splits on spaces and colons; such a path cannot be named. */
	if (strpbrk(shim, " :")) {
		errorf("the shim's path %s contains a space or ':', which LD_PRELOAD "
		       "cannot express",
		       shim);
		return EXIT_ERROR;
	}

	if (find_file("ldmesh-run", "LDMESH_RUN", run_cands, ARRAY_SIZE(run_cands), X_OK, launcher))
		return EXIT_ERROR;

	fd = unix_connect(rt, LDM_HANDOFF_SOCK, 1);
	if (fd >= 0) {
		/* A daemon serves this runtime dir already: become the command. */
		close(fd);
		if (config)
			errorf("note: ldmeshd already serves %s; --config %s is not used", rt,
			       config);
		return exec_in_mesh(cmd, launcher, shim, rt);
	}

	if (find_file("ldmeshd", "LDMESH_DAEMON", daemon_cands, ARRAY_SIZE(daemon_cands), X_OK,
		      ldmeshd))
		return EXIT_ERROR;
	dpid = daemon_start(ldmeshd, config, rt);
	if (dpid < 0)
		return EXIT_UNREACHABLE;
	rc = daemon_wait_ready(dpid, rt);
	if (rc)
		return rc;
	rc = run_child(cmd, launcher, shim, rt);
	daemon_stop(dpid);
	return rc;
}
