"""Opaque ports (inbound.ports[].opaque = true, Linkerd's
config.linkerd.io/opaque-ports): no HTTP detection and no HTTP handling on
the port, bytes pass from the first one; connection-level policy and the
TCP series still apply.  Asserted on the daemon's counters, never on time:
ldmesh_http_detect_held_total counts first lines held undecided (the
200 ms detection window), ldmesh_opaque_connections_total the connections
that took the opaque path, request_total the requests seen."""
import os

import mesh
from mesh import spiffe
from pods import wait_until

PAYMENTS = spiffe("shop", "payments")
ORDERS = spiffe("shop", "orders")
ECHO_OPAQUE, ECHO_PLAIN = 9561, 9562
HTTP_OPAQUE, HTTP_PLAIN, HTTP_DENIED = 9563, 9564, 9565
PROBES = 7  # payloads of helpers/echo_probe.py, one connection each


def opaque_pair(cluster):
    a, b = cluster.pair(start=False)
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    mesh.configure(a, ca.issue(PAYMENTS, os.path.join(cluster.tmp, "id-a")), mtls="strict")
    mesh.configure(b, ca.issue(ORDERS, os.path.join(cluster.tmp, "id-b")), mtls="strict",
                   opaque_ports=(ECHO_OPAQUE, HTTP_OPAQUE, HTTP_DENIED),
                   # Connection-level rules still hold on opaque ports.
                   policies=[{"name": "no-payments-here", "action": "deny",
                              "ports": [HTTP_DENIED], "principals": [PAYMENTS]}])
    return a, b


def probe(a, b, port):
    r = a.python("echo_probe.py", b.addr4, port, timeout=90).ok()
    lines = r.stdout.splitlines()
    assert len(lines) == PROBES and all(line.split()[1] == "ok" for line in lines), r
    return lines


def inbound(m, name, port, b):
    return mesh.metric(b, name, m, direction="inbound", target_addr="%s:%d" % (b.addr4, port))


def test_opaque_port_passes_bytes_without_detection(cluster):
    """A client-speaks-first token protocol (PING, hello\\n, a request line
    without its CRLF...) gets its echo on an opaque port with no detection
    hold at all, where the same bytes on a normal port are held; an HTTP
    GET on an opaque port is served but not counted as a request, the same
    GET on a normal port is; a connection-level deny rule still refuses."""
    a, b = opaque_pair(cluster)
    for port in (ECHO_OPAQUE, ECHO_PLAIN):
        srv = b.popen([b.mode.prog("echosrv"), b.addr4, str(port)], name="echosrv-%d" % port)
        b.wait_listening(srv, port)
    mesh.start_app(b, HTTP_OPAQUE, HTTP_PLAIN, HTTP_DENIED)

    held0 = mesh.metric(b, "ldmesh_http_detect_held_total")
    opaque0 = mesh.metric(b, "ldmesh_opaque_connections_total")
    probe(a, b, ECHO_OPAQUE)
    # Every probe took the opaque path; none was held to be classified.
    assert mesh.metric(b, "ldmesh_opaque_connections_total") == opaque0 + PROBES
    assert mesh.metric(b, "ldmesh_http_detect_held_total") == held0
    # Control: on a normal port the undecided first lines are held.
    probe(a, b, ECHO_PLAIN)
    assert mesh.metric(b, "ldmesh_http_detect_held_total") > held0
    assert mesh.metric(b, "ldmesh_opaque_connections_total") == opaque0 + PROBES

    # HTTP over the opaque port: served, but no request series at all.
    for port in (HTTP_OPAQUE, HTTP_PLAIN):
        j = mesh.app_json(mesh.curl(a, "http://%s:%d/hello" % (b.addr4, port)))
        assert j["port"] == port, j
    wait_until(lambda: mesh.metric(b, "tcp_open_connections", direction="inbound") == 0,
               10, what="inbound connections closed")
    m = mesh.metrics(b)
    assert inbound(m, "request_total", HTTP_PLAIN, b) == 1, m
    assert inbound(m, "response_total", HTTP_PLAIN, b) == 1, m
    assert inbound(m, "request_total", HTTP_OPAQUE, b) == 0
    assert not [k for k in m if k[0].startswith(("request_", "response_", "route_"))
                and ("target_addr", "%s:%d" % (b.addr4, HTTP_OPAQUE)) in k[1]], \
        "an HTTP series for the opaque port"
    assert mesh.metric(b, "request_total", m, direction="inbound") == 1
    # The TCP series count the opaque port as any other, with the identity.
    assert inbound(m, "tcp_open_total", HTTP_OPAQUE, b) == 1
    assert mesh.metric(b, "tcp_open_total", m, direction="inbound", client_id=PAYMENTS,
                       target_addr="%s:%d" % (b.addr4, HTTP_OPAQUE)) == 1
    assert mesh.metric(b, "ldmesh_opaque_connections_total", m) == opaque0 + PROBES + 1

    # Connection-level policy on an opaque port: the caller is refused.
    r = mesh.curl(a, "http://%s:%d/hello" % (b.addr4, HTTP_DENIED))
    assert r.returncode != 0, r
    assert mesh.metric(b, "ldmesh_policy_decisions_total", decision="deny",
                       rule="no-payments-here", port=HTTP_DENIED) >= 1
