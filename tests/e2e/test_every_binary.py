"""Issue 11: every binary is meshed under ldmesh-run, whatever it is linked
against: Go (CGO_ENABLED=0, static), busybox-static, a musl-dynamic C
client, and a glibc program that calls syscall(SYS_connect) past the shim.
The Go and musl programs are built here, offline, once per session.
Pod a is the caller, pod b the server pod; both strict mTLS, and pod b
allows only pod a's identity.
"""
import os
import re
import shutil
import subprocess

import pytest

import mesh
from mesh import spiffe
from pods import REPO, wait_until

CLIENT = spiffe("every", "client")
SERVER = spiffe("every", "server")
GO_SRC = os.path.join(REPO, "tests", "e2e", "goprogs", "gonet.go")
C_SRC = os.path.join(REPO, "tests", "e2e", "progs", "tcpget.c")


@pytest.fixture(scope="session")
def progs(tmp_path_factory):
    """gonet (Go, static) and tcpget built with musl-gcc (musl, dynamic)."""
    d = str(tmp_path_factory.mktemp("every-binary"))
    env = dict(os.environ, GOCACHE=os.path.join(d, "gocache"), GOPATH=os.path.join(d, "gopath"),
               GO111MODULE="off", CGO_ENABLED="0", GOFLAGS="", GOPROXY="off")
    out = {"gonet": os.path.join(d, "gonet"), "tcpget_musl": os.path.join(d, "tcpget-musl")}
    subprocess.run([shutil.which("go") or "/usr/bin/go", "build", "-o", out["gonet"], GO_SRC],
                   env=env, check=True, timeout=600, cwd=d)
    subprocess.run(["musl-gcc", "-O2", "-o", out["tcpget_musl"], C_SRC], check=True, timeout=120)
    # What they are is the point of the tests: say so if the tools change.
    with open(out["gonet"], "rb") as f:
        assert b"/lib64/ld-linux" not in f.read(4096), "gonet must be static"
    with open(out["tcpget_musl"], "rb") as f:
        assert b"ld-musl" in f.read(4096), "tcpget-musl must be musl-dynamic"
    return out


def launcher(pod):
    return os.path.join(pod.mode.build, "ldmesh-run")


def meshed_env(pod, glibc):
    """ldmesh-run finds the shim itself; in asan mode glibc programs need
    the sanitizer runtime preloaded ahead of the (instrumented) shim."""
    env = {"LDMESH_SHIM": pod.mode.shim}
    if pod.mode.asan and glibc:
        env["LD_PRELOAD"] = pod.mode.libasan
    return env


def run_meshed(pod, args, glibc=False, timeout=60):
    return pod.run([launcher(pod), "--runtime-dir", pod.runtime_dir, "--"] + [str(a) for a in args],
                   shim=False, env=meshed_env(pod, glibc), timeout=timeout)


def popen_meshed(pod, args, name, glibc=False):
    return pod.popen([launcher(pod), "--runtime-dir", pod.runtime_dir, "--"] +
                     [str(a) for a in args], name=name, shim=False, env=meshed_env(pod, glibc))


def strict_pods(cluster):
    a, b = cluster.pair(start=False)
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    mesh.configure(a, ca.issue(CLIENT, os.path.join(cluster.tmp, "id-a")), mtls="strict")
    mesh.configure(b, ca.issue(SERVER, os.path.join(cluster.tmp, "id-b")), mtls="strict",
                   policy_default="deny",
                   policies=[{"name": "from-a", "action": "allow", "principals": [CLIENT]}])
    return a, b


def start_go_server(b, progs, port=8080, addr=""):
    """gonet serve ADDR:PORT; the default ":PORT" is what most Go servers
    use: a dual-stack AF_INET6 listener."""
    srv = popen_meshed(b, [progs["gonet"], "serve", "%s:%d" % (addr, port)], name="gonet-serve")
    srv.wait_output(r"^listening ", timeout=20)
    return srv


def test_go_server_and_client_strict_mtls(cluster, progs):
    """A Go net/http server and a Go client, each under ldmesh-run in its
    own pod: requests succeed with the client pod's address as
    r.RemoteAddr, both daemons name the peer's SPIFFE ID, pod b's daemon
    holds the Go server's listener, and an unmeshed client is refused."""
    a, b = strict_pods(cluster)
    start_go_server(b, progs)  # ":8080", dual stack
    wait_until(lambda: b.listener_accepted(8080) is not None, 10,
               what="pod b's daemon to hold the Go server's listener")

    r = run_meshed(a, [progs["gonet"], "get", "http://%s:8080/hello" % b.addr4])
    assert r.returncode == 0 and "status=200" in r.stdout, r
    m = re.search(r"go remote=([0-9.]+):(\d+) path=/hello", r.stdout)
    assert m and m.group(1) == a.addr4, r.stdout

    # Both daemons saw the connection with the peer's identity: hold one
    # open with a slow request and look.
    slow = popen_meshed(a, [progs["gonet"], "load", "http://%s:8080/keep" % b.addr4, "200"],
                        name="gonet-load")
    def both():
        ca = [c for c in mesh.conns(a) if c.get("direction") == "outbound"]
        cb = [c for c in mesh.conns(b) if c.get("direction") == "inbound"]
        # Wait past the handshake: the ID is there once it is done.
        if any(c.get("peer_id") == SERVER for c in ca) and \
                any(c.get("peer_id") == CLIENT for c in cb):
            return ca, cb
        return None
    wait_until(both, 20, interval=0.02,
               what="a Go connection in both pods' conns, with the peer's SPIFFE ID")
    slow.wait_output(r"^ok=400$", timeout=60)

    # The Go server's port does not answer an unmeshed client.
    r = mesh.curl(a, "http://%s:8080/plain" % b.addr4, shim=False, max_time=5)
    assert r.returncode != 0 and "go remote" not in r.stdout, r
    # Inside its pod it answers anyone, with the real local peer (the
    # daemon hands the accepted TCP socket over, through the launcher).
    for host in ("127.0.0.1", b.addr4):
        r = mesh.curl(b, "http://%s:8080/local" % host, shim=False)
        assert r.returncode == 0 and "go remote=%s:" % host in r.stdout, r


def test_go_dial_errors_and_children(cluster, progs):
    """Go's own errors through the seccomp path: a closed port gives
    "connection refused", egress denied by policy "permission denied",
    net.DialTimeout to a port that drops SYNs "i/o timeout" (not a hang),
    and a Go server that execs a Go child to dial out has that child
    meshed too (the caller's strict port accepts it, with pod b's address)."""
    a, b = cluster.pair(start=False)
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    mesh.configure(a, ca.issue(CLIENT, os.path.join(cluster.tmp, "id-a")), mtls="strict",
                   egress="deny")
    mesh.configure(b, ca.issue(SERVER, os.path.join(cluster.tmp, "id-b")), mtls="strict")
    mesh.add_address(a, "198.51.100.1/24")
    mesh.add_address(b, "198.51.100.2/24")
    go = progs["gonet"]

    r = run_meshed(a, [go, "dial", "%s:9301" % b.addr4, "5s"])
    assert r.returncode == 1 and "connect: connection refused" in r.stdout, r

    outside = b.popen([mesh.tool("socat"), "TCP-LISTEN:8099,bind=198.51.100.2,fork,reuseaddr",
                       "EXEC:/bin/cat"], name="outside", shim=False)
    b.wait_listening(outside, 8099)
    direct = a.run([go, "dial", "198.51.100.2:8099", "5s"], shim=False)
    assert direct.returncode == 0, direct  # reachable: the refusal below is policy
    r = run_meshed(a, [go, "dial", "198.51.100.2:8099", "5s"])
    assert r.returncode == 1 and "connect: permission denied" in r.stdout, r

    # A listener with a full accept queue drops further SYNs.
    full = b.popen([mesh.tool("python3"), "-c",
                    "import socket,time\n"
                    "s=socket.socket(); s.bind(('0.0.0.0', 9400)); s.listen(0)\n"
                    "print('listening', flush=True); time.sleep(170)\n"],
                   name="full-queue", shim=False)
    full.wait_output(r"^listening$")
    fillers = a.popen([mesh.tool("python3"), "-c",
                       "import socket,time\n"
                       "c=socket.create_connection(('%s', 9400))\n"
                       "print('filled', flush=True); time.sleep(170)\n" % b.addr4],
                      name="fillers", shim=False)
    fillers.wait_output(r"^filled$")
    direct = a.run([go, "dial", "%s:9400" % b.addr4, "1s"], shim=False, timeout=30)
    assert "i/o timeout" in direct.stdout, direct  # the baseline: SYNs are dropped
    r = run_meshed(a, [go, "dial", "%s:9400" % b.addr4, "1s"], timeout=30)
    assert r.returncode == 1 and "i/o timeout" in r.stdout, r

    # fork/exec: the Go server's child dials pod a's strict Go server.
    a_srv = start_go_server(a, progs, port=8081)
    assert a_srv.alive()
    start_go_server(b, progs, port=8080)
    r = run_meshed(a, [go, "get",
                       "http://%s:8080/spawn?url=http://%s:8081/child" % (b.addr4, a.addr4)])
    assert r.returncode == 0 and "go remote=%s:" % b.addr4 in r.stdout and \
        "path=/child" in r.stdout, r


def test_busybox_musl_and_raw_syscall_clients(cluster, progs, tmp_path):
    """busybox-static httpd and wget, a musl-dynamic C client and a glibc
    client that calls syscall(SYS_connect) past the shim: all meshed under
    ldmesh-run (pod b's strict port only serves pod a's identity).  The raw
    syscall client with the shim alone is not meshed, and refused: that is
    the hole ldmesh-run closes."""
    a, b = strict_pods(cluster)
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("busybox says hi\n")
    httpd = popen_meshed(b, ["/bin/busybox", "httpd", "-f", "-p", "8082", "-h", str(www)],
                         name="busybox-httpd")
    wait_until(lambda: b.listener_accepted(8082) is not None, 10,
               what="pod b's daemon to hold busybox httpd's listener")
    assert httpd.alive()
    r = run_meshed(a, ["/bin/busybox", "wget", "-q", "-O", "-",
                       "http://%s:8082/index.html" % b.addr4])
    assert r.returncode == 0 and r.stdout == "busybox says hi\n", r
    r = a.run(["/bin/busybox", "wget", "-q", "-T", "5", "-O", "-",
               "http://%s:8082/index.html" % b.addr4], shim=False)
    assert r.returncode != 0 and "busybox says hi" not in r.stdout, r

    start_go_server(b, progs, port=8080, addr="0.0.0.0")
    r = run_meshed(a, [progs["tcpget_musl"], b.addr4, 8080, "/musl"])
    assert r.returncode == 0 and "go remote=%s:" % a.addr4 in r.stdout, r
    tcpget = a.mode.prog("tcpget")
    r = run_meshed(a, [tcpget, "--raw", b.addr4, 8080, "/raw"], glibc=True)
    assert r.returncode == 0 and "go remote=%s:" % a.addr4 in r.stdout, r
    # Control: the shim alone does not see a raw syscall.
    r = a.run([tcpget, "--raw", b.addr4, "8080", "/raw-shim-only"], timeout=30)
    assert "go remote" not in r.stdout, r


def test_launcher_status_env_and_fail_closed(cluster, progs, tmp_path):
    """ldmesh-run exits with the command's status (128+N when killed by
    N), preloads the shim only into glibc programs, refuses connections
    when no daemon answers (fail closed, ECONNREFUSED), and when the
    launcher itself is killed the calls it would have handled fail
    (ENOSYS) instead of going out in plaintext."""
    a, b = strict_pods(cluster)
    r = run_meshed(a, ["/bin/sh", "-c", "exit 7"], glibc=True)
    assert r.returncode == 7, r
    r = run_meshed(a, ["/bin/sh", "-c", "kill -TERM $$"], glibc=True)
    assert r.returncode == 128 + 15, r
    r = a.run([launcher(a)], shim=False)
    assert r.returncode == 2 and "usage: ldmesh-run" in r.stderr, r

    glibc_env = run_meshed(a, ["/usr/bin/env"], glibc=True).ok().stdout
    assert re.search(r"^LD_PRELOAD=.*libldmesh\.so$", glibc_env, re.M), glibc_env
    static_env = run_meshed(a, ["/bin/busybox", "env"]).ok().stdout
    assert not re.search(r"^LD_PRELOAD=.*libldmesh", static_env, re.M) and \
        "LDMESH_RUNTIME_DIR=" in static_env, static_env
    musl = run_meshed(a, [progs["tcpget_musl"], b.addr4, "9", "/"])  # starts: no shim in it
    assert "connect: Connection refused" in musl.stdout, musl

    # No daemon behind the runtime dir: closed, after the bounded wait.
    nowhere = str(tmp_path / "no-daemon")
    os.mkdir(nowhere)
    r = a.run([launcher(a), "--runtime-dir", nowhere, "--", progs["gonet"], "dial",
               "%s:8080" % b.addr4, "5s"], shim=False, env={"LDMESH_WAIT_READY_MS": "300"})
    assert r.returncode == 1 and "connection refused" in r.stdout, r
    assert "refusing connection (fail closed)" in r.stderr, r

    # The launcher dies while its command runs: the command's next
    # trapped call fails; nothing reaches the server.
    start_go_server(b, progs, port=8080, addr="0.0.0.0")
    marker = tmp_path / "go"
    script = ("while [ ! -e %s ]; do sleep 0.05; done; "
              "%s get http://%s:8080/after-launcher-died; "
              "echo get-exit=$?" % (marker, progs["gonet"], b.addr4))
    p = popen_meshed(a, ["/bin/busybox", "sh", "-c", script], name="orphan")
    wait_until(lambda: any(open("/proc/%s/comm" % c).read().strip() == "busybox"
                           for c in open("/proc/%d/task/%d/children" % (p.pid, p.pid))
                           .read().split()), 10, what="the launcher's child to start")
    os.kill(p.pid, 9)
    marker.write_text("")
    out = wait_until(lambda: re.search(r"get-exit=(\d+)", p.out()), 20,
                     what="the orphaned Go client to finish")
    assert out.group(1) == "1" and "connect: function not implemented" in p.out(), p.out()
    r = run_meshed(a, [progs["gonet"], "get", "http://%s:8080/check" % b.addr4])
    assert "path=/check" in r.stdout, r  # the server is fine and saw no plaintext
