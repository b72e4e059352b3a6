/*
 * The daemon's lifecycle: the event loop's turn, completion dispatch,
 * reload and drain.  main.c only parses arguments and sets things up.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ldmeshd.h"
#include "proxy/route.h"
#include "util/log.h"

static void dispatch(void *ctx, uint64_t ud, int res, int more)
{
	struct ldmeshd *d = ctx;
	struct conn *c;

	switch (ud_tag(ud)) {
	case UD_HANDOFF_ACCEPT:
		if (d->px.handoff_fd < 0) {
			if (res >= 0) {
				close(res);
			}
			if (!more) {
				d->px.handoff_armed = 0;
			}
			return;
		}
		handoff_accept_done(&d->px, res, more);
		return;
	case UD_CTL_ACCEPT:
		ctl_accept_done(d, res, more);
		return;
	case UD_ADMIN_ACCEPT:
		admin_accept_done(d, res, more);
		return;
	case UD_LISTENER_ACCEPT:
		listener_accept_done(&d->px, ud, res, more);
		return;
	case UD_PLINK_ACCEPT:
	case UD_PLINK_DIAL:
	case UD_PLINK_RECV:
	case UD_PLINK_SEND:
	case UD_PLINK_POLL:
	case UD_PLINK_KICK:
		links_complete(&d->px, ud, res, more);
		return;
	default:
		c = conn_from_ud(&d->px, ud);
		if (c) {
			conn_complete(&d->px, c, ud_tag(ud), res);
		}
	}
}

static int apply_config(struct ldmeshd *d, struct config *cfg)
{
	log_threshold = cfg->log_level;
	if (d->px.cfg && strcmp(d->px.cfg->runtime_dir, cfg->runtime_dir) &&
	    strcmp(d->runtime_dir, cfg->runtime_dir)) {
		log_warn("runtime_dir changed to %s; it takes effect at the next start",
			 cfg->runtime_dir);
	}
	config_free(d->px.cfg);
	d->px.cfg = cfg;
	return 0;
}

int ldmeshd_reload(struct ldmeshd *d, char *err, size_t errlen)
{
	struct config *cfg;
	struct policy_set *policy;

	if (!d->config_file) {
		snprintf(err, errlen, "running on the built-in default config; nothing to reload");
		return -EINVAL;
	}
	cfg = config_load(d->config_file, err, errlen);
	if (!cfg) {
		goto err_rejected;
	}
	policy = policy_compile(cfg, err, errlen);
	if (!policy) {
		goto err_free_cfg;
	}
	if (accesslog_configure(&d->alog, cfg->access_log, err, errlen) < 0) {
		goto err_free_policy;
	}
	if (identity_load(&d->id, cfg, err, errlen) < 0) {
		char ignored[256];
		accesslog_configure(&d->alog, d->px.cfg->access_log, ignored, sizeof(ignored));
		goto err_free_policy;
	}
	tel_set_max(&d->tel, cfg->max_series);
	apply_config(d, cfg);
	/* In-flight requests already have their decision; new ones use this. */
	policy_free(d->px.policy);
	d->px.policy = policy;
	d->reload_error[0] = '\0';
	log_info("configuration reloaded from %s", d->config_file);
	return 0;

err_free_policy:
	policy_free(policy);
err_free_cfg:
	config_free(cfg);
err_rejected:
	log_error("reload rejected, keeping the running config: %s", err);
	/* Until a reload works, the file is not what runs: `check` says so. */
	snprintf(d->reload_error, sizeof(d->reload_error), "%s", err);
	return -EINVAL;
}

/* A daemon that started while we drained owns the path now: leave it. */
void ldmeshd_unlink_if_ours(const char *path, unsigned long long ino)
{
	struct stat st;

	if (ino && stat(path, &st) == 0 && (unsigned long long)st.st_ino == ino) {
		unlink(path);
	}
}

void ldmeshd_start_drain(struct ldmeshd *d, int timeout_ms)
{
	if (d->px.draining) {
		return;
	}
	d->px.draining = 1;
	d->drain_deadline_ms = now_ms() + timeout_ms;
	log_info("draining: no new connections; waiting up to %d ms for %u live ones", timeout_ms,
		 d->px.live_by_kind[CONN_OUTBOUND] + d->px.live_by_kind[CONN_INBOUND]);
	/* New shim calls now fail fast (closed), and the next daemon can bind. */
	if (d->px.handoff_fd >= 0) {
		ldmeshd_unlink_if_ours(d->px.handoff_path, d->px.handoff_ino);
		if (d->px.handoff_armed) {
			d->px.loop->ops->cancel_fd(d->px.loop, d->px.handoff_fd);
		}
		d->px.loop->ops->forget_fd(d->px.loop, d->px.handoff_fd);
		close(d->px.handoff_fd);
		d->px.handoff_fd = -1;
	}
	listener_stop_all(&d->px);
	links_drain(&d->px); /* GOAWAY: open streams finish, no new ones */
	/* Let go of the listeners' registrations now, not at exit: the shims
	 * hand their listeners to the next daemon as soon as it is up. */
	for (uint32_t i = 0; i < d->px.nslots; i++) {
		struct conn *c = d->px.conns[i];
		if (c && c->kind == CONN_LINK) {
			conn_close(&d->px, c, 0);
		}
	}
}

struct loop *ldmeshd_make_loop(const struct config *cfg)
{
	struct loop *l;
	int err = 0;

	if (cfg->io_backend != CONFIG_IO_EPOLL) {
		l = loop_uring_new(4096, &err);
		if (l) {
			return l;
		}
		if (cfg->io_backend == CONFIG_IO_URING) {
			log_error("io_uring unavailable (%s) and io_backend = \"io_uring\"",
				  strerror(-err));
			return NULL;
		}
		log_warn("io_uring unavailable (%s: kernel.io_uring_disabled or a seccomp "
			 "profile?); using epoll",
			 strerror(-err));
	}
	return loop_epoll_new(1024, &err);
}

int ldmeshd_run(struct ldmeshd *d)
{
	int64_t next_sweep = now_ms() + 1000;

	unprotected_scan(&d->px, now_ms()); /* what listens already gets a longer grace */
	dns_tick(&d->px.dns, d->px.cfg, now_ms()); /* DNS names asked at once */

	while (1) {
		int64_t now;
		int timeout = 1000, r;

		handoff_arm(&d->px);
		ctl_arm(d);
		admin_arm(d);
		if (d->px.l7_detect_armed || dns_busy(&d->px.dns)) {
			/* undecided first lines wait L7_DETECT_MS, not a second; a DNS
			 * answer is read within 50 ms (dns.c) */
			timeout = 50;
		}
		if (d->px.handoff_retry_ms || d->ctl_retry_ms || d->admin_retry_ms ||
		    d->px.listener_retry_ms) {
			timeout = 100; /* an accept waits to be re-armed (EMFILE) */
		}
		if (d->px.rt_next_ms) {
			/* a routed request's timeout, a detection, a pool's idle end */
			int64_t left = d->px.rt_next_ms - now_ms();
			timeout = left <= 0 ? 0 : left < timeout ? (int)left : timeout;
		}
		r = d->px.loop->ops->run(d->px.loop, d->px.nreap ? 0 : timeout, dispatch, d);
		if (r < 0 && r != -EINTR) {
			log_error("event loop: %s", strerror(-r));
			return 1;
		}
		conn_reap(&d->px);
		accesslog_flush(&d->alog);
		now = now_ms();
		if (d->got_hup) {
			char err[512];
			d->got_hup = 0;
			ldmeshd_reload(d, err, sizeof(err));
		}
		if (d->got_term && !d->px.draining) {
			ldmeshd_start_drain(d, d->px.cfg->drain_timeout_ms);
		}
		if (d->px.handoff_retry_ms && now >= d->px.handoff_retry_ms) {
			d->px.handoff_retry_ms = 0;
		}
		if (d->ctl_retry_ms && now >= d->ctl_retry_ms) {
			d->ctl_retry_ms = 0;
		}
		if (d->admin_retry_ms && now >= d->admin_retry_ms) {
			d->admin_retry_ms = 0;
		}
		listener_arm_all(&d->px, now);
		if (d->px.rt_next_ms && now >= d->px.rt_next_ms) {
			route_tick(&d->px, now);
		}
		if (d->px.l7_detect_armed) {
			conn_detect_sweep(&d->px, now);
		}
		if (now >= next_sweep) {
			conn_sweep(&d->px, now);
			links_sweep(&d->px, now);
			identity_check(&d->id, d->px.cfg, now);
			unprotected_scan(&d->px, now);
			dns_tick(&d->px.dns, d->px.cfg, now);
			next_sweep = now + 1000;
		} else if (dns_busy(&d->px.dns)) {
			dns_tick(&d->px.dns, d->px.cfg, now);
		}
		if (d->px.draining) {
			uint32_t live = d->px.live_by_kind[CONN_OUTBOUND] +
					d->px.live_by_kind[CONN_INBOUND];
			if (live == 0 || d->got_int) {
				log_info("drained; exiting");
				return 0;
			}
			if (now >= d->drain_deadline_ms) {
				log_warn("drain timeout: closing %u live connections", live);
				return 0;
			}
		}
	}
}
