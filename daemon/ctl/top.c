/*
 * `ldmeshctl top`; see top.h.  Each refresh fetches cumulative counters and
 * shows the difference from the previous one: requests per second, success
 * rate and p50/p99 (from latency bucket differences) over the last
 * interval, busiest first.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "ldmesh/latency.h"
#include "top.h"

#define NBUCKETS LDM_LATENCY_NBUCKETS
#define MAX_ROWS 256

struct top_row {
	char dir[12];
	unsigned port;
	char peer[512];
	uint64_t requests, success, failure, opened, bytes_in, bytes_out;
	int64_t open;
	uint64_t buckets[NBUCKETS];
	/* differences from the previous snapshot */
	double rps, sr, p50, p99;
	uint64_t d_requests;
};

/* A service's or one of its endpoints' routed requests (`stats raw`
 * lines "svc ..." and "endpoint ..."). */
struct svc_row {
	char svc[256], ep[64], state[12];
	uint64_t requests, success, s5xx, errors, timeouts, retries;
	double ewma_ms;
	/* over the last interval */
	double rps, sr, retry_ps;
};

static struct termios saved_tty;
static volatile sig_atomic_t raw_tty;

/* Quits at once, even mid-fetch; both calls are async-signal-safe. */
static void on_signal(int sig)
{
	(void)sig;
	if (raw_tty) {
		static const char show[] = "\033[?25h\n";
		ssize_t r = write(STDOUT_FILENO, show, sizeof(show) - 1);
		(void)r;
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
	}
	_exit(0);
}

/* A "svc" or "endpoint" line into s; 1 when it was one. */
static int parse_svc(const char *line, struct svc_row *s)
{
	memset(s, 0, sizeof(*s));
	if (sscanf(line, "svc %255s %" SCNu64 " %" SCNu64 " %*u %" SCNu64, s->svc, &s->requests,
		   &s->retries, &s->timeouts) == 4) {
		snprintf(s->ep, sizeof(s->ep), "*");
		return 1;
	}
	return sscanf(line,
		      "endpoint %255s %63s %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
		      " %lf %11s",
		      s->svc, s->ep, &s->requests, &s->success, &s->s5xx, &s->errors, &s->timeouts,
		      &s->ewma_ms, s->state) == 9;
}

/* Parses `stats raw` lines; returns the number of rows, *ns the service
 * rows'. */
static int parse(char *body, struct top_row *rows, int max, struct svc_row *svcs, int *ns)
{
	char *save = NULL, *line;
	int n = 0;

	*ns = 0;
	for (line = strtok_r(body, "\n", &save); line && n < max;
	     line = strtok_r(NULL, "\n", &save)) {
		struct top_row *r = &rows[n];
		char *p = line, *end;
		int k, ok = 1;

		if (*ns < max && parse_svc(line, &svcs[*ns])) {
			(*ns)++;
			continue;
		}
		memset(r, 0, sizeof(*r));
		if (sscanf(p,
			   "%11s %u %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNd64
			   " %" SCNu64 " %" SCNu64,
			   r->dir, &r->port, &r->requests, &r->success, &r->failure, &r->opened,
			   &r->open, &r->bytes_in, &r->bytes_out) != 9)
			continue;
		for (k = 0; k < 9; k++) {
			p = strchr(p, ' ');
			if (!p) {
				ok = 0;
				break;
			}
			p++;
		}
		for (k = 0; ok && k < NBUCKETS; k++) {
			r->buckets[k] = strtoull(p, &end, 10);
			if (end == p || *end != ' ') {
				ok = 0;
				break;
			}
			p = end + 1;
		}
		if (!ok)
			continue;
		snprintf(r->peer, sizeof(r->peer), "%s", strcmp(p, "-") ? p : "(no identity)");
		n++;
	}
	return n;
}

static const struct top_row *find(const struct top_row *rows, int n, const struct top_row *r)
{
	int i;

	for (i = 0; i < n; i++)
		if (rows[i].port == r->port && !strcmp(rows[i].dir, r->dir) &&
		    !strcmp(rows[i].peer, r->peer))
			return &rows[i];
	return NULL;
}

static void diff(struct top_row *cur, int n, const struct top_row *prev, int pn, double secs)
{
	int i, k;

	for (i = 0; i < n; i++) {
		struct top_row *r = &cur[i];
		const struct top_row *p = find(prev, pn, r);
		uint64_t b[NBUCKETS], ok, bad;

		ok = r->success - (p ? p->success : 0);
		bad = r->failure - (p ? p->failure : 0);
		r->d_requests = r->requests - (p ? p->requests : 0);
		r->rps = secs > 0 ? (double)r->d_requests / secs : 0;
		r->sr = ok + bad ? 100.0 * (double)ok / (double)(ok + bad) : -1;
		for (k = 0; k < NBUCKETS; k++)
			b[k] = r->buckets[k] - (p ? p->buckets[k] : 0);
		r->p50 = ldm_latency_quantile(b, 0.5);
		r->p99 = ldm_latency_quantile(b, 0.99);
	}
}

static void svc_diff(struct svc_row *cur, int n, const struct svc_row *prev, int pn, double secs)
{
	int i, j;

	for (i = 0; i < n; i++) {
		struct svc_row *r = &cur[i];
		const struct svc_row *p = NULL;
		uint64_t ok, all;

		for (j = 0; j < pn && !p; j++) {
			if (!strcmp(prev[j].svc, r->svc) && !strcmp(prev[j].ep, r->ep)) {
				p = &prev[j];
			}
		}
		ok = r->success - (p ? p->success : 0);
		all = ok + (r->s5xx - (p ? p->s5xx : 0)) + (r->errors - (p ? p->errors : 0)) +
		      (r->timeouts - (p ? p->timeouts : 0));
		r->rps = secs > 0 ? (double)(r->requests - (p ? p->requests : 0)) / secs : 0;
		r->retry_ps = secs > 0 ? (double)(r->retries - (p ? p->retries : 0)) / secs : 0;
		r->sr = all && strcmp(r->ep, "*") ? 100.0 * (double)ok / (double)all : -1;
	}
}

static void svc_draw(const struct svc_row *rows, int n)
{
	char sr[16], ewma[16];
	int i;

	if (!n) {
		return;
	}
	printf("\n%-20s %-24s %8s %8s %8s %9s %8s %-8s\n", "SERVICE", "ENDPOINT", "RPS", "SUCCESS",
	       "RETRY/S", "TIMEOUTS", "EWMA_MS", "STATE");
	for (i = 0; i < n; i++) {
		const struct svc_row *r = &rows[i];

		snprintf(sr, sizeof(sr), r->sr < 0 ? "-" : "%.2f%%", r->sr);
		snprintf(ewma, sizeof(ewma), strcmp(r->ep, "*") ? "%.1f" : "-", r->ewma_ms);
		if (!strcmp(r->ep, "*")) {
			printf("%-20.20s %-24s %8.1f %8s %8.1f %9" PRIu64 " %8s %-8s\n", r->svc,
			       "(all)", r->rps, sr, r->retry_ps, r->timeouts, ewma, "");
		} else {
			printf("%-20.20s %-24.24s %8.1f %8s %8s %9" PRIu64 " %8s %-8s\n", r->svc,
			       r->ep, r->rps, sr, "", r->timeouts, ewma, r->state);
		}
	}
}

static int by_rps(const void *a, const void *b)
{
	const struct top_row *x = a, *y = b;

	if (x->rps != y->rps)
		return x->rps < y->rps ? 1 : -1;
	return x->port < y->port ? -1 : x->port > y->port;
}

static void draw(const struct top_row *rows, int n, const struct svc_row *svcs, int ns,
		 const char *where, int tty)
{
	char now[32], sr[16], q50[16], q99[16];
	time_t t = time(NULL);
	struct tm tm;
	int i;

	localtime_r(&t, &tm);
	strftime(now, sizeof(now), "%H:%M:%S", &tm);
	if (tty)
		fputs("\033[H\033[2J", stdout);
	printf("ldmeshctl top  %s  %s  (q to quit)\n\n", where, now);
	printf("%-9s %-48s %5s %8s %8s %8s %8s %5s\n", "DIRECTION", "PEER", "PORT", "RPS",
	       "SUCCESS", "P50_MS", "P99_MS", "OPEN");
	for (i = 0; i < n; i++) {
		const struct top_row *r = &rows[i];

		snprintf(sr, sizeof(sr), r->sr < 0 ? "-" : "%.2f%%", r->sr);
		snprintf(q50, sizeof(q50), r->p50 < 0 ? "-" : "%.1f", r->p50);
		snprintf(q99, sizeof(q99), r->p99 < 0 ? "-" : "%.1f", r->p99);
		printf("%-9s %-48.48s %5u %8.1f %8s %8s %8s %5" PRId64 "\n", r->dir, r->peer,
		       r->port, r->rps, sr, q50, q99, r->open);
	}
	if (!n)
		printf("(no traffic yet)\n");
	svc_draw(svcs, ns);
	fflush(stdout);
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int top_run(top_fetch_fn fetch, void *ctx, const char *where)
{
	static struct top_row prev[MAX_ROWS], cur[MAX_ROWS];
	static struct svc_row sprev[MAX_ROWS], scur[MAX_ROWS];
	int spn = 0;
	struct termios raw;
	struct sigaction sa;
	int tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO), watch_in = 1, pn = 0, rc = 0;
	int quit = 0;
	double last = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (tty && tcgetattr(STDIN_FILENO, &saved_tty) == 0) {
		/* Keys without Enter and without echo; Ctrl-C still signals. */
		raw = saved_tty;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 1;
		raw.c_cc[VTIME] = 0;
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
		raw_tty = 1;
		fputs("\033[?25l", stdout); /* hide the cursor */
	} else {
		tty = 0;
	}
	while (!quit) {
		struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
		char *body = NULL;
		double now = mono_s();
		int n, ns;

		rc = fetch(ctx, &body);
		if (rc != 0)
			break;
		n = parse(body, cur, MAX_ROWS, scur, &ns);
		free(body);
		diff(cur, n, prev, pn, last ? now - last : 0);
		svc_diff(scur, ns, sprev, spn, last ? now - last : 0);
		memcpy(prev, cur, sizeof(cur[0]) * (size_t)n);
		memcpy(sprev, scur, sizeof(scur[0]) * (size_t)ns);
		pn = n;
		spn = ns;
		last = now;
		qsort(cur, (size_t)n, sizeof(cur[0]), by_rps);
		draw(cur, n, scur, ns, where, tty);

		/* Wait out the second, answering keys at once. */
		while (!quit && mono_s() - now < 1.0) {
			int left = (int)((1.0 - (mono_s() - now)) * 1000) + 1;

			if (poll(&p, watch_in ? 1 : 0, left) < 0) {
				if (errno == EINTR)
					continue;
				break;
			}
			if (watch_in && (p.revents & (POLLIN | POLLHUP))) {
				char c;
				ssize_t r = read(STDIN_FILENO, &c, 1);

				if (r <= 0)
					watch_in = 0; /* not a terminal, input done: keep going */
				else if (c == 'q' || c == 'Q' || c == 3)
					quit = 1;
			}
		}
	}
	if (tty) {
		raw_tty = 0;
		fputs("\033[?25h", stdout);
		fflush(stdout);
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
	}
	return rc;
}
