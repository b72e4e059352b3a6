/*
 * ldmesh-run: meshes a command and all its descendants, whatever they are
 * linked against.  The command runs under a seccomp filter that traps only
 * socket-setup calls (connect, bind, listen, accept, the two name calls and
 * getsockopt(SO_ERROR)); their notifications come here, to the launcher,
 * which stays the command's parent and performs each trapped call the way
 * the preloaded shim would, speaking the same handoff protocol to ldmeshd.
 *
 * The launcher never takes a file descriptor out of a meshed process
 * (pidfd_getfd needs CAP_SYS_PTRACE, which containers lack).  It creates
 * every socket it hands to the daemon itself and puts sockets into the
 * process with SECCOMP_IOCTL_NOTIF_ADDFD.  What it knows about a socket it
 * installed is keyed by the socket's inode, which dup, fork and exec keep.
 */
#ifndef LDMESH_RUN_H
#define LDMESH_RUN_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "exclude.h"
#include "ldmesh/common.h"
#include "ldmesh/proto.h"

struct run_cfg {
	char handoff_path[108];
	struct exclusions excl;
	int log_level; /* 0 off, 1 error, 2 info, 3 debug */
	int fail_open; /* LDMESH_FAIL_OPEN=1: connect without the mesh when no daemon */
	int wait_ready_ms; /* first handoff waits this long for the daemon */
};

#define RUN_ERR 1
#define RUN_INFO 2
#define RUN_DEBUG 3

void run_log(const struct run_cfg *cfg, int level, const char *fmt, ...) LDM_PRINTF(3, 4);

/* filter.c: in the child, before exec.  Returns the notification fd. */
int filter_install(void);

/* target.c: a trapped thread, seen through /proc. */
/* /proc/TID/mem of the thread whose call is being answered: opened at the
 * first access and closed once the call is answered (target_mem_release),
 * so a call costs one open however many arguments it reads or writes. */
struct target_mem {
	pid_t tid;
	int fd;
};
int target_read(struct target_mem *m, pid_t tid, uint64_t addr, void *buf, size_t len);
int target_write(struct target_mem *m, pid_t tid, uint64_t addr, const void *buf, size_t len);
void target_mem_release(struct target_mem *m);
/* Inode of the socket at fd in tid's fd table: 0 when fd is not a socket. */
uint64_t target_sock_ino(pid_t tid, int fd);
/* The socket's protocol name ("TCP", "TCPv6", "UDP", "UNIX-STREAM"...). */
int target_sock_proto(pid_t tid, int fd, char *buf, size_t len);
/* The open file's status flags (O_NONBLOCK) and close-on-exec flag. */
int target_fd_flags(pid_t tid, int fd, int *status_flags, int *cloexec);
pid_t target_tgid(pid_t tid);
/* Every socket inode held by a process other than `self` and `also`,
 * sorted, for the table's sweep.  Returns the count or -errno. */
long target_live_inodes(pid_t self, pid_t also, uint64_t **out);

/* daemonlink.c: the handoff protocol, as the shim speaks it. */
struct daemon_link {
	const struct run_cfg *cfg;
	uid_t daemon_uid; /* from SO_PEERCRED */
	pid_t daemon_pid;
	int ready_seen; /* the daemon answered once */
};
int dl_open(struct daemon_link *dl, const char *bind_name);
/* Hands TCP socket tcp to the daemon to dial dst; *app_end gets the Unix
 * end that takes the app's fd.  pid/app_fd say whose it is. */
int dl_connect(struct daemon_link *dl, int tcp, const struct ldm_addr *dst, uint64_t cookie,
	       int nonblock, pid_t pid, int app_fd, int *app_end);
int dl_query(struct daemon_link *dl, uint64_t cookie, struct ldm_status *st);
/* Registers listening socket tcp; returns the registration's link fd. */
int dl_listen(struct daemon_link *dl, int tcp, uint64_t id, const struct ldm_addr *addr,
	      int backlog, const char *name, pid_t pid);

/* socktab.c: what the launcher installed, keyed by socket inode. */
enum sock_kind {
	SK_BOUND, /* a TCP socket bound by us, neither listening nor connected */
	SK_LISTENER, /* a Unix listener in the app's hands; TCP side in the daemon */
	SK_CONN, /* the app end of an outbound connection */
	SK_ACCEPTED, /* an inbound connection, proxied by the daemon */
};

enum conn_state { CS_CONNECTING, CS_CONNECTED, CS_FAILED };

struct pending_conn {
	int fd; /* the Unix connection from the daemon, or the same-pod TCP socket */
	int is_tcp;
	struct ldm_addr peer, local;
	uint64_t conn_id;
	struct pending_conn *next;
};

struct sock_entry {
	uint64_t ino;
	enum sock_kind kind;
	int family; /* the app's socket domain */
	struct ldm_addr local, peer;
	/* SK_BOUND, SK_LISTENER: our reference to the TCP socket. */
	int tcp_fd;
	/* SK_LISTENER */
	int unix_fd; /* our reference to the app's listener */
	int link_fd; /* registration with the daemon, -1 while it is away */
	int backlog;
	uint64_t id;
	pid_t owner; /* tgid that called listen, for the daemon's logs */
	char name[LDM_LISTEN_NAME_MAX];
	struct pending_conn *stash; /* accepted, not yet delivered */
	/* SK_CONN */
	uint64_t cookie;
	enum conn_state state;
	int fail_err; /* positive errno of a failed dial */
	int err_reported; /* SO_ERROR said it (once, like the kernel) */
	int dial_fd; /* our reference to the app end while the dial is pending */
	/* SK_ACCEPTED: conn_id names it for the daemon */
	struct sock_entry *next;
};

#define SOCKTAB_BUCKETS 4096

struct socktab {
	struct sock_entry *b[SOCKTAB_BUCKETS];
	long count, count_after_sweep;
	int n_listeners, n_bound;
};

struct sock_entry *socktab_get(struct socktab *t, uint64_t ino);
struct sock_entry *socktab_add(struct socktab *t, uint64_t ino, enum sock_kind kind);
/* Unlinks and frees e, closing what it holds. */
void socktab_del(struct socktab *t, struct sock_entry *e);
/* Drops entries whose sockets no process but us (and the daemon) holds.
 * Returns the number dropped. */
long socktab_sweep(struct socktab *t, const struct run_cfg *cfg, pid_t daemon_pid);
/* Calls fn on every entry of kind k. */
void socktab_each(struct socktab *t, enum sock_kind k, void (*fn)(struct sock_entry *, void *),
		  void *arg);

/* supervise.c */
struct trap {
	uint64_t id;
	pid_t tid;
	int nr;
	uint64_t args[6];
};

struct parked;

struct supervisor {
	struct run_cfg cfg;
	struct daemon_link dl;
	struct socktab tab;
	struct target_mem mem;
	int notify_fd;
	struct parked *parked;
	int64_t next_sweep_ms, next_retry_ms;
};

/* Answers: a value or -errno; "do it yourself"; a new fd as the result. */
void trap_reply(struct supervisor *s, const struct trap *t, int64_t val);
void trap_continue(struct supervisor *s, const struct trap *t);
int trap_valid(struct supervisor *s, const struct trap *t);
/* Puts srcfd into the thread's process: at `at` (replacing what is there)
 * or, with at < 0, at the lowest free number as the call's result. */
int trap_install(struct supervisor *s, const struct trap *t, int srcfd, int at, int cloexec);
/* Waits for fd to show `events`, then calls calls_resume(s, t, e) again. */
int trap_park(struct supervisor *s, const struct trap *t, int fd, short events, uint64_t ino);
int supervise(struct supervisor *s, pid_t child, int sigfd, int *exit_status);

/* calls.c: one handler per trapped call; each answers the trap. */
void calls_dispatch(struct supervisor *s, const struct trap *t);
/* A parked call whose fd became ready (or whose wait must end). */
void calls_resume(struct supervisor *s, const struct trap *t, uint64_t ino);
/* Re-registers listeners the daemon lost; returns 1 if any is still down. */
int calls_retry_listeners(struct supervisor *s);
/* A registration link closed: the daemon went away. */
void calls_link_down(struct supervisor *s, struct sock_entry *e);

#endif
