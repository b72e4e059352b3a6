/*
 * What the launcher put into meshed processes, keyed by socket inode: the
 * key survives dup, fork and exec, so any process of the tree asking about
 * an fd is answered alike.  Closing is not trapped, so entries are swept:
 * a socket no process holds any more (bar the launcher and the daemon) is
 * gone for the app, and its entry goes too.
 */
#include <stdlib.h>
#include <unistd.h>

#include "run.h"

static unsigned int bucket(uint64_t ino)
{
	return (unsigned int)((ino * 0x9e3779b97f4a7c15ull) >> 52) % SOCKTAB_BUCKETS;
}

struct sock_entry *socktab_get(struct socktab *t, uint64_t ino)
{
	struct sock_entry *e;

	if (!ino) {
		return NULL;
	}
	for (e = t->b[bucket(ino)]; e; e = e->next) {
		if (e->ino == ino) {
			return e;
		}
	}
	return NULL;
}

struct sock_entry *socktab_add(struct socktab *t, uint64_t ino, enum sock_kind kind)
{
	struct sock_entry *e = calloc(1, sizeof(*e));
	unsigned int b = bucket(ino);

	if (!e) {
		return NULL;
	}
	e->ino = ino;
	e->kind = kind;
	e->tcp_fd = e->unix_fd = e->link_fd = e->dial_fd = -1;
	e->next = t->b[b];
	t->b[b] = e;
	t->count++;
	t->n_listeners += kind == SK_LISTENER;
	t->n_bound += kind == SK_BOUND;
	return e;
}

static void close_if(int fd)
{
	if (fd >= 0) {
		close(fd);
	}
}

void socktab_del(struct socktab *t, struct sock_entry *e)
{
	struct sock_entry **pp;

	for (pp = &t->b[bucket(e->ino)]; *pp; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	}
	while (e->stash) {
		struct pending_conn *p = e->stash;

		e->stash = p->next;
		close(p->fd);
		free(p);
	}
	/* Closing the link tells the daemon to let go of the TCP listener. */
	close_if(e->link_fd);
	close_if(e->tcp_fd);
	close_if(e->unix_fd);
	close_if(e->dial_fd);
	t->count--;
	t->n_listeners -= e->kind == SK_LISTENER;
	t->n_bound -= e->kind == SK_BOUND;
	free(e);
}

static int live(const uint64_t *v, long n, uint64_t ino)
{
	long lo = 0, hi = n - 1;

	while (lo <= hi) {
		long mid = lo + (hi - lo) / 2;

		if (v[mid] == ino) {
			return 1;
		}
		if (v[mid] < ino) {
			lo = mid + 1;
		} else {
			hi = mid - 1;
		}
	}
	return 0;
}

long socktab_sweep(struct socktab *t, const struct run_cfg *cfg, pid_t daemon_pid)
{
	uint64_t *v = NULL;
	long n = target_live_inodes(getpid(), daemon_pid, &v), dropped = 0;

	if (n < 0) {
		run_log(cfg, RUN_ERR, "cannot list open sockets: %s", "sweep skipped");
		return 0;
	}
	for (unsigned int b = 0; b < SOCKTAB_BUCKETS; b++) {
		struct sock_entry *e = t->b[b], *next;

		for (; e; e = next) {
			next = e->next;
			if (!live(v, n, e->ino)) {
				if (e->kind == SK_LISTENER) {
					run_log(cfg, RUN_INFO, "listener %s closed by the app",
						e->name);
				}
				socktab_del(t, e);
				dropped++;
			}
		}
	}
	free(v);
	t->count_after_sweep = t->count;
	return dropped;
}

void socktab_each(struct socktab *t, enum sock_kind k, void (*fn)(struct sock_entry *, void *),
		  void *arg)
{
	for (unsigned int b = 0; b < SOCKTAB_BUCKETS; b++) {
		struct sock_entry *e = t->b[b], *next;

		for (; e; e = next) {
			next = e->next;
			if (e->kind == k) {
				fn(e, arg);
			}
		}
	}
}
