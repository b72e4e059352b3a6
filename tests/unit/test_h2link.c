/*
 * Unit tests for HTTP/2 links (daemon/transport/h2link.c): a client and a
 * server link over the two ends of an AF_UNIX socketpair, on a real loop
 * (each test on io_uring and on epoll), their CONNECT streams driven
 * through transport.h as the proxy drives them.  The link's framing is
 * the only thing between them, so what one stream's owner writes is what
 * the other's reads.  Every wait is bounded (WAIT_MS).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loop/loop.h"
#include "transport/h2link.h"
#include "transport/stream.h"

#define WAIT_MS 5000
#define KICK 3 /* the op number of a link's post, beside stream_op */

/* A stream's owner: what it saw. */
struct owner {
	struct transport *t;
	int got[TEV_READABLE + 1];
	int last[TEV_READABLE + 1];
};

/* One side: the socket, the stream transport under the link, the link. */
struct side {
	int fd;
	struct stream s;
	struct h2link *l;
	int opened, idle, closed, closed_res;
	struct transport *accepted[8]; /* server: streams that arrived */
	int naccepted;
};

static struct loop *L;
static struct side S[2]; /* 0 client, 1 server */

static void on_stream_event(void *o, struct transport *t, enum transport_event ev, int res)
{
	struct owner *w = o;

	(void)t;
	w->got[ev]++;
	w->last[ev] = res;
}

static void on_link_event(void *o, struct h2link *l, enum h2link_event ev, struct transport *st,
			  int res)
{
	struct side *s = o;

	(void)l;
	switch (ev) {
	case H2L_OPEN:
		s->opened++;
		break;
	case H2L_STREAM:
		assert_true(s->naccepted < 8);
		s->accepted[s->naccepted++] = st;
		break;
	case H2L_IDLE:
		s->idle++;
		break;
	case H2L_CLOSED:
		s->closed++;
		s->closed_res = res;
		break;
	}
}

static int post(void *o, struct h2link *l)
{
	struct side *s = o;

	(void)l;
	return L->ops->post(L, (uint64_t)((s - S) * 4 + KICK + 1));
}

/* user_data: side * 4 + op + 1. */
static void deliver(void *ctx, uint64_t ud, int res, int more)
{
	struct side *s = &S[(ud - 1) / 4];
	int op = (int)((ud - 1) % 4);

	(void)ctx;
	(void)more;
	if (op == KICK) {
		if (s->l) {
			h2link_run(s->l);
		}
		return;
	}
	stream_complete(&s->s, (enum stream_op)op, res);
}

static int64_t ms_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Runs the loop until *counter reaches n. */
static void wait_count(const int *counter, int n, const char *what)
{
	int64_t t0 = ms_now();

	while (*counter < n) {
		int r = L->ops->run(L, 50, deliver, NULL);
		assert_true(r >= 0 || r == -EINTR);
		if (ms_now() - t0 > WAIT_MS) {
			fail_msg("%s never came (%d of %d)", what, *counter, n);
		}
	}
}

/* Runs the loop for ms, whatever happens. */
static void run_for(int ms)
{
	int64_t t0 = ms_now();

	while (ms_now() - t0 < ms) {
		int r = L->ops->run(L, 10, deliver, NULL);
		if (r < 0 && r != -EINTR) {
			fail_msg("loop: %s", strerror(-r));
		}
	}
}

static void sides_new(enum loop_backend kind, uint32_t window)
{
	struct h2link_params p = {.max_streams = 8,
				  .stream_window = window,
				  .ping_interval_ms = 10000,
				  .ping_timeout_ms = 5000,
				  .buf_size = 16384};
	int sv[2], err = 0, i;

	L = kind == LOOP_IO_URING ? loop_uring_new(256, &err) : loop_epoll_new(1024, &err);
	if (!L) {
		fail_msg("loop: %s", strerror(-err));
	}
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	memset(S, 0, sizeof(S));
	for (i = 0; i < 2; i++) {
		struct stream_uds ud = {(uint64_t)(i * 4 + STREAM_RECV + 1),
					(uint64_t)(i * 4 + STREAM_SEND + 1),
					(uint64_t)(i * 4 + STREAM_POLL + 1)};
		struct h2link_owner o = {on_link_event, post, &S[i]};
		S[i].fd = sv[i];
		stream_init(&S[i].s, L, sv[i], &ud);
		S[i].l = h2link_new(&S[i].s.t, i == 1, &p, &o);
		assert_non_null(S[i].l);
	}
	for (i = 0; i < 2; i++) {
		assert_int_equal(h2link_start(S[i].l, ms_now()), 0);
	}
	wait_count(&S[0].opened, 1, "client H2L_OPEN");
}

static void sides_free(void)
{
	int i;

	for (i = 0; i < 2; i++) {
		h2link_abort(S[i].l, -ECONNRESET);
	}
	run_for(20);
	for (i = 0; i < 2; i++) {
		S[i].s.t.ops->close(&S[i].s.t);
	}
	while (S[0].s.t.ops->inflight(&S[0].s.t) || S[1].s.t.ops->inflight(&S[1].s.t)) {
		assert_true(L->ops->run(L, 50, deliver, NULL) >= 0);
	}
	for (i = 0; i < 2; i++) {
		struct h2link *l = S[i].l;
		S[i].l = NULL;
		h2link_release(l);
		L->ops->forget_fd(L, S[i].fd);
		close(S[i].fd);
	}
	L->ops->free(L);
}

/* A client stream to "authority", and the server's end of it, answered. */
static void open_pair(struct owner *c, struct owner *sv, const char *authority, int status)
{
	int err = 0, n = S[1].naccepted;

	c->t = h2link_connect(S[0].l, authority, "for=\"10.250.0.1:40000\"", &err);
	assert_non_null(c->t);
	transport_set_owner(c->t, on_stream_event, c);
	assert_int_equal(c->t->ops->open(c->t), -EINPROGRESS);
	wait_count(&S[1].naccepted, n + 1, "H2L_STREAM");
	sv->t = S[1].accepted[n];
	transport_set_owner(sv->t, on_stream_event, sv);
	assert_string_equal(h2stream_authority(sv->t), authority);
	assert_string_equal(h2stream_forwarded(sv->t), "for=\"10.250.0.1:40000\"");
	assert_int_equal(h2stream_respond(sv->t, status), 0);
	wait_count(&c->got[TEV_OPEN], 1, "TEV_OPEN");
}

static void streams_free(struct owner *w, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		w[i].t->ops->close(w[i].t);
		w[i].t->ops->destroy(w[i].t);
	}
}

/* Reads from w until n bytes or end of input; returns the count. */
static size_t read_all(struct owner *w, char *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		int r = transport_read(w->t, buf + got, n - got);
		if (r == -EINPROGRESS) {
			int seen = w->got[TEV_READ];
			wait_count(&w->got[TEV_READ], seen + 1, "TEV_READ");
			r = w->last[TEV_READ];
		}
		if (r <= 0) {
			break;
		}
		got += (size_t)r;
	}
	return got;
}

static void write_all(struct owner *w, const char *buf, size_t n)
{
	int r = transport_write(w->t, buf, n);

	if (r == -EINPROGRESS) {
		int seen = w->got[TEV_WRITTEN];
		wait_count(&w->got[TEV_WRITTEN], seen + 1, "TEV_WRITTEN");
		r = w->last[TEV_WRITTEN];
	}
	assert_int_equal(r, (int)n);
}

/* Bytes both ways, half-close both ways, and a clean end. */
static void echo_and_close(enum loop_backend kind)
{
	struct owner w[2] = {{0}};
	char buf[64] = "";

	sides_new(kind, 65535);
	open_pair(&w[0], &w[1], "10.250.0.2:8080", 200);
	assert_int_equal(w[0].last[TEV_OPEN], 0);
	write_all(&w[0], "hello", 5);
	assert_int_equal(read_all(&w[1], buf, 5), 5);
	assert_memory_equal(buf, "hello", 5);
	write_all(&w[1], "world!", 6);
	assert_int_equal(read_all(&w[0], buf, 6), 6);
	assert_memory_equal(buf, "world!", 6);
	/* Client half-closes: the server reads the end, and can still send. */
	assert_int_equal(transport_shutdown(w[0].t), -EINPROGRESS);
	wait_count(&w[0].got[TEV_SHUT], 1, "TEV_SHUT");
	assert_int_equal(w[0].last[TEV_SHUT], 0);
	assert_int_equal(read_all(&w[1], buf, 1), 0);
	assert_int_equal(transport_read(w[1].t, buf, 1), 0);
	write_all(&w[1], "late", 4);
	assert_int_equal(read_all(&w[0], buf, 4), 4);
	assert_memory_equal(buf, "late", 4);
	assert_int_equal(transport_shutdown(w[1].t), -EINPROGRESS);
	wait_count(&w[1].got[TEV_SHUT], 1, "server TEV_SHUT");
	assert_int_equal(read_all(&w[0], buf, 1), 0);
	wait_count(&S[0].idle, 1, "H2L_IDLE");
	streams_free(w, 2);
	sides_free();
}

static void test_echo_uring(void **state)
{
	(void)state;
	echo_and_close(LOOP_IO_URING);
}

static void test_echo_epoll(void **state)
{
	(void)state;
	echo_and_close(LOOP_EPOLL);
}

/* A refusal's status is the client's errno; a reset reaches the far side. */
static void refusal_and_reset(enum loop_backend kind)
{
	struct owner w[4] = {{0}};
	char buf[16];

	sides_new(kind, 65535);
	open_pair(&w[0], &w[1], "10.250.0.2:9", 403);
	assert_int_equal(w[0].last[TEV_OPEN], -EACCES);
	open_pair(&w[2], &w[3], "10.250.0.2:8080", 200);
	assert_int_equal(w[2].last[TEV_OPEN], 0);
	/* The client's owner closes mid-stream: the server's read fails. */
	assert_int_equal(transport_read(w[3].t, buf, sizeof(buf)), -EINPROGRESS);
	w[2].t->ops->close(w[2].t);
	wait_count(&w[3].got[TEV_READ], 1, "the reset");
	assert_int_equal(w[3].last[TEV_READ], -ECONNRESET);
	assert_int_equal(transport_write(w[3].t, "x", 1), -ECONNRESET);
	streams_free(w, 4);
	sides_free();
}

static void test_refusal_uring(void **state)
{
	(void)state;
	refusal_and_reset(LOOP_IO_URING);
}

static void test_refusal_epoll(void **state)
{
	(void)state;
	refusal_and_reset(LOOP_EPOLL);
}

/*
 * A stream whose reader stops stalls alone: with one stream's reader
 * asleep and its writer blocked on the window, another stream on the same
 * link still carries a megabyte.
 */
#define WINDOW 65536
#define BIG (1024 * 1024)

static void stalled_stream_alone(enum loop_backend kind)
{
	struct owner w[4] = {{0}};
	static char big[BIG], got[BIG];
	size_t i, total = 0;
	int r;

	sides_new(kind, WINDOW);
	for (i = 0; i < BIG; i++) {
		big[i] = (char)(i * 7 + 3);
	}
	open_pair(&w[0], &w[1], "10.250.0.2:80", 200);
	open_pair(&w[2], &w[3], "10.250.0.2:81", 200);
	/* The server writes into stream 0, whose client never reads. */
	r = transport_write(w[1].t, big, BIG);
	assert_int_equal(r, -EINPROGRESS);
	run_for(200);
	assert_int_equal(w[1].got[TEV_WRITTEN], 0); /* stopped by the window */
	/* Stream 1 carries a megabyte meanwhile, both ways in order. */
	r = transport_write(w[3].t, big, BIG);
	assert_true(r == -EINPROGRESS || r == BIG);
	total = read_all(&w[2], got, BIG);
	assert_int_equal(total, BIG);
	assert_memory_equal(got, big, BIG);
	wait_count(&w[3].got[TEV_WRITTEN], 1, "stream 1 written");
	/* Now stream 0's reader wakes up and gets everything. */
	total = read_all(&w[0], got, BIG);
	assert_int_equal(total, BIG);
	assert_memory_equal(got, big, BIG);
	wait_count(&w[1].got[TEV_WRITTEN], 1, "stream 0 written");
	streams_free(w, 4);
	sides_free();
}

static void test_stall_uring(void **state)
{
	(void)state;
	stalled_stream_alone(LOOP_IO_URING);
}

static void test_stall_epoll(void **state)
{
	(void)state;
	stalled_stream_alone(LOOP_EPOLL);
}

/*
 * The server answers in full and closes while the client still sends (a
 * 400 before the request's end): the client reads the answer and the end,
 * and what it still writes is dropped, not failed.  An owner that aborts
 * after its answer resets the stream instead.
 */
static void answered_then_closed(enum loop_backend kind)
{
	struct owner w[4] = {{0}};
	char buf[16];

	sides_new(kind, 65535);
	open_pair(&w[0], &w[1], "10.250.0.2:8080", 200);
	write_all(&w[1], "HTTP/1.1 400", 12);
	assert_int_equal(transport_shutdown(w[1].t), -EINPROGRESS);
	wait_count(&w[1].got[TEV_SHUT], 1, "server TEV_SHUT");
	w[1].t->ops->close(w[1].t);
	assert_int_equal(read_all(&w[0], buf, sizeof(buf)), 12);
	assert_memory_equal(buf, "HTTP/1.1 400", 12);
	assert_int_equal(transport_read(w[0].t, buf, sizeof(buf)), 0);
	write_all(&w[0], "rest of the body", 16);
	assert_true(
		transport_shutdown(w[0].t) == 0 ||
		(wait_count(&w[0].got[TEV_SHUT], 1, "client TEV_SHUT"), w[0].last[TEV_SHUT] == 0));

	open_pair(&w[2], &w[3], "10.250.0.2:8080", 200);
	assert_int_equal(transport_read(w[2].t, buf, sizeof(buf)), -EINPROGRESS);
	assert_int_equal(transport_shutdown(w[3].t), -EINPROGRESS);
	wait_count(&w[3].got[TEV_SHUT], 1, "server TEV_SHUT");
	w[3].t->abort = 1;
	w[3].t->ops->close(w[3].t);
	wait_count(&w[2].got[TEV_READ], 1, "the end");
	assert_int_equal(w[2].last[TEV_READ], 0);
	run_for(100);
	assert_int_equal(transport_write(w[2].t, "x", 1), -ECONNRESET);
	streams_free(w, 4);
	sides_free();
}

static void test_answered_uring(void **state)
{
	(void)state;
	answered_then_closed(LOOP_IO_URING);
}

static void test_answered_epoll(void **state)
{
	(void)state;
	answered_then_closed(LOOP_EPOLL);
}

/* The peer goes away: every stream fails, the link says it closed. */
static void peer_gone(enum loop_backend kind)
{
	struct owner w[2] = {{0}};
	char buf[16];

	sides_new(kind, 65535);
	open_pair(&w[0], &w[1], "10.250.0.2:8080", 200);
	assert_int_equal(transport_read(w[0].t, buf, sizeof(buf)), -EINPROGRESS);
	shutdown(S[1].fd, SHUT_RDWR);
	wait_count(&w[0].got[TEV_READ], 1, "the client's failed read");
	assert_int_equal(w[0].last[TEV_READ], -ECONNRESET);
	wait_count(&S[0].closed, 1, "H2L_CLOSED");
	assert_int_equal(transport_write(w[0].t, "x", 1), -ECONNRESET);
	streams_free(w, 2);
	sides_free();
}

static void test_gone_uring(void **state)
{
	(void)state;
	peer_gone(LOOP_IO_URING);
}

static void test_gone_epoll(void **state)
{
	(void)state;
	peer_gone(LOOP_EPOLL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_echo_uring),     cmocka_unit_test(test_echo_epoll),
		cmocka_unit_test(test_refusal_uring),  cmocka_unit_test(test_refusal_epoll),
		cmocka_unit_test(test_stall_uring),    cmocka_unit_test(test_stall_epoll),
		cmocka_unit_test(test_gone_uring),     cmocka_unit_test(test_gone_epoll),
		cmocka_unit_test(test_answered_uring), cmocka_unit_test(test_answered_epoll),
	};

	alarm(120);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
