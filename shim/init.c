/*
 * Shim start-up: resolve libc's symbols once, read the environment, decide
 * whether this process is managed at all.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "ldmesh/addr.h"
#include "shim.h"

struct shim_state shim = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.wake_rd = -1,
	.wake_wr = -1,
};
struct shim_real real;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* Resolves a libc symbol; refuses one that resolves back into the shim. */
static void *resolve(const char *name, void *self)
{
	void *p = dlsym(RTLD_NEXT, name);

	if (p == self) {
		p = NULL;
	}
	if (!p) {
		shim_log(SHIM_DEBUG, "cannot resolve %s", name);
	}
	return p;
}

extern int connect(int, const struct sockaddr *, socklen_t);
extern int listen(int, int);
extern int accept(int, struct sockaddr *, socklen_t *);
extern int accept4(int, struct sockaddr *, socklen_t *, int);
extern int getpeername(int, struct sockaddr *, socklen_t *);
extern int getsockname(int, struct sockaddr *, socklen_t *);
extern int getsockopt(int, int, int, void *, socklen_t *);
extern int setsockopt(int, int, int, const void *, socklen_t);
extern int close_range(unsigned int, unsigned int, int);
extern int fcntl64(int, int, ...);

static void resolve_all(void)
{
	real.connect = resolve("connect", (void *)connect);
	real.listen = resolve("listen", (void *)listen);
	real.accept = resolve("accept", (void *)accept);
	real.accept4 = resolve("accept4", (void *)accept4);
	real.getpeername = resolve("getpeername", (void *)getpeername);
	real.getsockname = resolve("getsockname", (void *)getsockname);
	real.getsockopt = resolve("getsockopt", (void *)getsockopt);
	real.setsockopt = resolve("setsockopt", (void *)setsockopt);
	real.close = resolve("close", (void *)close);
	real.close_range = resolve("close_range", (void *)close_range);
	real.dup = resolve("dup", (void *)dup);
	real.dup2 = resolve("dup2", (void *)dup2);
	real.dup3 = resolve("dup3", (void *)dup3);
	real.fcntl = resolve("fcntl", (void *)fcntl);
	real.fcntl64 = resolve("fcntl64", (void *)fcntl64);
	if (!real.fcntl64) {
		real.fcntl64 = real.fcntl;
	}
}

/* Environment overrides are ignored in setuid/setgid programs. */
static const char *env(const char *name)
{
	return getauxval(AT_SECURE) ? NULL : getenv(name);
}

/* Set by ldmeshd (exported with -rdynamic): the daemon never runs the shim. */
static int in_daemon(void)
{
	return dlsym(RTLD_DEFAULT, "ldmeshd_is_daemon") != NULL;
}

static void atfork_prepare(void)
{
	pthread_mutex_lock(&shim.lock);
}

static void atfork_parent(void)
{
	pthread_mutex_unlock(&shim.lock);
}

static void atfork_child(void)
{
	pthread_mutex_unlock(&shim.lock);
	/* The monitor thread did not come along; the next hook restarts it. */
	shim.pid = getpid();
}

static void do_init(void)
{
	char bad[64];
	const char *v;

	resolve_all();
	v = env("LDMESH_LOG");
	shim.log_level = SHIM_ERR;
	if (v) {
		if (!strcmp(v, "off") || !strcmp(v, "0")) {
			shim.log_level = 0;
		} else if (!strcmp(v, "info")) {
			shim.log_level = SHIM_INFO;
		} else if (!strcmp(v, "debug")) {
			shim.log_level = SHIM_DEBUG;
		}
	}
	if (!real.connect || !real.listen || !real.accept4 || !real.close || !real.dup3 ||
	    !real.fcntl || !real.getsockopt || !real.setsockopt || in_daemon()) {
		return;
	}
	v = env("LDMESH_RUNTIME_DIR");
	if (!v || !*v) {
		v = LDM_DEFAULT_RUNTIME_DIR;
	}
	if (snprintf(shim.handoff_path, sizeof(shim.handoff_path), "%s/%s", v, LDM_HANDOFF_SOCK) >=
	    (int)sizeof(shim.handoff_path)) {
		shim_log(SHIM_ERR, "LDMESH_RUNTIME_DIR too long: %s", v);
		return;
	}
	v = env("LDMESH_FAIL_OPEN");
	shim.fail_open = v && !strcmp(v, "1");
	v = env("LDMESH_WAIT_READY_MS");
	shim.wait_ready_ms = v ? atoi(v) : 30000;
	if (shim.wait_ready_ms < 0) {
		shim.wait_ready_ms = 0;
	}
	if (excl_parse_ports(&shim.excl, env("LDMESH_EXCLUDE_PORTS"), bad, sizeof(bad)) < 0) {
		shim_log(SHIM_ERR, "LDMESH_EXCLUDE_PORTS: bad range '%s'", bad);
	}
	if (excl_parse_cidrs(&shim.excl, env("LDMESH_EXCLUDE_CIDRS"), bad, sizeof(bad)) < 0) {
		shim_log(SHIM_ERR, "LDMESH_EXCLUDE_CIDRS: bad address or prefix '%s'", bad);
	}
	/* Under ldmesh-run, listeners are the launcher's (shim/run/). */
	v = env("LDMESH_SUPERVISED");
	shim.supervised = v && !strcmp(v, "1");
	if (fdtab_init() < 0) {
		shim_log(SHIM_ERR, "cannot allocate the fd table; shim disabled");
		return;
	}
	shim.pid = getpid();
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	shim.active = 1;
}

void shim_init(void)
{
	pthread_once(&init_once, do_init);
}

__attribute__((constructor)) static void shim_ctor(void)
{
	shim_init();
}

void shim_log(int level, const char *fmt, ...)
{
	char buf[512];
	int n, saved = errno;
	va_list ap;

	if (level > shim.log_level) {
		return;
	}
	n = snprintf(buf, sizeof(buf), "ldmesh[%d]: ", (int)getpid());
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2) {
		n = (int)sizeof(buf) - 2;
	}
	buf[n++] = '\n';
	/* One write, so lines from threads do not interleave. */
	if (write(STDERR_FILENO, buf, (size_t)n) < 0) {
		/* Nothing sensible to do when stderr is gone. */
	}
	errno = saved;
}

void shim_lock(sigset_t *saved)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, saved);
	pthread_mutex_lock(&shim.lock);
}

void shim_unlock(const sigset_t *saved)
{
	pthread_mutex_unlock(&shim.lock);
	pthread_sigmask(SIG_SETMASK, saved, NULL);
}

int shim_bypass(const struct ldm_addr *a)
{
	return excl_bypass(&shim.excl, a);
}

int shim_sockaddr_to_ldm(const struct sockaddr *sa, socklen_t len, struct ldm_addr *out)
{
	return ldm_addr_from_sockaddr(sa, len, out);
}

socklen_t shim_ldm_to_sockaddr(const struct ldm_addr *a, int family, struct sockaddr_storage *out)
{
	return ldm_addr_to_sockaddr(a, family, out);
}

void shim_copy_addr(const struct sockaddr_storage *src, socklen_t srclen, struct sockaddr *addr,
		    socklen_t *len)
{
	if (!addr || !len) {
		return;
	}
	memcpy(addr, src, *len < srclen ? *len : srclen);
	*len = srclen;
}
