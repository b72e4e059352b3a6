"""Faults and hostile peers (issue 7): what ldmesh survives, with stock
clients in two pods.  docs/reliability.md lists each fault and the test here
that proves it."""
import json
import os
import signal
import socket
import subprocess
import time

import pytest

import mesh
from mesh import spiffe
from pods import PYTHON, through_mesh, wait_until

PAYMENTS = spiffe("shop", "payments")
ORDERS = spiffe("shop", "orders")

# A client that opens a TCP connection from an unmeshed process, sends
# `first` at once and then `data` one byte every `gap` seconds; prints how
# the connection ended.
TRICKLE = r'''
import socket, sys, time
host, port, first, data, gap = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], \
    float(sys.argv[5])
first, data = (x.encode().decode("unicode_escape").encode("latin-1") for x in (first, data))
s = socket.create_connection((host, port), timeout=30)
t0 = time.monotonic()
try:
    s.sendall(first)
    for i in range(len(data)):
        s.sendall(data[i:i + 1])
        time.sleep(gap)
    s.settimeout(30)
    got = s.recv(4096)
    print("ended=%s after=%.1f" % ("eof" if not got else "data", time.monotonic() - t0))
except OSError as e:
    print("ended=%s after=%.1f" % (type(e).__name__, time.monotonic() - t0))
'''


def trickle(pod, host, port, first, data, gap, timeout=60):
    path = os.path.join(pod.dir, "trickle.py")
    with open(path, "w") as f:
        f.write(TRICKLE)
    return pod.run([PYTHON, path, host, str(port), first, data, str(gap)], shim=False,
                   timeout=timeout)


def test_slowloris_http_head_is_timed_out_and_counted(cluster):
    """A client trickling a request head a byte at a time (each byte resets
    any idle timer) is cut off after http_head_timeout_ms and counted in
    ldmesh_timeouts_total{stage="http_head"}; the app never sees a request
    and keeps serving others."""
    a, b = cluster.pair(start=False)
    mesh.configure(b, mtls="disable", extra="http_head_timeout_ms = 1500;")
    srv = mesh.start_app(b, 8080)
    # The request line at once, then the headers a byte every 50 ms.
    r = trickle(a, b.addr4, 8080, "GET /slow HTTP/1.1\\r\\n", "Host: x\\r\\nX-Pad: " + "a" * 200,
                0.05)
    assert r.returncode == 0 and "ended=" in r.stdout, r
    after = float(r.stdout.split("after=")[1])
    assert "ended=eof" in r.stdout or "ended=ConnectionResetError" in r.stdout, r
    assert after < 10, r  # cut off well before the 11 s the head would take
    assert mesh.metric(b, "ldmesh_timeouts_total", stage="http_head") == 1
    assert "/slow" not in srv.out()
    ok = mesh.curl(a, "http://%s:8080/fine" % b.addr4, shim=False)
    assert mesh.app_json(ok)["path"] == "/fine"


def test_slowloris_tls_handshake_is_timed_out_and_counted(cluster):
    """A peer that starts a TLS handshake on a strict port and never
    finishes it is closed after connect_timeout_ms and counted in
    ldmesh_timeouts_total{stage="tls_handshake"}."""
    a, b = cluster.pair(start=False)
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    mesh.configure(b, ca.issue(ORDERS, os.path.join(cluster.tmp, "id-b")), mtls="strict",
                   extra="connect_timeout_ms = 1500;")
    mesh.start_app(b, 8080)
    # The first bytes of a TLS record header (handshake, TLS 1.0 record
    # version), then one byte a second.
    r = trickle(a, b.addr4, 8080, "\\x16\\x03\\x01", "\\x00\\xc8" + "\\x01" * 20, 0.3)
    assert r.returncode == 0, r
    after = float(r.stdout.split("after=")[1])
    assert after < 6.5, r
    wait_until(lambda: mesh.metric(b, "ldmesh_timeouts_total", stage="tls_handshake") == 1, 5,
               what="handshake timeout counted")


# --- helpers for the fault tests below ---------------------------------------------

