"""Several event loops per daemon (`workers = 2`): connections spread over
both loops, a config reload and SVID rotations under load lose no
connection, and what `ldmeshctl stats`, `status` and /metrics count is
every loop's, added up.

Both pods run two workers in every mode here, whatever the mode's own
setting (tests/e2e/pods.py: Mode.workers)."""
import os
import re
import subprocess

import mesh
from mesh import spiffe
from pods import PYTHON, wait_until

PAYMENTS = spiffe("shop", "payments")
ORDERS = spiffe("shop", "orders")

# A loop that keeps NCONN keep-alive connections open at once, each
# sending requests until the stop file appears: the long-lived
# connections a reload or a rotation must not touch.
KEEPALIVE = r'''
import http.client, os, sys, threading, time
host, port, nconn, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
deadline = time.monotonic() + 120
lock = threading.Lock()
counts = {"ok": 0, "err": 0, "conns": 0}

def run(i):
    conn = http.client.HTTPConnection(host, port, timeout=10)
    with lock:
        counts["conns"] += 1
    while not os.path.exists(stop) and time.monotonic() < deadline:
        try:
            conn.request("GET", "/keepalive/%d" % i)
            r = conn.getresponse()
            r.read()
            with lock:
                counts["ok" if r.status == 200 else "err"] += 1
            if r.status != 200:
                print("error=status_%d" % r.status, flush=True)
        except Exception as e:
            with lock:
                counts["err"] += 1
            print("error=%s:%s" % (type(e).__name__, e), flush=True)
            return  # one connection lost is the failure this test looks for
        time.sleep(0.005)
    conn.close()

threads = [threading.Thread(target=run, args=(i,)) for i in range(nconn)]
for t in threads:
    t.start()
print("started", flush=True)
for t in threads:
    t.join()
print("done ok=%d err=%d conns=%d" % (counts["ok"], counts["err"], counts["conns"]),
      flush=True)
'''


def two_worker_pair(cluster):
    """Pods a (payments, client) and b (orders, server), SVIDs from one CA,
    strict mTLS, two workers each."""
    a, b = cluster.pair(start=False)
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    mesh.configure(a, ca.issue(PAYMENTS, os.path.join(cluster.tmp, "id-a")), mtls="strict",
                   workers=2)
    mesh.configure(b, ca.issue(ORDERS, os.path.join(cluster.tmp, "id-b")), mtls="strict",
                   workers=2)
    for pod in (a, b):
        assert pod.status()["workers"] == 2, pod.status()
    return a, b, ca


def served_by(pod, direction):
    """The loops (workers) holding pod's open connections of direction."""
    return {c["worker"] for c in mesh.conns(pod) if c["direction"] == direction}


def test_reload_and_rotation_under_load_lose_nothing(cluster):
    """Twelve keep-alive connections and a loop of one-request connections
    run from pod a to pod b while pod b's config is reloaded twice and both
    pods' SVIDs are re-issued: no request fails, no connection is lost,
    both loops of each daemon carry connections, every loop adopts the new
    SVID (the next handshakes present it), and `ldmeshctl stats` in pod b
    counts every request either loop served."""
    a, b, ca = two_worker_pair(cluster)
    mesh.start_app(b, 8080)
    stop = os.path.join(cluster.tmp, "stop")
    script = os.path.join(a.dir, "keepalive.py")
    with open(script, "w") as f:
        f.write(KEEPALIVE)
    ka = a.popen([PYTHON, script, b.addr4, "8080", "12", stop], name="keepalive")
    ka.wait_output(r"^started$", timeout=30)
    short = mesh.start_loop(a, b.addr4, 8080, "/short", 100000, 120, per_conn=1,
                            stop_file=stop)

    def progress(n=20):
        """n more short requests done (each a new connection, so a new
        handshake with whatever SVID each loop now holds)."""
        target = len(mesh.loop_results(short)[0]) + n
        wait_until(lambda: len(mesh.loop_results(short)[0]) >= target or not short.alive(),
                   30, interval=0.05, what="%d more requests" % n)

    progress()
    # The keep-alive connections are spread: each daemon's two loops hold some.
    wait_until(lambda: served_by(a, "outbound") == {0, 1}, 10, interval=0.1,
               what="pod a's connections on both loops")
    wait_until(lambda: served_by(b, "inbound") == {0, 1}, 10, interval=0.1,
               what="pod b's connections on both loops")

    # A reload that changes what new connections get (an audit rule),
    # twice, under load.
    off = len(b.daemon_log())
    r = mesh.reconfigure(b, policies=[{"name": "watch", "action": "audit",
                                       "ports": [8080], "paths": ["/short"]}])
    assert r.returncode == 0, r
    progress()
    r = mesh.reconfigure(b, policies=[])
    assert r.returncode == 0, r
    assert b.daemon_log()[off:].count("configuration reloaded") == 2, b.daemon_log()[off:]
    progress()

    # Both SVIDs re-issued (atomic renames over the watched files).
    for pod, ident in ((a, PAYMENTS), (b, ORDERS)):
        old = pod.svid.serial()
        ca.issue(ident, pod.svid.dir)
        new = pod.svid.serial()
        assert new != old
        wait_until(lambda: mesh.normalize_serial(pod.status()["identity"]["serial"]) == new,
                   10, interval=0.1, what="pod %s to load its new SVID" % pod.label)
        progress()
    progress(40)

    with open(stop, "w"):
        pass
    m = ka.wait_output(r"^done ok=(\d+) err=(\d+) conns=(\d+)$", timeout=60)
    ok, err, nconn = (int(x) for x in m.groups())
    short.wait(30)
    statuses, errors = mesh.loop_results(short)
    log = a.daemon_log()[-3000:] + b.daemon_log()[-3000:]
    assert err == 0 and nconn == 12, "keep-alive: %s\n%s\n%s" % (m.group(0), ka.out()[-2000:],
                                                                  log)
    assert not errors and set(statuses) == {"200"}, (errors[:10], log)
    assert ok >= 12 and len(statuses) >= 100, (ok, len(statuses))

    # Every loop took the new SVIDs: the handshakes after the rotation, on
    # either loop, were all good, and pod b saw pod a's identity on them.
    for pod, direction in ((a, "outbound"), (b, "inbound")):
        errs = {k: v for (n, lbl), v in mesh.metrics(pod).items()
                if n == "ldmesh_tls_handshake_errors_total" and v and
                dict(lbl)["direction"] == direction}
        assert not errs, (pod.label, errs)
    assert mesh.metric(a, "ldmesh_identity_reloads_total") >= 2
    assert mesh.metric(b, "ldmesh_identity_reloads_total") >= 2

    # `stats` in pod b: every request either loop served, counted once.
    total = ok + len(statuses)
    wait_until(lambda: sum(r["requests"] for r in b.ctl_json("stats")["rows"]
                           if r["direction"] == "inbound" and r["port"] == 8080) == total,
               10, interval=0.2, what="pod b's stats to count %d requests" % total)
    rows = [r for r in b.ctl_json("stats")["rows"]
            if r["direction"] == "inbound" and r["port"] == 8080]
    assert len(rows) == 1 and rows[0]["peer_id"] == PAYMENTS, rows
    assert rows[0]["success"] == total, rows
    # /metrics agrees, and so does the client side.
    assert mesh.metric(b, "request_total", direction="inbound") == total
    out = [r for r in a.ctl_json("stats")["rows"] if r["direction"] == "outbound"]
    assert sum(r["requests"] for r in out) == total, out
    st = b.status()
    assert st["workers"] == 2 and st["connections"]["inbound"] == 0, st


def test_each_loop_serves_and_counts(cluster):
    """With two workers and two keep-alive clients held open, `conns`
    lists connections on both loops, `status` adds up both loops' live
    connections and /metrics' ldmesh_connections and tcp_open_connections
    agree with it."""
    a, b, _ = two_worker_pair(cluster)
    mesh.start_app(b, 8080)
    stop = os.path.join(cluster.tmp, "stop")
    script = os.path.join(a.dir, "keepalive.py")
    with open(script, "w") as f:
        f.write(KEEPALIVE)
    ka = a.popen([PYTHON, script, b.addr4, "8080", "8", stop], name="keepalive")
    ka.wait_output(r"^started$", timeout=30)
    wait_until(lambda: len([c for c in mesh.conns(b) if c["direction"] == "inbound"]) == 8,
               20, interval=0.1, what="8 inbound connections in pod b")
    rows = [c for c in mesh.conns(b) if c["direction"] == "inbound"]
    per_loop = {w: len([c for c in rows if c["worker"] == w]) for w in (0, 1)}
    assert per_loop[0] >= 2 and per_loop[1] >= 2, per_loop
    assert b.status()["connections"]["inbound"] == 8
    assert mesh.metric(b, "ldmesh_connections", direction="inbound") == 8
    assert mesh.metric(b, "ldmesh_workers") == 2
    with open(stop, "w"):
        pass
    m = ka.wait_output(r"^done ok=(\d+) err=(\d+) conns=(\d+)$", timeout=60)
    assert m.group(2) == "0" and m.group(3) == "8", ka.out()[-2000:]
    wait_until(lambda: b.status()["connections"]["inbound"] == 0, 10, interval=0.1,
               what="every connection closed")


# server ADDR PORT N: accepts N connections, then reads each until it ends
# and prints how.  client HOST PORT N: opens N connections, sends a line on
# each, then aborts each (SO_LINGER {1, 0}).
ABORTS = r'''
import errno, socket, struct, sys
role, host, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if role == "server":
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(16)
    print("listening", flush=True)
    conns = [ls.accept()[0] for _ in range(n)]
    print("accepted %d" % n, flush=True)
    for c in conns:
        c.settimeout(20)
        result = None
        while result is None:
            try:
                d = c.recv(65536)
            except socket.timeout:
                result = "TIMEOUT"
            except OSError as e:
                result = errno.errorcode.get(e.errno, str(e.errno))
            else:
                if not d:
                    result = "EOF"
        print("result=%s" % result, flush=True)
else:
    socks = [socket.create_connection((host, port), timeout=20) for _ in range(n)]
    for s in socks:
        s.sendall(b"hello\n")
    print("connected", flush=True)
    sys.stdin.readline()
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    print("aborted", flush=True)
'''


def test_app_resets_reach_the_owning_loop(cluster):
    """Six connections held open across pod a's two loops, then each
    aborted by the app (SO_LINGER 0): the shim's reset request reaches
    whichever loop accepted it, which asks the others, and the loop that
    holds the connection resets it: six resets in the log, none missed,
    every server connection ends (reset or end-of-file, never a hang),
    and no connection is left in either daemon."""
    a, b = cluster.pair(start=False)
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    mesh.configure(a, ca.issue(PAYMENTS, os.path.join(cluster.tmp, "id-a")), mtls="strict",
                   workers=2, extra='log_level = "debug";')
    mesh.configure(b, ca.issue(ORDERS, os.path.join(cluster.tmp, "id-b")), mtls="strict",
                   workers=2)
    n = 6
    for pod in (a, b):
        with open(os.path.join(pod.dir, "aborts.py"), "w") as f:
            f.write(ABORTS)
    srv = b.popen([PYTHON, os.path.join(b.dir, "aborts.py"), "server", b.addr4, "9811",
                   str(n)], name="abort-server")
    b.wait_listening(srv, 9811)
    cli = a.popen([PYTHON, os.path.join(a.dir, "aborts.py"), "client", b.addr4, "9811",
                   str(n)], name="abort-client", stdin=subprocess.PIPE)
    cli.wait_output(r"^connected$", timeout=30)
    srv.wait_output(r"^accepted %d$" % n, timeout=30)
    held = [c for c in mesh.conns(a) if c["direction"] == "outbound"]
    assert len(held) == n and {c["worker"] for c in held} == {0, 1}, held
    off = len(a.daemon_log())
    cli.popen.stdin.write(b"go\n")
    cli.popen.stdin.flush()
    cli.wait_output(r"^aborted$", timeout=30)
    wait_until(lambda: len(re.findall(r"the app reset it", a.daemon_log()[off:])) == n, 10,
               interval=0.1, what="%d resets in pod a's log" % n)
    wait_until(lambda: srv.out().count("result=") == n, 30, interval=0.1,
               what="every server connection to end")
    assert set(re.findall(r"^result=(\w+)$", srv.out(), re.M)) <= {"ECONNRESET", "EOF"}, \
        srv.out()
    wait_until(lambda: a.status()["connections"]["outbound"] == 0 and
               b.status()["connections"]["inbound"] == 0, 10, interval=0.1,
               what="no connection left")
