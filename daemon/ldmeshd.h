/*
 * The daemon: the data plane (struct proxy, proxy/proxy.h), its identity,
 * telemetry and control surfaces.  Mutable state lives here, not in
 * globals; the control surfaces receive it as their first argument.
 *
 * It runs `workers` event loops, one thread each (workers.c): loop 0 is the
 * thread that started, with the px, tel and alog fields below, and also
 * serves ctl.sock, the admin listener, signals and the identity files;
 * every other loop has the same kind of proxy, telemetry and access log of
 * its own (struct worker).  The loops share the read-only config, policy
 * and SVID (published by loop 0 on reload and rotation, adopted by each at
 * its next turn) and nothing else on the data path.
 */
#ifndef LDMESH_LDMESHD_H
#define LDMESH_LDMESHD_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include <stddef.h>

#include "identity/identity.h"
#include "proxy/proxy.h"
#include "telemetry/accesslog.h"
#include "telemetry/telemetry.h"

struct worker;
struct shared_conf;

struct ldmeshd {
	struct proxy px; /* loop 0's data plane; its cfg and policy are what runs */
	struct identity id; /* our SVID (identity/identity.h), loaded by loop 0 */
	struct telemetry tel; /* loop 0's golden metrics (linkerd2-proxy names) */
	struct accesslog alog; /* loop 0's */

	/* The event loops (workers.c): workers[0] is loop 0. */
	int nworkers;
	struct worker **workers; /* owned */
	/* What the loops adopt: a config with its policy, and the SVID. */
	pthread_mutex_t pub_lock;
	struct shared_conf *pub_conf; /* a reference */
	struct tls_ctx *pub_tls; /* a reference, NULL without identity */
	atomic_ullong pub_gen; /* bumped at each publication */
	pthread_mutex_t alog_lock; /* the loops' access logs write one at a time */
	pthread_mutex_t call_lock; /* workers_call() */
	pthread_cond_t call_cond;
	atomic_int stop; /* every loop stops now (a second SIGINT) */

	const char *config_file; /* borrowed from argv, NULL: built-in default */
	char *runtime_dir; /* owned */
	int ctl_fd; /* owned */
	int admin_armed;
	char ctl_path[128];
	unsigned long long ctl_ino; /* of the socket file we made */
	int ctl_armed;
	int64_t ctl_retry_ms, admin_retry_ms; /* accept re-arm after EMFILE */
	char reload_error[256]; /* why the last reload was rejected, "" after a good one */
	int64_t start_ms;
	int64_t drain_deadline_ms;
	volatile sig_atomic_t got_term, got_hup, got_int;
	int exit_code;
};

/* The daemon a proxy belongs to, for handlers the proxy calls back. */
static inline struct ldmeshd *ldmeshd_of(struct proxy *px)
{
	return (struct ldmeshd *)px->owner;
}

/* One event loop and what it owns (workers.c). */
struct worker {
	struct ldmeshd *d;
	int index;
	/* Loop 0's are the daemon's own fields; the others' are below. */
	struct proxy *px;
	struct telemetry *tel;
	struct accesslog *alog;
	struct identity *id; /* loops past 0: only tls, a reference */
	struct shared_conf *conf; /* the adopted config: a reference */
	unsigned long long conf_gen;
	pthread_t thread;
	int started;
	int ready; /* 1: its loop runs, -errno: it could not make one (call_lock) */
	int wake_rd, wake_wr; /* a datagram socket pair: mail is waiting */
	int wake_armed;
	char wake_buf[64];
	pthread_mutex_t lock; /* guards inbox and exited */
	struct wmsg *inbox; /* owned */
	size_t n_inbox, cap_inbox;
	atomic_int mail; /* a wake-up is under way */
	int exited;
	atomic_int draining; /* no more connections passed to it */
	atomic_uint load; /* its connections, as of its last turn */
	atomic_uint incoming; /* connections passed to it, not yet adopted */
	int64_t drain_deadline_ms;
	int exit_code;
	/* owned by loops past 0 */
	struct proxy own_px;
	struct telemetry own_tel;
	struct accesslog own_alog;
	struct identity own_id;
};

/* workers.c */
/* How many loops cfg asks for: workers, or the usable CPUs up to max_workers. */
int workers_wanted(const struct config *cfg);
/* The telemetry series each loop may hold: its share of max_series. */
int workers_series_cap(const struct ldmeshd *d, const struct config *cfg);
/* Publishes cfg and policy (owned from here) and the current SVID for every
 * loop; loop 0 adopts them at once, the others at their next turn. */
int workers_publish(struct ldmeshd *d, struct config *cfg, struct policy_set *policy);
/* Drops the publication's references (exit, after workers_stop()). */
void workers_publish_end(struct ldmeshd *d);
/* Publishes d->id's SVID when it changed (rotation). */
void workers_publish_identity(struct ldmeshd *d);
/* Loop 0's setup, then starts loops 1..n-1 (threads).  0 or -errno. */
int workers_start(struct ldmeshd *d, int n);
/* Stops and joins every loop past 0 and frees them (exit). */
void workers_stop(struct ldmeshd *d);
/* One loop's turn of bookkeeping: its mail, the config it should adopt, its
 * load for the others to see. */
void workers_turn(struct worker *w);
/* The wake-up datagram arrived (UD_WORKER_WAKE). */
void workers_wake_done(struct worker *w, int res);
/* Arms the wake-up read when it is not. */
void workers_arm_wake(struct worker *w);
/* Every loop past 0 drains too (ldmeshd_start_drain). */
void workers_drain_others(struct ldmeshd *d, int timeout_ms);
/* 1 once every loop past 0 has stopped. */
int workers_others_done(struct ldmeshd *d);
/* Wakes every loop (stop). */
void workers_wake_all(struct ldmeshd *d);
/*
 * Runs fn(w, arg) in every loop's own thread, loop 0's (the caller) first,
 * and returns once all ran: how the control surfaces read state that each
 * loop owns.  fn must not wait for another loop.
 */
void workers_call(struct ldmeshd *d, void (*fn)(struct worker *w, void *arg), void *arg);

/* What every loop counted, added up at scrape time (workers_totals()). */
struct daemon_totals {
	pthread_mutex_t lock;
	struct telemetry tel; /* with TOTALS_TEL */
	struct balancer bal; /* with TOTALS_BAL */
	struct proxy_stats stats;
	struct policy_counts counts;
	uint64_t dns_ok, dns_error;
	uint32_t parked, links_open;
	uint64_t streams_total, fallbacks_total;
	uint32_t live_by_kind[6];
	/* by loop 0's listener slot: registrations and accepts in every loop */
	int listener_links[LISTENERS_MAX];
	uint64_t listener_accepted[LISTENERS_MAX];
};
#define TOTALS_TEL 1
#define TOTALS_BAL 2
/* Fills t (what: TOTALS_* for the costly parts); workers_totals_fini() after. */
int workers_totals(struct ldmeshd *d, struct daemon_totals *t, int what);
void workers_totals_fini(struct daemon_totals *t);

/* ctl.c */
int ctl_open(struct ldmeshd *d);
void ctl_accept_done(struct ldmeshd *d, int res, int more);
void ctl_arm(struct ldmeshd *d);
/* 1 while a control client's answer is still being written (the answer to
 * `drain` itself, when the drain is over at once). */
int ctl_answering(const struct ldmeshd *d);

/* check.c */
/* Appends the answer of `ldmeshctl check` (include/ldmesh/ctl.h): the
 * problems found (unprotected listeners, identity expired or expiring, a
 * rejected reload).  Returns their number. */
int check_render(struct ldmeshd *d, struct strbuf *b, int json);

/* admin.c: GET /metrics /ready /live on admin_addr */
int admin_open(struct ldmeshd *d);
void admin_arm(struct ldmeshd *d);
/* Stops listening at once (exit). */
void admin_close(struct ldmeshd *d);
void admin_accept_done(struct ldmeshd *d, int res, int more);

/* metrics.c */
struct strbuf;
/* Appends every metric in Prometheus text format 0.0.4. */
void metrics_render(struct ldmeshd *d, struct strbuf *b);

/* ldmeshd.c */
int ldmeshd_reload(struct ldmeshd *d, char *err, size_t errlen);
void ldmeshd_start_drain(struct ldmeshd *d, int timeout_ms);
/* One loop's part of a drain, until w->drain_deadline_ms. */
void ldmeshd_drain_loop(struct worker *w);
/* The backend the config asks for; logs a fallback to epoll. */
struct loop *ldmeshd_make_loop(const struct config *cfg);
/* Removes path only if it is still the socket file we created (inode). */
void ldmeshd_unlink_if_ours(const char *path, unsigned long long ino);
/* Runs loop w until drained; returns the exit code. */
int ldmeshd_run(struct worker *w);

#endif
