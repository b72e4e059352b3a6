/*
 * The data plane's state: connections, the listeners apps handed over,
 * the shim's handoff socket, and what they count.  The daemon owns one
 * (struct ldmeshd, ldmeshd.h) and lends it the shared services: the loop,
 * the config, the identity, policy, telemetry and the access log.
 * Everything in daemon/proxy/ takes it as its first argument.
 */
#ifndef LDMESH_PROXY_H
#define LDMESH_PROXY_H

#include <pthread.h>
#include <stdint.h>

#include "config/config.h"
#include "identity/identity.h"
#include "loop/loop.h"
#include "policy/policy.h"
#include "proxy/balance.h"
#include "proxy/dns.h"
#include "proxy/conn.h"
#include "proxy/links.h"
#include "proxy/podaddr.h"
#include "proxy/unprotected.h"
#include "telemetry/accesslog.h"
#include "telemetry/telemetry.h"

#define LISTENERS_MAX 1024
#define DIAL_RESULTS 1024

/* A TCP listener an app handed over, shared by every process that holds it. */
struct listener {
	int used;
	int closing;
	uint32_t gen;
	uint64_t id;
	int tcp_fd; /* owned */
	int links; /* registration links still open */
	int armed; /* an accept is in flight */
	int64_t retry_ms; /* accept failed (EMFILE): re-arm at this time */
	uint32_t pid;
	struct ldm_addr addr;
	char name[LDM_LISTEN_NAME_MAX];
	uint64_t accepted;
	int takes_socket; /* LDM_HF_TAKES_SOCKET: same-pod sockets go to the app */
	unsigned long long ino; /* tcp_fd's socket inode, which unprotected.c looks for */
	/* Other event loops holding registrations of it (listener_mirror()):
	 * the entry lives while links + mirrors > 0. */
	int mirrors;
};

/* What a finished dial produced, for the shim's LDM_OP_QUERY. */
struct dial_result {
	uint64_t cookie;
	int err; /* -EINPROGRESS while the loop that owns it dials */
	struct ldm_addr local, peer;
};

/* The dials of every event loop: a query may reach any loop.  Taken once per
 * dial and per query, never on the data path. */
struct dial_table {
	pthread_mutex_t lock;
	struct dial_result dials[DIAL_RESULTS];
	uint32_t next;
};

/* What accepted a connection another loop may serve (proxy->spread). */
enum spread_kind {
	SPREAD_HANDOFF, /* the shim's handoff socket */
	SPREAD_LISTENER, /* an app's listener; key: its listener id */
	SPREAD_LINK, /* the link listener (links between daemons) */
};

/* What a connection was doing when a deadline closed it. */
enum timeout_stage {
	TIMEOUT_TLS_HANDSHAKE, /* connect_timeout_ms: a peer that never finishes */
	TIMEOUT_HTTP_HEAD, /* http_head_timeout_ms: a request head trickling in */
	TIMEOUT_DIAL, /* connect_timeout_ms: an outbound dial */
	TIMEOUT_IDLE, /* idle_timeout_ms */
	TIMEOUT_CONTROL, /* a shim, ctl or admin client that sends no request */
	TIMEOUT_COUNT,
};
const char *timeout_stage_name(enum timeout_stage s);

struct proxy_stats {
	uint64_t handoffs_total; /* CONNECT handoffs accepted */
	uint64_t handoff_errors_total; /* malformed or refused shim messages */
	uint64_t ctl_errors_total;
	uint64_t inbound_total, outbound_total;
	uint64_t dial_errors_total;
	uint64_t egress_denied_total;
	/* [0] inbound, [1] outbound */
	uint64_t handshakes_total[2];
	uint64_t handshakes_resumed_total[2];
	uint64_t handshake_errors_total[2][TLS_REASON_COUNT];
	uint64_t plaintext_refused_total; /* strict port, client without TLS */
	uint64_t plaintext_accepted_total; /* permissive port, client without TLS */
	uint64_t timeouts_total[TIMEOUT_COUNT]; /* by enum timeout_stage */
	uint64_t h2c_upgrades_stripped_total; /* upgrade.h */
	/* inbound: first lines held undecided (up to L7_DETECT_MS), and
	 * connections to opaque ports, which get no HTTP layer at all */
	uint64_t http_detect_held_total, opaque_inbound_total;
	/* same-pod connections to held listeners: the TCP socket handed to
	 * the app, or proxied (a shim that cannot take it, or an outbound
	 * dial to the pod's own address) */
	uint64_t same_pod_handed_total, same_pod_proxied_total;
};

struct proxy {
	/* Lent by the daemon, which swaps cfg and policy on a reload. */
	struct config *cfg;
	struct loop *loop;
	struct identity *id; /* id->tls: NULL without identity */
	struct policy_set *policy;
	struct telemetry *tel;
	struct accesslog *alog;

	/* Set by the daemon, which may run several event loops (workers), each
	 * with its own struct proxy; all NULL or 0 with one. */
	void *owner; /* the daemon, for the handlers it registers (ldmeshd_of()) */
	int worker; /* this loop's index */
	struct dial_table *dial_tab; /* borrowed, shared by the loops */
	/* Offered every accepted connection: returns 1 when another loop took
	 * fd (it serves it from *_adopt()), 0 to serve it here. */
	int (*spread)(struct proxy *d, enum spread_kind kind, uint64_t key, int fd);
	/* This loop's first registration of a listener (added 1), or its last
	 * one closed (added 0): the other loops mirror it. */
	void (*listener_observer)(struct proxy *d, const struct listener *l, int added);
	/* A shim's LDM_OP_RESET for a connection this loop does not hold:
	 * returns 0 when it took reply_fd (another loop answers on it once
	 * every loop looked), -errno otherwise. */
	int (*reset_elsewhere)(struct proxy *d, uint64_t cookie, int reply_fd);

	conn_done_fn conn_handlers[UD_TAG_COUNT]; /* conn_set_handler() */
	conn_dial_fn dial_observer; /* conn_set_dial_observer() */
	struct policy_counts counts; /* ldmesh_policy_decisions_total */
	struct podaddr pod; /* the pod's own addresses, cached */
	int draining; /* no new connections (the daemon drains) */

	int handoff_fd; /* owned, -1 while draining */
	char handoff_path[128];
	unsigned long long handoff_ino; /* of the socket file we made */
	int handoff_armed;
	int64_t handoff_retry_ms; /* accept re-arm after EMFILE */
	int64_t listener_retry_ms; /* earliest listener re-arm due, 0: none */
	/* The daemon's admin listener, which is ours, not an unprotected one. */
	int admin_fd;
	unsigned long long admin_ino;

	struct conn **conns; /* slot -> conn, NULL when free */
	uint32_t nslots, live;
	uint32_t gen_counter;
	int l7_detect_armed; /* some connection holds an undecided first line */
	int64_t rt_next_ms; /* the next deadline of routed requests (route_tick), 0: none */
	uint32_t *free_slots;
	uint32_t nfree;
	uint32_t live_by_kind[CONN_KINDS];
	uint32_t parked; /* idle connections holding no buffers (park.c) */
	/* Since the heap was last trimmed (park.c): connections parked, links
	 * freed, the most connections live at once; and the first two's sum
	 * at the last sweep. */
	uint32_t parked_untrimmed, links_untrimmed, live_peak;
	uint32_t untrimmed_seen;
	struct conn **reap; /* closing conns to check at the end of the turn */
	uint32_t nreap, capreap;

	struct listener listeners[LISTENERS_MAX];
	struct dial_table dials; /* dial_tab's default: this loop's own */

	struct link_pool links; /* links between daemons (links.c) */
	struct balancer bal; /* services' endpoints (balance.c) */
	struct dns dns; /* services' endpoints from DNS names (dns.c) */
	struct unprotected unprot; /* listeners in the pod we do not hold */
	struct proxy_stats stats;
};

/* handoff.c */
int handoff_open(struct proxy *d);
/* Another event loop's handoff socket: fd is a duplicate this loop owns;
 * registers the handlers handoff_open() does. */
void handoff_share(struct proxy *d, int fd, unsigned long long ino);
void handoff_accept_done(struct proxy *d, int res, int more);
/* A shim connection another loop accepted and passed here (spread). */
void handoff_adopt(struct proxy *d, int fd);
void handoff_arm(struct proxy *d);
/* LDM_OP_RESET for cookie on this loop: 0 when a connection was reset,
 * -ENOENT when none here has it. */
int handoff_reset_here(struct proxy *d, uint64_t cookie);
/* Answers a shim's request on fd with err (ldm_status); 0 or -errno. */
int handoff_answer(int fd, uint64_t cookie, int err);

/* listener.c */
int listener_register(struct proxy *d, const struct ldm_handoff *h, int tcp_fd, struct conn *link);
void listener_accept_done(struct proxy *d, uint64_t ud, int res, int more);
/* A connection another loop accepted on listener id and passed here. */
void listener_adopt(struct proxy *d, uint64_t id, int fd);
/* Another loop holds registrations of l: accept on it here too, through
 * fd, a duplicate this loop owns (closed when the entry exists). */
void listener_mirror(struct proxy *d, const struct listener *l, int fd);
/* That loop let go of listener id. */
void listener_unmirror(struct proxy *d, uint64_t id);
void listener_unlink(struct proxy *d, int slot);
void listener_arm_all(struct proxy *d, int64_t now);
void listener_stop_all(struct proxy *d);
int listener_count(const struct proxy *d);

#endif
