/*
 * Internal interface of libldmesh.so, the LD_PRELOAD shim.
 *
 * The shim hands the app's TCP sockets to ldmeshd and puts a Unix socket
 * connected to the daemon on the app's fd number.  Only connect, listen,
 * accept and the calls that must keep TCP semantics on a handed-off fd are
 * hooked; read/write/poll on the fd are plain kernel calls.
 */
#ifndef LDMESH_SHIM_H
#define LDMESH_SHIM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "ldmesh/common.h"
#include "ldmesh/proto.h"
#include "exclude.h"
#include "wire.h"

#define SHIM_EXPORT __attribute__((visibility("default")))

/* libc's functions, resolved once with dlsym(RTLD_NEXT). */
struct shim_real {
	int (*connect)(int, const struct sockaddr *, socklen_t);
	int (*listen)(int, int);
	int (*accept)(int, struct sockaddr *, socklen_t *);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	int (*getpeername)(int, struct sockaddr *, socklen_t *);
	int (*getsockname)(int, struct sockaddr *, socklen_t *);
	int (*getsockopt)(int, int, int, void *, socklen_t *);
	int (*setsockopt)(int, int, int, const void *, socklen_t);
	int (*close)(int);
	int (*close_range)(unsigned int, unsigned int, int);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*fcntl)(int, int, ...);
	int (*fcntl64)(int, int, ...);
};

/* A listening socket handed to the daemon; shared by dups and forks. */
struct listener_reg {
	int refs; /* under shim.lock */
	uint64_t id; /* random, names the registration in the daemon */
	int tcp_fd; /* owned, hidden: the real listening TCP socket */
	int link_fd; /* owned, hidden: registration connection, -1 when down */
	int backlog;
	struct ldm_addr addr;
	char name[LDM_LISTEN_NAME_MAX]; /* abstract name of the app's Unix listener */
	struct listener_reg *next; /* shim.listeners */
};

enum managed_kind { MANAGED_CONN, MANAGED_LISTENER };

#define MANAGED_MAX_OPTS 8

/* What the shim knows about a handed-off fd; shared by dup'ed fds. */
struct managed {
	int refs; /* under shim.lock */
	enum managed_kind kind;
	int family; /* the app's socket domain: AF_INET or AF_INET6 */
	int connecting; /* outbound dial not yet confirmed */
	int failed; /* dial failed, error already reported */
	int fail_err; /* positive errno of a failed dial */
	int linger0; /* SO_LINGER {1, 0}: closing means reset */
	uint64_t cookie; /* outbound: ours; inbound: the preamble's conn_id */
	struct sockaddr_storage peer, local;
	socklen_t peer_len, local_len; /* 0: unknown */
	struct listener_reg *reg; /* MANAGED_LISTENER: owned reference */
	struct {
		int level, name, val;
	} opts[MANAGED_MAX_OPTS];
	int n_opts;
};

struct shim_state {
	int active; /* 0 inside ldmeshd or when init failed */
	int log_level; /* 0 off, 1 error, 2 info, 3 debug */
	int fail_open;
	int wait_ready_ms;
	atomic_int ready_seen; /* the daemon answered once in this process */
	char handoff_path[108];
	int supervised; /* under ldmesh-run, which takes listeners */
	struct exclusions excl;

	pthread_mutex_t lock; /* table, managed entries, listeners */
	_Atomic(struct managed *) *slots; /* fd -> entry; mmap'ed, cap entries */
	int cap;
	atomic_int any_managed;
	struct listener_reg *listeners;
	uid_t daemon_uid; /* from SO_PEERCRED on the last link */

	pid_t pid; /* updated in the fork child */
	pid_t monitor_pid; /* process whose monitor thread runs, 0: none */
	int wake_rd, wake_wr; /* hidden pipe that wakes the monitor */
};

extern struct shim_state shim;
extern struct shim_real real;

/* A slot value that marks one of the shim's own hidden fds. */
#define SHIM_HIDDEN ((struct managed *)(uintptr_t)1)

/* init.c */
void shim_init(void);
void shim_log(int level, const char *fmt, ...) LDM_PRINTF(2, 3);
#define SHIM_ERR 1
#define SHIM_INFO 2
#define SHIM_DEBUG 3
/* 1 when the destination must be left alone (loopback, excluded). */
int shim_bypass(const struct ldm_addr *a);
int shim_sockaddr_to_ldm(const struct sockaddr *sa, socklen_t len, struct ldm_addr *out);
socklen_t shim_ldm_to_sockaddr(const struct ldm_addr *a, int family, struct sockaddr_storage *out);
/* Copies src to the caller's (addr, *len) with kernel truncation rules. */
void shim_copy_addr(const struct sockaddr_storage *src, socklen_t srclen, struct sockaddr *addr,
		    socklen_t *len);
/* Blocks every signal while the shim lock is held (close is async-signal-safe). */
void shim_lock(sigset_t *saved);
void shim_unlock(const sigset_t *saved);

/* fdtab.c: all under shim.lock unless noted. */
int fdtab_init(void);
/* Lock-free: 1 when fd may be managed or hidden (a hint, confirm under lock). */
int fdtab_maybe(int fd);
struct managed *fdtab_lookup(int fd); /* no reference taken */
int fdtab_is_hidden(int fd);
int fdtab_set(int fd, struct managed *m); /* takes a reference on m */
struct managed *fdtab_take(int fd); /* removes, returns the table's reference */
void fdtab_mark_hidden(int fd);
void fdtab_clear_hidden(int fd);
struct managed *managed_new(enum managed_kind kind, int family);
void managed_put(struct managed *m); /* drops a reference, frees at zero */
/* Moves hidden fd `fd` to another number; returns the new one or -errno. */
int fdtab_relocate_hidden(int fd);

/* link.c */
/* Connects to the daemon's handoff socket; waits for readiness the first time. */
int link_open(int wait, const char *bind_name);
/* Asks the daemon about connection `cookie`; fills st. */
int link_query(uint64_t cookie, struct ldm_status *st);
/* Asks the daemon to abort connection `cookie` with a TCP reset. */
int link_reset(uint64_t cookie);
/* Registers a listener; on failure the monitor thread retries. */
int link_register_listener(struct listener_reg *reg, int wait);
void link_monitor_ensure(void);
void link_monitor_wake(void);
void listener_put_locked(struct listener_reg *reg);

/* rehydrate.c */
/* For an fd inherited across exec: rebuilds its entry from the socket's
 * abstract name.  Called with shim.lock held; NULL when not ours. */
struct managed *rehydrate(int fd);

/* hook_connect.c */
/* Resolves a pending dial: 0 connected, -EINPROGRESS pending, -errno failed. */
int connect_check(int fd, struct managed *m);

#endif
