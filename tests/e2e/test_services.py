"""Services (issue 16): an address apps dial that no pod owns (a
Kubernetes ClusterIP), balanced by the client's daemon over the service's
endpoints (power of two choices over peak-EWMA latency weighted by what is
in flight), with failure accrual.  A service with protocol "tcp" gets one
pick per connection, made at the app's connect(); "auto" (the default)
routes HTTP/1 requests one by one (test_routing.py for the rest of it).
Pod a is the client; pods b, c and d run the same stock server app (the
suite's JSON HTTP app) behind the service address, strict mTLS."""
import os
import re
import signal
import time

import mesh
from mesh import spiffe
from pods import wait_until

VIP_SUBNET = 210


def service_pods(cluster, **svc):
    """Pod a, the client; b, c and d behind service web (svc: more keys of
    its config group, such as protocol)."""
    a, servers, vip = mesh.service_mesh(cluster, VIP_SUBNET, lambda vip, servers: [
        dict({"name": "web", "port": 8080, "addresses": [vip],
              "endpoints": ["%s:8080" % s.addr4 for s in servers]}, **svc)])
    apps = {s.label: mesh.start_app(s, 8080) for s in servers}
    return a, servers, vip, apps


def loop(a, vip, tag, n):
    """n requests, each on its own connection, to the service address:
    the statuses and errors the client saw."""
    return mesh.service_loop(a, vip, "/" + tag, n, 1)


def served(apps, tag):
    return {label: app.out().count("GET /%s" % tag) for label, app in apps.items()}


def endpoints(a):
    svc = a.ctl_json("services")
    assert [s["name"] for s in svc] == ["web"], svc
    return {e["addr"].split(":")[0].rsplit(".", 1)[1]: e for e in svc[0]["endpoints"]}


def test_service_address_spreads_and_failure_accrual(cluster):
    """protocol "tcp": 60 connections to the service address spread over
    the three endpoints (each gets a share: the pick follows measured
    latency, so not an even one; none connects to the address itself,
    which nothing owns).  One endpoint's app killed: every later
    request still succeeds (a failed connect goes on to another endpoint,
    unseen by the app), the endpoint is taken out after three failures
    (`ldmeshctl services` says "out", the retries are counted), and once
    the app is back it returns through one trial connection."""
    a, servers, vip, apps = service_pods(cluster, protocol="tcp")
    oks, errors = loop(a, vip, "spread", 60)
    assert len(oks) == 60 and not errors and set(oks) == {"200"}, (oks, errors)
    share = served(apps, "spread")
    assert sum(share.values()) == 60 and min(share.values()) >= 5, share
    eps = endpoints(a)
    assert sorted(eps) == ["2", "3", "4"], eps
    assert all(e["state"] == "ready" and e["outstanding"] == 0 for e in eps.values()), eps
    assert sum(e["connections_total"] for e in eps.values()) == 60, eps
    assert mesh.metric(a, "ldmesh_balancer_endpoints", service="web", state="ready") == 3

    d = servers[2]
    apps[d.label].stop()
    wait_until(lambda: not re.search(r":8080\b", d.run(["ss", "-Hltn"], shim=False).stdout),
               10, what="pod d's app to stop listening")
    # The balancer tries d again as its latency estimate decays: until it
    # has failed three times in a row, batches of ten connections, none of
    # which may fail for the app.
    seen = {"oks": 0, "errors": []}

    def taken_out():
        oks, errors = loop(a, vip, "after-kill", 10)
        seen["oks"] += len(oks)
        seen["errors"] += errors
        return endpoints(a)["4"]["state"] in ("out", "probing")
    wait_until(taken_out, 60, interval=0, what="pod d taken out by failure accrual")
    assert not seen["errors"], seen
    others = served({k: v for k, v in apps.items() if k != d.label}, "after-kill")
    assert sum(others.values()) == seen["oks"], (others, seen)
    eps = endpoints(a)
    assert eps["4"]["failures_total"] >= 3, eps
    assert mesh.metric(a, "ldmesh_balancer_retries_total") >= 3
    assert mesh.metric(a, "ldmesh_balancer_failures_total", service="web",
                       endpoint="%s:8080" % d.addr4) >= 3

    apps[d.label] = mesh.start_app(d, 8080)

    def back():
        loop(a, vip, "back", 6)
        return endpoints(a)["4"]["state"] == "ready"
    wait_until(back, 30, interval=0.5, what="pod d back in the service")
    oks, errors = loop(a, vip, "again", 60)
    assert len(oks) == 60 and not errors, (oks, errors)
    assert served(apps, "again")[d.label] >= 5, (served(apps, "again"), endpoints(a))


SLEEPY_APP = r'''
import http.server, sys, time

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        time.sleep(float(sys.argv[3]))
        print("request GET %s" % self.path, flush=True)
        body = self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass

srv = http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H)
print("listening", flush=True)
srv.serve_forever()
'''


def test_slow_endpoint_gets_less(cluster):
    """One endpoint answers each request 300 ms late: the balancer sees it
    in the requests' latency and in the requests it holds longer, so with
    four clients at once it gets at most a tenth of 120 requests (an even
    share is a third) and less than each quick one, every request
    answered (routed one by one: protocol "auto")."""
    a, servers, vip, apps = service_pods(cluster)
    for s in servers:
        apps[s.label].stop()
    path = os.path.join(cluster.tmp, "sleepy.py")
    with open(path, "w") as f:
        f.write(SLEEPY_APP)
    slow = servers[1]
    for s in servers:
        apps[s.label] = s.popen([mesh.PYTHON, path, s.addr4, "8080",
                                 "0.3" if s is slow else "0"], name="sleepy")
        apps[s.label].wait_output(r"^listening$", timeout=20)
        s.wait_listening(apps[s.label], 8080)
    host, port = vip.split(":")
    loops = [mesh.start_loop(a, host, int(port), "/measured", 30, 60, per_conn=1)
             for _ in range(4)]
    oks, errors = [], []
    for p in loops:
        p.wait(timeout=90)
        o, e = mesh.loop_results(p)
        oks += o
        errors += e
    assert len(oks) == 120 and not errors, (len(oks), errors)
    share = served(apps, "measured")
    fast = [v for k, v in share.items() if k != slow.label]
    # An even share would be 40 each.
    assert sum(share.values()) == 120 and share[slow.label] <= 12 and \
        share[slow.label] < min(fast), share


def test_every_endpoint_out_fails_fast(cluster):
    """protocol "tcp": every endpoint's app gone: the first connections
    fail as the apps' connects would (connection refused), and once
    accrual has taken all three out, a connect fails at once without a
    dial; `services` lists them out."""
    a, servers, vip, apps = service_pods(cluster, protocol="tcp")
    for s in servers:
        apps[s.label].stop()
    oks, errors = loop(a, vip, "dead", 12)
    assert not oks and len(errors) == 12, (oks, errors)
    eps = endpoints(a)
    assert all(e["state"] in ("out", "probing") for e in eps.values()), eps
    # Each event loop has its own balancer (workers): a connection may land
    # on a loop that has not seen every endpoint fail yet, and learns it
    # on that connection; every connect fails, and soon one fails at once.
    off = len(a.daemon_log())
    pattern = (r"outbound to service web \(%s\) for pid \d+: every endpoint is out"
               % re.escape(vip))

    def fails_fast():
        r = mesh.curl(a, "http://%s/now" % vip)
        assert r.returncode == 7, r  # curl: failed to connect
        return re.search(pattern, a.daemon_log()[off:])
    wait_until(fails_fast, 20, interval=0.1, what="a connect refused without a dial")
    assert mesh.metric(a, "ldmesh_balancer_unavailable_total") >= 1


def test_weighted_split_and_reload(cluster):
    """protocol "tcp": service web (pods b and c) sends 10 % of its
    connections to service web-canary (pod d): of 1,000 connections to
    web's address about 100 land on d (within 4 points).  A connection to
    web held open meanwhile (keep-alive) survives a reload to a 0/100
    split, after which every new connection goes to d.  (Per request:
    test_routing.py.)"""
    pods = mesh.trio(cluster, labels=("a", "b", "c", "d"), subnet=VIP_SUBNET + 1)
    a, b, c, d = pods
    vip = "10.250.%d.100:8080" % (VIP_SUBNET + 1)
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))

    def services(weight):
        return [{"name": "web", "port": 8080, "addresses": [vip], "protocol": "tcp",
                 "endpoints": ["%s:8080" % b.addr4, "%s:8080" % c.addr4],
                 "split": ({"service": "web-canary", "weight": weight},)},
                {"name": "web-canary", "port": 8080, "endpoints": ["%s:8080" % d.addr4]}]
    mesh.configure(a, ca.issue(spiffe("shop", "client"), os.path.join(cluster.tmp, "id-a")),
                   mtls="strict", services=services(10))
    for s in (b, c, d):
        mesh.configure(s, ca.issue(spiffe("shop", "web"),
                                   os.path.join(cluster.tmp, "id-" + s.label)), mtls="strict")
    apps = {s.label: mesh.start_app(s, 8080) for s in (b, c, d)}
    oks, errors = loop(a, vip, "split", 1000)
    assert len(oks) == 1000 and not errors, (len(oks), errors[:3])
    share = served(apps, "split")
    assert sum(share.values()) == 1000 and 60 <= share["d"] <= 140, share

    host, port = vip.split(":")
    stop = os.path.join(cluster.tmp, "held.stop")
    held = mesh.start_loop(a, host, int(port), "/held", 100000, 60, per_conn=100000,
                           stop_file=stop)
    wait_until(lambda: len(mesh.loop_results(held)[0]) >= 5, 20, what="the held connection")
    mesh.reconfigure(a, services=services(100)).ok()
    before = len(mesh.loop_results(held)[0])
    oks, errors = loop(a, vip, "after", 30)
    assert len(oks) == 30 and not errors, (oks, errors)
    assert served(apps, "after") == {"b": 0, "c": 0, "d": 30}, served(apps, "after")
    # The held connection goes on after the reload, on the endpoint it had.
    wait_until(lambda: len(mesh.loop_results(held)[0]) >= before + 20, 20,
               what="requests on the held connection after the reload")
    with open(stop, "w"):
        pass
    held.wait(timeout=30)
    h_oks, h_errors = mesh.loop_results(held)
    assert not h_errors and set(h_oks) == {"200"}, (h_oks[-3:], h_errors)
    counts = sorted(served(apps, "held").values())
    assert counts[:2] == [0, 0] and counts[2] == len(h_oks), served(apps, "held")


def write_hosts(path, name, *pods):
    """A hosts file for dnsmasq's --addn-hosts, replaced at once."""
    with open(path + ".new", "w") as f:
        f.writelines("%s %s\n" % (p.addr4, name) for p in pods)
    os.replace(path + ".new", path)


def test_dns_endpoints_follow_records(cluster):
    """Service web's endpoints are the A/AAAA records of web.test, served
    with a 2 s TTL by a stock dnsmasq in pod e (outside the mesh), which
    the client's daemon is pointed at by dns_servers.  The name resolves to
    pods b and c: 30 requests land on them only.  The records change to
    pod d alone (dnsmasq re-reads its hosts file on SIGHUP): within the TTL
    and a second or two, new requests land on d only and `ldmeshctl
    services` lists d alone; the lookups are counted.  With dnsmasq
    stopped, the last answer's endpoints stay in use; after a reload to a
    name that never answers, a request is answered 503 at once."""
    pods = mesh.trio(cluster, labels=("a", "b", "c", "d", "e"), subnet=VIP_SUBNET + 2)
    a, b, c, d, e = pods
    vip = "10.250.%d.100:8080" % (VIP_SUBNET + 2)
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    hosts = os.path.join(cluster.tmp, "dns-hosts")
    write_hosts(hosts, "web.test", b, c)
    dns = e.popen(["/usr/sbin/dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts",
                   "--user=root", "--pid-file=", "--port=53", "--listen-address=" + e.addr4,
                   "--bind-interfaces", "--addn-hosts=" + hosts, "--local-ttl=2",
                   "--log-queries"], name="dnsmasq", shim=False)
    dns.wait_output(r"read .*dns-hosts - 2 names", stream="err")

    services = [{"name": "web", "port": 8080, "addresses": [vip], "dns": "web.test:8080"}]
    mesh.configure(a, ca.issue(spiffe("shop", "client"), os.path.join(cluster.tmp, "id-a")),
                   mtls="strict", services=services,
                   extra='dns_servers = [ "%s" ];' % e.addr4)
    for s in (b, c, d):
        mesh.configure(s, ca.issue(spiffe("shop", "web"),
                                   os.path.join(cluster.tmp, "id-" + s.label)), mtls="strict")
    apps = {s.label: mesh.start_app(s, 8080) for s in (b, c, d)}

    def listed():
        svc = a.ctl_json("services")
        assert [s["name"] for s in svc] == ["web"], svc
        return sorted(ep["addr"] for ep in svc[0]["endpoints"]), svc[0]
    addr = {p.label: "%s:8080" % p.addr4 for p in (b, c, d)}
    wait_until(lambda: listed()[0] == sorted([addr["b"], addr["c"]]), 10,
               interval=0.2, what="web.test's first answer in `services`")
    svc = listed()[1]
    assert svc["dns"] == "web.test:8080" and svc["dns_ttl_s"] == 2, svc
    assert 0 <= svc["dns_next_ms"] <= 2000 and svc["dns_failing"] is False, svc
    oks, errors = loop(a, vip, "first", 30)
    assert len(oks) == 30 and not errors and set(oks) == {"200"}, (oks, errors)
    share = served(apps, "first")
    assert share["d"] == 0 and share["b"] + share["c"] == 30, share

    write_hosts(hosts, "web.test", d)
    off = len(dns.err())
    os.killpg(dns.pid, signal.SIGHUP)
    wait_until(lambda: re.search(r"read .*dns-hosts - 1 names?", dns.err()[off:]), 10,
               what="dnsmasq to re-read its hosts file")
    changed = time.monotonic()
    wait_until(lambda: listed()[0] == [addr["d"]], 2 + 3, interval=0.1,
               what="the endpoints to follow the records within the TTL")
    assert time.monotonic() - changed <= 5
    oks, errors = loop(a, vip, "moved", 30)
    assert len(oks) == 30 and not errors and set(oks) == {"200"}, (oks, errors)
    assert served(apps, "moved") == {"b": 0, "c": 0, "d": 30}, served(apps, "moved")
    assert listed()[0] == [addr["d"]]
    assert mesh.metric(a, "ldmesh_dns_queries_total", result="ok") >= 2
    assert mesh.metric(a, "ldmesh_dns_queries_total", result="error") == 0
    mesh.wait_log(a, r"service web: DNS web.test:8080 gives 1 endpoints \(%s\)"
                  % re.escape(addr["d"]))

    # The resolver gone: the last good endpoints stay, the failure is
    # logged once and counted, connections still go to d.
    off = len(a.daemon_log())
    dns.stop()
    mesh.wait_log(a, r"service web: DNS web.test:8080 failed \(.*\); keeping its 1 endpoints",
                  offset=off, timeout=15)
    assert listed()[0] == [addr["d"]] and listed()[1]["dns_failing"] is True
    oks, errors = loop(a, vip, "stale", 10)
    assert len(oks) == 10 and not errors, (oks, errors)
    assert served(apps, "stale") == {"b": 0, "c": 0, "d": 10}, served(apps, "stale")
    assert mesh.metric(a, "ldmesh_dns_queries_total", result="error") >= 1

    # A reload to a name never answered: no endpoint, so a request is
    # answered 503 at once by the client's daemon, and the log says why.
    mesh.reconfigure(a, services=[dict(services[0], dns="other.test:8080")]).ok()
    assert listed()[0] == [] and listed()[1]["dns"] == "other.test:8080"
    off = len(a.daemon_log())
    r = mesh.curl(a, "-i", "http://%s/none" % vip)
    assert r.returncode == 0 and r.stdout.startswith("HTTP/1.1 503"), r
    assert "l5d-proxy-error: no endpoint of the service is available" in r.stdout, r
    mesh.wait_log(a, r"outbound to service web \(%s\) for pid \d+: no endpoints: DNS "
                  r"other\.test:8080 has not answered yet" % re.escape(vip), offset=off)
