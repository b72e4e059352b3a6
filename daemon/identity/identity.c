/*
 * The daemon's own SVID: load it, notice when its files change (atomic
 * rename by ldmeshctl, a Kubernetes secret volume or SPIRE's spiffe-helper),
 * and swap in a new TLS context without touching live connections, which
 * keep a reference to the context they started with.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "identity/identity.h"
#include "util/clock.h"
#include "util/log.h"

static void stamp(const char *path, struct file_stamp *st)
{
	struct stat sb;

	memset(st, 0, sizeof(*st));
	if (!path || stat(path, &sb) < 0) {
		st->missing = 1;
		return;
	}
	st->mtime_ns = (long long)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
	st->size = (long long)sb.st_size;
	st->ino = (unsigned long long)sb.st_ino;
}

static void stamps(const struct config *cfg, struct file_stamp out[3])
{
	stamp(cfg->cert, &out[0]);
	stamp(cfg->key, &out[1]);
	stamp(cfg->bundle, &out[2]);
}

static void format_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* An SVID outside its validity is logged loudly: peers will refuse it. */
static void check_validity(struct identity *id, int64_t now_mono, int force)
{
	const struct tls_svid_info *info;
	time_t now = time(NULL);
	char when[32];

	if (!id->tls) {
		return;
	}
	info = tls_ctx_info(id->tls);
	if (now >= info->not_before && now < info->not_after) {
		return;
	}
	if (!force && now_mono - id->expiry_logged_ms < 60000) {
		return;
	}
	id->expiry_logged_ms = now_mono;
	if (now >= info->not_after) {
		format_time(info->not_after, when, sizeof(when));
		log_error("OWN SVID EXPIRED: %s (serial %s) expired at %s; peers will refuse "
			  "this pod until the identity files are renewed",
			  info->id, info->serial, when);
	} else {
		format_time(info->not_before, when, sizeof(when));
		log_error("OWN SVID NOT YET VALID: %s (serial %s) starts at %s; check the clock",
			  info->id, info->serial, when);
	}
}

/*
 * A rotation is several steps: ldmeshctl ca issue renames the bundle, the
 * key and the certificate one after another, and a writer that does not
 * rename removes a file before writing it again.  A check that falls
 * between two steps sees a set that does not work yet: a file missing, or
 * the new key beside the old certificate (SSL_CTX_check_private_key
 * fails).  Such a set is not an error yet: it is tried again at every
 * check, and only once the same files (inode, size, mtime) have failed for
 * IDENTITY_SETTLE_MS is it logged at error level and counted in
 * ldmesh_identity_reload_errors_total, then left alone until they change.
 * A rotation that is stalled that long, or a bad file (truncated, empty,
 * key readable by others) that stays, is an error as before, a check or
 * two later.
 */
#define IDENTITY_SETTLE_MS 2000

/* Loads the configured SVID, whose files had stamps st just before.  A
 * failure is not counted here. */
static int load(struct identity *id, const struct config *cfg, const struct file_stamp st[3],
		char *err, size_t errlen)
{
	struct tls_ctx *t;
	char until[32];

	t = tls_ctx_new(cfg, err, errlen);
	if (!t) {
		return -EINVAL;
	}
	memcpy(id->stamps, st, sizeof(id->stamps));
	id->settle.active = 0;
	tls_ctx_unref(id->tls);
	id->tls = t;
	id->reloads_total++;
	format_time(tls_ctx_info(t)->not_after, until, sizeof(until));
	log_info("identity %s serial %s valid until %s; %d trusted root(s)", tls_ctx_info(t)->id,
		 tls_ctx_info(t)->serial, until, tls_ctx_info(t)->n_roots);
	check_validity(id, now_ms(), 1);
	return 0;
}

int identity_load(struct identity *id, const struct config *cfg, char *err, size_t errlen)
{
	struct file_stamp st[3];

	id->settle.active = 0;
	if (!cfg->cert) {
		tls_ctx_unref(id->tls);
		id->tls = NULL;
		memset(id->stamps, 0, sizeof(id->stamps));
		return 0;
	}
	stamps(cfg, st);
	memcpy(id->stamps, st, sizeof(st));
	if (load(id, cfg, st, err, errlen) < 0) {
		id->reload_errors_total++;
		return -EINVAL;
	}
	return 0;
}

/* cur failed to load (why in err): wait for it to settle, then report. */
static void settle(struct identity *id, const struct file_stamp cur[3], int missing,
		   const char *err, int64_t now)
{
	if (!id->settle.active || memcmp(cur, id->settle.st, sizeof(id->settle.st))) {
		/* Other files than at the last check: maybe mid-rotation. */
		memcpy(id->settle.st, cur, sizeof(id->settle.st));
		id->settle.since_ms = now;
		id->settle.active = 1;
		log_info("identity files changed but do not work together yet (%s); trying again "
			 "at the next check",
			 err);
		return;
	}
	if (now - id->settle.since_ms < IDENTITY_SETTLE_MS) {
		return;
	}
	if (missing) {
		log_warn("identity files changed but one is missing; keeping the current identity");
	} else {
		log_error("identity files changed but cannot be used (%s); keeping the current "
			  "identity",
			  err);
	}
	memcpy(id->stamps, cur, sizeof(id->stamps));
	id->settle.active = 0;
	id->reload_errors_total++;
}

void identity_check(struct identity *id, const struct config *cfg, int64_t now)
{
	struct file_stamp cur[3];
	char err[512];

	if (cfg->cert) {
		stamps(cfg, cur);
		if (memcmp(cur, id->stamps, sizeof(cur))) {
			if (cur[0].missing || cur[1].missing || cur[2].missing) {
				settle(id, cur, 1, "one is missing", now);
			} else if (load(id, cfg, cur, err, sizeof(err)) < 0) {
				settle(id, cur, 0, err, now);
			}
		} else {
			id->settle.active = 0; /* back to the loaded files */
		}
	}
	check_validity(id, now, 0);
}

void identity_free(struct identity *id)
{
	tls_ctx_unref(id->tls);
	id->tls = NULL;
}
