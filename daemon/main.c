/*
 * ldmeshd: arguments, signals, lifecycle.  Owns the one struct ldmeshd and
 * runs its event loop until drained.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ldmeshd.h"
#include "util/log.h"

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

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"runtime-dir", required_argument, NULL, 'r'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static struct ldmeshd daemon_state;
	struct ldmeshd *d = &daemon_state;
	const char *runtime_override = NULL;
	struct sigaction sa;
	struct policy_set *policy;
	char err[512];
	int opt, r, nworkers;

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
	d->px.cfg = d->config_file ? config_load(d->config_file, err, sizeof(err))
				   : config_default(runtime_override, err, sizeof(err));
	if (!d->px.cfg) {
		fprintf(stderr, "ldmeshd: %s\n", err);
		return 1;
	}
	log_threshold = d->px.cfg->log_level;
	d->runtime_dir = strdup(runtime_override ? runtime_override : d->px.cfg->runtime_dir);
	d->px.handoff_fd = d->ctl_fd = d->px.admin_fd = d->px.links.listen_fd = -1;
	d->px.owner = d;
	pthread_mutex_init(&d->px.dials.lock, NULL);
	pthread_mutex_init(&d->pub_lock, NULL);
	pthread_mutex_init(&d->alog_lock, NULL);
	pthread_mutex_init(&d->call_lock, NULL);
	pthread_cond_init(&d->call_cond, NULL);
	accesslog_init(&d->alog);
	d->px.id = &d->id;
	d->px.tel = &d->tel;
	d->px.alog = &d->alog;
	if (!d->runtime_dir ||
	    snprintf(d->px.handoff_path, sizeof(d->px.handoff_path), "%s/%s", d->runtime_dir,
		     LDM_HANDOFF_SOCK) >= (int)sizeof(d->px.handoff_path) ||
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
	/* Connection buffers (64 KiB and up) come from mmap, so the memory an
	 * idle connection gives back (conn.c, parking) leaves the process
	 * instead of sitting in the heap.  Setting it also stops glibc from
	 * raising the threshold on its own. */
	mallopt(M_MMAP_THRESHOLD, 48 * 1024);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: the loop's wait returns EINTR */
	sigemptyset(&sa.sa_mask);
	signal_target = d;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	d->start_ms = now_ms();
	if (identity_load(&d->id, d->px.cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "ldmeshd: %s\n", err);
		return 1;
	}
	d->px.policy = policy_compile(d->px.cfg, err, sizeof(err));
	if (!d->px.policy) {
		fprintf(stderr, "ldmeshd: %s\n", err);
		return 1;
	}
	if (tel_init(&d->tel, d->px.cfg->max_series) < 0) {
		fprintf(stderr, "ldmeshd: out of memory\n");
		return 1;
	}
	if (accesslog_configure(&d->alog, d->px.cfg->access_log, err, sizeof(err)) < 0) {
		fprintf(stderr, "ldmeshd: %s\n", err);
		return 1;
	}
	d->px.loop = ldmeshd_make_loop(d->px.cfg);
	if (!d->px.loop) {
		return 1;
	}
	nworkers = workers_wanted(d->px.cfg);
	policy = d->px.policy;
	/* From here the config and policy are the loops' (counted). */
	if (workers_publish(d, d->px.cfg, policy) < 0) {
		fprintf(stderr, "ldmeshd: out of memory\n");
		return 1;
	}
	unprotected_init(&d->px.unprot);
	balancer_init(&d->px.bal);
	dns_init(&d->px.dns, &d->px.bal);
	if (ctl_open(d) < 0 || admin_open(d) < 0 || links_open(&d->px) < 0) {
		return 1;
	}
	/* The other loops accept on copies of the handoff socket, made before
	 * any loop turns: shims that connect meanwhile wait in its backlog. */
	if (handoff_open(&d->px) < 0 || workers_start(d, nworkers) < 0) {
		return 1;
	}
	log_info("ldmeshd %s ready: %s, io backend %s, %d worker%s, config %s", LDMESH_VERSION,
		 d->runtime_dir, loop_backend_name(d->px.loop), d->nworkers,
		 d->nworkers == 1 ? "" : "s",
		 d->config_file ? d->config_file : "(built-in default)");
	r = ldmeshd_run(d->workers[0]);
	workers_stop(d);
	links_close_all(&d->px);
	admin_close(d);
	ldmeshd_unlink_if_ours(d->ctl_path, d->ctl_ino);
	if (d->px.handoff_fd >= 0) {
		ldmeshd_unlink_if_ours(d->px.handoff_path, d->px.handoff_ino);
	}
	d->px.loop->ops->free(d->px.loop);
	unprotected_fini(&d->px.unprot);
	dns_fini(&d->px.dns); /* its answers go to the balancer */
	balancer_fini(&d->px.bal);
	accesslog_fini(&d->alog);
	tel_fini(&d->tel);
	identity_free(&d->id);
	workers_publish_end(d); /* the last references to the config and SVID */
	free(d->runtime_dir);
	return r;
}
