"""Requests routed one by one (issue 16): an app's connection to a
service address whose protocol is "auto" (the default) or "http" has each
HTTP/1 request sent to an endpoint the client's daemon picks for it, over
pooled upstream connections to the endpoints' daemons (links or mTLS), so
one keep-alive connection reaches every endpoint.  Request timeouts answer
504, retries on configured statuses stay within the service's retry
budget, splits are drawn per request.  Pod a is the client; b, c and d run
a stock python3 http.server app behind service web, strict mTLS."""
import hashlib
import os
import random
import re
import signal
import subprocess
import time

import mesh
from pods import wait_until

SUBNET = 214

# A stock http.server app: GET /<anything> answers 200 with the pod's
# label, or the status given as argv[4] (503 for a failing pod); /hang
# never answers (until the test ends); /sleep/<ms> answers after ms.
APP = r'''
import http.server, sys, time

LABEL, STATUS = sys.argv[3], int(sys.argv[4])

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        print("request GET %s" % self.path, flush=True)
        if self.path == "/hang":
            time.sleep(60)
        if self.path.startswith("/sleep/"):
            time.sleep(int(self.path.split("/")[2]) / 1000.0)
        body = ("%s %s\n" % (LABEL, self.path)).encode()
        self.send_response(STATUS)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass

srv = http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H)
srv.daemon_threads = True
print("listening", flush=True)
srv.serve_forever()
'''


def start_app(cluster, pod, status=200):
    path = os.path.join(cluster.tmp, "routed_app.py")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write(APP)
    app = pod.popen([mesh.PYTHON, path, pod.addr4, "8080", pod.label, str(status)],
                    name="app")
    app.wait_output(r"^listening$", timeout=20)
    pod.wait_listening(app, 8080)
    return app


def routed_pods(cluster, statuses=None, subnet=SUBNET, **svc):
    """a (client) and b, c, d behind service web; svc: more keys of web's
    config group; statuses: label -> the status that pod's app answers."""
    a, servers, vip = mesh.service_mesh(cluster, subnet, lambda vip, servers: [
        dict({"name": "web", "port": 8080, "addresses": [vip],
              "endpoints": ["%s:8080" % s.addr4 for s in servers]}, **svc)])
    apps = {s.label: start_app(cluster, s, (statuses or {}).get(s.label, 200))
            for s in servers}
    return a, servers, vip, apps


def keepalive_loop(a, vip, path, n, per_conn=None):
    """n GETs of path on keep-alive connections (one unless per_conn);
    the statuses and errors seen."""
    return mesh.service_loop(a, vip, path, n, per_conn or n, limit=90)


def served(apps, path):
    return {label: app.out().count("request GET %s\n" % path) for label, app in apps.items()}


def service_json(a):
    svc = a.ctl_json("services")
    assert [s["name"] for s in svc] == ["web"], svc
    return svc[0]


def test_one_connection_reaches_every_endpoint(cluster):
    """Requests for 3 s on one keep-alive connection to the service address
    land on all three endpoints (each request picked on its own; none
    gets more than four fifths), all 200; the balancer counts each one,
    the endpoints' connections stay pooled (no connection per request),
    and the app sees one connection.  (One request at a time, power of
    two choices leaves the costliest of three endpoints aside until its
    latency estimate decays, about a second: hence seconds, not a count.)"""
    a, servers, vip, apps = routed_pods(cluster)
    host, port = vip.split(":")
    p = mesh.start_loop(a, host, int(port), "/one", 100000, 3, per_conn=100000)
    p.wait(timeout=60)
    oks, errors = mesh.loop_results(p)
    n = len(oks)
    assert n >= 30 and not errors and set(oks) == {"200"}, (oks[:5], errors)
    share = served(apps, "/one")
    assert sum(share.values()) == n and min(share.values()) >= 1 and \
        max(share.values()) <= n * 4 // 5, share
    svc = service_json(a)
    assert svc["protocol"] == "auto" and svc["requests_total"] == n, svc
    eps = svc["endpoints"]
    assert sum(e["requests_total"] for e in eps) == n, eps
    assert sum(e["responses"]["success"] for e in eps) == n, eps
    # Upstream connections are reused: far fewer than requests.
    assert sum(e["connections_total"] for e in eps) <= 12, eps
    assert all(e["outstanding"] == 0 for e in eps), eps
    assert mesh.metric(a, "ldmesh_route_requests_total", service="web") == n
    assert mesh.metric(a, "ldmesh_balancer_requests_total", service="web") == n
    # The app's own connection is one outbound connection in the metrics.
    assert mesh.metric(a, "tcp_open_total", direction="outbound") == 1
    assert mesh.metric(a, "request_total", direction="outbound") == n
    assert mesh.metric(a, "response_total", direction="outbound", status_code="200") == n

    # stats: the service's and each endpoint's rows, as text and JSON;
    # top shows them (from the raw lines it asks for).
    text = a.ctl("stats").ok().stdout
    for s in servers:
        row = [ln for ln in text.splitlines() if ln.startswith("web ") and s.addr4 in ln]
        assert len(row) == 1 and row[0].split()[-2] == str(share[s.label]), (row, text)
    js = a.ctl_json("stats")
    assert [x["requests_total"] for x in js["services"]] == [n], js
    top = subprocess.Popen([a.mode.ldmeshctl, "--runtime-dir", a.runtime_dir, "top"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    try:
        time.sleep(2.5)
    finally:
        top.send_signal(signal.SIGTERM)
        out, err = top.communicate(timeout=10)
    frame = out.decode(errors="replace").split("ldmeshctl top")[-1]
    assert re.search(r"^SERVICE +ENDPOINT +RPS +SUCCESS", frame, re.M), frame
    assert re.search(r"^web +\(all\) ", frame, re.M), frame
    for s in servers:
        assert re.search(r"^web +%s:8080 .* ready" % re.escape(s.addr4), frame, re.M), frame


def test_retry_on_5xx_within_budget(cluster):
    """Pod d's app answers every request 503 and web retries 5xx: the
    client sees only 200s, every 503 d gave was retried on another
    endpoint, and the retries stay within the budget (10 per second for
    10 s plus 20 % of the requests)."""
    a, servers, vip, apps = routed_pods(
        cluster, statuses={"d": 503},
        retry={"on": ["5xx"], "max": 2, "budget_percent": 20, "min_per_s": 10, "ttl_s": 10})
    oks, errors = keepalive_loop(a, vip, "/retried", 60)
    assert len(oks) == 60 and not errors and set(oks) == {"200"}, (oks, errors)
    share = served(apps, "/retried")
    assert share["b"] + share["c"] == 60, share
    svc = service_json(a)
    assert svc["retries_total"] == share["d"] and svc["budget_exhausted_total"] == 0, (svc, share)
    assert share["d"] <= 10 * 10 + 60 * 20 // 100, share
    d_ep = [e for e in svc["endpoints"] if e["addr"].startswith(servers[2].addr4 + ":")][0]
    assert d_ep["responses"]["5xx"] == share["d"], d_ep
    assert mesh.metric(a, "ldmesh_route_retries_total", service="web") == share["d"]


def test_retries_stop_at_the_budget(cluster):
    """Every endpoint answers 503: retries are made while the budget
    lasts (1 per second for 10 s plus 20 % of the requests: at most 30
    for 100 requests) and then stop, counted as budget exhaustion; the
    client gets the endpoints' 503s, never a storm: the apps see at most
    130 requests for the client's 100."""
    a, servers, vip, apps = routed_pods(
        cluster, statuses={"b": 503, "c": 503, "d": 503},
        retry={"on": ["gateway-error"], "max": 2, "budget_percent": 20, "min_per_s": 1,
               "ttl_s": 10})
    oks, errors = keepalive_loop(a, vip, "/storm", 100)
    assert len(oks) == 100 and not errors and set(oks) == {"503"}, (oks[:5], errors)
    total = sum(served(apps, "/storm").values())
    svc = service_json(a)
    assert svc["retries_total"] == total - 100, (svc, total)
    assert 1 <= svc["retries_total"] <= 30, svc
    assert svc["budget_exhausted_total"] >= 100 - 30, svc
    assert mesh.metric(a, "ldmesh_route_retry_budget_exhausted_total", service="web") == \
        svc["budget_exhausted_total"]


def test_request_timeout_504(cluster):
    """web times requests out after 3 s, its route /hang after 400 ms: a
    request the server never answers gets 504 with l5d-proxy-error:
    request timeout, the connection goes on (the next request on it is
    answered), and the timeout is counted; a request taking 1 s under the
    service's 3 s is answered 200."""
    a, servers, vip, apps = routed_pods(
        cluster, timeout_ms=3000,
        routes=({"path_prefix": "/hang", "timeout_ms": 400},))
    r = mesh.curl(a, "-i", "http://%s/hang" % vip, "http://%s/after" % vip, max_time=20)
    assert r.returncode == 0, r
    heads = re.findall(r"^HTTP/1\.1 (\d+)", r.stdout, re.M)
    assert heads == ["504", "200"], r.stdout
    assert re.search(r"^l5d-proxy-error: request timeout\r?$", r.stdout, re.M | re.I), r.stdout
    assert re.search(r"^[bcd] /after$", r.stdout, re.M), r.stdout
    r = mesh.curl(a, "-s", "-o", "/dev/null", "-w", "%{http_code}",
                  "http://%s/sleep/1000" % vip, max_time=20)
    assert r.stdout == "200", r
    assert service_json(a)["timeouts_total"] == 1
    assert mesh.metric(a, "ldmesh_route_timeouts_total", service="web") == 1
    assert mesh.metric(a, "response_total", direction="outbound", status_code="504") == 1


def test_split_per_request_and_reload(cluster):
    """web (b, c) sends 10 % to web-canary (d): of 1,000 requests on ten
    keep-alive connections about 100 land on d (within 4 points).  A
    keep-alive connection that stays open across a reload to 0/100 loses
    nothing, and its requests after the reload all go to d."""
    def services(weight):
        def make(vip, servers):
            b, c, d = servers
            return [{"name": "web", "port": 8080, "addresses": [vip],
                     "endpoints": ["%s:8080" % b.addr4, "%s:8080" % c.addr4],
                     "split": ({"service": "web-canary", "weight": weight},)},
                    {"name": "web-canary", "port": 8080, "endpoints": ["%s:8080" % d.addr4]}]
        return make
    a, (b, c, d), vip = mesh.service_mesh(cluster, SUBNET + 1, services(10))
    apps = {s.label: start_app(cluster, s) for s in (b, c, d)}
    oks, errors = keepalive_loop(a, vip, "/split", 1000, per_conn=100)
    assert len(oks) == 1000 and not errors, (len(oks), errors[:3])
    share = served(apps, "/split")
    assert sum(share.values()) == 1000 and 60 <= share["d"] <= 140, share

    host, port = vip.split(":")
    stop = os.path.join(cluster.tmp, "held.stop")
    held = mesh.start_loop(a, host, int(port), "/held", 100000, 60, per_conn=100000,
                           stop_file=stop)
    wait_until(lambda: len(mesh.loop_results(held)[0]) >= 5, 20, what="the held connection")
    mesh.reconfigure(a, services=services(100)(vip, (b, c, d))).ok()
    before = sum(served(apps, "/held").values())
    wait_until(lambda: sum(served(apps, "/held").values()) >= before + 30, 20,
               what="requests on the held connection after the reload")
    with open(stop, "w"):
        pass
    held.wait(timeout=30)
    h_oks, h_errors = mesh.loop_results(held)
    assert not h_errors and set(h_oks) == {"200"}, (h_oks[-3:], h_errors)
    after = served(apps, "/held")
    assert sum(after.values()) == len(h_oks), after
    # At most the one request in flight at the reload lands on b or c.
    assert after["b"] + after["c"] <= before + 1, (before, after)


SERVER_FIRST = r'''
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 8080))
s.listen(16)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"220 %s ready\r\n" % sys.argv[2].encode())
    line = c.recv(100)
    c.sendall(b"got " + line)
    c.close()
'''

CLIENT = r'''
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
banner = c.recv(100)
c.sendall(b"hello\r\n")
print(banner.decode().strip(), "|", c.recv(100).decode().strip(), flush=True)
'''


def test_not_http_goes_to_one_endpoint(cluster):
    """A protocol where the server speaks first, to an "auto" service: the
    client's daemon waits for the app's first bytes, sees none, and sends
    the connection to one endpoint as a whole (the app gets the banner
    and its echo); the balancer counts the connection."""
    a, servers, vip = mesh.service_mesh(cluster, SUBNET + 2, lambda vip, servers: [
        {"name": "web", "port": 8080, "addresses": [vip],
         "endpoints": ["%s:8080" % s.addr4 for s in servers]}])
    srv = os.path.join(cluster.tmp, "server_first.py")
    cli = os.path.join(cluster.tmp, "client.py")
    with open(srv, "w") as f:
        f.write(SERVER_FIRST)
    with open(cli, "w") as f:
        f.write(CLIENT)
    for s in servers:
        p = s.popen([mesh.PYTHON, srv, s.addr4, s.label], name="banner")
        p.wait_output(r"^listening$", timeout=20)
        s.wait_listening(p, 8080)
    host, port = vip.split(":")
    for _ in range(3):
        r = a.run([mesh.PYTHON, cli, host, port], timeout=30)
        assert r.returncode == 0, r
        assert re.match(r"^220 [bcd] ready \| got hello$", r.stdout.strip()), r.stdout
    svc = service_json(a)
    assert sum(e["connections_total"] for e in svc["endpoints"]) == 3, svc
    assert svc["requests_total"] == 0, svc


# python3-grpcio, no generated code: Greeter.SayHello answers the pod's
# label (or UNAVAILABLE when argv[4] says so), Greeter.Hang never answers.
GRPC_SERVER = r'''
import sys, time
from concurrent import futures
import grpc

label, mode = sys.argv[3], sys.argv[4]

def say(request, context):
    print("call SayHello", flush=True)
    if mode == "unavailable":
        context.abort(grpc.StatusCode.UNAVAILABLE, "draining")
    return label.encode()

def hang(request, context):
    print("call Hang", flush=True)
    time.sleep(30)
    return b"late"

srv = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("demo.Greeter", {
    "SayHello": grpc.unary_unary_rpc_method_handler(say),
    "Hang": grpc.unary_unary_rpc_method_handler(hang)}),))
srv.add_insecure_port("%s:%s" % (sys.argv[1], sys.argv[2]))
srv.start()
print("listening", flush=True)
srv.wait_for_termination(timeout=600)
'''

# N calls of METHOD on ONE channel (for at most SECS seconds, 0: no
# bound): one line per call, the reply or the status code name (and its
# details).
GRPC_CLIENT = r'''
import sys, time
import grpc

host, port, method, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
secs = float(sys.argv[5])
ch = grpc.insecure_channel("%s:%s" % (host, port), options=[("grpc.enable_retries", 0)])
call = ch.unary_unary("/demo.Greeter/" + method)
end = time.monotonic() + secs
for i in range(n):
    if secs and time.monotonic() > end:
        break
    try:
        print("reply %s" % call(b"x", timeout=10).decode(), flush=True)
    except grpc.RpcError as e:
        print("code %s %s" % (e.code().name, e.details()), flush=True)
ch.close()
'''


def grpc_pods(cluster, subnet, modes=None, **svc):
    a, servers, vip = mesh.service_mesh(cluster, subnet, lambda vip, servers: [
        dict({"name": "greeter", "port": 50051, "addresses": [vip],
              "endpoints": ["%s:50051" % s.addr4 for s in servers]}, **svc)],
        port=50051, server_sa="greeter")
    srv = os.path.join(cluster.tmp, "grpc_server.py")
    with open(srv, "w") as f:
        f.write(GRPC_SERVER)
    with open(os.path.join(cluster.tmp, "grpc_client.py"), "w") as f:
        f.write(GRPC_CLIENT)
    apps = {}
    for s in servers:
        apps[s.label] = s.popen([mesh.PYTHON, srv, s.addr4, "50051", s.label,
                                 (modes or {}).get(s.label, "ok")], name="greeter")
        apps[s.label].wait_output(r"^listening$", timeout=30)
        s.wait_listening(apps[s.label], 50051)
    return a, vip, apps


def grpc_calls(cluster, a, vip, method, n, secs=0):
    host, port = vip.split(":")
    r = a.run([mesh.PYTHON, os.path.join(cluster.tmp, "grpc_client.py"), host, port, method,
               str(n), str(secs)], timeout=120)
    assert r.returncode == 0, r
    return r.stdout.splitlines()


def test_grpc_channel_reaches_every_endpoint(cluster):
    """Unary calls for 3 s on ONE grpcio channel to the service address:
    the client's daemon terminates the HTTP/2 connection and sends each
    call to an endpoint of its own, so all three pods answer (none more
    than four fifths: the picks follow measured latency, one call at a
    time), every call OK; the calls are counted per endpoint and in the
    outbound gRPC metrics, and the app opened one connection."""
    a, vip, apps = grpc_pods(cluster, SUBNET + 3)
    lines = grpc_calls(cluster, a, vip, "SayHello", 100000, 3)
    replies = [ln.split()[1] for ln in lines if ln.startswith("reply ")]
    n = len(replies)
    assert n == len(lines) and n >= 30, lines[:5]
    counts = {label: replies.count(label) for label in "bcd"}
    assert min(counts.values()) >= 1 and max(counts.values()) <= n * 4 // 5, counts
    assert {label: app.out().count("call SayHello") for label, app in apps.items()} == counts
    svc = service_json_named(a, "greeter")
    assert svc["requests_total"] == n, svc
    assert sum(e["responses"]["success"] for e in svc["endpoints"]) == n, svc
    assert mesh.metric(a, "response_total", direction="outbound", grpc_status="0") == n
    assert mesh.metric(a, "tcp_open_total", direction="outbound") == 1


def test_grpc_retry_unavailable_and_deadline(cluster):
    """Pod d answers every call UNAVAILABLE and the service retries
    "unavailable": 60 calls on one channel all get a reply from b or c,
    every one d refused was retried.  The route /demo.Greeter/Hang times
    out after 400 ms: a call the server never answers ends with
    DEADLINE_EXCEEDED from the client's daemon ("request timeout"), not
    the client's own 10 s deadline, and the timeout is counted."""
    a, vip, apps = grpc_pods(
        cluster, SUBNET + 4, modes={"d": "unavailable"},
        retry={"on": ["unavailable"], "max": 2, "budget_percent": 20, "min_per_s": 10,
               "ttl_s": 10},
        routes=({"path_prefix": "/demo.Greeter/Hang", "timeout_ms": 400},))
    lines = grpc_calls(cluster, a, vip, "SayHello", 60)
    replies = [ln.split()[1] for ln in lines if ln.startswith("reply ")]
    assert len(replies) == 60 and set(replies) <= {"b", "c"}, lines[:5]
    refused = apps["d"].out().count("call SayHello")
    svc = service_json_named(a, "greeter")
    assert svc["retries_total"] == refused and svc["budget_exhausted_total"] == 0, (svc, refused)
    lines = grpc_calls(cluster, a, vip, "Hang", 1)
    assert lines == ["code DEADLINE_EXCEEDED request timeout"], lines
    assert service_json_named(a, "greeter")["timeouts_total"] == 1
    assert mesh.metric(a, "response_total", direction="outbound", grpc_status="4") == 1


def service_json_named(a, name):
    svc = [s for s in a.ctl_json("services") if s["name"] == name]
    assert len(svc) == 1, a.ctl_json("services")
    return svc[0]


def test_h2load_streams_spread_and_big_bodies(cluster):
    """Stock h2load: 1,200 requests for 1 KiB on 2 HTTP/2 connections
    with 16 streams each in flight to the service address, served by
    stock nghttpd in b, c and d: every request succeeds (the windows of
    the upstream connections are given back as the app takes the data,
    also after a stream ended) and every endpoint takes a share.  A 1 MiB file (16 flow-control windows) fetched with
    curl --http2-prior-knowledge arrives byte for byte, three times."""
    a, servers, vip = mesh.service_mesh(cluster, SUBNET + 5, lambda vip, servers: [
        {"name": "web", "port": 8080, "addresses": [vip],
         "endpoints": ["%s:8080" % s.addr4 for s in servers]}])
    blob = random.Random(7).randbytes(1 << 20)
    for s in servers:
        root = os.path.join(s.dir, "htdocs")
        os.makedirs(root, exist_ok=True)
        with open(os.path.join(root, "small"), "w") as f:
            # 1 KiB: 1,200 answers are many times each upstream
            # connection's flow-control window.
            f.write(("small %s\n" % s.label).ljust(1024, "."))
        with open(os.path.join(root, "big"), "wb") as f:
            f.write(blob)
        p = s.popen([mesh.tool("nghttpd"), "--no-tls", "-d", root, "-a", s.addr4, "8080"],
                    name="nghttpd")
        s.wait_listening(p, 8080)
    r = a.run([mesh.tool("h2load"), "-n", "1200", "-c", "2", "-m", "16",
               "http://%s/small" % vip], timeout=120)
    assert r.returncode == 0, r
    m = re.search(r"requests: 1200 total, 1200 started, 1200 done, (\d+) succeeded", r.stdout)
    assert m and m.group(1) == "1200", r.stdout
    eps = service_json(a)["endpoints"]
    assert sum(e["requests_total"] for e in eps) == 1200, eps
    assert all(e["requests_total"] > 0 for e in eps), eps
    want = hashlib.sha256(blob).hexdigest()
    for _ in range(3):
        r = a.run([mesh.tool("curl"), "-sS", "--max-time", "30", "--http2-prior-knowledge",
                   "http://%s/big" % vip, "-o", os.path.join(a.dir, "big.out")], timeout=60)
        assert r.returncode == 0, r
        with open(os.path.join(a.dir, "big.out"), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == want


def test_killed_endpoint_accrual_and_all_out(cluster):
    """Pod d's app killed: requests on one keep-alive connection all get
    200 (a failed dial goes on to another endpoint, unseen by the app)
    while accrual takes d out after three failures; with the app back, d
    returns through a trial request and serves again.  Every app gone: the
    first requests are answered 503 once their dials failed, and once
    accrual has taken all three out, at once ("no endpoint of the service
    is available"), with the log line saying so."""
    a, servers, vip, apps = routed_pods(cluster, subnet=SUBNET + 6)
    d = servers[2]

    def state(label_pod):
        eps = service_json(a)["endpoints"]
        return [e for e in eps if e["addr"].startswith(label_pod.addr4 + ":")][0]

    apps["d"].stop()
    wait_until(lambda: not re.search(r":8080\b", d.run(["ss", "-Hltn"], shim=False).stdout),
               10, what="pod d's app to stop listening")
    seen = {"oks": [], "errors": []}

    def taken_out():
        oks, errors = keepalive_loop(a, vip, "/after-kill", 10)
        seen["oks"] += oks
        seen["errors"] += errors
        return state(d)["state"] in ("out", "probing")
    wait_until(taken_out, 60, interval=0, what="pod d taken out by failure accrual")
    assert not seen["errors"] and set(seen["oks"]) == {"200"}, seen
    assert state(d)["failures_total"] >= 3 and state(d)["responses"]["success"] == 0
    assert service_json(a)["retries_total"] >= 3

    apps["d"] = start_app(cluster, d)

    def back():
        keepalive_loop(a, vip, "/back", 6)
        return state(d)["state"] == "ready"
    wait_until(back, 30, interval=0.5, what="pod d back in the service")
    # Serving again: the balancer picks d once its latency estimate
    # competes (one request at a time: within seconds), nothing fails.
    again = {"oks": [], "errors": []}

    def serves():
        oks, errors = keepalive_loop(a, vip, "/again", 20)
        again["oks"] += oks
        again["errors"] += errors
        return served(apps, "/again")["d"] >= 1
    wait_until(serves, 30, interval=0, what="pod d serving again")
    assert not again["errors"] and set(again["oks"]) == {"200"}, again

    for s in servers:
        apps[s.label].stop()
    off = len(a.daemon_log())
    oks, errors = keepalive_loop(a, vip, "/dead", 12)
    assert oks == ["503"] * 12 and not errors, (oks, errors)
    wait_until(lambda: all(state(s)["state"] in ("out", "probing") for s in servers), 10,
               what="every endpoint out")

    # Each event loop has its own balancer (workers): a connection on a
    # loop that has not seen every endpoint fail yet learns it from its
    # own requests; every answer is a 503, and soon one comes at once.
    def at_once():
        r = mesh.curl(a, "-i", "http://%s/now" % vip)
        assert r.returncode == 0 and r.stdout.startswith("HTTP/1.1 503"), r
        return "l5d-proxy-error: no endpoint of the service is available" in r.stdout
    wait_until(at_once, 20, interval=0.1, what="a 503 without a dial")
    mesh.wait_log(a, r"outbound to service web \(%s\) for pid \d+: every endpoint is out"
                  % re.escape(vip), offset=off)
    assert mesh.metric(a, "ldmesh_balancer_unavailable_total") >= 1


def test_nginx_behind_one_curl_connection(cluster):
    """Stock nginx (two workers) in b, c and d behind the service address,
    stock curl fetching 150 URLs at 50 a second: curl opens one connection
    and reuses it for all (num_connects sums to 1), and every nginx serves
    some of the requests, each answer its own pod's file."""
    a, servers, vip = mesh.service_mesh(cluster, SUBNET + 7, lambda vip, servers: [
        {"name": "web", "port": 8080, "addresses": [vip],
         "endpoints": ["%s:8080" % s.addr4 for s in servers]}])
    nginx = mesh.tool("nginx")
    for s in servers:
        root = os.path.join(s.dir, "www")
        os.makedirs(root, exist_ok=True)
        with open(os.path.join(root, "who"), "w") as f:
            f.write("%s\n" % s.label)
        tmp, conf = mesh.nginx_conf(s, "%s:8080" % s.addr4, "root %s;" % root, workers=2)
        p = s.popen([nginx, "-p", tmp, "-e", os.path.join(tmp, "error.log"), "-c", conf],
                    name="nginx")
        s.wait_listening(p, 8080)
    r = a.run([mesh.tool("curl"), "-sS", "--max-time", "30", "--rate", "50/s",
               "-w", "connects=%{num_connects}\n"] + ["http://%s/who" % vip] * 150, timeout=60)
    assert r.returncode == 0, r
    who = re.findall(r"^([bcd])$", r.stdout, re.M)
    connects = [int(x) for x in re.findall(r"^connects=(\d+)$", r.stdout, re.M)]
    assert len(who) == 150 and len(connects) == 150 and sum(connects) == 1, r.stdout[:300]
    want = {x: who.count(x) for x in "bcd"}

    def logged():
        # nginx writes a line once it has finished the request.
        return {s.label: open(os.path.join(s.dir, "nginx", "access.log")).read().count(
            "GET /who") for s in servers}
    wait_until(lambda: logged() == want, 10, interval=0.2, what="nginx's access logs")
    assert min(want.values()) >= 1, want


RAW_CLIENT = r'''
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
c.sendall(b"\x16\x03\x01\x00\x05hello not http\r\n")
try:
    got = c.recv(100)
    print("eof" if not got else "got %r" % got)
except ConnectionResetError:
    print("reset")
'''


def test_http_service_refuses_what_is_not_http(cluster):
    """protocol "http" fails closed: a client that sends bytes that are not
    HTTP to the service address gets its connection closed by its own
    daemon (logged), and no endpoint receives them.  Control: the same
    client straight to an endpoint (no service) reaches the echo app."""
    a, servers, vip = mesh.service_mesh(cluster, SUBNET + 8, lambda vip, servers: [
        {"name": "web", "port": 8080, "addresses": [vip], "protocol": "http",
         "endpoints": ["%s:8080" % s.addr4 for s in servers]}])
    srv = os.path.join(cluster.tmp, "server_first.py")
    cli = os.path.join(cluster.tmp, "raw_client.py")
    with open(srv, "w") as f:
        f.write(SERVER_FIRST)
    with open(cli, "w") as f:
        f.write(RAW_CLIENT)
    apps = {}
    for s in servers:
        apps[s.label] = s.popen([mesh.PYTHON, srv, s.addr4, s.label], name="banner")
        apps[s.label].wait_output(r"^listening$", timeout=20)
        s.wait_listening(apps[s.label], 8080)
    # Control: to an endpoint directly, the app answers (banner first).
    r = a.run([mesh.PYTHON, cli, servers[0].addr4, "8080"], timeout=30)
    assert r.returncode == 0 and r.stdout.startswith("got b'220 b ready"), r
    off = len(a.daemon_log())
    host, port = vip.split(":")
    r = a.run([mesh.PYTHON, cli, host, port], timeout=30)
    assert r.returncode == 0 and r.stdout.strip() in ("eof", "reset"), r
    mesh.wait_log(a, r'not HTTP/1 to a service with protocol "http"; closing', offset=off)
    assert service_json(a)["requests_total"] == 0
    # Nothing was dialled for it.
    assert sum(e["connections_total"] for e in service_json(a)["endpoints"]) == 0
