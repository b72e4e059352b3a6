/*
 * ldmeshd: arguments, signals, lifecycle.  Owns the one struct ldmeshd and
 * runs its event loop until drained.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ldmeshd.h"
#include "log.h"

/* Its presence tells a preloaded libldmesh.so to stay out of the daemon. */
__attribute__((visibility("default"), used)) const int ldmeshd_is_daemon = 1;

static struct ldmeshd *signal_target;

static void on_signal(int sig)
{
	if (!signal_target) {
		return;
	}
	if (sig == SIGHUP) {
		signal_target->got_hup = 1;
	} else if (sig == SIGINT && signal_target->got_term) {
		signal_target->got_int = 1; /* second Ctrl-C: stop now */
	} else {
		signal_target->got_term = 1;
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: ldmeshd [-c FILE] [--runtime-dir DIR] [--version]\n"
		   "  -c, --config FILE     libconfig file (default: built-in defaults)\n"
		   "  --runtime-dir DIR     where handoff.sock and ctl.sock live\n"
		   "                        (overrides runtime_dir in the config)\n");
}

static void dispatch(void *ctx, uint64_t ud, int res, int more)
{
	struct ldmeshd *d = ctx;
	struct conn *c;

	switch (ud_tag(ud)) {
	case UD_HANDOFF_ACCEPT:
		if (d->handoff_fd < 0) {
			if (res >= 0) {
				close(res);
			}
			if (!more) {
				d->handoff_armed = 0;
			}
			return;
		}
		handoff_accept_done(d, res, more);
		return;
	case UD_CTL_ACCEPT:
		ctl_accept_done(d, res, more);
		return;
	case UD_ADMIN_ACCEPT:
		admin_accept_done(d, res, more);
		return;
	case UD_LISTENER_ACCEPT:
		listener_accept_done(d, ud, res, more);
		return;
	default:
		c = conn_from_ud(d, ud);
		if (c) {
			conn_complete(d, c, ud_tag(ud), res);
		}
	}
}

static int apply_config(struct ldmeshd *d, struct config *cfg)
{
	log_threshold = cfg->log_level;
	if (d->cfg && strcmp(d->cfg->runtime_dir, cfg->runtime_dir) &&
	    strcmp(d->runtime_dir, cfg->runtime_dir)) {
		log_warn("runtime_dir changed to %s; it takes effect at the next start",
			 cfg->runtime_dir);
	}
	config_free(d->cfg);
	d->cfg = cfg;
	return 0;
}

int ldmeshd_reload(struct ldmeshd *d, char *err, size_t errlen)
{
	struct config *cfg, *old;

	if (!d->config_file) {
		snprintf(err, errlen, "running on the built-in default config; nothing to reload");
		return -EINVAL;
	}
	cfg = config_load(d->config_file, err, errlen);
	if (!cfg) {
		log_error("reload rejected, keeping the running config: %s", err);
		return -EINVAL;
	}
	old = d->cfg;
	d->cfg = cfg;
	if (identity_load(d, err, errlen) < 0) {
		log_error("reload rejected, keeping the running config: %s", err);
		d->cfg = old;
		config_free(cfg);
		return -EINVAL;
	}
	d->cfg = old;
	apply_config(d, cfg);
	log_info("configuration reloaded from %s", d->config_file);
	return 0;
}

void ldmeshd_start_drain(struct ldmeshd *d, int timeout_ms)
{
	if (d->draining) {
		return;
	}
	d->draining = 1;
	d->drain_deadline_ms = now_ms() + timeout_ms;
	log_info("draining: no new connections; waiting up to %d ms for %u live ones",
		 timeout_ms, d->live_by_kind[CONN_OUTBOUND] + d->live_by_kind[CONN_INBOUND]);
	/* New shim calls now fail fast (closed), and the next daemon can bind. */
	if (d->handoff_fd >= 0) {
		unlink(d->handoff_path);
		if (d->handoff_armed) {
			d->loop->ops->cancel_fd(d->loop, d->handoff_fd);
		}
		d->loop->ops->forget_fd(d->loop, d->handoff_fd);
		close(d->handoff_fd);
		d->handoff_fd = -1;
	}
	listener_stop_all(d);
}

static struct loop *make_loop(const struct config *cfg)
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

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int run(struct ldmeshd *d)
{
	int64_t next_sweep = now_ms() + 1000;

	while (1) {
		int64_t now;
		int timeout = 1000, r;

		handoff_arm(d);
		ctl_arm(d);
		admin_arm(d);
		r = d->loop->ops->run(d->loop, d->nreap ? 0 : timeout, dispatch, d);
		if (r < 0 && r != -EINTR) {
			log_error("event loop: %s", strerror(-r));
			return 1;
		}
		conn_reap(d);
		now = now_ms();
		if (d->got_hup) {
			char err[512];
			d->got_hup = 0;
			ldmeshd_reload(d, err, sizeof(err));
		}
		if (d->got_term && !d->draining) {
			ldmeshd_start_drain(d, d->cfg->drain_timeout_ms);
		}
		if (d->handoff_retry_ms && now >= d->handoff_retry_ms) {
			d->handoff_retry_ms = 0;
		}
		listener_arm_all(d, now);
		if (now >= next_sweep) {
			conn_sweep(d, now);
			identity_check(d, now);
			next_sweep = now + 1000;
		}
		if (d->draining) {
			uint32_t live = d->live_by_kind[CONN_OUTBOUND] + d->live_by_kind[CONN_INBOUND];
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

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "runtime-dir", required_argument, NULL, 'r' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct ldmeshd daemon_state;
	struct ldmeshd *d = &daemon_state;
	const char *runtime_override = NULL;
	struct sigaction sa;
	char err[512];
	int opt, r;

	unsetenv("LD_PRELOAD"); /* nothing we start should carry the shim */
	while ((opt = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			d->config_file = optarg;
			break;
		case 'r':
			runtime_override = optarg;
			break;
		case 'V':
			printf("ldmeshd %s\n", LDMESH_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 1;
	}
	d->cfg = d->config_file ? config_load(d->config_file, err, sizeof(err)) :
				  config_default(runtime_override, err, sizeof(err));
	if (!d->cfg) {
		fprintf(stderr, "ldmeshd: %s\n", err);
		return 1;
	}
	log_threshold = d->cfg->log_level;
	d->runtime_dir = strdup(runtime_override ? runtime_override : d->cfg->runtime_dir);
	d->handoff_fd = d->ctl_fd = d->admin_fd = -1;
	if (!d->runtime_dir ||
	    snprintf(d->handoff_path, sizeof(d->handoff_path), "%s/%s", d->runtime_dir,
		     LDM_HANDOFF_SOCK) >= (int)sizeof(d->handoff_path) ||
	    snprintf(d->ctl_path, sizeof(d->ctl_path), "%s/%s", d->runtime_dir, LDM_CTL_SOCK) >=
		    (int)sizeof(d->ctl_path)) {
		fprintf(stderr, "ldmeshd: runtime_dir too long\n");
		return 1;
	}
	if (mkdir(d->runtime_dir, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "ldmeshd: cannot create %s: %s\n", d->runtime_dir, strerror(errno));
		return 1;
	}
	raise_nofile();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: the loop's wait returns EINTR */
	sigemptyset(&sa.sa_mask);
	signal_target = d;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	d->start_ms = now_ms();
	if (identity_load(d, err, sizeof(err)) < 0) {
		fprintf(stderr, "ldmeshd: %s\n", err);
		return 1;
	}
	d->loop = make_loop(d->cfg);
	if (!d->loop) {
		return 1;
	}
	if (ctl_open(d) < 0 || admin_open(d) < 0 || handoff_open(d) < 0) {
		return 1;
	}
	log_info("ldmeshd %s ready: %s, io backend %s, config %s", LDMESH_VERSION, d->runtime_dir,
		 loop_backend_name(d->loop), d->config_file ? d->config_file : "(built-in default)");
	r = run(d);
	unlink(d->ctl_path);
	if (d->handoff_fd >= 0) {
		unlink(d->handoff_path);
	}
	d->loop->ops->free(d->loop);
	config_free(d->cfg);
	tls_ctx_unref(d->tls);
	free(d->runtime_dir);
	return r;
}
