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

static void parse_ports(const char *s)
{
	while (s && *s && shim.n_excl_ports < SHIM_MAX_RANGES) {
		char *end;
		unsigned long lo = strtoul(s, &end, 10), hi = lo;

		if (end == s) {
			break;
		}
		if (*end == '-') {
			const char *h = end + 1;
			hi = strtoul(h, &end, 10);
		}
		if (lo >= 1 && hi <= 65535 && lo <= hi) {
			shim.excl_port_lo[shim.n_excl_ports] = (uint16_t)lo;
			shim.excl_port_hi[shim.n_excl_ports] = (uint16_t)hi;
			shim.n_excl_ports++;
		} else {
			shim_log(SHIM_ERR, "LDMESH_EXCLUDE_PORTS: bad range near '%s'", s);
		}
		s = strchr(end, ',');
		if (s) {
			s++;
		}
	}
}

static void parse_cidrs(const char *s)
{
	char buf[64];

	while (s && *s && shim.n_excl_cidrs < SHIM_MAX_RANGES) {
		size_t n = strcspn(s, ",");
		struct shim_cidr *c = &shim.excl_cidrs[shim.n_excl_cidrs];
		char *slash;
		int maxlen;

		if (n >= sizeof(buf)) {
			n = sizeof(buf) - 1;
		}
		memcpy(buf, s, n);
		buf[n] = '\0';
		s += n + (s[n] == ',');
		slash = strchr(buf, '/');
		if (slash) {
			*slash = '\0';
		}
		if (inet_pton(AF_INET, buf, c->addr) == 1) {
			c->family = AF_INET;
			maxlen = 32;
		} else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
			c->family = AF_INET6;
			maxlen = 128;
		} else {
			shim_log(SHIM_ERR, "LDMESH_EXCLUDE_CIDRS: bad address '%s'", buf);
			continue;
		}
		c->prefix_len = slash ? atoi(slash + 1) : maxlen;
		if (c->prefix_len < 0 || c->prefix_len > maxlen) {
			shim_log(SHIM_ERR, "LDMESH_EXCLUDE_CIDRS: bad prefix for '%s'", buf);
			continue;
		}
		shim.n_excl_cidrs++;
	}
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
	parse_ports(env("LDMESH_EXCLUDE_PORTS"));
	parse_cidrs(env("LDMESH_EXCLUDE_CIDRS"));
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

static int cidr_match(const struct shim_cidr *c, const uint8_t *addr)
{
	int full = c->prefix_len / 8, rest = c->prefix_len % 8;

	if (memcmp(c->addr, addr, (size_t)full)) {
		return 0;
	}
	if (rest) {
		uint8_t mask = (uint8_t)(0xff << (8 - rest));
		return (c->addr[full] & mask) == (addr[full] & mask);
	}
	return 1;
}

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int shim_bypass(const struct ldm_addr *a)
{
	int family = a->family;
	const uint8_t *ip = a->addr;
	uint16_t port = ntohs(a->port);
	int i;

	if (family == AF_INET6 && !memcmp(ip, v4mapped_prefix, 12)) {
		family = AF_INET;
		ip += 12;
	}
	if (family == AF_INET && (ip[0] == 127 || !memcmp(ip, "\0\0\0\0", 4))) {
		return 1;
	}
	if (family == AF_INET6 && (IN6_IS_ADDR_LOOPBACK((const struct in6_addr *)ip) ||
				   IN6_IS_ADDR_UNSPECIFIED((const struct in6_addr *)ip))) {
		return 1;
	}
	for (i = 0; i < shim.n_excl_ports; i++) {
		if (port >= shim.excl_port_lo[i] && port <= shim.excl_port_hi[i]) {
			return 1;
		}
	}
	for (i = 0; i < shim.n_excl_cidrs; i++) {
		if (shim.excl_cidrs[i].family == family && cidr_match(&shim.excl_cidrs[i], ip)) {
			return 1;
		}
	}
	return 0;
}

int shim_sockaddr_to_ldm(const struct sockaddr *sa, socklen_t len, struct ldm_addr *out)
{
	return ldm_addr_from_sockaddr(sa, len, out);
}

/*
 * Builds a sockaddr for an app whose socket domain is `family`: an IPv4
 * address shown to an AF_INET6 socket becomes ::ffff:a.b.c.d, as the kernel
 * would report it.
 */
socklen_t shim_ldm_to_sockaddr(const struct ldm_addr *a, int family, struct sockaddr_storage *out)
{
	memset(out, 0, sizeof(*out));
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = a->port;
		if (a->family == AF_INET) {
			memcpy(&s6->sin6_addr, v4mapped_prefix, 12);
			memcpy((uint8_t *)&s6->sin6_addr + 12, a->addr, 4);
		} else {
			memcpy(&s6->sin6_addr, a->addr, 16);
			s6->sin6_scope_id = a->scope_id;
		}
		return sizeof(*s6);
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)out;
	s4->sin_family = AF_INET;
	s4->sin_port = a->port;
	if (a->family == AF_INET6) {
		memcpy(&s4->sin_addr, a->addr + 12, 4); /* v4-mapped */
	} else {
		memcpy(&s4->sin_addr, a->addr, 4);
	}
	return sizeof(*s4);
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
