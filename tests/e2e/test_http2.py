"""Issue 14: HTTP/2 and gRPC seen by the daemon, with stock peers.

python3-grpcio (server and client, no generated code), nghttp2's nghttp and
nghttpd, curl --http2-prior-knowledge, node's http2 module and python3-h2:
per-request metrics with Linkerd's names (request_total, response_total
with status_code, grpc_status and classification), per-stream L7 policy (a
denied HTTP/2 request gets 403 on its stream, a denied gRPC call
PERMISSION_DENIED, and the other streams of the connection go on),
x-forwarded-client-cert on HTTP/2 requests, `Upgrade: h2c` followed per
stream, and frame floods that the daemon closes or bounds without harming
other connections.

Each test first runs the same stock peers without the mesh (shim=False,
ports 15051 / 18080 / 18090 on pod b's address): the control that shows the
peers do what the meshed part then expects of the daemon.

Pod a is the caller (spiffe://cluster.local/ns/h2/sa/client), pod b the
server (spiffe://cluster.local/ns/h2/sa/server); strict mTLS.
"""
import json
import os
import re

import mesh
from mesh import spiffe
from pods import HELPERS, PYTHON, through_mesh, wait_until

CLIENT = spiffe("h2", "client")
SERVER = spiffe("h2", "server")
GRPC_PORT, PLAIN_GRPC_PORT = 50051, 15051
PORT, POLICY_PORT, PLAIN_PORT = 8080, 8081, 18080

SAYHELLO_ONLY = [{"name": "grpc-sayhello", "action": "allow", "ports": [GRPC_PORT],
                  "principals": [CLIENT], "paths": ["/demo.Greeter/SayHello"]}]
FILES_ONLY = [{"name": "files-only", "action": "allow", "ports": [PORT], "principals": [CLIENT],
               "paths": ["/files/*"]}]


def helper(name):
    return os.path.join(HELPERS, name)


def grpc_peer(pod, *args, shim=True, timeout=120):
    """helpers/grpc_peer.py run to completion in pod."""
    return pod.run([PYTHON, helper("grpc_peer.py")] + [str(x) for x in args], shim=shim,
                   timeout=timeout)


def pair(cluster, policies=None, policy_default=None, b_extra=""):
    a, b = cluster.pair(start=False)
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    mesh.configure(a, ca.issue(CLIENT, os.path.join(cluster.tmp, "id-a")), mtls="strict")
    mesh.configure(b, ca.issue(SERVER, os.path.join(cluster.tmp, "id-b")), mtls="strict",
                   policies=policies, policy_default=policy_default, extra=b_extra)
    return a, b


def start(pod, args, name, port, shim=True, ready=r"^listening$"):
    p = pod.popen([str(x) for x in args], name=name, shim=shim)
    if ready:
        p.wait_output(ready, timeout=30)
    pod.wait_listening(p, port)
    return p


def inbound(b, port):
    """The server daemon's labels for the client's traffic to port (grpcio
    listens on a dual-stack IPv6 socket even when given an IPv4 address:
    its IPv4-mapped address is labelled as the IPv4 one)."""
    return dict(direction="inbound", tls="true", client_id=CLIENT,
                target_addr="%s:%d" % (b.addr4, port))


def outbound(b, port):
    return dict(direction="outbound", tls="true", server_id=SERVER,
                target_addr="%s:%d" % (b.addr4, port))


def series_text(pod, name):
    return "\n".join("%s %s %s" % (n, dict(l), v) for (n, l), v in sorted(
        mesh.metrics(pod).items(), key=lambda x: (x[0][0], sorted(x[0][1]))) if n == name)


def wait_count(pod, name, want, timeout=10, **labels):
    """Waits until the series called name with labels sum to want, then
    checks that they stay exactly want (nothing counted twice)."""
    try:
        wait_until(lambda: mesh.metric(pod, name, **labels) >= want, timeout, interval=0.2,
                   what="%s%s to reach %s in pod %s" % (name, labels, want, pod.label))
    except TimeoutError as e:
        raise AssertionError("%s; now %s; series:\n%s" % (
            e, mesh.metric(pod, name, **labels), series_text(pod, name)))
    got = mesh.metric(pod, name, **labels)
    assert got == want, "%s%s in pod %s is %s, expected exactly %s:\n%s" % (
        name, labels, pod.label, got, want, series_text(pod, name))


def count(pod, name, **labels):
    return mesh.metric(pod, name, **labels)


# --- stock HTTP/2 peers ---------------------------------------------------------------

def htdocs(pod):
    """nghttpd's document root: /files/a, /files/f0 ... /files/f9 and
    /admin, each a few bytes (so the control can show that the app itself
    serves /admin)."""
    root = os.path.join(pod.dir, "htdocs")
    os.makedirs(os.path.join(root, "files"), exist_ok=True)
    for name in ["a"] + ["f%d" % i for i in range(10)]:
        with open(os.path.join(root, "files", name), "w") as f:
            f.write("file %s\n" % name)
    with open(os.path.join(root, "admin"), "w") as f:
        f.write("admin page\n")
    return root


def nghttpd(pod, port, shim=True, addr="0.0.0.0"):
    """nghttpd serving htdocs(pod) as h2c (--no-tls, prior knowledge)."""
    return start(pod, [mesh.tool("nghttpd"), "--no-tls", "-d", htdocs(pod), "-a", addr, port],
                 "nghttpd-%d" % port, port, shim=shim, ready=None)


_STAT_ROW = re.compile(r"^\s*\d+\s+\S+\s+\S+\s+\S+\s+(\d{3})\s+\d+\s+(\S+)\s*$", re.M)


def nghttp(pod, urls, *opts, shim=True, timeout=60):
    """Stock nghttp (one connection for all URLs of one authority) with -s:
    returns [(status, path)] from its statistics table, one per answered
    stream (nghttp exits 0 even when requests went unanswered)."""
    r = pod.run([mesh.tool("nghttp"), "-s", "-t", "20s"] + list(opts) + list(urls), shim=shim,
                timeout=timeout)
    return [(int(c), p) for c, p in _STAT_ROW.findall(r.stdout)], r


def curl_h2(pod, url, *args, shim=True):
    """curl --http2-prior-knowledge, one URL (Debian's curl 7.88 cannot
    reuse a prior-knowledge connection for a second one): "CODE VERSION"."""
    r = mesh.curl(pod, "--http2-prior-knowledge", "-o", "/dev/null", "-w",
                  "%{http_code} %{http_version}", *args, url, shim=shim)
    return r.stdout.strip(), r


def node_h2(pod, origin, *paths, shim=True):
    """helpers/h2_client.js: one node http2 session, all paths as
    concurrent streams; returns ([(path, status)], sessions lines, Result)."""
    r = pod.run([mesh.tool("node"), helper("h2_client.js"), origin] + list(paths), shim=shim,
                timeout=60)
    got = [(p, int(c)) for p, c in re.findall(r"^status (\S+) (\d+)$", r.stdout, re.M)]
    return got, re.findall(r"^session local_port=\d+$", r.stdout, re.M), r


# --- gRPC -------------------------------------------------------------------------------

def test_grpc_unary_and_streaming_counted_by_grpc_status(cluster):
    """python3-grpcio: 100 unary SayHello calls on one channel (90 OK, 10
    INTERNAL) and one server-streaming call (5 messages).  Without the mesh
    the client sees exactly that (the control); through the mesh it sees
    the same, and the server's daemon counts 101 inbound requests whose
    responses split 91 success (grpc_status "0") / 10 failure
    (grpc_status "13"), all HTTP 200, each with a latency sample; the
    client's daemon counts the same outbound; the access log has a line per
    call and `ldmeshctl stats` the same split."""
    log_path = os.path.join(cluster.tmp, "access-b.log")
    a, b = pair(cluster, b_extra='telemetry = { access_log = "%s"; };' % log_path)
    plain = start(b, [PYTHON, helper("grpc_peer.py"), "greeter", b.addr4, PLAIN_GRPC_PORT],
                  "greeter-plain", PLAIN_GRPC_PORT, shim=False)
    r = grpc_peer(a, "calls", b.addr4, PLAIN_GRPC_PORT, 100, 10, shim=False)
    assert "unary ok=90 internal=10 other=0" in r.stdout, r
    assert "stream messages=5 code=OK" in r.stdout, r
    assert plain.out().count("call SayHello") == 100 and plain.out().count("call Stream") == 1

    srv = start(b, [PYTHON, helper("grpc_peer.py"), "greeter", b.addr4, GRPC_PORT],
                "greeter", GRPC_PORT)
    with through_mesh(a, b, GRPC_PORT):
        r = grpc_peer(a, "calls", b.addr4, GRPC_PORT, 100, 10)
    assert "unary ok=90 internal=10 other=0" in r.stdout, r
    assert "stream messages=5 code=OK" in r.stdout, r
    assert srv.out().count("call SayHello") == 100 and srv.out().count("call Stream") == 1

    inb = inbound(b, GRPC_PORT)
    wait_count(b, "request_total", 101, **inb)
    wait_count(b, "response_total", 101, **inb)
    assert count(b, "response_total", classification="success", grpc_status="0", **inb) == 91, \
        series_text(b, "response_total")
    assert count(b, "response_total", classification="failure", grpc_status="13", **inb) == 10, \
        series_text(b, "response_total")
    assert count(b, "response_total", status_code="200", **inb) == 101, \
        series_text(b, "response_total")
    assert count(b, "response_latency_ms_count", **inb) == 101
    assert count(b, "response_latency_ms_bucket", le="+Inf", **inb) == 101
    # One channel, one connection.
    assert count(b, "tcp_open_total", **inb) == 1, series_text(b, "tcp_open_total")

    def http_lines():
        with open(log_path) as f:
            return [json.loads(x) for x in f if '"kind":"http"' in x]
    rows = wait_until(lambda: (lambda r: r if len(r) >= 101 else None)(http_lines()), 10,
                      what="101 access-log lines")
    assert len(rows) == 101, rows[-3:]
    paths = sorted(set((r["method"], r["path"], r["status"]) for r in rows))
    assert paths == [("POST", "/demo.Greeter/SayHello", 200),
                     ("POST", "/demo.Greeter/Stream", 200)], paths
    assert all(r["peer_id"] == CLIENT and r["direction"] == "inbound" for r in rows), rows[0]
    row = [r for r in b.ctl_json("stats")["rows"]
           if r["direction"] == "inbound" and r["port"] == GRPC_PORT]
    assert len(row) == 1 and row[0]["requests"] == 101, row
    assert row[0]["success"] == 91 and row[0]["failure"] == 10, row

    out = outbound(b, GRPC_PORT)
    wait_count(a, "request_total", 101, **out)
    assert count(a, "response_total", classification="success", grpc_status="0", **out) == 91, \
        series_text(a, "response_total")
    assert count(a, "response_total", classification="failure", grpc_status="13", **out) == 10, \
        series_text(a, "response_total")


def test_grpc_policy_allows_one_method_per_call(cluster):
    """A policy that allows /demo.Greeter/SayHello only: on ONE channel (one
    connection), 10 rounds of SayHello and Other.  Without the mesh both
    methods answer OK (the control); through the mesh SayHello is OK every
    time while Other gets PERMISSION_DENIED from the daemon (the app never
    serves it), the channel keeps its one connection, and both are counted:
    response_total with grpc_status "0" and "7", and the denials in
    ldmesh_policy_decisions_total."""
    a, b = pair(cluster, policies=SAYHELLO_ONLY, policy_default="deny")
    start(b, [PYTHON, helper("grpc_peer.py"), "greeter", b.addr4, PLAIN_GRPC_PORT],
          "greeter-plain", PLAIN_GRPC_PORT, shim=False)
    r = grpc_peer(a, "methods", b.addr4, PLAIN_GRPC_PORT, 10, shim=False)
    assert "method SayHello OK=10\n" in r.stdout and "method Other OK=10\n" in r.stdout, r

    srv = start(b, [PYTHON, helper("grpc_peer.py"), "greeter", b.addr4, GRPC_PORT],
                "greeter", GRPC_PORT)
    r = grpc_peer(a, "methods", b.addr4, GRPC_PORT, 10)
    assert "method SayHello OK=10\n" in r.stdout, r
    assert "method Other PERMISSION_DENIED=10\n" in r.stdout, r
    assert srv.out().count("call SayHello") == 10 and "call Other" not in srv.out(), srv.out()

    inb = inbound(b, GRPC_PORT)
    wait_count(b, "request_total", 20, **inb)
    wait_count(b, "response_total", 20, **inb)
    assert count(b, "response_total", grpc_status="0", **inb) == 10, \
        series_text(b, "response_total")
    assert count(b, "response_total", grpc_status="7", **inb) == 10, \
        series_text(b, "response_total")
    assert count(b, "tcp_open_total", **inb) == 1, series_text(b, "tcp_open_total")
    assert count(b, "ldmesh_policy_decisions_total", decision="deny", rule="no-allow-rule-matched",
                 port=GRPC_PORT) >= 10, series_text(b, "ldmesh_policy_decisions_total")
    assert count(b, "ldmesh_policy_decisions_total", decision="allow", rule="grpc-sayhello",
                 port=GRPC_PORT) >= 10, series_text(b, "ldmesh_policy_decisions_total")


# --- nghttp, curl, node -------------------------------------------------------------------

def test_h2c_clients_counted_exactly(cluster):
    """nghttp with 100 concurrent streams on one connection, three curl
    --http2-prior-knowledge runs and a node http2 session with 50
    concurrent streams, all against nghttpd.  Without the mesh every
    stream gets 200 (the control); through the mesh too, and the server's
    daemon counts exactly 100, then 103, then 153 inbound requests (each
    stream once, all 200, success), on 5 connections; the client's daemon
    counts 153 outbound."""
    a, b = pair(cluster)
    nghttpd(b, PLAIN_PORT, shim=False, addr=b.addr4)
    plain = "http://%s:%d" % (b.addr4, PLAIN_PORT)
    got, r = nghttp(a, [plain + "/files/a"], "-n", "-m", "100", shim=False)
    assert got == [(200, "/files/a")] * 100, r
    assert curl_h2(a, plain + "/files/a", shim=False)[0] == "200 2"
    got, sessions, r = node_h2(a, plain, "/files/a*50", shim=False)
    assert got == [("/files/a", 200)] * 50 and len(sessions) == 1, r

    nghttpd(b, PORT)
    base = "http://%s:%d" % (b.addr4, PORT)
    inb = inbound(b, PORT)
    with through_mesh(a, b, PORT):
        got, r = nghttp(a, [base + "/files/a"], "-n", "-m", "100")
    assert got == [(200, "/files/a")] * 100, r
    wait_count(b, "request_total", 100, **inb)
    wait_count(b, "response_total", 100, status_code="200", classification="success", **inb)

    for _ in range(3):
        code, r = curl_h2(a, base + "/files/a")
        assert code == "200 2", r
    wait_count(b, "request_total", 103, **inb)

    got, sessions, r = node_h2(a, base, "/files/a*50")
    assert got == [("/files/a", 200)] * 50 and len(sessions) == 1, r
    wait_count(b, "request_total", 153, **inb)
    wait_count(b, "response_total", 153, status_code="200", classification="success", **inb)
    assert count(b, "response_total", **inb) == 153, series_text(b, "response_total")
    assert count(b, "response_latency_ms_count", **inb) == 153
    assert count(b, "tcp_open_total", **inb) == 5, series_text(b, "tcp_open_total")
    wait_count(a, "request_total", 153, **outbound(b, PORT))


def test_h2c_denied_stream_403_while_others_complete(cluster):
    """A policy that allows /files/* only.  nghttp asks for /files/f0 ...
    /files/f9 and /admin on one connection, node for /files/a x20 and
    /admin in one session, curl for /files/a and /admin: without the mesh
    every one is 200 (the app serves /admin: the control); through the mesh
    /admin gets 403 on its stream while every other stream of the same
    connection gets its 200, and the counts are exact: 34 requests, 3 of
    them 403, 3 denials counted, and nghttpd's connections carried them."""
    a, b = pair(cluster, policies=FILES_ONLY, policy_default="deny")
    nghttpd(b, PLAIN_PORT, shim=False, addr=b.addr4)
    plain = "http://%s:%d" % (b.addr4, PLAIN_PORT)
    files = ["/files/f%d" % i for i in range(10)]
    got, r = nghttp(a, [plain + p for p in files + ["/admin"]], "-n", shim=False)
    assert sorted(got) == sorted([(200, p) for p in files] + [(200, "/admin")]), r
    got, sessions, r = node_h2(a, plain, "/files/a*20", "/admin", shim=False)
    assert sorted(got) == sorted([("/files/a", 200)] * 20 + [("/admin", 200)]), r
    assert curl_h2(a, plain + "/admin", shim=False)[0] == "200 2"

    nghttpd(b, PORT)
    base = "http://%s:%d" % (b.addr4, PORT)
    got, r = nghttp(a, [base + p for p in files + ["/admin"]], "-n")
    assert sorted(got) == sorted([(200, p) for p in files] + [(403, "/admin")]), r
    got, sessions, r = node_h2(a, base, "/files/a*20", "/admin")
    assert sorted(got) == sorted([("/files/a", 200)] * 20 + [("/admin", 403)]), r
    assert len(sessions) == 1, r
    code, r = curl_h2(a, base + "/files/a")
    assert code == "200 2", r
    code, r = curl_h2(a, base + "/admin?token=secret")
    assert code == "403 2", r
    mesh.wait_log(b, r"request GET /admin from .* denied by no-allow-rule-matched \(HTTP/2")
    assert "secret" not in b.daemon_log()  # no query string in the log

    inb = inbound(b, PORT)
    wait_count(b, "request_total", 34, **inb)
    wait_count(b, "response_total", 34, **inb)
    assert count(b, "response_total", status_code="403", **inb) == 3, \
        series_text(b, "response_total")
    assert count(b, "response_total", status_code="200", **inb) == 31, \
        series_text(b, "response_total")
    assert count(b, "ldmesh_policy_decisions_total", decision="deny", rule="no-allow-rule-matched",
                 port=PORT) >= 3, series_text(b, "ldmesh_policy_decisions_total")
    assert count(b, "tcp_open_total", **inb) == 4, series_text(b, "tcp_open_total")


# --- Upgrade: h2c ---------------------------------------------------------------------------

def test_upgrade_h2c_counted_per_stream(cluster):
    """`nghttp -u` asks for /api/1 as an HTTP/1.1 request with `Upgrade:
    h2c` and then /api/2 and /api/3 as HTTP/2 streams 3 and 5, against an
    HTTP/1.1 server that honours the upgrade (python3-h2), on a port
    without policy rules.  Without the mesh the app serves all three over
    HTTP/2 (the control); through the mesh too, and the daemon follows the
    connection past the 101: 3 requests, 3 responses with status 200 and
    none with 101 on each side."""
    a, b = pair(cluster)
    start(b, [PYTHON, helper("h2c_server.py"), b.addr4, PLAIN_PORT], "h2c-plain", PLAIN_PORT,
          shim=False)
    plain = "http://%s:%d" % (b.addr4, PLAIN_PORT)
    paths = ["/api/1", "/api/2", "/api/3"]
    got, r = nghttp(a, [plain + p for p in paths], "-u", shim=False)
    assert sorted(got) == [(200, p) for p in paths], r

    srv = start(b, [PYTHON, helper("h2c_server.py"), "0.0.0.0", PORT], "h2c", PORT)
    base = "http://%s:%d" % (b.addr4, PORT)
    got, r = nghttp(a, [base + p for p in paths], "-u")
    assert sorted(got) == [(200, p) for p in paths], r
    for p in paths:
        srv.wait_output(r"^served h2 %s$" % re.escape(p), timeout=10)

    for pod, labels in ((b, inbound(b, PORT)), (a, outbound(b, PORT))):
        wait_count(pod, "request_total", 3, **labels)
        wait_count(pod, "response_total", 3, status_code="200", **labels)
        assert count(pod, "response_total", status_code="101", **labels) == 0, \
            series_text(pod, "response_total")
        assert count(pod, "response_total", **labels) == 3, series_text(pod, "response_total")


# --- identity header ------------------------------------------------------------------------

FORGED = "By=spiffe://cluster.local/ns/x/sa/forger;URI=spiffe://cluster.local/ns/x/sa/admin"


def xfcc_seen(srv, path):
    """The x-forwarded-client-cert values the echo app saw on path."""
    m = re.search(r"^headers %s (.*)$" % re.escape(path), srv.out(), re.M)
    assert m, "the app saw no HTTP/2 request for %s:\n%s" % (path, srv.out())
    return [v for k, v in json.loads(m.group(1)) if k == "x-forwarded-client-cert"]


def test_xfcc_added_to_http2_requests(cluster):
    """An h2c app (python3-h2) that echoes the header fields it got.
    Without the mesh a client's forged x-forwarded-client-cert reaches it
    as sent (the control: the app reads the header); through the mesh, on
    curl --http2-prior-knowledge and on both streams of one nghttp
    connection, the app sees exactly one x-forwarded-client-cert, naming
    the caller's verified identity (By= the server, URI= the client), and
    never the forged one."""
    a, b = pair(cluster)
    plain = start(b, [PYTHON, helper("h2c_server.py"), b.addr4, PLAIN_PORT, "echo-headers"],
                  "h2c-echo-plain", PLAIN_PORT, shim=False)
    code, r = curl_h2(a, "http://%s:%d/plain" % (b.addr4, PLAIN_PORT), "-H",
                      "x-forwarded-client-cert: " + FORGED, shim=False)
    assert code == "200 2", r
    assert xfcc_seen(plain, "/plain") == [FORGED]

    srv = start(b, [PYTHON, helper("h2c_server.py"), "0.0.0.0", PORT, "echo-headers"],
                "h2c-echo", PORT)
    base = "http://%s:%d" % (b.addr4, PORT)
    code, r = curl_h2(a, base + "/curl", "-H", "x-forwarded-client-cert: " + FORGED)
    assert code == "200 2", r
    got, r = nghttp(a, [base + "/s1", base + "/s2"], "-n", "-H",
                    "x-forwarded-client-cert: " + FORGED)
    assert sorted(got) == [(200, "/s1"), (200, "/s2")], r
    want = "By=%s;URI=%s" % (SERVER, CLIENT)
    for path in ("/curl", "/s1", "/s2"):
        seen = xfcc_seen(srv, path)
        assert len(seen) == 1 and seen[0].endswith("URI=" + CLIENT), (path, seen)
        assert seen[0] == want, (path, seen)
    assert "sa/admin" not in srv.out() and "forger" not in srv.out(), srv.out()


# --- floods ----------------------------------------------------------------------------------

FLOODS = ("settings", "tiny", "bigheader")
BOUNDED = re.compile(r"^outcome (\w+) sent=(\d+) result=(status:\d+|goaway:\d+|rst_stream:\d+|"
                     r"eof|reset|stalled) seconds=[\d.]+$", re.M)


def flood_outcomes(procs):
    out = {}
    for p in procs:
        p.wait(60)
        m = BOUNDED.search(p.out())
        assert m, "a flood client did not end in a bounded way: %s" % p.describe()
        out[m.group(1)] = m.group(3)
    return out


def rss_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        m = re.search(r"^%s:\s+(\d+) kB" % field, f.read(), re.M)
    return int(m.group(1))


def test_frame_floods_bounded_without_harming_other_connections(cluster):
    """Raw h2c clients flood nghttpd with 20,000 SETTINGS frames, with
    tiny frames (a header block in 1-byte CONTINUATIONs, 20,000 empty DATA
    frames) and with a 1 MiB header block in CONTINUATION frames, all
    asking for /admin.  Without the mesh each flood ends (the control shows
    nghttpd's own answer).  Through the mesh, on a port without rules
    (8080) and on one that allows only /files/* (8081): every flood ends
    within its bounds (an answer, GOAWAY, RST_STREAM, close or flow
    control), a flood on the rule port never gets /admin served, and an
    nghttp connection with 50 streams to the same server at the same time
    gets all 50 answers, each counted once under its own authority.  The
    daemon keeps serving afterwards, and (outside ASan) its peak memory
    grew by less than 64 MiB."""
    policies = [dict(FILES_ONLY[0], ports=[POLICY_PORT])]
    a, b = pair(cluster, policies=policies)
    nghttpd(b, PLAIN_PORT, shim=False, addr=b.addr4)
    control = flood_outcomes([a.popen([PYTHON, helper("h2_flood.py"), mode, b.addr4,
                                       str(PLAIN_PORT), "/admin"], name="flood-" + mode,
                                      shim=False) for mode in FLOODS])
    assert set(control) == set(FLOODS), control
    # Without the mesh the SETTINGS flood reaches its request: nghttpd
    # serves /admin.
    assert control["settings"] == "status:200", control

    nghttpd(b, PORT)
    nghttpd(b, POLICY_PORT)
    hwm0 = rss_kib(b.daemon.pid, "VmHWM")
    for port in (PORT, POLICY_PORT):
        floods = [a.popen([PYTHON, helper("h2_flood.py"), mode, b.addr4, str(port), "/admin"],
                          name="flood-%s-%d" % (mode, port)) for mode in FLOODS]
        got, r = nghttp(a, ["http://%s:%d/files/a" % (b.addr4, port)], "-n", "-m", "50", "-H",
                        ":authority: good-%d.example" % port)
        outcomes = flood_outcomes(floods)
        assert got == [(200, "/files/a")] * 50, (port, outcomes, r)
        assert set(outcomes) == set(FLOODS), outcomes
        if port == POLICY_PORT:
            assert "status:200" not in outcomes.values(), outcomes
        assert b.daemon.alive(), b.daemon.describe()
        wait_count(b, "request_total", 50, authority="good-%d.example" % port,
                   **inbound(b, port))
        wait_count(b, "response_total", 50, authority="good-%d.example" % port,
                   status_code="200", **inbound(b, port))

    code, r = curl_h2(a, "http://%s:%d/files/a" % (b.addr4, PORT))
    assert code == "200 2", r
    code, r = curl_h2(a, "http://%s:%d/files/a" % (b.addr4, POLICY_PORT))
    assert code == "200 2", r
    if not cluster.mode.asan:  # ASan's quarantine keeps freed memory resident
        grew = rss_kib(b.daemon.pid, "VmHWM") - hwm0
        assert grew < 64 * 1024, "ldmeshd's peak RSS grew by %d KiB during the floods" % grew
