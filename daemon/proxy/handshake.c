/*
 * The TLS handshake with the peer daemon, both roles, and what it decides:
 * identity checks, the server's verdict, the move to proxying.  The
 * handshake itself runs in the TLS transport (transport/tls.c); this is
 * what the connection does with its outcome.
 */
#include <errno.h>

#include "proxy/proxy.h"
#include "proxy/conn_internal.h"
#include "transport/tls.h"
#include "util/log.h"

int start_tls(struct proxy *d, struct conn *c, int server)
{
	char key[80];
	struct transport *t;

	if (!c->tls) {
		addr_format(&c->peer, key, sizeof(key));
		c->tls = tls_conn_new(d->id->tls, server, c->pin, server ? NULL : key);
		if (!c->tls) {
			return -ENOMEM;
		}
	}
	t = tls_transport_new(c->tls, &c->net_io.t, c->bufsize);
	if (!t) {
		tls_conn_free(c->tls);
		c->tls = NULL;
		return -ENOMEM;
	}
	transport_set_owner(t, conn_transport_event, c);
	c->net = t;
	if (conn_alloc_bufs(d, c) < 0) {
		return -ENOMEM;
	}
	c->state = CS_TLS_HS;
	c->deadline_ms = now_ms() + d->cfg->connect_timeout_ms;
	return 0;
}

void handshake_begin(struct proxy *d, struct conn *c)
{
	int r = c->net->ops->open(c->net);

	if (r != -EINPROGRESS) {
		handshake_done(d, c, r);
	}
}

/* A client waiting for the server's verdict gives up waiting in time. */
void handshake_tick(struct proxy *d, struct conn *c, int64_t now)
{
	int r;

	if (!c->tls || c->flush_then_reset) {
		return;
	}
	r = tls_transport_tick(c->net, now);
	if (r != -EINPROGRESS) {
		handshake_done(d, c, r);
	}
}

void flush_then_reset(struct proxy *d, struct conn *c)
{
	if (transport_flush(c->net) != -EINPROGRESS) {
		conn_close(d, c, 1);
		return;
	}
	c->flush_then_reset = 1;
	c->deadline_ms = now_ms() + 1000;
}

void handshake_done(struct proxy *d, struct conn *c, int res)
{
	int out = c->kind != CONN_INBOUND; /* outbound or upstream */
	char peer[80];

	if (res < 0) {
		enum tls_reason why = tls_conn_reason(c->tls);
		if (why == TLS_OK) {
			why = TLS_PROTOCOL; /* the peer hung up mid-handshake */
		}
		addr_format(&c->peer, peer, sizeof(peer));
		d->stats.handshake_errors_total[out][why]++;
		log_warn("%s TLS handshake with %s failed: %s (%s)", out ? "outbound" : "inbound",
			 peer, tls_reason_name(why), tls_conn_detail(c->tls));
		if (out) {
			d->stats.dial_errors_total++;
			dial_outcome(d, c, -ECONNREFUSED);
		}
		/* Let the alert reach the peer first, so it learns why instead of
		 * seeing a bare reset. */
		flush_then_reset(d, c);
		return;
	}
	d->stats.handshakes_total[out]++;
	if (tls_conn_resumed(c->tls)) {
		d->stats.handshakes_resumed_total[out]++;
	}
	c->peer_id = tls_conn_peer_id(c->tls);
	c->deadline_ms = 0;
	if (out) {
		outbound_ready(d, c);
	} else {
		inbound_authenticated(d, c);
	}
}
