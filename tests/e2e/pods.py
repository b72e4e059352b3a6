"""Pods for the e2e tests: network namespaces joined by a veth pair, each
with its own ldmeshd, runtime dir and config, and apps run inside them with
the shim preloaded.

Everything a Cluster starts is recorded and undone by Cluster.close(), which
the `cluster` fixture calls even when the test failed:
  - every process it started (own session, so the whole process group) gets
    SIGTERM, then SIGKILL after a bounded wait;
  - processes still inside its namespaces (children that left the process
    group, e.g. sshd's per-connection sessions, or a daemon that
    `ldmeshctl run` started) are killed: nothing else runs in a namespace we
    created a moment ago;
  - its namespaces and runtime dirs are deleted.
Names carry a per-run prefix "ldmt<pid>" so parallel runs never collide.
Every wait here has a timeout.

through_mesh() proves a connection went through both daemons rather than
straight over the veth: it reads `ldmeshctl status --json` of each daemon
(the client daemon's handoffs_total, the server daemon's listeners[].accepted
for the port).
"""
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers")
PYTHON = "/usr/bin/python3"  # Debian's python, never a pyenv shim
RUN_PREFIX = "ldmt%d" % os.getpid()
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:")

# Stock binaries that cannot run with libasan preloaded at all, shim or no
# shim: Debian's curl and wget hang at startup in setlocale() (the first
# setlocale(LC_ALL, "") leaves glibc's __libc_setlocale_lock held under the
# ASan interceptor; `LD_PRELOAD=$(gcc -print-file-name=libasan.so) curl
# --version` never returns).  In asan mode they get the plain shim; the
# daemons are still the ASan+UBSan build, and every other app gets the ASan
# shim.
ASAN_PRELOAD_HANGS = {"curl", "wget"}

DRAIN_MS = 3000  # drain_timeout_ms in test configs

_pair_counter = itertools.count(1)
_proc_counter = itertools.count(1)


def gcc_runtime(name):
    """Absolute path of a gcc runtime library such as libasan.so."""
    out = subprocess.run(["gcc", "-print-file-name=" + name], capture_output=True,
                         text=True, timeout=30).stdout.strip()
    return os.path.realpath(out) if os.path.isabs(out) else None


def sh(*args, timeout=30, check=True):
    """Runs a setup command (ip ...) in the root namespace."""
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(args), r.returncode,
                                                   r.stderr.strip()))
    return r


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Polls pred() until it returns a true value; returns it or raises."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def tcp_listening(pid, port):
    """True when a LISTEN socket on port exists in pid's network namespace."""
    for f in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, f)) as fh:
                next(fh)
                for line in fh:
                    parts = line.split()
                    local, state = parts[1], parts[3]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        return True
        except (FileNotFoundError, ProcessLookupError):
            return False
    return False


def cleanup_stale_namespaces():
    """Deletes empty namespaces left by earlier runs of this suite whose
    pytest process is gone.  Namespaces with processes are left alone."""
    r = sh("ip", "netns", "list", check=False)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(r"^ldmt(\d+)(n\d+[ab]|h\d+(hub|p|o|w))$", name)
        if not m or pid_alive(int(m.group(1))):
            continue
        pids = sh("ip", "netns", "pids", name, check=False).stdout.split()
        if not pids:
            sh("ip", "netns", "del", name, check=False)


class Mode:
    """Which binaries and which io backend a test runs with."""

    def __init__(self, name):
        self.name = name
        self.asan = name == "asan"
        self.backend = "epoll" if name == "epoll" else "io_uring"
        # Event loops per daemon: the suite runs with one (io_uring) and
        # with two (epoll, and asan on io_uring, where ASan watches the
        # threads' hand-overs).
        self.workers = 1 if name == "io_uring" else 2
        self.build = os.path.join(REPO, "build-asan" if self.asan else "build")
        self.plain_build = os.path.join(REPO, "build")
        self.ldmeshd = os.path.join(self.build, "ldmeshd")
        self.ldmeshctl = os.path.join(self.build, "ldmeshctl")
        self.shim = os.path.join(self.build, "libldmesh.so")
        self.plain_shim = os.path.join(self.plain_build, "libldmesh.so")
        self.libasan = gcc_runtime("libasan.so") if self.asan else None

    def prog(self, name):
        return os.path.join(self.build, "progs", name)

    def check_built(self):
        need = [self.ldmeshd, self.ldmeshctl, self.shim]
        need += [self.prog(p) for p in ("sockinfo", "acceptinfo", "connerr", "halfclose",
                                        "manyconn", "echosrv", "execpeer", "fdops")]
        if self.asan:
            need.append(self.plain_shim)
        missing = [p for p in need if not os.path.exists(p)]
        if missing:
            how = "make asan" if self.asan else "make all"
            pytest.fail("mode %s: missing %s (run `%s` first)" % (
                self.name, ", ".join(os.path.relpath(p, REPO) for p in missing), how),
                pytrace=False)
        if self.asan and not (self.libasan and os.path.exists(self.libasan)):
            pytest.fail("mode asan: `gcc -print-file-name=libasan.so` found no libasan",
                        pytrace=False)

    def preload(self, plain=False):
        """LD_PRELOAD for apps.  Under ASan the sanitizer runtime must come
        first in the initial library list, ahead of the instrumented shim."""
        if self.asan and not plain:
            return "%s:%s" % (self.libasan, self.shim)
        return self.plain_shim if self.asan else self.shim


class Result:
    def __init__(self, args, returncode, stdout, stderr):
        self.args, self.returncode, self.stdout, self.stderr = args, returncode, stdout, stderr

    def __repr__(self):
        return "<Result rc=%s args=%r>\n--- stdout\n%s\n--- stderr\n%s" % (
            self.returncode, self.args, self.stdout[-4000:], self.stderr[-4000:])

    def ok(self):
        assert self.returncode == 0, "command failed: %r" % self
        return self

    def kv(self):
        """key=value pairs from the test programs' output (last one wins)."""
        out = {}
        for m in re.finditer(r"(\w+)=(\S*)", self.stdout):
            out[m.group(1)] = m.group(2)
        return out


class Proc:
    """A process we started; its stdout/stderr go to files."""

    def __init__(self, popen, name, out_path, err_path, asan_checked):
        self.popen, self.name = popen, name
        self.out_path, self.err_path = out_path, err_path
        self.asan_checked = asan_checked
        self.pid = popen.pid

    def alive(self):
        return self.popen.poll() is None

    def out(self):
        return _read(self.out_path)

    def err(self):
        return _read(self.err_path)

    def describe(self):
        return "%s (pid %d, rc %s)\n--- stdout tail\n%s\n--- stderr tail\n%s" % (
            self.name, self.pid, self.popen.poll(), self.out()[-3000:], self.err()[-3000:])

    def wait_output(self, pattern, timeout=15, stream="out"):
        """Waits for regex pattern in stdout ("out"), stderr ("err") or
        either ("both"); returns the match.  Fails early if the process
        exits without printing it."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            text = {"out": self.out, "err": self.err}.get(stream, lambda: self.out() + self.err())()
            m = rx.search(text)
            if m:
                return m
            if not self.alive():
                text = {"out": self.out, "err": self.err}.get(
                    stream, lambda: self.out() + self.err())()
                m = rx.search(text)
                if m:
                    return m
                raise AssertionError("%r never appeared; process exited: %s" % (
                    pattern, self.describe()))
            if time.monotonic() > deadline:
                raise AssertionError("%r did not appear within %ss: %s" % (
                    pattern, timeout, self.describe()))
            time.sleep(0.05)

    def wait(self, timeout):
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("%s still running after %ss: %s" % (
                self.name, timeout, self.describe()))

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout=3.0):
        """SIGTERM to the process group (our own session), SIGKILL after
        timeout.  Returns the exit status."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(wait)
                # the leader is gone; its group may still hold children
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                break
            except subprocess.TimeoutExpired:
                continue
        return self.popen.poll()


def _read(path):
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


class Pod:
    """One network namespace with its runtime dir, config and daemon."""

    def __init__(self, cluster, label, ns, addr4, addr6, peer4, peer6):
        self.cluster, self.label, self.ns = cluster, label, ns
        self.addr4, self.addr6 = addr4, addr6
        self.peer4, self.peer6 = peer4, peer6
        self.mode = cluster.mode
        self.dir = os.path.join(cluster.tmp, "pod" + label)
        os.makedirs(self.dir, exist_ok=True)
        # Unix socket paths are limited to 108 bytes: keep runtime dirs short.
        self.runtime_dir = tempfile.mkdtemp(prefix="%s%s" % (RUN_PREFIX, label), dir="/tmp")
        cluster.rundirs.append(self.runtime_dir)
        self.config = os.path.join(self.dir, "ldmesh.conf")
        self.daemon = None
        self.daemon_logs = []
        self._stale_ino = None
        self.write_config()

    @property
    def handoff_sock(self):
        return os.path.join(self.runtime_dir, "handoff.sock")

    @property
    def ctl_sock(self):
        return os.path.join(self.runtime_dir, "ctl.sock")

    def config_text(self, extra=""):
        """The pod's config.  drain_timeout_ms is short so that a daemon
        that (wrongly) still counts live connections at teardown cannot
        stretch every test by the 30 s default; extra may override it."""
        if "drain_timeout_ms" not in extra:
            extra = "drain_timeout_ms = %d;\n%s" % (DRAIN_MS, extra)
        return ('runtime_dir = "%s";\n'
                'admin_addr = "";\n'
                'io_backend = "%s";\n'
                'workers = %d;\n'
                'inbound = { mtls = "disable"; };\n'
                'outbound = { mesh_networks = [ "10.250.0.0/16", "fd00:250::/64" ]; };\n'
                '%s') % (self.runtime_dir, self.mode.backend, self.mode.workers, extra)

    def write_config(self, extra=""):
        with open(self.config, "w") as f:
            f.write(self.config_text(extra))

    # --- environment -----------------------------------------------------
    def base_env(self, extra=None):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LDMESH_", "LD_PRELOAD", "ASAN_", "UBSAN_", "PYENV",
                                    "PYTHON"))}
        env["PATH"] = PATH
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        if self.mode.asan:
            # Stock apps leak at exit by design; leaks are not what we test.
            env["ASAN_OPTIONS"] = "detect_leaks=0"
            env["UBSAN_OPTIONS"] = "print_stacktrace=1"
        if extra:
            env.update(extra)
        return env

    def shim_env(self, plain=False, extra=None):
        env = self.base_env()
        env["LD_PRELOAD"] = self.mode.preload(plain=plain)
        env["LDMESH_RUNTIME_DIR"] = self.runtime_dir
        if extra:
            env.update(extra)
        return env

    def _env(self, shim, plain, env):
        return self.shim_env(plain=plain, extra=env) if shim else self.base_env(env)

    # --- daemon ------------------------------------------------------------
    def start_daemon(self, wait=True, env=None, timeout=20):
        """Starts ldmeshd in the pod's namespace, waits until handoff.sock
        accepts connections."""
        assert self.daemon is None or not self.daemon.alive(), "daemon already running"
        self._stale_ino = sock_ino(self.handoff_sock)
        n = len(self.daemon_logs) + 1
        self.daemon = self.cluster.popen(
            self.ns, [self.mode.ldmeshd, "-c", self.config, "--runtime-dir", self.runtime_dir],
            name="ldmeshd-%s-%d" % (self.label, n), dirpath=self.dir,
            env=self.base_env(env), daemon=True)
        self.daemon.expected_exit = False
        self.daemon_logs.append(self.daemon.err_path)
        if wait:
            self.wait_ready(timeout)
        return self.daemon

    def wait_ready(self, timeout=20):
        d = self.daemon

        def ready():
            if d is not None and not d.alive():
                raise AssertionError("ldmeshd exited during startup: " + d.describe())
            # After a kill -9 the old daemon's socket file is still there,
            # and with io_uring its listening socket even accepts for a few
            # ms after the process is reaped (the ring is torn down
            # asynchronously): only the new daemon's socket counts.
            ino = sock_ino(self.handoff_sock)
            return ino is not None and ino != self._stale_ino and \
                unix_connectable(self.handoff_sock)

        try:
            wait_until(ready, timeout, what="%s to accept" % self.handoff_sock)
        except TimeoutError as e:
            raise AssertionError("%s; %s" % (e, d.describe() if d else "no daemon"))

    def stop_daemon(self, sig=signal.SIGTERM, timeout=15):
        """Sends sig to the daemon and waits for it; returns its exit status."""
        d = self.daemon
        d.expected_exit = True
        d.signal(sig)
        d.wait(timeout)
        return d.popen.returncode

    @property
    def daemon_pid(self):
        return self.daemon.pid

    def daemon_log(self):
        return _read(self.daemon.err_path)

    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.daemon.pid))

    # --- apps ------------------------------------------------------------
    def popen(self, args, name=None, shim=True, plain=False, env=None, stdin=None):
        """Starts args in the pod (with the shim unless shim=False); output
        goes to files in the pod dir.  plain=True: the non-ASan shim even in
        asan mode."""
        name = name or os.path.basename(args[0])
        plain = plain or os.path.basename(str(args[0])) in ASAN_PRELOAD_HANGS
        p = self.cluster.popen(self.ns, args, name=name, dirpath=self.dir,
                               env=self._env(shim, plain, env), stdin=stdin,
                               asan_checked=shim and self.mode.asan and not plain)
        return p

    def run(self, args, shim=True, plain=False, env=None, timeout=60, input=None):
        """Runs args in the pod to completion (bounded by timeout); returns
        a Result with text stdout/stderr."""
        plain = plain or os.path.basename(str(args[0])) in ASAN_PRELOAD_HANGS
        res = self.cluster.run(self.ns, args, env=self._env(shim, plain, env), timeout=timeout,
                               input=input)
        if shim and self.mode.asan and not plain:
            self.cluster.scan_sanitizer(res.stderr, "%s in pod %s" % (args[0], self.label))
        return res

    def prog(self, name, *args, **kw):
        return self.run([self.mode.prog(name)] + [str(a) for a in args], **kw)

    def python(self, helper, *args, **kw):
        return self.run([PYTHON, os.path.join(HELPERS, helper)] + [str(a) for a in args], **kw)

    def python_popen(self, helper, *args, **kw):
        return self.popen([PYTHON, os.path.join(HELPERS, helper)] + [str(a) for a in args],
                          name=helper, **kw)

    def ctl(self, *args, timeout=20):
        """ldmeshctl --runtime-dir <pod> ARGS (the control socket is a file:
        no namespace needed)."""
        return self.cluster.run(None, [self.mode.ldmeshctl, "--runtime-dir", self.runtime_dir]
                                + list(args), env=self.base_env(), timeout=timeout)

    def ctl_json(self, *args):
        r = self.ctl(*args, "--json").ok()
        try:
            return json.loads(r.stdout)
        except ValueError as e:
            raise AssertionError("ldmeshctl %s --json printed invalid JSON (%s): %r" % (
                " ".join(args), e, r))

    # --- what the daemon saw ---------------------------------------------
    def status(self):
        return self.ctl_json("status")

    def handoffs_total(self):
        """CONNECT handoffs this pod's daemon accepted (status --json)."""
        st = self.status()
        assert "handoffs_total" in st, "status --json has no handoffs_total: %s" % st
        return st["handoffs_total"]

    def listener_accepted(self, port):
        """Connections the daemon accepted on the app listener registered
        for port, or None when no such listener is registered."""
        for l in self.status().get("listeners", []):
            if isinstance(l, dict) and str(l.get("addr", "")).endswith(":%d" % port):
                return l.get("accepted", 0)
        return None

    def wait_listening(self, proc, port, timeout=20):
        """Waits until proc (a server in this pod) has a TCP socket
        listening on port."""
        def ok():
            if not proc.alive():
                raise AssertionError("server exited: " + proc.describe())
            return tcp_listening(proc.pid, port)

        try:
            wait_until(ok, timeout, what="port %d to listen in pod %s" % (port, self.label))
        except TimeoutError as e:
            raise AssertionError("%s: %s" % (e, proc.describe()))


@contextlib.contextmanager
def through_mesh(client, server, port, n=1, timeout=5):
    """Asserts that the n connections the block makes from pod client to
    port in pod server went through both daemons: the client's daemon took
    n more CONNECT handoffs and the server's daemon accepted n more
    connections on the listener the app registered for port."""
    try:
        wait_until(lambda: server.listener_accepted(port) is not None, timeout,
                   what="a listener for port %d in pod %s's daemon" % (port, server.label))
    except TimeoutError:
        raise AssertionError("the server's listen() on port %d was not handed to pod %s's "
                             "daemon: %s" % (port, server.label, server.status()))
    h0, a0 = client.handoffs_total(), server.listener_accepted(port)
    yield
    try:
        wait_until(lambda: client.handoffs_total() >= h0 + n
                   and (server.listener_accepted(port) or 0) >= a0 + n, timeout,
                   what="the daemons to count the connections")
    except TimeoutError:
        raise AssertionError(
            "not through the mesh: pod %s daemon handoffs %d -> %d, pod %s daemon accepted on "
            "port %d %d -> %s (expected +%d each)" % (
                client.label, h0, client.handoffs_total(), server.label, port, a0,
                server.listener_accepted(port), n))


def sock_ino(path):
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def unix_connectable(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class Cluster:
    """Owns everything one test creates."""

    def __init__(self, mode, tmp):
        self.mode = mode
        self.tmp = str(tmp)
        self.namespaces = []
        self.rundirs = []
        self.procs = []
        self.pods = []
        self.sanitizer_reports = []

    # --- topology --------------------------------------------------------
    def pair(self, start=True):
        """Two pods, a (10.250.N.1, fd00:250::1) and b (10.250.N.2,
        fd00:250::2), joined by a veth pair; daemons started unless
        start=False."""
        k = next(_pair_counter)
        subnet = (k - 1) % 250 + 1
        ns_a, ns_b = "%sn%da" % (RUN_PREFIX, k), "%sn%db" % (RUN_PREFIX, k)
        for ns in (ns_a, ns_b):
            sh("ip", "netns", "add", ns)
            self.namespaces.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        # Created straight inside the namespaces: no name in the root one.
        sh("ip", "link", "add", "veth0", "netns", ns_a, "type", "veth",
           "peer", "name", "veth0", "netns", ns_b)
        a4, b4 = "10.250.%d.1" % subnet, "10.250.%d.2" % subnet
        a6, b6 = "fd00:250::1", "fd00:250::2"
        for ns, v4, v6 in ((ns_a, a4, a6), (ns_b, b4, b6)):
            sh("ip", "-n", ns, "addr", "add", v4 + "/24", "dev", "veth0")
            sh("ip", "-n", ns, "-6", "addr", "add", v6 + "/64", "dev", "veth0", "nodad")
            sh("ip", "-n", ns, "link", "set", "veth0", "up")
        a = Pod(self, "a", ns_a, a4, a6, b4, b6)
        b = Pod(self, "b", ns_b, b4, b6, a4, a6)
        self.pods += [a, b]
        if start:
            a.start_daemon()
            b.start_daemon()
        return a, b

    # --- processes -------------------------------------------------------
    def _cmd(self, ns, args):
        return (["ip", "netns", "exec", ns] if ns else []) + list(args)

    def popen(self, ns, args, name, dirpath, env, stdin=None, daemon=False,
              asan_checked=False):
        n = next(_proc_counter)
        out_path = os.path.join(dirpath, "%s.%d.out" % (name, n))
        err_path = os.path.join(dirpath, "%s.%d.err" % (name, n))
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            p = subprocess.Popen(self._cmd(ns, args), stdout=out, stderr=err,
                                 stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                 env=env, start_new_session=True, cwd=dirpath)
        proc = Proc(p, name, out_path, err_path, asan_checked or (daemon and self.mode.asan))
        proc.is_daemon = daemon
        self.procs.append(proc)
        return proc

    def run(self, ns, args, env, timeout, input=None):
        p = subprocess.Popen(self._cmd(ns, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                             env=env, start_new_session=True, cwd=self.tmp)
        try:
            out, err = p.communicate(input=input.encode() if isinstance(input, str) else input,
                                     timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, err = p.communicate(timeout=10)
            raise AssertionError("timed out after %ss: %s\n--- stdout\n%s\n--- stderr\n%s" % (
                timeout, " ".join(map(str, args)), out.decode(errors="replace")[-3000:],
                err.decode(errors="replace")[-3000:]))
        finally:
            # anything the command left behind in its session
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        return Result(list(args), p.returncode, out.decode(errors="replace"),
                      err.decode(errors="replace"))

    def scan_sanitizer(self, text, where):
        bad = [l for l in text.splitlines() if any(m in l for m in SANITIZER_MARKERS)]
        if bad:
            self.sanitizer_reports.append("%s:\n  %s" % (where, "\n  ".join(bad[:20])))

    # --- teardown ----------------------------------------------------------
    def close(self):
        problems = []
        apps = [p for p in self.procs if not p.is_daemon]
        daemons = [p for p in self.procs if p.is_daemon]
        for p in reversed(apps):
            try:
                p.stop(timeout=3)
            except Exception as e:  # keep tearing down
                problems.append("stopping %s: %r" % (p.name, e))
        for d in daemons:
            try:
                if d.alive():
                    d.stop(timeout=DRAIN_MS / 1000.0 + 3)
                elif not getattr(d, "expected_exit", True):
                    problems.append("%s died during the test (rc %s); stderr tail:\n%s" % (
                        d.name, d.popen.returncode, d.err()[-2000:]))
            except Exception as e:
                problems.append("stopping %s: %r" % (d.name, e))
        for ns in self.namespaces:
            # Leftovers inside our own namespaces, e.g. processes that called
            # setsid() or a daemon that `ldmeshctl run` started.
            for _ in range(3):
                pids = [int(x) for x in sh("ip", "netns", "pids", ns, check=False).stdout.split()]
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.2)
            r = sh("ip", "netns", "del", ns, check=False)
            if r.returncode != 0:
                problems.append("ip netns del %s: %s" % (ns, r.stderr.strip()))
        for d in self.rundirs:
            shutil.rmtree(d, ignore_errors=True)
        if self.mode.asan:
            for p in self.procs:
                if p.asan_checked:
                    self.scan_sanitizer(p.err(), "%s (%s)" % (p.name, p.err_path))
        if self.sanitizer_reports:
            problems.append("sanitizer reports:\n" + "\n".join(self.sanitizer_reports))
        if problems:
            raise AssertionError("teardown: " + "\n".join(problems))
