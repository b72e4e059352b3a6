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
#include "log.h"

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

int identity_load(struct ldmeshd *d, char *err, size_t errlen)
{
	struct tls_ctx *t;
	char until[32];

	if (!d->cfg->cert) {
		tls_ctx_unref(d->tls);
		d->tls = NULL;
		memset(d->id_stamps, 0, sizeof(d->id_stamps));
		return 0;
	}
	stamps(d->cfg, d->id_stamps);
	t = tls_ctx_new(d->cfg, err, errlen);
	if (!t) {
		d->stats.identity_reload_errors_total++;
		return -EINVAL;
	}
	tls_ctx_unref(d->tls);
	d->tls = t;
	d->stats.identity_reloads_total++;
	format_time(tls_ctx_info(t)->not_after, until, sizeof(until));
	log_info("identity %s serial %s valid until %s; %d trusted root(s)", tls_ctx_info(t)->id,
		 tls_ctx_info(t)->serial, until, tls_ctx_info(t)->n_roots);
	check_validity(d, now_ms(), 1);
	return 0;
}

void identity_check(struct ldmeshd *d, int64_t now)
{
	struct file_stamp cur[3];
	char err[512];

	if (d->cfg->cert) {
		stamps(d->cfg, cur);
		if (memcmp(cur, d->id_stamps, sizeof(cur))) {
			if (cur[0].missing || cur[1].missing || cur[2].missing) {
				/* Mid-rotation by a writer that does not rename: wait. */
				if (memcmp(cur, d->id_stamps, sizeof(cur))) {
					log_warn("identity files changed but one is missing; "
						 "keeping the "
						 "current identity");
					memcpy(d->id_stamps, cur, sizeof(cur));
					d->stats.identity_reload_errors_total++;
				}
			} else if (identity_load(d, err, sizeof(err)) < 0) {
				log_error("identity files changed but cannot be used (%s); keeping "
					  "the "
					  "current identity",
					  err);
				memcpy(d->id_stamps, cur, sizeof(cur));
			}
		}
	}
	check_validity(d, now, 0);
}
