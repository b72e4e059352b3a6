/*
 * Prometheus text exposition: the golden metrics with linkerd2-proxy's names
 * (telemetry.c), then the daemon's own series with the ldmesh_ prefix,
 * whose label values come from fixed sets (direction, reason, backend) or
 * the config (policy rule names, at most DECISION_SERIES_MAX).
 */
#include <inttypes.h>
#include <time.h>

#include "ldmeshd.h"
#include "telemetry/process.h"
#include "util/strbuf.h"

static const char *const dirs[] = {"inbound", "outbound"};

const char *timeout_stage_name(enum timeout_stage s)
{
	static const char *const names[TIMEOUT_COUNT] = {
		[TIMEOUT_TLS_HANDSHAKE] = "tls_handshake",
		[TIMEOUT_HTTP_HEAD] = "http_head",
		[TIMEOUT_DIAL] = "dial",
		[TIMEOUT_IDLE] = "idle",
		[TIMEOUT_CONTROL] = "control",
	};
	return names[s];
}

static void help(struct strbuf *b, const char *name, const char *type, const char *text)
{
	sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

void metrics_render(struct ldmeshd *d, struct strbuf *b)
{
	struct daemon_totals t;
	const struct proxy_stats *s = &t.stats;
	int dir, r;

	/* Each event loop counts alone; a scrape adds them up. */
	if (workers_totals(d, &t, TOTALS_TEL | TOTALS_BAL) < 0) {
		b->oom = 1;
		return;
	}
	tel_render(&t.tel, b);
	process_render(b);
	help(b, "ldmesh_build_info", "gauge", "Version of this ldmeshd.");
	sb_printf(b, "ldmesh_build_info{version=\"%s\"} 1\n", LDMESH_VERSION);
	help(b, "ldmesh_workers", "gauge", "Event loops (threads) proxying connections.");
	sb_printf(b, "ldmesh_workers %d\n", d->nworkers);
	help(b, "ldmesh_io_backend", "gauge", "The event loop in use (1 for the active one).");
	sb_printf(b, "ldmesh_io_backend{backend=\"io_uring\"} %d\n",
		  d->px.loop->backend == LOOP_IO_URING);
	sb_printf(b, "ldmesh_io_backend{backend=\"epoll\"} %d\n",
		  d->px.loop->backend == LOOP_EPOLL);
	help(b, "ldmesh_handoffs_total", "counter", "Outbound sockets handed over by shims.");
	sb_printf(b, "ldmesh_handoffs_total %" PRIu64 "\n", s->handoffs_total);
	help(b, "ldmesh_handoff_errors_total", "counter",
	     "Shim messages rejected as malformed or not allowed.");
	sb_printf(b, "ldmesh_handoff_errors_total %" PRIu64 "\n", s->handoff_errors_total);
	help(b, "ldmesh_dial_errors_total", "counter", "Outbound dials that failed.");
	sb_printf(b, "ldmesh_dial_errors_total %" PRIu64 "\n", s->dial_errors_total);
	help(b, "ldmesh_egress_denied_total", "counter",
	     "Outbound connections to non-mesh destinations refused by egress control.");
	sb_printf(b, "ldmesh_egress_denied_total %" PRIu64 "\n", s->egress_denied_total);
	help(b, "ldmesh_listeners", "gauge", "TCP listeners handed over by apps.");
	sb_printf(b, "ldmesh_listeners %d\n", listener_count(&d->px));
	help(b, "ldmesh_unprotected_listeners", "gauge",
	     "TCP listeners in the pod on a non-loopback address and a port not excluded that "
	     "ldmeshd does not hold: plaintext, outside mTLS and policy.");
	sb_printf(b, "ldmesh_unprotected_listeners %d\n", unprotected_count(&d->px.unprot));

	help(b, "ldmesh_tls_handshakes_total", "counter", "Completed mTLS handshakes.");
	for (dir = 0; dir < 2; dir++) {
		sb_printf(b,
			  "ldmesh_tls_handshakes_total{direction=\"%s\",resumed=\"false\"} %" PRIu64
			  "\n",
			  dirs[dir], s->handshakes_total[dir] - s->handshakes_resumed_total[dir]);
		sb_printf(b,
			  "ldmesh_tls_handshakes_total{direction=\"%s\",resumed=\"true\"} %" PRIu64
			  "\n",
			  dirs[dir], s->handshakes_resumed_total[dir]);
	}
	help(b, "ldmesh_tls_handshake_errors_total", "counter",
	     "Failed mTLS handshakes by direction and reason.");
	for (dir = 0; dir < 2; dir++) {
		for (r = 1; r < TLS_REASON_COUNT; r++) {
			sb_printf(b,
				  "ldmesh_tls_handshake_errors_total{direction=\"%s\",reason=\"%"
				  "s\"} %" PRIu64 "\n",
				  dirs[dir], tls_reason_name((enum tls_reason)r),
				  s->handshake_errors_total[dir][r]);
		}
	}
	help(b, "ldmesh_plaintext_refused_total", "counter",
	     "Plaintext connections refused on strict mTLS ports.");
	sb_printf(b, "ldmesh_plaintext_refused_total %" PRIu64 "\n", s->plaintext_refused_total);
	help(b, "ldmesh_plaintext_accepted_total", "counter",
	     "Plaintext connections served on permissive ports.");
	sb_printf(b, "ldmesh_plaintext_accepted_total %" PRIu64 "\n", s->plaintext_accepted_total);
	help(b, "ldmesh_identity_reloads_total", "counter",
	     "Identity (SVID) loads that succeeded.");
	sb_printf(b, "ldmesh_identity_reloads_total %" PRIu64 "\n", d->id.reloads_total);
	help(b, "ldmesh_identity_reload_errors_total", "counter",
	     "Identity file changes that could not be used.");
	sb_printf(b, "ldmesh_identity_reload_errors_total %" PRIu64 "\n",
		  d->id.reload_errors_total);
	if (d->id.tls) {
		const struct tls_svid_info *info = tls_ctx_info(d->id.tls);
		time_t now = time(NULL);
		help(b, "ldmesh_identity_expiry_timestamp_seconds", "gauge",
		     "When this pod's SVID expires (Unix time).");
		sb_printf(b, "ldmesh_identity_expiry_timestamp_seconds %lld\n",
			  (long long)info->not_after);
		help(b, "ldmesh_identity_valid", "gauge",
		     "1 while this pod's SVID is within its validity period, 0 when expired or not "
		     "yet valid.");
		sb_printf(b, "ldmesh_identity_valid %d\n",
			  now >= info->not_before && now < info->not_after);
	}
	help(b, "ldmesh_policy_decisions_total", "counter",
	     "Authorization decisions by decision, deciding rule and port (audit: audit rules that "
	     "matched).");
	for (r = 0; r < t.counts.n_decisions; r++) {
		static const char *const names[] = {"allow", "deny", "audit"};
		const struct decision_count *e = &t.counts.decisions[r];
		sb_printf(b,
			  "ldmesh_policy_decisions_total{decision=\"%s\",rule=\"%s\",port=\"%u\"} "
			  "%" PRIu64 "\n",
			  names[e->decision], e->rule, e->port, e->count);
	}
	help(b, "ldmesh_same_pod_connections_total", "counter",
	     "Connections from inside the pod to listeners the daemon holds: the TCP socket handed "
	     "to the app, or proxied without mTLS or policy.");
	sb_printf(b, "ldmesh_same_pod_connections_total{how=\"handed\"} %" PRIu64 "\n",
		  s->same_pod_handed_total);
	sb_printf(b, "ldmesh_same_pod_connections_total{how=\"proxied\"} %" PRIu64 "\n",
		  s->same_pod_proxied_total);
	help(b, "ldmesh_upgrades_stripped_total", "counter",
	     "Upgrade tokens removed from allowed requests on ports with HTTP rules, by protocol.");
	sb_printf(b, "ldmesh_upgrades_stripped_total{protocol=\"h2c\"} %" PRIu64 "\n",
		  s->h2c_upgrades_stripped_total);
	help(b, "ldmesh_http_detect_held_total", "counter",
	     "Inbound connections whose first bytes were an undecided partial first line, held up "
	     "to "
	     "200 ms to tell HTTP from another protocol.");
	sb_printf(b, "ldmesh_http_detect_held_total %" PRIu64 "\n", s->http_detect_held_total);
	help(b, "ldmesh_opaque_connections_total", "counter",
	     "Inbound connections to opaque ports (inbound.ports[].opaque): no HTTP detection or "
	     "handling.");
	sb_printf(b, "ldmesh_opaque_connections_total %" PRIu64 "\n", s->opaque_inbound_total);
	help(b, "ldmesh_timeouts_total", "counter",
	     "Connections closed by a deadline, by what they were doing.");
	for (r = 0; r < TIMEOUT_COUNT; r++) {
		sb_printf(b, "ldmesh_timeouts_total{stage=\"%s\"} %" PRIu64 "\n",
			  timeout_stage_name((enum timeout_stage)r), s->timeouts_total[r]);
	}
	help(b, "ldmesh_connections_idle", "gauge",
	     "Proxied connections idle long enough to have given their buffers back.");
	sb_printf(b, "ldmesh_connections_idle %u\n", t.parked);
	help(b, "ldmesh_links_open", "gauge",
	     "Links to and from other daemons that carry streams (outbound.links).");
	sb_printf(b, "ldmesh_links_open %u\n", t.links_open);
	help(b, "ldmesh_link_streams_total", "counter",
	     "Connections carried as streams on links, both directions.");
	sb_printf(b, "ldmesh_link_streams_total %" PRIu64 "\n", t.streams_total);
	help(b, "ldmesh_link_fallbacks_total", "counter",
	     "Outbound mesh connections that went without a link while links are on.");
	sb_printf(b, "ldmesh_link_fallbacks_total %" PRIu64 "\n", t.fallbacks_total);
	balancer_metrics(&t.bal, b);
	{
		struct dns sum = {.ok_total = t.dns_ok, .error_total = t.dns_error};
		dns_metrics(&sum, b);
	}
	help(b, "ldmesh_connections", "gauge", "Live proxied connections.");
	for (dir = 0; dir < 2; dir++) {
		sb_printf(b, "ldmesh_connections{direction=\"%s\"} %u\n", dirs[dir],
			  t.live_by_kind[dir ? CONN_OUTBOUND : CONN_INBOUND]);
	}
	workers_totals_fini(&t);
}
