/*
 * What this machine can do at most, for the bulk rows of the benchmark
 * (docs/benchmarks.md, "The limits of this machine"):
 *
 *   limits memcpy            memcpy bandwidth on one core, 256 KiB blocks
 *                            (in cache, like socket buffers) and 64 MiB
 *                            (memory): "memcpy_cache_mb_s=X memcpy_mem_mb_s=Y"
 *   limits tcp [MIB [CHUNK]] one plain TCP stream over 127.0.0.1 (default
 *                            2048 MiB in 256 KiB writes): a writer thread,
 *                            a reader thread, "tcp_mb_s=X cpu_ms_per_mib=Y"
 *
 * Numbers are MB/s (10^6 bytes), like curl's.  Run it in the benchmark's
 * own network namespace; it uses loopback only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

/* Copies size-byte blocks back and forth for about a second; MB/s. */
static double copy_rate(size_t size)
{
	char *a = malloc(size), *b = malloc(size);
	volatile char sink;
	double t0, t;
	size_t n = 0;

	if (!a || !b) {
		fprintf(stderr, "limits: out of memory\n");
		exit(1);
	}
	memset(a, 1, size);
	memset(b, 2, size);
	t0 = now_s();
	do {
		for (int i = 0; i < 16; i++) {
			memcpy(i & 1 ? a : b, i & 1 ? b : a, size);
			n += size;
		}
		t = now_s() - t0;
	} while (t < 1.0);
	sink = a[size / 2] ^ b[size / 3];
	(void)sink;
	free(a);
	free(b);
	return n / t / 1e6;
}

struct reader {
	int fd;
	size_t chunk;
	uint64_t got;
};

static void *read_all(void *arg)
{
	struct reader *r = arg;
	char *buf = malloc(r->chunk);
	ssize_t n;

	if (!buf) {
		return NULL;
	}
	while ((n = read(r->fd, buf, r->chunk)) > 0) {
		r->got += (uint64_t)n;
	}
	free(buf);
	return NULL;
}

static int tcp_stream(uint64_t total, size_t chunk)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int ls = socket(AF_INET, SOCK_STREAM, 0), w, one = 1;
	struct reader r = {.chunk = chunk};
	pthread_t th;
	char *buf = malloc(chunk);
	uint64_t sent = 0;
	double t0, c0, t, c;

	if (ls < 0 || !buf || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(ls, (struct sockaddr *)&sa, sizeof(sa)) || listen(ls, 1) ||
	    getsockname(ls, (struct sockaddr *)&sa, &len)) {
		fprintf(stderr, "limits: listen on 127.0.0.1: %s\n", strerror(errno));
		return 1;
	}
	w = socket(AF_INET, SOCK_STREAM, 0);
	if (w < 0 || connect(w, (struct sockaddr *)&sa, sizeof(sa)) ||
	    (r.fd = accept(ls, NULL, NULL)) < 0) {
		fprintf(stderr, "limits: connect over loopback: %s\n", strerror(errno));
		return 1;
	}
	memset(buf, 'x', chunk);
	t0 = now_s();
	c0 = cpu_s();
	if (pthread_create(&th, NULL, read_all, &r)) {
		fprintf(stderr, "limits: pthread_create failed\n");
		return 1;
	}
	while (sent < total) {
		size_t want = total - sent < chunk ? (size_t)(total - sent) : chunk;
		ssize_t n = write(w, buf, want);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			fprintf(stderr, "limits: write: %s\n", strerror(errno));
			return 1;
		}
		sent += (uint64_t)n;
	}
	shutdown(w, SHUT_WR);
	pthread_join(th, NULL);
	t = now_s() - t0;
	c = cpu_s() - c0;
	if (r.got != total) {
		fprintf(stderr, "limits: read %llu of %llu bytes\n", (unsigned long long)r.got,
			(unsigned long long)total);
		return 1;
	}
	printf("tcp_mb_s=%.0f cpu_ms_per_mib=%.3f\n", total / t / 1e6,
	       c * 1e3 / (total / 1048576.0));
	close(w);
	close(r.fd);
	close(ls);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "memcpy")) {
		double cache = copy_rate(256 * 1024), mem = copy_rate(64 * 1024 * 1024);
		printf("memcpy_cache_mb_s=%.0f memcpy_mem_mb_s=%.0f\n", cache, mem);
		return 0;
	}
	if (argc >= 2 && !strcmp(argv[1], "tcp")) {
		uint64_t mib = argc >= 3 ? strtoull(argv[2], NULL, 10) : 2048;
		size_t chunk = argc >= 4 ? strtoul(argv[3], NULL, 10) : 256 * 1024;
		if (!mib || !chunk) {
			fprintf(stderr, "limits: tcp MIB CHUNK must be positive\n");
			return 2;
		}
		return tcp_stream(mib << 20, chunk);
	}
	fprintf(stderr, "usage: limits memcpy | limits tcp [MIB [CHUNK]]\n");
	return 2;
}
