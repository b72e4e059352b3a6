/*
 * The self-check behind `ldmeshctl check`: what is wrong in this pod now,
 * from what the daemon already knows (no probing, so it answers at once).
 *
 *  - unprotected listeners (unprotected.c): sockets listening on a pod
 *    address that the daemon does not hold;
 *  - identity: the SVID expired, is not valid yet, or is expiring, that
 *    is, less than a quarter of its lifetime (at most a week) is left.
 *    Renewal agents renew at a half (SPIRE) or two thirds (cert-manager)
 *    of the lifetime, so by then a renewal is overdue;
 *  - config: the last reload was rejected, so the file on disk is not what
 *    runs.
 *
 * The answer starts with the verdict (include/ldmesh/ctl.h), which is how
 * ldmeshctl picks its exit status.
 */
#include <stdio.h>
#include <time.h>

#include "ldmeshd.h"
#include "util/strbuf.h"

#define CHECK_EXPIRY_SHARE 4 /* a quarter of the lifetime left */
#define CHECK_EXPIRY_MAX_S (7LL * 86400)

enum id_health { ID_NONE, ID_OK, ID_EXPIRING, ID_EXPIRED, ID_NOT_YET_VALID };

static enum id_health id_health(const struct tls_svid_info *info, time_t now)
{
	long long life, left, margin;

	if (!info) {
		return ID_NONE;
	}
	if (now < info->not_before) {
		return ID_NOT_YET_VALID;
	}
	if (now >= info->not_after) {
		return ID_EXPIRED;
	}
	life = (long long)info->not_after - (long long)info->not_before;
	left = (long long)info->not_after - (long long)now;
	margin = life / CHECK_EXPIRY_SHARE;
	if (margin > CHECK_EXPIRY_MAX_S) {
		margin = CHECK_EXPIRY_MAX_S;
	}
	return left < margin ? ID_EXPIRING : ID_OK;
}

static void format_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* "2d3h", "5h12m", "12m", "40s" */
static void format_span(long long s, char *buf, size_t len)
{
	if (s >= 86400) {
		snprintf(buf, len, "%lldd%lldh", s / 86400, s % 86400 / 3600);
	} else if (s >= 3600) {
		snprintf(buf, len, "%lldh%lldm", s / 3600, s % 3600 / 60);
	} else if (s >= 60) {
		snprintf(buf, len, "%lldm", s / 60);
	} else {
		snprintf(buf, len, "%llds", s);
	}
}

/* Problems go out as lines of text, or JSON objects with kind, message
 * and members of their own (added between begin and end). */
struct problem_out {
	struct strbuf *b;
	int json, n;
};

static void problem_begin(struct problem_out *o, const char *kind, const char *message)
{
	if (o->json) {
		sb_printf(o->b, "%s{\"kind\":\"%s\",\"message\":", o->n ? "," : "", kind);
		sb_json_str(o->b, message);
	} else {
		sb_printf(o->b, "  %s\n", message);
	}
	o->n++;
}

static void problem_end(struct problem_out *o)
{
	if (o->json) {
		sb_printf(o->b, "}");
	}
}

static void listener_problems(struct ldmeshd *d, struct problem_out *o)
{
	const struct unprotected *u = &d->px.unprot;
	int i;

	for (i = 0; i < u->n; i++) {
		const struct unprotected_listener *e = &u->l[i];
		char what[160], msg[256];

		if (!e->reported) {
			continue;
		}
		unprotected_describe(e, what, sizeof(what));
		snprintf(msg, sizeof(msg), "unprotected listener %s: plaintext, not meshed", what);
		problem_begin(o, "unprotected_listener", msg);
		if (o->json) {
			sb_printf(o->b, ",");
			unprotected_json(e, o->b);
		}
		problem_end(o);
	}
}

static void identity_problem(struct ldmeshd *d, struct problem_out *o, time_t now)
{
	const struct tls_svid_info *info = d->id.tls ? tls_ctx_info(d->id.tls) : NULL;
	enum id_health h = id_health(info, now);
	char when[32], span[32], msg[LDM_PEER_ID_MAX + 160];
	const char *kind;

	if (h == ID_NONE || h == ID_OK) {
		return;
	}
	if (h == ID_NOT_YET_VALID) {
		kind = "identity_not_yet_valid";
		format_time(info->not_before, when, sizeof(when));
		snprintf(msg, sizeof(msg),
			 "identity %s is not valid before %s: peers refuse it (check the clock)",
			 info->id, when);
	} else if (h == ID_EXPIRED) {
		kind = "identity_expired";
		format_time(info->not_after, when, sizeof(when));
		snprintf(msg, sizeof(msg),
			 "identity %s expired at %s: peers refuse it until the files are renewed",
			 info->id, when);
	} else {
		kind = "identity_expiring";
		format_time(info->not_after, when, sizeof(when));
		format_span((long long)(info->not_after - now), span, sizeof(span));
		snprintf(msg, sizeof(msg),
			 "identity %s expires at %s, in %s: its renewal is overdue", info->id, when,
			 span);
	}
	problem_begin(o, kind, msg);
	if (o->json) {
		sb_printf(o->b, ",\"spiffe_id\":");
		sb_json_str(o->b, info->id);
		format_time(info->not_after, when, sizeof(when));
		sb_printf(o->b, ",\"not_after\":\"%s\"", when);
	}
	problem_end(o);
}

static void config_problem(struct ldmeshd *d, struct problem_out *o)
{
	char msg[sizeof(d->reload_error) + 96];

	if (!d->reload_error[0]) {
		return;
	}
	snprintf(msg, sizeof(msg),
		 "config: the last reload was rejected, the old config still runs: %s",
		 d->reload_error);
	problem_begin(o, "config_reload_rejected", msg);
	if (o->json) {
		sb_printf(o->b, ",\"error\":");
		sb_json_str(o->b, d->reload_error);
	}
	problem_end(o);
}

static int count(struct ldmeshd *d, time_t now)
{
	enum id_health h = id_health(d->id.tls ? tls_ctx_info(d->id.tls) : NULL, now);

	return unprotected_count(&d->px.unprot) + (h != ID_NONE && h != ID_OK) +
	       (d->reload_error[0] != '\0');
}

int check_render(struct ldmeshd *d, struct strbuf *b, int json)
{
	const struct tls_svid_info *info = d->id.tls ? tls_ctx_info(d->id.tls) : NULL;
	time_t now = time(NULL);
	struct problem_out o = {.b = b, .json = json};
	int n = count(d, now);
	char until[32] = "";

	if (info) {
		format_time(info->not_after, until, sizeof(until));
	}
	/* The verdict first: ldmeshctl reads it to choose its exit status. */
	if (json) {
		sb_printf(b, "{\"ok\":%s,\"problems\":[", n ? "false" : "true");
	} else {
		sb_printf(b, "problems      %d\n", n);
	}
	listener_problems(d, &o);
	identity_problem(d, &o, now);
	config_problem(d, &o);
	if (json) {
		sb_printf(b, "],\"listeners\":{\"held\":%d,\"unprotected\":%d},\"identity\":",
			  listener_count(&d->px), unprotected_count(&d->px.unprot));
		if (info) {
			sb_printf(b, "{\"spiffe_id\":");
			sb_json_str(b, info->id);
			sb_printf(b, ",\"not_after\":\"%s\"}", until);
		} else {
			sb_printf(b, "null");
		}
		sb_printf(b, ",\"config_file\":");
		if (d->px.cfg->file) {
			sb_json_str(b, d->px.cfg->file);
		} else {
			sb_printf(b, "null");
		}
		sb_printf(b, "}\n");
	} else {
		sb_printf(b, "listeners     %d held by ldmeshd, %d unprotected\n",
			  listener_count(&d->px), unprotected_count(&d->px.unprot));
		if (info) {
			sb_printf(b, "identity      %s, valid until %s\n", info->id, until);
		} else {
			sb_printf(b, "identity      none (mTLS off)\n");
		}
		sb_printf(b, "config        %s\n",
			  d->px.cfg->file ? d->px.cfg->file : "(built-in default)");
	}
	return n;
}
