#!/usr/bin/python3
"""ldmesh benchmark: a direct connection, ldmesh and HAProxy sidecars, in one
run on one machine (issue 6; how to run and read it: docs/benchmarks.md).

Two network-namespace "pods", c (client, 10.251.0.1) and s (server,
10.251.0.2), joined by a veth pair.  Topologies, all on the same pods and
the same SPIFFE certificates from `ldmeshctl ca`:

  direct          wrk/curl in c -> nginx in s, plaintext, no proxy (the floor)
  ldmesh          wrk in c with LD_PRELOAD -> ldmeshd c -> mTLS 1.3 ->
                  ldmeshd s -> nginx in s with LD_PRELOAD (as tests/e2e does)
  haproxy         wrk in c -> 127.0.0.1 HAProxy c -> mTLS 1.3 (client cert
                  verified) -> HAProxy s -> 127.0.0.1 nginx in s
  ldmesh-tel-off  ldmesh with telemetry = { http = false; access_log = "off"; }
  ldmesh-tel-on   ldmesh with telemetry = { http = true; access_log = FILE; }
                  (both "not available" when ldmeshd rejects the key)
  ldmesh-links    ldmesh with outbound.links on (issue 13): every app
                  connection an HTTP/2 stream on one pooled mTLS link

Go rows (issue 11), a static Go net/http server and client
(tests/e2e/goprogs/gonet.go, built here into build/bench/gonet, offline):

  go-direct       gonet bench in c -> gonet serve in s, plaintext, no mesh
  go-seccomp      the same two programs, each under build/ldmesh-run with
                  its pod's "ldmesh" daemon (the shim row's daemons): the
                  seccomp supervisor hands their sockets to ldmeshd, mTLS
                  1.3 between the daemons

HTTP/2 rows (issue 14): h2load (nghttp2-client) in c -> nghttpd
(nghttp2-server) in s, prior-knowledge h2c, 4 connections x 16 streams,
1 KiB: direct, ldmesh (default telemetry: http on), ldmesh-tel-off,
ldmesh-tel-on and HAProxy (mode tcp); proxy CPU per request, and each
meshed run checked against the server daemon's request_total.

Workloads: keep-alive 1 KiB (wrk, 16 connections), connection per request
(wrk -H "Connection: close"), bulk 1 MiB responses (wrk) and one long stream
(curl), idle connections held open (build/bench/idlehold).  Topologies run
interleaved, rotated each repetition.  The script reports, it never asserts
timings; it exits non-zero only when something could not run.

Output: build/bench/results.json and build/bench/results.md (printed at the
end), process logs in build/bench/logs/.

Every process it starts runs in its own session and is stopped by pid (its
process group); namespaces and temporary files it made are removed on exit.
"""
import argparse
import datetime
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TAG = "ldmb%d" % os.getpid()
C_ADDR, S_ADDR = "10.251.0.1", "10.251.0.2"
MESH_NET = "10.251.0.0/16"
TD = "cluster.local"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# ldmesh variants: (name, nginx port, idle-holder port, admin port, extra
# config, nghttpd port or None: no HTTP/2 rows for that variant)
LDMESH_VARIANTS = [
    ("ldmesh", 8081, 9001, 4191, "", 8181),
    ("ldmesh-tel-off", 8082, 9002, 4192,
     'telemetry = { http = false; access_log = "off"; };', 8182),
    ("ldmesh-tel-on", 8083, 9003, 4193,
     'telemetry = { http = true; access_log = "%(dir)s/access.log"; };', 8183),
    ("ldmesh-links", 8084, 9004, 4194, "", None),
    # Event loops (issue 17): the "ldmesh" rows run workers = 1 (every
    # variant does unless its extra config says otherwise); this one runs
    # two, beside HAProxy with nbthread 2 ("haproxy-t2").
    ("ldmesh-w2", 8085, 9005, 4195, "workers = 2;", None),
]
# Rows of keep-alive and connection per request only: two event loops in
# each proxy against one (both proxies may use every CPU of the machine).
SCALE_TOPOS = ("ldmesh-w2", "haproxy-t2")
HAP2_S_HTTP, HAP2_C_HTTP = 8444, 18081         # HAProxy nbthread 2: s (TLS) / c (plain)
# Variants whose daemons carry connections on links, and the link port
# both pods' daemons of that variant use (each variant its own: they share
# the pods' network namespaces).
LINK_PORTS = {"ldmesh-links": 15108}
DIRECT_HTTP, DIRECT_IDLE = 8080, 9000          # nginx / idlehold in s, no shim
HAP_S_HTTP, HAP_S_IDLE = 8443, 9443            # HAProxy s (TLS) in s
HAP_C_HTTP, HAP_C_IDLE = 18080, 19000          # HAProxy c (plain) on c's loopback
DIRECT_H2, HAP_S_H2, HAP_C_H2 = 8180, 8543, 18180  # nghttpd unmeshed; HAProxy s / c for it
# HTTP/2 rows (issue 14): h2load (nghttp2-client) -> nghttpd (nghttp2-server),
# prior-knowledge h2c, 1 KiB.  "ldmesh" has the default telemetry (http on,
# no access log), so ldmesh vs ldmesh-tel-off is the following alone.
H2_TOPOS = ("direct", "ldmesh", "ldmesh-tel-off", "ldmesh-tel-on", "haproxy")
H2_CLIENTS, H2_STREAMS = 4, 16                 # h2load -c (connections), -m (streams each)
H2_FOLLOWED = ("ldmesh", "ldmesh-tel-on")      # telemetry.http on: every stream counted
GO_DIRECT_HTTP, GO_MESH_HTTP = 8090, 8091      # gonet serve in s: unmeshed / ldmesh-run
GO_CONC = 16                                   # gonet bench goroutines (wrk's -c16)
GO_TOPOS = ("go-direct", "go-seccomp")
GO_SRC = os.path.join(REPO, "tests", "e2e", "goprogs", "gonet.go")


def log(msg):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


class CannotRun(Exception):
    """Something the benchmark needs is missing or failed to start."""


# --- processes -----------------------------------------------------------------

class Runner:
    """Owns every process, namespace and file the benchmark makes."""

    def __init__(self, tmp, logdir):
        self.tmp, self.logdir = tmp, logdir
        self.procs = []          # (name, Popen)
        self.namespaces = []
        self.counter = 0

    def env(self, shim_rundir=None, extra=None):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LDMESH_", "LD_PRELOAD", "PYENV", "PYTHON"))}
        env["PATH"] = PATH
        if shim_rundir:
            env["LD_PRELOAD"] = os.path.join(REPO, "build", "libldmesh.so")
            env["LDMESH_RUNTIME_DIR"] = shim_rundir
        if extra:
            env.update(extra)
        return env

    def popen(self, ns, args, name, shim_rundir=None, stdin=None):
        self.counter += 1
        base = os.path.join(self.logdir, "%02d-%s" % (self.counter, name))
        out, err = open(base + ".out", "wb"), open(base + ".err", "wb")
        cmd = (["ip", "netns", "exec", ns] if ns else []) + [str(a) for a in args]
        p = subprocess.Popen(cmd, stdout=out, stderr=err,
                             stdin=stdin if stdin is not None else subprocess.DEVNULL,
                             env=self.env(shim_rundir), start_new_session=True,
                             cwd=self.tmp)
        out.close()
        err.close()
        p.bench_name, p.out_path, p.err_path = name, base + ".out", base + ".err"
        self.procs.append(p)
        return p

    def run(self, ns, args, shim_rundir=None, timeout=120):
        """Runs a command to completion; returns (rc, stdout, stderr)."""
        cmd = (["ip", "netns", "exec", ns] if ns else []) + [str(a) for a in args]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, env=self.env(shim_rundir),
                             start_new_session=True, cwd=self.tmp)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate(timeout=10)
            return 124, out.decode(errors="replace"), "timed out after %ss\n%s" % (
                timeout, err.decode(errors="replace"))
        finally:
            killpg(p.pid, signal.SIGKILL)  # anything it left in its session
        return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    def stop(self, p, timeout=5.0):
        if p.poll() is None:
            killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                killpg(p.pid, signal.SIGKILL)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        killpg(p.pid, signal.SIGKILL)  # stragglers in its group

    def add_ns(self, ns):
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)

    def cleanup(self):
        for p in reversed(self.procs):
            try:
                self.stop(p)
            except Exception as e:  # keep tearing down
                log("stopping %s: %r" % (p.bench_name, e))
        for ns in self.namespaces:
            # Only namespaces this run created: whatever is left inside is ours.
            for _ in range(3):
                r = sh("ip", "netns", "pids", ns, check=False)
                pids = [int(x) for x in r.stdout.split()]
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.2)
            sh("ip", "netns", "del", ns, check=False)
        self.namespaces = []
        shutil.rmtree(self.tmp, ignore_errors=True)


def killpg(pid, sig):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def sh(*args, check=True, timeout=60):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout, env={"PATH": PATH})
    if check and r.returncode != 0:
        raise CannotRun("%s failed (%d): %s" % (" ".join(map(str, args)), r.returncode,
                                                r.stderr.strip()))
    return r


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_until(pred, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise CannotRun("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def listening(ns, port):
    r = sh("ip", "netns", "exec", ns, "ss", "-Hltn", "sport = :%d" % port, check=False)
    return "LISTEN" in r.stdout


def unix_ok(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


# --- /proc -----------------------------------------------------------------------

def cpu_us(pids):
    """utime+stime of pids (all threads), in microseconds."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total * 1e6 / CLK_TCK


def cpu_split_us(pid):
    """(utime, stime) of pid (all threads), in microseconds."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) * 1e6 / CLK_TCK, int(fields[12]) * 1e6 / CLK_TCK
    except (FileNotFoundError, ProcessLookupError):
        return 0.0, 0.0


def rss_bytes(pid):
    for line in read("/proc/%d/status" % pid).splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


def rss_detail(pid):
    """VmRSS split: RssAnon (the process's own heap and stacks), RssFile
    (mapped files, mostly shared libraries, shared with other processes)."""
    out = {}
    for line in read("/proc/%d/status" % pid).splitlines():
        k = line.split(":")[0]
        if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            out[k] = int(line.split()[1]) * 1024
    return out


# The parts of a run, for --only, and the workloads of its load part, for
# --workloads.
PARTS = ("load", "idle", "limits")
WORKLOADS = ("ka", "paced", "close", "bulk", "stream", "same-pod", "go", "h2")

# When the RSS after an idle spike is read: this long after the proxies
# closed the connections (issue 17: back near idle within 10 s).
AFTER_CLOSE_S = 10.0


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except FileNotFoundError:
        return 0


# --- parsing ---------------------------------------------------------------------

_UNITS_T = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
_UNITS_B = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}


def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", v)
    return float(m.group(1)) * _UNITS_T[m.group(2)] if m else None


def parse_wrk(text):
    out = {}
    for pct in ("50", "75", "90", "99"):
        m = re.search(r"^\s+%s%%\s+(\S+)" % pct, text, re.M)
        if m:
            out["p%s_ms" % pct] = ms(m.group(1))
    m = re.search(r"^\s+(\d+) requests in ([\d.]+)(\w+), ([\d.]+)(\w+) read", text, re.M)
    if m:
        out["requests"] = int(m.group(1))
        out["seconds"] = float(m.group(2)) * _UNITS_T[m.group(3)] / 1e3
        out["bytes"] = float(m.group(4)) * _UNITS_B[m.group(5)]
        out["rps"] = out["requests"] / out["seconds"]
        out["mb_per_s"] = out["bytes"] / out["seconds"] / 1e6
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non2xx"] = int(m.group(1)) if m else 0
    return out


def parse_h2load(text):
    """h2load's summary: "finished in 1.2s, 16260.16 req/s, 17.96MB/s", the
    requests line, the 2xx count and the mean of "time for request"."""
    out = {}
    m = re.search(r"^finished in (\S+), ([\d.]+) req/s", text, re.M)
    if m:
        if ms(m.group(1)) is not None:
            out["seconds"] = ms(m.group(1)) / 1e3
        out["rps"] = float(m.group(2))
    m = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text, re.M)
    if m:
        for i, key in enumerate(("total", "started", "done", "succeeded", "failed",
                                 "errored", "timeout")):
            out[key] = int(m.group(i + 1))
        out["requests"] = out["done"]
    m = re.search(r"^status codes: (\d+) 2xx", text, re.M)
    if m:
        out["status_2xx"] = int(m.group(1))
    m = re.search(r"^time for request:\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    if m:
        out["mean_ms"] = ms(m.group(3))
    return out


_SERIES = re.compile(r'^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)\s*$')


def parse_prom(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SERIES.match(line)
        if m:
            labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or "")))
            try:
                out[(m.group(1), labels)] = float(m.group(3))
            except ValueError:
                pass
    return out


def prom_sum(m, name, **want):
    w = set((k, str(v)) for k, v in want.items())
    return sum(v for (n, l), v in m.items() if n == name and w <= set(l))


# --- statistics ------------------------------------------------------------------

def summarize(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


# --- the bench ------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.quick = args.quick
        self.reps = args.reps or (1 if self.quick else 3)
        self.duration = args.duration or (3 if self.quick else 10)
        self.idle_sizes = [1000] if self.quick else [1000, 10000]
        self.nofile = None
        self.post_load_rss = {}
        self.idle_reps = 1 if self.quick else 3
        # Parts of the run (--only): load (wrk, curl, h2load, Go), idle,
        # limits (what this machine can do at most, for the bulk rows).
        self.parts = set((args.only or ",".join(PARTS)).split(","))
        # Workloads of the load part (--workloads); None: all of them.
        self.workloads = args.workloads.split(",") if args.workloads else None
        unknown = set(self.workloads or ()) - set(WORKLOADS)
        if unknown:
            raise SystemExit("bench.py: --workloads takes %s, not %s" % (
                ",".join(WORKLOADS), ",".join(sorted(unknown))))
        unknown = self.parts - set(PARTS)
        if unknown:
            raise SystemExit("bench.py: --only takes %s, not %s" % (
                ",".join(PARTS), ",".join(sorted(unknown))))
        self.stream_mib = 128 if self.quick else 512
        self.hap_threads = int(os.environ.get("BENCH_HAPROXY_THREADS", "1"))
        self.wrk_threads = 2
        self.outdir = os.path.abspath(args.out)
        self.logdir = os.path.join(self.outdir, "logs")
        shutil.rmtree(self.logdir, ignore_errors=True)
        os.makedirs(self.logdir, exist_ok=True)
        # Short: runtime dirs hold Unix sockets (108-byte limit).
        self.tmp = tempfile.mkdtemp(prefix=TAG + ".", dir="/tmp")
        self.r = Runner(self.tmp, self.logdir)
        self.ns_c, self.ns_s = TAG + "c", TAG + "s"
        self.errors = []        # things that could not run (exit status 1)
        self.notes = []
        self.runs = []          # raw per-run records
        self.idle = []          # raw idle records
        self.available = {}     # topology -> True or "not available: why"
        self.daemons = {}       # variant -> {"c": Popen, "s": Popen, ...}
        self.hap = {}
        self.rss_start = {}
        self.rss_start_detail = {}
        self.limits = {}        # measure_limits()
        self.tls_info = {}
        self.gonet = None       # build/bench/gonet once built
        self.go_servers = {}    # go topology -> gonet serve process (its launcher)
        self.h2_available = {}  # HTTP/2 topology -> True or "not available: why"
        # h2load -n per run: h2c multiplexing runs at 45-110k req/s meshed
        # here, and proxy CPU is read in clock ticks (10 ms): 100,000
        # requests keep a tick under 1 % of the daemons' CPU.
        self.h2_requests = 100000 if self.quick else 300000

    def plan_idle(self):
        """Each proxy process holds two fds per proxied connection (app side
        and network side).  Where RLIMIT_NOFILE cannot be raised (no
        CAP_SYS_RESOURCE, e.g. in a container) the largest size that fits
        stands in for 10,000, and the report says so."""
        fit = (self.nofile - 400) // 2 // 100 * 100
        sizes = []
        for n in self.idle_sizes:
            if n > fit:
                self.notes.append(
                    "%d idle connections need about %d fds per proxy process, but "
                    "RLIMIT_NOFILE is %d here and cannot be raised (no CAP_SYS_RESOURCE): "
                    "measured %d instead" % (n, 2 * n + 50, self.nofile, fit))
                log(self.notes[-1])
                n = fit
            sizes.append(n)
        self.idle_sizes = sizes
        self.hap_maxconn = max(1000, min(60000, (self.nofile - 300) // 2))

    # --- setup ------------------------------------------------------------------
    def check_tools(self):
        need = {"wrk": "/usr/bin/wrk", "haproxy": "/usr/sbin/haproxy",
                "nginx": "/usr/sbin/nginx", "curl": "/usr/bin/curl", "ip": None,
                "ss": None, "openssl": None}
        for name, path in need.items():
            p = path if path and os.path.exists(path) else shutil.which(name, path=PATH)
            if not p:
                raise CannotRun("%s is not installed (Debian package: %s)" % (
                    name, {"nginx": "nginx-light", "ip": "iproute2", "ss": "iproute2"}.get(
                        name, name)))
        for f in ("ldmeshd", "ldmeshctl", "libldmesh.so", os.path.join("bench", "idlehold"),
                  os.path.join("bench", "limits")):
            if not os.path.exists(os.path.join(REPO, "build", f)):
                raise CannotRun("build/%s is missing (make all; ci/bench.sh builds idlehold "
                                "and limits)" % f)
        if os.geteuid() != 0:
            raise CannotRun("network namespaces need root")

    def setup_net(self):
        for ns in (self.ns_c, self.ns_s):
            self.r.add_ns(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", "veth0", "netns", self.ns_c, "type", "veth",
           "peer", "name", "veth0", "netns", self.ns_s)
        for ns, a in ((self.ns_c, C_ADDR), (self.ns_s, S_ADDR)):
            sh("ip", "-n", ns, "addr", "add", a + "/24", "dev", "veth0")
            sh("ip", "-n", ns, "link", "set", "veth0", "up")
            # Per-namespace: connection-per-request opens tens of thousands
            # of connections; these affect only the namespaces made here.
            # Ephemeral ports above every fixed port used here (all < 20000).
            for k, v in (("net.ipv4.ip_local_port_range", "20000 65000"),
                         ("net.ipv4.tcp_tw_reuse", "1"),
                         ("net.core.somaxconn", "8192"),
                         ("net.ipv4.tcp_max_syn_backlog", "8192")):
                sh("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "%s=%s" % (k, v),
                   check=False)

    def setup_certs(self):
        ctl = os.path.join(REPO, "build", "ldmeshctl")
        ca = os.path.join(self.tmp, "ca")
        sh(ctl, "ca", "init", "--dir", ca, "--trust-domain", TD)
        self.ids = {}
        for pod, sa in (("c", "client"), ("s", "server")):
            out = os.path.join(self.tmp, "id-" + pod)
            sh(ctl, "ca", "issue", "--dir", ca, "--id",
               "spiffe://%s/ns/bench/sa/%s" % (TD, sa), "--out", out)
            ident = {"cert": os.path.join(out, "svid.pem"),
                     "key": os.path.join(out, "svid-key.pem"),
                     "bundle": os.path.join(out, "bundle.pem")}
            # HAProxy wants certificate and key in one file: the same SVID.
            ident["pem"] = os.path.join(out, "haproxy.pem")
            with open(ident["pem"], "w") as f:
                f.write(read(ident["cert"]) + read(ident["key"]))
            os.chmod(ident["pem"], 0o600)
            self.ids[pod] = ident

    def setup_www(self):
        # wrk's delay() hook: each of 16 connections waits 16 ms between
        # requests, about 1,000 req/s in all (the rate Istio quotes latency at).
        self.pace_lua = os.path.join(self.tmp, "pace.lua")
        with open(self.pace_lua, "w") as f:
            f.write("function delay()\n  return 16\nend\n")
        self.www = os.path.join(self.tmp, "www")
        os.makedirs(self.www)
        with open(os.path.join(self.www, "1k.bin"), "wb") as f:
            f.write(os.urandom(1024))
        with open(os.path.join(self.www, "1m.bin"), "wb") as f:
            f.write(os.urandom(1024 * 1024))
        # The stream: page-cache sized, random bytes repeated (TLS does not
        # compress, so content does not matter, but keep it non-zero).
        chunk = os.urandom(4 * 1024 * 1024)
        with open(os.path.join(self.www, "stream.bin"), "wb") as f:
            for _ in range(self.stream_mib // 4):
                f.write(chunk)

    def nginx(self, label, addr, port, shim_rundir=None):
        d = os.path.join(self.tmp, "nginx-" + label)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 65536;
user root root;
pid {d}/nginx.pid;
error_log {d}/error.log error;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {{
        listen {addr}:{port} backlog=8192;
        root {www};
    }}
}}
""".format(d=d, addr=addr, port=port, www=self.www))
        p = self.r.popen(self.ns_s, ["/usr/sbin/nginx", "-p", d, "-e", os.path.join(d, "error.log"),
                                     "-c", conf], "nginx-" + label, shim_rundir=shim_rundir)
        wait_until(lambda: p.poll() is not None or listening(self.ns_s, port), 20,
                   "nginx-%s on port %d" % (label, port))
        if p.poll() is not None:
            raise CannotRun("nginx-%s exited: %s" % (label, read(p.err_path)[-2000:]))
        return p

    def idle_server(self, label, addr, port, shim_rundir=None):
        p = self.r.popen(self.ns_s, [os.path.join(REPO, "build", "bench", "idlehold"),
                                     "serve", addr, str(port)], "idlehold-" + label,
                         shim_rundir=shim_rundir)
        wait_until(lambda: p.poll() is not None or listening(self.ns_s, port), 20,
                   "idlehold-%s on port %d" % (label, port))
        if p.poll() is not None:
            raise CannotRun("idlehold-%s exited: %s" % (label, read(p.err_path)[-2000:]))
        return p

    def ldmeshd(self, variant, pod, admin_port, extra, link_port=None):
        ns = self.ns_c if pod == "c" else self.ns_s
        d = os.path.join(self.tmp, "%s-%s" % (variant, pod))
        rundir = os.path.join(d, "run")
        os.makedirs(rundir, exist_ok=True)
        ident = self.ids[pod]
        conf = os.path.join(d, "ldmesh.conf")
        with open(conf, "w") as f:
            f.write('runtime_dir = "%s";\n' % rundir +
                    'admin_addr = "127.0.0.1:%d";\n' % admin_port +
                    'trust_domain = "%s";\n' % TD +
                    'identity = { cert = "%s"; key = "%s"; bundle = "%s"; };\n' % (
                        ident["cert"], ident["key"], ident["bundle"]) +
                    'inbound = { mtls = "strict"; link_port = %d; };\n' % (link_port or 0) +
                    'outbound = { mesh_networks = [ "%s" ]; links = { enabled = %s; }; };\n' % (
                        MESH_NET, "true" if link_port else "false") +
                    'drain_timeout_ms = 1000;\n' +
                    'log_level = "warn";\n' +
                    ('' if 'workers' in extra else 'workers = 1;\n') +
                    (extra % {"dir": d}) + "\n")
        p = self.r.popen(ns, [os.path.join(REPO, "build", "ldmeshd"), "-c", conf,
                              "--runtime-dir", rundir], "ldmeshd-%s-%s" % (variant, pod))
        hs = os.path.join(rundir, "handoff.sock")
        wait_until(lambda: p.poll() is not None or unix_ok(hs), 20,
                   "ldmeshd %s/%s to accept on %s" % (variant, pod, hs))
        p.rundir, p.admin_port, p.ns, p.dir = rundir, admin_port, ns, d
        return p

    def haproxy(self, pod, label="", idle_only=None, threads=None, http_only=None):
        """HAProxy sidecar in pod; idle_only=(client port, server port) makes
        a fresh instance with only the idle-connection proxy on those ports,
        http_only=(client port, server port) one with only the HTTP proxy
        (to nginx), with nbthread threads (default BENCH_HAPROXY_THREADS)."""
        ns = self.ns_c if pod == "c" else self.ns_s
        ident = self.ids[pod]
        d = os.path.join(self.tmp, "haproxy%s-%s" % (label, pod))
        os.makedirs(d, exist_ok=True)
        stats = os.path.join(d, "stats.sock")
        # TLS 1.3 only, the same suites and groups ldmeshd offers (OpenSSL's
        # TLS 1.3 defaults, X25519 first), the same SVID files.  Mode tcp:
        # one upstream TLS connection per client connection, as ldmesh does.
        tls = ("ssl crt %s ca-file %s verify required ssl-min-ver TLSv1.3" % (
            ident["pem"], ident["bundle"]))
        if http_only and pod == "c":
            proxies = """
listen http_out
    bind 127.0.0.1:{hc}
    server s {s}:{hs} {tls}
""".format(hc=http_only[0], s=S_ADDR, hs=http_only[1], tls=tls)
        elif http_only:
            proxies = """
listen http_in
    bind {s}:{hs} {tls}
    server app 127.0.0.1:{dh}
""".format(s=S_ADDR, hs=http_only[1], dh=DIRECT_HTTP, tls=tls)
        elif idle_only and pod == "c":
            proxies = """
listen idle_out
    bind 127.0.0.1:{ic}
    server s {s}:{is_} {tls}
""".format(ic=idle_only[0], s=S_ADDR, is_=idle_only[1], tls=tls)
        elif idle_only:
            proxies = """
listen idle_in
    bind {s}:{is_} {tls}
    server app 127.0.0.1:{di}
""".format(s=S_ADDR, is_=idle_only[1], di=DIRECT_IDLE, tls=tls)
        elif pod == "c":
            proxies = """
listen http_out
    bind 127.0.0.1:{hc}
    server s {s}:{hs} {tls}
listen idle_out
    bind 127.0.0.1:{ic}
    server s {s}:{is_} {tls}
listen h2_out
    bind 127.0.0.1:{h2c}
    server s {s}:{h2s} {tls}
""".format(hc=HAP_C_HTTP, ic=HAP_C_IDLE, s=S_ADDR, hs=HAP_S_HTTP, is_=HAP_S_IDLE, tls=tls,
           h2c=HAP_C_H2, h2s=HAP_S_H2)
        else:
            proxies = """
listen http_in
    bind {s}:{hs} {tls}
    server app 127.0.0.1:{dh}
listen idle_in
    bind {s}:{is_} {tls}
    server app 127.0.0.1:{di}
listen h2_in
    bind {s}:{h2s} {tls}
    server app 127.0.0.1:{dh2}
""".format(s=S_ADDR, hs=HAP_S_HTTP, is_=HAP_S_IDLE, dh=DIRECT_HTTP, di=DIRECT_IDLE, tls=tls,
           h2s=HAP_S_H2, dh2=DIRECT_H2)
        conf = os.path.join(d, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write("""global
    nbthread {nt}
    maxconn {mc}
    stats socket {stats} mode 600 level admin
    ssl-default-bind-ciphersuites TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256
    ssl-default-server-ciphersuites TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256
    ssl-default-bind-curves X25519:P-256
    ssl-default-bind-options ssl-min-ver TLSv1.3
    ssl-default-server-options ssl-min-ver TLSv1.3
defaults
    mode tcp
    maxconn {mc}
    timeout connect 5s
    timeout client 1h
    timeout server 1h
{proxies}""".format(nt=threads or self.hap_threads, stats=stats, proxies=proxies,
                    mc=self.hap_maxconn))
        rc, out, err = self.r.run(None, ["/usr/sbin/haproxy", "-c", "-f", conf], timeout=30)
        if rc != 0:
            raise CannotRun("haproxy -c %s: %s %s" % (conf, out, err))
        p = self.r.popen(ns, ["/usr/sbin/haproxy", "-db", "-f", conf],
                         "haproxy%s-%s" % (label, pod))
        ports = [HAP_C_HTTP, HAP_C_IDLE, HAP_C_H2] if pod == "c" else \
            [HAP_S_HTTP, HAP_S_IDLE, HAP_S_H2]
        if idle_only:
            ports = [idle_only[0] if pod == "c" else idle_only[1]]
        if http_only:
            ports = [http_only[0] if pod == "c" else http_only[1]]
        wait_until(lambda: p.poll() is not None or all(listening(ns, q) for q in ports), 20,
                   "haproxy-%s to listen" % pod)
        if p.poll() is not None:
            raise CannotRun("haproxy-%s exited: %s" % (pod, read(p.err_path)[-2000:]))
        p.stats = stats
        return p

    def start(self):
        self.setup_net()
        self.setup_certs()
        self.setup_www()
        self.nginx("direct", "0.0.0.0", DIRECT_HTTP)
        self.idle_server("direct", "0.0.0.0", DIRECT_IDLE)
        for variant, hport, iport, aport, extra, _h2port in LDMESH_VARIANTS:
            lp = LINK_PORTS.get(variant)
            dc = self.ldmeshd(variant, "c", aport, extra, link_port=lp)
            if dc.poll() is not None:
                err = read(dc.err_path)
                if variant != "ldmesh" and "unknown key telemetry" in err:
                    line = next((l for l in err.splitlines() if "unknown key" in l), err[-300:])
                    self.available[variant] = ("not available: this ldmeshd rejects the "
                                               "telemetry block (%s)" % line.strip())
                    log("%s: %s" % (variant, self.available[variant]))
                    continue
                raise CannotRun("ldmeshd %s/c exited: %s" % (variant, err[-2000:]))
            ds = self.ldmeshd(variant, "s", aport, extra, link_port=lp)
            if ds.poll() is not None:
                raise CannotRun("ldmeshd %s/s exited: %s" % (variant, read(ds.err_path)[-2000:]))
            time.sleep(0.3)
            self.rss_start[variant] = {"c": rss_bytes(dc.pid), "s": rss_bytes(ds.pid)}
            self.rss_start_detail[variant] = {"c": rss_detail(dc.pid), "s": rss_detail(ds.pid)}
            self.daemons[variant] = {"c": dc, "s": ds}
            self.nginx(variant, S_ADDR, hport, shim_rundir=ds.rundir)
            self.idle_server(variant, S_ADDR, iport, shim_rundir=ds.rundir)
            self.available[variant] = True
        self.hap = {"c": self.haproxy("c"), "s": self.haproxy("s")}
        time.sleep(0.3)
        self.rss_start["haproxy"] = {"c": rss_bytes(self.hap["c"].pid),
                                     "s": rss_bytes(self.hap["s"].pid)}
        self.rss_start_detail["haproxy"] = {"c": rss_detail(self.hap["c"].pid),
                                            "s": rss_detail(self.hap["s"].pid)}
        self.available["direct"] = True
        self.available["haproxy"] = True
        self.hap2 = {pod: self.haproxy(pod, "-t2", threads=2,
                                       http_only=(HAP2_C_HTTP, HAP2_S_HTTP))
                     for pod in ("c", "s")}
        self.available["haproxy-t2"] = True
        self.start_go()
        self.start_h2()

    # --- topology helpers -------------------------------------------------------
    def topologies(self):
        return ["direct", "ldmesh", "haproxy", "ldmesh-tel-off", "ldmesh-tel-on",
                "ldmesh-links", "ldmesh-w2", "haproxy-t2"]

    def url(self, topo, path):
        if topo == "direct":
            return "http://%s:%d%s" % (S_ADDR, DIRECT_HTTP, path)
        if topo == "haproxy":
            return "http://127.0.0.1:%d%s" % (HAP_C_HTTP, path)
        if topo == "haproxy-t2":
            return "http://127.0.0.1:%d%s" % (HAP2_C_HTTP, path)
        port = next(v[1] for v in LDMESH_VARIANTS if v[0] == topo)
        return "http://%s:%d%s" % (S_ADDR, port, path)

    def idle_target(self, topo):
        if topo == "direct":
            return S_ADDR, DIRECT_IDLE
        if topo == "haproxy":
            return "127.0.0.1", HAP_C_IDLE
        return S_ADDR, next(v[2] for v in LDMESH_VARIANTS if v[0] == topo)

    def shim(self, topo):
        return self.daemons[topo]["c"].rundir if topo in self.daemons else None

    def proxy_pids(self, topo):
        if topo == "haproxy":
            return {"c": self.hap["c"].pid, "s": self.hap["s"].pid}
        if topo == "haproxy-t2":
            return {"c": self.hap2["c"].pid, "s": self.hap2["s"].pid}
        if topo in self.daemons:
            return {k: p.pid for k, p in self.daemons[topo].items()}
        return {}

    def scrape(self, topo, pod):
        return self.scrape_daemon(self.daemons[topo][pod])

    def scrape_daemon(self, d):
        rc, out, err = self.r.run(d.ns, ["curl", "-sS", "--max-time", "5",
                                         "http://127.0.0.1:%d/metrics" % d.admin_port],
                                  timeout=15)
        return parse_prom(out) if rc == 0 else {}

    def hap_stat(self, pod):
        """Sum of the frontends' ssl_sess / ssl_reused_sess of HAProxy pod."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(self.hap[pod].stats)
            s.sendall(b"show stat typed\n")
            data = b""
            while True:
                x = s.recv(65536)
                if not x:
                    break
                data += x
        except OSError:
            return {}
        finally:
            s.close()
        out = {"ssl_sess": 0, "ssl_reused_sess": 0}
        for line in data.decode(errors="replace").splitlines():
            m = re.match(r"^F\.\d+\.\d+\.\d+\.(ssl_sess|ssl_reused_sess)\.\d+:\w+:\w+:(\d+)", line)
            if m:
                out[m.group(1)] += int(m.group(2))
        return out

    def handshakes(self, topo):
        """(full, resumed) handshakes counted by the server side so far."""
        if topo == "haproxy":
            st = self.hap_stat("s")
            if not st:
                return None
            # ssl_sess counts full handshakes only, ssl_reused_sess resumed ones.
            return st["ssl_sess"], st["ssl_reused_sess"]
        if topo in self.daemons:
            m = self.scrape(topo, "s")
            if not m:
                return None
            return (prom_sum(m, "ldmesh_tls_handshakes_total", direction="inbound",
                             resumed="false"),
                    prom_sum(m, "ldmesh_tls_handshakes_total", direction="inbound",
                             resumed="true"))
        return None

    # --- workloads ---------------------------------------------------------------
    def problem(self, rec, topo, workload, rep, what):
        """A run that could not measure: recorded, reported, never hidden."""
        rec["problem"] = what
        self.errors.append("%s %s rep %d: %s" % (topo, workload, rep, what))
        log("  PROBLEM %s" % what)

    def wrk(self, topo, workload, rep, duration, record=True, local_url=None):
        conns = 4 if workload == "bulk" else 16
        path = "/1m.bin" if workload == "bulk" else "/1k.bin"
        args = ["/usr/bin/wrk", "-t%d" % self.wrk_threads, "-c%d" % conns, "-d%ds" % duration,
                "--latency", "--timeout", "10s"]
        if workload == "close":
            args += ["-H", "Connection: close"]
        if workload == "paced":
            args += ["-s", self.pace_lua]
        # local_url: from inside the server pod, unmeshed wrk (same-pod rows)
        args.append(local_url + path if local_url else self.url(topo, path))
        pids = self.proxy_pids(topo)
        if topo == "same-pod-ldmesh":
            pids = {"s": self.daemons["ldmesh"]["s"].pid}
        hs0 = self.handshakes(topo)
        c0 = cpu_us(pids.values())
        rc, out, err = self.r.run(self.ns_s if local_url else self.ns_c, args,
                                  shim_rundir=None if local_url else self.shim(topo),
                                  timeout=duration + 60)
        c1 = cpu_us(pids.values())
        hs1 = self.handshakes(topo)
        res = parse_wrk(out)
        rec = {"topology": topo, "workload": workload, "rep": rep, "duration_s": duration,
               "connections": conns, "rc": rc}
        rec.update(res)
        if pids:
            rec["proxy_cpu_us"] = c1 - c0
            if res.get("requests"):
                rec["proxy_cpu_us_per_req"] = (c1 - c0) / res["requests"]
                if workload == "bulk" and res.get("bytes"):
                    rec["proxy_cpu_us_per_mib"] = (c1 - c0) / (res["bytes"] / 2 ** 20)
        if hs0 is not None and hs1 is not None and res.get("seconds"):
            rec["handshakes_full"] = hs1[0] - hs0[0]
            rec["handshakes_resumed"] = hs1[1] - hs0[1]
            rec["handshakes_per_s"] = (rec["handshakes_full"] + rec["handshakes_resumed"]) / \
                res["seconds"]
            rec["handshakes_full_per_s"] = rec["handshakes_full"] / res["seconds"]
            rec["handshakes_resumed_per_s"] = rec["handshakes_resumed"] / res["seconds"]
        problem = None
        if rc != 0 or "rps" not in res:
            problem = "wrk rc=%d: %s %s" % (rc, out[-500:], err[-500:])
        elif res["requests"] and (res["errors"] + res["non2xx"]) > 0.01 * res["requests"]:
            problem = "wrk: %d socket errors, %d non-2xx in %d requests" % (
                res["errors"], res["non2xx"], res["requests"])
        if problem:
            self.problem(rec, topo, workload, rep, problem)
        if record:
            self.runs.append(rec)
            log("  %-15s %-6s rep %d: %8.0f req/s p50 %.3f ms p99 %.3f ms %.1f MB/s cpu %s us/req%s"
                % (topo, workload, rep, res.get("rps", 0), res.get("p50_ms") or 0,
                   res.get("p99_ms") or 0, res.get("mb_per_s", 0),
                   "%.1f" % rec["proxy_cpu_us_per_req"] if "proxy_cpu_us_per_req" in rec
                   else "-",
                   " hs full/resumed %d/%d" % (rec["handshakes_full"], rec["handshakes_resumed"])
                   if "handshakes_full" in rec else ""))
        return rec

    def stream(self, topo, rep):
        pids = self.proxy_pids(topo)
        c0 = cpu_us(pids.values())
        rc, out, err = self.r.run(self.ns_c, [
            "curl", "-sS", "--max-time", "300", "-o", "/dev/null", "-w",
            "%{http_code} %{size_download} %{time_total} %{speed_download}",
            self.url(topo, "/stream.bin")], shim_rundir=self.shim(topo), timeout=320)
        c1 = cpu_us(pids.values())
        rec = {"topology": topo, "workload": "stream", "rep": rep, "rc": rc}
        parts = out.split()
        if rc == 0 and len(parts) == 4 and parts[0] == "200" and \
                int(float(parts[1])) == self.stream_mib * 2 ** 20:
            rec["bytes"] = int(float(parts[1]))
            rec["seconds"] = float(parts[2])
            rec["mb_per_s"] = rec["bytes"] / rec["seconds"] / 1e6
            if pids:
                rec["proxy_cpu_us"] = c1 - c0
                rec["proxy_cpu_us_per_mib"] = (c1 - c0) / (rec["bytes"] / 2 ** 20)
            log("  %-15s stream rep %d: %.1f MB/s" % (topo, rep, rec["mb_per_s"]))
        else:
            rec["problem"] = "curl rc=%d out=%r err=%r" % (rc, out, err[-300:])
            self.errors.append("%s stream rep %d: %s" % (topo, rep, rec["problem"]))
            log("  PROBLEM %s" % rec["problem"])
        self.runs.append(rec)

    def fresh_proxies(self, topo, k):
        """New proxy processes for one idle measurement: a process keeps the
        memory it once used (malloc arenas, pools), so only a fresh one
        shows what N idle connections cost.  Returns (pids, target addr,
        port, shim runtime dir, processes to stop afterwards)."""
        if topo == "direct":
            return {}, S_ADDR, DIRECT_IDLE, None, []
        if topo == "haproxy":
            cport, sport = 19100 + k, 9500 + k
            hs = self.haproxy("s", "-idle%d" % k, (cport, sport))
            hc = self.haproxy("c", "-idle%d" % k, (cport, sport))
            time.sleep(0.3)
            return {"c": hc.pid, "s": hs.pid}, "127.0.0.1", cport, None, [hc, hs]
        variant, port = "idle%d" % k, 9100 + k
        lp = 15200 + k if topo == "ldmesh-links" else None
        dc = self.ldmeshd(variant, "c", 4300 + k, "", link_port=lp)
        ds = self.ldmeshd(variant, "s", 4300 + k, "", link_port=lp)
        for p in (dc, ds):
            if p.poll() is not None:
                raise CannotRun("ldmeshd %s exited: %s" % (variant, read(p.err_path)[-1000:]))
        srv = self.idle_server(variant, S_ADDR, port, shim_rundir=ds.rundir)
        time.sleep(0.3)
        self.idle_daemons = {"c": dc, "s": ds}
        return {"c": dc.pid, "s": ds.pid}, S_ADDR, port, dc.rundir, [srv, dc, ds]

    def settle(self, topo, rec):
        """Lets the proxies settle before the held RSS is read: deferred
        frees and timers, 1 s.  An ldmesh connection counts as idle once it
        has been quiet for 2 s and given its buffers back (parking,
        docs/architecture.md), so for ldmesh wait until both daemons count
        every held connection idle, then one sweep more (the heap is trimmed
        after a batch parks).  How long that took goes into the record."""
        t0 = time.monotonic()
        time.sleep(1.0)
        if not topo.startswith("ldmesh"):
            return

        def all_idle():
            return all(prom_sum(self.scrape_daemon(d), "ldmesh_connections_idle") >= rec["held"]
                       for d in self.idle_daemons.values())
        try:
            wait_until(all_idle, 15, "every held connection idle in both daemons",
                       interval=0.25)
            time.sleep(1.2)
        except CannotRun as e:
            self.notes.append("%s idle %d: %s" % (topo, rec["n"], e))
        rec["settle_ms"] = int((time.monotonic() - t0) * 1000)

    def idle_run(self, topo, n, rep):
        self.idle_k = getattr(self, "idle_k", 0) + 1
        try:
            pids, addr, port, shim, stop = self.fresh_proxies(topo, self.idle_k)
        except CannotRun as e:
            self.errors.append("%s idle %d rep %d: %s" % (topo, n, rep, e))
            log("  PROBLEM %s" % e)
            return
        fd0 = {k: fd_count(p) for k, p in pids.items()}
        before = {k: rss_bytes(p) for k, p in pids.items()}
        holder = self.r.popen(self.ns_c, [os.path.join(REPO, "build", "bench", "idlehold"),
                                          "hold", addr, port, n], "hold-%s-%d" % (topo, n),
                              shim_rundir=shim, stdin=subprocess.PIPE)
        rec = {"topology": topo, "n": n, "rep": rep, "rss_before": before,
               "rss_before_detail": {k: rss_detail(p) for k, p in pids.items()}}
        try:
            m = wait_until(lambda: re.search(r"held=(\d+) failed=(\d+) first_error=(.*?) "
                                             r"elapsed_ms=(\d+)", read(holder.out_path))
                           or holder.poll() is not None, 320, "idlehold to open %d" % n)
            if m is True or not hasattr(m, "group"):
                raise CannotRun("idlehold exited: %s" % read(holder.err_path)[-500:])
            rec["held"], rec["failed"] = int(m.group(1)), int(m.group(2))
            rec["first_error"], rec["setup_ms"] = m.group(3), int(m.group(4))
            self.settle(topo, rec)
            rec["rss_held"] = {k: rss_bytes(p) for k, p in pids.items()}
            rec["rss_held_detail"] = {k: rss_detail(p) for k, p in pids.items()}
            rec["bytes_per_conn"] = {
                k: (rec["rss_held"][k] - before[k]) / rec["held"] if rec["held"] else None
                for k in pids}
            # The same, split: the process's own memory and mapped files.
            for part, key in (("anon", "RssAnon"), ("file", "RssFile")):
                rec["bytes_per_conn_" + part] = {
                    k: (rec["rss_held_detail"][k].get(key, 0) -
                        rec["rss_before_detail"][k].get(key, 0)) / rec["held"]
                    if rec["held"] else None for k in pids}
            if rec["failed"]:
                rec["problem"] = "%d of %d connections failed (%s)" % (
                    rec["failed"], n, rec["first_error"])
                self.errors.append("%s idle %d rep %d: %s" % (topo, n, rep, rec["problem"]))
            log("  %-15s idle %5d rep %d: held %d in %d ms; %s" % (
                topo, n, rep, rec["held"], rec["setup_ms"], ", ".join(
                    "%s RSS %.1f->%.1f MiB (%.0f B/conn)" % (
                        k, before[k] / 2 ** 20, rec["rss_held"][k] / 2 ** 20,
                        rec["bytes_per_conn"][k] or 0) for k in sorted(pids))))
        except CannotRun as e:
            rec["problem"] = str(e)
            self.errors.append("%s idle %d rep %d: %s" % (topo, n, rep, e))
            log("  PROBLEM %s" % e)
        finally:
            try:
                holder.stdin.close()
            except OSError:
                pass
            self.r.stop(holder, timeout=10)
            # Wait for the proxies to let go of the connections.
            try:
                wait_until(lambda: all(fd_count(p) <= fd0[k] + 16 for k, p in pids.items()),
                           60, "%s to close %d idle connections" % (topo, n), interval=0.2)
            except CannotRun as e:
                self.notes.append(str(e))
            closed = time.monotonic()
            rec["rss_after_close"] = {k: rss_bytes(p) for k, p in pids.items()}
            # Memory after a spike: what each process still holds 10 s after
            # the connections closed (the target: <= 2x its RSS before).
            if pids and "rss_held" in rec:
                time.sleep(max(0.0, closed + AFTER_CLOSE_S - time.monotonic()))
                rec["rss_after_close_10s"] = {k: rss_bytes(p) for k, p in pids.items()}
                rec["rss_after_close_10s_detail"] = {k: rss_detail(p) for k, p in pids.items()}
                rec["after_close_10s_ratio"] = {
                    k: rec["rss_after_close_10s"][k] / before[k] if before[k] else None
                    for k in pids}
                log("  %-15s idle %5d rep %d: 10 s after close %s" % (
                    topo, n, rep, ", ".join("%s RSS %.1f MiB (%.2fx before)" % (
                        k, rec["rss_after_close_10s"][k] / 2 ** 20,
                        rec["after_close_10s_ratio"][k] or 0) for k in sorted(pids))))
            for p in stop:
                self.r.stop(p, timeout=5)
        self.idle.append(rec)

    # --- checks -------------------------------------------------------------------
    def verify_paths(self):
        """Proves each topology goes where it says: ldmesh through both daemons
        with TLS, HAProxy with TLS; records the negotiated TLS parameters."""
        for topo in self.topologies():
            if self.available.get(topo) is not True:
                continue
            hs0 = self.handshakes(topo)
            rc, out, err = self.r.run(self.ns_c, ["curl", "-sS", "--max-time", "10", "-o",
                                                  "/dev/null", "-w", "%{http_code}",
                                                  self.url(topo, "/1k.bin")],
                                      shim_rundir=self.shim(topo), timeout=30)
            if rc != 0 or out.strip() != "200":
                raise CannotRun("%s: a plain GET failed: rc %d %s %s" % (topo, rc, out, err))
            if topo != "direct" and hs0 is not None:
                hs1 = wait_until(lambda: (lambda h: h if h and sum(h) > sum(hs0) else None)(
                    self.handshakes(topo)), 5, "%s to count a TLS handshake" % topo)
                log("path %s: GET ok, server side counted TLS handshakes %s -> %s" % (
                    topo, hs0, hs1))
        # The TLS parameters each server side negotiates with the same SVID.
        cid = self.ids["c"]
        for topo, port in (("ldmesh", LDMESH_VARIANTS[0][1]), ("haproxy", HAP_S_HTTP)):
            rc, out, err = self.r.run(self.ns_c, [
                "openssl", "s_client", "-connect", "%s:%d" % (S_ADDR, port), "-tls1_3",
                "-cert", cid["cert"], "-key", cid["key"], "-CAfile", cid["bundle"], "-brief"],
                timeout=20)
            text = out + err
            info = {}
            for key, rx in (("protocol", r"Protocol version: (\S+)"),
                            ("cipher", r"Ciphersuite: (\S+)"),
                            ("group", r"(?:Negotiated TLS1.3 group|Server Temp Key): ([^\n]+)"),
                            ("server_cert_verified", r"(Verification: OK)")):
                m = re.search(rx, text)
                info[key] = m.group(1).strip() if m else None
            self.tls_info[topo] = info
            log("TLS on %s server side: %s" % (topo, info))

    # --- profiling ------------------------------------------------------------------
    def profile(self, workloads):
        """perf record -g on the proxy processes of ldmesh and HAProxy while
        wrk runs each workload; writes build/bench/profile-TOPO-WORKLOAD.txt
        (perf report, flat by symbol, and with callers).  BENCH_PROFILE_TOPOS
        picks other topologies (comma-separated, e.g. ldmesh-links)."""
        perf = shutil.which("perf", path=PATH)
        if not perf:
            raise CannotRun("perf is not installed (Debian: linux-perf)")
        self.verify_paths()
        topos = os.environ.get("BENCH_PROFILE_TOPOS", "ldmesh,haproxy").split(",")
        for w in workloads:
            for topo in topos:
                self.wrk(topo, w, 0, 1, record=False)
                pids = self.proxy_pids(topo)
                data = os.path.join(self.outdir, "perf-%s-%s.data" % (topo, w))
                conns = 4 if w == "bulk" else 16
                path = "/1m.bin" if w == "bulk" else "/1k.bin"
                args = ["ip", "netns", "exec", self.ns_c, "/usr/bin/wrk", "-t2",
                        "-c%d" % conns, "-d%ds" % (self.duration + 2), self.url(topo, path)]
                if w == "close":
                    args[-1:-1] = ["-H", "Connection: close"]
                env = self.r.env(self.shim(topo))
                wrk = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       env=env, start_new_session=True)
                try:
                    time.sleep(1)
                    # BENCH_PERF_EVENT: sample another event (e.g. probe_libc:malloc,
                    # after `perf probe -x libc.so.6 --add malloc`) instead of CPU time.
                    event = os.environ.get("BENCH_PERF_EVENT")
                    rc, out, err = self.r.run(None, [perf, "record"] + (
                        ["-e", event] if event else ["-F", "999"]) + ["--call-graph",
                        os.environ.get("BENCH_PERF_CALLGRAPH", "fp"), "-o", data, "-p",
                        ",".join(str(p) for p in pids.values()), "--", "sleep",
                        str(self.duration)], timeout=self.duration + 60)
                    if rc != 0:
                        raise CannotRun("perf record: %s" % err[-500:])
                finally:
                    out = wrk.communicate(timeout=self.duration + 60)[0].decode(errors="replace")
                res = parse_wrk(out)
                txt = os.path.join(self.outdir, "profile-%s-%s.txt" % (topo, w))
                with open(txt, "w") as fh:
                    fh.write("# %s %s: %.0f req/s, %.1f MB/s while recording\n" % (
                        topo, w, res.get("rps", 0), res.get("mb_per_s", 0)))
                    for extra in (["--no-children", "--sort", "comm,dso", "-g", "none"],
                                  ["--no-children", "--sort", "comm,dso,symbol", "-g", "none",
                                   "--percent-limit", "0.7"],
                                  ["--children", "--sort", "symbol", "-g",
                                   "caller,0.5,callee", "--percent-limit", "5"]):
                        rc, rep_out, rep_err = self.r.run(None, [
                            perf, "report", "--stdio", "-i", data] + extra, timeout=300)
                        fh.write(rep_out)
                with open(txt, "a") as fh:
                    fh.write("\n" + self.per_request(topo, w))
                log("profile %s %s: %s" % (topo, w, txt))

    # Counted per request by perf while wrk runs (--profile): what each
    # proxy process does for one request, hop by hop.
    PER_REQUEST_EVENTS = (
        ("syscalls", "raw_syscalls:sys_enter"),
        ("context switches", "context-switches"),
        ("wakeups it caused", "sched:sched_wakeup"),
        ("io_uring ops", "io_uring:io_uring_submit_req"),
        ("mallocs", "probe_libc:malloc"),
    )

    def per_request(self, topo, workload):
        """perf stat on each proxy process while one wrk run of `workload`
        goes through `topo`: syscalls, context switches, wakeups, io_uring
        operations (and their opcodes) and malloc calls per request.
        Returns text for the profile file."""
        perf = shutil.which("perf", path=PATH)
        libc = "/lib/x86_64-linux-gnu/libc.so.6"
        def probes():
            return subprocess.run([perf, "probe", "-l"], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL).stdout.decode(errors="replace")
        # A uprobe on libc's malloc, removed at the end unless it was there.
        had_probe = "probe_libc:malloc" in probes()
        if not had_probe:
            subprocess.run([perf, "probe", "-q", "-x", libc, "--add", "malloc"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        have_probe = "probe_libc:malloc" in probes()
        events = [(n, e) for n, e in self.PER_REQUEST_EVENTS
                  if have_probe or not e.startswith("probe_")]
        pids = self.proxy_pids(topo)
        secs = self.duration
        # CPU first, in a run of its own: the probes below cost CPU too.
        t0 = {pod: cpu_split_us(pid) for pod, pid in pids.items()}
        clean = self.wrk(topo, workload, 0, secs, record=False)
        t1 = {pod: cpu_split_us(pid) for pod, pid in pids.items()}
        stats, ops = {}, {}
        try:
            for pod, pid in pids.items():
                stats[pod] = subprocess.Popen(
                    [perf, "stat", "-x", ",", "-e", ",".join(e for _, e in events),
                     "-p", str(pid), "--", "sleep", str(secs + 2)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
                data = os.path.join(self.outdir, "ops-%s-%s-%s.data" % (topo, workload, pod))
                ops[pod] = (data, subprocess.Popen(
                    [perf, "record", "-q", "-e", "io_uring:io_uring_submit_req", "-o", data,
                     "-p", str(pid), "--", "sleep", str(secs + 2)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True))
            time.sleep(0.5)
            rec = self.wrk(topo, workload, 0, secs, record=False)
            counts = {}
            for pod, p in stats.items():
                err = p.communicate(timeout=secs + 60)[1].decode(errors="replace")
                for line in err.splitlines():
                    f = line.split(",")
                    if len(f) > 2 and f[0].replace(".", "").isdigit():
                        counts[(pod, f[2])] = float(f[0])
            opcodes = {}
            for pod, (data, p) in ops.items():
                p.wait(timeout=secs + 60)
                rc, out, err = self.r.run(None, [perf, "script", "-i", data, "-F", "trace"],
                                          timeout=300)
                tally = {}
                for line in out.splitlines():
                    m = re.search(r"opcode (\S+),", line)
                    if m:
                        tally[m.group(1)] = tally.get(m.group(1), 0) + 1
                opcodes[pod] = tally
                os.unlink(data)
        finally:
            if have_probe and not had_probe:
                subprocess.run([perf, "probe", "-q", "-d", "probe_libc:malloc"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        n = rec.get("requests") or 0
        out = ["# %s %s: per request, each proxy process (%d requests in %d s, %.0f req/s; "
               "CPU from a run without probes: %.0f req/s)" % (
                   topo, workload, n, secs, rec.get("rps", 0), clean.get("rps", 0))]
        if not n:
            return "\n".join(out + ["# wrk counted no request"]) + "\n"
        out.append("%-20s %s" % ("", " ".join("%10s" % pod for pod in pids)))
        for i, name in ((0, "user CPU us"), (1, "system CPU us")):
            out.append("%-20s %s" % (name, " ".join(
                "%10.2f" % ((t1[pod][i] - t0[pod][i]) / max(clean.get("requests") or 0, 1))
                for pod in pids)))
        for name, e in events:
            out.append("%-20s %s" % (name, " ".join(
                "%10.2f" % (counts.get((pod, e), 0) / n) for pod in pids)))
        for pod in pids:
            tally = opcodes.get(pod, {})
            out.append("io_uring ops of %s: %s" % (pod, ", ".join(
                "%s %.2f" % (k, v / n) for k, v in sorted(tally.items(), key=lambda kv: -kv[1]))
                or "none"))
        return "\n".join(out) + "\n"

    # --- the run --------------------------------------------------------------------
    def execute(self):
        t0 = time.monotonic()
        if "load" in self.parts:
            self.load_runs()
        self.post_load_rss = {v: {k: rss_bytes(p.pid) for k, p in d.items()}
                              for v, d in self.daemons.items()}
        self.post_load_rss["haproxy"] = {k: rss_bytes(p.pid) for k, p in self.hap.items()}
        if "idle" in self.parts:
            idle_topos = ["direct", "ldmesh", "haproxy", "ldmesh-links"]
            for n in self.idle_sizes:
                for rep in range(1, self.idle_reps + 1):
                    k = (rep - 1) % len(idle_topos)
                    for t in idle_topos[k:] + idle_topos[:k]:
                        self.idle_run(t, n, rep)
        if "limits" in self.parts:
            self.measure_limits()
        self.elapsed = time.monotonic() - t0

    def measure_limits(self):
        """The ceilings a bulk stream through the mesh runs under, on this
        machine, in the same run: AES-256-GCM on one core (openssl speed,
        16 KiB blocks: TLS records), memcpy bandwidth on one core, and one
        plain TCP stream over loopback (build/bench/limits, in the client
        pod).  Each 3 times; the medians go into the report."""
        self.limits = {}
        log("limits of this machine: openssl speed, memcpy, loopback TCP")
        gcm, cache, mem, tcp, tcp_cpu = [], [], [], [], []
        helper = os.path.join(REPO, "build", "bench", "limits")
        for _ in range(3):
            rc, out, err = self.r.run(None, ["openssl", "speed", "-evp", "aes-256-gcm",
                                             "-seconds", "2", "-bytes", "16384"], timeout=60)
            m = re.search(r"^AES-256-GCM\s+([\d.]+)k\s*$", out, re.M)
            if rc == 0 and m:
                gcm.append(float(m.group(1)) * 1000 / 1e6)
            else:
                self.errors.append("openssl speed: rc=%d %s" % (rc, (err or out)[-300:]))
            rc, out, err = self.r.run(None, [helper, "memcpy"], timeout=60)
            m = re.search(r"memcpy_cache_mb_s=(\d+) memcpy_mem_mb_s=(\d+)", out)
            if rc == 0 and m:
                cache.append(float(m.group(1)))
                mem.append(float(m.group(2)))
            else:
                self.errors.append("limits memcpy: rc=%d %s" % (rc, err[-300:]))
            rc, out, err = self.r.run(self.ns_c, [helper, "tcp", 1024], timeout=120)
            m = re.search(r"tcp_mb_s=(\d+) cpu_ms_per_mib=([\d.]+)", out)
            if rc == 0 and m:
                tcp.append(float(m.group(1)))
                tcp_cpu.append(float(m.group(2)) * 1000)
            else:
                self.errors.append("limits tcp: rc=%d %s" % (rc, err[-300:]))
        self.limits = {"aes_256_gcm_mb_s": summarize(gcm), "memcpy_cache_mb_s": summarize(cache),
                       "memcpy_mem_mb_s": summarize(mem), "loopback_tcp_mb_s": summarize(tcp),
                       "loopback_tcp_cpu_us_per_mib": summarize(tcp_cpu)}
        log("  AES-256-GCM %s MB/s per core; memcpy %s MB/s (cache) %s MB/s (memory); "
            "loopback TCP %s MB/s" % tuple(
                "%.0f" % x["median"] if x else "?" for x in (
                    self.limits["aes_256_gcm_mb_s"], self.limits["memcpy_cache_mb_s"],
                    self.limits["memcpy_mem_mb_s"], self.limits["loopback_tcp_mb_s"])))

    def load_runs(self):
        """Every workload but the idle connections, on every topology."""
        topos = [t for t in self.topologies() if self.available.get(t) is True]
        self.verify_paths()
        self.verify_go()
        self.verify_h2()
        log("warm-up (1 s keep-alive and connection-per-request per topology)")
        for t in topos:
            self.wrk(t, "ka", 0, 1, record=False)
            self.wrk(t, "close", 0, 1, record=False)
        for t in GO_TOPOS:
            if self.available.get(t) is True:
                self.go_bench(t, "ka", 0, 1, record=False)
                self.go_bench(t, "close", 0, 1, record=False)
        main = [t for t in topos if "tel" not in t and t not in SCALE_TOPOS]
        workloads = [("ka", topos), ("paced", main), ("close", topos),
                     ("bulk", main), ("stream", main)]
        wanted = self.workloads or [w for w, _ in workloads] + ["same-pod", "go", "h2"]
        for rep in range(1, self.reps + 1):
            log("repetition %d of %d" % (rep, self.reps))
            if "same-pod" in wanted:
                self.same_pod(rep)
            if "go" in wanted:
                self.go_rows(rep)
            if "h2" in wanted:
                self.h2_rows(rep)
            for workload, wtopos in workloads:
                if workload not in wanted:
                    continue
                k = (rep - 1) % len(wtopos)
                order = wtopos[k:] + wtopos[:k]  # rotate: no topology always goes first
                for t in order:
                    if workload == "stream":
                        self.stream(t, rep)
                    else:
                        self.wrk(t, workload, rep, self.duration)

    def same_pod(self, rep):
        """Issue 20: requests from inside the server pod to its own nginx at
        the pod address: the nginx without the shim (same-pod-direct) and
        the one whose listener the server's ldmeshd holds, which hands each
        accepted socket to nginx (same-pod-ldmesh).  wrk runs unmeshed in
        the server pod; daemon CPU is the server daemon's."""
        if self.available.get("ldmesh") is not True:
            return
        port = next(v[1] for v in LDMESH_VARIANTS if v[0] == "ldmesh")
        pairs = [("same-pod-direct", "http://%s:%d" % (S_ADDR, DIRECT_HTTP)),
                 ("same-pod-ldmesh", "http://%s:%d" % (S_ADDR, port))]
        for workload in ("ka", "close"):
            order = pairs if rep % 2 else pairs[::-1]
            for topo, url in order:
                self.wrk(topo, workload, rep, self.duration, local_url=url)

    def same_pod_summary(self):
        good = [r for r in self.runs if "problem" not in r]
        out = {}
        for t in ("same-pod-direct", "same-pod-ldmesh"):
            for w in ("ka", "close"):
                rs = [r for r in good if r["topology"] == t and r["workload"] == w]
                we = out.setdefault(t, {}).setdefault(w, {})
                for key in ("rps", "p50_ms", "p99_ms", "proxy_cpu_us_per_req"):
                    v = summarize([r.get(key) for r in rs])
                    if v:
                        we[key] = v
        for w in ("ka", "close"):
            a = out["same-pod-ldmesh"][w].get("rps")
            b = out["same-pod-direct"][w].get("rps")
            if a and b and b["median"]:
                out["same-pod-ldmesh"][w]["rps_vs_direct"] = a["median"] / b["median"]
        return out

    # --- Go over the seccomp path (issue 11) ------------------------------------------
    def go_unavailable(self, why, error=False):
        for t in GO_TOPOS:
            self.available[t] = "not available: " + why
        if error:
            self.errors.append("go rows: " + why)
        log("go rows: not available: %s" % why)

    def build_gonet(self):
        """Builds tests/e2e/goprogs/gonet.go into build/bench/gonet, offline
        and static (CGO_ENABLED=0), as the e2e tests do; the Go caches live
        in the run's temporary directory."""
        go = shutil.which("go", path=PATH + ":/usr/lib/go/bin")
        if not go:
            raise CannotRun("go is not installed (Debian package: golang-go)")
        out = os.path.join(self.outdir, "gonet")
        tmp_out = out + ".new"
        env = {"PATH": PATH, "HOME": self.tmp, "CGO_ENABLED": "0", "GO111MODULE": "off",
               "GOFLAGS": "", "GOPROXY": "off", "GOCACHE": os.path.join(self.tmp, "gocache"),
               "GOPATH": os.path.join(self.tmp, "gopath")}
        try:
            r = subprocess.run([go, "build", "-o", tmp_out, GO_SRC], capture_output=True,
                               text=True, env=env, cwd=self.tmp, timeout=600)
        except subprocess.TimeoutExpired:
            raise CannotRun("go build of %s timed out" % GO_SRC)
        if r.returncode != 0:
            raise CannotRun("go build %s failed: %s" % (GO_SRC, (r.stdout + r.stderr)[-1000:]))
        with open(tmp_out, "rb") as f:
            if b"/lib64/ld-linux" in f.read(4096):
                raise CannotRun("gonet is not static: the row would measure the shim")
        os.replace(tmp_out, out)
        return out

    def start_go(self):
        """gonet serve in s twice: unmeshed (go-direct) and under ldmesh-run
        with the "ldmesh" server daemon's runtime dir (go-seccomp).  Anything
        missing leaves the Go rows out, said in the result; the rest runs."""
        launcher = os.path.join(REPO, "build", "ldmesh-run")
        if not os.path.exists(launcher):
            self.go_unavailable("build/ldmesh-run is missing (make all)", error=True)
            return
        if self.available.get("ldmesh") is not True:
            self.go_unavailable("the ldmesh daemons did not start")
            return
        if not shutil.which("go", path=PATH + ":/usr/lib/go/bin"):
            # optional: make deps installs it, but the other rows need no Go
            self.go_unavailable("go is not installed (Debian package: golang-go)")
            return
        try:
            log("building %s" % os.path.relpath(GO_SRC, REPO))
            self.gonet = self.build_gonet()
        except CannotRun as e:
            self.go_unavailable(str(e), error=True)
            return
        ds = self.daemons["ldmesh"]["s"]
        for topo, args in (
                ("go-direct", [self.gonet, "serve", "0.0.0.0:%d" % GO_DIRECT_HTTP]),
                ("go-seccomp", [launcher, "--runtime-dir", ds.rundir, "--", self.gonet,
                                "serve", "%s:%d" % (S_ADDR, GO_MESH_HTTP)])):
            port = GO_DIRECT_HTTP if topo == "go-direct" else GO_MESH_HTTP
            p = self.r.popen(self.ns_s, args, "gonet-serve-" + topo)
            try:
                wait_until(lambda: p.poll() is not None or (
                    read(p.out_path).startswith("listening") and listening(self.ns_s, port)),
                    20, "gonet serve (%s) on port %d" % (topo, port))
                if p.poll() is not None:
                    raise CannotRun("gonet serve (%s) exited: %s %s" % (
                        topo, read(p.out_path)[-500:], read(p.err_path)[-1500:]))
            except CannotRun as e:
                self.go_unavailable(str(e), error=True)
                return
            self.go_servers[topo] = p
        for t in GO_TOPOS:
            self.available[t] = True

    def go_client(self, topo, args):
        """argv of a gonet client in c: unmeshed, or under ldmesh-run with the
        "ldmesh" client daemon's runtime dir."""
        if topo == "go-direct":
            return [self.gonet] + args
        return [os.path.join(REPO, "build", "ldmesh-run"), "--runtime-dir",
                self.daemons["ldmesh"]["c"].rundir, "--", self.gonet] + args

    def go_url(self, topo, path="/"):
        return "http://%s:%d%s" % (S_ADDR, GO_DIRECT_HTTP if topo == "go-direct"
                                   else GO_MESH_HTTP, path)

    def verify_go(self):
        """go-direct answers; go-seccomp answers with the client pod's real
        address as the Go server's r.RemoteAddr (accept went through the
        server's supervisor and daemon), the server daemon counts an mTLS
        handshake for it, and an unmeshed client is refused (strict)."""
        if any(self.available.get(t) is not True for t in GO_TOPOS):
            return
        try:
            for topo in GO_TOPOS:
                hs0 = self.handshakes("ldmesh") if topo == "go-seccomp" else None
                rc, out, err = self.r.run(self.ns_c, self.go_client(
                    topo, ["get", self.go_url(topo, "/verify")]), timeout=40)
                m = re.search(r"go remote=([0-9.]+):\d+ path=/verify", out)
                if rc != 0 or "status=200" not in out or not m:
                    raise CannotRun("%s: gonet get failed: rc %d %s %s" % (
                        topo, rc, out[-500:], err[-500:]))
                if topo == "go-direct":
                    log("path go-direct: GET ok, the Go server saw %s" % m.group(1))
                    continue
                if m.group(1) != C_ADDR:
                    raise CannotRun("go-seccomp: the Go server saw %s, not the client pod's "
                                    "address %s" % (m.group(1), C_ADDR))
                hs1 = wait_until(lambda: (lambda h: h if h and sum(h) > sum(hs0) else None)(
                    self.handshakes("ldmesh")), 5, "go-seccomp to count a TLS handshake")
                rc, out, err = self.r.run(self.ns_c, ["curl", "-sS", "--max-time", "5",
                                                      self.go_url(topo, "/plain")], timeout=20)
                if rc == 0 or "go remote" in out:
                    raise CannotRun("go-seccomp: an unmeshed client reached the Go server "
                                    "(%s): its listener is not held by ldmeshd" % out[-200:])
                log("path go-seccomp: GET ok, the Go server saw %s, server daemon counted TLS "
                    "handshakes %s -> %s, an unmeshed client is refused" % (
                        m.group(1), hs0, hs1))
        except CannotRun as e:
            self.go_unavailable(str(e), error=True)

    def go_bench(self, topo, workload, rep, duration, record=True):
        """One `gonet bench` run from c.  CPU: the two "ldmesh" daemons, and
        for go-seccomp the two ldmesh-run supervisors (the server's, and the
        client's read after it exited, before it is reaped)."""
        seccomp = topo == "go-seccomp"
        dpids = [p.pid for p in self.daemons["ldmesh"].values()] if seccomp else []
        srv_sup = self.go_servers[topo].pid if seccomp else None
        hs0 = self.handshakes("ldmesh") if seccomp else None
        c0 = cpu_us(dpids)
        s0 = cpu_us([srv_sup]) if seccomp else 0
        p = self.r.popen(self.ns_c, self.go_client(topo, [
            "bench", self.go_url(topo, "/"), duration, GO_CONC,
            "keepalive" if workload == "ka" else "close"]), "gonet-bench-%s-%s" % (topo, workload))
        deadline = time.monotonic() + duration + 60
        exited = False
        while time.monotonic() < deadline:
            try:
                # WNOWAIT: the exited launcher stays a zombie, its CPU readable
                if os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                    exited = True
                    break
            except ChildProcessError:  # reaped elsewhere: no supervisor CPU
                exited = True
                break
            time.sleep(0.02)
        cli_sup = cpu_us([p.pid]) if seccomp and exited and os.path.exists(
            "/proc/%d" % p.pid) else None
        c1 = cpu_us(dpids)
        s1 = cpu_us([srv_sup]) if seccomp else 0
        hs1 = self.handshakes("ldmesh") if seccomp else None
        if not exited:
            self.r.stop(p)
        rc = p.wait()
        out = read(p.out_path)
        rec = {"topology": topo, "workload": workload, "rep": rep, "duration_s": duration,
               "connections": GO_CONC, "rc": rc, "client": "gonet bench", "server": "gonet serve"}
        m = re.search(r"requests=(\d+) errors=(\d+) rps=([\d.]+) p50_ms=([\d.]+) "
                      r"p99_ms=([\d.]+)", out)
        if m:
            rec.update({"requests": int(m.group(1)), "errors": int(m.group(2)),
                        "rps": float(m.group(3)), "p50_ms": float(m.group(4)),
                        "p99_ms": float(m.group(5))})
            rec["seconds"] = rec["requests"] / rec["rps"] if rec["rps"] else duration
        if seccomp and rec.get("requests"):
            rec["proxy_cpu_us"] = c1 - c0
            rec["proxy_cpu_us_per_req"] = (c1 - c0) / rec["requests"]
            rec["supervisor_cpu_us"] = {"c": cli_sup, "s": s1 - s0}
            rec["supervisor_s_cpu_us_per_req"] = (s1 - s0) / rec["requests"]
            if cli_sup is not None:
                rec["supervisor_c_cpu_us_per_req"] = cli_sup / rec["requests"]
                rec["supervisor_cpu_us_per_req"] = (cli_sup + s1 - s0) / rec["requests"]
            if hs0 is not None and hs1 is not None:
                rec["handshakes_full"] = hs1[0] - hs0[0]
                rec["handshakes_resumed"] = hs1[1] - hs0[1]
                rec["handshakes_full_per_s"] = rec["handshakes_full"] / rec["seconds"]
                rec["handshakes_resumed_per_s"] = rec["handshakes_resumed"] / rec["seconds"]
        problem = None
        if not exited:
            problem = "gonet bench did not finish in %d s" % (duration + 60)
        elif rc != 0 or not m:
            problem = "gonet bench rc=%d: %s %s" % (rc, out[-500:], read(p.err_path)[-500:])
        elif rec["errors"] > 0.01 * max(rec["requests"], 1):
            problem = "gonet bench: %d errors in %d requests" % (rec["errors"], rec["requests"])
        if problem:
            self.problem(rec, topo, workload, rep, problem)
        if record:
            self.runs.append(rec)
            log("  %-15s %-6s rep %d: %8.0f req/s p50 %.3f ms p99 %.3f ms daemon cpu %s us/req "
                "supervisor cpu %s us/req%s" % (
                    topo, workload, rep, rec.get("rps", 0), rec.get("p50_ms") or 0,
                    rec.get("p99_ms") or 0,
                    "%.1f" % rec["proxy_cpu_us_per_req"] if "proxy_cpu_us_per_req" in rec
                    else "-",
                    "%.1f" % rec["supervisor_cpu_us_per_req"]
                    if "supervisor_cpu_us_per_req" in rec else "-",
                    " hs full/resumed %d/%d" % (rec["handshakes_full"], rec["handshakes_resumed"])
                    if "handshakes_full" in rec else ""))
        return rec

    def go_rows(self, rep):
        if any(self.available.get(t) is not True for t in GO_TOPOS):
            return
        for workload in ("ka", "close"):
            order = list(GO_TOPOS) if rep % 2 else list(GO_TOPOS)[::-1]
            for t in order:
                self.go_bench(t, workload, rep, self.duration)

    def go_summary(self, s):
        """Go rows: medians over repetitions, go-seccomp / go-direct ratios of
        medians, and beside them the shim row's ldmesh / direct ratios for the
        same workload (wrk and nginx there, gonet here)."""
        good = [r for r in self.runs if "problem" not in r]
        out = {"available": {t: self.available.get(t, "not run") for t in GO_TOPOS},
               "concurrency": GO_CONC, "client": "gonet bench", "server": "gonet serve"}

        def runs(t, w):
            return [r for r in good if r["topology"] == t and r["workload"] == w]

        for t in GO_TOPOS:
            for w in ("ka", "close"):
                we = {}
                for key in ("rps", "p50_ms", "p99_ms", "proxy_cpu_us_per_req",
                            "supervisor_cpu_us_per_req", "supervisor_c_cpu_us_per_req",
                            "supervisor_s_cpu_us_per_req", "handshakes_full_per_s",
                            "handshakes_resumed_per_s"):
                    v = summarize([r.get(key) for r in runs(t, w)])
                    if v:
                        we[key] = v
                if we:
                    out.setdefault(t, {})[w] = we
        for w in ("ka", "close"):
            g = (out.get("go-seccomp") or {}).get(w) or {}
            d = (out.get("go-direct") or {}).get(w) or {}
            for key in ("rps", "p50_ms", "p99_ms"):
                if key in g and key in d and d[key]["median"]:
                    g["%s_vs_go_direct" % key] = g[key]["median"] / d[key]["median"]
            for key in ("p50_ms", "p99_ms"):
                dd = {r["rep"]: r.get(key) for r in runs("go-direct", w)}
                per = [r[key] - dd[r["rep"]] for r in runs("go-seccomp", w)
                       if r.get(key) is not None and dd.get(r["rep"]) is not None]
                if per and key in g and key in d:
                    g[key.replace("_ms", "_added_ms")] = {
                        "median": g[key]["median"] - d[key]["median"], "min": min(per),
                        "max": max(per), "n": len(per)}
            sl, sd = (s.get("ldmesh") or {}).get(w) or {}, (s.get("direct") or {}).get(w) or {}
            shim = {}
            for key in ("rps", "p50_ms", "p99_ms"):
                if key in sl and key in sd and sd[key]["median"]:
                    shim["%s_vs_direct" % key] = sl[key]["median"] / sd[key]["median"]
            if shim and g:
                g["shim_ldmesh"] = shim
        return out

    # --- HTTP/2 followed stream by stream (issue 14) ----------------------------------
    def h2_unavailable(self, why, error=False, topos=H2_TOPOS):
        for t in topos:
            self.h2_available[t] = "not available: " + why
        if error:
            self.errors.append("http/2 rows (%s): %s" % (", ".join(topos), why))
        log("http/2 rows %s: not available: %s" % (", ".join(topos), why))

    def h2_port(self, topo):
        return next(v[5] for v in LDMESH_VARIANTS if v[0] == topo)

    def h2_url(self, topo):
        if topo == "direct":
            return "http://%s:%d/1k.bin" % (S_ADDR, DIRECT_H2)
        if topo == "haproxy":
            return "http://127.0.0.1:%d/1k.bin" % HAP_C_H2
        return "http://%s:%d/1k.bin" % (S_ADDR, self.h2_port(topo))

    def nghttpd(self, label, addr, port, shim_rundir=None):
        """nghttpd (nghttp2-server) in s serving the www dir as h2c (--no-tls:
        prior knowledge), one worker; started like nginx()."""
        p = self.r.popen(self.ns_s, [self.nghttpd_bin, "--no-tls", "-d", self.www, "-a", addr,
                                     port], "nghttpd-" + label, shim_rundir=shim_rundir)
        wait_until(lambda: p.poll() is not None or listening(self.ns_s, port), 20,
                   "nghttpd-%s on port %d" % (label, port))
        if p.poll() is not None:
            raise CannotRun("nghttpd-%s exited: %s" % (label, read(p.err_path)[-2000:]))
        return p

    def start_h2(self):
        """nghttpd unmeshed (direct, and HAProxy s's backend on its loopback)
        and once with the shim of each ldmesh variant that has an nghttpd
        port.  Without nghttp2's tools the rows say "not available" and the
        rest runs."""
        self.h2load_bin = shutil.which("h2load", path=PATH)
        self.nghttpd_bin = shutil.which("nghttpd", path=PATH)
        if not self.h2load_bin or not self.nghttpd_bin:
            self.h2_unavailable("h2load / nghttpd are not installed (Debian packages: "
                                "nghttp2-client, nghttp2-server)")
            return
        try:
            self.nghttpd("direct", "0.0.0.0", DIRECT_H2)
        except CannotRun as e:
            self.h2_unavailable(str(e), error=True)
            return
        self.h2_available["direct"] = True
        self.h2_available["haproxy"] = True if self.available.get("haproxy") is True else \
            "not available: HAProxy did not start"
        for variant, _h, _i, _a, _e, port in LDMESH_VARIANTS:
            if variant not in H2_TOPOS:
                continue
            if port is None or variant not in self.daemons:
                self.h2_available[variant] = self.available.get(variant, "not available")
                continue
            try:
                self.nghttpd(variant, S_ADDR, port, shim_rundir=self.daemons[variant]["s"].rundir)
                self.h2_available[variant] = True
            except CannotRun as e:
                self.h2_unavailable(str(e), error=True, topos=(variant,))

    def h2_counts(self, topo):
        """What the server side has counted so far: for ldmesh the s daemon's
        inbound request_total, tcp_open_total and TLS handshakes; for HAProxy
        its handshakes; None for direct or when the scrape failed."""
        if topo == "haproxy":
            hs = self.handshakes("haproxy")
            return {"handshakes": sum(hs)} if hs else None
        if topo not in self.daemons:
            return None
        m = self.scrape(topo, "s")
        if not m:
            return None
        return {"requests": prom_sum(m, "request_total", direction="inbound"),
                "conns": prom_sum(m, "tcp_open_total", direction="inbound"),
                "handshakes": prom_sum(m, "ldmesh_tls_handshakes_total", direction="inbound")}

    def h2_check(self, topo, rec, k0, k1):
        """The run went where it says: ldmesh with telemetry.http on counts
        every h2load request in the server daemon's request_total; with it
        off, none, but the daemon carried h2load's connections (tcp_open_total
        and mTLS handshakes); HAProxy's server side counted the handshakes.
        Returns what is wrong, or None."""
        if topo == "direct":
            return None
        if k0 is None or k1 is None:
            return "could not read the server side's counters"
        d = {k: k1[k] - k0[k] for k in k0}
        rec["server_counted"] = d
        if d.get("handshakes", 0) < H2_CLIENTS:
            return "the server side counted %d TLS handshakes for %d h2load connections" % (
                d.get("handshakes", 0), H2_CLIENTS)
        if topo == "haproxy":
            return None
        if d["conns"] < H2_CLIENTS:
            return "the server daemon counted %d connections for %d h2load connections" % (
                d["conns"], H2_CLIENTS)
        want = rec.get("started", 0) if topo in H2_FOLLOWED else 0
        if d["requests"] != want:
            return "the server daemon's request_total grew by %d, expected %d (%s)" % (
                d["requests"], want, "telemetry.http on: every stream" if want
                else "telemetry.http off: none")
        return None

    def h2load(self, topo, rep, n, record=True):
        """One `h2load -n N -c 4 -m 16` run from c (with the client daemon's
        shim for ldmesh), prior-knowledge h2c to nghttpd in s; proxy CPU over
        both proxy processes, as the wrk rows."""
        args = [self.h2load_bin, "-n", n, "-c", H2_CLIENTS, "-m", H2_STREAMS, self.h2_url(topo)]
        pids = self.proxy_pids(topo)
        k0 = self.h2_counts(topo)
        c0 = cpu_us(pids.values())
        rc, out, err = self.r.run(self.ns_c, args, shim_rundir=self.shim(topo),
                                  timeout=max(120, n // 200))
        c1 = cpu_us(pids.values())
        rec = {"topology": topo, "workload": "h2", "rep": rep, "rc": rc,
               "client": "h2load -c%d -m%d" % (H2_CLIENTS, H2_STREAMS), "server": "nghttpd",
               "connections": H2_CLIENTS, "streams_per_connection": H2_STREAMS}
        rec.update(parse_h2load(out))
        if pids and rec.get("requests"):
            rec["proxy_cpu_us"] = c1 - c0
            rec["proxy_cpu_us_per_req"] = (c1 - c0) / rec["requests"]
        problem = None
        if rc != 0 or "rps" not in rec or "requests" not in rec:
            problem = "h2load rc=%d: %s %s" % (rc, out[-500:], err[-500:])
        elif rec.get("status_2xx", 0) < 0.99 * n:
            problem = "h2load: %d of %d requests answered 2xx (%d failed, %d errored, " \
                "%d timeout)" % (rec.get("status_2xx", 0), n, rec["failed"], rec["errored"],
                                 rec["timeout"])
        else:
            # A moment for counters the daemon bumps after forwarding the
            # bytes h2load already has, and for a slow scrape.
            deadline = time.monotonic() + 3
            while True:
                k1 = self.h2_counts(topo)
                problem = self.h2_check(topo, rec, k0, k1)
                if not problem or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        if problem:
            self.problem(rec, topo, "h2", rep, problem)
        if record:
            self.runs.append(rec)
            log("  %-15s h2     rep %d: %8.0f req/s mean %.3f ms cpu %s us/req%s" % (
                topo, rep, rec.get("rps", 0), rec.get("mean_ms") or 0,
                "%.1f" % rec["proxy_cpu_us_per_req"] if "proxy_cpu_us_per_req" in rec else "-",
                " server counted %s" % ", ".join(
                    "%s +%d" % (k, v) for k, v in sorted(rec["server_counted"].items()))
                if "server_counted" in rec else ""))
        return rec

    def verify_h2(self):
        """Proves each HTTP/2 path before measuring, and warms it up: a short
        h2load run per topology with the same checks as every measured run
        (h2load's requests answered 2xx; for ldmesh each stream counted by the
        server daemon when telemetry.http is on, none when off, and the
        daemon carried the connections).  A topology that fails is left out
        of the HTTP/2 rows, said in the result."""
        for topo in H2_TOPOS:
            if self.h2_available.get(topo) is not True:
                continue
            rec = self.h2load(topo, 0, 1000, record=False)
            if "problem" in rec:
                # self.problem() already listed it among the errors
                self.h2_available[topo] = "not available: " + rec["problem"]
                continue
            log("path h2 %s: %d requests 2xx%s" % (
                topo, rec.get("status_2xx", 0), ", server side counted %s" % rec["server_counted"]
                if "server_counted" in rec else ""))

    def h2_rows(self, rep):
        topos = [t for t in H2_TOPOS if self.h2_available.get(t) is True]
        if not topos:
            return
        k = (rep - 1) % len(topos)
        for t in topos[k:] + topos[:k]:  # rotate: no topology always goes first
            self.h2load(t, rep, self.h2_requests)

    def h2_summary(self, s):
        """HTTP/2 rows: medians over repetitions; req/s vs direct; CPU per
        request vs ldmesh-tel-off (telemetry.http off: the streams pass
        unfollowed), beside the same ratio of the HTTP/1.1 keep-alive rows."""
        good = [r for r in self.runs if "problem" not in r and r["workload"] == "h2"]
        out = {"available": {t: self.h2_available.get(t, "not run") for t in H2_TOPOS},
               "requests_per_run": self.h2_requests, "clients": H2_CLIENTS,
               "streams": H2_STREAMS, "client": "h2load", "server": "nghttpd"}
        for t in H2_TOPOS:
            rs = [r for r in good if r["topology"] == t]
            e = {}
            for key in ("rps", "mean_ms", "proxy_cpu_us_per_req"):
                v = summarize([r.get(key) for r in rs])
                if v:
                    e[key] = v
            if e:
                out[t] = e
        base = out.get("direct", {}).get("rps")
        off = out.get("ldmesh-tel-off", {}).get("proxy_cpu_us_per_req")
        h1off = (s.get("ldmesh-tel-off") or {}).get("ka", {}).get("proxy_cpu_us_per_req")
        for t in H2_TOPOS:
            e = out.get(t)
            if not e:
                continue
            if t != "direct" and base and base["median"] and "rps" in e:
                e["rps_vs_direct"] = e["rps"]["median"] / base["median"]
            if t.startswith("ldmesh") and off and off["median"] and "proxy_cpu_us_per_req" in e:
                c = e["proxy_cpu_us_per_req"]["median"]
                e["cpu_vs_tel_off"] = c / off["median"]
                e["cpu_added_vs_tel_off_us"] = c - off["median"]
                h1 = (s.get(t) or {}).get("ka", {}).get("proxy_cpu_us_per_req")
                if h1 and h1off and h1off["median"]:
                    e["h1_ka_cpu_vs_tel_off"] = h1["median"] / h1off["median"]
        return out

    # --- report ------------------------------------------------------------------------
    def machine(self):
        def first(cmd):
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
                return (r.stdout + r.stderr).strip().splitlines()[0]
            except (OSError, IndexError, subprocess.TimeoutExpired):
                return None
        cpu = None
        for line in read("/proc/cpuinfo").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = None
        for line in read("/proc/meminfo").splitlines():
            if line.startswith("MemTotal:"):
                mem = "%.1f GiB" % (int(line.split()[1]) / 2 ** 20)
        rev = first(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return {
            "nproc": os.cpu_count(), "kernel": os.uname().release, "cpu": cpu, "memory": mem,
            "ldmesh_rev": (rev or "?") + (" (uncommitted changes)" if dirty else ""),
            "ldmeshd": first([os.path.join(REPO, "build", "ldmeshd"), "-V"]),
            "haproxy": first(["/usr/sbin/haproxy", "-v"]),
            "nginx": first(["/usr/sbin/nginx", "-v"]),
            "wrk": first(["/usr/bin/wrk", "-v"]),
            "h2load": first(["h2load", "--version"]),
            "openssl": first(["openssl", "version"]),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        }

    def summary(self):
        topos = [t for t in self.topologies() if self.available.get(t) is True]
        s = {}
        good = [r for r in self.runs if "problem" not in r]

        def runs(t, w):
            return sorted([r for r in good if r["topology"] == t and r["workload"] == w],
                          key=lambda r: r["rep"])

        def added(t, w, key):
            # median of this topology minus median of direct (robust to one
            # noisy run); min-max are the per-repetition differences
            d = {r["rep"]: r.get(key) for r in runs("direct", w)}
            per = [r.get(key) - d[r["rep"]] for r in runs(t, w)
                   if r.get(key) is not None and d.get(r["rep"]) is not None]
            a = summarize([r.get(key) for r in runs(t, w)])
            b = summarize(list(d.values()))
            if not per or not a or not b:
                return None
            return {"median": a["median"] - b["median"], "min": min(per), "max": max(per),
                    "n": len(per)}

        for t in topos:
            e = s.setdefault(t, {})
            for w in ("ka", "paced", "close", "bulk", "stream"):
                rs = runs(t, w)
                if not rs:
                    continue
                we = e.setdefault(w, {})
                for key in ("rps", "p50_ms", "p99_ms", "mb_per_s", "proxy_cpu_us_per_req",
                            "proxy_cpu_us_per_mib", "handshakes_per_s", "handshakes_full_per_s",
                            "handshakes_resumed_per_s"):
                    v = summarize([r.get(key) for r in rs])
                    if v:
                        we[key] = v
                if t != "direct" and w in ("ka", "paced", "close", "bulk"):
                    for key in ("p50_ms", "p99_ms"):
                        v = added(t, w, key)
                        if v:
                            we[key.replace("_ms", "_added_ms")] = v
            mem = e.setdefault("memory", {})
            pids = self.proxy_pids(t)
            if pids:
                mem["rss_idle_start"] = self.rss_start.get(t)
                mem["rss_idle_start_detail"] = self.rss_start_detail.get(t)
                mem["rss_idle_after_load"] = self.post_load_rss.get(t)
            for n in self.idle_sizes:
                recs = [r for r in self.idle if r["topology"] == t and r["n"] == n and
                        "problem" not in r]
                if not recs or not pids:
                    continue
                mem["idle_%d" % n] = {
                    k: {"rss_held": summarize([r["rss_held"][k] for r in recs]),
                        "bytes_per_conn": summarize([r["bytes_per_conn"][k] for r in recs]),
                        "bytes_per_conn_anon": summarize(
                            [(r.get("bytes_per_conn_anon") or {}).get(k) for r in recs]),
                        "bytes_per_conn_file": summarize(
                            [(r.get("bytes_per_conn_file") or {}).get(k) for r in recs]),
                        "rss_before": summarize([r["rss_before"][k] for r in recs]),
                        "rss_after_close": summarize(
                            [(r.get("rss_after_close") or {}).get(k) for r in recs]),
                        "rss_after_close_10s": summarize(
                            [(r.get("rss_after_close_10s") or {}).get(k) for r in recs]),
                        "rss_after_close_10s_anon": summarize(
                            [((r.get("rss_after_close_10s_detail") or {}).get(k) or {}).get(
                                "RssAnon") for r in recs]),
                        "after_close_10s_ratio": summarize(
                            [(r.get("after_close_10s_ratio") or {}).get(k) for r in recs])}
                    for k in pids}
        # ratios (of medians) to direct and to HAProxy
        for t in topos:
            for w, key in (("ka", "rps"), ("paced", "rps"), ("close", "rps"), ("bulk", "mb_per_s"),
                           ("stream", "mb_per_s")):
                me = s.get(t, {}).get(w, {}).get(key)
                if not me:
                    continue
                for base in ("direct", "haproxy"):
                    b = s.get(base, {}).get(w, {}).get(key)
                    if b and b["median"] and base != t:
                        s[t][w]["%s_vs_%s" % (key, base)] = me["median"] / b["median"]
        return s

    def targets(self, s):
        L, H = s.get("ldmesh", {}), s.get("haproxy", {})

        def med(d, *keys):
            for k in keys:
                d = (d or {}).get(k)
            return d["median"] if isinstance(d, dict) and "median" in d else d

        out = []

        def add(name, value, limit, ok, fmt):
            out.append({"target": name, "value": value, "limit": limit,
                        "met": None if value is None else bool(ok),
                        "text": fmt})

        v = med(L, "ka", "rps_vs_haproxy")
        add("keep-alive req/s >= 1.3x HAProxy", v, 1.3, v is not None and v >= 1.3,
            "%.2fx" % v if v is not None else "n/a")
        for w, label in (("paced", "at ~1,000 req/s"), ("ka", "at full load")):
            la, ha = med(L, w, "p99_added_ms"), med(H, w, "p99_added_ms")
            v = la / ha if la is not None and ha and ha > 0 else None
            add("keep-alive p99 added over direct <= 0.5x HAProxy's (%s)" % label, v, 0.5,
                v is not None and v <= 0.5,
                "ldmesh %+.3f ms, HAProxy %+.3f ms (%.2fx)" % (la, ha, v) if v is not None
                else "n/a (ldmesh %s, HAProxy %s ms added)" % (la, ha))
        v = med(L, "close", "rps_vs_haproxy")
        add("connection-per-request req/s >= 5x HAProxy", v, 5.0, v is not None and v >= 5,
            "%.2fx" % v if v is not None else "n/a")
        v = med(L, "bulk", "mb_per_s_vs_haproxy")
        add("bulk (1 MiB responses) MB/s >= 1.5x HAProxy", v, 1.5, v is not None and v >= 1.5,
            "%.2fx" % v if v is not None else "n/a")
        v = med(L, "stream", "mb_per_s_vs_haproxy")
        add("bulk (one long stream) MB/s >= 1.5x HAProxy", v, 1.5, v is not None and v >= 1.5,
            "%.2fx" % v if v is not None else "n/a")
        rs = (L.get("memory") or {}).get("rss_idle_start") or {}
        v = max(rs.values()) if rs else None
        add("daemon RSS idle <= 4 MiB (each daemon)", v, 4 * 2 ** 20,
            v is not None and v <= 4 * 2 ** 20,
            "%.2f MiB (max of c/s daemons)" % (v / 2 ** 20) if v is not None else "n/a")
        n = max(self.idle_sizes)
        idle = (L.get("memory") or {}).get("idle_%d" % n) or {}
        vals = [x["bytes_per_conn"]["median"] for x in idle.values() if x.get("bytes_per_conn")]
        v = max(vals) if vals else None
        add("<= 16 KiB per idle connection (%d held, each daemon)" % n, v, 16384,
            v is not None and v <= 16384,
            "%.1f KiB (max of c/s daemons)" % (v / 1024) if v is not None else "n/a")
        for topo, label in (("ldmesh", ""), ("ldmesh-links", "links: ")):
            idle = ((s.get(topo) or {}).get("memory") or {}).get("idle_%d" % n) or {}
            vals = [x["after_close_10s_ratio"]["median"] for x in idle.values()
                    if x.get("after_close_10s_ratio")]
            v = max(vals) if vals else None
            add("%sRSS 10 s after %d idle connections close <= 2x idle RSS (each daemon)" % (
                label, n), v, 2.0, v is not None and v <= 2.0,
                "%.2fx (max of c/s daemons)" % v if v is not None else "n/a")
        # Links (issue 13): the same run's ldmesh-links topology.
        K = s.get("ldmesh-links", {})
        if K:
            v = med(K, "close", "rps_vs_haproxy")
            add("links: connection-per-request req/s >= 5x HAProxy", v, 5.0,
                v is not None and v >= 5, "%.2fx" % v if v is not None else "n/a")
            v = med(K, "close", "rps_vs_direct")
            add("links: connection-per-request req/s >= 0.5x direct", v, 0.5,
                v is not None and v >= 0.5, "%.2fx" % v if v is not None else "n/a")
            for w, key, label in (("ka", "rps", "keep-alive req/s"),
                                  ("bulk", "mb_per_s", "bulk (1 MiB responses) MB/s"),
                                  ("stream", "mb_per_s", "bulk (one long stream) MB/s")):
                a, b = med(K, w, key), med(L, w, key)
                v = a / b if a and b else None
                add("links: %s not below ldmesh without links" % label, v, 1.0,
                    v is not None and v >= 1.0, "%.2fx" % v if v is not None else "n/a")
            idle = (K.get("memory") or {}).get("idle_%d" % n) or {}
            vals = [x["bytes_per_conn"]["median"] for x in idle.values()
                    if x.get("bytes_per_conn")]
            v = max(vals) if vals else None
            add("links: <= 16 KiB per idle app connection (%d held, each daemon)" % n, v,
                16384, v is not None and v <= 16384,
                "%.1f KiB (max of c/s daemons)" % (v / 1024) if v is not None else "n/a")
        # Issue 17's targets for one worker against HAProxy's one thread.
        v = med(L, "ka", "rps_vs_haproxy")
        add("keep-alive req/s >= 1.5x HAProxy (issue 17)", v, 1.5, v is not None and v >= 1.5,
            "%.2fx" % v if v is not None else "n/a")
        a, b = med(L, "ka", "proxy_cpu_us_per_req"), med(H, "ka", "proxy_cpu_us_per_req")
        v = a / b if a and b else None
        add("keep-alive proxy CPU per request <= 0.6x HAProxy's (issue 17)", v, 0.6,
            v is not None and v <= 0.6,
            "%.1f vs %.1f us (%.2fx)" % (a, b, v) if v is not None else "n/a")
        v = med(L, "bulk", "mb_per_s_vs_haproxy")
        add("bulk (1 MiB responses) MB/s >= 2x HAProxy (issue 17)", v, 2.0,
            v is not None and v >= 2, "%.2fx" % v if v is not None else "n/a")
        # Event loops (issue 17): two workers against one, same run.
        W2 = s.get("ldmesh-w2", {})
        if W2:
            a, b = med(W2, "ka", "rps"), med(L, "ka", "rps")
            v = a / b if a and b else None
            add("workers = 2: keep-alive req/s >= 1.7x workers = 1", v, 1.7,
                v is not None and v >= 1.7, "%.2fx" % v if v is not None else "n/a")
        return out

    def markdown_limits(self, s, A, f):
        """The limits of this machine beside the one long stream."""
        L = self.limits or {}
        gcm, tcp = L.get("aes_256_gcm_mb_s"), L.get("loopback_tcp_mb_s")
        if not gcm and not tcp:
            return
        A("### The limits of this machine, and the one long stream against them")
        A("")
        A("| limit | measured | what it costs per MiB |")
        A("|---|---|---|")
        if gcm:
            A("| AES-256-GCM, one core (`openssl speed -evp aes-256-gcm -bytes 16384`) | "
              "%s MB/s | %.0f µs of CPU per pass; a meshed byte is encrypted once and "
              "decrypted once: %.0f µs |" % (f(gcm), 2 ** 20 / gcm["median"],
                                              2 * 2 ** 20 / gcm["median"]))
        for key, label in (("memcpy_cache_mb_s", "memcpy, one core, 256 KiB blocks (in cache)"),
                           ("memcpy_mem_mb_s", "memcpy, one core, 64 MiB blocks (memory)")):
            x = L.get(key)
            if x:
                A("| %s | %s MB/s | %.0f µs per copy |" % (label, f(x), 2 ** 20 / x["median"]))
        if tcp:
            A("| one plain TCP stream over loopback (`build/bench/limits tcp`, 256 KiB writes) "
              "| %s MB/s | %s µs of CPU (sender and receiver) |" % (
                  f(tcp), f(L.get("loopback_tcp_cpu_us_per_mib"))))
        A("")
        rows = []
        for t in ("direct", "ldmesh", "ldmesh-links", "haproxy"):
            st = (s.get(t) or {}).get("stream") or {}
            mb = (st.get("mb_per_s") or {}).get("median")
            if not mb:
                continue
            cpu = (st.get("proxy_cpu_us_per_mib") or {}).get("median")
            rows.append("| %s | %.0f | %s | %s | %s | %s |" % (
                t, mb, "%.2f" % (mb / gcm["median"]) if gcm else "-",
                "%.2f" % (mb / tcp["median"]) if tcp else "-",
                "%.0f" % cpu if cpu else "-",
                "%.1fx" % (cpu / (2 * 2 ** 20 / gcm["median"])) if cpu and gcm else "-"))
        if rows:
            A("| topology | stream MB/s | of AES-256-GCM on one core | of loopback TCP | "
              "proxy CPU µs/MiB | vs AES-GCM's encrypt + decrypt |")
            A("|---|---|---|---|---|---|")
            for r in rows:
                A(r)
            A("")

    def markdown(self, res):
        s, m = res["summary"], res["machine"]
        lines = []
        A = lines.append

        def f(x, fmt="%.0f", scale=1.0):
            if not x:
                return "-"
            if x["n"] == 1 or x["min"] == x["max"]:
                return fmt % (x["median"] * scale)
            return (fmt + " (" + fmt + "–" + fmt + ")") % (
                x["median"] * scale, x["min"] * scale, x["max"] * scale)

        def ratio(e, key):
            return "%.2fx" % e[key] if key in e else "-"

        A("# ldmesh benchmark: direct vs ldmesh vs HAProxy sidecars")
        A("")
        A("Machine: %d CPUs, %s, kernel %s, %s RAM. %s; %s; %s; %s; %s. ldmesh %s." % (
            m["nproc"], m["cpu"], m["kernel"], m["memory"], m["haproxy"], m["nginx"],
            (m["wrk"] or "").split(" Copyright")[0], m.get("h2load") or "h2load -",
            m["openssl"], m["ldmesh_rev"]))
        A("Mode: %s, %d repetition(s), %d s per wrk run, topologies interleaved; "
          "run of %s took %.0f s. Values: median (min–max) over repetitions; "
          "\"added\" is the topology's median minus direct's median (min–max: per-repetition "
          "differences)." % (
              "quick" if self.quick else "full", self.reps, self.duration, m["date"],
              res["elapsed_s"]))
        A("")
        A("TLS on the mesh hop: ldmesh %s; HAProxy %s. `direct` is plaintext: the floor, "
          "no proxy, no TLS." % tuple(
              ", ".join("%s" % v for v in (res["tls"].get(t) or {}).values() if v) or "?"
              for t in ("ldmesh", "haproxy")))
        A("")
        for t in self.topologies():
            if self.available.get(t) is not True:
                A("**%s**: %s" % (t, self.available.get(t, "not run")))
                A("")
        sp = res.get("same_pod") or {}
        if sp:
            A("## Same-pod requests: wrk inside the server pod to its own nginx (issue 20)")
            A("")
            A("`same-pod-ldmesh`: nginx's listener is held by ldmeshd, which hands each "
              "accepted TCP socket to nginx (no proxy hop); `same-pod-direct`: nginx without "
              "the shim. Daemon CPU is the server daemon's.")
            A("")
            A("| topology | workload | req/s | p50 ms | p99 ms | daemon CPU µs/req | vs direct |")
            A("|---|---|---|---|---|---|---|")
            for t in ("same-pod-direct", "same-pod-ldmesh"):
                for w in ("ka", "close"):
                    e = sp.get(t, {}).get(w) or {}
                    if not e:
                        continue
                    A("| %s | %s | %s | %s | %s | %s | %s |" % (
                        t, "keep-alive" if w == "ka" else "connection per request",
                        f(e.get("rps")), f(e.get("p50_ms"), "%.3f"), f(e.get("p99_ms"), "%.3f"),
                        f(e.get("proxy_cpu_us_per_req"), "%.1f"), ratio(e, "rps_vs_direct")))
            A("")
        A("## Keep-alive, 1 KiB responses (wrk -t%d -c16, nginx)" % self.wrk_threads)
        A("")
        A("| topology | req/s | p50 ms | p99 ms | p50 added ms | p99 added ms | "
          "proxy CPU µs/req | vs direct | vs HAProxy |")
        A("|---|---|---|---|---|---|---|---|---|")
        for t, e in s.items():
            w = e.get("ka")
            if not w:
                continue
            A("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                t, f(w.get("rps")), f(w.get("p50_ms"), "%.3f"), f(w.get("p99_ms"), "%.3f"),
                f(w.get("p50_added_ms"), "%.3f"), f(w.get("p99_added_ms"), "%.3f"),
                f(w.get("proxy_cpu_us_per_req"), "%.1f"), ratio(w, "rps_vs_direct"),
                ratio(w, "rps_vs_haproxy")))
        A("")
        A("## Latency at ~1,000 req/s, keep-alive 1 KiB (wrk -c16, each connection paced "
          "at one request per 16 ms)")
        A("")
        A("| topology | req/s | p50 ms | p99 ms | p50 added ms | p99 added ms | "
          "proxy CPU µs/req |")
        A("|---|---|---|---|---|---|---|")
        for t, e in s.items():
            w = e.get("paced")
            if not w:
                continue
            A("| %s | %s | %s | %s | %s | %s | %s |" % (
                t, f(w.get("rps")), f(w.get("p50_ms"), "%.3f"), f(w.get("p99_ms"), "%.3f"),
                f(w.get("p50_added_ms"), "%.3f"), f(w.get("p99_added_ms"), "%.3f"),
                f(w.get("proxy_cpu_us_per_req"), "%.1f")))
        A("")
        A("## Connection per request, 1 KiB (wrk -c16 -H \"Connection: close\")")
        A("")
        A("| topology | req/s | p50 ms | p99 ms | p99 added ms | handshakes/s full | "
          "handshakes/s resumed | proxy CPU µs/conn | vs direct | vs HAProxy |")
        A("|---|---|---|---|---|---|---|---|---|---|")
        for t, e in s.items():
            w = e.get("close")
            if not w:
                continue
            A("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                t, f(w.get("rps")), f(w.get("p50_ms"), "%.3f"), f(w.get("p99_ms"), "%.3f"),
                f(w.get("p99_added_ms"), "%.3f"), f(w.get("handshakes_full_per_s")),
                f(w.get("handshakes_resumed_per_s")), f(w.get("proxy_cpu_us_per_req"), "%.1f"),
                ratio(w, "rps_vs_direct"), ratio(w, "rps_vs_haproxy")))
        A("")
        if s.get("ldmesh-w2"):
            A("## Event loops: one against two (issue 17)")
            A("")
            A("`ldmesh` runs `workers = 1` in both daemons, `ldmesh-w2` `workers = 2`; "
              "`haproxy` runs nbthread %d, `haproxy-t2` nbthread 2. Every proxy may use all "
              "%d CPUs of the machine, which wrk and nginx share with them. Proxy CPU is both "
              "sides' processes." % (self.hap_threads, m["nproc"]))
            A("")
            A("| workload | ldmesh w1 req/s | ldmesh w2 req/s | w2 / w1 | w1 CPU µs/req | "
              "w2 CPU µs/req | HAProxy t%d req/s | HAProxy t2 req/s | t2 / t%d | "
              "ldmesh w2 / HAProxy t2 |" % (self.hap_threads, self.hap_threads))
            A("|---|---|---|---|---|---|---|---|---|---|")
            for w in ("ka", "close"):
                e1, e2 = s.get("ldmesh", {}).get(w) or {}, s.get("ldmesh-w2", {}).get(w) or {}
                h1, h2 = s.get("haproxy", {}).get(w) or {}, s.get("haproxy-t2", {}).get(w) or {}

                def q(x, y):
                    x, y = (x or {}).get("median"), (y or {}).get("median")
                    return "%.2fx" % (x / y) if x and y else "-"
                A("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    "keep-alive" if w == "ka" else "connection per request",
                    f(e1.get("rps")), f(e2.get("rps")), q(e2.get("rps"), e1.get("rps")),
                    f(e1.get("proxy_cpu_us_per_req"), "%.1f"),
                    f(e2.get("proxy_cpu_us_per_req"), "%.1f"), f(h1.get("rps")),
                    f(h2.get("rps")), q(h2.get("rps"), h1.get("rps")),
                    q(e2.get("rps"), h2.get("rps"))))
            A("")
        go = res.get("go") or {}
        if any(go.get(t) for t in GO_TOPOS) or any(
                v is not True for v in (go.get("available") or {}).values()):
            A("## Go net/http meshed by seccomp (ldmesh-run), gonet bench -c%d (issue 11)"
              % GO_CONC)
            A("")
            A("A static Go server and client (`tests/e2e/goprogs/gonet.go`, CGO_ENABLED=0: the "
              "shim cannot reach them). `go-direct`: `gonet bench` in c → `gonet serve` in s, "
              "plaintext. `go-seccomp`: each under `ldmesh-run` with its pod's `ldmesh` daemon "
              "(the shim row's daemons, mTLS 1.3 between them). Supervisor CPU: the client's "
              "(c) and the server's (s) `ldmesh-run`, which perform the trapped socket-setup "
              "calls (connect, accept, names, SO_ERROR); reads and writes are not trapped. "
              "The shim ratios are the `ldmesh`/`direct` rows above "
              "(wrk and nginx) for the same workload.")
            A("")
            for t in GO_TOPOS:
                v = (go.get("available") or {}).get(t)
                if v is not True:
                    A("**%s**: %s" % (t, v))
                    A("")
            if any(go.get(t) for t in GO_TOPOS):
                A("| topology | workload | req/s | p50 ms | p99 ms | p50 added ms | p99 added ms | "
                  "daemon CPU µs/req | supervisor CPU µs/req c / s | "
                  "handshakes/s full / resumed | "
                  "go-seccomp/go-direct req/s, p50, p99 | shim ldmesh/direct req/s, p50, p99 |")
                A("|---|---|---|---|---|---|---|---|---|---|---|---|")

                def rat(e, suffix):
                    v = [e.get("%s_%s" % (k, suffix)) for k in ("rps", "p50_ms", "p99_ms")]
                    return " / ".join("%.2fx" % x if x is not None else "-" for x in v) \
                        if any(x is not None for x in v) else "-"
                for w in ("ka", "close"):
                    for t in GO_TOPOS:
                        e = (go.get(t) or {}).get(w)
                        if not e:
                            continue
                        hs = "-"
                        if e.get("handshakes_full_per_s") or e.get("handshakes_resumed_per_s"):
                            hs = "%s / %s" % (f(e.get("handshakes_full_per_s")),
                                              f(e.get("handshakes_resumed_per_s")))
                        A("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                            t, "keep-alive" if w == "ka" else "connection per request",
                            f(e.get("rps")), f(e.get("p50_ms"), "%.3f"), f(e.get("p99_ms"), "%.3f"),
                            f(e.get("p50_added_ms"), "%.3f"), f(e.get("p99_added_ms"), "%.3f"),
                            f(e.get("proxy_cpu_us_per_req"), "%.1f"),
                            "-" if t == "go-direct" else "%s / %s" % (
                                f(e.get("supervisor_c_cpu_us_per_req"), "%.1f"),
                                f(e.get("supervisor_s_cpu_us_per_req"), "%.1f")), hs,
                            rat(e, "vs_go_direct") if t == "go-seccomp" else "-",
                            rat(e.get("shim_ldmesh") or {}, "vs_direct") if t == "go-seccomp"
                            else "-"))
                A("")
        A("## Bulk: 1 MiB responses (wrk -c4) and one %d MiB stream (curl)" % self.stream_mib)
        A("")
        A("| topology | 1 MiB resp MB/s | p99 ms | proxy CPU µs/MiB | vs direct | vs HAProxy | "
          "stream MB/s | stream CPU µs/MiB | vs direct | vs HAProxy |")
        A("|---|---|---|---|---|---|---|---|---|---|")
        for t, e in s.items():
            w, st = e.get("bulk"), e.get("stream")
            if not w and not st:
                continue
            w, st = w or {}, st or {}
            A("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                t, f(w.get("mb_per_s")), f(w.get("p99_ms"), "%.2f"),
                f(w.get("proxy_cpu_us_per_mib")), ratio(w, "mb_per_s_vs_direct"),
                ratio(w, "mb_per_s_vs_haproxy"), f(st.get("mb_per_s")),
                f(st.get("proxy_cpu_us_per_mib")), ratio(st, "mb_per_s_vs_direct"),
                ratio(st, "mb_per_s_vs_haproxy")))
        A("")
        self.markdown_limits(s, A, f)
        A("## Memory (RSS of each proxy process: c = client side, s = server side)")
        A("")
        hdr = "| topology | RSS idle at start | of it anon / file | RSS idle after load |"
        sep = "|---|---|---|---|"
        for n in self.idle_sizes:
            hdr += " RSS with %d idle conns | bytes per idle conn (%d) |" % (n, n)
            sep += "---|---|"
        A(hdr)
        A(sep)
        for t in ("ldmesh", "haproxy", "ldmesh-links"):
            mem = (s.get(t) or {}).get("memory")
            if not mem:
                continue
            for k in ("c", "s"):
                det = (mem.get("rss_idle_start_detail") or {}).get(k) or {}
                row = "| %s %s | %s | %s | %s |" % (
                    t, k, "%.2f MiB" % (mem["rss_idle_start"][k] / 2 ** 20),
                    "%.2f / %.2f MiB" % (det.get("RssAnon", 0) / 2 ** 20,
                                         det.get("RssFile", 0) / 2 ** 20) if det else "-",
                    "%.2f MiB" % (mem["rss_idle_after_load"][k] / 2 ** 20))
                for n in self.idle_sizes:
                    x = mem.get("idle_%d" % n, {}).get(k)
                    row += " %s | %s |" % (
                        f(x["rss_held"], "%.1f", 1 / 2 ** 20) + " MiB" if x else "-",
                        f(x["bytes_per_conn"], "%.0f") if x else "-")
                A(row)
        A("")
        rows = []
        for t in ("ldmesh", "haproxy", "ldmesh-links"):
            for r in [x for x in self.idle if x["topology"] == t and "rss_held" in x]:
                for k in ("c", "s"):
                    a10 = (r.get("rss_after_close_10s") or {}).get(k)
                    rows.append("| %s %s | %d | %d | %.2f | %.1f | %.0f | %.0f / %.0f | %.1f | "
                                "%s |" % (
                                    t, k, r["n"], r["rep"], r["rss_before"][k] / 2 ** 20,
                                    r["rss_held"][k] / 2 ** 20, r["bytes_per_conn"][k] or 0,
                                    (r.get("bytes_per_conn_anon") or {}).get(k) or 0,
                                    (r.get("bytes_per_conn_file") or {}).get(k) or 0,
                                    (r.get("rss_after_close") or {}).get(k, 0) / 2 ** 20,
                                    "%.1f (%.2fx)" % (a10 / 2 ** 20,
                                                      r["after_close_10s_ratio"][k])
                                    if a10 else "-"))
        A("### After the spike: RSS 10 s after the N idle connections closed")
        A("")
        A("| proxy | N | RSS before (idle) | bytes per idle conn anon / file | "
          "RSS right after close | RSS 10 s after close | of it anon | vs idle |")
        A("|---|---|---|---|---|---|---|---|")
        for t in ("ldmesh", "haproxy", "ldmesh-links"):
            mem = (s.get(t) or {}).get("memory") or {}
            for n in self.idle_sizes:
                for k in ("c", "s"):
                    x = (mem.get("idle_%d" % n) or {}).get(k)
                    if not x or not x.get("rss_after_close_10s"):
                        continue
                    A("| %s %s | %d | %s MiB | %s / %s | %s MiB | %s MiB | %s MiB | %s |" % (
                        t, k, n, f(x["rss_before"], "%.2f", 1 / 2 ** 20),
                        f(x["bytes_per_conn_anon"]), f(x["bytes_per_conn_file"]),
                        f(x["rss_after_close"], "%.1f", 1 / 2 ** 20),
                        f(x["rss_after_close_10s"], "%.1f", 1 / 2 ** 20),
                        f(x["rss_after_close_10s_anon"], "%.1f", 1 / 2 ** 20),
                        f(x["after_close_10s_ratio"], "%.2fx")))
        A("")
        if rows:
            A("")
            A("Each idle measurement on fresh proxy processes:")
            A("")
            A("| proxy | N | rep | RSS before MiB | RSS with N held MiB | bytes/conn | "
              "of it anon / file | RSS right after the N closed MiB | "
              "RSS 10 s after MiB (vs before) |")
            A("|---|---|---|---|---|---|---|---|---|")
            lines.extend(rows)
        A("")
        A("RSS is user-space memory of the proxy process (anon: its own heap; file: mapped "
          "files, mostly shared libraries such as libcrypto, shared with other processes); "
          "kernel socket buffers are not in it (the direct topology has no proxy process). "
          "Bytes per idle connection = (RSS with N held - RSS just before) / N, read 1 s "
          "after the N are open; for ldmesh once both daemons count all N idle "
          "(ldmesh_connections_idle: quiet for 2 s, buffers given back) and one sweep more.")
        A("")
        h2 = res.get("h2") or {}
        if h2:
            A("## HTTP/2 followed stream by stream: h2load -n %d -c%d -m%d, nghttpd, 1 KiB "
              "(issue 14)" % (h2["requests_per_run"], h2["clients"], h2["streams"]))
            A("")
            A("`h2load` (nghttp2-client) in c → `nghttpd --no-tls` (nghttp2-server) in s, "
              "prior-knowledge h2c: %d connections, up to %d concurrent streams on each. "
              "ldmesh: both through the shim, as nginx and wrk above; `ldmesh` has the default "
              "telemetry (`http = true`, no access log), `ldmesh-tel-off` passes the streams "
              "unfollowed (`http = false`), `ldmesh-tel-on` follows them and writes an "
              "access-log line each. HAProxy: mode tcp, as above. Every meshed run is "
              "checked: with `http` on the server daemon's `request_total` grows by exactly "
              "h2load's requests, with it off by none while its `tcp_open_total` and TLS "
              "handshakes grow by the connections. \"CPU vs tel-off\": the topology's proxy "
              "CPU per request over `ldmesh-tel-off`'s, the cost of following; beside it the "
              "same ratio of the HTTP/1.1 keep-alive rows above." % (
                  h2["clients"], h2["streams"]))
            A("")
            for t in H2_TOPOS:
                v = (h2.get("available") or {}).get(t)
                if v is not True:
                    A("**%s** (HTTP/2): %s" % (t, v))
                    A("")
            if any(h2.get(t) for t in H2_TOPOS):
                A("| topology | req/s | mean request ms | proxy CPU µs/req | "
                  "CPU vs tel-off (added µs) | HTTP/1.1 keep-alive CPU vs tel-off | vs direct |")
                A("|---|---|---|---|---|---|---|")
                for t in H2_TOPOS:
                    e = h2.get(t)
                    if not e:
                        continue
                    A("| %s | %s | %s | %s | %s | %s | %s |" % (
                        t, f(e.get("rps")), f(e.get("mean_ms"), "%.3f"),
                        f(e.get("proxy_cpu_us_per_req"), "%.1f"),
                        "%.2fx (%+.1f)" % (e["cpu_vs_tel_off"], e["cpu_added_vs_tel_off_us"])
                        if "cpu_vs_tel_off" in e else "-",
                        ratio(e, "h1_ka_cpu_vs_tel_off"), ratio(e, "rps_vs_direct")))
                A("")
        tel = [t for t in ("ldmesh", "ldmesh-tel-off", "ldmesh-tel-on")]
        A("## Cost of telemetry (ldmesh)")
        A("")
        A("| variant | keep-alive req/s | keep-alive CPU µs/req | conn/req req/s | "
          "conn/req CPU µs/conn | HTTP/2 req/s | HTTP/2 CPU µs/req |")
        A("|---|---|---|---|---|---|---|")
        for t in tel:
            if self.available.get(t) is not True:
                A("| %s | %s | | | | | |" % (t, self.available.get(t, "not run")))
                continue
            e = s.get(t, {})
            he = h2.get(t) or {}
            A("| %s | %s | %s | %s | %s | %s | %s |" % (
                t, f(e.get("ka", {}).get("rps")),
                f(e.get("ka", {}).get("proxy_cpu_us_per_req"), "%.1f"),
                f(e.get("close", {}).get("rps")),
                f(e.get("close", {}).get("proxy_cpu_us_per_req"), "%.1f"),
                f(he.get("rps")), f(he.get("proxy_cpu_us_per_req"), "%.1f")))
        A("")
        A("## Targets (ldmesh, ratios from this run)")
        A("")
        A("| target | measured | met |")
        A("|---|---|---|")
        for x in res["targets"]:
            A("| %s | %s | %s |" % (x["target"], x["text"],
                                    {True: "yes", False: "**no**", None: "n/a"}[x["met"]]))
        A("")
        A("Setup: nginx 1 worker, access log off; wrk -t%d; HAProxy nbthread %d, mode tcp "
          "(one upstream TLS connection per client connection, like ldmesh), TLS session "
          "reuse on (its default); ldmeshd workers = 1 (ldmesh-w2: 2), "
          "buffer_size default; both proxies verify the peer's SVID against the same bundle."
          % (self.wrk_threads, self.hap_threads))
        A("")
        if res["notes"]:
            A("Notes:")
            A("")
            for n in res["notes"]:
                A("- " + n)
            A("")
        if res["errors"]:
            A("## Problems")
            A("")
            for e in res["errors"]:
                A("- " + e)
            A("")
        return "\n".join(lines) + "\n"

    def report(self):
        s = self.summary()
        res = {
            "machine": self.machine(),
            "mode": "quick" if self.quick else "full",
            "reps": self.reps, "duration_s": self.duration, "idle_sizes": self.idle_sizes,
            "stream_mib": self.stream_mib, "haproxy_threads": self.hap_threads,
            "limits": self.limits,
            "rlimit_nofile": self.nofile,
            "wrk_threads": self.wrk_threads,
            "elapsed_s": getattr(self, "elapsed", 0),
            "available": {t: self.available.get(t, "not run") for t in self.topologies()},
            "tls": self.tls_info,
            "summary": s,
            "same_pod": self.same_pod_summary(),
            "go": self.go_summary(s),
            "h2": self.h2_summary(s),
            "errors": self.errors, "notes": self.notes,
            "runs": self.runs, "idle": self.idle,
        }
        res["targets"] = self.targets(s)
        os.makedirs(self.outdir, exist_ok=True)
        with open(os.path.join(self.outdir, "results.json"), "w") as fh:
            json.dump(res, fh, indent=1, sort_keys=False)
        md = self.markdown(res)
        with open(os.path.join(self.outdir, "results.md"), "w") as fh:
            fh.write(md)
        return md


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short mode (under 2 minutes)")
    ap.add_argument("--reps", type=int, help="repetitions (default 3, quick 1)")
    ap.add_argument("--duration", type=int, help="seconds per wrk run (default 10, quick 3)")
    ap.add_argument("--out", default=os.path.join(REPO, "build", "bench"))
    ap.add_argument("--only", metavar="PARTS",
                    help="run only these parts (comma-separated: %s); the others' "
                    "rows read - or n/a" % ",".join(PARTS))
    ap.add_argument("--workloads", metavar="WORKLOADS",
                    help="load part: run only these workloads (comma-separated: %s)" %
                    ",".join(WORKLOADS))
    ap.add_argument("--profile", metavar="WORKLOADS",
                    help="instead of the benchmark: perf profiles of the ldmesh and HAProxy "
                    "processes under these workloads (comma-separated: ka,close,bulk)")
    args = ap.parse_args()

    b = Bench(args)

    def on_signal(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGTERM, on_signal)
    # Idle-connection runs need many fds in every process started from here.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(hard, 200000), max(hard, 200000)))
    except (ValueError, OSError):
        # No CAP_SYS_RESOURCE (containers): the hard limit is what we get.
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    b.nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    b.plan_idle()
    rc = 0
    try:
        b.check_tools()
        log("setting up pods %s/%s in %s" % (b.ns_c, b.ns_s, b.tmp))
        b.start()
        if args.profile:
            b.profile(args.profile.split(","))
        else:
            b.execute()
    except CannotRun as e:
        b.errors.append("could not run: %s" % e)
        log("could not run: %s" % e)
        rc = 1
    except KeyboardInterrupt as e:
        b.errors.append("interrupted (%s)" % e)
        rc = 130
    finally:
        # Access log size of the telemetry-on variant, before the files go.
        for v, d in b.daemons.items():
            p = os.path.join(d["s"].dir, "access.log")
            if os.path.exists(p):
                b.notes.append("%s: server daemon access log %d bytes" % (v, os.path.getsize(p)))
        log("cleaning up")
        b.r.cleanup()
    if args.profile:
        return rc or (1 if b.errors else 0)
    try:
        md = b.report()
        sys.stdout.write(md)
        sys.stdout.write("\nresults: %s/results.json and results.md\n" % b.outdir)
    except Exception as e:  # a report that cannot be written is a failure
        log("writing the report failed: %r" % e)
        rc = rc or 1
    if b.errors and rc == 0:
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
