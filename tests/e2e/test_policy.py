"""Authorization policy and egress control (issue 4) with stock binaries in
three pods: payments (p), orders (o, the server) and web (w), a caller
with another identity in the same namespace; unmeshed callers are stock
curl without the shim (or a pod without a daemon).

Connection-level denials close the connection right after the handshake
(docs/policy.md), so a refused caller's curl fails without an HTTP answer;
request-level denials are 403s on a connection that stays usable.
"""
import json
import os
import re
import signal
import time

import pytest

import mesh
from mesh import single_cluster, spiffe  # noqa: F401 (fixture)

PAYMENTS = spiffe("shop", "payments")
ORDERS = spiffe("shop", "orders")
WEB = spiffe("shop", "web")

SEED = [{"name": "orders-from-payments", "action": "allow", "ports": [8080],
         "principals": [PAYMENTS], "methods": ["GET"], "paths": ["/api/*"]}]


def shop(cluster, **orders_settings):
    """Pods p (payments), o (orders, strict, configured with
    orders_settings) and w (web) on one bridge, each with its daemon;
    returns (p, o, w, ca)."""
    p, o, w = mesh.trio(cluster, labels=("p", "o", "w"))
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    for pod, ident in ((p, PAYMENTS), (w, WEB)):
        mesh.configure(pod, ca.issue(ident, os.path.join(cluster.tmp, "id-" + pod.label)),
                       mtls="strict")
    orders_settings.setdefault("mtls", "strict")
    mesh.configure(o, ca.issue(ORDERS, os.path.join(cluster.tmp, "id-o")), **orders_settings)
    return p, o, w, ca


def http(pod, url, *args, shim=True):
    """curl URL from pod; returns (status, body, Result).  status is None
    when no HTTP answer came back."""
    r = mesh.curl(pod, "-w", "\n@@status=%{http_code}", *(list(args) + [url]), shim=shim)
    m = re.search(r"\n?@@status=(\d+)$", r.stdout)
    status = int(m.group(1)) if m and m.group(1) != "000" else None
    body = r.stdout[:m.start()] if m else r.stdout
    return status, body, r


def expect_status(want, pod, url, *args, server=None):
    """http() that asserts the status; the server pod's log tail goes into
    the failure message."""
    status, body, r = http(pod, url, *args)
    assert status == want, "%s: expected %s, got %s: %r%s" % (
        url, want, status, r,
        "\n--- pod %s log tail\n%s" % (server.label, server.daemon_log()[-2000:]) if server else "")
    return body


def decisions(pod, decision, rule, port, _m=None):
    return mesh.metric(pod, "ldmesh_policy_decisions_total", _m, decision=decision, rule=rule,
                       port=port)


def assert_refused(pod, url, shim=True):
    status, body, r = http(pod, url, shim=shim)
    assert status is None and r.returncode != 0, "expected a refused connection: %r" % r
    return r


# --- the seed example --------------------------------------------------------------

def test_seed_example(cluster):
    """Only payments may GET /api/* on orders:8080; POST is a 403 on a
    connection that keeps serving; web is refused; an unmeshed curl is
    refused by strict mTLS; a port with no rule stays default-allow."""
    p, o, w, _ = shop(cluster, policies=SEED)
    app = mesh.start_app(o, 8080, 9090)
    api = "http://%s:8080/api/orders/7" % o.addr4

    # payments GET: allowed, and the app learns who called; a forged
    # x-forwarded-client-cert from the client is replaced.
    forged = "x-forwarded-client-cert: By=%s;URI=%s" % (ORDERS, spiffe("shop", "admin"))
    status, body, r = http(p, api, "-H", forged)
    assert status == 200, r
    assert json.loads(body)["xfcc"] == ["By=%s;URI=%s" % (ORDERS, PAYMENTS)], body

    # payments POST: 403, then a GET on the same keep-alive connection.
    r = mesh.curl(p, "-d", "x=1", "-w", "\n@@post=%{http_code} connects=%{num_connects}\n",
                  "http://%s:8080/api/orders" % o.addr4, "--next", "-sS", "-w",
                  "\n@@get=%{http_code} connects=%{num_connects}\n", api).ok()
    post = re.search(r"@@post=(\d+) connects=(\d+)", r.stdout)
    get = re.search(r"@@get=(\d+) connects=(\d+)", r.stdout)
    assert post and get, r
    assert post.group(1) == "403" and get.group(1) == "200", r
    assert post.group(2) == "1" and get.group(2) == "0", \
        "the GET after a 403 did not reuse the connection: %r" % r
    denied_body = r.stdout[:post.start()]
    assert 0 < len(denied_body) < 200, r
    for internal in ("orders-from-payments", "no-allow-rule-matched", "spiffe://", "ldmesh"):
        assert internal not in denied_body, "403 body names %s: %r" % (internal, denied_body)
    assert "POST /api/orders" not in app.out(), "the app saw the denied POST"
    mesh.wait_log(o, r"request POST /api/orders from %s:\d+ \(%s\) on port 8080 denied by "
                  r"no-allow-rule-matched" % (re.escape(p.addr4), re.escape(PAYMENTS)))

    # web: refused (no rule could ever allow it: connection level).
    off = len(o.daemon_log())
    assert_refused(w, api)
    mesh.wait_log(o, r"inbound connection from %s:\d+ \(%s\) to port 8080 denied by "
                  r"no-allow-rule-matched" % (re.escape(w.addr4), re.escape(WEB)), off)
    # unmeshed: refused by strict mTLS before policy runs.
    assert_refused(w, api, shim=False)
    mesh.wait_log(o, r"inbound plaintext connection from %s:\d+ refused" % re.escape(w.addr4),
                  off)
    assert app.out().count("request port=8080") == 2, app.out()

    # no rule selects 9090: default-allow for any authenticated caller
    for pod in (p, w):
        status, body, r = http(pod, "http://%s:9090/anything" % o.addr4, "-X", "DELETE")
        assert status == 200, r

    m = mesh.metrics(o)
    assert decisions(o, "allow", "orders-from-payments", 8080, m) >= 2
    assert decisions(o, "deny", "no-allow-rule-matched", 8080, m) >= 2
    assert decisions(o, "allow", "default-allow", 9090, m) >= 2


def test_deny_wins_and_audit_does_not_block(cluster):
    policies = [
        {"name": "allow-shop", "action": "allow", "namespaces": ["shop"]},
        {"name": "no-admin", "action": "deny", "paths": ["/admin/*"]},
        {"name": "block-web", "action": "deny", "principals": [WEB]},
        {"name": "watch-writes", "action": "audit", "ports": [8080],
         "methods": ["POST", "PUT", "DELETE"]},
    ]
    p, o, w, _ = shop(cluster, policies=policies)
    app = mesh.start_app(o, 8080)
    base = "http://%s:8080" % o.addr4

    status, _, r = http(p, base + "/api/x")
    assert status == 200, r
    # deny wins over allow-shop, which also matches payments
    off = len(o.daemon_log())
    status, _, r = http(p, base + "/admin/users")
    assert status == 403, r
    mesh.wait_log(o, r"request GET /admin/users from .* denied by no-admin", off)
    status, _, r = http(p, base + "/api/../admin/users", "--path-as-is")
    assert status == 403, "a dot-segment path slipped past the deny rule: %r" % r
    # web is in namespace shop (allow-shop) but block-web denies it
    assert_refused(w, base + "/api/x")
    mesh.wait_log(o, r"inbound connection from %s:\d+ \(%s\) to port 8080 denied by "
                  r"block-web" % (re.escape(w.addr4), re.escape(WEB)), off)

    # audit: logged and counted, not blocked
    off = len(o.daemon_log())
    status, body, r = http(p, base + "/api/orders", "-d", "n=1")
    assert status == 200 and json.loads(body)["method"] == "POST", r
    mesh.wait_log(o, r"policy audit: rule watch-writes matched %s on port 8080" %
                  re.escape(PAYMENTS), off)
    status, _, r = http(p, base + "/api/orders", "-X", "DELETE")
    assert status == 200, r
    m = mesh.metrics(o)
    assert decisions(o, "audit", "watch-writes", 8080, m) == 2, [
        (dict(l), v) for (n, l), v in m.items() if n == "ldmesh_policy_decisions_total"]
    assert decisions(o, "deny", "no-admin", 8080, m) == 2
    assert decisions(o, "deny", "block-web", 8080, m) == 1
    assert decisions(o, "allow", "allow-shop", 8080, m) >= 3
    assert "/admin" not in app.out()


def test_default_deny(cluster):
    policies = [{"name": "payments-8080", "action": "allow", "ports": [8080],
                 "principals": [PAYMENTS]}]
    p, o, w, _ = shop(cluster, policies=policies, policy_default="deny")
    app = mesh.start_app(o, 8080, 8081)

    status, _, r = http(p, "http://%s:8080/x" % o.addr4, "-X", "PUT")
    assert status == 200, r
    off = len(o.daemon_log())
    assert_refused(p, "http://%s:8081/x" % o.addr4)
    mesh.wait_log(o, r"inbound connection from %s:\d+ \(%s\) to port 8081 denied by "
                  r"default-deny" % (re.escape(p.addr4), re.escape(PAYMENTS)), off)
    assert_refused(w, "http://%s:8080/x" % o.addr4)
    mesh.wait_log(o, r"\(%s\) to port 8080 denied by no-allow-rule-matched" % re.escape(WEB),
                  off)
    assert "port=8081" not in app.out()
    m = mesh.metrics(o)
    assert decisions(o, "deny", "default-deny", 8081, m) == 1
    r = o.ctl("policy", "check", "--from", PAYMENTS, "--port", "8081")
    assert r.returncode == 3 and "default-deny" in r.stdout, r


def test_permissive_port_decides_every_plaintext_request(cluster):
    """A permissive port whose only allow rule lets unauthenticated
    callers GET /healthz: a plaintext caller gets 200 there and 403 for
    anything else, on the first request of a connection as on later ones
    (docs/policy.md: each request on the connection is decided)."""
    policies = [{"name": "probes", "action": "allow", "ports": [8081], "unauthenticated": True,
                 "methods": ["GET"], "paths": ["/healthz"]}]
    p, o, w, _ = shop(cluster, policies=policies, ports={8081: "permissive"})
    app = mesh.start_app(o, 8081)
    base = "http://%s:8081" % o.addr4

    status, _, r = http(w, base + "/healthz", shim=False)
    assert status == 200, r
    results = {}
    for first, second in (("/admin", "/healthz"), ("/healthz", "/admin")):
        # two requests on one keep-alive connection
        r = mesh.curl(w, "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code} ",
                      base + first, "-o", "/dev/null", base + second, shim=False)
        results[(first, second)] = r.stdout.split() + (
            ["curl exit %d" % r.returncode] if r.returncode else [])
    assert results == {("/admin", "/healthz"): ["403", "200"],
                       ("/healthz", "/admin"): ["200", "403"]}, \
        "plaintext requests on a permissive port were not each decided (000 = no " \
        "answer): %s\napp saw:\n%s" % (results, app.out())


# --- ldmeshctl policy check ------------------------------------------------------------

def test_policy_check_cli(single_cluster):
    policies = SEED + [{"name": "no-admin", "action": "deny", "paths": ["/admin/*"]},
                       {"name": "watch-posts", "action": "audit", "methods": ["POST"]}]
    a, b = single_cluster.pair(start=False)
    ca = mesh.CA(single_cluster.mode, os.path.join(single_cluster.tmp, "ca"))
    mesh.configure(b, ca.issue(ORDERS, os.path.join(single_cluster.tmp, "id-b")), mtls="strict",
                   policies=policies)

    def check(*args):
        return b.ctl("policy", "check", *args)

    cases = [
        (("--from", PAYMENTS, "--port", "8080", "--method", "GET", "--path", "/api/orders/7"),
         0, "orders-from-payments"),
        (("--from", PAYMENTS, "--port", "8080", "--method", "POST", "--path", "/api/orders"),
         3, "no-allow-rule-matched"),
        (("--from", WEB, "--port", "8080", "--method", "GET", "--path", "/api/orders/7"),
         3, "no-allow-rule-matched"),
        (("--from", PAYMENTS, "--port", "8080", "--path", "/api/x"), 0, "orders-from-payments"),
        (("--from", PAYMENTS, "--port", "8080", "--method", "GET", "--path", "/admin/x"),
         3, "no-admin"),
        (("--from", PAYMENTS, "--port", "8080", "--method", "GET",
          "--path", "/api/%2e%2e/admin/x"), 3, "no-admin"),
        (("--from", WEB, "--port", "9090", "--method", "GET", "--path", "/x"), 0,
         "default-allow"),
        # no-admin has no ports: non-HTTP traffic on any port is refused by
        # it, as Istio does with HTTP-only fields of a DENY rule (deny more).
        (("--from", WEB, "--port", "9090"), 3, "no-admin"),
        (("--port", "8080"), 3, "no-admin"),  # not HTTP: the L7 deny denies more
    ]
    for args, rc, rule in cases:
        r = check(*args)
        assert r.returncode == rc, "policy check %s: %r" % (" ".join(args), r)
        assert re.search(r"\b%s\b" % re.escape(rule), r.stdout), r
        assert ("allow" if rc == 0 else "deny") in r.stdout, r
        j = json.loads(b.ctl("--json", "policy", "check", *args).stdout)
        assert j["decision"] == ("allow" if rc == 0 else "deny") and j["rule"] == rule, j

    r = check("--from", PAYMENTS, "--port", "8080", "--method", "POST", "--path", "/api/x")
    assert "watch-posts" in r.stdout, "audit rules that matched are reported: %r" % r
    for bad in (("--port", "notaport"), ("--from", PAYMENTS), ("--port", "0")):
        r = check(*bad)
        assert r.returncode == 1, "usage error %s: %r" % (bad, r)
    b.stop_daemon()
    r = check("--from", PAYMENTS, "--port", "8080")
    assert r.returncode == 2, r


# --- egress ------------------------------------------------------------------------------

def test_egress_deny_and_allow(cluster):
    """outbound.egress = "deny": a meshed curl to an address outside
    mesh_networks (an extra address in the other pod) fails with
    "Permission denied" (EACCES, blocking and non-blocking); mesh traffic
    still flows; an egress_allow entry (cidr + port) lets that port through."""
    a, b = cluster.pair(start=False)
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    mesh.configure(a, ca.issue(PAYMENTS, os.path.join(cluster.tmp, "id-a")), mtls="strict",
                   egress="deny")
    mesh.configure(b, ca.issue(ORDERS, os.path.join(cluster.tmp, "id-b")), mtls="strict")
    mesh.add_address(a, "198.51.100.1/24")
    mesh.add_address(b, "198.51.100.2/24")
    mesh.start_app(b, 8080)
    outside = mesh.start_app(b, 8098, 8099, addr="198.51.100.2", shim=False)

    # The outside server answers a direct (unmeshed) client: any failure
    # below is the daemon's decision.
    status, _, r = http(a, "http://198.51.100.2:8099/direct", shim=False)
    assert status == 200, r

    denied0 = mesh.metric(a, "ldmesh_egress_denied_total")
    off = len(a.daemon_log())
    r = mesh.curl(a, "-v", "http://198.51.100.2:8099/out")
    assert r.returncode == 7 and "Permission denied" in r.stderr, "%r\n--- pod a log\n%s" % (
        r, a.daemon_log()[off:])
    r = a.prog("connerr", "block", "198.51.100.2", 8099).ok()
    assert r.kv()["errno"] == "EACCES", "%r\n--- pod a log\n%s" % (r, a.daemon_log()[off:])
    r = a.prog("connerr", "nonblock", "198.51.100.2", 8099).ok()
    kv = r.kv()
    assert kv["errno"] == "EINPROGRESS" and kv["so_error"] == "EACCES", \
        "%r\n--- pod a log\n%s" % (r, a.daemon_log()[off:])
    mesh.wait_log(a, r"egress to 198\.51\.100\.2:8099 denied", off)
    assert mesh.metric(a, "ldmesh_egress_denied_total") == denied0 + 3
    assert "/out" not in outside.out()

    # mesh destinations are not egress
    status, body, r = http(a, "http://%s:8080/mesh" % b.addr4)
    assert status == 200 and json.loads(body)["xfcc"] == ["By=%s;URI=%s" % (ORDERS, PAYMENTS)], r

    mesh.reconfigure(a, egress_allow=[{"cidr": "198.51.100.0/24", "ports": [8099]}]).ok()
    status, body, r = http(a, "http://198.51.100.2:8099/allowed")
    assert status == 200 and json.loads(body)["path"] == "/allowed", r
    assert json.loads(body)["peer"] == "198.51.100.1", body
    r = mesh.curl(a, "-v", "http://198.51.100.2:8098/other-port")
    assert r.returncode == 7 and "Permission denied" in r.stderr, r
    assert mesh.metric(a, "ldmesh_egress_denied_total") == denied0 + 4


# --- reload ----------------------------------------------------------------------------

FREEZE = {"name": "freeze-api", "action": "deny", "ports": [8080], "paths": ["/api/*"]}


@pytest.mark.timeout(90)
def test_reload_under_load(cluster):
    """A bounded request loop (keep-alive, 5 requests per connection) runs
    while the policy flips between allowing and denying GET /api/*: every
    request gets 200 or 403, none fails otherwise, and both were seen."""
    p, o, w, _ = shop(cluster, policies=SEED)
    mesh.start_app(o, 8080)
    loop = mesh.start_loop(p, o.addr4, 8080, "/api/load", 200, 30, per_conn=5)
    flips, deny = 0, False
    deadline = time.monotonic() + 35
    while loop.alive() and time.monotonic() < deadline:
        deny = not deny
        r = mesh.reconfigure(o, policies=SEED + [FREEZE] if deny else SEED)
        assert r.returncode == 0, "reload %d failed: %r" % (flips, r)
        flips += 1
        time.sleep(0.05)
    loop.wait(10)
    statuses, errors = mesh.loop_results(loop)
    assert not errors, "requests failed while the policy flipped: %s\n%s" % (
        errors[:10], o.daemon_log()[-3000:])
    assert len(statuses) == 200, loop.describe()
    assert set(statuses) == {"200", "403"}, "expected both decisions over %d flips: %s" % (
        flips, sorted(set(statuses)))
    assert flips >= 5, flips
    m = mesh.metrics(o)
    assert decisions(o, "deny", "freeze-api", 8080, m) == statuses.count("403")
    assert decisions(o, "allow", "orders-from-payments", 8080, m) == statuses.count("200")
    assert o.daemon.alive()


def test_invalid_policy_rejected_on_reload(cluster):
    """A policy with a bad pattern is refused by `ldmeshctl reload` (and
    SIGHUP) with file:line; the old policy keeps deciding; a good one then
    loads."""
    p, o, w, _ = shop(cluster, policies=SEED)
    mesh.start_app(o, 8080)
    api = "http://%s:8080/api/x" % o.addr4
    bad = SEED + [{"name": "typo", "action": "deny", "paths": ["admin/*"]}]
    mesh.reconfigure(o, reload=False, policies=bad)
    with open(o.config) as f:
        lines = f.read().splitlines()
    line = next(i for i, l in enumerate(lines, 1) if "admin/*" in l)

    r = o.ctl("reload")
    assert r.returncode != 0, r
    msg = r.stdout + r.stderr
    assert re.search(r"%s:%d\b" % (re.escape(o.config), line), msg) or \
        re.search(r"ldmesh\.conf:%d\b" % line, msg), "no file:line (%d) in %r" % (line, r)
    assert "admin/*" in msg and "must start with" in msg, r
    off = len(o.daemon_log())
    o.daemon.signal(signal.SIGHUP)
    mesh.wait_log(o, r"ldmesh\.conf:%d\b" % line, off)
    assert o.daemon.alive()

    # the old policy still decides
    expect_status(200, p, api, server=o)
    expect_status(403, p, api, "-d", "x", server=o)
    r = o.ctl("policy", "check", "--from", PAYMENTS, "--port", "8080", "--method", "GET",
              "--path", "/api/x")
    assert r.returncode == 0 and "orders-from-payments" in r.stdout, r
    r = o.ctl("policy", "check", "--from", PAYMENTS, "--port", "8080", "--method", "GET",
              "--path", "/admin/x")
    assert "typo" not in r.stdout, r

    # a valid policy loads
    allow_post = [dict(SEED[0], methods=["GET", "POST"])]
    mesh.reconfigure(o, policies=allow_post).ok()
    expect_status(200, p, api, "-d", "x", server=o)
