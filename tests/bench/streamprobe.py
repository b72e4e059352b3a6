"""One long stream through two meshed daemons, for working on the bulk data
path (docs/benchmarks.md, "The bulk data path"): quicker than `make bench`
and with the daemons' CPU split into user and system time.

    /usr/bin/python3 tests/bench/streamprobe.py [--mode io_uring|epoll|asan]
        [--mib 512] [--reps 3] [--links] [--config 'buffer_size = 131072;']
        [--perf FILE]

Two e2e pods (tests/e2e/pods.py, as root), strict mTLS, per-connection
TLS unless --links; a Python server in pod b sends MIB MiB to a Python
client in pod a, both under the shim.  Per run it prints MB/s (the
client's) and the two daemons' CPU per MiB (utime+stime, and utime alone,
from /proc/PID/stat).  --perf records both daemons with `perf record -g`
over all runs.  It reports; it asserts nothing.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import mesh  # noqa: E402
import pods as podlib  # noqa: E402

SINK = r'''
import socket, sys, time
if sys.argv[1] == "serve":
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[2], int(sys.argv[3])))
    s.listen(16)
    print("listening", flush=True)
    block = b"x" * (1 << 20)
    while True:
        c, _ = s.accept()
        for _ in range(int(c.recv(64).decode())):
            c.sendall(block)
        c.close()
else:
    c = socket.create_connection((sys.argv[2], int(sys.argv[3])))
    n = int(sys.argv[4])
    t0 = time.monotonic()
    c.sendall(b"%d" % n)
    got, buf = 0, bytearray(1 << 20)
    while True:
        r = c.recv_into(buf)
        if not r:
            break
        got += r
    print("bytes=%d mb_s=%.1f" % (got, got / (time.monotonic() - t0) / 1e6), flush=True)
'''
TCK = os.sysconf("SC_CLK_TCK")


def cpu(pid):
    """(utime + stime, utime) of pid in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TCK, int(fields[11]) / TCK


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", default="io_uring", choices=["io_uring", "epoll", "asan"])
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--links", action="store_true", help="streams on links (default: off)")
    ap.add_argument("--config", default="", help="extra lines for both daemons' configs")
    ap.add_argument("--perf", metavar="FILE", help="perf record both daemons into FILE")
    args = ap.parse_args()

    mode = podlib.Mode(args.mode)
    tmp = tempfile.mkdtemp(prefix="streamprobe.")
    cluster = podlib.Cluster(mode, tmp)
    sink = os.path.join(tmp, "sink.py")
    with open(sink, "w") as f:
        f.write(SINK)
    perf = None
    try:
        a, b = cluster.pair(start=False)
        ca = mesh.CA(mode, os.path.join(tmp, "ca"))
        for pod, sa in ((a, "client"), (b, "server")):
            mesh.configure(pod, ca.issue(mesh.spiffe("bench", sa), os.path.join(tmp, "id-" + sa)),
                           mtls="strict", links=args.links, extra=args.config)
        srv = b.popen([podlib.PYTHON, sink, "serve", b.addr4, "9000"], name="source")
        srv.wait_output(r"^listening$", timeout=20)
        b.wait_listening(srv, 9000)
        if args.perf:
            perf = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-o", args.perf,
                                     "-p", "%d,%d" % (a.daemon_pid, b.daemon_pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        for _ in range(args.reps):
            c0 = [cpu(p.daemon_pid) for p in (a, b)]
            r = a.run([podlib.PYTHON, sink, "get", b.addr4, "9000", str(args.mib)], timeout=300)
            c1 = [cpu(p.daemon_pid) for p in (a, b)]
            total = sum(x[0] - y[0] for x, y in zip(c1, c0))
            user = sum(x[1] - y[1] for x, y in zip(c1, c0))
            print("%s daemon_cpu_ms_per_mib=%.3f user=%.3f" % (
                r.stdout.strip() or "failed: " + r.stderr.strip()[-200:],
                total * 1000 / args.mib, user * 1000 / args.mib), flush=True)
    finally:
        if perf:
            perf.send_signal(2)
            perf.wait(30)
        cluster.close()


if __name__ == "__main__":
    main()
