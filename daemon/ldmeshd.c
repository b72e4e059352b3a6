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
	struct worker *w = ctx;
	struct ldmeshd *d = w->d;
	struct proxy *px = w->px;
	struct conn *c;

	switch (ud_tag(ud)) {
	case UD_HANDOFF_ACCEPT:
		if (px->handoff_fd < 0) {
			if (res >= 0) {
				close(res);
			}
			if (!more) {
				px->handoff_armed = 0;
			}
			return;
		}
		handoff_accept_done(px, res, more);
		return;
	case UD_CTL_ACCEPT:
		ctl_accept_done(d, res, more);
		return;
	case UD_ADMIN_ACCEPT:
		admin_accept_done(d, res, more);
		return;
	case UD_LISTENER_ACCEPT:
		listener_accept_done(px, ud, res, more);
		return;
	case UD_WORKER_WAKE:
		workers_wake_done(w, res);
		return;
	case UD_PLINK_ACCEPT:
	case UD_PLINK_DIAL:
	case UD_PLINK_RECV:
	case UD_PLINK_SEND:
	case UD_PLINK_POLL:
	case UD_PLINK_KICK:
		links_complete(px, ud, res, more);
		return;
	default:
		c = conn_from_ud(px, ud);
		if (c) {
			conn_complete(px, c, ud_tag(ud), res);
		}
	}
}

/* What a reload cannot change while running, said once. */
static void apply_config(struct ldmeshd *d, const struct config *cfg)
{
	log_threshold = cfg->log_level;
	if (d->px.cfg && strcmp(d->px.cfg->runtime_dir, cfg->runtime_dir) &&
	    strcmp(d->runtime_dir, cfg->runtime_dir)) {
		log_warn("runtime_dir changed to %s; it takes effect at the next start",
			 cfg->runtime_dir);
	}
	if (workers_wanted(cfg) != d->nworkers) {
		log_warn("workers would now be %d (running %d); it takes effect at the next start",
			 workers_wanted(cfg), d->nworkers);
	}
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
	apply_config(d, cfg); /* tel_set_max() is each loop's, at adoption */
	/* In-flight requests already have their decision; new ones use this.
	 * Every loop adopts it at its next turn; the old one is freed when
	 * the last lets go of it. */
	if (workers_publish(d, cfg, policy) < 0) {
		snprintf(err, errlen, "out of memory");
		goto err_free_policy;
	}
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

void ldmeshd_drain_loop(struct worker *w)
{
	struct proxy *px = w->px;

	if (px->draining) {
		return;
	}
	px->draining = 1;
	atomic_store(&w->draining, 1);
	/* New shim calls now fail fast (closed), and the next daemon can bind. */
	if (px->handoff_fd >= 0) {
		if (w->index == 0) {
			ldmeshd_unlink_if_ours(px->handoff_path, px->handoff_ino);
		}
		if (px->handoff_armed) {
			px->loop->ops->cancel_fd(px->loop, px->handoff_fd);
		}
		px->loop->ops->forget_fd(px->loop, px->handoff_fd);
		close(px->handoff_fd);
		px->handoff_fd = -1;
	}
	listener_stop_all(px);
	links_drain(px); /* GOAWAY: open streams finish, no new ones */
	/* Let go of the listeners' registrations now, not at exit: the shims
	 * hand their listeners to the next daemon as soon as it is up. */
	for (uint32_t i = 0; i < px->nslots; i++) {
		struct conn *c = px->conns[i];
		if (c && c->kind == CONN_LINK) {
			conn_close(px, c, 0);
		}
	}
}

void ldmeshd_start_drain(struct ldmeshd *d, int timeout_ms)
{
	struct worker *w0 = d->workers[0];

	if (d->px.draining) {
		return;
	}
	d->drain_deadline_ms = w0->drain_deadline_ms = now_ms() + timeout_ms;
	log_info("draining: no new connections; waiting up to %d ms for %u live ones", timeout_ms,
		 d->px.live_by_kind[CONN_OUTBOUND] + d->px.live_by_kind[CONN_INBOUND]);
	ldmeshd_drain_loop(w0);
	workers_drain_others(d, timeout_ms);
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

int ldmeshd_run(struct worker *w)
{
	struct ldmeshd *d = w->d;
	struct proxy *px = w->px;
	int main_loop = w->index == 0;
	int64_t next_sweep = now_ms() + 1000;

	if (main_loop) {
		unprotected_scan(px, now_ms()); /* what listens already gets a longer grace */
	}
	dns_tick(&px->dns, px->cfg, now_ms()); /* DNS names asked at once */

	while (1) {
		int64_t now;
		int timeout = 1000, r;

		handoff_arm(px);
		workers_arm_wake(w);
		if (main_loop) {
			ctl_arm(d);
			admin_arm(d);
		}
		if (px->l7_detect_armed || dns_busy(&px->dns)) {
			/* undecided first lines wait L7_DETECT_MS, not a second; a DNS
			 * answer is read within 50 ms (dns.c) */
			timeout = 50;
		}
		if (px->handoff_retry_ms || px->listener_retry_ms ||
		    (main_loop && (d->ctl_retry_ms || d->admin_retry_ms))) {
			timeout = 100; /* an accept waits to be re-armed (EMFILE) */
		}
		if (main_loop && px->draining && d->nworkers > 1) {
			timeout = 100; /* the other loops' end is not an event here */
		}
		if (px->rt_next_ms) {
			/* a routed request's timeout, a detection, a pool's idle end */
			int64_t left = px->rt_next_ms - now_ms();
			timeout = left <= 0 ? 0 : left < timeout ? (int)left : timeout;
		}
		r = px->loop->ops->run(px->loop, px->nreap ? 0 : timeout, dispatch, w);
		if (r < 0 && r != -EINTR) {
			log_error("event loop %d: %s", w->index, strerror(-r));
			return 1;
		}
		conn_reap(px);
		accesslog_flush(w->alog);
		workers_turn(w);
		now = now_ms();
		if (main_loop) {
			if (d->got_hup) {
				char err[512];
				d->got_hup = 0;
				ldmeshd_reload(d, err, sizeof(err));
			}
			if (d->got_term && !px->draining) {
				ldmeshd_start_drain(d, px->cfg->drain_timeout_ms);
			}
			if (d->got_int && !atomic_load(&d->stop)) {
				atomic_store(&d->stop, 1);
				workers_wake_all(d);
			}
			if (d->ctl_retry_ms && now >= d->ctl_retry_ms) {
				d->ctl_retry_ms = 0;
			}
			if (d->admin_retry_ms && now >= d->admin_retry_ms) {
				d->admin_retry_ms = 0;
			}
		}
		if (px->handoff_retry_ms && now >= px->handoff_retry_ms) {
			px->handoff_retry_ms = 0;
		}
		listener_arm_all(px, now);
		if (px->rt_next_ms && now >= px->rt_next_ms) {
			route_tick(px, now);
		}
		if (px->l7_detect_armed) {
			conn_detect_sweep(px, now);
		}
		if (now >= next_sweep) {
			conn_sweep(px, now);
			links_sweep(px, now);
			if (main_loop) {
				identity_check(&d->id, px->cfg, now);
				workers_publish_identity(d); /* a rotation reaches every loop */
				unprotected_scan(px, now);
			}
			dns_tick(&px->dns, px->cfg, now);
			next_sweep = now + 1000;
		} else if (dns_busy(&px->dns)) {
			dns_tick(&px->dns, px->cfg, now);
		}
		if (px->draining || atomic_load(&d->stop)) {
			uint32_t live =
				px->live_by_kind[CONN_OUTBOUND] + px->live_by_kind[CONN_INBOUND];
			int stop = atomic_load(&d->stop);

			if (!main_loop) {
				if (live == 0 || stop || now >= w->drain_deadline_ms) {
					if (live && !stop) {
						log_warn("loop %d: drain timeout: closing %u live "
							 "connections",
							 w->index, live);
					}
					return 0;
				}
				continue;
			}
			if (!stop && ctl_answering(d) && now < d->drain_deadline_ms) {
				continue; /* `drain` gets its answer before we go */
			}
			if ((live == 0 && workers_others_done(d)) || stop) {
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
