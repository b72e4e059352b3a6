/*
 * The standard process_* gauges every Prometheus client exports, which
 * Linkerd's dashboards use too (their namespace and pod pickers are built
 * from process_start_time_seconds).  Read from /proc at each scrape.
 */
#ifndef LDMESH_PROCESS_H
#define LDMESH_PROCESS_H

#include <stdint.h>

struct strbuf;

struct process_stat {
	double cpu_seconds; /* user + system */
	double start_time; /* Unix time, seconds */
	uint64_t virtual_bytes, resident_bytes;
};

/*
 * Parses the text of /proc/<pid>/stat (stat) with the clock ticks per
 * second, the page size and the boot time from /proc/stat (btime, Unix
 * seconds).  Returns 0, or -EINVAL when stat is not in that format.
 */
int process_parse_stat(const char *stat, long ticks, long page, uint64_t btime,
		       struct process_stat *out);

/* The boot time from the text of /proc/stat; -EINVAL when it has none. */
int64_t process_parse_btime(const char *proc_stat);

/* process_cpu_seconds_total, process_start_time_seconds,
 * process_resident_memory_bytes, process_virtual_memory_bytes,
 * process_open_fds and process_max_fds of this process.  A /proc file
 * that cannot be read leaves its gauges out rather than writing a zero. */
void process_render(struct strbuf *b);

#endif
