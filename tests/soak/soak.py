#!/usr/bin/python3
"""Soak: mixed load through two meshed pods for a set time, watching the
daemons' memory and file descriptors (docs/reliability.md, "Soak").

    SOAK_SECONDS=600 ci/soak.sh          # what `make soak` runs
    tests/soak/soak.py --seconds 120 --mode epoll

Pods a (client) and b (server) are network namespaces joined by a veth
pair, each with its own ldmeshd and a CA-issued SVID, inbound mTLS strict
(tests/e2e/pods.py and mesh.py, used as they are).  Four loads run from pod
a at the same time, every process with the shim preloaded:

  keepalive  HTTP/1.1 GETs, 100 per connection (mesh.start_loop)
  per-conn   HTTP/1.1 GETs, a new connection each (mesh.start_loop)
  bulk       4 MB downloads, a new connection each, sha256 checked
  opaque     64 KiB exchanges with an echo server, 5 per connection,
             compared byte for byte (not HTTP: the opaque TCP path)

Every SOAK_INTERVAL seconds it samples each daemon's VmRSS and the number
of entries in /proc/PID/fd.  After the warm-up it fits a least-squares line
to each series; the run fails when a slope is above RSS_SLOPE_MAX_KIB_MIN or
FD_SLOPE_MAX_PER_MIN, when the daemons' fd counts after the load are above
what they were before it, or when any request failed (the load injects no
faults, so every error is unexplained).  The report ends in one line
starting "soak: PASS" or "soak: FAIL".
"""
import argparse
import os
import re
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
E2E = os.path.join(HERE, "..", "e2e")
sys.path.insert(0, E2E)

import mesh  # noqa: E402
import pods as podlib  # noqa: E402
from pods import PYTHON, wait_until  # noqa: E402

RSS_SLOPE_MAX_KIB_MIN = 256.0  # a leak of 100 bytes per request shows as ~600 KiB/min
FD_SLOPE_MAX_PER_MIN = 2.0  # the exact check is fds before == after the load
BULK_BYTES = 4000000
HTTP_PORT, ECHO_PORT = 8080, 9900

BULK = r'''
import hashlib, http.client, os, random, sys, time
host, port, n, stop, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], \
    float(sys.argv[5])
want = hashlib.sha256(random.Random(n).randbytes(n)).hexdigest()
deadline, done = time.monotonic() + limit, 0
while time.monotonic() < deadline and not os.path.exists(stop):
    try:
        c = http.client.HTTPConnection(host, port, timeout=30)
        c.request("GET", "/blob/%d" % n)
        r = c.getresponse()
        body = r.read()
        c.close()
        if r.status != 200 or hashlib.sha256(body).hexdigest() != want:
            print("error=bad_body:status_%d_len_%d" % (r.status, len(body)), flush=True)
        else:
            print("ok", flush=True)
    except Exception as e:
        print("error=%s:%s" % (type(e).__name__, str(e).replace(" ", "_")), flush=True)
    done += 1
    time.sleep(0.2)
print("done n=%d" % done, flush=True)
'''

OPAQUE = r'''
import os, random, socket, sys, time
host, port, stop, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
deadline, done, rnd = time.monotonic() + limit, 0, random.Random(7)
while time.monotonic() < deadline and not os.path.exists(stop):
    try:
        s = socket.create_connection((host, port), timeout=30)
        for _ in range(5):
            data = rnd.randbytes(65536)
            s.sendall(data)
            got = bytearray()
            while len(got) < len(data):
                d = s.recv(65536)
                if not d:
                    raise ConnectionError("eof_after_%d" % len(got))
                got += d
            print("ok" if bytes(got) == data else "error=mismatch", flush=True)
            done += 1
        s.close()
    except Exception as e:
        print("error=%s:%s" % (type(e).__name__, str(e).replace(" ", "_")), flush=True)
        done += 1
    time.sleep(0.05)
print("done n=%d" % done, flush=True)
'''


# HOST PORT N: N connections open at once, one GET on each, then all closed.
WARM = r'''
import http.client, sys
conns = [http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=10)
         for _ in range(int(sys.argv[3]))]
for c in conns:
    c.connect()
for c in conns:
    c.request("GET", "/warm")
    c.getresponse().read()
for c in conns:
    c.close()
'''


def _script(pod, name, text):
    path = os.path.join(pod.dir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def slope_per_min(samples):
    """Least-squares slope of [(t_seconds, value)] in value per minute."""
    n = len(samples)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    return 60.0 * sum((t - mt) * (v - mv) for t, v in samples) / var


def results(proc):
    """(ok count, {reason: count}) from a load process's output."""
    out = proc.out()
    oks = len(re.findall(r"^(?:status=200|ok)$", out, re.M))
    errors = {}
    for line in out.splitlines():
        if line.startswith("status=") and line != "status=200":
            errors[line] = errors.get(line, 0) + 1
        elif line.startswith("error="):
            reason = line[6:].split(":", 1)[0] + ":" + line[6:].split(":", 1)[-1][:80]
            errors[reason] = errors.get(reason, 0) + 1
    return oks, errors


def setup(cluster):
    """Pods a (client) and b (server) with SVIDs, strict mTLS, the HTTP
    app and an echo server in b."""
    a, b = cluster.pair(start=False)
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    # ASan keeps freed memory in a quarantine (256 MiB by default), which
    # would read as an RSS climb; a small one fills during the warm-up.
    env = {"ASAN_OPTIONS": "detect_leaks=0:quarantine_size_mb=4"} if cluster.mode.asan else None
    for pod, sa in ((a, "client"), (b, "server")):
        mesh.configure(pod, ca.issue(mesh.spiffe("soak", sa),
                                     os.path.join(cluster.tmp, "id-" + pod.label)),
                       mtls="strict", start=False)
        pod.start_daemon(env=env)
    mesh.start_app(b, HTTP_PORT)
    echo = b.popen([b.mode.prog("echosrv"), b.addr4, str(ECHO_PORT)], name="echosrv")
    b.wait_listening(echo, ECHO_PORT)
    return a, b


def run_soak(cluster, seconds, interval=5.0, warmup=None, log=print):
    """Runs the mixed load for `seconds` in a fresh pair of pods of
    cluster; returns the report as a dict (see main() for its use)."""
    if warmup is None:
        warmup = min(60.0, seconds / 5.0)
    a, b = setup(cluster)
    daemons = {"a": a, "b": b}
    # One request of each kind first, so lazy allocations are not a trend;
    # a few connections held at once, so that each event loop of a daemon
    # with several workers gets one and opens its own link to the peer.
    mesh.curl(a, "http://%s:%d/warm" % (b.addr4, HTTP_PORT)).ok()
    a.run([PYTHON, _script(a, "soak_warm.py", WARM), b.addr4, str(HTTP_PORT), "8"],
          timeout=60).ok()
    time.sleep(0.5)
    fds_before = {k: fd_count(p.daemon_pid) for k, p in daemons.items()}
    stop = os.path.join(cluster.tmp, "soak.stop")
    limit = seconds + 60
    loads = {
        "keepalive": mesh.start_loop(a, b.addr4, HTTP_PORT, "/keepalive", 10 ** 9, limit,
                                     per_conn=100, stop_file=stop),
        "per-conn": mesh.start_loop(a, b.addr4, HTTP_PORT, "/per-conn", 10 ** 9, limit,
                                    per_conn=1, stop_file=stop),
        "bulk": a.popen([PYTHON, _script(a, "soak_bulk.py", BULK), b.addr4, str(HTTP_PORT),
                         str(BULK_BYTES), stop, str(limit)], name="bulk"),
        "opaque": a.popen([PYTHON, _script(a, "soak_opaque.py", OPAQUE), b.addr4,
                           str(ECHO_PORT), stop, str(limit)], name="opaque"),
    }
    samples = {k: [] for k in daemons}  # (t, rss_kib, fds)
    t0 = time.monotonic()
    next_log = t0
    while True:
        now = time.monotonic() - t0
        for k, p in daemons.items():
            if not p.daemon.alive():
                raise AssertionError("pod %s's daemon died: %s" % (k, p.daemon.describe()))
            samples[k].append((now, rss_kib(p.daemon_pid), fd_count(p.daemon_pid)))
        dead = [n for n, proc in loads.items() if not proc.alive()]
        if dead:
            raise AssertionError("load %s ended early: %s" % (
                dead, "\n".join(loads[n].describe() for n in dead)))
        if time.monotonic() >= next_log:
            log("  t=%5.0fs  " % now + "  ".join(
                "%s: rss %d KiB fds %d" % (k, s[-1][1], s[-1][2]) for k, s in samples.items()))
            next_log += max(interval, seconds / 10.0)
        if now >= seconds:
            break
        time.sleep(max(0.0, min(interval, seconds - now)))
    with open(stop, "w"):
        pass
    for name, proc in loads.items():
        proc.wait_output(r"^done n=\d+$", timeout=60)

    # The connections close; the fd counts go back to where they started.
    def settled():
        return all(fd_count(p.daemon_pid) <= fds_before[k] for k, p in daemons.items())
    try:
        wait_until(settled, 15, interval=0.2, what="daemon fds back to the start")
    except TimeoutError:
        pass
    fds_after = {k: fd_count(p.daemon_pid) for k, p in daemons.items()}

    report = {"seconds": seconds, "warmup": warmup, "interval": interval,
              "mode": cluster.mode.name, "samples": {}, "rss_slope_kib_min": {},
              "fd_slope_per_min": {}, "fds_before": fds_before, "fds_after": fds_after,
              "requests": {}, "errors": {}, "failures": []}
    for k, s in samples.items():
        steady = [x for x in s if x[0] >= warmup]
        report["samples"][k] = s
        report["rss_slope_kib_min"][k] = slope_per_min([(t, r) for t, r, _ in steady])
        report["fd_slope_per_min"][k] = slope_per_min([(t, f) for t, _, f in steady])
        if report["rss_slope_kib_min"][k] > RSS_SLOPE_MAX_KIB_MIN:
            report["failures"].append("pod %s RSS slope %.1f KiB/min > %.0f" % (
                k, report["rss_slope_kib_min"][k], RSS_SLOPE_MAX_KIB_MIN))
        if report["fd_slope_per_min"][k] > FD_SLOPE_MAX_PER_MIN:
            report["failures"].append("pod %s fd slope %.2f fds/min > %.1f" % (
                k, report["fd_slope_per_min"][k], FD_SLOPE_MAX_PER_MIN))
        if fds_after[k] > fds_before[k]:
            report["failures"].append("pod %s holds %d fds after the load, %d before" % (
                k, fds_after[k], fds_before[k]))
    for name, proc in loads.items():
        oks, errors = results(proc)
        report["requests"][name] = oks
        for reason, n in errors.items():
            report["errors"]["%s %s" % (name, reason)] = n
    if report["errors"]:
        report["failures"].append("%d unexplained errors" % sum(report["errors"].values()))
    return report


def format_report(r):
    lines = ["soak report: %d s, mode %s, sample every %.0f s, warm-up %.0f s" % (
        r["seconds"], r["mode"], r["interval"], r["warmup"])]
    for k, s in sorted(r["samples"].items()):
        steady = [x for x in s if x[0] >= r["warmup"]]
        lines.append("  pod %s daemon: %d samples (%d after warm-up); RSS %d -> %d KiB "
                     "(min %d, max %d), slope %+.1f KiB/min; fds %d -> %d (min %d, max %d), "
                     "slope %+.2f fds/min; fds before/after the load %d/%d" % (
                         k, len(s), len(steady), s[0][1], s[-1][1], min(x[1] for x in s),
                         max(x[1] for x in s), r["rss_slope_kib_min"][k], s[0][2], s[-1][2],
                         min(x[2] for x in s), max(x[2] for x in s), r["fd_slope_per_min"][k],
                         r["fds_before"][k], r["fds_after"][k]))
    lines.append("  requests: " + ", ".join("%s %d" % kv for kv in sorted(r["requests"].items())))
    if r["errors"]:
        lines.append("  errors:")
        lines += ["    %6d  %s" % (n, reason) for reason, n in sorted(r["errors"].items())]
    else:
        lines.append("  errors: none")
    for f in r["failures"]:
        lines.append("  FAIL: " + f)
    total = sum(r["requests"].values())
    lines.append("soak: %s %d s, %d requests, %d errors, RSS slope %s KiB/min (max %.0f), "
                 "fd slope %s /min (max %.1f)" % (
                     "FAIL" if r["failures"] else "PASS", r["seconds"], total,
                     sum(r["errors"].values()),
                     " ".join("%s %+.1f" % kv for kv in sorted(r["rss_slope_kib_min"].items())),
                     RSS_SLOPE_MAX_KIB_MIN,
                     " ".join("%s %+.2f" % kv for kv in sorted(r["fd_slope_per_min"].items())),
                     FD_SLOPE_MAX_PER_MIN))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float,
                    default=float(os.environ.get("SOAK_SECONDS", "600")))
    ap.add_argument("--interval", type=float,
                    default=float(os.environ.get("SOAK_INTERVAL", "5")))
    ap.add_argument("--warmup", type=float, default=None)
    ap.add_argument("--mode", default=os.environ.get("SOAK_MODE", "io_uring"),
                    choices=["io_uring", "epoll", "asan"])
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("soak: the pods are network namespaces: run as root", file=sys.stderr)
        return 2
    podlib.cleanup_stale_namespaces()
    mode = podlib.Mode(args.mode)
    missing = [p for p in (mode.ldmeshd, mode.ldmeshctl, mode.shim, mode.prog("echosrv"))
               if not os.path.exists(p)]
    if missing:
        print("soak: missing %s (run make all)" % ", ".join(missing), file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="ldmesh-soak-")
    cluster = podlib.Cluster(mode, tmp)
    print("soak: %.0f s of mixed load, logs in %s" % (args.seconds, tmp), flush=True)
    report = None
    try:
        report = run_soak(cluster, args.seconds, interval=args.interval, warmup=args.warmup,
                          log=lambda s: print(s, flush=True))
    except Exception as e:  # a daemon died, a load stopped: report it, fail
        print("soak: FAIL %s" % e, flush=True)
        return 1
    finally:
        try:
            cluster.close()
        except AssertionError as e:
            print("soak: teardown: %s" % e, flush=True)
            if report is not None:
                report["failures"].append("teardown: %s" % str(e).splitlines()[0])
    print(format_report(report), flush=True)
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
