"""The daemon under restarts and hostile input: a listener survives kill -9
of its daemon, bad bytes on handoff.sock and ctl.sock are logged and closed
while the daemon keeps serving, SIGTERM drains, a bad config on reload is
rejected while the old one serves, the daemon ignores a shim preloaded into
it, and loopback traffic is never intercepted."""
import os
import re
import signal
import socket
import struct
import subprocess
import time

import mesh
from pods import PYTHON, through_mesh, wait_until

LDM_HANDOFF_MAGIC = 0x484D444C
LDM_PROTO_VERSION = 1
LDM_OP_CONNECT, LDM_OP_LISTEN, LDM_OP_QUERY = 1, 2, 3
# struct ldm_handoff (include/ldmesh/proto.h), host byte order:
# magic u32, version u16, op u16, len u32, flags u32, cookie u64,
# filler_len u32, sndbuf u32, pid u32, backlog u32,
# addr {family u16, port u16 (network order), scope_id u32, addr[16]},
# listen_name[64]
HANDOFF_FMT = "=IHHIIQIIIIHHI16s64s"
HANDOFF_LEN = struct.calcsize(HANDOFF_FMT)
assert HANDOFF_LEN == 128


def handoff_header(magic=LDM_HANDOFF_MAGIC, version=LDM_PROTO_VERSION, op=LDM_OP_CONNECT,
                   length=HANDOFF_LEN, ip="10.250.0.9", port=80, listen_name=b""):
    return struct.pack(HANDOFF_FMT, magic, version, op, length, 0, 42, 0, 0, os.getpid(), 0,
                       socket.AF_INET, socket.htons(port), 0, socket.inet_aton(ip) + bytes(12),
                       listen_name)


def send_and_expect_close(path, data, shut_wr=False, fds=None, timeout=5.0):
    """Sends data (with fds as SCM_RIGHTS) to a Unix socket and returns what
    came back before the daemon closed the connection.  Fails if it stays
    open."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    got = b""
    try:
        try:
            if fds:
                s.sendmsg([data[:HANDOFF_LEN]], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                  struct.pack("%di" % len(fds), *fds))])
                data = data[HANDOFF_LEN:]
            for i in range(0, len(data), 65536):
                s.sendall(data[i:i + 65536])
            if shut_wr:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon closed before reading it all: fine
        deadline = time.monotonic() + timeout
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                raise AssertionError("daemon kept the connection open after %r..." % data[:40])
            if not chunk:
                break
            got += chunk
            if time.monotonic() > deadline:
                raise AssertionError("daemon kept sending and never closed")
    finally:
        s.close()
    return got


def log_after(pod, offset, timeout=3.0):
    """Waits until the daemon's stderr has grown past offset; returns the
    new text (possibly empty after timeout)."""
    end = time.monotonic() + timeout
    while True:
        text = pod.daemon_log()[offset:]
        if text.strip() or time.monotonic() > end:
            # give a multi-line message a moment to complete
            time.sleep(0.1)
            return pod.daemon_log()[offset:]
        time.sleep(0.05)


def serve_http(pod, port):
    root = os.path.join(pod.dir, "www")
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "ok.txt"), "w") as f:
        f.write("still serving\n")
    srv = pod.popen([PYTHON, "-m", "http.server", str(port), "--bind", pod.addr4, "--directory",
                     root], name="http.server")
    pod.wait_listening(srv, port)
    return srv


def get_ok(client, server, port, timeout=20):
    r = client.run(["curl", "-sS", "--max-time", str(timeout),
                    "http://%s:%d/ok.txt" % (server.addr4, port)], timeout=timeout + 10)
    assert r.returncode == 0 and r.stdout == "still serving\n", r
    return r


def test_listener_survives_daemon_restart(pods):
    a, b = pods
    srv = serve_http(b, 8090)
    get_ok(a, b, 8090)

    old = b.daemon
    assert b.stop_daemon(signal.SIGKILL, timeout=10) == -signal.SIGKILL
    b.start_daemon()
    assert b.daemon.pid != old.pid

    # The restarted daemon gets the listener back (the shim re-registers it)
    # and serves the request.
    with through_mesh(a, b, 8090, timeout=15):
        get_ok(a, b, 8090, timeout=20)
    assert srv.alive(), "the server was restarted or died: " + srv.describe()
    hits = [l for l in srv.err().splitlines() if "GET /ok.txt" in l]
    assert len(hits) == 2 and all(l.startswith(a.addr4 + " ") for l in hits), srv.err()


BAD_HANDOFF = [
    # (name, bytes, half-close after sending, word the log line should have)
    ("garbage", b"\x17\x03\x03 this is not a handoff header at all" * 4, False, "magic"),
    ("truncated header", None, True, None),
    ("unknown version", "version", False, "version"),
    ("wrong magic", "magic", False, "magic"),
    ("unknown op", "op", False, None),
    ("1 MiB header length", "huge", False, "length"),
    ("1 MiB of bytes", b"A" * (1 << 20), False, None),
    ("connect without fds", "nofds", True, None),
    ("connect with a pipe as the socket", "pipe", True, None),
]


def bad_handoff_bytes(kind, data):
    if isinstance(data, bytes):
        return data
    if kind == "truncated header":
        return handoff_header()[:20]
    if data == "version":
        return handoff_header(version=99)
    if data == "magic":
        return handoff_header(magic=0xDEADBEEF)
    if data == "op":
        return handoff_header(op=77)
    if data == "huge":
        return handoff_header(length=1 << 20) + bytes(1 << 20)
    return handoff_header()  # nofds, pipe


def test_bad_input_on_handoff_socket(pods):
    a, b = pods
    serve_http(b, 8091)
    get_ok(a, b, 8091)
    wrong = []  # every case runs; the failures are reported together
    for pod in (a, b):
        base_fds = pod.fd_count()
        for name, data, shut, word in BAD_HANDOFF:
            offset = len(pod.daemon_log())
            payload = bad_handoff_bytes(name, data)
            fds = None
            if data == "pipe":
                r, w = os.pipe()
                fds = [r, w]
            try:
                send_and_expect_close(pod.handoff_sock, payload, shut_wr=shut, fds=fds)
            finally:
                for fd in fds or []:
                    os.close(fd)
            new = log_after(pod, offset)
            if not new.strip():
                wrong.append("pod %s, %s: nothing logged" % (pod.label, name))
            elif word and word not in new.lower():
                wrong.append("pod %s, %s: log says %r, expected a mention of %r" % (
                    pod.label, name, new.strip(), word))
            assert pod.daemon.alive(), "daemon died on %s: %s" % (name, pod.daemon.describe())
        try:
            wait_until(lambda: pod.fd_count() <= base_fds, 5, what="fd count")
        except TimeoutError:
            raise AssertionError("pod %s daemon leaked fds on bad input: %d -> %d" % (
                pod.label, base_fds, pod.fd_count()))
    assert not wrong, "\n".join(wrong)
    with through_mesh(a, b, 8091):
        get_ok(a, b, 8091)
    assert a.ctl("status").returncode == 0 and b.ctl("status").returncode == 0


BAD_CTL = [
    ("garbage", b"garbage\n", False),
    ("no newline", b"LDMCTL1 text status", True),
    ("unknown version", b"LDMCTL9 text status\n", False),
    ("wrong prefix", b"HTTP/1.1 text status\n", False),
    ("unknown verb", b"LDMCTL1 text frobnicate\n", False),
    ("unknown format", b"LDMCTL1 yaml status\n", False),
    ("binary", b"\x00\xff\x00LDMCTL1\x00\n", False),
    ("1 MiB request", b"LDMCTL1 text status " + b"A" * (1 << 20), False),
]


def test_bad_input_on_ctl_socket(pods):
    a, b = pods
    serve_http(b, 8092)
    wrong = []  # every case runs; the failures are reported together
    for name, data, shut in BAD_CTL:
        offset = len(b.daemon_log())
        reply = send_and_expect_close(b.ctl_sock, data, shut_wr=shut)
        if not reply.startswith(b"ERR "):
            wrong.append("%s: daemon answered %r, expected 'ERR ...'" % (name, reply[:200]))
        new = log_after(b, offset)
        if not new.strip():
            wrong.append("%s: nothing logged" % name)
        assert b.daemon.alive(), "daemon died on %s: %s" % (name, b.daemon.describe())
    assert not wrong, "\n".join(wrong)
    r = b.ctl("status")
    assert r.returncode == 0, r
    with through_mesh(a, b, 8092):
        get_ok(a, b, 8092)


def test_daemon_ignores_preloaded_shim(cluster):
    """LD_PRELOAD=libldmesh.so in the daemon's own environment must not
    make it intercept its own sockets."""
    a, b = cluster.pair(start=False)
    for pod in (a, b):
        pod.start_daemon(env={"LD_PRELOAD": pod.mode.preload(),
                              "LDMESH_RUNTIME_DIR": pod.runtime_dir})
    serve_http(b, 8093)
    with through_mesh(a, b, 8093):
        get_ok(a, b, 8093)


def test_loopback_not_intercepted(pods):
    """Listeners and connections on 127.0.0.1 stay plain kernel TCP: no
    listener registered with the daemon, no connection in its table."""
    a, b = pods
    srv = a.popen([a.mode.prog("echosrv"), "127.0.0.1", "9700"], name="echosrv-lo")
    a.wait_listening(srv, 9700)
    hold = a.python_popen("hold.py", "127.0.0.1", 9700, 100, stdin=subprocess.PIPE)
    hold.wait_output(r"^ready ")
    r = a.prog("sockinfo", "127.0.0.1", 9700).ok()
    assert r.kv()["peer"] == "127.0.0.1:9700", r

    status = a.ctl_json("status")
    assert "9700" not in str(status.get("listeners")), status
    conns = a.ctl_json("conns")
    assert not [c for c in conns if "9700" in str(c)], conns
    hold.popen.stdin.close()
    hold.wait(10)


def test_sigterm_drains_live_connections(cluster):
    """SIGTERM: the daemon stops taking new connections, a live one keeps
    working, and the daemon exits 0 as soon as it closes (well before
    drain_timeout_ms)."""
    a, b = cluster.pair(start=False)
    a.write_config("drain_timeout_ms = 30000;\n")
    a.start_daemon()
    b.start_daemon()
    srv = b.popen([b.mode.prog("echosrv"), b.addr4, "9850"], name="echosrv")
    b.wait_listening(srv, 9850)
    chat = a.python_popen("chat.py", b.addr4, 9850, stdin=subprocess.PIPE)
    chat.wait_output(r"^connected ")

    def say(n):
        chat.popen.stdin.write(b"send %d\n" % n)
        chat.popen.stdin.flush()
        chat.wait_output(r"^ok %d$" % n)

    say(1000)
    a.daemon.expected_exit = True
    a.daemon.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert a.daemon.alive(), "daemon exited with a live connection: " + a.daemon.describe()
    say(2000)  # still proxied while draining
    kv = a.prog("connerr", "block", b.addr4, 9850, env={"LDMESH_WAIT_READY_MS": "1000"},
                timeout=30).ok().kv()
    assert kv["errno"] == "ECONNREFUSED", "a new connection during drain: %s" % kv
    chat.popen.stdin.close()
    chat.wait_output(r"^closed$")
    rc = a.daemon.wait(10)
    assert rc == 0, a.daemon.describe()


def test_drain_with_nothing_live_answers_then_exits(cluster):
    """`ldmeshctl drain` on a daemon with no connection: the drain is over
    in the turn that starts it, and the daemon still writes the answer
    before it exits 0 (it used to exit first, and ldmeshctl saw no
    answer)."""
    a, _ = cluster.pair()
    a.daemon.expected_exit = True
    r = a.ctl("drain", "--timeout", "5").ok()
    assert r.stdout.startswith("draining (up to 5000 ms)"), r
    assert a.daemon.wait(10) == 0, a.daemon.describe()
    assert "drained; exiting" in a.daemon_log()


def test_reload_rejects_bad_config_and_keeps_serving(pods):
    """A config with an error, loaded by SIGHUP or `ldmeshctl reload`, is
    rejected with file:line, and the daemon keeps serving with the old one;
    a good config then reloads."""
    a, b = pods
    serve_http(b, 8094)
    good = open(b.config).read()
    with open(b.config, "w") as f:
        f.write(good + "outbound_typo = 1;\nthis is not libconfig\n")
    offset = len(b.daemon_log())
    b.daemon.signal(signal.SIGHUP)
    # Whatever else the daemon logs meanwhile, the rejection names file:line.
    mesh.wait_log(b, r"ldmesh\.conf:\d+", offset)
    assert b.daemon.alive()
    with through_mesh(a, b, 8094):
        get_ok(a, b, 8094)

    r = b.ctl("reload")
    assert r.returncode != 0 and re.search(r"ldmesh\.conf:\d+", r.stdout + r.stderr), r
    with open(b.config, "w") as f:
        f.write(good)
    assert b.ctl("reload").returncode == 0
    with through_mesh(a, b, 8094):
        get_ok(a, b, 8094)


def test_restart_binds_admin_addr_at_once(cluster):
    """A daemon stopped with SIGTERM lets go of admin_addr before it exits,
    so one started right after binds it.  Under io_uring the kernel tears
    the ring down after the process is gone, and until then the accept it
    holds keeps the admin socket listening: restarts used to fail now and
    then with "Address already in use"."""
    a, _ = cluster.pair(start=False)
    mesh.configure(a, None, start=False)  # admin_addr 127.0.0.1:4191
    for _ in range(15):
        a.start_daemon()
        assert mesh.metrics(a), "no /metrics on admin_addr"
        assert a.stop_daemon() == 0, a.daemon.describe()
