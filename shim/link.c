/*
 * Unix connections to the daemon: one short connection per handoff or query,
 * and one long-lived connection per registered listener, watched by a
 * monitor thread that re-registers listeners when the daemon restarts.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

static int try_connect(const char *bind_name)
{
	struct ucred cred;
	int s = wire_connect(shim.handoff_path, bind_name, &cred);

	if (s >= 0 && cred.pid) {
		shim.daemon_uid = cred.uid;
	}
	return s;
}

int link_open(int wait, const char *bind_name)
{
	int64_t deadline;
	int s = try_connect(bind_name);

	if (s >= 0) {
		atomic_store(&shim.ready_seen, 1);
		return s;
	}
	/* Only the first call waits: it covers the app-before-sidecar race. */
	if (!wait || atomic_load(&shim.ready_seen) || shim.wait_ready_ms == 0) {
		return s;
	}
	deadline = wire_now_ms() + shim.wait_ready_ms;
	shim_log(SHIM_INFO, "waiting up to %d ms for ldmeshd at %s", shim.wait_ready_ms,
		 shim.handoff_path);
	while (wire_now_ms() < deadline) {
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
		s = try_connect(bind_name);
		if (s >= 0) {
			atomic_store(&shim.ready_seen, 1);
			return s;
		}
	}
	atomic_store(&shim.ready_seen, 1); /* later calls fail fast */
	return s;
}

int link_query(uint64_t cookie, struct ldm_status *st)
{
	struct ldm_handoff h;
	int s, r;

	s = link_open(0, NULL);
	if (s < 0) {
		return s;
	}
	wire_fill_header(&h, LDM_OP_QUERY, cookie);
	r = wire_send(s, &h, NULL, 0, NULL, 0);
	if (r == 0) {
		r = wire_recv_status(s, st, 5000);
	}
	real.close(s);
	return r;
}

int link_reset(uint64_t cookie)
{
	struct ldm_handoff h;
	struct ldm_status st;
	int s, r;

	s = link_open(0, NULL);
	if (s < 0) {
		return s;
	}
	wire_fill_header(&h, LDM_OP_RESET, cookie);
	r = wire_send(s, &h, NULL, 0, NULL, 0);
	if (r == 0) {
		/* Wait for the answer: the reset must beat our close's FIN. */
		r = wire_recv_status(s, &st, 1000);
	}
	real.close(s);
	return r;
}

/* Moves an fd of ours above the numbers apps usually pick, and hides it. */
static int hide_fd(int fd)
{
	int nfd = real.fcntl(fd, F_DUPFD_CLOEXEC, 100);

	if (nfd < 0) {
		nfd = real.fcntl(fd, F_DUPFD_CLOEXEC, 3);
	}
	if (nfd < 0) {
		return -errno;
	}
	real.close(fd);
	fdtab_mark_hidden(nfd);
	return nfd;
}

/* Called with shim.lock held. */
int link_register_listener(struct listener_reg *reg, int wait)
{
	struct ldm_handoff h;
	struct ldm_status st;
	int s, r;

	s = link_open(wait, NULL);
	if (s < 0) {
		return s;
	}
	wire_fill_header(&h, LDM_OP_LISTEN, reg->id);
	h.flags = LDM_HF_TAKES_SOCKET;
	h.addr = reg->addr;
	h.backlog = (uint32_t)reg->backlog;
	memcpy(h.listen_name, reg->name, sizeof(h.listen_name));
	r = wire_send(s, &h, &reg->tcp_fd, 1, NULL, 0);
	if (r == 0) {
		r = wire_recv_status(s, &st, 5000);
	}
	if (r == 0 && st.err) {
		r = st.err;
	}
	if (r < 0) {
		real.close(s);
		return r;
	}
	r = hide_fd(s);
	if (r < 0) {
		real.close(s);
		return r;
	}
	reg->link_fd = r;
	return 0;
}

void listener_put_locked(struct listener_reg *reg)
{
	struct listener_reg **pp;

	if (--reg->refs > 0) {
		return;
	}
	for (pp = &shim.listeners; *pp; pp = &(*pp)->next) {
		if (*pp == reg) {
			*pp = reg->next;
			break;
		}
	}
	/* Closing the link tells the daemon to let go of the TCP listener. */
	if (reg->link_fd >= 0) {
		fdtab_clear_hidden(reg->link_fd);
		real.close(reg->link_fd);
	}
	if (reg->tcp_fd >= 0) {
		fdtab_clear_hidden(reg->tcp_fd);
		real.close(reg->tcp_fd);
	}
	free(reg);
	link_monitor_wake();
}

void link_monitor_wake(void)
{
	if (shim.wake_wr >= 0 && shim.monitor_pid == shim.pid) {
		char c = 1;
		if (write(shim.wake_wr, &c, 1) < 0) {
			/* Pipe full: the monitor is already due to wake. */
		}
	}
}

#define MONITOR_MAX 256

/* Set by a new monitor thread as its first act: see link_monitor_ensure(). */
static atomic_int monitor_running;

/*
 * Watches every listener's link.  End-of-file on a link means the daemon
 * went away: the TCP listener stays bound (we hold it), and we hand it to
 * the daemon again as soon as it is back.
 */
static void *monitor_main(void *arg)
{
	struct pollfd pfd[MONITOR_MAX + 1];
	uint64_t ids[MONITOR_MAX + 1];
	sigset_t all;
	int retry_ms = 200; /* doubles while the daemon stays away or refuses */

	atomic_store(&monitor_running, 1);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		struct listener_reg *r;
		sigset_t saved;
		int n = 1, down = 0, i;

		shim_lock(&saved);
		if (shim.monitor_pid != shim.pid) {
			shim_unlock(&saved);
			return NULL;
		}
		pfd[0] = (struct pollfd){.fd = shim.wake_rd, .events = POLLIN};
		for (r = shim.listeners; r && n <= MONITOR_MAX; r = r->next) {
			if (r->link_fd < 0) {
				if (link_register_listener(r, 0) == 0) {
					shim_log(SHIM_INFO,
						 "listener %s re-registered with ldmeshd", r->name);
				} else {
					down = 1;
					continue;
				}
			}
			pfd[n] = (struct pollfd){.fd = r->link_fd, .events = POLLIN};
			ids[n++] = r->id;
		}
		shim_unlock(&saved);

		if (!down) {
			retry_ms = 200;
		}
		if (poll(pfd, (nfds_t)n, down ? retry_ms : -1) <= 0) {
			if (down && retry_ms < 5000) {
				retry_ms *= 2;
			}
			continue;
		}
		if (pfd[0].revents) {
			char buf[64];
			while (read(pfd[0].fd, buf, sizeof(buf)) > 0) {
			}
		}
		shim_lock(&saved);
		for (i = 1; i < n; i++) {
			if (!pfd[i].revents) {
				continue;
			}
			for (r = shim.listeners; r; r = r->next) {
				if (r->id == ids[i] && r->link_fd == pfd[i].fd) {
					shim_log(SHIM_INFO, "ldmeshd went away; holding %s",
						 r->name);
					fdtab_clear_hidden(r->link_fd);
					real.close(r->link_fd);
					r->link_fd = -1;
				}
			}
		}
		shim_unlock(&saved);
	}
	return NULL;
}

/* Called with shim.lock held. */
void link_monitor_ensure(void)
{
	pthread_attr_t attr;
	pthread_t t;
	int p[2];

	if (shim.monitor_pid == shim.pid || !shim.listeners) {
		return;
	}
	/* A fork child shares the parent's pipe: make its own. */
	if (shim.wake_rd >= 0) {
		fdtab_clear_hidden(shim.wake_rd);
		fdtab_clear_hidden(shim.wake_wr);
		real.close(shim.wake_rd);
		real.close(shim.wake_wr);
		shim.wake_rd = shim.wake_wr = -1;
	}
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
		shim_log(SHIM_ERR, "monitor pipe: %s", strerror(errno));
		return;
	}
	shim.wake_rd = hide_fd(p[0]);
	shim.wake_wr = hide_fd(p[1]);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	shim.monitor_pid = shim.pid;
	atomic_store(&monitor_running, 0);
	if (pthread_create(&t, &attr, monitor_main, NULL) != 0) {
		shim.monitor_pid = 0;
		shim_log(SHIM_ERR, "cannot start the listener monitor thread");
	} else {
		/*
		 * Servers fork workers right after listen().  A fork while the new
		 * thread is still being set up by the C runtime (or a sanitizer's,
		 * whose allocator has no fork handlers) can copy a held allocator
		 * lock into the child, which then hangs in its first malloc.  Once
		 * the thread runs our code it allocates only under shim.lock,
		 * which atfork_prepare holds across fork().
		 */
		for (int i = 0; i < 1000 && !atomic_load(&monitor_running); i++) {
			struct timespec ts = {0, 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	pthread_attr_destroy(&attr);
}
