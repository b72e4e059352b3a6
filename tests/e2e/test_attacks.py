"""Issue 21: attacks a reviewer would try on a strict pod before trusting
it, each with a control that shows the same bytes or certificate succeed
without the mesh or with a legitimate SVID, so no test passes by refusing
everything.  docs/security.md lists what is tried.

Pod a is the caller (spiffe://cluster.local/ns/acc/sa/client), pod b the
server; strict mTLS.
"""
import datetime
import os
import re

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import mesh
from mesh import spiffe
from pods import HELPERS, PYTHON, wait_until

CLIENT = spiffe("acc", "client")
SERVER = spiffe("acc", "server")
API_ONLY = [{"name": "api-only", "action": "allow", "ports": [8090], "principals": [CLIENT],
             "methods": ["GET", "POST"], "paths": ["/api/*"]}]


def helper(name):
    return os.path.join(HELPERS, name)


def pair(cluster, policies=None):
    a, b = cluster.pair(start=False)
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    mesh.configure(a, ca.issue(CLIENT, os.path.join(cluster.tmp, "id-a")), mtls="strict")
    mesh.configure(b, ca.issue(SERVER, os.path.join(cluster.tmp, "id-b")), mtls="strict",
                   policies=policies or API_ONLY, policy_default="deny")
    return a, b, ca


def start(pod, args, name, port):
    p = pod.popen(args, name=name)
    p.wait_output(r"^listening$", timeout=30)
    pod.wait_listening(p, port)
    return p


# --- h2c smuggling -----------------------------------------------------------------

def test_h2c_upgrade_decided_stream_by_stream(cluster):
    """The h2c smuggling reproduction (issue 21): an HTTP/1.1 server that
    honours `Upgrade: h2c` (python3-h2) behind a port whose only allow rule
    is GET/POST /api/*.  `nghttp -u` asks for /api/1 (the upgrade request)
    and then /admin as HTTP/2 stream 3.  Without the mesh the app serves
    /admin (the control).  Through the mesh the upgrade is followed and
    every HTTP/2 stream after it is decided like an HTTP/1 request: /api/1
    is served over HTTP/2, /admin gets 403 on its stream and never reaches
    the app.  An upgrade request with a body still loses its upgrade (the
    mesh does not hold a body back), which is counted and logged."""
    a, b, _ = pair(cluster)
    # The control: the same exchange, no mesh on either side.
    plain = b.popen([PYTHON, helper("h2c_server.py"), b.addr4, "18090"], name="h2c-plain",
                    shim=False)
    plain.wait_output(r"^listening$", timeout=30)
    r = a.run([mesh.tool("nghttp"), "-u", "http://%s:18090/api/1" % b.addr4,
               "http://%s:18090/admin" % b.addr4], shim=False, timeout=30)
    assert r.returncode == 0 and "/admin" in r.stdout, r
    plain.wait_output(r"^served h2 /admin$", timeout=10)

    srv = start(b, [PYTHON, helper("h2c_server.py"), "0.0.0.0", "8090"], "h2c-meshed", 8090)
    off = len(b.daemon_log())
    r = a.run([mesh.tool("nghttp"), "-u", "-s", "http://%s:8090/api/1" % b.addr4,
               "http://%s:8090/admin" % b.addr4], timeout=30)
    srv.wait_output(r"^served h2 /api/1$", timeout=10)
    stats = re.findall(r"^\s*\d+\s+\S+\s+\S+\s+\S+\s+(\d{3})\s+\d+\s+(\S+)\s*$", r.stdout,
                       re.M)
    assert sorted(stats) == [("200", "/api/1"), ("403", "/admin")], r
    mesh.wait_log(b, r"request GET /admin from .* on port 8090 denied by "
                  r"no-allow-rule-matched \(HTTP/2 stream \d+\)", offset=off)

    c = mesh.curl(a, "--http2", "http://%s:8090/api/2" % b.addr4)
    assert c.returncode == 0 and c.stdout == "/api/2", c
    srv.wait_output(r"^served h2 /api/2$", timeout=10)
    status = mesh.curl(a, "-o", "/dev/null", "-w", "%{http_code}",
                       "http://%s:8090/admin" % b.addr4)
    assert status.stdout == "403", status
    body = mesh.curl(a, "--http2", "--data-binary", "x", "http://%s:8090/api/3" % b.addr4)
    assert body.returncode == 0 and body.stdout == "/api/3", body
    srv.wait_output(r"^served http1 /api/3$", timeout=10)
    mesh.wait_log(b, r"POST /api/3 from .* on port 8090: h2c upgrade removed", offset=off)
    assert mesh.metric(b, "ldmesh_upgrades_stripped_total", protocol="h2c") >= 1
    assert "/admin" not in srv.out(), srv.out()


def test_prior_knowledge_h2_decided_stream_by_stream(cluster):
    """HTTP/2 forms that skip the upgrade's answer: prior-knowledge h2c
    (curl --http2-prior-knowledge) and an upgrade request followed at once
    by the HTTP/2 preface (without waiting for the 101).  On a port with
    HTTP rules each stream is decided: /api/1 is served, /admin gets 403
    and never reaches the app (which serves it without the mesh)."""
    a, b, _ = pair(cluster)
    plain = b.popen([PYTHON, helper("h2c_server.py"), b.addr4, "18090"], name="h2c-plain",
                    shim=False)
    plain.wait_output(r"^listening$", timeout=30)
    r = mesh.curl(a, "--http2-prior-knowledge", "http://%s:18090/admin" % b.addr4, shim=False)
    assert r.returncode == 0 and r.stdout == "/admin", r

    srv = start(b, [PYTHON, helper("h2c_server.py"), "0.0.0.0", "8090"], "h2c-meshed", 8090)
    r = mesh.curl(a, "--http2-prior-knowledge", "http://%s:8090/api/1" % b.addr4)
    assert r.returncode == 0 and r.stdout == "/api/1", r
    r = mesh.curl(a, "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}",
                  "http://%s:8090/admin" % b.addr4)
    assert r.stdout == "403", r
    burst = ("GET /api/4 HTTP/1.1\r\nHost: b\r\nConnection: Upgrade, HTTP2-Settings\r\n"
             "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
             "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    r = a.run([mesh.tool("socat"), "-t", "3", "-", "TCP:%s:8090" % b.addr4], input=burst,
              timeout=30)
    # The preface waited for the app's 101, then went on as HTTP/2: the
    # upgrade request is stream 1.
    assert "HTTP/1.1 101" in r.stdout, r
    srv.wait_output(r"^served h2 /api/4$", timeout=10)
    assert "/admin" not in srv.out(), srv.out()


def test_websocket_upgrade_to_allowed_path_only(cluster):
    """An Upgrade the first request decides stays possible: a WebSocket
    echo (python3-websockets) to an allowed path works through the mesh,
    to a denied path it gets 403 and the app never sees it."""
    ws_rule = [{"name": "ws", "action": "allow", "ports": [8091], "principals": [CLIENT],
                "paths": ["/ws/*"]}]
    a, b, _ = pair(cluster, policies=ws_rule)
    srv = start(b, [PYTHON, helper("ws_echo.py"), "server", "0.0.0.0", "8091"], "ws", 8091)
    ok = a.run([PYTHON, helper("ws_echo.py"), "client", "ws://%s:8091/ws/chat" % b.addr4,
                "hello-mesh"], timeout=40)
    assert ok.stdout.strip() == "echo hello-mesh", ok
    bad = a.run([PYTHON, helper("ws_echo.py"), "client", "ws://%s:8091/admin" % b.addr4,
                 "nope"], timeout=40)
    assert bad.stdout.strip() == "error status 403", bad
    assert "open /ws/chat" in srv.out() and "/admin" not in srv.out(), srv.out()


# --- certificates that must not pass as SVIDs ---------------------------------------

def load_ca(ca):
    with open(os.path.join(ca.dir, "ca.pem"), "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(ca.dir, "ca-key.pem"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    return cert, key


def forge(ca, out, spiffe_id, is_ca=True, key_usage=None):
    """A certificate for spiffe_id signed by the trust domain's own CA,
    made here with python3-cryptography; by default one that says
    CA:TRUE.  Returns (cert path, key path)."""
    ca_cert, ca_key = load_ca(ca)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    ku = key_usage or dict(digital_signature=True, content_commitment=False,
                           key_encipherment=False, data_encipherment=False,
                           key_agreement=False, key_cert_sign=is_ca, crl_sign=is_ca,
                           encipher_only=False, decipher_only=False)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "forged")]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=24))
            .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(**ku), critical=True)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(spiffe_id)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    os.makedirs(out, exist_ok=True)
    crt, kf = os.path.join(out, "cert.pem"), os.path.join(out, "key.pem")
    with open(crt, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(kf, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(kf, 0o600)
    return crt, kf


def s_client_get(pod, host, port, cert, key, bundle, path):
    """openssl s_client with a client certificate, sending one GET; no
    shim (it speaks TLS itself)."""
    req = "GET %s HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n" % path
    return pod.run([mesh.tool("openssl"), "s_client", "-connect", "%s:%d" % (host, port),
                    "-cert", cert, "-key", key, "-CAfile", bundle, "-quiet",
                    "-verify_return_error"], shim=False, input=req, timeout=30)


def test_ca_certificate_refused_as_client_svid(cluster):
    """Inbound: a CA:TRUE certificate signed by the trust domain's CA for
    the allowed ID gets nowhere through pod b's strict port (the app never
    sees the request; refused as ca_as_leaf); so does a leaf whose key
    usage has keyCertSign; a legitimate SVID from `ldmeshctl ca issue`
    passes with the same s_client."""
    a, b, ca = pair(cluster, policies=[{"name": "client", "action": "allow", "ports": [8090],
                                        "principals": [CLIENT]}])
    app = mesh.start_app(b, 8090)
    bundle = b.svid.bundle
    good = ca.issue(CLIENT, os.path.join(cluster.tmp, "legit"))
    ok = s_client_get(a, b.addr4, 8090, good.cert, good.key, bundle, "/legit")
    assert '"path": "/legit"' in ok.stdout or '"path":"/legit"' in ok.stdout, ok

    crt, key = forge(ca, os.path.join(cluster.tmp, "forged-ca"), CLIENT)
    r = s_client_get(a, b.addr4, 8090, crt, key, bundle, "/forged")
    assert "/forged" not in r.stdout, r
    crt2, key2 = forge(ca, os.path.join(cluster.tmp, "forged-ku"), CLIENT, is_ca=False,
                       key_usage=dict(digital_signature=True, content_commitment=False,
                                      key_encipherment=False, data_encipherment=False,
                                      key_agreement=False, key_cert_sign=True, crl_sign=False,
                                      encipher_only=False, decipher_only=False))
    r = s_client_get(a, b.addr4, 8090, crt2, key2, bundle, "/forged-ku")
    assert "/forged-ku" not in r.stdout, r
    wait_until(lambda: mesh.metric(b, "ldmesh_tls_handshake_errors_total", direction="inbound",
                                   reason="ca_as_leaf") == 1, 10, what="ca_as_leaf counted")
    wait_until(lambda: mesh.metric(b, "ldmesh_tls_handshake_errors_total", direction="inbound",
                                   reason="bad_key_usage") == 1, 10,
               what="bad_key_usage counted")
    assert "/forged" not in app.out(), app.out()


def test_ca_certificate_refused_as_server_svid(cluster):
    """Outbound: a rogue `openssl s_server` in pod b presents a CA:TRUE
    certificate for a mesh ID; a meshed curl in pod a is refused at
    connect and nothing reaches the rogue server.  The same s_server with a
    legitimate SVID gets the request (the control)."""
    a, b, ca = pair(cluster)
    crt, key = forge(ca, os.path.join(cluster.tmp, "forged-srv"), SERVER)
    rogue = b.popen([mesh.tool("openssl"), "s_server", "-accept", "9443", "-cert", crt,
                     "-key", key, "-www"], shim=False, name="rogue")
    b.wait_listening(rogue, 9443)
    r = mesh.curl(a, "http://%s:9443/secret" % b.addr4)
    assert r.returncode == 7, r  # "Couldn't connect": ECONNREFUSED at connect()
    wait_until(lambda: mesh.metric(a, "ldmesh_tls_handshake_errors_total",
                                   direction="outbound", reason="ca_as_leaf") == 1, 10,
               what="ca_as_leaf counted")
    assert "/secret" not in rogue.out(), rogue.out()

    good = ca.issue(SERVER, os.path.join(cluster.tmp, "legit-srv"))
    legit = b.popen([mesh.tool("openssl"), "s_server", "-accept", "9444", "-cert", good.cert,
                     "-key", good.key, "-www"], shim=False, name="legit")
    b.wait_listening(legit, 9444)
    r = mesh.curl(a, "http://%s:9444/hello" % b.addr4)
    # s_server -www answers any GET with its status page.
    assert r.returncode == 0 and "s_server -accept 9444" in r.stdout, r


# --- HTTP/1 request smuggling and path tricks -----------------------------------------

SMUGGLE = "GET /admin HTTP/1.1\r\nHost: b\r\n\r\n"
# name, raw bytes, what the app's log shows when the bytes reach it unguarded
# (None: the test app cannot read that form either, no control), statuses
# the mesh may answer.
HTTP1_ATTACKS = [
    ("pipelined", "GET /api/1 HTTP/1.1\r\nHost: b\r\n\r\n" + SMUGGLE, "/admin", ("403",)),
    ("CL.TE", "POST /api/1 HTTP/1.1\r\nHost: b\r\nContent-Length: 5\r\n"
     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLE, "/admin", ("400",)),
    ("obfuscated TE", "POST /api/1 HTTP/1.1\r\nHost: b\r\nContent-Length: 5\r\n"
     "Transfer-Encoding: chunked\r\nTransfer-encoding: x\r\n\r\n0\r\n\r\n" + SMUGGLE, "/admin",
     ("400",)),
    ("TE with space before colon", "POST /api/1 HTTP/1.1\r\nHost: b\r\nContent-Length: 5\r\n"
     "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + SMUGGLE, "/admin", ("400",)),
    ("bare LF", "GET /admin HTTP/1.1\nHost: b\n\n", None, ("400",)),
    ("absolute-form", "GET http://b/admin HTTP/1.1\r\nHost: b\r\n\r\n", "http://b/admin",
     ("403",)),
    ("dot-dot", "GET /api/../admin HTTP/1.1\r\nHost: b\r\n\r\n", "/api/../admin", ("403",)),
    ("percent-encoded", "GET /api/%2e%2e/admin HTTP/1.1\r\nHost: b\r\n\r\n",
     "/api/%2e%2e/admin", ("403",)),
    ("encoded letter", "GET /%61dmin HTTP/1.1\r\nHost: b\r\n\r\n", "/%61dmin", ("403",)),
]


def test_http1_smuggling_forms_refused(cluster):
    """Each raw request goes through socat: to the app directly (the
    control: the smuggled or disguised /admin reaches it) and through the
    mesh to a port that allows only GET/POST /api/* (400 or 403, and the
    app never sees /admin)."""
    a, b, _ = pair(cluster)
    plain = b.popen([PYTHON, helper("h2c_server.py"), b.addr4, "18090"], name="h1-plain",
                    shim=False)
    plain.wait_output(r"^listening$", timeout=30)
    srv = start(b, [PYTHON, helper("h2c_server.py"), "0.0.0.0", "8090"], "h1-meshed", 8090)
    for name, raw, shows, statuses in HTTP1_ATTACKS:
        if shows:
            a.run([mesh.tool("socat"), "-t", "2", "-", "TCP:%s:18090" % b.addr4], shim=False,
                  input=raw, timeout=30)
            plain.wait_output(r"^served http1 %s$" % re.escape(shows), timeout=10)
        r = a.run([mesh.tool("socat"), "-t", "2", "-", "TCP:%s:8090" % b.addr4], input=raw,
                  timeout=30)
        got = re.findall(r"HTTP/1\.1 (\d{3}) ", r.stdout)
        assert got and got[-1] in statuses, "%s: %r" % (name, r)
    served = [x for x in srv.out().splitlines() if x.startswith("served")]
    assert all(x.split()[-1].startswith("/api/") for x in served), served
