"""Links between daemons (issue 13, outbound.links): app connections to a
mesh destination ride as HTTP/2 CONNECT streams on one long-lived mTLS
link to the destination's daemon, so a connection costs a stream, not a
handshake.  Stock clients and servers (curl, python http.server), the
wire seen with tcpdump, the links seen with `ldmeshctl links`."""
import hashlib
import json
import os
import re
import signal
import subprocess
import time

import mesh
from mesh import spiffe
from pods import PYTHON, wait_until

PAYMENTS = spiffe("shop", "payments")
ORDERS = spiffe("shop", "orders")


def linked_pair(cluster, client_links=True, server_links=True, **server_settings):
    """Pods a (payments, client) and b (orders, server): SVIDs from one CA,
    strict inbound, links on unless said otherwise."""
    a, b = cluster.pair(start=False)
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    mesh.configure(a, ca.issue(PAYMENTS, os.path.join(cluster.tmp, "id-a")), mtls="strict",
                   links=client_links)
    mesh.configure(b, ca.issue(ORDERS, os.path.join(cluster.tmp, "id-b")), mtls="strict",
                   links=server_links, **server_settings)
    return a, b, ca


def loops(pod):
    """The event loops of pod's daemon: each pools its own links to a peer
    (architecture.md, "Event loops"), so one peer gets up to this many."""
    return pod.mode.workers


def serve(pod, port=8080):
    root = os.path.join(pod.dir, "www")
    os.makedirs(root, exist_ok=True)
    body = "hello over a link from pod %s\n" % pod.label
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write(body)
    srv = pod.popen([PYTHON, "-m", "http.server", str(port), "--bind", pod.addr4,
                     "--directory", root], name="http.server")
    pod.wait_listening(srv, port)
    return srv, body


def links_json(pod):
    r = pod.ctl("--json", "links")
    assert r.returncode == 0, r
    return json.loads(r.stdout)


def handshakes(pod, direction):
    return mesh.metric(pod, "ldmesh_tls_handshakes_total", direction=direction)


def syns_to(pcap, addr):
    """Connection attempts (SYN without ACK) towards addr in the capture."""
    return [s for s in mesh.read_pcap(pcap)
            if s[2] == addr and s[5] & 0x02 and not s[5] & 0x10]


N = int(os.environ.get("LINKS_N", "500"))


def test_connection_per_request_rides_one_link(cluster):
    a, b, _ = linked_pair(cluster)
    srv, body = serve(b)
    url = "http://%s:8080/index.html" % b.addr4
    pcap = os.path.join(cluster.tmp, "a.pcap")
    # A stock curl per request, as a shell loop in the client pod: every
    # one a new TCP connection for the app.
    script = ('ok=0; for i in $(seq %d); do out=$(%s -sS --max-time 10 %s) && '
              '[ "$out" = "%s" ] && ok=$((ok+1)); done; echo "ok=$ok"'
              % (N, mesh.tool("curl"), url, body.rstrip("\n")))
    with mesh.capture(a, pcap, "tcp and host %s" % b.addr4):
        # plain: the shell and curl get the non-ASan shim (pods.py says why).
        r = a.run(["/bin/sh", "-c", script], timeout=300, plain=True)
    assert r.returncode == 0, r
    assert r.stdout.strip() == "ok=%d" % N, (r, srv.err()[-2000:])
    # The server app saw the client pod's address for every request.
    peers = re.findall(r"^(\S+) - - .*\"GET /index.html HTTP/1.1\" 200", srv.err(), re.M)
    assert len(peers) == N and set(peers) == {a.addr4}, srv.err()[-2000:]
    # One link (per event loop): at most 2 handshakes and 2 SYNs towards
    # pod b each, all to its link port.
    n = loops(a)
    assert handshakes(a, "outbound") <= 2 * n
    syns = syns_to(pcap, b.addr4)
    assert 1 <= len(syns) <= 2 * n, syns
    assert {s[3] for s in syns} == {15008}
    links = links_json(a)
    assert 1 <= len(links) <= n, links
    for link in links:
        assert link["peer_addr"] == "%s:15008" % b.addr4
        assert link["peer_id"] == ORDERS
        assert link["bytes_in"] > 0 and link["bytes_out"] > 0 and link["age_ms"] > 0
    assert sum(link["streams_total"] for link in links) == N
    inbound = links_json(b)
    assert len(inbound) == len(links) and all(l["peer_id"] == PAYMENTS for l in inbound)
    assert mesh.metric(b, "ldmesh_links_open") == len(links)
    assert mesh.metric(b, "ldmesh_link_streams_total") == N
    # Per-connection golden metrics are as without links.
    assert mesh.metric(b, "tcp_open_total", direction="inbound") == N


HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers",
                      "h2link_client.py")


def h2_peer(pod, target, svid, authority, forwarded):
    """The python3-h2 peer, unmeshed in pod, against target's link port:
    its output as a dict."""
    cert, key = (svid.cert, svid.key) if svid else ("-", "-")
    bundle = svid.bundle if svid else os.path.join(target.svid.dir, "bundle.pem")
    r = pod.run([PYTHON, HELPER, target.addr4, "15008", cert, key, bundle, authority,
                 forwarded], shim=False, timeout=30)
    assert r.returncode == 0, r
    out = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    return out, r


def test_independent_h2_peer_on_the_link_port(cluster):
    policies = [{"name": "payments-8080", "action": "allow", "ports": [8080],
                 "principals": [PAYMENTS]}]
    a, b, ca = linked_pair(cluster, policies=policies, policy_default="deny")
    app = mesh.start_app(b, 8080, 8081)
    svid = mesh.SVID(os.path.join(cluster.tmp, "id-a"))
    fwd = 'for="%s:40001"' % a.addr4

    # A valid SVID reaches the meshed app; the app sees the client's address.
    out, r = h2_peer(a, b, svid, "%s:8080" % b.addr4, fwd)
    assert out.get("status") == "200", r
    answer = json.loads(json.loads(out["body"]).split("\r\n\r\n", 1)[1])
    assert answer["peer"] == a.addr4 and answer["port"] == 8080, answer
    assert answer["peer_port"] == 40001, answer
    assert "request port=8080 GET /index.html" in app.out()
    # A Forwarded address that is not the link's own is not believed: the
    # app sees the link's address and port, not the claimed ones.
    out, r = h2_peer(a, b, svid, "%s:8080" % b.addr4, 'for="10.250.99.99:40002"')
    assert out.get("status") == "200", r
    answer = json.loads(json.loads(out["body"]).split("\r\n\r\n", 1)[1])
    assert answer["peer"] == a.addr4 and answer["peer_port"] != 40002, answer
    # A port the policy denies: 403 on the stream, and the log says why.
    off = len(b.daemon_log())
    out, r = h2_peer(a, b, svid, "%s:8081" % b.addr4, fwd)
    assert out.get("status") == "403", r
    mesh.wait_log(b, r"inbound connection from %s:40001 \(%s\) to port 8081 denied by "
                  r"default-deny" % (re.escape(a.addr4), re.escape(PAYMENTS)), off)
    # Not a listener the daemon holds: 421 (the client daemon then dials
    # the port itself, as without links).
    out, r = h2_peer(a, b, svid, "%s:9999" % b.addr4, fwd)
    assert out.get("status") == "421", r
    # No client certificate, or one from another CA: no TLS at all.
    out, r = h2_peer(a, b, None, "%s:8080" % b.addr4, fwd)
    assert "tls_error" in out and "status" not in out, r
    other = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca2"))
    stranger = other.issue(PAYMENTS, os.path.join(cluster.tmp, "id-stranger"))
    stranger.bundle = svid.bundle  # it trusts pod b; pod b does not trust it
    out, r = h2_peer(a, b, stranger, "%s:8080" % b.addr4, fwd)
    assert "tls_error" in out and "status" not in out, r
    assert app.out().count("request port=8081") == 0


# --- faults ----------------------------------------------------------------------

MIB = 1 << 20


def get(pod, server, path, port=8080):
    r = mesh.curl(pod, "http://%s:%d%s" % (server.addr4, port, path), timeout=30)
    assert mesh.app_json(r)["path"] == path, r
    return r


def download(pod, server, cluster, name):
    """curl downloading 100 MB from server's app at 4 MB/s (so that a fault
    lands mid-body); returns (process, output path) once it is under way."""
    out = os.path.join(cluster.tmp, name)
    dl = pod.popen([mesh.tool("curl"), "-sS", "--max-time", "60", "--limit-rate", "4M",
                    "-o", out, "http://%s:8080/blob/%d" % (server.addr4, 100 * 1000 * 1000)],
                   name="curl-" + name)
    wait_until(lambda: os.path.exists(out) and os.path.getsize(out) > 2 * MIB, 30,
               interval=0.1, what="the download to be under way")
    return dl, out


def test_server_daemon_killed_mid_stream(cluster):
    """SIGKILL to the server pod's daemon while curl downloads through a
    link: curl fails within 5 s (a partial transfer or a reset, never a
    hang), the client daemon's link is gone, and once the daemon is
    started again the next request opens a new link and is served."""
    a, b, _ = linked_pair(cluster)
    srv = mesh.start_app(b, 8080)
    get(a, b, "/warm")
    first = links_json(a)
    assert len(first) == 1, first
    dl, out = download(a, b, cluster, "killed.out")
    assert b.stop_daemon(signal.SIGKILL, timeout=10) == -signal.SIGKILL
    t_kill = time.monotonic()
    rc = dl.wait(20)
    took = time.monotonic() - t_kill
    assert rc in (18, 56), "curl exit %s: %s" % (rc, dl.describe())
    assert took < 5, "curl took %.1fs to notice" % took
    wait_until(lambda: not [l for l in links_json(a) if l["state"] == "open"], 10,
               what="pod a's link to end")
    b.start_daemon()
    wait_until(lambda: b.listener_accepted(8080) is not None, 20, interval=0.2,
               what="the app's listener to be registered again")
    get(a, b, "/after-restart")
    now = [l for l in links_json(a) if l["state"] == "open"]
    assert len(now) == 1 and now[0]["link"] != first[0]["link"], (first, now)
    assert srv.alive() and a.daemon.alive()


def test_link_cut_fails_streams_in_bounded_time(cluster):
    """Pod b's interface down for 3 s under a download on a link: the
    link's PINGs go unanswered, curl fails (no hang) within the ping
    interval and timeout plus a margin, and after the cut the next
    request gets a new link."""
    a, b, _ = linked_pair(cluster)
    for pod in (a, b):
        mesh.reconfigure(pod, links={"ping_interval_ms": 500, "ping_timeout_ms": 1000}).ok()
    mesh.start_app(b, 8080)
    get(a, b, "/warm")
    dl, out = download(a, b, cluster, "cut.out")
    b.run(["ip", "link", "set", "veth0", "down"], shim=False).ok()
    t_cut = time.monotonic()
    try:
        rc = dl.wait(20)
        took = time.monotonic() - t_cut
    finally:
        time.sleep(max(0, 3 - (time.monotonic() - t_cut)))
        b.run(["ip", "link", "set", "veth0", "up"], shim=False).ok()
    assert rc in (18, 56), "curl exit %s: %s" % (rc, dl.describe())
    assert took < 5, "curl took %.1fs to notice the cut" % took
    wait_until(lambda: mesh.curl(a, "http://%s:8080/back" % b.addr4, timeout=20,
                                 max_time=5).returncode == 0, 30, interval=0.5,
               what="a request to get through after the cut")
    get(a, b, "/after-cut")
    assert a.daemon.alive() and b.daemon.alive()


def test_drain_lets_link_streams_finish(cluster):
    """A connection-per-request loop over a link while pod b's daemon
    drains: GOAWAY stops new streams, no request that reached the app
    loses its answer, and what was refused was refused at connect."""
    a, b, _ = linked_pair(cluster)
    srv = mesh.start_app(b, 8080)
    loop = mesh.start_loop(a, b.addr4, 8080, "/drain", 100000, 30, per_conn=1)
    wait_until(lambda: len(mesh.loop_results(loop)[0]) >= 50, 30,
               what="the loop to get going over the link")
    assert 1 <= len(links_json(a)) <= loops(a)
    b.daemon.expected_exit = True  # it exits once drained
    b.ctl("drain", "--timeout", "3").ok()
    loop.wait_output(r"^done n=\d+$", timeout=60)
    oks, errors = mesh.loop_results(loop)
    assert set(oks) == {"200"}, sorted(set(oks))
    served = srv.out().count("request port=8080 GET /drain")
    assert served == len(oks), (served, len(oks), errors[:5])
    # After the drain, new connections fail (refused, or left unanswered by
    # a daemon that accepts no more): errors, never a wrong answer.
    assert all(e.split(":")[0] in ("ConnectionRefusedError", "ConnectionResetError",
                                   "TimeoutError", "RemoteDisconnected", "BrokenPipeError")
               for e in errors), errors[:5]


def test_peer_without_link_port_falls_back(cluster):
    """Pod b listens for no links (link_port = 0): pod a, links on, gets a
    refused link and carries every connection as its own mTLS connection,
    as without links, and does not retry the link for each one."""
    a, b, _ = linked_pair(cluster, link_port=0)
    mesh.start_app(b, 8080)
    pcap = os.path.join(cluster.tmp, "fallback.pcap")
    with mesh.capture(a, pcap, "tcp and host %s" % b.addr4):
        for i in range(5):
            r = get(a, b, "/fallback/%d" % i)
            assert mesh.app_json(r)["peer"] == a.addr4
    syns = syns_to(pcap, b.addr4)
    # Each event loop tries the link port once, then remembers.
    assert 1 <= [s[3] for s in syns].count(15008) <= loops(a), syns
    assert [s[3] for s in syns].count(8080) == 5, syns
    assert mesh.metric(a, "ldmesh_link_fallbacks_total") == 5
    assert mesh.metric(b, "ldmesh_tls_handshakes_total", direction="inbound") == 5
    assert not [l for l in links_json(a) if l["state"] == "open"]


# --- streams side by side -------------------------------------------------------

# HOST PORT N: GETs /blob/N, reads 1 MiB of the answer and stops reading
# until a line arrives on stdin; then reads the rest.
STALL = r'''
import socket, sys
n = int(sys.argv[3])
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
s.sendall(b"GET /blob/%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % n)
got = 0
while got < 1 << 20:
    got += len(s.recv(65536))
print("stalled got=%d" % got, flush=True)
sys.stdin.readline()
while True:
    d = s.recv(1 << 20)
    if not d:
        break
    got += len(d)
print("resumed got=%d" % got, flush=True)
'''


def test_stalled_stream_stalls_alone(cluster):
    """Two clients on one link; one stops reading a 64 MB download after
    its first MiB.  The other downloads 50 MB on the same link meanwhile,
    complete and intact; then the first resumes and gets all of its own."""
    a, b, _ = linked_pair(cluster)
    mesh.start_app(b, 8080)
    get(a, b, "/warm")
    stall = a.popen([PYTHON, "-c", STALL, b.addr4, "8080", str(64 * MIB)], name="stall",
                    stdin=subprocess.PIPE)
    stall.wait_output(r"^stalled got=\d+$", timeout=30)
    size, out = 50 * MIB, os.path.join(cluster.tmp, "other.out")
    t0 = time.monotonic()
    r = mesh.curl(a, "-o", out, "http://%s:8080/blob/%d" % (b.addr4, size), timeout=90,
                  max_time=60)
    took = time.monotonic() - t0
    assert r.returncode == 0, r
    with open(out, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == mesh.blob_sha256(size)
    links = links_json(a)
    assert 1 <= len(links) <= loops(a) and sum(l["streams_open"] for l in links) >= 1, links
    assert "resumed" not in stall.out(), "the stalled client was not stalled"
    print("50 MB beside a stalled stream in %.2f s (%.0f MB/s)" % (took, size / 1e6 / took))
    stall.popen.stdin.write(b"go\n")
    stall.popen.stdin.flush()
    m = stall.wait_output(r"^resumed got=(\d+)$", timeout=60)
    assert int(m.group(1)) > 64 * MIB, stall.out()


def test_thousand_concurrent_connections_over_links(cluster):
    """1,000 app connections open at once from pod a to pod b, all carried
    on links (two, at 500 streams each), each with a round trip, then a
    second round trip on every one, then all closed."""
    n = 1000
    settings = {"max_streams_per_link": 500}
    a, b, _ = linked_pair(cluster, client_links=settings, server_links=settings)
    many = os.path.join(os.path.dirname(HELPER), "many.py")
    srv = b.popen([PYTHON, many, "serve", b.addr4, "9000"], name="echo")
    srv.wait_output(r"^listening$", timeout=20)
    b.wait_listening(srv, 9000)
    cli = a.popen([PYTHON, many, "client", b.addr4, "9000", str(n)], name="many",
                  stdin=subprocess.PIPE)
    cli.wait_output(r"^first=%d$" % n, timeout=120)
    links = [l for l in links_json(a) if l["state"] == "open"]
    assert sum(l["streams_open"] for l in links) == n, links
    # 500 streams a link, each event loop with its own: two links for one
    # loop; with more, one per started 500 on each.
    per_loop = {}
    for c in mesh.conns(a):
        if c["direction"] == "outbound":
            per_loop[c["worker"]] = per_loop.get(c["worker"], 0) + 1
    assert len(links) == sum((k + 499) // 500 for k in per_loop.values()), (links, per_loop)
    assert mesh.metric(b, "ldmesh_connections", direction="inbound") == n
    # `conns` names each connection's link.
    names = {l["link"] for l in links}
    outbound = [c for c in mesh.conns(a) if c["direction"] == "outbound"]
    assert len(outbound) == n and {c["link"] for c in outbound} == names, outbound[:3]
    # Quiet, they give their buffers back on both sides (parking), and
    # wake up intact for the second round trip.
    wait_until(lambda: mesh.metric(a, "ldmesh_connections_idle") == n and
               mesh.metric(b, "ldmesh_connections_idle") == n, 30, interval=0.5,
               what="%d idle connections in both daemons" % n)
    cli.popen.stdin.write(b"go\n")
    cli.popen.stdin.flush()
    cli.wait_output(r"^second=%d$" % n, timeout=120)
    cli.popen.stdin.write(b"bye\n")
    cli.popen.stdin.flush()
    cli.wait_output(r"^closed$", timeout=60)
    wait_until(lambda: mesh.metric(a, "ldmesh_connections", direction="outbound") == 0 and
               mesh.metric(b, "ldmesh_connections", direction="inbound") == 0, 30,
               what="every connection closed in both daemons")


def test_rotation_moves_new_streams_to_a_new_link(cluster):
    """Pod a's SVID is re-issued while its link to pod b is open: the old
    link drains (GOAWAY) and the next connection rides a new link, made
    with the new SVID; the server still sees the same SPIFFE ID."""
    a, b, ca = linked_pair(cluster)
    mesh.start_app(b, 8080)
    get(a, b, "/before")
    old_link = links_json(a)[0]["link"]
    old = a.svid.serial()
    ca.issue(PAYMENTS, a.svid.dir)  # atomic renames over the watched files
    new = a.svid.serial()
    assert new != old
    wait_until(lambda: mesh.normalize_serial(a.status()["identity"]["serial"]) == new, 10,
               interval=0.1, what="pod a's daemon to load the new SVID")
    wait_until(lambda: all(l["link"] != old_link or l["state"] != "open"
                           for l in links_json(a)), 10, interval=0.2,
               what="the old link to drain")
    r = get(a, b, "/after")
    assert mesh.app_json(r)["peer"] == a.addr4
    opened = [l for l in links_json(a) if l["state"] == "open"]
    assert len(opened) == 1 and opened[0]["link"] != old_link, links_json(a)
    assert opened[0]["peer_id"] == ORDERS
    inbound = [l for l in links_json(b) if l["state"] == "open"]
    assert inbound and all(l["peer_id"] == PAYMENTS for l in inbound), inbound


def test_connect_errnos_over_a_link(cluster):
    """What an app's connect() returns when its connection rides a link:
    a port the policy denies at connection level fails with EACCES (the
    peer answered 403), a closed port with ECONNREFUSED (the peer daemon
    holds no listener there: the port is dialled directly, as without
    links), an allowed one connects; the allowed one was a stream."""
    policies = [{"name": "payments-8080", "action": "allow", "ports": [8080],
                 "principals": [PAYMENTS]}]
    a, b, _ = linked_pair(cluster, policies=policies, policy_default="deny")
    mesh.start_app(b, 8080, 8081)
    kv = a.prog("connerr", "block", b.addr4, 8080).ok().kv()
    assert kv["connect"] == "0", kv
    kv = a.prog("connerr", "block", b.addr4, 8081).ok().kv()
    assert kv["errno"] == "EACCES", kv
    kv = a.prog("connerr", "nonblock", b.addr4, 8081).ok().kv()
    assert kv["errno"] == "EINPROGRESS" and kv["so_error"] == "EACCES", kv
    kv = a.prog("connerr", "block", b.addr4, 9999).ok().kv()
    assert kv["errno"] == "ECONNREFUSED", kv
    links = [l for l in links_json(a) if l["state"] == "open"]
    assert 1 <= len(links) <= loops(a) and sum(l["streams_total"] for l in links) >= 3, links
