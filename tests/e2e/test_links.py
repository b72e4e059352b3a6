"""Links between daemons (issue 13, outbound.links): app connections to a
mesh destination ride as HTTP/2 CONNECT streams on one long-lived mTLS
link to the destination's daemon, so a connection costs a stream, not a
handshake.  Stock clients and servers (curl, python http.server), the
wire seen with tcpdump, the links seen with `ldmeshctl links`."""
import json
import os
import re

import mesh
from mesh import spiffe
from pods import PYTHON, wait_until

PAYMENTS = spiffe("shop", "payments")
ORDERS = spiffe("shop", "orders")


def linked_pair(cluster, client_links=True, server_links=True, **server_settings):
    """Pods a (payments, client) and b (orders, server): SVIDs from one CA,
    strict inbound, links on unless said otherwise."""
    a, b = cluster.pair(start=False)
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    mesh.configure(a, ca.issue(PAYMENTS, os.path.join(cluster.tmp, "id-a")), mtls="strict",
                   links=client_links)
    mesh.configure(b, ca.issue(ORDERS, os.path.join(cluster.tmp, "id-b")), mtls="strict",
                   links=server_links, **server_settings)
    return a, b, ca


def serve(pod, port=8080):
    root = os.path.join(pod.dir, "www")
    os.makedirs(root, exist_ok=True)
    body = "hello over a link from pod %s\n" % pod.label
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write(body)
    srv = pod.popen([PYTHON, "-m", "http.server", str(port), "--bind", pod.addr4,
                     "--directory", root], name="http.server")
    pod.wait_listening(srv, port)
    return srv, body


def links_json(pod):
    r = pod.ctl("--json", "links")
    assert r.returncode == 0, r
    return json.loads(r.stdout)


def handshakes(pod, direction):
    return mesh.metric(pod, "ldmesh_tls_handshakes_total", direction=direction)


def syns_to(pcap, addr):
    """Connection attempts (SYN without ACK) towards addr in the capture."""
    return [s for s in mesh.read_pcap(pcap)
            if s[2] == addr and s[5] & 0x02 and not s[5] & 0x10]


N = int(os.environ.get("LINKS_N", "500"))


def test_connection_per_request_rides_one_link(cluster):
    a, b, _ = linked_pair(cluster)
    srv, body = serve(b)
    url = "http://%s:8080/index.html" % b.addr4
    pcap = os.path.join(cluster.tmp, "a.pcap")
    # A stock curl per request, as a shell loop in the client pod: every
    # one a new TCP connection for the app.
    script = ('ok=0; for i in $(seq %d); do out=$(%s -sS --max-time 10 %s) && '
              '[ "$out" = "%s" ] && ok=$((ok+1)); done; echo "ok=$ok"'
              % (N, mesh.tool("curl"), url, body.rstrip("\n")))
    with mesh.capture(a, pcap, "tcp and host %s" % b.addr4):
        # plain: the shell and curl get the non-ASan shim (pods.py says why).
        r = a.run(["/bin/sh", "-c", script], timeout=300, plain=True)
    assert r.returncode == 0, r
    assert r.stdout.strip() == "ok=%d" % N, (r, srv.err()[-2000:])
    # The server app saw the client pod's address for every request.
    peers = re.findall(r"^(\S+) - - .*\"GET /index.html HTTP/1.1\" 200", srv.err(), re.M)
    assert len(peers) == N and set(peers) == {a.addr4}, srv.err()[-2000:]
    # One link: at most 2 handshakes and 2 SYNs towards pod b, all to
    # its link port.
    assert handshakes(a, "outbound") <= 2
    syns = syns_to(pcap, b.addr4)
    assert 1 <= len(syns) <= 2, syns
    assert {s[3] for s in syns} == {15008}
    links = links_json(a)
    assert len(links) == 1, links
    link = links[0]
    assert link["peer_addr"] == "%s:15008" % b.addr4
    assert link["peer_id"] == ORDERS
    assert link["streams_total"] == N
    assert link["bytes_in"] > 0 and link["bytes_out"] > 0 and link["age_ms"] > 0
    inbound = links_json(b)
    assert len(inbound) == 1 and inbound[0]["peer_id"] == PAYMENTS
    assert mesh.metric(b, "ldmesh_links_open") == 1
    assert mesh.metric(b, "ldmesh_link_streams_total") == N
    # Per-connection golden metrics are as without links.
    assert mesh.metric(b, "tcp_open_total", direction="inbound") == N
