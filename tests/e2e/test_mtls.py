"""mTLS with SPIFFE identities between daemons (issue 3), with stock
binaries: curl, python, openssl s_client/s_server, tcpdump.

Pods get SVIDs from `ldmeshctl ca issue`; the certificates a daemon must
refuse (another CA, another trust domain, expired, no URI SAN, two URI
SANs) are made with the stock openssl CLI (mesh.CA.sign) and presented by
stock clients from an unmeshed process, since a daemon will not load a
non-SVID as its own identity.
"""
import datetime
import hashlib
import json
import os
import re
import secrets
import subprocess

import pytest

import mesh
from mesh import spiffe
from pods import PYTHON, through_mesh, wait_until

PAYMENTS = spiffe("shop", "payments")
ORDERS = spiffe("shop", "orders")


def meshed_pair(cluster, server_settings=None, client_settings=None):
    """Pods a (payments) and b (orders) with SVIDs from one CA, strict
    inbound; returns (a, b, ca)."""
    a, b = cluster.pair(start=False)
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    mesh.configure(a, ca.issue(PAYMENTS, os.path.join(cluster.tmp, "id-a")), mtls="strict",
                   **(client_settings or {}))
    mesh.configure(b, ca.issue(ORDERS, os.path.join(cluster.tmp, "id-b")), mtls="strict",
                   **(server_settings or {}))
    return a, b, ca


def handshake_errors(pod, direction, _m=None):
    m = mesh.metrics(pod) if _m is None else _m
    return {dict(l)["reason"]: v for (n, l), v in m.items()
            if n == "ldmesh_tls_handshake_errors_total" and dict(l)["direction"] == direction
            and v}


def wait_handshake_errors(pod, direction, total, timeout=10):
    """handshake_errors(pod, direction) once they add up to total (or what
    they are when timeout passes, for the caller's exact assertion)."""
    seen = {}

    def enough():
        seen.clear()
        seen.update(handshake_errors(pod, direction))
        return sum(seen.values()) >= total
    try:
        wait_until(enough, timeout, interval=0.1,
                   what="%s handshake errors to reach %d in pod %s" % (direction, total,
                                                                       pod.label))
    except TimeoutError:
        pass
    return dict(seen)


def refused_connect(client, server, port):
    """A meshed connect() from client that server refuses in its TLS
    handshake: it must fail with ECONNREFUSED.

    In TLS 1.3 the client's daemon finishes before the server has judged
    its certificate; it waits for the verdict (a ticket or an alert) up to
    VERDICT_WAIT_MS (daemon/proxy/conn.c), then takes the connection as accepted.
    A refusal is counted before the app's connect() returns.  errno 0
    would mean the server's alert took longer than that wait; it is not
    accepted (the point is that the alert reaches the client's daemon), but
    reported with the client's handshake counters to tell it apart."""
    kv = client.prog("connerr", "block", server.addr4, port).ok().kv()
    if kv["errno"] != "ECONNREFUSED":
        m = mesh.metrics(client)
        raise AssertionError(
            "connect from pod %s to %s:%d: %s (want ECONNREFUSED); outbound handshakes %s, "
            "errors %s; errno 0 means no verdict within VERDICT_WAIT_MS" % (
                client.label, server.addr4, port, kv,
                mesh.metric(client, "ldmesh_tls_handshakes_total", m, direction="outbound"),
                handshake_errors(client, "outbound", m)))
    return kv


# --- what crosses the wire ---------------------------------------------------------

def captured_exchange(pcap, port):
    """(client->server bytes, server->client bytes) of the one TCP
    connection to port in the capture."""
    streams = mesh.tcp_streams(mesh.read_pcap(pcap))
    up = [(k, v) for k, v in streams.items() if k[3] == port]
    down = [(k, v) for k, v in streams.items() if k[1] == port]
    assert len(up) == 1 and len(down) == 1, "expected one connection to port %d: %s" % (
        port, sorted((k, len(v)) for k, v in streams.items()))
    return up[0][1], down[0][1]


def test_capture_shows_tls_not_plaintext(cluster):
    """tcpdump on the server pod's veth: a meshed request is TLS 1.3
    records (ClientHello, then only application data) and its marker is
    nowhere; the same request between pods without identities carries the
    marker in plaintext, so the check can fail."""
    a, b, _ = meshed_pair(cluster)
    mesh.start_app(b, 8080)
    marker = "ldmesh-secret-%s" % secrets.token_hex(12)

    def request(client, server):
        return mesh.curl(client, "-H", "x-marker: " + marker, "--data-binary", "body-" + marker,
                         "http://%s:8080/api/%s" % (server.addr4, marker))

    pcap = os.path.join(cluster.tmp, "meshed.pcap")
    with mesh.capture(b, pcap, "tcp port %d" % mesh.wire_port(b, 8080)):
        r = request(a, b)
    assert mesh.app_json(r)["body"] == "body-" + marker, r
    up, down = captured_exchange(pcap, mesh.wire_port(b, 8080))
    assert marker.encode() not in up + down, "the marker crossed the wire in plaintext"
    assert b"POST /api/" not in up and b"HTTP/1.1" not in up + down, "HTTP in the clear"
    recs_up, recs_down = mesh.tls_records(up), mesh.tls_records(down)
    # Every byte each way is a TLS record.
    assert sum(5 + len(x[2]) for x in recs_up) == len(up), "client bytes are not all TLS"
    assert sum(5 + len(x[2]) for x in recs_down) == len(down), "server bytes are not all TLS"
    assert recs_up[0][0] == 22 and recs_up[0][2][0] == 1, "first client record is no ClientHello"
    assert recs_down[0][0] == 22 and recs_down[0][2][0] == 2, "no ServerHello"
    assert mesh.server_hello_version(recs_down) == 0x0304, "ServerHello did not pick TLS 1.3"
    # After the hellos: only application data records (TLS 1.3 hides the
    # rest inside them), with the 0x17 0x03 0x03 header.
    for recs in (recs_up[1:], recs_down[1:]):
        kinds = {(t, v) for t, v, _ in recs if t != 20}  # 20: middlebox-compat CCS
        assert kinds == {(23, 0x0303)}, kinds
    assert b"\x17\x03\x03" in up and b"\x17\x03\x03" in down

    # Control: the same request between two pods without identities
    # (inbound.mtls = "disable", the pods.py default config).
    c, d = cluster.pair()
    mesh.start_app(d, 8080)
    pcap2 = os.path.join(cluster.tmp, "plain.pcap")
    with mesh.capture(d, pcap2, "tcp port 8080"):
        with through_mesh(c, d, 8080):
            r = request(c, d)
    assert mesh.app_json(r)["body"] == "body-" + marker, r
    up, down = captured_exchange(pcap2, 8080)
    assert marker.encode() in up, "the control capture does not show the plaintext request"
    assert up.startswith(b"POST /api/" + marker.encode()), up[:100]
    assert not mesh.tls_records(up)


# --- identities on connections ---------------------------------------------------

def test_conns_show_peer_spiffe_ids(cluster):
    a, b, _ = meshed_pair(cluster)
    srv = b.popen([b.mode.prog("echosrv"), b.addr4, "9800"], name="echosrv")
    b.wait_listening(srv, 9800)
    hold = a.python_popen("hold.py", b.addr4, 9800, 3000, stdin=subprocess.PIPE)
    m = hold.wait_output(r"^ready local=(\S+):(\d+) peer=(\S+):(\d+)$")
    client_ip, client_port = m.group(1), m.group(2)

    inbound = wait_until(lambda: mesh.find_conn(mesh.conns(b), "inbound", client_ip,
                                                client_port), 5, interval=0.2,
                         what="the inbound connection in pod b's conns")
    assert inbound["peer_id"] == PAYMENTS, inbound
    assert inbound["tls"] is True and inbound["tls_version"] == "TLSv1.3", inbound
    outbound = mesh.find_conn(mesh.conns(a), "outbound", b.addr4, 9800)
    assert outbound, a.ctl("conns", "--json")
    assert outbound["peer_id"] == ORDERS, outbound
    assert outbound["tls"] is True and outbound["tls_version"] == "TLSv1.3", outbound
    # The text form names them too.
    assert PAYMENTS in b.ctl("conns").ok().stdout
    assert ORDERS in a.ctl("conns").ok().stdout

    # status: the SVID (ID, serial, not-after), the bundle and counters.
    st = b.status()
    ident = st["identity"]
    assert ident["spiffe_id"] == ORDERS, st
    assert mesh.normalize_serial(ident["serial"]) == b.svid.serial(), (ident, b.svid.serial())
    assert ident["roots"] == 1 and ident["expired"] is False, st
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", ident["not_after"]), st
    assert st["handshakes"]["inbound"]["ok"] >= 1, st
    assert a.status()["handshakes"]["outbound"]["ok"] >= 1, a.status()
    m = mesh.metrics(b)
    assert mesh.metric(b, "ldmesh_tls_handshakes_total", m, direction="inbound") >= 1
    assert mesh.metric(b, "ldmesh_identity_valid", m) == 1

    hold.popen.stdin.close()
    hold.wait(10)


def test_client_pinned_to_wrong_identity_is_refused(cluster):
    """services[].identity pins the server: orders answering for a pinned
    billing identity fails the connect (ECONNREFUSED, curl exit 7) and the
    client daemon says identity_mismatch; the right pin works."""
    a, b, _ = meshed_pair(cluster)
    mesh.start_app(b, 8080)
    target = "%s:8080" % b.addr4
    wrong = spiffe("shop", "billing")
    mesh.reconfigure(a, services=[
        {"name": "orders", "port": 8080, "identity": wrong, "endpoints": (target,)}]).ok()
    off = len(a.daemon_log())

    r = mesh.curl(a, "http://%s/api/x" % target)
    assert r.returncode == 7, "curl to a server with the wrong identity: %r" % r
    kv = a.prog("connerr", "block", b.addr4, 8080).ok().kv()
    assert kv["errno"] == "ECONNREFUSED", kv
    mesh.wait_log(a, r"outbound TLS handshake with %s:%d failed: identity_mismatch" %
                  (re.escape(b.addr4), mesh.wire_port(b, 8080)), off)
    assert ORDERS in a.daemon_log()[off:], "the log should name what the server presented"
    mesh.wait_metric(a, "ldmesh_tls_handshake_errors_total", 2, direction="outbound",
                     reason="identity_mismatch")

    mesh.reconfigure(a, services=[
        {"name": "orders", "port": 8080, "identity": ORDERS, "endpoints": (target,)}]).ok()
    r = mesh.curl(a, "http://%s/api/x" % target)
    assert mesh.app_json(r)["xfcc"] == ["By=%s;URI=%s" % (ORDERS, PAYMENTS)], r


def test_expired_own_svid_is_reported(cluster):
    """A daemon whose own SVID has expired says so loudly (log, status,
    ldmesh_identity_valid 0) and keeps running; its peers refuse it with
    reason expired, and its app's connect fails with ECONNREFUSED."""
    a, b, ca = meshed_pair(cluster)
    mesh.start_app(b, 8080)
    now = datetime.datetime.now(datetime.timezone.utc)
    old = ca.sign(os.path.join(cluster.tmp, "id-a-expired"), [PAYMENTS],
                  not_before=now - datetime.timedelta(days=3),
                  not_after=now - datetime.timedelta(hours=1))
    a.stop_daemon()
    mesh.configure(a, old, mtls="strict")
    mesh.wait_log(a, r"OWN SVID EXPIRED: %s" % re.escape(PAYMENTS))
    ident = a.status()["identity"]
    assert ident["expired"] is True and ident["spiffe_id"] == PAYMENTS, ident
    # The series itself at 0 (metric() would also say 0 for a missing one).
    valid = ("ldmesh_identity_valid", frozenset())
    wait_until(lambda: mesh.metrics(a).get(valid) == 0, 10, interval=0.1,
               what="ldmesh_identity_valid 0 in pod a's /metrics")
    off = len(b.daemon_log())
    refused_connect(a, b, 8080)
    mesh.wait_log(b, r"inbound TLS handshake with %s:\d+ failed: expired" % re.escape(a.addr4),
                  off)
    assert a.daemon.alive()


# --- refused client certificates ---------------------------------------------------

def odd_certs(cluster, ca):
    """reason -> SVID-like files a stock client presents."""
    now = datetime.datetime.now(datetime.timezone.utc)
    d = lambda name: os.path.join(cluster.tmp, "odd", name)
    other_ca = mesh.CA(cluster.mode, d("other-ca"))
    web = spiffe("shop", "web")
    return {
        "unknown_ca": other_ca.issue(web, d("unknown_ca")),
        "trust_domain_mismatch": ca.sign(d("trust_domain"), ["spiffe://other.org/ns/shop/sa/web"]),
        "expired": ca.sign(d("expired"), [web], not_before=now - datetime.timedelta(days=3),
                           not_after=now - datetime.timedelta(days=1)),
        "no_uri_san": ca.sign(d("no_uri_san"), []),
        "multiple_uri_san": ca.sign(d("multiple_uri_san"), [web, spiffe("shop", "admin")]),
    }


def test_bad_client_certificates_refused_with_reason(cluster):
    """Each bad client certificate, presented by stock curl and by
    openssl s_client to a strict port, is refused; the server's log and
    ldmesh_tls_handshake_errors_total{direction="inbound"} name the
    reason, and the app never sees a request."""
    a, b, ca = meshed_pair(cluster)
    app = mesh.start_app(b, 8080)
    certs = odd_certs(cluster, ca)
    openssl, url = mesh.tool("openssl"), "https://%s:8080/refused" % b.addr4
    before = handshake_errors(b, "inbound")
    assert not before, before
    for reason, cert in sorted(certs.items()):
        off = len(b.daemon_log())
        r = mesh.curl(a, "--cert", cert.cert, "--key", cert.key, "--cacert", b.svid.bundle, "-k",
                      url, shim=False)
        assert r.returncode != 0 and not r.stdout, "%s: curl got through: %r" % (reason, r)
        r = a.run([openssl, "s_client", "-connect", "%s:8080" % b.addr4, "-cert", cert.cert,
                   "-key", cert.key, "-CAfile", b.svid.bundle, "-verify_return_error",
                   "-ign_eof"], shim=False, timeout=20,
                  input="GET /refused HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
        assert "HTTP/1.1" not in r.stdout, "%s: s_client got an answer: %r" % (reason, r)
        m = mesh.wait_log(b, r"inbound TLS handshake with %s:\d+ failed: (\w+)" %
                          re.escape(a.addr4), off)
        assert m.group(1) == reason, "%s refused as %s:\n%s" % (
            reason, m.group(1), b.daemon_log()[off:])
        mesh.wait_metric(b, "ldmesh_tls_handshake_errors_total", 2, direction="inbound",
                         reason=reason)
    errors = handshake_errors(b, "inbound")
    assert errors == {r: 2 for r in certs}, errors
    assert "request " not in app.out(), "the app saw a request: %s" % app.out()
    assert b.status()["handshakes"]["inbound"]["ok"] == 0


def test_refused_peer_gets_the_alert(cluster):
    """The refusing side tells the peer with a TLS alert before it closes:
    a meshed client whose SVID the server does not trust fails its connect
    with ECONNREFUSED and its daemon logs peer_refused (not a bare reset,
    "protocol"); a stock s_client sees the alert too."""
    a, b, ca = meshed_pair(cluster)
    mesh.start_app(b, 8080)
    # Pod a trusts both CAs but holds an SVID from the second one, which
    # pod b does not trust.
    ca2 = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca2"))
    fresh = ca2.issue(PAYMENTS, os.path.join(cluster.tmp, "id-a2"))
    with open(ca.cert) as f1, open(ca2.cert) as f2:
        both = f1.read() + f2.read()
    mesh.write_atomically(a.svid.bundle, both)
    mesh.replace_atomically(fresh.key, a.svid.key)
    mesh.replace_atomically(fresh.cert, a.svid.cert)
    wait_until(lambda: mesh.normalize_serial(a.status()["identity"]["serial"]) ==
               fresh.serial(), 10, interval=0.1, what="pod a on the second CA")

    off_a, off_b = len(a.daemon_log()), len(b.daemon_log())
    for _ in range(3):
        refused_connect(a, b, 8080)
    mesh.wait_log(b, r"inbound TLS handshake with %s:\d+ failed: unknown_ca" %
                  re.escape(a.addr4), off_b)
    m = mesh.wait_log(a, r"outbound TLS handshake with %s:%d failed: (\w+)" %
                      (re.escape(b.addr4), mesh.wire_port(b, 8080)), off_a)
    outbound = wait_handshake_errors(a, "outbound", 3)
    assert m.group(1) == "peer_refused" and outbound == {"peer_refused": 3}, \
        "pod b's alert did not reach pod a's daemon (%s): %s\n%s" % (
            m.group(1), outbound, a.daemon_log()[off_a:])

    odd = odd_certs(cluster, ca)["expired"]
    r = a.run([mesh.tool("openssl"), "s_client", "-connect", "%s:8080" % b.addr4,
               "-cert", odd.cert, "-key", odd.key, "-CAfile", b.svid.bundle, "-ign_eof"],
              shim=False, timeout=20, input="")
    assert r.returncode != 0 and "certificate expired" in r.stderr, \
        "s_client did not get the expired-certificate alert: %r" % r


# --- inbound modes ---------------------------------------------------------------

def test_strict_permissive_disable(cluster):
    """Port 8080 strict (global), 8081 permissive, 8082 disable.  A plain
    curl from an unmeshed pod (no daemon, no shim) is refused on 8080,
    served without identity on 8081 and passed through on 8082; a meshed
    client gets its identity on 8080 and 8081."""
    a, b, c = mesh.trio(cluster)
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    mesh.configure(a, ca.issue(PAYMENTS, os.path.join(cluster.tmp, "id-a")), mtls="strict")
    mesh.configure(b, ca.issue(ORDERS, os.path.join(cluster.tmp, "id-b")), mtls="strict",
                   ports={8081: "permissive", 8082: "disable"})
    app = mesh.start_app(b, 8080, 8081, 8082)
    xfcc = ["By=%s;URI=%s" % (ORDERS, PAYMENTS)]

    # strict
    refused0 = mesh.metric(b, "ldmesh_plaintext_refused_total")
    off = len(b.daemon_log())
    r = mesh.curl(c, "http://%s:8080/strict-plain" % b.addr4, shim=False)
    assert r.returncode in (52, 56) and not r.stdout, "plain curl to a strict port: %r" % r
    mesh.wait_log(b, r"inbound plaintext connection from %s:\d+ refused: port 8080 requires "
                  r"mTLS" % re.escape(c.addr4), off)
    assert mesh.metric(b, "ldmesh_plaintext_refused_total") == refused0 + 1
    assert "/strict-plain" not in app.out()
    r = mesh.curl(a, "http://%s:8080/strict-meshed" % b.addr4)
    assert mesh.app_json(r)["xfcc"] == xfcc, r

    # permissive
    r = mesh.curl(c, "http://%s:8081/permissive-plain" % b.addr4, shim=False)
    j = mesh.app_json(r)
    assert j["path"] == "/permissive-plain" and j["peer"] == c.addr4, j
    assert j["xfcc"] == [], "an unauthenticated caller got an identity: %s" % j
    r = mesh.curl(a, "http://%s:8081/permissive-meshed" % b.addr4)
    assert mesh.app_json(r)["xfcc"] == xfcc, r
    assert mesh.metric(b, "ldmesh_plaintext_accepted_total") >= 1

    # disable
    r = mesh.curl(c, "http://%s:8082/disable-plain" % b.addr4, shim=False)
    j = mesh.app_json(r)
    assert j["path"] == "/disable-plain" and j["xfcc"] == [], j
    assert mesh.metric(b, "ldmesh_plaintext_refused_total") == refused0 + 1


def test_plaintext_client_cannot_forge_identity_header(cluster):
    """An unauthenticated client on a permissive (or disabled) port sends
    its own x-forwarded-client-cert naming payments: the app must not get
    it (docs/architecture.md: the daemon removes any such header the
    client sent), on the first request of a connection and on later ones."""
    a, b, c = mesh.trio(cluster)
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    mesh.configure(b, ca.issue(ORDERS, os.path.join(cluster.tmp, "id-b")), mtls="strict",
                   ports={8081: "permissive", 8082: "disable"})
    mesh.start_app(b, 8081, 8082)
    forged = "x-forwarded-client-cert: By=%s;URI=%s" % (ORDERS, PAYMENTS)
    seen = {}
    for port in (8081, 8082):
        # two requests on one connection: the first and a keep-alive one
        r = mesh.curl(c, "-H", forged, "http://%s:%d/first" % (b.addr4, port),
                      "http://%s:%d/second" % (b.addr4, port), shim=False).ok()
        answers = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
        assert [x["path"] for x in answers] == ["/first", "/second"], r
        seen[port] = [x["xfcc"] for x in answers]
    assert seen == {8081: [[], []], 8082: [[], []]}, \
        "a plaintext client's forged identity header reached the app: %s" % seen


# --- rotation ----------------------------------------------------------------------

def start_s_server(pod, svid, port, *mode_args):
    """Stock openssl s_server holding an SVID, in pod but not meshed,
    requiring a client certificate from the bundle."""
    srv = pod.popen([mesh.tool("openssl"), "s_server", "-accept", "%s:%d" % (pod.addr4, port),
                     "-cert", svid.cert, "-key", svid.key, "-CAfile", svid.bundle,
                     "-Verify", "1", "-verify_return_error", "-tls1_3"] + list(mode_args),
                    name="s_server", shim=False)
    pod.wait_listening(srv, port)
    return srv


def presented_serial(client, server, port):
    """The serial of the client certificate pod client's daemon presented
    to an `s_server -www` (which prints it) on port."""
    r = mesh.curl(client, "http://%s:%d/" % (server.addr4, port)).ok()
    m = re.search(r"Client certificate.*?Serial Number:\s*\n?\s*([0-9a-fA-F:]+|\d+ \(0x[0-9a-f]+\))",
                  r.stdout, re.S)
    assert m, "s_server -www printed no client certificate: %r" % r
    s = m.group(1)
    if "(0x" in s:
        s = s.split("(0x")[1].rstrip(")")
    return mesh.normalize_serial(s), r.stdout


# Downloads /blob/SIZE over one connection: the first megabyte, then waits
# for MARKER to exist before reading the rest, so the connection is open
# across whatever the test does in between, however fast the machine.
PAUSED_DOWNLOAD = r"""
import hashlib, os, socket, sys, time
host, port, size, marker = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
s = socket.create_connection((host, port), timeout=60)
s.sendall(b"GET /blob/%d HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
          % (size, host.encode()))
buf = b""
while b"\r\n\r\n" not in buf:
    d = s.recv(65536)
    if not d:
        sys.exit("closed before the response head")
    buf += d
head, body = buf.split(b"\r\n\r\n", 1)
h, got = hashlib.sha256(body), len(body)
while got < 1000000:
    d = s.recv(65536)
    if not d:
        break
    h.update(d)
    got += len(d)
print("started bytes=%d" % got, flush=True)
deadline = time.monotonic() + 90
while not os.path.exists(marker):
    if time.monotonic() > deadline:
        sys.exit("the marker never came")
    time.sleep(0.05)
while True:
    d = s.recv(65536)
    if not d:
        break
    h.update(d)
    got += len(d)
print("done status=%s bytes=%d sha256=%s" % (head.split(b" ")[1].decode(), got, h.hexdigest()),
      flush=True)
"""


@pytest.mark.timeout(120)
def test_rotation_during_long_transfer(cluster):
    """Re-issue pod a's SVID (ldmeshctl ca issue renames the files into
    place) while a download is open: the client reads the first megabyte,
    waits until the new SVID is loaded, then reads the rest; the download
    completes with the right sha256, status shows the new serial, and the
    next handshake presents it; the server still sees the same SPIFFE ID."""
    a, b, ca = meshed_pair(cluster)
    mesh.start_app(b, 8080)
    start_s_server(b, ca.issue(spiffe("legacy", "www"), os.path.join(cluster.tmp, "id-www")),
                   8443, "-www")
    old = a.svid.serial()
    assert mesh.normalize_serial(a.status()["identity"]["serial"]) == old
    assert presented_serial(a, b, 8443)[0] == old

    size = 6 * 1000 * 1000
    script, marker = os.path.join(a.dir, "paused_download.py"), os.path.join(a.dir, "rotated")
    with open(script, "w") as f:
        f.write(PAUSED_DOWNLOAD)
    dl = a.popen([PYTHON, script, b.addr4, "8080", str(size), marker], name="paused-download")

    def download_conn():
        # Listed from accept on; its peer is known once the handshake is done.
        c = mesh.find_conn(mesh.conns(b), "inbound", a.addr4, local_port=8080)
        return c if c and c.get("peer_id") else None
    try:
        dl.wait_output(r"^started bytes=\d+$", timeout=30)
        live = wait_until(download_conn, 10, interval=0.1,
                          what="the download's authenticated connection in pod b")
    except (TimeoutError, AssertionError) as e:
        raise AssertionError("%s\n%s\npod b conns: %s\n--- pod a log\n%s\n--- pod b log\n%s" % (
            e, dl.describe(), mesh.conns(b), a.daemon_log()[-3000:], b.daemon_log()[-3000:]))
    assert live["peer_id"] == PAYMENTS, live

    off = len(a.daemon_log())
    ca.issue(PAYMENTS, a.svid.dir)  # atomic renames over the watched files
    new = a.svid.serial()
    assert new != old
    wait_until(lambda: mesh.normalize_serial(a.status()["identity"]["serial"]) == new, 10,
               interval=0.1, what="pod a's daemon to load the new SVID")
    assert re.search(r"identity %s serial 0*%s " % (re.escape(PAYMENTS), new),
                     a.daemon_log()[off:]), a.daemon_log()[off:]
    assert dl.alive() and not re.search(r"^done", dl.out(), re.M), dl.describe()

    with open(marker, "w"):
        pass
    m = dl.wait_output(r"^done status=(\d+) bytes=(\d+) sha256=([0-9a-f]+)$", timeout=60)
    assert m.groups() == ("200", str(size), mesh.blob_sha256(size)), dl.describe()
    dl.wait(10)
    assert dl.popen.returncode == 0, dl.describe()

    serial, page = presented_serial(a, b, 8443)
    assert serial == new, "the next handshake presented %s, not the new serial %s:\n%s" % (
        serial, new, page[-3000:])
    r = mesh.curl(a, "http://%s:8080/after" % b.addr4)
    assert mesh.app_json(r)["xfcc"] == ["By=%s;URI=%s" % (ORDERS, PAYMENTS)], r
    assert mesh.metric(a, "ldmesh_identity_reload_errors_total") == 0
    assert not handshake_errors(a, "outbound") and not handshake_errors(b, "inbound")


@pytest.mark.timeout(120)
def test_ca_rollover_with_two_root_bundle(cluster):
    """Old and new root in both bundles, pod a moves to an SVID from the
    new CA, then pod b, then the old root goes: a request loop (new
    connection each time) sees no failure."""
    a, b, ca1 = meshed_pair(cluster)
    mesh.start_app(b, 8080)
    ca2 = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca2"))
    stop = os.path.join(cluster.tmp, "stop-loop")
    loop = mesh.start_loop(a, b.addr4, 8080, "/api/roll", 2000, 60, stop_file=stop)

    def ok_count():
        return len(mesh.loop_results(loop)[0])

    def progress(n=5):
        """Waits for n more completed requests."""
        target = ok_count() + n
        wait_until(lambda: ok_count() >= target or not loop.alive(), 15, interval=0.05,
                   what="%d more requests" % n)

    def roots(pod):
        return pod.status()["identity"]["roots"]

    def serial(pod):
        return mesh.normalize_serial(pod.status()["identity"]["serial"])

    progress()
    with open(ca1.cert) as f1, open(ca2.cert) as f2:
        both = f1.read() + f2.read()
    for pod in (a, b):
        mesh.write_atomically(pod.svid.bundle, both)
    for pod in (a, b):
        wait_until(lambda: roots(pod) == 2, 10, interval=0.1, what="two roots in pod %s" %
                   pod.label)
    progress()

    for pod, ident in ((a, PAYMENTS), (b, ORDERS)):
        fresh = ca2.issue(ident, os.path.join(cluster.tmp, "new-" + pod.label))
        mesh.replace_atomically(fresh.key, pod.svid.key)
        mesh.replace_atomically(fresh.cert, pod.svid.cert)
        wait_until(lambda: serial(pod) == fresh.serial(), 10, interval=0.1,
                   what="pod %s on the new CA" % pod.label)
        assert roots(pod) == 2
        progress()

    for pod in (a, b):
        mesh.replace_atomically(ca2.cert, pod.svid.bundle)
    for pod in (a, b):
        wait_until(lambda: roots(pod) == 1, 10, interval=0.1, what="one root in pod %s" %
                   pod.label)
    progress()
    with open(stop, "w"):
        pass
    loop.wait(20)
    statuses, errors = mesh.loop_results(loop)
    assert not errors, "requests failed during the roll-over: %s\n%s" % (
        errors[:10], a.daemon_log()[-3000:] + b.daemon_log()[-3000:])
    assert statuses and set(statuses) == {"200"}, statuses
    assert len(statuses) >= 30, "only %d requests ran" % len(statuses)
    assert not handshake_errors(a, "outbound") and not handshake_errors(b, "inbound")
    # The roll-over is real: a pod still on the old CA is now refused.
    for pod in (a, b):
        assert "ldmesh root CA" in pod.status()["identity"]["bundle"]
    stale = ca1.issue(spiffe("shop", "stale"), os.path.join(cluster.tmp, "stale"))
    r = mesh.curl(a, "--cert", stale.cert, "--key", stale.key, "-k",
                  "https://%s:8080/stale" % b.addr4, shim=False)
    assert r.returncode != 0, r
    mesh.wait_metric(b, "ldmesh_tls_handshake_errors_total", 1, direction="inbound",
                     reason="unknown_ca")


# --- interop with stock TLS ------------------------------------------------------------

def test_stock_tls_clients_reach_strict_port(cluster):
    """curl --cert/--key --cacert and openssl s_client with an SVID from
    `ldmeshctl ca issue` reach a strict port; the app sees their SPIFFE ID."""
    a, b, ca = meshed_pair(cluster)
    app = mesh.start_app(b, 8080)
    tool_id = spiffe("tools", "stock")
    svid = ca.issue(tool_id, os.path.join(cluster.tmp, "id-tool"))
    xfcc = ["By=%s;URI=%s" % (ORDERS, tool_id)]

    r = mesh.curl(a, "--cert", svid.cert, "--key", svid.key, "--cacert", svid.bundle, "-k",
                  "https://%s:8080/from-curl" % b.addr4, shim=False)
    j = mesh.app_json(r)
    assert j["path"] == "/from-curl" and j["xfcc"] == xfcc, j

    off = len(b.daemon_log())
    r = a.run([mesh.tool("openssl"), "s_client", "-connect", "%s:8080" % b.addr4,
               "-cert", svid.cert, "-key", svid.key, "-CAfile", svid.bundle,
               "-verify_return_error", "-tls1_3", "-ign_eof"], shim=False, timeout=20,
              input="GET /from-s_client HTTP/1.1\r\nHost: orders\r\nConnection: close\r\n\r\n")
    assert r.returncode == 0, r
    assert "Verify return code: 0 (ok)" in r.stdout and "TLSv1.3" in r.stdout, r
    assert "HTTP/1.1 200 OK" in r.stdout, "%r\n--- app\n%s\n--- pod b log\n%s" % (
        r, app.out() + app.err(), b.daemon_log()[off:])
    assert '"path": "/from-s_client"' in r.stdout and tool_id in r.stdout, r
    assert b.status()["handshakes"]["inbound"]["ok"] >= 2


def test_meshed_client_reaches_stock_s_server(cluster):
    """A meshed python client reaches `openssl s_server -Verify 1 -rev`
    (unmeshed, holding an SVID) through its daemon: the server verified the
    daemon's client certificate, and the line comes back reversed."""
    a, b, ca = meshed_pair(cluster)
    srv = start_s_server(b, ca.issue(spiffe("legacy", "rev"), os.path.join(cluster.tmp, "id-rev")),
                         8443, "-rev")
    text = "hello ldmesh %s" % secrets.token_hex(6)
    code = ("import socket, sys\n"
            "s = socket.create_connection((sys.argv[1], 8443), timeout=15)\n"
            "s.sendall(sys.argv[2].encode() + b'\\n')\n"
            "buf = b''\n"
            "while not buf.endswith(b'\\n'):\n"
            "    d = s.recv(4096)\n"
            "    if not d:\n"
            "        break\n"
            "    buf += d\n"
            "print('reply=' + buf.decode().strip())\n")
    r = a.run([PYTHON, "-c", code, b.addr4, text], timeout=30).ok()
    assert r.kv().get("reply") is not None, r
    reply = re.search(r"^reply=(.*)$", r.stdout, re.M).group(1)
    assert reply == text[::-1], (reply, text)
    srv.wait_output(r"^Protocol version: TLSv1.3$", stream="both")
    srv.wait_output(r"^Verification: OK$", stream="both")
    out = mesh.find_conn(mesh.conns(a), "outbound", b.addr4, 8443)
    assert out is None or out["peer_id"] == spiffe("legacy", "rev"), out
    assert a.status()["handshakes"]["outbound"]["ok"] >= 1
