/*
 * fd -> managed socket table.  Slots are atomic pointers in an mmap'ed array
 * sized by the fd hard limit, so the pass-through path can ask "is this fd
 * ours?" with one load and no lock.  Everything else happens under
 * shim.lock.  Dup'ed fds share one struct managed (state belongs to the
 * open file, as in the kernel), reference-counted.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "shim.h"

#define FDTAB_MAX (1 << 20)

int fdtab_init(void)
{
	struct rlimit rl;
	size_t bytes;
	void *p;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_max == RLIM_INFINITY ||
	    rl.rlim_max > FDTAB_MAX) {
		rl.rlim_max = FDTAB_MAX;
	}
	if (rl.rlim_max < 1024) {
		rl.rlim_max = 1024;
	}
	bytes = rl.rlim_max * sizeof(*shim.slots);
	/* Untouched pages cost nothing: a 1M-entry table is 8 MiB of address space. */
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		 -1, 0);
	if (p == MAP_FAILED) {
		return -ENOMEM;
	}
	shim.slots = p;
	shim.cap = (int)rl.rlim_max;
	return 0;
}

int fdtab_maybe(int fd)
{
	if (!atomic_load_explicit(&shim.any_managed, memory_order_acquire)) {
		return 0;
	}
	if (fd < 0 || fd >= shim.cap) {
		return 0;
	}
	return atomic_load_explicit(&shim.slots[fd], memory_order_acquire) != NULL;
}

struct managed *fdtab_lookup(int fd)
{
	struct managed *m;

	if (fd < 0 || fd >= shim.cap) {
		return NULL;
	}
	m = atomic_load(&shim.slots[fd]);
	return m == SHIM_HIDDEN ? NULL : m;
}

int fdtab_is_hidden(int fd)
{
	return fd >= 0 && fd < shim.cap && atomic_load(&shim.slots[fd]) == SHIM_HIDDEN;
}

int fdtab_set(int fd, struct managed *m)
{
	struct managed *old;

	if (fd < 0 || fd >= shim.cap) {
		return -EMFILE;
	}
	m->refs++;
	old = atomic_exchange(&shim.slots[fd], m);
	if (old && old != SHIM_HIDDEN) {
		managed_put(old);
	}
	atomic_store_explicit(&shim.any_managed, 1, memory_order_release);
	return 0;
}

struct managed *fdtab_take(int fd)
{
	struct managed *m;

	if (fd < 0 || fd >= shim.cap) {
		return NULL;
	}
	m = atomic_load(&shim.slots[fd]);
	if (!m || m == SHIM_HIDDEN) {
		return NULL;
	}
	atomic_store(&shim.slots[fd], NULL);
	return m;
}

void fdtab_mark_hidden(int fd)
{
	if (fd >= 0 && fd < shim.cap) {
		atomic_store(&shim.slots[fd], SHIM_HIDDEN);
		atomic_store_explicit(&shim.any_managed, 1, memory_order_release);
	}
}

void fdtab_clear_hidden(int fd)
{
	if (fdtab_is_hidden(fd)) {
		atomic_store(&shim.slots[fd], NULL);
	}
}

struct managed *managed_new(enum managed_kind kind, int family)
{
	struct managed *m = calloc(1, sizeof(*m));

	if (m) {
		m->kind = kind;
		m->family = family;
	}
	return m;
}

void managed_put(struct managed *m)
{
	if (!m || --m->refs > 0) {
		return;
	}
	if (m->reg) {
		listener_put_locked(m->reg);
	}
	free(m);
}

/*
 * The app wants a number we hold (dup2 onto it): move our fd elsewhere and
 * fix the one place that refers to it.
 */
int fdtab_relocate_hidden(int fd)
{
	struct listener_reg *r;
	int nfd = real.fcntl(fd, F_DUPFD_CLOEXEC, 64);

	if (nfd < 0) {
		return -errno;
	}
	fdtab_mark_hidden(nfd);
	for (r = shim.listeners; r; r = r->next) {
		if (r->tcp_fd == fd) {
			r->tcp_fd = nfd;
		}
		if (r->link_fd == fd) {
			r->link_fd = nfd;
		}
	}
	if (shim.wake_rd == fd) {
		shim.wake_rd = nfd;
	}
	if (shim.wake_wr == fd) {
		shim.wake_wr = nfd;
	}
	fdtab_clear_hidden(fd);
	real.close(fd);
	link_monitor_wake();
	return nfd;
}
