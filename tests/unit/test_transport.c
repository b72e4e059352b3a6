/*
 * Unit tests for the transports (daemon/transport/): a stream over a
 * socket, and TLS over a stream, driven through transport.h only, on a
 * real loop (each test on io_uring and on epoll) over AF_UNIX socketpairs.
 *
 * The TLS identities are made by the project's own CLI (`ldmeshctl ca
 * init` / `ca issue`, from the build being tested), as a user would.
 * Every wait is bounded (WAIT_MS); an alarm ends the program if one hangs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "identity/tls.h"
#include "loop/loop.h"
#include "transport/stream.h"
#include "transport/tls.h"

#define WAIT_MS 5000
#define TD "cluster.local"
#define ID_CLIENT "spiffe://cluster.local/ns/unit/sa/client"
#define ID_SERVER "spiffe://cluster.local/ns/unit/sa/server"

/* One end under test: its stream, the transport on top, and what it saw. */
struct end {
	struct stream s;
	struct transport *t; /* &s.t, or TLS over it */
	int fd;
	int got[TEV_READABLE + 1]; /* events seen, by kind */
	int last[TEV_READABLE + 1]; /* the res of the last one of each kind */
};

static struct loop *L;
static struct end E[2];
static char dir[64];

static void on_event(void *owner, struct transport *t, enum transport_event ev, int res)
{
	struct end *e = owner;

	(void)t;
	e->got[ev]++;
	e->last[ev] = res;
}

/* user_data: end index * 4 + stream_op + 1 (0 is never used). */
static void deliver(void *ctx, uint64_t ud, int res, int more)
{
	(void)ctx;
	(void)more;
	stream_complete(&E[(ud - 1) / 4].s, (enum stream_op)((ud - 1) % 4), res);
}

/* Runs the loop until e has seen n events of kind ev. */
static void wait_for(struct end *e, enum transport_event ev, int n)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (e->got[ev] < n) {
		int r = L->ops->run(L, 100, deliver, NULL);
		assert_true(r >= 0 || r == -EINTR);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > WAIT_MS) {
			fail_msg("event %d never came (%d of %d)", ev, e->got[ev], n);
		}
	}
}

static void ends_new(enum loop_backend kind)
{
	int sv[2], err = 0, i;

	L = kind == LOOP_IO_URING ? loop_uring_new(64, &err) : loop_epoll_new(1024, &err);
	if (!L) {
		fail_msg("%s loop: %s", kind == LOOP_IO_URING ? "io_uring" : "epoll",
			 strerror(-err));
	}
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	memset(E, 0, sizeof(E));
	for (i = 0; i < 2; i++) {
		struct stream_uds ud = {i * 4 + STREAM_RECV + 1, i * 4 + STREAM_SEND + 1,
					i * 4 + STREAM_POLL + 1};
		E[i].fd = sv[i];
		stream_init(&E[i].s, L, sv[i], &ud);
		E[i].t = &E[i].s.t;
		transport_set_owner(E[i].t, on_event, &E[i]);
	}
}

static void ends_free(void)
{
	int i;

	for (i = 0; i < 2; i++) {
		E[i].t->ops->close(E[i].t);
	}
	/* Let cancelled operations come back before the fds go. */
	while (E[0].t->ops->inflight(E[0].t) || E[1].t->ops->inflight(E[1].t)) {
		assert_true(L->ops->run(L, 100, deliver, NULL) >= 0);
	}
	for (i = 0; i < 2; i++) {
		if (E[i].t != &E[i].s.t) {
			E[i].t->ops->destroy(E[i].t);
		}
		L->ops->forget_fd(L, E[i].fd);
		close(E[i].fd);
	}
	L->ops->free(L);
}

/* ---- streams ------------------------------------------------------------- */

static void stream_roundtrip(enum loop_backend kind)
{
	char buf[64] = "";

	ends_new(kind);
	/* A write is reported with its byte count; the peer has the bytes. */
	assert_int_equal(transport_write(E[0].t, "hello", 5), -EINPROGRESS);
	assert_int_equal(transport_write(E[0].t, "again", 5), -EBUSY);
	wait_for(&E[0], TEV_WRITTEN, 1);
	assert_int_equal(E[0].last[TEV_WRITTEN], 5);
	assert_int_equal(transport_read(E[1].t, buf, sizeof(buf)), -EINPROGRESS);
	wait_for(&E[1], TEV_READ, 1);
	assert_int_equal(E[1].last[TEV_READ], 5);
	assert_memory_equal(buf, "hello", 5);

	/* A read called off comes back cancelled, and nothing is lost. */
	assert_int_equal(transport_read(E[1].t, buf, sizeof(buf)), -EINPROGRESS);
	assert_int_equal(E[1].t->ops->cancel_read(E[1].t), 0);
	wait_for(&E[1], TEV_READ, 2);
	assert_int_equal(E[1].last[TEV_READ], -ECANCELED);
	assert_int_equal(E[1].t->ops->cancel_read(E[1].t), -ENOENT);

	/* Waiting for input holds no buffer and says when input is there. */
	assert_int_equal(E[1].t->ops->wait_readable(E[1].t), 0);
	assert_int_equal(write(E[0].fd, "x", 1), 1);
	wait_for(&E[1], TEV_READABLE, 1);
	assert_true(E[1].last[TEV_READABLE] > 0);
	assert_int_equal(transport_read(E[1].t, buf, sizeof(buf)), -EINPROGRESS);
	wait_for(&E[1], TEV_READ, 3);
	assert_int_equal(E[1].last[TEV_READ], 1);

	/* Shutdown is at once for a socket; the peer reads end-of-file. */
	assert_int_equal(transport_shutdown(E[0].t), 0);
	assert_int_equal(transport_read(E[1].t, buf, sizeof(buf)), -EINPROGRESS);
	wait_for(&E[1], TEV_READ, 4);
	assert_int_equal(E[1].last[TEV_READ], 0);
	assert_int_equal(E[0].t->ops->open(E[0].t), 0); /* no handshake */
	assert_int_equal(transport_flush(E[0].t), 0);
	ends_free();
}

static void test_stream_uring(void **state)
{
	(void)state;
	stream_roundtrip(LOOP_IO_URING);
}

static void test_stream_epoll(void **state)
{
	(void)state;
	stream_roundtrip(LOOP_EPOLL);
}

/* ---- TLS over streams ---------------------------------------------------- */

static void run_ctl(const char *const *argv)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static int pki_setup(void **state)
{
	char ca[128], out[128];
	const char *ctl = LDM_BUILD_DIR "/ldmeshctl";

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/ldmesh-test-transport.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(ca, sizeof(ca), "%s/ca", dir);
	{
		const char *argv[] = {ctl, "ca", "init", "--dir", ca, "--trust-domain", TD, NULL};
		run_ctl(argv);
	}
	snprintf(out, sizeof(out), "%s/client", dir);
	{
		const char *argv[] = {ctl,    "ca",	 "issue", "--dir", ca,
				      "--id", ID_CLIENT, "--out", out,	   NULL};
		run_ctl(argv);
	}
	snprintf(out, sizeof(out), "%s/server", dir);
	{
		const char *argv[] = {ctl,    "ca",	 "issue", "--dir", ca,
				      "--id", ID_SERVER, "--out", out,	   NULL};
		run_ctl(argv);
	}
	return 0;
}

static int pki_teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct tls_ctx *ctx_for(const char *who)
{
	char cert[128], key[128], bundle[128], td[] = TD, err[256] = "";
	struct config cfg;
	struct tls_ctx *t;

	snprintf(cert, sizeof(cert), "%s/%s/svid.pem", dir, who);
	snprintf(key, sizeof(key), "%s/%s/svid-key.pem", dir, who);
	snprintf(bundle, sizeof(bundle), "%s/%s/bundle.pem", dir, who);
	memset(&cfg, 0, sizeof(cfg));
	cfg.trust_domain = td;
	cfg.cert = cert;
	cfg.key = key;
	cfg.bundle = bundle;
	t = tls_ctx_new(&cfg, err, sizeof(err));
	if (!t) {
		fail_msg("tls_ctx_new(%s): %s", who, err);
	}
	return t;
}

/* E[0] becomes a TLS client (pinned to pin), E[1] a TLS server; both
 * opened.  Returns after both handshakes ended. */
static void tls_pair(enum loop_backend kind, const char *pin, size_t buf_size)
{
	struct tls_ctx *cc = ctx_for("client"), *sc = ctx_for("server");
	struct tls_conn *cl = tls_conn_new(cc, 0, pin, NULL), *sv = tls_conn_new(sc, 1, NULL, NULL);
	int i;

	assert_true(cl && sv);
	ends_new(kind);
	E[0].t = tls_transport_new(cl, &E[0].s.t, buf_size);
	E[1].t = tls_transport_new(sv, &E[1].s.t, buf_size);
	assert_true(E[0].t && E[1].t);
	for (i = 0; i < 2; i++) {
		transport_set_owner(E[i].t, on_event, &E[i]);
		assert_int_equal(E[i].t->ops->open(E[i].t), -EINPROGRESS);
	}
	wait_for(&E[1], TEV_OPEN, 1);
	if (E[1].last[TEV_OPEN] == 0) {
		/* The server's policy said yes: the ticket tells the client. */
		assert_int_equal(tls_transport_admit(E[1].t), 0);
	}
	wait_for(&E[0], TEV_OPEN, 1);
	tls_ctx_unref(cc);
	tls_ctx_unref(sc);
}

static void tls_bulk(enum loop_backend kind)
{
	enum { N = 300000 };
	char *data = malloc(N), *got = malloc(N + 1000), buf[4096];
	size_t have = 0, i;
	int second = 0;

	assert_true(data && got);
	for (i = 0; i < N; i++) {
		data[i] = (char)(i * 7 + i / 251);
	}
	/* Buffers far smaller than TLS records: every path is chunked. */
	tls_pair(kind, ID_SERVER, 4096);
	assert_int_equal(E[0].last[TEV_OPEN], 0);
	assert_int_equal(E[1].last[TEV_OPEN], 0);
	assert_string_equal(tls_conn_peer_id(tls_transport_engine(E[0].t)), ID_SERVER);
	assert_string_equal(tls_conn_peer_id(tls_transport_engine(E[1].t)), ID_CLIENT);
	assert_null(tls_transport_engine(&E[0].s.t));

	/* One write of everything is reported once, when all of it is out;
	 * the server reads it back byte for byte, then the end. */
	/* A write is reported once its first ciphertext is out, while the
	 * rest goes; the next one waits for all of it, then is reported the
	 * same way.  One write at a time. */
	assert_int_equal(transport_write(E[0].t, data, N), -EINPROGRESS);
	assert_int_equal(transport_write(E[0].t, data, 1000), -EBUSY);
	while (have < N + 1000) {
		if (!second && E[0].got[TEV_WRITTEN] == 1) {
			assert_int_equal(E[0].last[TEV_WRITTEN], N);
			assert_int_equal(transport_write(E[0].t, data, 1000), -EINPROGRESS);
			second = 1;
		}
		int r = transport_read(E[1].t, buf, sizeof(buf)), n = E[1].got[TEV_READ];
		if (r == -EINPROGRESS) {
			wait_for(&E[1], TEV_READ, n + 1);
			r = E[1].last[TEV_READ];
		}
		assert_true(r > 0 && have + (size_t)r <= N + 1000);
		memcpy(got + have, buf, (size_t)r);
		have += (size_t)r;
	}
	wait_for(&E[0], TEV_WRITTEN, 2);
	assert_int_equal(E[0].last[TEV_WRITTEN], 1000);
	assert_memory_equal(got, data, N);
	assert_memory_equal(got + N, data, 1000);

	/* Half-close: close_notify then FIN; the server sees the end and can
	 * still answer. */
	{
		int r = transport_shutdown(E[0].t);
		if (r == -EINPROGRESS) {
			wait_for(&E[0], TEV_SHUT, 1);
			assert_int_equal(E[0].last[TEV_SHUT], 0);
		} else {
			assert_int_equal(r, 0);
		}
	}
	{
		int r = transport_read(E[1].t, buf, sizeof(buf)), n = E[1].got[TEV_READ];
		if (r == -EINPROGRESS) {
			wait_for(&E[1], TEV_READ, n + 1);
			r = E[1].last[TEV_READ];
		}
		assert_int_equal(r, 0);
	}
	assert_int_equal(transport_write(E[1].t, "bye", 3), -EINPROGRESS);
	wait_for(&E[1], TEV_WRITTEN, 1);
	assert_int_equal(E[1].last[TEV_WRITTEN], 3);
	{
		int r = transport_read(E[0].t, buf, sizeof(buf)), n = E[0].got[TEV_READ];
		if (r == -EINPROGRESS) {
			wait_for(&E[0], TEV_READ, n + 1);
			r = E[0].last[TEV_READ];
		}
		assert_int_equal(r, 3);
		assert_memory_equal(buf, "bye", 3);
	}
	ends_free();
	free(data);
	free(got);
}

static void test_tls_bulk_uring(void **state)
{
	(void)state;
	tls_bulk(LOOP_IO_URING);
}

static void test_tls_bulk_epoll(void **state)
{
	(void)state;
	tls_bulk(LOOP_EPOLL);
}

/* An idle TLS transport lets go of its buffers and works again after. */
static void tls_idle(enum loop_backend kind)
{
	char buf[64];
	int r;

	tls_pair(kind, NULL, 8192);
	assert_int_equal(transport_read(E[1].t, buf, sizeof(buf)), -EINPROGRESS);
	assert_int_equal(E[1].t->ops->trim(E[1].t), -EAGAIN); /* a read is out */
	assert_int_equal(E[1].t->ops->cancel_read(E[1].t), 0);
	wait_for(&E[1], TEV_READ, 1);
	assert_int_equal(E[1].last[TEV_READ], -ECANCELED);
	assert_int_equal(E[1].t->ops->trim(E[1].t), 0);
	assert_int_equal(E[1].t->ops->wait_readable(E[1].t), 0);
	assert_int_equal(transport_write(E[0].t, "ping", 4), -EINPROGRESS);
	wait_for(&E[1], TEV_READABLE, 1);
	assert_true(E[1].last[TEV_READABLE] > 0);
	r = transport_read(E[1].t, buf, sizeof(buf));
	if (r == -EINPROGRESS) {
		wait_for(&E[1], TEV_READ, 2);
		r = E[1].last[TEV_READ];
	}
	assert_int_equal(r, 4);
	assert_memory_equal(buf, "ping", 4);
	ends_free();
}

static void test_tls_idle_uring(void **state)
{
	(void)state;
	tls_idle(LOOP_IO_URING);
}

static void test_tls_idle_epoll(void **state)
{
	(void)state;
	tls_idle(LOOP_EPOLL);
}

/*
 * A client pinned to another identity refuses the server: its open fails
 * (the reason on the engine), its alert still goes out (flush reports it
 * gone), and the server's open fails because of it.
 */
static void tls_refused(enum loop_backend kind)
{
	int r;

	tls_pair(kind, "spiffe://cluster.local/ns/unit/sa/someone-else", 8192);
	assert_true(E[0].last[TEV_OPEN] < 0);
	assert_int_equal(tls_conn_reason(tls_transport_engine(E[0].t)), TLS_ID_MISMATCH);
	r = transport_flush(E[0].t);
	if (r == -EINPROGRESS) {
		wait_for(&E[0], TEV_FLUSHED, 1);
		r = E[0].last[TEV_FLUSHED];
	}
	assert_int_equal(r, 0);
	assert_true(E[1].last[TEV_OPEN] < 0);
	ends_free();
}

static void test_tls_refused_uring(void **state)
{
	(void)state;
	tls_refused(LOOP_IO_URING);
}

static void test_tls_refused_epoll(void **state)
{
	(void)state;
	tls_refused(LOOP_EPOLL);
}

int main(void)
{
	const struct CMUnitTest stream_tests[] = {
		cmocka_unit_test(test_stream_uring),
		cmocka_unit_test(test_stream_epoll),
	};
	const struct CMUnitTest tls_tests[] = {
		cmocka_unit_test(test_tls_bulk_uring),	  cmocka_unit_test(test_tls_bulk_epoll),
		cmocka_unit_test(test_tls_idle_uring),	  cmocka_unit_test(test_tls_idle_epoll),
		cmocka_unit_test(test_tls_refused_uring), cmocka_unit_test(test_tls_refused_epoll),
	};
	int failed;

	alarm(60);
	failed = cmocka_run_group_tests_name("stream", stream_tests, NULL, NULL);
	failed += cmocka_run_group_tests_name("tls", tls_tests, pki_setup, pki_teardown);
	return failed ? 1 : 0;
}
