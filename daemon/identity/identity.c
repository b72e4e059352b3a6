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

#include "ldmeshd.h"
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
static void check_validity(struct ldmeshd *d, int64_t now_mono, int force)
{
	const struct tls_svid_info *info;
	time_t now = time(NULL);
	char when[32];

	if (!d->tls) {
		return;
	}
	info = tls_ctx_info(d->tls);
	if (now >= info->not_before && now < info->not_after) {
		return;
	}
	if (!force && now_mono - d->id_expiry_logged_ms < 60000) {
		return;
	}
	d->id_expiry_logged_ms = now_mono;
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
static int load(struct ldmeshd *d, const struct file_stamp st[3], char *err, size_t errlen)
{
	struct tls_ctx *t;
	char until[32];

	t = tls_ctx_new(d->cfg, err, errlen);
	if (!t) {
		return -EINVAL;
	}
	memcpy(d->id_stamps, st, sizeof(d->id_stamps));
	d->id_settle.active = 0;
	tls_ctx_unref(d->tls);
	d->tls = t;
	d->stats.identity_reloads_total++;
	format_time(tls_ctx_info(t)->not_after, until, sizeof(until));
	log_info("identity %s serial %s valid until %s; %d trusted root(s)", tls_ctx_info(t)->id,
		 tls_ctx_info(t)->serial, until, tls_ctx_info(t)->n_roots);
	check_validity(d, now_ms(), 1);
	return 0;
}

int identity_load(struct ldmeshd *d, char *err, size_t errlen)
{
	struct file_stamp st[3];

	d->id_settle.active = 0;
	if (!d->cfg->cert) {
		tls_ctx_unref(d->tls);
		d->tls = NULL;
		memset(d->id_stamps, 0, sizeof(d->id_stamps));
		return 0;
	}
	stamps(d->cfg, st);
	memcpy(d->id_stamps, st, sizeof(st));
	if (load(d, st, err, errlen) < 0) {
		d->stats.identity_reload_errors_total++;
		return -EINVAL;
	}
	return 0;
}

/* cur failed to load (why in err): wait for it to settle, then report. */
static void settle(struct ldmeshd *d, const struct file_stamp cur[3], int missing, const char *err,
		   int64_t now)
{
	if (!d->id_settle.active || memcmp(cur, d->id_settle.st, sizeof(d->id_settle.st))) {
		/* Other files than at the last check: maybe mid-rotation. */
		memcpy(d->id_settle.st, cur, sizeof(d->id_settle.st));
		d->id_settle.since_ms = now;
		d->id_settle.active = 1;
		log_info("identity files changed but do not work together yet (%s); trying again "
			 "at the next check",
			 err);
		return;
	}
	if (now - d->id_settle.since_ms < IDENTITY_SETTLE_MS) {
		return;
	}
	if (missing) {
		log_warn("identity files changed but one is missing; keeping the current identity");
	} else {
		log_error("identity files changed but cannot be used (%s); keeping the current "
			  "identity",
			  err);
	}
	memcpy(d->id_stamps, cur, sizeof(d->id_stamps));
	d->id_settle.active = 0;
	d->stats.identity_reload_errors_total++;
}

void identity_check(struct ldmeshd *d, int64_t now)
{
	struct file_stamp cur[3];
	char err[512];

	if (d->cfg->cert) {
		stamps(d->cfg, cur);
		if (memcmp(cur, d->id_stamps, sizeof(cur))) {
			if (cur[0].missing || cur[1].missing || cur[2].missing) {
				settle(d, cur, 1, "one is missing", now);
			} else if (load(d, cur, err, sizeof(err)) < 0) {
				settle(d, cur, 0, err, now);
			}
		} else {
			d->id_settle.active = 0; /* back to the loaded files */
		}
	}
	check_validity(d, now, 0);
}
