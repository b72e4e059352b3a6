/*
 * The TLS handshake with the peer daemon, both roles, and what it decides:
 * identity checks, the server's verdict, the move to proxying.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <sys/syscall.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ldmesh/addr.h"
#include "ldmesh/addrname.h"
#include "ldmeshd.h"
#include "proxy/conn_internal.h"
#include "proto/l7.h"
#include "policy/policy.h"
#include "util/strbuf.h"
#include "util/log.h"

/* ---- TLS handshake ------------------------------------------------------- */

void handshake_step(struct ldmeshd *d, struct conn *c)
{
	int out = c->kind == CONN_OUTBOUND, r;
	char peer[80];

	if (c->handshake_failed) {
		return; /* only the alert is still going out */
	}
	r = tls_conn_handshake(c->tls);
	net_flush(d, c);
	if (r == 0) {
		if (c->net_eof) {
			r = -EPROTO;
		} else {
			if (out && tls_conn_finished(c->tls) && !c->verdict_wait) {
				/* Waiting for the server to accept our certificate; a
				 * server that sends no ticket gets the benefit of the
				 * doubt after VERDICT_WAIT_MS (see conn_sweep). */
				c->verdict_wait = 1;
				c->deadline_ms = now_ms() + VERDICT_WAIT_MS;
			}
			net_want_input(d, c);
			return;
		}
	}
	if (r < 0) {
		enum tls_reason why = tls_conn_reason(c->tls);
		if (why == TLS_OK) {
			why = TLS_PROTOCOL; /* the peer hung up mid-handshake */
		}
		addr_format(&c->peer, peer, sizeof(peer));
		d->stats.handshake_errors_total[out][why]++;
		log_warn("%s TLS handshake with %s failed: %s (%s)", out ? "outbound" : "inbound",
			 peer, tls_reason_name(why), tls_conn_detail(c->tls));
		c->handshake_failed = 1;
		if (out) {
			d->stats.dial_errors_total++;
			dial_outcome(d, c, -ECONNREFUSED);
		}
		/* Let the alert reach the peer first (net_send_done closes), so it
		 * learns why instead of seeing a bare reset; bounded by a second. */
		if (!net_idle(c)) {
			net_flush(d, c);
			c->deadline_ms = now_ms() + 1000;
			return;
		}
		conn_close(d, c, 1);
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

void net_recv_done(struct ldmeshd *d, struct conn *c, int res)
{
	c->nin_rpending = 0;
	if (res == -ECANCELED && c->state == CS_PROXY) {
		park_read_cancelled(d, c);
		return;
	}
	if (c->parked) {
		c->parked = PARK_NO; /* input raced the cancel: stay awake */
	}
	if (res < 0) {
		log_debug("conn %u: network recv: %s", c->slot, strerror(-res));
		if (c->state == CS_TLS_HS) {
			c->net_eof = 1;
			handshake_step(d, c);
			return;
		}
		conn_close(d, c, 1);
		return;
	}
	if (res == 0) {
		c->net_eof = 1;
	} else if (tls_conn_feed(c->tls, c->nin, (size_t)res) < 0) {
		conn_close(d, c, 1);
		return;
	}
	if (c->state == CS_TLS_HS) {
		handshake_step(d, c);
	} else if (c->state == CS_PROXY) {
		pump_both(d, c);
	} else if (!c->net_eof) {
		/* Waiting for the app side (inbound dial): data stays in the engine;
		 * read on only when the app can take it. */
	}
}

void net_send_done(struct ldmeshd *d, struct conn *c, int res)
{
	c->nout_spending = 0;
	if (res < 0) {
		log_debug("conn %u: network send: %s", c->slot, strerror(-res));
		conn_close(d, c, 1);
		return;
	}
	c->nout_off += (uint32_t)res;
	net_flush(d, c);
	if (c->handshake_failed && net_idle(c)) {
		conn_close(d, c, 1);
		return;
	}
	if (c->state == CS_PROXY) {
		pump_both(d, c);
	}
}

int start_tls(struct ldmeshd *d, struct conn *c, int server)
{
	char key[80];

	if (!c->tls) {
		addr_format(&c->peer, key, sizeof(key));
		c->tls = tls_conn_new(d->tls, server, c->pin, server ? NULL : key);
		if (!c->tls) {
			return -ENOMEM;
		}
	}
	if (conn_alloc_bufs(d, c) < 0) {
		return -ENOMEM;
	}
	c->state = CS_TLS_HS;
	c->deadline_ms = now_ms() + d->cfg->connect_timeout_ms;
	return 0;
}
