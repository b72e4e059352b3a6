/*
 * close, close_range, dup, dup2, dup3, fcntl(F_DUPFD*): keep the fd table
 * in step with the app's fd numbers, and keep the app's hands off the
 * shim's own hidden fds.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <unistd.h>

#include "shim.h"

SHIM_EXPORT int close(int fd)
{
	struct managed *m;
	sigset_t saved;
	int r;

	if (!fdtab_maybe(fd)) {
		shim_init();
		return real.close(fd);
	}
	shim_lock(&saved);
	if (fdtab_is_hidden(fd)) {
		/* Not the app's fd, so from its point of view it is not open. */
		shim_unlock(&saved);
		errno = EBADF;
		return -1;
	}
	m = fdtab_take(fd);
	if (m && m->kind == MANAGED_CONN && m->linger0 && m->refs == 1 && m->cookie) {
		/* The last fd of a connection set to reset on close. */
		link_reset(m->cookie);
	}
	r = real.close(fd);
	managed_put(m);
	shim_unlock(&saved);
	return r;
}

/* Forgets the entries of [lo, hi]: the caller closes the range itself. */
static void forget_range(unsigned int lo, unsigned int hi)
{
	unsigned int fd;

	for (fd = lo; fd <= hi && fd < (unsigned int)shim.cap; fd++) {
		if (!fdtab_is_hidden((int)fd)) {
			managed_put(fdtab_take((int)fd));
		}
	}
}

SHIM_EXPORT int close_range(unsigned int lo, unsigned int hi, int flags)
{
	sigset_t saved;
	unsigned int fd, start;
	int r = 0;

	shim_init();
	if (!atomic_load(&shim.any_managed) || !real.close_range) {
		return real.close_range ? real.close_range(lo, hi, flags) : (errno = ENOSYS, -1);
	}
	shim_lock(&saved);
	if (flags & CLOSE_RANGE_CLOEXEC) {
		/* Marking close-on-exec is harmless to our fds: they already are. */
		r = real.close_range(lo, hi, flags);
		shim_unlock(&saved);
		return r;
	}
	/* Close around hidden fds, as if they were not there. */
	start = lo;
	for (fd = lo; fd <= hi && fd < (unsigned int)shim.cap; fd++) {
		if (fdtab_is_hidden((int)fd)) {
			if (fd > start) {
				forget_range(start, fd - 1);
				r |= real.close_range(start, fd - 1, flags);
			}
			start = fd + 1;
		}
	}
	if (start <= hi) {
		forget_range(start, hi);
		r |= real.close_range(start, hi, flags);
	}
	shim_unlock(&saved);
	return r ? -1 : 0;
}

/* newfd now names the same open file as oldfd. */
static void share_entry(int oldfd, int newfd)
{
	struct managed *m = fdtab_lookup(oldfd);

	if (m) {
		fdtab_set(newfd, m);
	}
}

/* Makes room at `newfd` when the app targets a number we hold. */
static int free_target(int newfd)
{
	if (fdtab_is_hidden(newfd)) {
		int r = fdtab_relocate_hidden(newfd);
		return r < 0 ? r : 0;
	}
	return 0;
}

static int dup_to(int oldfd, int newfd, int flags, int use_dup3)
{
	struct managed *old;
	sigset_t saved;
	int r;

	shim_init();
	if (!fdtab_maybe(oldfd) && !fdtab_maybe(newfd)) {
		return use_dup3 ? real.dup3(oldfd, newfd, flags) : real.dup2(oldfd, newfd);
	}
	shim_lock(&saved);
	if (fdtab_is_hidden(oldfd)) {
		shim_unlock(&saved);
		errno = EBADF;
		return -1;
	}
	r = free_target(newfd);
	if (r < 0) {
		shim_unlock(&saved);
		errno = -r;
		return -1;
	}
	r = use_dup3 ? real.dup3(oldfd, newfd, flags) : real.dup2(oldfd, newfd);
	if (r >= 0 && oldfd != newfd) {
		old = fdtab_take(newfd);
		managed_put(old);
		share_entry(oldfd, newfd);
	}
	shim_unlock(&saved);
	return r;
}

SHIM_EXPORT int dup2(int oldfd, int newfd)
{
	return dup_to(oldfd, newfd, 0, 0);
}

SHIM_EXPORT int dup3(int oldfd, int newfd, int flags)
{
	return dup_to(oldfd, newfd, flags, 1);
}

SHIM_EXPORT int dup(int oldfd)
{
	sigset_t saved;
	int r;

	shim_init();
	if (!fdtab_maybe(oldfd)) {
		return real.dup(oldfd);
	}
	shim_lock(&saved);
	if (fdtab_is_hidden(oldfd)) {
		shim_unlock(&saved);
		errno = EBADF;
		return -1;
	}
	r = real.dup(oldfd);
	if (r >= 0) {
		share_entry(oldfd, r);
	}
	shim_unlock(&saved);
	return r;
}

static int do_fcntl(int (*fn)(int, int, ...), int fd, int cmd, unsigned long arg)
{
	sigset_t saved;
	int r;

	if ((cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC) || !fdtab_maybe(fd)) {
		return fn(fd, cmd, arg);
	}
	shim_lock(&saved);
	if (fdtab_is_hidden(fd)) {
		shim_unlock(&saved);
		errno = EBADF;
		return -1;
	}
	r = fn(fd, cmd, arg);
	if (r >= 0) {
		share_entry(fd, r);
	}
	shim_unlock(&saved);
	return r;
}

/* fcntl is variadic; every command's argument fits an unsigned long. */
SHIM_EXPORT int fcntl(int fd, int cmd, ...)
{
	unsigned long arg;
	va_list ap;

	va_start(ap, cmd);
	arg = va_arg(ap, unsigned long);
	va_end(ap);
	shim_init();
	return do_fcntl(real.fcntl, fd, cmd, arg);
}

SHIM_EXPORT int fcntl64(int fd, int cmd, ...)
{
	unsigned long arg;
	va_list ap;

	va_start(ap, cmd);
	arg = va_arg(ap, unsigned long);
	va_end(ap);
	shim_init();
	return do_fcntl(real.fcntl64, fd, cmd, arg);
}
