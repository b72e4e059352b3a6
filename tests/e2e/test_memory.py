"""Memory comes back after a spike (docs/architecture.md, "Idle
connections"; docs/benchmarks.md): 2,000 idle meshed connections through
two daemons raise each daemon's RSS several times over; once they are
closed, each daemon's RSS must come back under twice its idle RSS (read
after start-up, before any connection).

What brings it back: the heap trim after a batch of connections closed
(proxy/park.c, util/heap.c) and, with links, the surplus links to the peer
draining after a few seconds without a stream (proxy/links.c).  Without
them the RSS stays where the spike left it (measured: 60-73 MiB per
daemon without links, 14-15 MiB with links, 6-7 MiB of it anonymous;
8 MiB idle, 1.2 MiB of it anonymous).

This bounds memory, not time: RSS is polled for up to 20 s (the trim runs
from the once-a-second sweep, surplus links drain after 3 s idle); the
speed of the return is measured by `make bench`.

Not in the asan mode: AddressSanitizer's allocator keeps freed memory in
its quarantine (up to 256 MiB) and its shadow memory grows with the spike,
and neither is glibc's heap that the daemon trims, so its RSS after the
spike says nothing about the daemon's own behaviour.
"""
import os
import subprocess

import pytest

import mesh
from mesh import spiffe
from pods import PYTHON, wait_until

N = 2000
MANY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers", "many.py")


def rss(pid):
    """VmRSS, RssAnon and RssFile of pid, in bytes."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0]) * 1024
    return out


def mib(n):
    return "%.1f MiB" % (n / 2 ** 20)


def describe(pod, r):
    return "%s %s (anon %s, file %s)" % (pod.label, mib(r["VmRSS"]), mib(r["RssAnon"]),
                                         mib(r["RssFile"]))


# Anonymous memory allowed above idle after the spike, per event loop.
# With workers = 2 the two daemons stayed 2.3 and 4.5 MiB above idle
# (RSS within 2x idle); each loop's thread allocates from a malloc arena
# of its own, the likely reason, not investigated further.
ANON_SLACK = 4 * 2 ** 20


@pytest.mark.timeout(240)
@pytest.mark.parametrize("links", [True, False], ids=["links", "per-connection"])
def test_rss_returns_after_idle_connections_close(cluster, links):
    if cluster.mode.asan:
        pytest.skip("ASan's quarantine and shadow memory, not the daemon's heap (docstring)")
    a, b = cluster.pair(start=False)
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    mesh.configure(a, ca.issue(spiffe("shop", "payments"), os.path.join(cluster.tmp, "id-a")),
                   mtls="strict", links=links)
    mesh.configure(b, ca.issue(spiffe("shop", "orders"), os.path.join(cluster.tmp, "id-b")),
                   mtls="strict", links=links)
    daemons = (a, b)
    idle = {p.label: rss(p.daemon_pid) for p in daemons}
    bound = {k: 2 * v["VmRSS"] for k, v in idle.items()}
    anon_bound = {k: v["RssAnon"] + ANON_SLACK * cluster.mode.workers for k, v in idle.items()}

    srv = b.popen([PYTHON, MANY, "serve", b.addr4, "9000"], name="echo")
    srv.wait_output(r"^listening$", timeout=20)
    b.wait_listening(srv, 9000)
    cli = a.popen([PYTHON, MANY, "client", b.addr4, "9000", str(N)], name="client",
                  stdin=subprocess.PIPE)
    cli.wait_output(r"^first=%d$" % N, timeout=150)
    # The spike: every connection carried a byte through both daemons.
    spike = {p.label: rss(p.daemon_pid) for p in daemons}
    for p in daemons:
        assert spike[p.label]["VmRSS"] > bound[p.label], \
            "the spike must take RSS above the bound for this test to mean anything: " \
            "idle %s, with %d connections %s" % (describe(p, idle[p.label]), N,
                                                describe(p, spike[p.label]))

    def idle_count(pod):
        return mesh.metric(pod, "ldmesh_connections_idle")
    wait_until(lambda: idle_count(a) == N and idle_count(b) == N, 30, interval=0.5,
               what="%d idle connections in both daemons" % N)
    cli.popen.stdin.write(b"go\n")
    cli.popen.stdin.flush()
    cli.wait_output(r"^second=%d$" % N, timeout=60)
    wait_until(lambda: idle_count(a) == N and idle_count(b) == N, 30, interval=0.5,
               what="idle again")

    # Close them all while idle.
    cli.popen.stdin.write(b"bye\n")
    cli.popen.stdin.flush()
    cli.wait(60)
    wait_until(lambda: mesh.metric(a, "ldmesh_connections", direction="outbound") == 0 and
               mesh.metric(b, "ldmesh_connections", direction="inbound") == 0, 30,
               interval=0.2, what="all %d closed in both daemons" % N)

    last = {}

    def ok(p):
        r = last[p.label]
        return r["VmRSS"] <= bound[p.label] and r["RssAnon"] <= anon_bound[p.label]

    def back():
        for p in daemons:
            last[p.label] = rss(p.daemon_pid)
        return all(ok(p) for p in daemons)
    try:
        wait_until(back, 20, interval=0.5, what="RSS back near idle")
    except TimeoutError:
        pass  # reported below, with the numbers
    report = "; ".join("%s: idle %s, spike %s, after close %s; bounds %s RSS, %s anon" % (
        p.label, describe(p, idle[p.label]), mib(spike[p.label]["VmRSS"]),
        describe(p, last[p.label]), mib(bound[p.label]), mib(anon_bound[p.label]))
        for p in daemons)
    for p in daemons:
        assert ok(p), report
