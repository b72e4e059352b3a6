/*
 * Control socket <runtime_dir>/ctl.sock (mode 0600, and only root or the
 * daemon's own uid may drive it).  One request line in, one answer out; see
 * include/ldmesh/ctl.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ldmesh/ctl.h"
#include "control/ctl_parse.h"
#include "ldmeshd.h"
#include "util/log.h"
#include "util/strbuf.h"

#define CTL_TIMEOUT_MS 5000

static void recv_done(struct proxy *px, struct conn *c, int res);

int ctl_open(struct ldmeshd *d)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int s;

	s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0) {
		return -errno;
	}
	unlink(d->ctl_path);
	memcpy(sun.sun_path, d->ctl_path, strlen(d->ctl_path) + 1);
	/* fchmod on a socket does not reach the path: bind under a 0177 umask. */
	mode_t old = umask(0177);
	int r = bind(s, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (r < 0 || listen(s, 64) < 0) {
		r = -errno;
		log_error("cannot listen on %s: %s", d->ctl_path, strerror(-r));
		close(s);
		return r;
	}
	d->ctl_fd = s;
	conn_set_handler(&d->px, UD_CTL_RECV, recv_done);
	{
		struct stat st;
		if (stat(d->ctl_path, &st) == 0) {
			d->ctl_ino = (unsigned long long)st.st_ino;
		}
	}
	return 0;
}

void ctl_arm(struct ldmeshd *d)
{
	if (d->ctl_fd < 0 || d->ctl_armed || (d->ctl_retry_ms && now_ms() < d->ctl_retry_ms)) {
		return; /* after EMFILE: wait, do not spin */
	}
	if (d->px.loop->ops->accept(d->px.loop, d->ctl_fd, ud_make(UD_CTL_ACCEPT, 0, 0)) == 0) {
		d->ctl_armed = 1;
	}
}

int ctl_answering(const struct ldmeshd *d)
{
	const struct proxy *px = &d->px;
	uint32_t i;

	for (i = 0; i < px->nslots; i++) {
		const struct conn *c = px->conns[i];
		if (c && c->kind == CONN_CTL && c->state == CS_CTL_WRITE &&
		    c->ctl_out_off < c->ctl_out_len) {
			return 1;
		}
	}
	return 0;
}

static void answer(struct ldmeshd *d, struct conn *c, struct strbuf *b)
{
	conn_send_answer(&d->px, c, b, UD_CTL_SEND);
}

static void answer_err(struct ldmeshd *d, struct conn *c, const char *msg)
{
	struct strbuf b = {0};

	sb_printf(&b, "ERR %s\n", msg);
	answer(d, c, &b);
}

void ctl_accept_done(struct ldmeshd *d, int res, int more)
{
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct conn *c;

	if (!more) {
		d->ctl_armed = 0;
	}
	if (res < 0) {
		if (res != -ECANCELED) {
			log_warn("ctl accept: %s", strerror(-res));
			d->ctl_retry_ms = now_ms() + 100;
		}
		return;
	}
	if (getsockopt(res, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 ||
	    (cred.uid != 0 && cred.uid != geteuid())) {
		log_warn("ctl client pid %d uid %u refused: only root or uid %u", (int)cred.pid,
			 (unsigned)cred.uid, (unsigned)geteuid());
		close(res);
		return;
	}
	c = conn_new(&d->px, CONN_CTL, res);
	if (!c) {
		close(res);
		return;
	}
	c->pid = (uint32_t)cred.pid;
	c->ctl_in = malloc(LDM_CTL_MAX_REQUEST + 1);
	if (!c->ctl_in) {
		conn_close(&d->px, c, 1);
		return;
	}
	c->state = CS_CTL_READ;
	c->deadline_ms = now_ms() + CTL_TIMEOUT_MS;
	if (conn_submit_recv(&d->px, c, c->a_fd, c->ctl_in, LDM_CTL_MAX_REQUEST, UD_CTL_RECV) < 0) {
		conn_close(&d->px, c, 1);
	}
}

static void identity_status(struct ldmeshd *d, const struct proxy_stats *st, struct strbuf *b,
			    int json)
{
	const struct tls_svid_info *info = d->id.tls ? tls_ctx_info(d->id.tls) : NULL;
	char until[32] = "";
	struct tm tm;
	int i, dir;
	static const char *const dirs[] = {"inbound", "outbound"};

	if (info) {
		gmtime_r(&info->not_after, &tm);
		strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	if (json) {
		sb_printf(b, ",\"identity\":");
		if (!info) {
			sb_printf(b, "null");
		} else {
			sb_printf(b, "{\"spiffe_id\":");
			sb_json_str(b, info->id);
			sb_printf(b,
				  ",\"serial\":\"%s\",\"not_after\":\"%s\",\"expired\":%s,"
				  "\"roots\":%d,\"bundle\":",
				  info->serial, until,
				  time(NULL) >= info->not_after ? "true" : "false", info->n_roots);
			sb_json_str(b, info->roots);
			sb_printf(b, "}");
		}
		sb_printf(b, ",\"handshakes\":{");
		for (dir = 0; dir < 2; dir++) {
			sb_printf(b, "%s\"%s\":{\"ok\":%" PRIu64 ",\"resumed\":%" PRIu64,
				  dir ? "," : "", dirs[dir], st->handshakes_total[dir],
				  st->handshakes_resumed_total[dir]);
			for (i = 1; i < TLS_REASON_COUNT; i++) {
				sb_printf(b, ",\"%s\":%" PRIu64,
					  tls_reason_name((enum tls_reason)i),
					  st->handshake_errors_total[dir][i]);
			}
			sb_printf(b, "}");
		}
		sb_printf(b, "},\"plaintext_refused_total\":%" PRIu64, st->plaintext_refused_total);
		return;
	}
	if (!info) {
		sb_printf(b, "identity      none (mTLS off)\n");
		return;
	}
	sb_printf(b, "identity      %s\n", info->id);
	sb_printf(b, "  serial      %s\n", info->serial);
	sb_printf(b, "  not after   %s%s\n", until,
		  time(NULL) >= info->not_after ? "  EXPIRED" : "");
	sb_printf(b, "  bundle      %d root(s): %s\n", info->n_roots, info->roots);
	for (dir = 0; dir < 2; dir++) {
		uint64_t failed = 0;
		for (i = 1; i < TLS_REASON_COUNT; i++) {
			failed += st->handshake_errors_total[dir][i];
		}
		sb_printf(b,
			  "handshakes    %-8s %" PRIu64 " ok (%" PRIu64 " resumed), %" PRIu64
			  " failed",
			  dirs[dir], st->handshakes_total[dir], st->handshakes_resumed_total[dir],
			  failed);
		for (i = 1; i < TLS_REASON_COUNT; i++) {
			if (st->handshake_errors_total[dir][i]) {
				sb_printf(b, " %s=%" PRIu64, tls_reason_name((enum tls_reason)i),
					  st->handshake_errors_total[dir][i]);
			}
		}
		sb_printf(b, "\n");
	}
	sb_printf(b, "plaintext     %" PRIu64 " refused on strict ports\n",
		  st->plaintext_refused_total);
}

static void status(struct ldmeshd *d, struct strbuf *b, int json)
{
	int64_t up = (now_ms() - d->start_ms) / 1000;
	const char *file = d->px.cfg->file ? d->px.cfg->file : "(built-in default)";
	struct daemon_totals t;
	const uint32_t *live;
	int i, first = 1;

	if (workers_totals(d, &t, 0) < 0) {
		b->oom = 1;
		return;
	}
	live = t.live_by_kind;

	if (json) {
		sb_printf(b,
			  "{\"version\":\"%s\",\"pid\":%d,\"uptime_s\":%" PRId64
			  ",\"config_file\":",
			  LDMESH_VERSION, (int)getpid(), up);
		sb_json_str(b, file);
		sb_printf(b, ",\"runtime_dir\":");
		sb_json_str(b, d->runtime_dir);
		sb_printf(b,
			  ",\"io_backend\":\"%s\",\"workers\":%d,\"draining\":%s,"
			  "\"live_connections\":%u,\"connections\":{\"outbound\":%u,\"inbound\":%u,"
			  "\"handoff\":%u,\"ctl\":%u},\"handoffs_total\":%" PRIu64
			  ",\"handoff_errors_total\":%" PRIu64 ",\"dial_errors_total\":%" PRIu64,
			  loop_backend_name(d->px.loop), d->nworkers,
			  d->px.draining ? "true" : "false",
			  live[CONN_OUTBOUND] + live[CONN_INBOUND], live[CONN_OUTBOUND],
			  live[CONN_INBOUND], live[CONN_HANDOFF], live[CONN_CTL],
			  t.stats.handoffs_total, t.stats.handoff_errors_total,
			  t.stats.dial_errors_total);
		identity_status(d, &t.stats, b, 1);
		sb_printf(b, ",\"listeners\":[");
	} else {
		sb_printf(b, "ldmeshd %s  pid %d  up %" PRId64 "s%s\n", LDMESH_VERSION,
			  (int)getpid(), up, d->px.draining ? "  DRAINING" : "");
		sb_printf(b, "config        %s\n", file);
		sb_printf(b, "runtime dir   %s\n", d->runtime_dir);
		sb_printf(b, "io backend    %s\n", loop_backend_name(d->px.loop));
		sb_printf(b, "workers       %d\n", d->nworkers);
		sb_printf(b, "connections   %u live (outbound %u, inbound %u)\n",
			  live[CONN_OUTBOUND] + live[CONN_INBOUND], live[CONN_OUTBOUND],
			  live[CONN_INBOUND]);
		sb_printf(b,
			  "handoffs      %" PRIu64 " (rejected %" PRIu64 ", failed dials %" PRIu64
			  ")\n",
			  t.stats.handoffs_total, t.stats.handoff_errors_total,
			  t.stats.dial_errors_total);
		identity_status(d, &t.stats, b, 0);
		sb_printf(b, "listeners     %d\n", listener_count(&d->px));
	}
	for (i = 0; i < LISTENERS_MAX; i++) {
		const struct listener *l = &d->px.listeners[i];
		char where[80];

		if (!l->used || l->closing) {
			continue;
		}
		addr_format(&l->addr, where, sizeof(where));
		if (json) {
			sb_printf(b,
				  "%s{\"addr\":\"%s\",\"pid\":%u,\"processes\":%d,\"accepted\":"
				  "%" PRIu64 "}",
				  first ? "" : ",", where, l->pid, t.listener_links[i],
				  t.listener_accepted[i]);
		} else {
			sb_printf(b, "  %-28s pid %-8u accepted %" PRIu64 "\n", where, l->pid,
				  t.listener_accepted[i]);
		}
		first = 0;
	}
	if (json) {
		sb_printf(b, "],\"unprotected_listeners\":");
		unprotected_render(&d->px.unprot, b, 1);
		sb_printf(b, "}\n");
	} else {
		sb_printf(b, "unprotected   %d%s\n", unprotected_count(&d->px.unprot),
			  unprotected_count(&d->px.unprot) ? " (not held by ldmeshd)" : "");
		unprotected_render(&d->px.unprot, b, 0);
	}
	workers_totals_fini(&t);
}

struct rows {
	int json;
	struct strbuf *out; /* one per loop */
	void (*fn)(struct proxy *px, struct strbuf *b, int json);
};

/* Loop w's rows, in its own thread. */
static void rows_of(struct worker *w, void *arg)
{
	struct rows *r = arg;

	r->fn(w->px, &r->out[w->index], r->json);
}

/*
 * A listing of what each loop holds (its connections, its links), as one:
 * fn writes a loop's whole listing (a JSON array, or a table with its
 * header line); the arrays are joined, the header kept once.
 */
static void each_loop(struct ldmeshd *d, struct strbuf *b, int json,
		      void (*fn)(struct proxy *px, struct strbuf *b, int json))
{
	struct rows r = {.json = json, .fn = fn};
	int i, items = 0;

	r.out = calloc((size_t)d->nworkers, sizeof(*r.out));
	if (!r.out) {
		b->oom = 1;
		return;
	}
	workers_call(d, rows_of, &r);
	for (i = 0; i < d->nworkers; i++) {
		const char *s = r.out[i].s ? r.out[i].s : "";
		size_t len = r.out[i].len;

		b->oom |= r.out[i].oom;
		if (json) {
			/* "[a,b]\n": the items between the brackets */
			const char *open = strchr(s, '['), *close = strrchr(s, ']');
			if (open && close && close > open + 1) {
				sb_printf(b, "%s%.*s", items++ ? "," : "[", (int)(close - open - 1),
					  open + 1);
			}
		} else if (i == 0) {
			sb_printf(b, "%.*s", (int)len, s);
		} else {
			const char *nl = strchr(s, '\n'); /* past the header line */
			if (nl) {
				sb_printf(b, "%s", nl + 1);
			}
		}
		sb_fini(&r.out[i]);
	}
	if (json) {
		sb_printf(b, "%s]\n", items ? "" : "[");
	}
	free(r.out);
}

static void conns_of(struct proxy *px, struct strbuf *b, int json)
{
	int64_t now = now_ms();
	uint32_t i;
	int first = 1;

	if (json) {
		sb_printf(b, "[");
	} else {
		sb_printf(b, "%-9s %-26s %-26s %-8s %-7s %12s %12s %9s %-10s %s\n", "DIRECTION",
			  "LOCAL", "PEER", "STATE", "TLS", "BYTES_IN", "BYTES_OUT", "AGE_MS",
			  "LINK", "PEER_ID");
	}
	for (i = 0; i < px->nslots; i++) {
		const struct conn *c = px->conns[i];
		char local[80], peer[80], link[24];
		const char *state, *tlsv;
		uint64_t in, out;

		if (!c || (c->kind != CONN_OUTBOUND && c->kind != CONN_INBOUND) ||
		    c->state == CS_CLOSING) {
			continue;
		}
		addr_format(&c->local, local, sizeof(local));
		addr_format(&c->peer, peer, sizeof(peer));
		state = c->state == CS_PROXY ? "open" : "opening";
		tlsv = c->tls && c->state == CS_PROXY ? tls_conn_version(c->tls) : "";
		in = c->down.bytes;
		out = c->up.bytes;
		links_conn_name(c, link, sizeof(link));
		if (json) {
			sb_printf(b,
				  "%s{\"direction\":\"%s\",\"local_addr\":\"%s\",\"peer_addr\":\"%"
				  "s\","
				  "\"peer_id\":",
				  first ? "" : ",", conn_kind_name(c->kind), local, peer);
			sb_json_str(b, c->peer_id);
			sb_printf(b,
				  ",\"tls\":%s,\"tls_version\":\"%s\",\"state\":\"%s\",\"bytes_"
				  "in\":%" PRIu64 ",\"bytes_out\":%" PRIu64 ",\"age_ms\":%" PRId64
				  ",\"pid\":%u,\"link\":\"%s\",\"worker\":%d}",
				  tlsv[0] ? "true" : "false", tlsv, state, in, out,
				  now - c->started_ms, c->pid, link, px->worker);
		} else {
			sb_printf(b,
				  "%-9s %-26s %-26s %-8s %-7s %12" PRIu64 " %12" PRIu64 " %9" PRId64
				  " %-10s %s\n",
				  conn_kind_name(c->kind), local, peer, state,
				  tlsv[0] ? tlsv : "no", in, out, now - c->started_ms,
				  link[0] ? link : "-", c->peer_id[0] ? c->peer_id : "-");
		}
		first = 0;
	}
	if (json) {
		sb_printf(b, "]\n");
	}
}

/* policy-check FROM PORT METHOD PATH, "-" for absent: the live policy's
 * decision, without sending traffic. */
static int policy_check(struct ldmeshd *d, struct strbuf *b, int json, char **w, int n)
{
	struct policy_request req = {0};
	struct policy_result res;
	const char *stage;
	int per_request = 0;
	char *end;
	long port;
	int i;

	if (n != 4) {
		return -EINVAL;
	}
	port = strtol(w[1], &end, 10);
	if (*end || port < 1 || port > 65535) {
		return -EINVAL;
	}
	req.principal = strcmp(w[0], "-") ? w[0] : NULL;
	req.port = (uint16_t)port;
	req.method = strcmp(w[2], "-") ? w[2] : NULL;
	req.path = strcmp(w[3], "-") ? w[3] : NULL;
	/* The data path's own calls: per request with a method; without one,
	 * what a connection gets that sends no HTTP/1.x request (final at the
	 * handshake, or once its bytes prove not to be HTTP/1.x). */
	if (req.method) {
		stage = "request";
		policy_decide(d->px.policy, POLICY_AT_REQUEST, &req, &res);
	} else {
		policy_decide(d->px.policy, POLICY_AT_CONNECT, &req, &res);
		per_request = res.decision == POLICY_PENDING;
		stage = per_request ? "not-http" : "connection";
		policy_decide(d->px.policy, POLICY_NOT_HTTP, &req, &res);
	}
	if (json) {
		sb_printf(b, "{\"decision\":\"%s\",\"stage\":\"%s\",\"per_request\":%s,\"rule\":",
			  res.decision == POLICY_ALLOW ? "allow" : "deny", stage,
			  per_request ? "true" : "false");
		sb_json_str(b, res.rule);
		sb_printf(b, ",\"audit\":[");
		for (i = 0; i < res.n_audit; i++) {
			if (i) {
				sb_printf(b, ",");
			}
			sb_json_str(b, res.audit[i]);
		}
		sb_printf(b, "]}\n");
	} else {
		sb_printf(b, "decision %s\nrule     %s\n",
			  res.decision == POLICY_ALLOW ? "allow" : "deny", res.rule);
		if (per_request) {
			sb_printf(b, "note     HTTP requests on this port (HTTP/1.x, HTTP/2 and "
				     "gRPC) are decided one by one (add --method and --path); "
				     "this is what traffic that is not HTTP gets\n");
		}
		for (i = 0; i < res.n_audit; i++) {
			sb_printf(b, "audit    %s\n", res.audit[i]);
		}
	}
	return 0;
}

/* `stats`: the services' rows after the golden metrics (route.h). */
static void stats_services(struct balancer *bal, struct strbuf *b, int raw, int json)
{
	if (raw) {
		balancer_stats_raw(bal, b);
	} else if (json && b->len >= 2 && bal->n) {
		/* {...,"rows":[...]} gains "services": `services --json`. */
		b->s[b->len -= 2] = 0;
		sb_printf(b, ",\"services\":");
		balancer_list(bal, b, 1, tel_now_us());
		if (b->len && b->s[b->len - 1] == '\n') {
			b->s[--b->len] = 0;
		}
		sb_printf(b, "}\n");
	} else if (!json && bal->n) {
		sb_printf(b, "\n");
		balancer_list(bal, b, 0, tel_now_us());
	}
}

static void handle(struct ldmeshd *d, struct conn *c, char *line)
{
	struct ctl_request req;
	char **words = req.words;
	int n, json;
	struct strbuf b = {0};

	if (ctl_parse_request(line, &req) < 0) {
		log_warn("ctl client pid %u: bad request; closing", c->pid);
		d->px.stats.ctl_errors_total++;
		answer_err(d, c, "bad request: expected 'LDMCTL1 text|json VERB [ARGS]'");
		return;
	}
	n = req.n;
	json = req.json;
	sb_printf(&b, "OK\n");
	if (!strcmp(words[2], "status")) {
		status(d, &b, json);
	} else if (!strcmp(words[2], "conns")) {
		each_loop(d, &b, json, conns_of);
	} else if (!strcmp(words[2], "links")) {
		each_loop(d, &b, json, links_list);
	} else if (!strcmp(words[2], "services")) {
		struct daemon_totals t;
		if (workers_totals(d, &t, TOTALS_BAL) == 0) {
			balancer_list(&t.bal, &b, json, tel_now_us());
			workers_totals_fini(&t);
		} else {
			b.oom = 1;
		}
	} else if (!strcmp(words[2], "stats")) {
		int raw = n > 3 && !strcmp(words[3], "raw");
		struct daemon_totals t;
		/* Every loop's series and balancers, added up now. */
		if (workers_totals(d, &t, TOTALS_TEL | TOTALS_BAL) == 0) {
			tel_stats(&t.tel, &b, raw ? TEL_RAW : json ? TEL_JSON : TEL_TEXT, now_ms());
			stats_services(&t.bal, &b, raw, json);
			workers_totals_fini(&t);
		} else {
			b.oom = 1;
		}
	} else if (!strcmp(words[2], "reload")) {
		char err[512];
		if (ldmeshd_reload(d, err, sizeof(err)) < 0) {
			sb_fini(&b);
			answer_err(d, c, err);
			return;
		}
		sb_printf(&b, json ? "{\"reloaded\":true}\n" : "configuration reloaded\n");
	} else if (!strcmp(words[2], "check")) {
		check_render(d, &b, json);
	} else if (!strcmp(words[2], "policy-check")) {
		if (policy_check(d, &b, json, words + 3, n - 3) < 0) {
			sb_fini(&b);
			answer_err(d, c,
				   "usage: policy-check FROM PORT METHOD PATH ('-' for absent)");
			return;
		}
	} else if (!strcmp(words[2], "drain")) {
		int ms = ctl_drain_ms(n > 3 ? words[3] : NULL, d->px.cfg->drain_timeout_ms);
		ldmeshd_start_drain(d, ms);
		sb_printf(&b,
			  json ? "{\"draining\":true,\"timeout_ms\":%d}\n"
			       : "draining (up to %d ms)\n",
			  ms);
	} else {
		char msg[128];
		sb_fini(&b);
		log_warn("ctl client pid %u: unknown verb '%.32s'", c->pid, words[2]);
		d->px.stats.ctl_errors_total++;
		snprintf(msg, sizeof(msg), "unknown verb '%.32s'", words[2]);
		answer_err(d, c, msg);
		return;
	}
	if (b.oom) {
		sb_fini(&b);
		answer_err(d, c, "out of memory");
		return;
	}
	answer(d, c, &b);
}

/* A completion of the request read, queued on the proxy's connection. */
static void recv_done(struct proxy *px, struct conn *c, int res)
{
	struct ldmeshd *d = ldmeshd_of(px);
	size_t line_len = 0;
	enum ctl_frame f;

	if (res == 0 && c->ctl_got) {
		/* Half-closed after a partial line: say why before closing. */
		log_warn("ctl client pid %u: request ended without a newline; closing", c->pid);
		d->px.stats.ctl_errors_total++;
		answer_err(d, c, "bad request: no newline before end of input");
		return;
	}
	if (res <= 0) {
		if (res < 0) {
			log_warn("ctl client pid %u: %s", c->pid, strerror(-res));
			d->px.stats.ctl_errors_total++;
		}
		conn_close(&d->px, c, res < 0);
		return;
	}
	c->ctl_got += (uint32_t)res;
	c->ctl_in[c->ctl_got] = '\0';
	f = ctl_frame(c->ctl_in, c->ctl_got, LDM_CTL_MAX_REQUEST, &line_len);
	if (f == CTL_FRAME_NUL) {
		log_warn("ctl client pid %u: NUL byte in request; closing", c->pid);
		d->px.stats.ctl_errors_total++;
		answer_err(d, c, "bad request: NUL byte");
		return;
	}
	if (f == CTL_FRAME_LINE) {
		c->ctl_in[line_len] = '\0';
		c->deadline_ms = 0;
		handle(d, c, c->ctl_in);
		return;
	}
	if (f == CTL_FRAME_TOO_LONG) {
		log_warn("ctl client pid %u: request longer than %d bytes; closing", c->pid,
			 LDM_CTL_MAX_REQUEST);
		d->px.stats.ctl_errors_total++;
		answer_err(d, c, "request too long");
		return;
	}
	if (conn_submit_recv(&d->px, c, c->a_fd, c->ctl_in + c->ctl_got,
			     LDM_CTL_MAX_REQUEST - c->ctl_got, UD_CTL_RECV) < 0) {
		conn_close(&d->px, c, 1);
	}
}
