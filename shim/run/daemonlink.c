/*
 * The handoff protocol (include/ldmesh/proto.h), spoken to ldmeshd exactly
 * as the shim speaks it: the daemon cannot tell the two paths apart.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ldmesh/addrname.h"
#include "run.h"
#include "wire.h"

static const char filler[LDM_FILLER_LEN];

static int try_open(struct daemon_link *dl, const char *bind_name)
{
	struct ucred cred;
	int s = wire_connect(dl->cfg->handoff_path, bind_name, &cred);

	if (s >= 0 && cred.pid) {
		dl->daemon_uid = cred.uid;
		dl->daemon_pid = cred.pid;
	}
	return s;
}

int dl_open(struct daemon_link *dl, const char *bind_name)
{
	int64_t deadline;
	int s = try_open(dl, bind_name);

	if (s >= 0 || dl->ready_seen || dl->cfg->wait_ready_ms <= 0) {
		dl->ready_seen = 1;
		return s;
	}
	/* Only the first handoff waits: it covers the app-before-sidecar race. */
	deadline = wire_now_ms() + dl->cfg->wait_ready_ms;
	run_log(dl->cfg, RUN_INFO, "waiting up to %d ms for ldmeshd at %s", dl->cfg->wait_ready_ms,
		dl->cfg->handoff_path);
	while (s < 0 && wire_now_ms() < deadline) {
		struct timespec ts = {0, 20 * 1000 * 1000};

		nanosleep(&ts, NULL);
		s = try_open(dl, bind_name);
	}
	dl->ready_seen = 1;
	return s;
}

int dl_connect(struct daemon_link *dl, int tcp, const struct ldm_addr *dst, uint64_t cookie,
	       int nonblock, pid_t pid, int app_fd, int *app_end)
{
	char name[LDM_NAME_MAX + 1];
	struct ldm_handoff h;
	int u, r, sndbuf = 0, small = LDM_PENDING_SNDBUF, fds[2];
	socklen_t slen = sizeof(sndbuf);
	int w = snprintf(name, sizeof(name), LDM_NAME_OUT "%016" PRIx64 "-", cookie);

	addrname_put(name + w, sizeof(name) - (size_t)w, dst);
	u = dl_open(dl, name);
	if (u < 0) {
		return u;
	}
	/* See proto.h: the small buffer makes POLLOUT mean "connected". */
	getsockopt(u, SOL_SOCKET, SO_SNDBUF, &sndbuf, &slen);
	setsockopt(u, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	wire_fill_header(&h, LDM_OP_CONNECT, cookie);
	h.pid = (uint32_t)pid;
	h.addr = *dst;
	h.flags = nonblock ? LDM_HF_NONBLOCK : 0;
	h.filler_len = LDM_FILLER_LEN;
	h.app_fd = app_fd;
	h.sndbuf = (uint32_t)sndbuf;
	fds[0] = tcp;
	fds[1] = u;
	r = wire_send(u, &h, fds, 2, filler, sizeof(filler));
	if (r < 0) {
		close(u);
		return r;
	}
	*app_end = u;
	return 0;
}

int dl_query(struct daemon_link *dl, uint64_t cookie, struct ldm_status *st)
{
	struct ldm_handoff h;
	int s = dl_open(dl, NULL), r;

	if (s < 0) {
		return s;
	}
	wire_fill_header(&h, LDM_OP_QUERY, cookie);
	r = wire_send(s, &h, NULL, 0, NULL, 0);
	if (r == 0) {
		r = wire_recv_status(s, st, 5000);
	}
	close(s);
	return r;
}

int dl_listen(struct daemon_link *dl, int tcp, uint64_t id, const struct ldm_addr *addr,
	      int backlog, const char *name, pid_t pid)
{
	struct ldm_handoff h;
	struct ldm_status st;
	int s = dl_open(dl, NULL), r;

	if (s < 0) {
		return s;
	}
	wire_fill_header(&h, LDM_OP_LISTEN, id);
	h.pid = (uint32_t)pid;
	h.flags = LDM_HF_TAKES_SOCKET;
	h.addr = *addr;
	h.backlog = (uint32_t)backlog;
	snprintf(h.listen_name, sizeof(h.listen_name), "%s", name);
	r = wire_send(s, &h, &tcp, 1, NULL, 0);
	if (r == 0) {
		r = wire_recv_status(s, &st, 5000);
	}
	if (r == 0 && st.err) {
		r = st.err;
	}
	if (r < 0) {
		close(s);
		return r;
	}
	return s;
}
