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

# The line echo server and the client that holds N connections open
# (helpers/many.py): a round trip on each, a second one after a line on
# stdin, all closed after another.
MANY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers", "many.py")


def test_idle_connections_park_and_wake(cluster):
    a, b = cluster.pair(start=False)
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    mesh.configure(a, ca.issue(spiffe("shop", "payments"), os.path.join(cluster.tmp, "id-a")),
                   mtls="strict")
    mesh.configure(b, ca.issue(spiffe("shop", "orders"), os.path.join(cluster.tmp, "id-b")),
                   mtls="strict")
    srv = b.popen([PYTHON, MANY, "serve", b.addr4, "9000"], name="echo")
    srv.wait_output(r"^listening$", timeout=20)
    b.wait_listening(srv, 9000)
    cli = a.popen([PYTHON, MANY, "client", b.addr4, "9000", str(N)], name="client",
                  stdin=subprocess.PIPE)
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
