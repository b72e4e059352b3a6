/*
 * The admin listener on admin_addr: GET /metrics (Prometheus text), /ready
 * (200 once the identity, if configured, and the handoff socket are up;
 * 503 before and while draining) and /live.  One request per connection,
 * answered with Connection: close; anything else is a 400/404/405.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ldmeshd.h"
#include "util/log.h"
#include "util/strbuf.h"

#define ADMIN_MAX_REQUEST 8192
#define ADMIN_TIMEOUT_MS 5000

static void recv_done(struct proxy *px, struct conn *c, int res);

int admin_open(struct ldmeshd *d)
{
	struct ldm_addr a;
	struct sockaddr_storage ss;
	struct stat st;
	socklen_t len;
	int s, one = 1;

	d->px.admin_fd = -1;
	if (!d->px.cfg->admin_addr || !d->px.cfg->admin_addr[0]) {
		return 0;
	}
	if (config_parse_hostport(d->px.cfg->admin_addr, &a) < 0) {
		log_error("admin_addr %s is not host:port", d->px.cfg->admin_addr);
		return -EINVAL;
	}
	len = addr_to_sockaddr(&a, &ss);
	s = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0) {
		return -errno;
	}
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (struct sockaddr *)&ss, len) < 0 || listen(s, 128) < 0) {
		int err = -errno;
		log_error("cannot listen on admin_addr %s: %s", d->px.cfg->admin_addr,
			  strerror(-err));
		close(s);
		return err;
	}
	d->px.admin_fd = s;
	conn_set_handler(&d->px, UD_ADMIN_RECV, recv_done);
	/* Ours: not an unprotected listener, even on a pod address. */
	if (fstat(s, &st) == 0) {
		d->px.admin_ino = (unsigned long long)st.st_ino;
	}
	return 0;
}

/*
 * At exit.  Under io_uring the kernel tears the ring down after the
 * process is gone, and the accept it holds keeps the socket listening
 * until then: a daemon restarted at once would find admin_addr in use.
 * shutdown() takes the socket out of listening now.
 */
void admin_close(struct ldmeshd *d)
{
	if (d->px.admin_fd < 0) {
		return;
	}
	shutdown(d->px.admin_fd, SHUT_RDWR);
	d->px.loop->ops->forget_fd(d->px.loop, d->px.admin_fd);
	close(d->px.admin_fd);
	d->px.admin_fd = -1;
}

void admin_arm(struct ldmeshd *d)
{
	if (d->px.admin_fd < 0 || d->admin_armed ||
	    (d->admin_retry_ms && now_ms() < d->admin_retry_ms)) {
		return; /* after EMFILE: wait, do not spin */
	}
	if (d->px.loop->ops->accept(d->px.loop, d->px.admin_fd, ud_make(UD_ADMIN_ACCEPT, 0, 0)) ==
	    0) {
		d->admin_armed = 1;
	}
}

void admin_accept_done(struct ldmeshd *d, int res, int more)
{
	struct conn *c;

	if (!more) {
		d->admin_armed = 0;
	}
	if (res < 0) {
		if (res != -ECANCELED) {
			log_warn("admin accept: %s; retrying shortly", strerror(-res));
			d->admin_retry_ms = now_ms() + 100;
		}
		return;
	}
	c = conn_new(&d->px, CONN_ADMIN, res);
	if (!c) {
		close(res);
		return;
	}
	c->ctl_in = malloc(ADMIN_MAX_REQUEST + 1);
	if (!c->ctl_in) {
		conn_close(&d->px, c, 1);
		return;
	}
	c->state = CS_CTL_READ;
	c->deadline_ms = now_ms() + ADMIN_TIMEOUT_MS;
	if (conn_submit_recv(&d->px, c, c->a_fd, c->ctl_in, ADMIN_MAX_REQUEST, UD_ADMIN_RECV) < 0) {
		conn_close(&d->px, c, 1);
	}
}

static void respond(struct ldmeshd *d, struct conn *c, int code, const char *reason,
		    const char *type, struct strbuf *body, int head_only)
{
	struct strbuf b = {0};

	sb_printf(&b,
		  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		  "Connection: close\r\n\r\n",
		  code, reason, type, body->len);
	if (!head_only && body->len) {
		sb_printf(&b, "%s", body->s);
	}
	sb_fini(body);
	if (b.oom) {
		sb_fini(&b);
		conn_close(&d->px, c, 1);
		return;
	}
	conn_send_answer(&d->px, c, &b, UD_ADMIN_SEND);
}

static int ready(const struct ldmeshd *d)
{
	return !d->px.draining && d->px.handoff_fd >= 0 && (!d->px.cfg->cert || d->id.tls);
}

static void handle(struct ldmeshd *d, struct conn *c)
{
	struct strbuf body = {0};
	char method[8], path[256];
	int head;

	if (sscanf(c->ctl_in, "%7s %255s HTTP/1.%*c", method, path) != 2) {
		sb_printf(&body, "bad request\n");
		respond(d, c, 400, "Bad Request", "text/plain", &body, 0);
		return;
	}
	head = !strcmp(method, "HEAD");
	if (strcmp(method, "GET") && !head) {
		sb_printf(&body, "only GET and HEAD\n");
		respond(d, c, 405, "Method Not Allowed", "text/plain", &body, 0);
		return;
	}
	/* Ignore a query string, as Prometheus may add one. */
	path[strcspn(path, "?")] = '\0';
	if (!strcmp(path, "/metrics")) {
		metrics_render(d, &body);
		respond(d, c, 200, "OK", "text/plain; version=0.0.4", &body, head);
	} else if (!strcmp(path, "/ready")) {
		int ok = ready(d);
		sb_printf(&body, ok ? "ready\n" : "not ready\n");
		respond(d, c, ok ? 200 : 503, ok ? "OK" : "Service Unavailable", "text/plain",
			&body, head);
	} else if (!strcmp(path, "/live")) {
		sb_printf(&body, "live\n");
		respond(d, c, 200, "OK", "text/plain", &body, head);
	} else {
		sb_printf(&body, "not found: try /metrics, /ready or /live\n");
		respond(d, c, 404, "Not Found", "text/plain", &body, head);
	}
}

/* A completion of the request read, queued on the proxy's connection. */
static void recv_done(struct proxy *px, struct conn *c, int res)
{
	struct ldmeshd *d = ldmeshd_of(px);

	if (res <= 0) {
		conn_close(&d->px, c, res < 0);
		return;
	}
	c->ctl_got += (uint32_t)res;
	c->ctl_in[c->ctl_got] = '\0';
	if (strstr(c->ctl_in, "\r\n\r\n") || strstr(c->ctl_in, "\n\n")) {
		c->deadline_ms = 0;
		handle(d, c);
		return;
	}
	if (c->ctl_got >= ADMIN_MAX_REQUEST || memchr(c->ctl_in, '\0', c->ctl_got)) {
		struct strbuf body = {0};
		sb_printf(&body, "request head too large\n");
		respond(d, c, 431, "Request Header Fields Too Large", "text/plain", &body, 0);
		return;
	}
	if (conn_submit_recv(&d->px, c, c->a_fd, c->ctl_in + c->ctl_got,
			     ADMIN_MAX_REQUEST - c->ctl_got, UD_ADMIN_RECV) < 0) {
		conn_close(&d->px, c, 1);
	}
}
