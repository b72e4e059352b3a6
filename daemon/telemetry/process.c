/*
 * process_* gauges from /proc, as the Prometheus client libraries compute
 * them (start time = boot time + the process's start in clock ticks).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "telemetry/process.h"
#include "util/strbuf.h"

int process_parse_stat(const char *stat, long ticks, long page, uint64_t btime,
		       struct process_stat *out)
{
	/* The command name is in parentheses and may hold spaces or ')': the
	 * fields start after the last ')'.  Counted from there, state is
	 * field 0; utime 11, stime 12, starttime 19, vsize 20, rss 21. */
	const char *p = strrchr(stat, ')');
	unsigned long long v[22];
	int i;

	if (!p || ticks <= 0 || page <= 0) {
		return -EINVAL;
	}
	p++;
	for (i = 0; i < 22; i++) {
		char *end;

		while (*p == ' ') {
			p++;
		}
		if (i == 0) { /* the state letter */
			if (!*p || *p == ' ') {
				return -EINVAL;
			}
			v[0] = 0;
			while (*p && *p != ' ') {
				p++;
			}
			continue;
		}
		errno = 0;
		/* pid-like fields may be -1: read signed, keep the bits */
		v[i] = (unsigned long long)strtoll(p, &end, 10);
		if (end == p || errno) {
			return -EINVAL;
		}
		p = end;
	}
	out->cpu_seconds = (double)(v[11] + v[12]) / (double)ticks;
	out->start_time = (double)btime + (double)v[19] / (double)ticks;
	out->virtual_bytes = v[20];
	out->resident_bytes = v[21] * (uint64_t)page;
	return 0;
}

int64_t process_parse_btime(const char *proc_stat)
{
	const char *p = proc_stat;

	while (p && *p) {
		if (!strncmp(p, "btime ", 6)) {
			char *end;
			long long v = strtoll(p + 6, &end, 10);
			return end == p + 6 || v < 0 ? -EINVAL : v;
		}
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	return -EINVAL;
}

/* The whole of a small /proc file, NUL-terminated; -errno. */
static int slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), err;
	size_t got = 0;
	ssize_t n;

	if (fd < 0) {
		return -errno;
	}
	while (got < len - 1 && (n = read(fd, buf + got, len - 1 - got)) > 0) {
		got += (size_t)n;
	}
	err = n < 0 ? -errno : 0;
	close(fd);
	buf[got] = '\0';
	return err;
}

static int open_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!dir) {
		return -errno;
	}
	while ((e = readdir(dir))) {
		n += e->d_name[0] != '.';
	}
	closedir(dir);
	return n - 1; /* the directory's own fd */
}

static void gauge(struct strbuf *b, const char *name, const char *type, const char *help,
		  const char *fmt, double v)
{
	sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s ", name, help, name, type, name);
	sb_printf(b, fmt, v);
	sb_printf(b, "\n");
}

void process_render(struct strbuf *b)
{
	/* /proc/stat grows with the CPU count: its btime line comes after
	 * the per-CPU lines, so read enough for a large machine. */
	const size_t syslen = 256 * 1024;
	char *sys = malloc(syslen), stat[1024];
	struct process_stat ps;
	struct rlimit rl;
	int64_t btime;
	int fds;

	if (sys && slurp("/proc/self/stat", stat, sizeof(stat)) == 0 &&
	    slurp("/proc/stat", sys, syslen) == 0 && (btime = process_parse_btime(sys)) >= 0 &&
	    process_parse_stat(stat, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE), (uint64_t)btime,
			       &ps) == 0) {
		gauge(b, "process_cpu_seconds_total", "counter",
		      "Total user and system CPU time spent in seconds.", "%.2f", ps.cpu_seconds);
		gauge(b, "process_start_time_seconds", "gauge",
		      "Start time of the process since unix epoch in seconds.", "%.2f",
		      ps.start_time);
		gauge(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
		      "%.0f", (double)ps.resident_bytes);
		gauge(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
		      "%.0f", (double)ps.virtual_bytes);
	}
	free(sys);
	fds = open_fds();
	if (fds >= 0) {
		gauge(b, "process_open_fds", "gauge", "Number of open file descriptors.", "%.0f",
		      fds);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		gauge(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
		      "%.0f", (double)rl.rlim_cur);
	}
}
