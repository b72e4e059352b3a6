/*
 * Resident-but-free heap, and trimming it (heap.h).
 */
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "util/heap.h"

/* Resident pages that are not file-backed, in bytes: statm's resident
 * minus shared (RssFile + RssShmem; shmem is not ours to trim anyway). */
static size_t anon_resident(void)
{
	char buf[128];
	unsigned long size, resident, shared;
	ssize_t n;
	int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		return 0;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0) {
		return 0;
	}
	buf[n] = '\0';
	if (sscanf(buf, "%lu %lu %lu", &size, &resident, &shared) != 3 || resident < shared) {
		return 0;
	}
	return (resident - shared) * (size_t)sysconf(_SC_PAGESIZE);
}

size_t heap_slack(void)
{
	struct mallinfo2 mi = mallinfo2();
	size_t used = mi.uordblks + mi.hblkhd;
	size_t anon = anon_resident();

	return anon > used ? anon - used : 0;
}

size_t heap_trim(void)
{
	size_t before = heap_slack();
	size_t after;

	malloc_trim(0);
	after = heap_slack();
	return before > after ? before - after : 0;
}
