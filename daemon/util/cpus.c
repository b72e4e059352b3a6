/*
 * The CPUs this process may use (cpus.h).
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cpus.h"

int cpus_from_cpu_max(const char *text)
{
	long long quota, period;
	char q[32];

	if (!text || sscanf(text, "%31s %lld", q, &period) != 2 || period <= 0) {
		return -1;
	}
	if (!strcmp(q, "max")) {
		return -1;
	}
	quota = strtoll(q, NULL, 10);
	if (quota <= 0) {
		return -1;
	}
	/* 1.5 CPUs of quota keep two threads busy part of the time: two loops
	 * make use of it, one would leave half a CPU unused. */
	return (int)((quota + period - 1) / period);
}

/* The smallest quota on the way from our cgroup up to the root, or -1. */
static int cgroup_quota(void)
{
	char line[4096], path[4200], text[128];
	int best = -1;
	FILE *f;

	f = fopen("/proc/self/cgroup", "re");
	if (!f) {
		return -1;
	}
	path[0] = '\0';
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "0::", 3)) { /* the cgroup v2 hierarchy */
			line[strcspn(line, "\n")] = '\0';
			snprintf(path, sizeof(path), "/sys/fs/cgroup%s", line + 3);
			break;
		}
	}
	fclose(f);
	while (path[0] && path[strlen(path) - 1] == '/') {
		path[strlen(path) - 1] = '\0'; /* "0::/": the root itself */
	}
	while (path[0]) {
		char file[4300];
		char *slash;
		FILE *m;

		snprintf(file, sizeof(file), "%s/cpu.max", path);
		m = fopen(file, "re");
		if (m) {
			if (fgets(text, sizeof(text), m)) {
				int n = cpus_from_cpu_max(text);
				if (n > 0 && (best < 0 || n < best)) {
					best = n;
				}
			}
			fclose(m);
		}
		slash = strrchr(path, '/');
		if (!slash || !strcmp(path, "/sys/fs/cgroup")) {
			break;
		}
		*slash = '\0';
	}
	return best;
}

int cpus_usable(void)
{
	cpu_set_t set;
	int n = 0, q;

	if (sched_getaffinity(0, sizeof(set), &set) == 0) {
		n = CPU_COUNT(&set);
	}
	if (n <= 0) {
		n = 1;
	}
	q = cgroup_quota();
	if (q > 0 && q < n) {
		n = q;
	}
	return n;
}
