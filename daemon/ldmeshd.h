/*
 * The daemon's one state struct.  Mutable state lives here, not in globals;
 * modules receive it as their first argument.
 */
#ifndef LDMESH_LDMESHD_H
#define LDMESH_LDMESHD_H

#include <signal.h>
#include <stdint.h>

#include "telemetry/accesslog.h"
#include "config/config.h"
#include "proxy/conn.h"
#include "loop/loop.h"
#include "proxy/podaddr.h"
#include "policy/policy.h"
#include "telemetry/telemetry.h"
#include "identity/tls.h"
#include "proxy/unprotected.h"

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
};

/* What a finished dial produced, for the shim's LDM_OP_QUERY. */
struct dial_result {
	uint64_t cookie;
	int err;
	struct ldm_addr local, peer;
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

struct ldmeshd_stats {
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
	uint64_t identity_reloads_total, identity_reload_errors_total;
	uint64_t timeouts_total[TIMEOUT_COUNT]; /* by enum timeout_stage */
	uint64_t h2c_upgrades_stripped_total; /* upgrade.h */
	/* same-pod connections to held listeners: the TCP socket handed to
	 * the app, or proxied (a shim that cannot take it, or an outbound
	 * dial to the pod's own address) */
	uint64_t same_pod_handed_total, same_pod_proxied_total;
};

/* One ldmesh_policy_decisions_total series. */
struct decision_count {
	char rule[64];
	uint16_t port;
	uint8_t decision; /* enum policy_decision, or 2 for audit */
	uint64_t count;
};

#define DECISION_SERIES_MAX 512

/* What the identity files looked like when last loaded. */
struct file_stamp {
	long long mtime_ns, size;
	unsigned long long ino;
	int missing;
};

struct ldmeshd {
	struct config *cfg; /* owned; swapped by reload */
	conn_done_fn conn_handlers[UD_TAG_COUNT]; /* conn_set_handler() */
	conn_dial_fn dial_observer; /* conn_set_dial_observer() */
	const char *config_file; /* borrowed from argv, NULL: built-in default */
	char *runtime_dir; /* owned */
	struct loop *loop; /* owned */
	struct tls_ctx *tls; /* owned reference, NULL without identity */
	struct policy_set *policy; /* owned; swapped with the config */
	struct decision_count decisions[DECISION_SERIES_MAX];
	int n_decisions;
	struct podaddr pod; /* the pod's own addresses, cached */
	struct file_stamp id_stamps[3]; /* cert, key, bundle */
	struct { /* identity files that failed to load, waited for (identity.c) */
		struct file_stamp st[3];
		int64_t since_ms;
		int active;
	} id_settle;
	int64_t id_expiry_logged_ms;
	int handoff_fd; /* owned, -1 while draining */
	int ctl_fd; /* owned */
	int admin_fd; /* owned, -1 when admin_addr is "" */
	unsigned long long admin_ino; /* admin_fd's socket inode */
	int admin_armed;
	char handoff_path[128], ctl_path[128];
	unsigned long long handoff_ino, ctl_ino; /* of the socket files we made */
	int handoff_armed, ctl_armed;
	int64_t handoff_retry_ms, ctl_retry_ms, admin_retry_ms; /* accept re-arm after EMFILE */
	int64_t listener_retry_ms; /* earliest listener re-arm due, 0: none */

	struct conn **conns; /* slot -> conn, NULL when free */
	uint32_t nslots, live;
	uint32_t gen_counter;
	int l7_detect_armed; /* some connection holds an undecided first line */
	uint32_t *free_slots;
	uint32_t nfree;
	uint32_t live_by_kind[6];
	uint32_t parked; /* idle connections holding no buffers (conn.c) */
	struct conn **reap; /* closing conns to check at the end of the turn */
	uint32_t nreap, capreap;

	struct listener listeners[LISTENERS_MAX];
	struct dial_result dials[DIAL_RESULTS];
	uint32_t dial_next;

	struct unprotected unprot; /* listeners in the pod we do not hold */
	char reload_error[256]; /* why the last reload was rejected, "" after a good one */

	struct ldmeshd_stats stats;
	struct telemetry tel; /* golden metrics (linkerd2-proxy names) */
	struct accesslog alog;
	int64_t start_ms;
	int draining;
	int64_t drain_deadline_ms;
	volatile sig_atomic_t got_term, got_hup, got_int;
	int exit_code;
};

/* handoff.c */
int handoff_open(struct ldmeshd *d);
void handoff_accept_done(struct ldmeshd *d, int res, int more);
void handoff_arm(struct ldmeshd *d);

/* listener.c */
int listener_register(struct ldmeshd *d, const struct ldm_handoff *h, int tcp_fd,
		      struct conn *link);
void listener_accept_done(struct ldmeshd *d, uint64_t ud, int res, int more);
void listener_unlink(struct ldmeshd *d, int slot);
void listener_arm_all(struct ldmeshd *d, int64_t now);
void listener_stop_all(struct ldmeshd *d);
int listener_count(const struct ldmeshd *d);

/* ctl.c */
int ctl_open(struct ldmeshd *d);
void ctl_accept_done(struct ldmeshd *d, int res, int more);
void ctl_arm(struct ldmeshd *d);

/* check.c */
/* Appends the answer of `ldmeshctl check` (include/ldmesh/ctl.h): the
 * problems found (unprotected listeners, identity expired or expiring, a
 * rejected reload).  Returns their number. */
int check_render(struct ldmeshd *d, struct strbuf *b, int json);

/* identity.c */
/* Loads (or reloads) the TLS identity named by the config; keeps the old
 * one on failure.  Returns 0 or -errno with a sentence in err. */
int identity_load(struct ldmeshd *d, char *err, size_t errlen);
/* Reloads when a file changed; logs loudly about an expired SVID. */
void identity_check(struct ldmeshd *d, int64_t now);

/* admin.c: GET /metrics /ready /live on admin_addr */
int admin_open(struct ldmeshd *d);
void admin_arm(struct ldmeshd *d);
void admin_accept_done(struct ldmeshd *d, int res, int more);

/* metrics.c */
struct strbuf;
/* Appends every metric in Prometheus text format 0.0.4. */
void metrics_render(struct ldmeshd *d, struct strbuf *b);

/* decisions.c */
/* Counts a policy decision (and its audit matches) and logs audit rules. */
void policy_account(struct ldmeshd *d, const struct policy_request *req,
		    const struct policy_result *res);

/* ldmeshd.c */
int ldmeshd_reload(struct ldmeshd *d, char *err, size_t errlen);
void ldmeshd_start_drain(struct ldmeshd *d, int timeout_ms);
/* The backend the config asks for; logs a fallback to epoll. */
struct loop *ldmeshd_make_loop(const struct config *cfg);
/* Removes path only if it is still the socket file we created (inode). */
void ldmeshd_unlink_if_ours(const char *path, unsigned long long ino);
/* Runs until drained; returns the exit code. */
int ldmeshd_run(struct ldmeshd *d);

#endif
