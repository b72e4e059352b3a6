/*
 * The launcher's loop: seccomp notifications, calls waiting on a socket
 * (a blocking connect or accept), listener registrations to watch, signals
 * to forward and children to reap.  One thread: every trapped call is
 * answered in the order it arrives, and none waits on another.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "run.h"
#include "wire.h"

#define SWEEP_EVERY_MS 2000
#define RETRY_EVERY_MS 1000
#define MAX_POLL 1024

struct parked {
	struct trap t;
	int fd;
	short events;
	uint64_t ino;
	struct parked *next;
};

void trap_reply(struct supervisor *s, const struct trap *t, int64_t val)
{
	struct seccomp_notif_resp resp = {.id = t->id};

	if (val < 0) {
		resp.error = (int32_t)val;
	} else {
		resp.val = val;
	}
	/* ENOENT: the thread left the call (a signal, or it died). */
	ioctl(s->notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

void trap_continue(struct supervisor *s, const struct trap *t)
{
	struct seccomp_notif_resp resp = {.id = t->id, .flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE};

	ioctl(s->notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

int trap_valid(struct supervisor *s, const struct trap *t)
{
	uint64_t id = t->id;

	return ioctl(s->notify_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

int trap_install(struct supervisor *s, const struct trap *t, int srcfd, int at, int cloexec)
{
	struct seccomp_notif_addfd a = {
		.id = t->id,
		.flags = at >= 0 ? SECCOMP_ADDFD_FLAG_SETFD : SECCOMP_ADDFD_FLAG_SEND,
		.srcfd = (uint32_t)srcfd,
		.newfd = at >= 0 ? (uint32_t)at : 0,
		.newfd_flags = cloexec ? O_CLOEXEC : 0,
	};
	int r = ioctl(s->notify_fd, SECCOMP_IOCTL_NOTIF_ADDFD, &a);

	return r < 0 ? -errno : r;
}

int trap_park(struct supervisor *s, const struct trap *t, int fd, short events, uint64_t ino)
{
	struct parked *p = calloc(1, sizeof(*p));

	if (!p) {
		return -ENOMEM;
	}
	p->t = *t;
	p->fd = fd;
	p->events = events;
	p->ino = ino;
	p->next = s->parked;
	s->parked = p;
	return 0;
}

static void receive(struct supervisor *s, struct seccomp_notif *req, size_t req_size)
{
	struct trap t;

	memset(req, 0, req_size);
	if (ioctl(s->notify_fd, SECCOMP_IOCTL_NOTIF_RECV, req) < 0) {
		return; /* EINTR, or the caller died before we looked */
	}
	t.id = req->id;
	t.tid = (pid_t)req->pid;
	t.nr = req->data.nr;
	memcpy(t.args, req->data.args, sizeof(t.args));
	calls_dispatch(s, &t);
	target_mem_release(&s->mem);
}

/* Calls whose socket is ready go round again; the ones that left go. */
static void run_parked(struct supervisor *s, const struct pollfd *pfd, int n_pfd,
		       struct parked **order, int first)
{
	for (int i = first; i < n_pfd; i++) {
		struct parked **pp, *p = order[i - first];
		int still_valid = trap_valid(s, &p->t);

		if (!pfd[i].revents && still_valid) {
			continue;
		}
		for (pp = &s->parked; *pp; pp = &(*pp)->next) {
			if (*pp == p) {
				*pp = p->next;
				break;
			}
		}
		if (still_valid) {
			calls_resume(s, &p->t, p->ino);
			target_mem_release(&s->mem);
		}
		free(p);
	}
}

struct link_watch {
	struct pollfd *pfd;
	uint64_t *ino;
	int n, max;
};

static void watch_link(struct sock_entry *e, void *arg)
{
	struct link_watch *w = arg;

	if (e->link_fd >= 0 && w->n < w->max) {
		w->pfd[w->n] = (struct pollfd){.fd = e->link_fd, .events = POLLIN};
		w->ino[w->n++] = e->ino;
	}
}

/* Reaps children; returns 1 when none is left. */
static int reap(pid_t child, int *child_status, int *child_done)
{
	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);

		if (p == 0) {
			return 0;
		}
		if (p < 0) {
			return errno == ECHILD;
		}
		if (p == child) {
			*child_status = st;
			*child_done = 1;
		}
	}
}

int supervise(struct supervisor *s, pid_t child, int sigfd, int *exit_status)
{
	struct seccomp_notif_sizes sizes;
	struct seccomp_notif *req;
	size_t req_size;
	int child_status = 0, child_done = 0;

	if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0) {
		return -errno;
	}
	req_size = sizes.seccomp_notif > sizeof(*req) ? sizes.seccomp_notif : sizeof(*req);
	req = calloc(1, req_size);
	if (!req) {
		return -ENOMEM;
	}
	s->next_sweep_ms = wire_now_ms() + SWEEP_EVERY_MS;
	for (;;) {
		struct pollfd pfd[MAX_POLL];
		uint64_t link_ino[MAX_POLL];
		struct parked *order[MAX_POLL];
		struct link_watch w = {.pfd = pfd + 2, .ino = link_ino, .max = MAX_POLL / 2};
		int n, first_parked, i;
		int64_t now;

		pfd[0] = (struct pollfd){.fd = s->notify_fd, .events = POLLIN};
		pfd[1] = (struct pollfd){.fd = sigfd, .events = POLLIN};
		if (s->tab.n_listeners) {
			socktab_each(&s->tab, SK_LISTENER, watch_link, &w);
		}
		n = 2 + w.n;
		first_parked = n;
		for (struct parked *p = s->parked; p && n < MAX_POLL; p = p->next) {
			order[n - first_parked] = p;
			pfd[n++] = (struct pollfd){.fd = p->fd, .events = p->events};
		}
		/* Wake at least every second: parked calls may have been left. */
		if (poll(pfd, (nfds_t)n, RETRY_EVERY_MS) < 0 && errno != EINTR) {
			free(req);
			return -errno;
		}
		if (pfd[1].revents & POLLIN) {
			struct signalfd_siginfo si;

			while (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
				/* The terminal already sent ^C and hangups (SI_KERNEL)
				 * to the whole foreground group, the command included. */
				if (si.ssi_signo != SIGCHLD && si.ssi_code != SI_KERNEL &&
				    !child_done) {
					kill(child, (int)si.ssi_signo);
				}
			}
			if (reap(child, &child_status, &child_done)) {
				break;
			}
		}
		/* A burst of calls is answered before the next full poll. */
		for (i = 0; i < 64 && (pfd[0].revents & POLLIN); i++) {
			struct pollfd np = {.fd = s->notify_fd, .events = POLLIN};

			receive(s, req, req_size);
			if (poll(&np, 1, 0) <= 0 || !(np.revents & POLLIN)) {
				break;
			}
		}
		for (i = 0; i < w.n; i++) {
			struct sock_entry *e;

			if (!pfd[2 + i].revents) {
				continue;
			}
			e = socktab_get(&s->tab, link_ino[i]);
			if (e && e->link_fd == pfd[2 + i].fd) {
				calls_link_down(s, e);
			}
		}
		run_parked(s, pfd, n, order, first_parked);
		now = wire_now_ms();
		if (now >= s->next_retry_ms) {
			calls_retry_listeners(s);
			s->next_retry_ms = now + RETRY_EVERY_MS;
		}
		if ((s->tab.n_listeners + s->tab.n_bound > 0 && now >= s->next_sweep_ms) ||
		    s->tab.count > 2 * s->tab.count_after_sweep + 256) {
			socktab_sweep(&s->tab, &s->cfg, s->dl.daemon_pid);
			s->next_sweep_ms = now + SWEEP_EVERY_MS;
		}
	}
	free(req);
	*exit_status = child_status;
	return 0;
}
