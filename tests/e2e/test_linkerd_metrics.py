"""The rest of Linkerd's metric surface (issue 14, item 4), with stock
binaries: curl, python3, promtool and prometheus.

Policy rules are ldmesh's routes: the server pod (b, orders) has an HTTP
rule and a deny rule on 8080 and connection-level rules on 9000 and 9100;
the client pod (a, payments) makes a known number of allowed and denied
requests and connections, and the counters must equal them with the rule
in Linkerd's labels (authz_name, route_name, rt_route).  A refused dial
closes with errno="ECONNREFUSED"; every closed connection is one
observation of tcp_connection_duration_ms; process_* describe the daemon
itself.  Then a real Prometheus scrapes both pods and answers the PromQL of
Linkerd's dashboards and `linkerd viz` for each of these families.
"""
import json
import os
import re
import shutil
import time
import urllib.parse

import mesh
from mesh import spiffe
from pods import wait_until
from test_telemetry import PAYMENTS, ORDERS, promtool_findings, scrape_text, start_server, total

WEB = spiffe("shop", "web")
HTTP_PORT, TCP_DENY_PORT, TCP_ALLOW_PORT, CLOSED_PORT = 8080, 9000, 9100, 7777

POLICIES = [
    # Per request on 8080: GET /api/* from payments; /admin/* never.
    {"name": "api-get", "action": "allow", "ports": [HTTP_PORT], "principals": [PAYMENTS],
     "methods": ["GET"], "paths": ["/api/*"]},
    {"name": "no-admin", "action": "deny", "ports": [HTTP_PORT], "paths": ["/admin/*"]},
    # Per connection: 9000 admits web only (payments is refused by the
    # built-in no-allow-rule-matched), 9100 admits payments.
    {"name": "tcp-web", "action": "allow", "ports": [TCP_DENY_PORT], "principals": [WEB]},
    {"name": "tcp-payments", "action": "allow", "ports": [TCP_ALLOW_PORT],
     "principals": [PAYMENTS]},
]


def shop(cluster, admin_everywhere=False):
    """Pods a (payments) and b (orders, strict mTLS, POLICIES) with HTTP
    servers on b's three ports.  admin_everywhere: b's admin listener on
    0.0.0.0, so a Prometheus in a can scrape it."""
    a, b = cluster.pair(start=False)
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    mesh.configure(a, ca.issue(PAYMENTS, os.path.join(cluster.tmp, "id-a")), mtls="strict")
    mesh.configure(b, ca.issue(ORDERS, os.path.join(cluster.tmp, "id-b")), mtls="strict",
                   policies=POLICIES, start=False)
    if admin_everywhere:
        with open(b.config) as f:
            text = f.read()
        with open(b.config, "w") as f:
            f.write(text.replace('admin_addr = "127.0.0.1:', 'admin_addr = "0.0.0.0:'))
    b.start_daemon()
    for port in (HTTP_PORT, TCP_DENY_PORT, TCP_ALLOW_PORT):
        start_server(b, port)
    return a, b


def statuses(pod, urls, *args):
    """One curl, one keep-alive connection: the status of each URL (0 for
    none)."""
    argv = list(args) + ["-w", "%{http_code}\n"]
    for u in urls:
        argv += ["-o", "/dev/null", u]
    r = mesh.curl(pod, *argv, timeout=60)
    return [int(x) for x in r.stdout.split()]


def traffic(a, b, scale=1):
    """scale x: 7 allowed GETs, 3 requests denied by no-admin and 2 POSTs
    no rule allows on 8080 (one connection each batch); 3 connections
    admitted on 9100 with one request each; 2 connections refused on 9000.
    Returns the expected counts."""
    base = "http://%s:%d" % (b.addr4, HTTP_PORT)
    for _ in range(scale):
        codes = statuses(a, ["%s/api/items/%d" % (base, i) for i in range(7)] +
                         ["%s/admin/users/%d" % (base, i) for i in range(3)])
        assert codes == [200] * 7 + [403] * 3, codes
        codes = statuses(a, ["%s/api/items" % base] * 2, "-X", "POST")
        assert codes == [403, 403], codes
        for _ in range(3):
            assert statuses(a, ["http://%s:%d/x" % (b.addr4, TCP_ALLOW_PORT)]) == [200]
        for _ in range(2):
            # Refused after the handshake: no HTTP answer.
            assert statuses(a, ["http://%s:%d/x" % (b.addr4, TCP_DENY_PORT)]) == [0]
    return dict(allowed=7 * scale, no_admin=3 * scale, no_match=2 * scale,
                tcp_allowed=3 * scale, tcp_denied=2 * scale)


def settled(*pods):
    """Waits until no pod has a proxied connection open."""
    def idle():
        return all(total(mesh.metrics(p), "tcp_open_connections") == 0 for p in pods)
    wait_until(idle, 15, what="connections closed")


def test_authz_and_route_counters_per_rule(cluster):
    """After N allowed and M denied requests and connections, Linkerd's
    authorization and route counters on the server's daemon equal N and M,
    each under the rule that decided, with the caller's identity."""
    a, b = shop(cluster)
    want = traffic(a, b)
    settled(a, b)
    m = mesh.metrics(b)
    authority = "%s:%d" % (b.addr4, HTTP_PORT)
    http_server = dict(target_addr=authority, target_ip=b.addr4, target_port=str(HTTP_PORT),
                       srv_kind="port", srv_name=str(HTTP_PORT), tls="true", client_id=PAYMENTS)

    def count(name, **labels):
        return total(m, name, **labels)

    # Per-request decisions: HTTP authz, rule as route and authorization.
    assert count("inbound_http_authz_allow_total", authz_kind="policy", authz_name="api-get",
                 route_kind="policy", route_name="api-get", **http_server) == want["allowed"]
    assert count("inbound_http_authz_deny_total", authz_kind="policy", authz_name="no-admin",
                 route_name="no-admin", **http_server) == want["no_admin"]
    assert count("inbound_http_authz_deny_total", authz_kind="default",
                 authz_name="no-allow-rule-matched", **http_server) == want["no_match"]
    assert count("inbound_http_authz_allow_total", **http_server) == want["allowed"]
    assert count("inbound_http_authz_deny_total", **http_server) == \
        want["no_admin"] + want["no_match"]
    # The rules of 8080 look at requests: no connection-level decision.
    assert count("inbound_tcp_authz_allow_total", srv_port=str(HTTP_PORT)) == 0

    # Connection-level decisions: TCP authz per connection, and each
    # request on an admitted connection allowed by the same rule.
    assert count("inbound_tcp_authz_allow_total", authz_kind="policy",
                 authz_name="tcp-payments", srv_port=str(TCP_ALLOW_PORT), tls="true",
                 client_id=PAYMENTS) == want["tcp_allowed"]
    assert count("inbound_tcp_authz_deny_total", authz_kind="default",
                 authz_name="no-allow-rule-matched", srv_port=str(TCP_DENY_PORT),
                 client_id=PAYMENTS) == want["tcp_denied"]
    assert count("inbound_http_authz_allow_total", authz_name="tcp-payments",
                 srv_port=str(TCP_ALLOW_PORT)) == want["tcp_allowed"]

    # Routes: per rule and authority, responses by status.
    route = dict(direction="inbound", dst=authority)
    assert count("route_request_total", rt_route="api-get", **route) == want["allowed"]
    assert count("route_response_total", rt_route="api-get", status_code="200",
                 classification="success", **route) == want["allowed"]
    assert count("route_response_latency_ms_count", rt_route="api-get", **route) == \
        want["allowed"]
    assert count("route_response_latency_ms_bucket", rt_route="api-get", le="+Inf",
                 **route) == want["allowed"]
    assert count("route_request_total", rt_route="no-admin", **route) == want["no_admin"]
    assert count("route_response_total", rt_route="no-admin", status_code="403",
                 **route) == want["no_admin"]
    assert count("route_response_total", rt_route="no-allow-rule-matched", status_code="403",
                 **route) == want["no_match"]
    assert count("route_request_total", direction="inbound", rt_route="tcp-payments",
                 dst="%s:%d" % (b.addr4, TCP_ALLOW_PORT)) == want["tcp_allowed"]
    # The client's daemon decides nothing: no authz or route series.
    ma = mesh.metrics(a)
    for name in ("inbound_http_authz_allow_total", "inbound_tcp_authz_deny_total",
                 "route_request_total"):
        assert total(ma, name) == 0, name


def test_tcp_close_errno_and_connection_duration(cluster):
    """A dial the server's kernel refuses closes with errno="ECONNREFUSED"
    (classification failure) in the client's tcp_close_total; clean closes
    have errno=""; tcp_connection_duration_ms has one observation per
    closed connection, on both daemons."""
    a, b = shop(cluster)
    refused = "%s:%d" % (b.addr4, CLOSED_PORT)
    for _ in range(3):
        r = mesh.curl(a, "-o", "/dev/null", "http://%s/" % refused)
        assert r.returncode == 7, r  # curl: failed to connect
    for _ in range(4):
        assert statuses(a, ["http://%s:%d/x" % (b.addr4, TCP_ALLOW_PORT)]) == [200]
    settled(a, b)
    ma, mb = mesh.metrics(a), mesh.metrics(b)

    fail = dict(direction="outbound", target_addr=refused, errno="ECONNREFUSED",
                classification="failure")
    assert total(ma, "tcp_close_total", **fail) == 3, \
        [(n, dict(l), v) for (n, l), v in ma.items() if n == "tcp_close_total"]
    assert total(ma, "tcp_connection_duration_ms_count", **fail) == 3
    assert total(ma, "tcp_open_total", direction="outbound", target_addr=refused) == 3
    assert total(ma, "tcp_open_connections", direction="outbound", target_addr=refused) == 0

    served = "%s:%d" % (b.addr4, TCP_ALLOW_PORT)
    for m, direction in ((ma, "outbound"), (mb, "inbound")):
        clean = dict(direction=direction, target_addr=served, errno="",
                     classification="success")
        assert total(m, "tcp_close_total", **clean) == 4, direction
        assert total(m, "tcp_close_total", direction=direction, target_addr=served) == 4
        assert total(m, "tcp_connection_duration_ms_count", **clean) == 4, direction
        assert total(m, "tcp_connection_duration_ms_bucket", le="+Inf", **clean) == 4
        assert total(m, "tcp_connection_duration_ms_sum", **clean) >= 0
        # Every closed connection of the pod is one duration observation.
        assert total(m, "tcp_connection_duration_ms_count", direction=direction) == \
            total(m, "tcp_close_total", direction=direction)
    assert total(ma, "tcp_connection_duration_ms_count") == total(ma, "tcp_close_total") == 7


def proc_stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    with open("/proc/stat") as f:
        btime = int(re.search(r"^btime (\d+)$", f.read(), re.M).group(1))
    ticks = os.sysconf("SC_CLK_TCK")
    return {"start": btime + int(fields[19]) / ticks, "vsize": int(fields[20])}


def test_process_gauges(cluster):
    """process_* describe the daemon's own process: its start time and
    size as /proc shows them, its open and maximum file descriptors."""
    a, b = shop(cluster)
    m = mesh.metrics(b)
    pid = b.daemon.pid
    st = proc_stat(pid)
    assert abs(total(m, "process_start_time_seconds") - st["start"]) < 0.05
    assert st["start"] <= time.time()
    assert total(m, "process_virtual_memory_bytes") > total(m, "process_resident_memory_bytes") > 0
    assert total(m, "process_cpu_seconds_total") >= 0
    fds = len(os.listdir("/proc/%d/fd" % pid))
    # The scrape itself may open or close one or two (the admin connection).
    assert 0 < total(m, "process_open_fds") and abs(total(m, "process_open_fds") - fds) <= 3
    with open("/proc/%d/limits" % pid) as f:
        soft = int(re.search(r"^Max open files\s+(\d+)", f.read(), re.M).group(1))
    assert total(m, "process_max_fds") == soft


def test_prometheus_answers_linkerd_queries(cluster):
    """A real Prometheus scrapes both pods; promtool has nothing to say
    but the documented unit lint; and the PromQL of Linkerd's dashboards
    and `linkerd viz` returns a value for every family added here."""
    a, b = shop(cluster, admin_everywhere=True)
    for pod in (a, b):
        other = promtool_findings(scrape_text(pod))
        assert not other, "promtool on pod %s:\n%s" % (pod.label, "\n".join(other))

    pdir = os.path.join(a.dir, "prom")
    os.makedirs(pdir, exist_ok=True)
    with open(os.path.join(pdir, "prometheus.yml"), "w") as f:
        f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n"
                "  - job_name: ldmesh\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d', '%s:%d']\n"
                % (mesh.ADMIN_PORT, b.addr4, mesh.ADMIN_PORT))
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus missing: make deps installs Debian's prometheus package"
    prom = a.popen([prometheus, "--config.file=" + os.path.join(pdir, "prometheus.yml"),
                    "--storage.tsdb.path=" + os.path.join(pdir, "data"),
                    "--web.listen-address=127.0.0.1:9090"], name="prometheus", shim=False)

    def query(q):
        """{frozenset(labels): value} of an instant query, None until
        Prometheus answers."""
        r = a.run([mesh.tool("curl"), "-sS", "--max-time", "5",
                   "http://127.0.0.1:9090/api/v1/query?query=" + urllib.parse.quote(q)],
                  shim=False, timeout=15)
        try:
            res = json.loads(r.stdout) if r.returncode == 0 else {}
        except ValueError:
            return None  # still starting
        if res.get("status") != "success":
            return None
        return {frozenset(x["metric"].items()): float(x["value"][1])
                for x in res["data"]["result"]}

    def wait_query(q, ok, what):
        got = {}

        def check():
            got["r"] = query(q)
            return got["r"] is not None and ok(got["r"])
        try:
            wait_until(check, 60, interval=1, what=what)
        except TimeoutError as e:
            raise AssertionError("%s: %s answers %r" % (e, q, got.get("r")))
        return got["r"]

    try:
        # The dashboards' namespace and pod pickers: one start time per pod.
        wait_query("count by (instance) (process_start_time_seconds)",
                   lambda r: len(r) == 2, "both pods scraped")
        # Twice, with a scrape between: rate() and increase() need a
        # counter's series to exist before it grows.
        traffic(a, b)
        # A scrape of both pods that began after it: every series it made is
        # in Prometheus with its first value.
        done = time.time()
        wait_query("min(timestamp(process_start_time_seconds))",
                   lambda r: r and min(r.values()) > done + 0.1, "a scrape after the traffic")
        want = traffic(a, b)
        settled(a, b)
        for k in want:
            want[k] *= 2

        def exact(q, value):
            return wait_query(q, lambda r: sum(r.values()) == value,
                              "%s == %s" % (q, value))

        def some(q):
            return wait_query(q, lambda r: r and all(v > 0 for v in r.values()),
                              "%s > 0" % q)

        # linkerd viz authz: requests allowed and denied per authorization.
        some("sum(increase(inbound_http_authz_allow_total[1m])) by (authz_kind, authz_name)")
        some("sum(increase(inbound_http_authz_deny_total[1m])) by (srv_kind, srv_name)")
        exact('sum(inbound_http_authz_allow_total{authz_name="api-get",client_id="%s"})'
              % PAYMENTS, want["allowed"])
        exact('sum(inbound_http_authz_deny_total{authz_name="no-admin"})', want["no_admin"])
        some("sum(increase(inbound_tcp_authz_allow_total[1m])) by (authz_name, srv_name)")
        exact('sum(inbound_tcp_authz_deny_total{srv_port="%d"})' % TCP_DENY_PORT,
              want["tcp_denied"])
        # linkerd viz routes: success rate, volume and latency per route.
        r = some('sum(increase(route_response_total{direction="inbound"}[1m])) '
                 'by (rt_route, dst, classification)')
        assert {dict(k)["rt_route"] for k in r} >= {"api-get", "no-admin", "tcp-payments"}, r
        some('sum(rate(route_request_total{direction="inbound"}[1m])) by (rt_route)')
        exact('sum(route_request_total{rt_route="api-get"})', want["allowed"])
        r = some('histogram_quantile(0.5, sum(increase(route_response_latency_ms_bucket'
                 '{direction="inbound"}[1m])) by (le, dst, rt_route))')
        assert all(0 < v <= 50000 for v in r.values()), r
        # The TCP dashboards: failures by errno, connection lifetimes.
        for _ in range(2):
            mesh.curl(a, "-o", "/dev/null", "http://%s:%d/" % (b.addr4, CLOSED_PORT))
        # (A connection refused by policy may fail its handshake, and count
        # there too: the dashboards' panel sums whatever failed.)
        refused = frozenset({("errno", "ECONNREFUSED"),
                             ("target_addr", "%s:%d" % (b.addr4, CLOSED_PORT))})
        r = wait_query('sum(tcp_close_total{direction="outbound", errno!=""}) '
                       'by (errno, target_addr)', lambda x: x.get(refused) == 2,
                       "refused dials by errno")
        assert all(v > 0 for v in r.values()), r
        some('histogram_quantile(0.95, sum(rate(tcp_connection_duration_ms_bucket'
             '{direction="inbound"}[1m])) by (le))')
        wait_query('sum by (instance) (tcp_connection_duration_ms_count) - '
                   'sum by (instance) (tcp_close_total)',
                   lambda r: len(r) == 2 and set(r.values()) == {0},
                   "one duration per closed connection")
        # The process gauges, per pod (an idle daemon's CPU rate may be 0).
        wait_query("sum by (instance) (rate(process_cpu_seconds_total[1m]))",
                   lambda r: len(r) == 2 and all(v >= 0 for v in r.values()), "cpu per pod")
        for q in ("sum by (instance) (process_resident_memory_bytes)",
                  "sum by (instance) (process_virtual_memory_bytes)",
                  "sum by (instance) (process_open_fds / process_max_fds)",
                  "time() - process_start_time_seconds"):
            r = some(q)
            assert len(r) == 2, (q, r)
    finally:
        prom.stop()
