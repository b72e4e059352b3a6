/*
 * A trapped thread's memory and fd table, through /proc.  Reading and
 * writing memory needs ptrace access, which a parent has over its
 * descendants (the launcher is their subreaper, so orphans stay its
 * descendants); the fd table's names and flags need only the same user.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "run.h"

static int mem_io(struct target_mem *m, pid_t tid, uint64_t addr, void *buf, size_t len,
		  int write_it)
{
	ssize_t n;

	if (m->fd >= 0 && m->tid != tid) {
		target_mem_release(m);
	}
	if (m->fd < 0) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/%d/mem", (int)tid);
		m->fd = open(path, O_RDWR | O_CLOEXEC);
		if (m->fd < 0) {
			return -errno;
		}
		m->tid = tid;
	}
	n = write_it ? pwrite(m->fd, buf, len, (off_t)addr) : pread(m->fd, buf, len, (off_t)addr);
	if (n < 0) {
		return -errno;
	}
	return (size_t)n == len ? 0 : -EFAULT;
}

int target_read(struct target_mem *m, pid_t tid, uint64_t addr, void *buf, size_t len)
{
	return mem_io(m, tid, addr, buf, len, 0);
}

int target_write(struct target_mem *m, pid_t tid, uint64_t addr, const void *buf, size_t len)
{
	return mem_io(m, tid, addr, (void *)buf, len, 1);
}

void target_mem_release(struct target_mem *m)
{
	if (m->fd >= 0) {
		close(m->fd);
	}
	m->fd = -1;
	m->tid = 0;
}

static uint64_t link_ino(const char *path)
{
	char buf[64];
	ssize_t n = readlink(path, buf, sizeof(buf) - 1);

	if (n <= 8 || strncmp(buf, "socket:[", 8)) {
		return 0;
	}
	buf[n] = '\0';
	return strtoull(buf + 8, NULL, 10);
}

uint64_t target_sock_ino(pid_t tid, int fd)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)tid, fd);
	return link_ino(path);
}

int target_sock_proto(pid_t tid, int fd, char *buf, size_t len)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)tid, fd);
	n = getxattr(path, "system.sockprotoname", buf, len - 1);
	if (n < 0) {
		return -errno;
	}
	buf[n] = '\0';
	return 0;
}

int target_fd_flags(pid_t tid, int fd, int *status_flags, int *cloexec)
{
	char path[64], line[128];
	FILE *f;
	int r = -ENOENT;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)tid, fd);
	f = fopen(path, "re");
	if (!f) {
		return -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		unsigned int v;

		if (sscanf(line, "flags: %o", &v) == 1) {
			*status_flags = (int)(v & ~(unsigned int)O_CLOEXEC);
			*cloexec = (v & O_CLOEXEC) != 0;
			r = 0;
			break;
		}
	}
	fclose(f);
	return r;
}

pid_t target_tgid(pid_t tid)
{
	char path[64], line[128];
	FILE *f;
	pid_t tgid = tid;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	f = fopen(path, "re");
	if (!f) {
		return tid;
	}
	while (fgets(line, sizeof(line), f)) {
		int v;

		if (sscanf(line, "Tgid: %d", &v) == 1) {
			tgid = v;
			break;
		}
	}
	fclose(f);
	return tgid;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int push(uint64_t **v, long *n, long *cap, uint64_t x)
{
	if (*n == *cap) {
		long nc = *cap ? *cap * 2 : 1024;
		uint64_t *nv = realloc(*v, (size_t)nc * sizeof(**v));

		if (!nv) {
			return -ENOMEM;
		}
		*v = nv;
		*cap = nc;
	}
	(*v)[(*n)++] = x;
	return 0;
}

long target_live_inodes(pid_t self, pid_t also, uint64_t **out)
{
	DIR *proc = opendir("/proc");
	struct dirent *de;
	uint64_t *v = NULL;
	long n = 0, cap = 0;

	if (!proc) {
		return -errno;
	}
	while ((de = readdir(proc))) {
		char path[300];
		struct dirent *fe;
		DIR *fds;
		pid_t pid = (pid_t)atoi(de->d_name);

		if (pid <= 0 || pid == self || pid == also) {
			continue;
		}
		snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
		fds = opendir(path);
		if (!fds) {
			continue; /* gone, or not ours to read: it cannot hold our sockets */
		}
		while ((fe = readdir(fds))) {
			char lp[600];
			uint64_t ino;

			if (fe->d_name[0] == '.') {
				continue;
			}
			snprintf(lp, sizeof(lp), "%s/%s", path, fe->d_name);
			ino = link_ino(lp);
			if (ino && push(&v, &n, &cap, ino) < 0) {
				closedir(fds);
				closedir(proc);
				free(v);
				return -ENOMEM;
			}
		}
		closedir(fds);
	}
	closedir(proc);
	if (n) {
		qsort(v, (size_t)n, sizeof(*v), cmp_u64);
	}
	*out = v;
	return n;
}
