/*
 * The daemon: the data plane (struct proxy, proxy/proxy.h), its identity,
 * telemetry and control surfaces.  Mutable state lives here, not in
 * globals; the control surfaces receive it as their first argument.
 */
#ifndef LDMESH_LDMESHD_H
#define LDMESH_LDMESHD_H

#include <signal.h>
#include <stdint.h>

#include <stddef.h>

#include "identity/identity.h"
#include "proxy/proxy.h"
#include "telemetry/accesslog.h"
#include "telemetry/telemetry.h"

struct ldmeshd {
	struct proxy px; /* the data plane; holds cfg, loop and policy for all */
	struct identity id; /* our SVID (identity/identity.h) */
	struct telemetry tel; /* golden metrics (linkerd2-proxy names) */
	struct accesslog alog;
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
	return (struct ldmeshd *)(void *)((char *)px - offsetof(struct ldmeshd, px));
}

/* ctl.c */
int ctl_open(struct ldmeshd *d);
void ctl_accept_done(struct ldmeshd *d, int res, int more);
void ctl_arm(struct ldmeshd *d);

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
/* The backend the config asks for; logs a fallback to epoll. */
struct loop *ldmeshd_make_loop(const struct config *cfg);
/* Removes path only if it is still the socket file we created (inode). */
void ldmeshd_unlink_if_ours(const char *path, unsigned long long ino);
/* Runs until drained; returns the exit code. */
int ldmeshd_run(struct ldmeshd *d);

#endif
