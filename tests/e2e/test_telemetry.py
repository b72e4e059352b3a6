"""Golden-metric telemetry (issue 5), with stock binaries: curl, python3,
promtool and prometheus, tmux.

Two meshed pods: a (payments) calls b (orders) through both daemons.  The
server is a stock python3 http.server whose path picks the answer
(/status/500, /chunked, /upgrade ...), so the counts each daemon reports can
be checked exactly.
"""
import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse

import pytest

import mesh
from mesh import spiffe
from pods import PYTHON, sh, wait_until

PAYMENTS = spiffe("shop", "payments")
ORDERS = spiffe("shop", "orders")
PORT = 8080

SERVER = r'''
import http.server, socket, sys, threading

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def body(self, code, data):
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):
        p = self.path.split("?")[0]
        if p.startswith("/status/"):
            code = int(p.split("/")[2])
            self.body(code, b"status %d\n" % code)
        elif p == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"first ", b"second ", b"third\n"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        elif p == "/upgrade":
            # Switch to a line echo protocol: from here on, opaque bytes.
            self.send_response(101)
            self.send_header("Upgrade", "echo")
            self.send_header("Connection", "Upgrade")
            self.end_headers()
            self.wfile.flush()
            for line in self.rfile:
                self.wfile.write(b"echo " + line)
                self.wfile.flush()
            self.close_connection = True
        elif p == "/close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.wfile.write(b"bye!\n\n")
            self.close_connection = True
        else:
            self.body(200, b"ok " + p.encode() + b"\n")

    do_HEAD = do_GET

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n)
        self.body(201, b"got %d\n" % len(data))

    def log_message(self, fmt, *args):
        pass

s = http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H)
s.daemon_threads = True
print("listening", flush=True)
s.serve_forever()
'''


def start_server(pod, port=PORT):
    path = os.path.join(pod.dir, "tel_server.py")
    with open(path, "w") as f:
        f.write(SERVER)
    srv = pod.popen([PYTHON, path, pod.addr4, str(port)], name="telsrv")
    srv.wait_output(r"^listening$", timeout=20)
    pod.wait_listening(srv, port)
    return srv


def meshed_pair(cluster, a_extra="", b_extra=""):
    a, b = cluster.pair(start=False)
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    mesh.configure(a, ca.issue(PAYMENTS, os.path.join(cluster.tmp, "id-a")), mtls="strict",
                   extra=a_extra)
    mesh.configure(b, ca.issue(ORDERS, os.path.join(cluster.tmp, "id-b")), mtls="strict",
                   extra=b_extra)
    return a, b


def series(m, name, **labels):
    """{frozenset(labels): value} of the series called name that carry labels."""
    want = set((k, str(v)) for k, v in labels.items())
    return {l: v for (n, l), v in m.items() if n == name and want <= l}


def total(m, name, **labels):
    return sum(series(m, name, **labels).values())


def curl_codes(pod, urls):
    """One stock curl, one keep-alive connection, one status code per URL."""
    args = ["-w", "%{http_code} %{num_connects}\n"]
    for u in urls:
        args += ["-o", "/dev/null", u]
    r = mesh.curl(pod, *args, timeout=60)
    assert r.returncode == 0, r
    rows = [line.split() for line in r.stdout.splitlines()]
    return [int(code) for code, _ in rows], sum(int(n) for _, n in rows)


# --- request metrics ----------------------------------------------------------------


def test_request_total_on_both_daemons(cluster):
    """N requests from a bounded curl loop are request_total = N on the
    client's daemon (outbound, server_id) and the server's (inbound,
    client_id), with the 200/500 split in response_total and the latency
    histogram's count; the TCP series count the connection and its bytes."""
    a, b = meshed_pair(cluster)
    start_server(b)
    base = "http://%s:%d" % (b.addr4, PORT)
    urls = ["%s/status/500" % base if i % 4 == 0 else "%s/ok/%d" % (base, i) for i in range(20)]
    codes, connects = curl_codes(a, urls)
    assert codes.count(500) == 5 and codes.count(200) == 15, codes
    authority = "%s:%d" % (b.addr4, PORT)

    # The connection is still open on both sides until curl's FIN lands.
    def settled():
        return (total(mesh.metrics(a), "tcp_open_connections", direction="outbound") == 0
                and total(mesh.metrics(b), "tcp_open_connections", direction="inbound") == 0)
    wait_until(settled, 10, what="connections closed")

    ma, mb = mesh.metrics(a), mesh.metrics(b)
    out = dict(direction="outbound", authority=authority, target_addr=authority, tls="true",
               server_id=ORDERS)
    inn = dict(direction="inbound", authority=authority, target_addr=authority, tls="true",
               client_id=PAYMENTS)
    for m, labels, who in ((ma, out, "client"), (mb, inn, "server")):
        assert total(m, "request_total", **labels) == 20, (who, series(m, "request_total"))
        assert total(m, "response_total", status_code="200", classification="success",
                     **labels) == 15, (who, series(m, "response_total"))
        assert total(m, "response_total", status_code="500", classification="failure",
                     **labels) == 5, (who, series(m, "response_total"))
        assert total(m, "response_latency_ms_count", **labels) == 20, who
        assert total(m, "response_latency_ms_bucket", le="+Inf", **labels) == 20, who
        assert total(m, "response_latency_ms_sum", **labels) > 0, who

    tcp_out = dict(direction="outbound", peer="dst", target_addr=authority, tls="true",
                   server_id=ORDERS)
    tcp_in = dict(direction="inbound", peer="src", target_addr=authority, tls="true",
                  client_id=PAYMENTS)
    assert total(ma, "tcp_open_total", **tcp_out) == connects == 1
    assert total(mb, "tcp_open_total", **tcp_in) == 1
    assert total(ma, "tcp_close_total", classification="success", **tcp_out) == 1
    assert total(mb, "tcp_close_total", classification="success", **tcp_in) == 1
    # Bytes: what curl sent is what the server's daemon read, and back.
    assert total(ma, "tcp_write_bytes_total", **tcp_out) == \
        total(mb, "tcp_read_bytes_total", **tcp_in) > 20 * 30
    assert total(ma, "tcp_read_bytes_total", **tcp_out) == \
        total(mb, "tcp_write_bytes_total", **tcp_in) > 20 * 60


def test_http_detection_cases(cluster):
    """Keep-alive, pipelining, chunked bodies, 1xx (Expect: 100-continue),
    HEAD, Connection: close and Upgrade: each request counted once with its
    status on both daemons; after the 101 the bytes are opaque TCP (an echo
    protocol that passes through unchanged and is not counted)."""
    a, b = meshed_pair(cluster)
    start_server(b)
    base = "http://%s:%d" % (b.addr4, PORT)

    # HEAD, chunked and keep-alive on one connection.
    r = mesh.curl(a, "-sS", "-I", "%s/head" % base)
    assert r.returncode == 0 and " 200" in r.stdout.splitlines()[0], r
    r = mesh.curl(a, "%s/chunked" % base)
    assert r.stdout == "first second third\n", r
    # 100-continue: curl waits for the interim answer before its body.
    payload = os.path.join(a.dir, "payload")
    with open(payload, "wb") as f:
        f.write(b"x" * 200000)
    r = mesh.curl(a, "-H", "Expect: 100-continue", "--data-binary", "@" + payload,
                  "%s/post" % base)
    assert r.stdout == "got 200000\n", r
    # Connection: close from the server.
    r = mesh.curl(a, "%s/close" % base)
    assert r.stdout == "bye!\n\n", r
    # Pipelining: three requests in one write from a python client.
    pipelined = a.run([PYTHON, "-c", PIPELINE, b.addr4, str(PORT)], timeout=30)
    assert pipelined.returncode == 0, pipelined
    assert pipelined.stdout.count("HTTP/1.1 200") == 3, pipelined
    # Upgrade: a 101, then an echo protocol.
    up = a.run([PYTHON, "-c", UPGRADE, b.addr4, str(PORT)], timeout=30)
    assert up.returncode == 0 and "echo GET /not-a-request HTTP/1.1" in up.stdout, up

    def counted():
        ma, mb = mesh.metrics(a), mesh.metrics(b)
        return all(total(m, "request_total", direction=d) == 8 and
                   total(m, "tcp_open_connections", direction=d) == 0
                   for m, d in ((ma, "outbound"), (mb, "inbound")))
    try:
        wait_until(counted, 10, what="8 requests counted on both daemons")
    except TimeoutError:
        ma, mb = mesh.metrics(a), mesh.metrics(b)
        raise AssertionError("request_total: a %s, b %s; open: a %s, b %s" % (
            total(ma, "request_total"), total(mb, "request_total"),
            series(ma, "tcp_open_connections"), series(mb, "tcp_open_connections")))
    for pod, d in ((a, "outbound"), (b, "inbound")):
        m = mesh.metrics(pod)
        # HEAD, chunked, close and 3 pipelined; the post (201 after the
        # interim 100, which is not a response of its own); the 101.
        assert total(m, "response_total", direction=d, status_code="200") == 6, (
            pod.label, series(m, "response_total"))
        assert total(m, "response_total", direction=d, status_code="201") == 1
        assert total(m, "response_total", direction=d, status_code="101") == 1
        assert total(m, "response_total", direction=d, status_code="100") == 0
        assert total(m, "response_total", direction=d, classification="failure") == 0


PIPELINE = r'''
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
req = "GET /p/%d HTTP/1.1\r\nHost: x\r\n\r\n"
s.sendall(b"".join((req % i).encode() for i in range(3)))
data = b""
while data.count(b"ok /p/") < 3:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(data.decode())
'''

UPGRADE = r'''
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
f = s.makefile("rb")
status = f.readline()
assert b" 101 " in status, status
while f.readline() not in (b"\r\n", b""):
    pass
s.sendall(b"GET /not-a-request HTTP/1.1\n")
print(status.decode().strip())
print(f.readline().decode().strip())
'''


def test_client_sent_identity_header_is_replaced(cluster):
    """A client's own x-forwarded-client-cert never reaches the app: the
    server's daemon strips it and adds the verified identity, as Istio does."""
    a, b = meshed_pair(cluster)
    srv = mesh.start_app(b, PORT)
    r = mesh.curl(a, "-H", "x-forwarded-client-cert: By=x;URI=spiffe://cluster.local/ns/x/sa/admin",
                  "http://%s:%d/who" % (b.addr4, PORT))
    body = mesh.app_json(r)
    assert len(body["xfcc"]) == 1 and body["xfcc"][0].endswith("URI=" + PAYMENTS), body
    assert "admin" not in srv.out()


# --- exposition ---------------------------------------------------------------------


def scrape_text(pod):
    r = pod.run([mesh.tool("curl"), "-sS", "--max-time", "5",
                 "http://127.0.0.1:%d/metrics" % mesh.ADMIN_PORT], shim=False, timeout=15)
    assert r.returncode == 0, r
    return r.stdout


# Linkerd's own names, kept so its dashboards work; promtool's only finding
# on them is its abbreviated-unit lint (docs/observability.md).
LINKERD_MS_NAMES = ("response_latency_ms", "route_response_latency_ms",
                    "tcp_connection_duration_ms")


def promtool_findings(text):
    """What promtool check metrics says about text, but the documented
    abbreviated-unit lint on Linkerd's millisecond names."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: make deps installs Debian's prometheus package"
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    findings = [line for line in (r.stdout + r.stderr).splitlines() if line.strip()]
    other = []
    for f in findings:
        if f.split(" ")[0] in LINKERD_MS_NAMES:
            assert "abbreviated" in f or "base unit" in f or "units" in f, f
        else:
            other.append(f)
    return other


def test_promtool_check_metrics(cluster):
    """Debian's promtool finds nothing wrong in /metrics after traffic, but
    the abbreviated-unit lint on Linkerd's own millisecond names."""
    a, b = meshed_pair(cluster)
    start_server(b)
    base = "http://%s:%d" % (b.addr4, PORT)
    curl_codes(a, ["%s/status/%d" % (base, c) for c in (200, 404, 503)])
    for pod in (a, b):
        text = scrape_text(pod)
        assert "request_total{" in text and "ldmesh_handoffs_total" in text
        other = promtool_findings(text)
        assert not other, "promtool on pod %s:\n%s" % (pod.label, "\n".join(other))


def test_prometheus_scrapes_the_daemon(cluster):
    """A real Prometheus (Debian's) scrapes the client pod's admin listener
    and answers Linkerd-dashboard PromQL: request count by server identity,
    success rate from classification, p99 from histogram_quantile on
    response_latency_ms."""
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus missing: make deps installs Debian's prometheus package"
    a, b = meshed_pair(cluster)
    start_server(b)
    base = "http://%s:%d" % (b.addr4, PORT)
    curl_codes(a, ["%s/status/%d" % (base, 500 if i < 3 else 200) for i in range(12)])
    pdir = os.path.join(a.dir, "prom")
    os.makedirs(pdir, exist_ok=True)
    with open(os.path.join(pdir, "prometheus.yml"), "w") as f:
        f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n"
                "  - job_name: ldmesh\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n" % mesh.ADMIN_PORT)
    prom = a.popen([prometheus, "--config.file=" + os.path.join(pdir, "prometheus.yml"),
                    "--storage.tsdb.path=" + os.path.join(pdir, "data"),
                    "--web.listen-address=127.0.0.1:9090"], name="prometheus", shim=False)
    results = {}

    def query(q):
        r = a.run([mesh.tool("curl"), "-sS", "--max-time", "5",
                   "http://127.0.0.1:9090/api/v1/query?query=" + urllib.parse.quote(q)],
                  shim=False, timeout=15)
        if r.returncode != 0:
            return None
        try:
            res = json.loads(r.stdout)
        except ValueError:
            return None  # still starting: an empty or plain-text answer
        if res.get("status") != "success" or not res["data"]["result"]:
            return None
        return float(res["data"]["result"][0]["value"][1])

    def seen():
        results["n"] = query('sum(request_total{direction="outbound",server_id="%s"})' % ORDERS)
        results["sr"] = query('sum(response_total{direction="outbound",'
                              'classification="success",server_id="%s"}) / '
                              'sum(response_total{direction="outbound"})' % ORDERS)
        results["p99"] = query('histogram_quantile(0.99, sum by (le) '
                               '(response_latency_ms_bucket{direction="outbound"}))')
        return None not in (results["n"], results["sr"], results["p99"])
    try:
        wait_until(seen, 60, interval=1, what="prometheus answers")
    finally:
        prom.stop()
    assert results["n"] == 12, results
    assert results["sr"] == pytest.approx(9 / 12), results
    assert 0 < results["p99"] <= 50000, results


# --- access log and CLI -------------------------------------------------------------


def test_access_log_json_lines(cluster):
    """Off by default; when on, one JSON line per request (method, path,
    status, latency, identity, rule) and per connection (bytes), never the
    query string or a body."""
    log_path = os.path.join(cluster.tmp, "access-b.log")
    a, b = meshed_pair(cluster, b_extra='telemetry = { access_log = "%s"; };' % log_path)
    start_server(b)
    off = len(a.daemon_log())
    base = "http://%s:%d" % (b.addr4, PORT)
    codes, _ = curl_codes(a, ["%s/status/503?token=secret" % base, "%s/items/1" % base])
    assert codes == [503, 200]

    def lines():
        if not os.path.exists(log_path):
            return []
        with open(log_path) as f:
            return [json.loads(line) for line in f if line.strip()]
    wait_until(lambda: any(r["kind"] == "tcp" for r in lines()), 10, what="tcp line")
    rows = lines()
    http_rows = [r for r in rows if r["kind"] == "http"]
    assert [(r["method"], r["path"], r["status"]) for r in http_rows] == [
        ("GET", "/status/503", 503), ("GET", "/items/1", 200)], rows
    for r in http_rows:
        assert r["direction"] == "inbound" and r["peer_id"] == PAYMENTS, r
        assert r["authority"] == "%s:%d" % (b.addr4, PORT) and r["tls"] is True, r
        assert r["latency_ms"] >= 0 and re.match(r"\d{4}-\d\d-\d\dT", r["time"]), r
    tcp = [r for r in rows if r["kind"] == "tcp"]
    assert len(tcp) == 1 and tcp[0]["requests"] == 2 and tcp[0]["bytes_in"] > 0 and \
        tcp[0]["bytes_out"] > 0 and tcp[0]["outcome"] == "ok", tcp
    text = open(log_path).read()
    assert "secret" not in text and "token" not in text
    # The client pod did not turn it on: nothing in its stderr log.
    assert '"kind":"http"' not in a.daemon_log()[off:]


def test_ctl_stats_and_json(cluster):
    """`ldmeshctl stats` prints golden metrics per peer identity and port;
    `--json` gives the same numbers to scripts."""
    a, b = meshed_pair(cluster)
    start_server(b)
    base = "http://%s:%d" % (b.addr4, PORT)
    curl_codes(a, ["%s/status/%d" % (base, 500 if i < 2 else 200) for i in range(10)])
    wait_until(lambda: b.ctl_json("stats")["rows"] and
               b.ctl_json("stats")["rows"][0]["tcp_open"] == 0, 10, what="closed")
    rows = b.ctl_json("stats")["rows"]
    row = [r for r in rows if r["direction"] == "inbound" and r["port"] == PORT]
    assert len(row) == 1, rows
    row = row[0]
    assert row["peer_id"] == PAYMENTS and row["requests"] == 10, row
    assert row["success"] == 8 and row["failure"] == 2, row
    assert row["success_rate"] == pytest.approx(0.8) and row["p50_ms"] is not None, row
    assert row["latency_buckets"][-1] == 10 and row["tcp_opened"] == 1, row
    text = b.ctl("stats")
    assert text.returncode == 0, text
    line = [l for l in text.stdout.splitlines() if PAYMENTS in l]
    assert len(line) == 1 and re.search(r"\b%d\s+10\s+80\.00%%" % PORT, line[0]), text.stdout
    out = [r for r in a.ctl_json("stats")["rows"] if r["direction"] == "outbound"]
    assert out and out[0]["peer_id"] == ORDERS and out[0]["requests"] == 10, out


def test_ctl_top_in_tmux(cluster):
    """`ldmeshctl top` in a real terminal (tmux): refreshes every second
    with requests/s, success rate and p50/p99 per peer, and quits on q."""
    tmux = shutil.which("tmux")
    assert tmux, "tmux missing: make deps installs it"
    a, b = meshed_pair(cluster)
    start_server(b)
    base = "http://%s:%d" % (b.addr4, PORT)
    loop = mesh.start_loop(a, b.addr4, PORT, "/ok", 400, 20, per_conn=50)
    session = "ldmt%d" % os.getpid()
    cmd = "%s --runtime-dir %s top" % (b.mode.ldmeshctl, b.runtime_dir)
    sh(tmux, "new-session", "-d", "-s", session, "-x", "160", "-y", "30", cmd)
    try:
        def screen():
            return subprocess.run([tmux, "capture-pane", "-p", "-t", session],
                                  capture_output=True, text=True).stdout
        wait_until(lambda: PAYMENTS in screen() and re.search(r"RPS", screen()), 15,
                   what="top shows the client")
        first = screen()
        time.sleep(2.2)
        second = screen()
        assert first != second, "top did not refresh:\n" + second
        assert re.search(r"P99", second) and "SUCCESS" in second, second
        sh(tmux, "send-keys", "-t", session, "q")
        wait_until(lambda: subprocess.run([tmux, "has-session", "-t", session],
                                          capture_output=True).returncode != 0, 5,
                   what="top quits on q")
    finally:
        subprocess.run([tmux, "kill-session", "-t", session], capture_output=True)
        loop.stop()


def test_label_sets_are_bounded(cluster):
    """Authorities come from clients: with telemetry.max_series = 16, 40
    distinct Host headers make at most 16 label sets; the rest are counted
    in the direction's "overflow" series, so no request goes uncounted."""
    a, b = meshed_pair(cluster, b_extra="telemetry = { max_series = 16; };")
    start_server(b)
    args = []
    for i in range(40):  # --next: each URL gets its own Host header
        args += (["--next"] if i else []) + ["-sS", "-H", "Host: h%d.example" % i, "-o",
                                             "/dev/null", "http://%s:%d/ok/%d" % (b.addr4, PORT, i)]
    r = mesh.curl(a, *args, timeout=60)
    assert r.returncode == 0, r
    wait_until(lambda: total(mesh.metrics(b), "request_total", direction="inbound") == 40, 10,
               what="40 inbound requests counted")
    m = mesh.metrics(b)
    assert total(m, "ldmesh_metrics_series") <= 16
    assert total(m, "ldmesh_metrics_series_overflow_total") > 0
    over = total(m, "request_total", direction="inbound", authority="overflow",
                 target_addr="overflow")
    named = len([l for l in series(m, "request_total", direction="inbound")
                 if dict(l)["authority"] != "overflow"])
    assert over > 0 and named < 16 and over + named == 40, (over, named)
