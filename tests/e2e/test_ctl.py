"""ldmeshctl against live daemons: status and conns (text and --json) show
a live connection with its bytes, and `ldmeshctl run` puts a stock binary
in the mesh, starting a daemon when none is reachable."""
import os
import subprocess

from pods import PYTHON, unix_connectable, wait_until

CONN_KEYS = {"direction", "local_addr", "peer_addr", "peer_id", "tls", "bytes_in", "bytes_out",
             "age_ms"}


def addr_is(field, ip, port):
    """conns prints addresses as IP:PORT ([IP]:PORT for IPv6)."""
    return str(field) in ("%s:%s" % (ip, port), "[%s]:%s" % (ip, port))


def find_conn(conns, direction, peer_ip, peer_port):
    for c in conns:
        if c.get("direction") == direction and addr_is(c.get("peer_addr"), peer_ip, peer_port):
            return c
    return None


def test_conns_and_status_show_live_connection(pods):
    a, b = pods
    srv = b.popen([b.mode.prog("echosrv"), b.addr4, "9800"], name="echosrv")
    b.wait_listening(srv, 9800)
    hold = a.python_popen("hold.py", b.addr4, 9800, 5000, stdin=subprocess.PIPE)
    m = hold.wait_output(r"^ready local=(\S+):(\d+) peer=(\S+):(\d+)$")
    client_ip, client_port = m.group(1), m.group(2)
    assert client_ip == a.addr4 and m.group(3) == b.addr4 and m.group(4) == "9800", m.group(0)

    def outbound():
        c = find_conn(a.ctl_json("conns"), "outbound", b.addr4, 9800)
        return c if c and c["bytes_in"] >= 5000 and c["bytes_out"] >= 5000 else None

    def inbound():
        c = find_conn(b.ctl_json("conns"), "inbound", client_ip, client_port)
        return c if c and c["bytes_in"] >= 5000 and c["bytes_out"] >= 5000 else None

    try:
        out_c = wait_until(outbound, 5, interval=0.2, what="outbound conn with 5000 bytes")
    except TimeoutError:
        raise AssertionError("pod a conns --json: %s" % a.ctl("conns", "--json"))
    try:
        in_c = wait_until(inbound, 5, interval=0.2, what="inbound conn with 5000 bytes")
    except TimeoutError:
        raise AssertionError("pod b conns --json: %s" % b.ctl("conns", "--json"))

    for c in (out_c, in_c):
        assert CONN_KEYS <= set(c), "missing keys %s in %s" % (CONN_KEYS - set(c), c)
        assert isinstance(c["age_ms"], int) and c["age_ms"] >= 0, c
    assert addr_is(out_c["local_addr"], client_ip, client_port), out_c
    assert addr_is(in_c["local_addr"], b.addr4, 9800), in_c

    # Text form: a row naming the peer.
    r = a.ctl("conns").ok()
    assert "%s:9800" % b.addr4 in r.stdout, r
    r = b.ctl("conns").ok()
    assert "%s:%s" % (client_ip, client_port) in r.stdout, r

    for pod in (a, b):
        st = pod.ctl_json("status")
        for key in ("version", "pid", "uptime_s", "io_backend", "workers", "live_connections",
                    "listeners"):
            assert key in st, "status --json lacks %s: %s" % (key, st)
        assert st["pid"] == pod.daemon_pid, st
        assert st["io_backend"] == pod.mode.backend, st
        assert st["live_connections"] >= 1, st
        assert st["workers"] >= 1 and st["uptime_s"] >= 0, st
        assert isinstance(st["listeners"], list), st
    assert "9800" in str(b.ctl_json("status")["listeners"]), b.ctl_json("status")
    assert b.ctl("status").ok().stdout.strip()

    hold.popen.stdin.close()
    hold.wait(10)
    try:
        wait_until(lambda: find_conn(a.ctl_json("conns"), "outbound", b.addr4, 9800) is None
                   and find_conn(b.ctl_json("conns"), "inbound", client_ip, client_port) is None,
                   5, interval=0.2, what="connection to leave the tables")
    except TimeoutError:
        raise AssertionError("closed connection still listed: a %s b %s" % (
            a.ctl("conns", "--json").stdout, b.ctl("conns", "--json").stdout))


def test_ctl_unreachable_daemon_exits_2(cluster):
    a, b = cluster.pair(start=False)
    r = a.ctl("status")
    assert r.returncode == 2, r


FETCH_PY = ("import sys, urllib.request;"
            "print(urllib.request.urlopen(sys.argv[1], timeout=20).read().decode(), end='')")


def test_ldmeshctl_run(cluster):
    """`ldmeshctl run -- CMD` puts stock binaries in the mesh: in pod b with
    the pod's daemon running, in pod a with no daemon (run starts one from
    --config for the lifetime of CMD, and it is gone afterwards)."""
    a, b = cluster.pair(start=False)
    b.start_daemon()
    root = os.path.join(b.dir, "www")
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "run.txt"), "w") as f:
        f.write("via ldmeshctl run\n")
    env = None
    if b.mode.asan:
        # `run` puts its shim first in LD_PRELOAD, but the ASan shim needs
        # the sanitizer runtime ahead of it; run keeps an LD_PRELOAD that
        # already holds its shim, so hand it the right order.
        env = {"LD_PRELOAD": b.mode.preload()}
    srv = b.popen([b.mode.ldmeshctl, "--runtime-dir", b.runtime_dir, "run", "--", PYTHON, "-m",
                   "http.server", "9900", "--bind", b.addr4, "--directory", root],
                  name="ldmeshctl-run-server", shim=False, env=env)
    b.wait_listening(srv, 9900)

    assert not unix_connectable(a.handoff_sock)
    r = a.run([a.mode.ldmeshctl, "--runtime-dir", a.runtime_dir, "run", "--config", a.config,
               "--", PYTHON, "-c", FETCH_PY, "http://%s:9900/run.txt" % b.addr4],
              shim=False, env=env, timeout=60)
    assert r.returncode == 0 and r.stdout == "via ldmeshctl run\n", r
    m = srv.wait_output(r'^(\S+) - - .*"GET /run.txt', stream="err")
    assert m.group(1) == a.addr4, srv.err()
    wait_until(lambda: not unix_connectable(a.handoff_sock), 5,
               what="the daemon `ldmeshctl run` started to go away")
