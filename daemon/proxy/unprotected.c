/*
 * Unprotected listeners (unprotected.h): listening sockets in the pod that
 * the daemon does not hold.  The scan runs in the loop thread once a second
 * and costs one netlink dump of the listeners when nothing changed; /proc
 * is walked for an owner only when a listener is about to be reported.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proxy/proxy.h"
#include "util/log.h"
#include "util/strbuf.h"

#define PROC_LISTEN 0x0A /* TCP_LISTEN as /proc/net/tcp prints it */

static unsigned long long netns_ino(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (unsigned long long)st.st_ino : 0;
}

void unprotected_init(struct unprotected *u)
{
	memset(u, 0, sizeof(*u));
	/* Opened now, before the daemon is ready, so that its fd count stays
	 * flat from then on. */
	u->diag_fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (u->diag_fd < 0) {
		log_info("sock_diag unavailable (%s); listeners are read from /proc/self/net",
			 strerror(errno));
	}
	u->netns_ino = netns_ino("/proc/self/ns/net");
}

void unprotected_fini(struct unprotected *u)
{
	if (u->diag_fd >= 0) {
		close(u->diag_fd);
	}
	u->diag_fd = -1;
}

/* ---- what the daemon holds ------------------------------------------ */

static int held(const struct proxy *d, unsigned long long ino)
{
	int i;

	if (d->admin_fd >= 0 && d->admin_ino == ino) {
		return 1;
	}
	if (d->links.listen_fd >= 0 && d->links.listen_ino == ino) {
		return 1;
	}
	for (i = 0; i < LISTENERS_MAX; i++) {
		if (d->listeners[i].used && d->listeners[i].ino == ino) {
			return 1;
		}
	}
	return 0;
}

static int excluded(const struct config *cfg, uint16_t port)
{
	size_t i;

	for (i = 0; i < cfg->n_inbound_exclude_ports; i++) {
		if (cfg->inbound_exclude_ports[i] == port) {
			return 1;
		}
	}
	return 0;
}

/* ---- owners ----------------------------------------------------------- */

/* "(pid 1234 busybox)", or what we could not see. */
static void owner_format(const struct unprotected_listener *e, char *buf, size_t len)
{
	if (!e->pid) {
		snprintf(buf, len, "(owner not visible in /proc)");
	} else if (!e->comm[0]) {
		snprintf(buf, len, "(pid %d)", e->pid);
	} else {
		snprintf(buf, len, "(pid %d %s)", e->pid, e->comm);
	}
}

static void read_comm(int pid, char *comm, size_t len)
{
	char path[48];
	ssize_t n;
	int fd;

	comm[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return;
	}
	n = read(fd, comm, len - 1);
	close(fd);
	if (n <= 0) {
		return;
	}
	comm[n] = '\0';
	comm[strcspn(comm, "\n")] = '\0';
	/* A process names itself: keep log lines one line of text. */
	for (char *p = comm; *p; p++) {
		if (!isprint((unsigned char)*p)) {
			*p = '?';
		}
	}
}

/* 1 when the process pid has a descriptor whose link reads want. */
static int holds(long pid, const char *want, size_t want_len)
{
	char path[48], link[64];
	struct dirent *fe;
	DIR *fds;
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
	fds = opendir(path);
	if (!fds) {
		return 0; /* gone, or not ours to look at */
	}
	while (!found && (fe = readdir(fds))) {
		ssize_t n;

		if (fe->d_name[0] == '.') {
			continue;
		}
		n = readlinkat(dirfd(fds), fe->d_name, link, sizeof(link));
		found = n == (ssize_t)want_len && !memcmp(link, want, want_len);
	}
	closedir(fds);
	return found;
}

/*
 * The first process (lowest pid: usually the parent of forked workers) in
 * our network namespace with a descriptor on the socket.  Processes in
 * other namespaces are skipped by one stat each.  Nothing is found when
 * /proc does not show the pod's processes (no shared pid namespace) or
 * they belong to another uid and the daemon is not root.
 */
static void find_owner(const struct unprotected *u, struct unprotected_listener *e)
{
	char want[48], path[48];
	long self = (long)getpid();
	struct dirent *de;
	size_t want_len;
	DIR *proc;

	e->pid = 0;
	e->comm[0] = '\0';
	want_len = (size_t)snprintf(want, sizeof(want), "socket:[%llu]", e->sock.ino);
	proc = opendir("/proc");
	if (!proc) {
		return;
	}
	while (!e->pid && (de = readdir(proc))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end || pid <= 0 || pid == self) {
			continue;
		}
		snprintf(path, sizeof(path), "/proc/%ld/ns/net", pid);
		if (u->netns_ino && netns_ino(path) != u->netns_ino) {
			continue;
		}
		if (holds(pid, want, want_len)) {
			e->pid = (int)pid;
		}
	}
	closedir(proc);
	if (e->pid) {
		read_comm(e->pid, e->comm, sizeof(e->comm));
	}
}

/* ---- the table --------------------------------------------------------- */

static int find(const struct unprotected *u, unsigned long long ino)
{
	int i;

	for (i = 0; i < u->n; i++) {
		if (u->l[i].sock.ino == ino) {
			return i;
		}
	}
	return -1;
}

/* Drops entry i; a reported one says why it is no longer a hole. */
static void forget(struct unprotected *u, int i, const char *why)
{
	struct unprotected_listener *e = &u->l[i];

	if (e->reported) {
		char what[160];

		unprotected_describe(e, what, sizeof(what));
		log_info("unprotected listener %s gone: %s", what, why);
		u->n_reported--;
	}
	*e = u->l[--u->n];
}

static void report(struct unprotected *u, struct unprotected_listener *e)
{
	char what[160];

	find_owner(u, e);
	unprotected_describe(e, what, sizeof(what));
	log_warn("unprotected listener %s: plaintext, not meshed", what);
	e->reported = 1;
	u->n_reported++;
}

/* One listening socket from the kernel's list. */
static void consider(struct proxy *d, const struct unprotected_sock *s, int64_t due)
{
	struct unprotected *u = &d->unprot;
	struct unprotected_listener *e;
	int i;

	if (podaddr_is_loopback(&s->addr)) {
		return; /* only the pod itself can connect: the shim leaves it too */
	}
	i = find(u, s->ino);
	if (excluded(d->cfg, ntohs(s->addr.port))) {
		if (i >= 0) {
			forget(u, i, "its port is excluded now");
		}
		return;
	}
	if (held(d, s->ino)) {
		if (i >= 0) {
			forget(u, i, "ldmeshd holds it now");
		}
		return;
	}
	if (i >= 0) {
		u->l[i].seen = u->scan;
		return;
	}
	if (u->n == UNPROTECTED_MAX) {
		if (!u->full_logged) {
			log_warn("more than %d unprotected listeners; only the first %d are "
				 "reported",
				 UNPROTECTED_MAX, UNPROTECTED_MAX);
			u->full_logged = 1;
		}
		return;
	}
	e = &u->l[u->n++];
	memset(e, 0, sizeof(*e));
	e->sock = *s;
	e->due_ms = due;
	e->seen = u->scan;
}

/* ---- listing: sock_diag ------------------------------------------------ */

static void diag_to_sock(const struct inet_diag_msg *m, struct unprotected_sock *s)
{
	memset(s, 0, sizeof(*s));
	s->ino = m->idiag_inode;
	s->addr.family = m->idiag_family;
	s->addr.port = m->id.idiag_sport; /* network order, as in ldm_addr */
	memcpy(s->addr.addr, m->id.idiag_src, m->idiag_family == AF_INET6 ? 16 : 4);
}

/* Dumps the listeners of one family; the kernel filters by state. */
static int list_diag(struct proxy *d, int family, int64_t due)
{
	struct unprotected *u = &d->unprot;
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} msg;
	struct sockaddr_nl nl = {.nl_family = AF_NETLINK};
	long buf[16384 / sizeof(long)]; /* aligned for nlmsghdr */
	uint32_t seq = ++u->seq;

	memset(&msg, 0, sizeof(msg));
	msg.nlh.nlmsg_len = sizeof(msg);
	msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	msg.nlh.nlmsg_seq = seq;
	msg.req.sdiag_family = (uint8_t)family;
	msg.req.sdiag_protocol = IPPROTO_TCP;
	msg.req.idiag_states = 1u << TCP_LISTEN;
	if (sendto(u->diag_fd, &msg, sizeof(msg), 0, (struct sockaddr *)&nl, sizeof(nl)) < 0) {
		return -errno;
	}
	for (;;) {
		/* The kernel builds each part of a dump while the previous one
		 * is read, so there is always one waiting: never block the
		 * loop on it. */
		ssize_t n = recv(u->diag_fd, buf, sizeof(buf), MSG_DONTWAIT);
		const char *p = (const char *)buf;
		size_t left;

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			return -errno;
		}
		left = (size_t)n;
		while (left >= sizeof(struct nlmsghdr)) {
			const struct nlmsghdr *h = (const struct nlmsghdr *)p;
			size_t len = h->nlmsg_len;

			if (len < sizeof(*h) || len > left) {
				return -EBADMSG;
			}
			if (h->nlmsg_seq == seq) {
				if (h->nlmsg_type == NLMSG_DONE) {
					return 0;
				}
				if (h->nlmsg_type == NLMSG_ERROR) {
					const struct nlmsgerr *err = NLMSG_DATA(h);
					return len >= NLMSG_LENGTH(sizeof(*err)) && err->error < 0
						       ? err->error
						       : -EBADMSG;
				}
				if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
				    len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
					const struct inet_diag_msg *m = NLMSG_DATA(h);
					struct unprotected_sock s;

					if (m->idiag_state == TCP_LISTEN &&
					    m->idiag_family == family) {
						diag_to_sock(m, &s);
						consider(d, &s, due);
					}
				}
			}
			len = NLMSG_ALIGN(len);
			if (len > left) {
				len = left;
			}
			p += len;
			left -= len;
		}
	}
}

/* ---- listing: /proc/self/net ------------------------------------------- */

int unprotected_parse_proc_line(const char *line, int family, struct unprotected_sock *out)
{
	char local[33], word[9];
	unsigned int port, st;
	unsigned long long ino;
	size_t hexlen = family == AF_INET6 ? 32 : 8;

	while (*line == ' ') {
		line++;
	}
	if (!strncmp(line, "sl ", 3)) {
		return 0; /* the header */
	}
	if (sscanf(line,
		   "%*u: %32[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x %*x:%*x %*x:%*x %*x %*u %*d %llu",
		   local, &port, &st, &ino) != 4 ||
	    strlen(local) != hexlen || port > 65535) {
		return -EINVAL;
	}
	if (st != PROC_LISTEN) {
		return 0;
	}
	memset(out, 0, sizeof(*out));
	out->ino = ino;
	out->addr.family = (uint16_t)family;
	out->addr.port = htons((uint16_t)port);
	/* The kernel prints each 32-bit word of the address as it sits in
	 * memory, read as a host-order integer: storing the integer back in
	 * host order gives the address bytes again. */
	for (size_t k = 0; k < hexlen / 8; k++) {
		uint32_t w;

		memcpy(word, local + 8 * k, 8);
		word[8] = '\0';
		w = (uint32_t)strtoul(word, NULL, 16);
		memcpy(out->addr.addr + 4 * k, &w, 4);
	}
	return 1;
}

static int list_proc(struct proxy *d, int family, int64_t due)
{
	const char *path = family == AF_INET6 ? "/proc/self/net/tcp6" : "/proc/self/net/tcp";
	struct unprotected_sock s;
	char line[512];
	FILE *f;

	f = fopen(path, "re");
	if (!f) {
		/* No tcp6 in a kernel without IPv6: nothing listens there. */
		return errno == ENOENT && family == AF_INET6 ? 0 : -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		if (unprotected_parse_proc_line(line, family, &s) == 1) {
			consider(d, &s, due);
		}
	}
	fclose(f);
	return 0;
}

/* ---- the scan ----------------------------------------------------------- */

static int list_all(struct proxy *d, int64_t due)
{
	struct unprotected *u = &d->unprot;
	int r = 0;

	if (u->diag_fd >= 0) {
		r = list_diag(d, AF_INET, due);
		if (r == 0) {
			r = list_diag(d, AF_INET6, due);
		}
		if (r == 0) {
			return 0;
		}
		/* Seen entries stay seen: reading again from /proc is safe. */
		log_info("sock_diag dump failed (%s); listeners are read from /proc/self/net "
			 "from now on",
			 strerror(-r));
		close(u->diag_fd);
		u->diag_fd = -1;
	}
	r = list_proc(d, AF_INET, due);
	if (r == 0) {
		r = list_proc(d, AF_INET6, due);
	}
	return r;
}

void unprotected_scan(struct proxy *d, int64_t now)
{
	struct unprotected *u = &d->unprot;
	int64_t grace = u->scan ? UNPROTECTED_GRACE_MS : UNPROTECTED_START_GRACE_MS;
	int i, r;

	if (d->draining) {
		return; /* the listeners go back to their shims now */
	}
	u->scan++;
	r = list_all(d, now + grace);
	if (r < 0) {
		/* A partial list would make listeners look closed. */
		if (!u->fail_logged) {
			log_warn("cannot list listening sockets (%s); unprotected listeners are "
				 "not reported",
				 strerror(-r));
			u->fail_logged = 1;
		}
		return;
	}
	u->fail_logged = 0;
	for (i = u->n - 1; i >= 0; i--) {
		if (u->l[i].seen != u->scan) {
			forget(u, i, "closed");
		}
	}
	for (i = 0; i < u->n; i++) {
		if (!u->l[i].reported && now >= u->l[i].due_ms) {
			report(u, &u->l[i]);
		}
	}
}

void unprotected_describe(const struct unprotected_listener *e, char *buf, size_t len)
{
	char where[80], owner[64];

	addr_format(&e->sock.addr, where, sizeof(where));
	owner_format(e, owner, sizeof(owner));
	snprintf(buf, len, "%s %s", where, owner);
}

void unprotected_json(const struct unprotected_listener *e, struct strbuf *b)
{
	char where[80];

	addr_format(&e->sock.addr, where, sizeof(where));
	sb_printf(b, "\"addr\":\"%s\",\"port\":%u,\"inode\":%llu,", where, ntohs(e->sock.addr.port),
		  e->sock.ino);
	if (e->pid) {
		sb_printf(b, "\"pid\":%d,\"command\":", e->pid);
		sb_json_str(b, e->comm);
	} else {
		sb_printf(b, "\"pid\":null,\"command\":null");
	}
}

void unprotected_render(const struct unprotected *u, struct strbuf *b, int json)
{
	int i, first = 1;

	if (json) {
		sb_printf(b, "[");
	}
	for (i = 0; i < u->n; i++) {
		const struct unprotected_listener *e = &u->l[i];
		char what[160];

		if (!e->reported) {
			continue;
		}
		if (json) {
			sb_printf(b, "%s{", first ? "" : ",");
			unprotected_json(e, b);
			sb_printf(b, "}");
		} else {
			unprotected_describe(e, what, sizeof(what));
			sb_printf(b, "  %s: plaintext, not meshed\n", what);
		}
		first = 0;
	}
	if (json) {
		sb_printf(b, "]");
	}
}
