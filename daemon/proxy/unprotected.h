/*
 * Unprotected listeners: TCP sockets listening in the pod's network
 * namespace that the daemon does not hold, on an address other than
 * loopback and a port the config does not exclude.  Whatever they serve
 * reaches them in plaintext, past mTLS and policy: a program that bypasses
 * the shim (static, Go, raw syscalls) or was started without it.
 *
 * About once a second the daemon lists the namespace's listening sockets
 * (sock_diag over netlink, which the kernel filters to listeners, so the
 * cost does not grow with the number of connections; /proc/self/net/tcp
 * and tcp6 when netlink is unavailable) and compares their inodes with the
 * sockets it holds.  A socket must stay unheld for UNPROTECTED_GRACE_MS,
 * two consecutive scans, before it is reported, so a listener whose
 * handoff is in flight is never reported; sockets already listening when
 * the daemon starts get UNPROTECTED_START_GRACE_MS, the longest a shim
 * waits before it hands its listeners to a restarted daemon.  Each is
 * logged once when reported (with the pid and command holding it, looked
 * up in /proc then and only then) and once when it goes away.
 */
#ifndef LDMESH_UNPROTECTED_H
#define LDMESH_UNPROTECTED_H

#include <stddef.h>
#include <stdint.h>

#include "ldmesh/proto.h"

/* Listeners tracked at once (pending and reported); more are logged once. */
#define UNPROTECTED_MAX 256
#define UNPROTECTED_GRACE_MS 1000
/* The shim re-registers a listener after 200 ms, doubling up to 6.4 s. */
#define UNPROTECTED_START_GRACE_MS 8000
#define UNPROTECTED_COMM_MAX 16 /* TASK_COMM_LEN */

/* One listening socket as the kernel lists it. */
struct unprotected_sock {
	unsigned long long ino;
	struct ldm_addr addr; /* local address and port */
};

struct unprotected_listener {
	struct unprotected_sock sock;
	int64_t due_ms; /* reported if still unheld at a scan from then on */
	uint32_t seen; /* the scan that last found it */
	int reported;
	int pid; /* a process holding it, 0: none visible in /proc */
	char comm[UNPROTECTED_COMM_MAX]; /* its /proc/PID/comm, "" when unknown */
};

struct unprotected {
	int diag_fd; /* owned NETLINK_SOCK_DIAG socket; -1: read /proc/self/net */
	uint32_t scan; /* scans done */
	uint32_t seq; /* netlink request sequence */
	unsigned long long netns_ino; /* our network namespace, 0: unknown */
	int n; /* entries in l[] */
	int n_reported;
	int full_logged, fail_logged;
	struct unprotected_listener l[UNPROTECTED_MAX];
};

struct proxy;
struct strbuf;

/* Opens the netlink socket (falling back to /proc when it cannot). */
void unprotected_init(struct unprotected *u);
/* Closes what init opened; a second call does nothing. */
void unprotected_fini(struct unprotected *u);

/*
 * One scan: lists the listening sockets, tracks the unheld ones, logs those
 * that outlived their grace and those that went away.  Does nothing while
 * the daemon drains (it lets go of its listeners then).  The first scan
 * gives what it finds UNPROTECTED_START_GRACE_MS.
 */
void unprotected_scan(struct proxy *d, int64_t now);

/* Reported listeners: the gauge ldmesh_unprotected_listeners. */
static inline int unprotected_count(const struct unprotected *u)
{
	return u->n_reported;
}

/* "0.0.0.0:8081 (pid 1234 busybox)": the address and who holds it. */
void unprotected_describe(const struct unprotected_listener *e, char *buf, size_t len);

/* Appends e's JSON members, without braces: addr, port, inode, pid and
 * command (null when no process was found). */
void unprotected_json(const struct unprotected_listener *e, struct strbuf *b);

/*
 * Appends the reported listeners: in json a JSON array of objects (see
 * unprotected_json); in text one line each, indented by two spaces,
 * "ADDR (pid PID COMM): plaintext, not meshed".
 */
void unprotected_render(const struct unprotected *u, struct strbuf *b, int json);

/*
 * Parses one line of /proc/net/tcp (family AF_INET) or tcp6 (AF_INET6).
 * Returns 1 and fills out for a socket in LISTEN state, 0 for any other
 * state or the header line, -EINVAL for a line it cannot read.
 */
int unprotected_parse_proc_line(const char *line, int family, struct unprotected_sock *out);

#endif
