"""Idle connections give their buffers back (docs/architecture.md,
"Idle connections") and wake up intact: many keep-alive connections held
through two meshed daemons go idle, are counted in
ldmesh_connections_idle, then every one of them carries data again."""
import os
import subprocess

import mesh
from mesh import spiffe
from pods import PYTHON, wait_until

N = 200

# Echo server: every connection echoes what it gets, line by line.
ECHO = r'''
import selectors, socket, sys
sel = selectors.DefaultSelector()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen(1024)
srv.setblocking(False)
sel.register(srv, selectors.EVENT_READ)
print("listening", flush=True)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        if s is srv:
            c, _ = srv.accept()
            c.setblocking(False)
            sel.register(c, selectors.EVENT_READ)
            continue
        try:
            data = s.recv(65536)
        except ConnectionError:
            data = b""
        if not data:
            sel.unregister(s)
            s.close()
            continue
        s.setblocking(True)
        s.sendall(data)
        s.setblocking(False)
'''

# Client: N connections, one round trip each; then waits for "go" on stdin
# and does a second round trip on every one; prints the counts.
CLIENT = r'''
import socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conns = [socket.create_connection((host, port), timeout=20) for _ in range(n)]

def round_trip(tag):
    ok = 0
    for i, c in enumerate(conns):
        msg = b"%s %d %s\n" % (tag, i, b"x" * (i % 50))
        c.sendall(msg)
        got = b""
        while len(got) < len(msg):
            chunk = c.recv(65536)
            if not chunk:
                break
            got += chunk
        ok += got == msg
    return ok

print("first=%d" % round_trip(b"first"), flush=True)
sys.stdin.readline()
print("second=%d" % round_trip(b"second"), flush=True)
sys.stdin.readline()
'''


def test_idle_connections_park_and_wake(cluster):
    a, b = cluster.pair(start=False)
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    mesh.configure(a, ca.issue(spiffe("shop", "payments"), os.path.join(cluster.tmp, "id-a")),
                   mtls="strict")
    mesh.configure(b, ca.issue(spiffe("shop", "orders"), os.path.join(cluster.tmp, "id-b")),
                   mtls="strict")
    for pod, name, text in ((b, "echo.py", ECHO), (a, "client.py", CLIENT)):
        with open(os.path.join(pod.dir, name), "w") as f:
            f.write(text)
    srv = b.popen([PYTHON, os.path.join(b.dir, "echo.py"), b.addr4, "9000"], name="echo")
    srv.wait_output(r"^listening$", timeout=20)
    b.wait_listening(srv, 9000)
    cli = a.popen([PYTHON, os.path.join(a.dir, "client.py"), b.addr4, "9000", str(N)],
                  name="client", stdin=subprocess.PIPE)
    cli.wait_output(r"^first=%d$" % N, timeout=60)

    def idle(pod):
        return mesh.metric(pod, "ldmesh_connections_idle")
    wait_until(lambda: idle(a) == N and idle(b) == N, 20, interval=0.5,
               what="%d idle connections in both daemons" % N)
    cli.popen.stdin.write(b"go\n")
    cli.popen.stdin.flush()
    cli.wait_output(r"^second=%d$" % N, timeout=60)
    # Awake again while they carried data, idle again once quiet.
    assert mesh.metric(a, "ldmesh_connections", direction="outbound") == N
    wait_until(lambda: idle(a) == N and idle(b) == N, 20, interval=0.5,
               what="idle again")
    cli.popen.stdin.write(b"bye\n")
    cli.popen.stdin.flush()
    cli.wait(20)
    wait_until(lambda: mesh.metric(a, "ldmesh_connections", direction="outbound") == 0 and
               idle(a) == 0 and idle(b) == 0, 20, what="all closed")
