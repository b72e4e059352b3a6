"""Issue 20: traffic that starts and ends inside the pod (loopback, or the
pod's own address) reaches a meshed listener as it would without the mesh:
the client's bytes unchanged (an app's own TLS stays end to end), the
real local peer address, no mTLS, no policy, whether the client is meshed
or not.  Remote peers still get strict mTLS and policy in the same run.
Pod b is the server pod (strict mTLS, default-deny policy with one allow
rule for pod a's identity); pod a is the remote caller.
"""
import hashlib
import os
import re

import mesh
from mesh import spiffe
from pods import HELPERS, PYTHON, wait_until

CLIENT = spiffe("acc", "client")
SERVER = spiffe("acc", "server")


def server_pod(cluster):
    a, b = cluster.pair(start=False)
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    mesh.configure(a, ca.issue(CLIENT, os.path.join(cluster.tmp, "id-a")), mtls="strict")
    mesh.configure(b, ca.issue(SERVER, os.path.join(cluster.tmp, "id-b")), mtls="strict",
                   policy_default="deny",
                   policies=[{"name": "from-a", "action": "allow", "principals": [CLIENT]}])
    return a, b


def load(pod, url, shim):
    r = pod.run([PYTHON, os.path.join(HELPERS, "local_load.py"), url, "100", "50"], shim=shim,
                timeout=120)
    assert "ok=150 fail=0" in r.stdout, "%s (shim=%s): %r" % (url, shim, r)
    return r.stdout


def test_same_pod_clients_reach_meshed_http_server(cluster):
    """python3 http.server on 0.0.0.0 held by pod b's daemon: curl and
    python, meshed and not, via 127.0.0.1, localhost and the pod address
    are served, the app sees the real local peer and no identity header,
    100 sequential and 50 concurrent requests per path; the daemon counts
    them as same-pod and hands the sockets over.  In the same run a remote
    unmeshed client is refused by strict mTLS and a remote meshed one is
    served with its identity."""
    a, b = server_pod(cluster)
    app = mesh.start_app(b, 8080, addr="0.0.0.0")
    for shim in (True, False):
        for host, peer in (("127.0.0.1", "127.0.0.1"), ("localhost", "127.0.0.1"),
                           (b.addr4, b.addr4)):
            r = mesh.curl(b, "http://%s:8080/local" % host, shim=shim)
            j = mesh.app_json(r)
            assert j["peer"] == peer and j["xfcc"] == [], (host, shim, j)
        out = load(b, "http://127.0.0.1:8080/load", shim)
        assert "peers=127.0.0.1" in out, out
        out = load(b, "http://%s:8080/load" % b.addr4, shim)
        assert "peers=%s" % b.addr4 in out, out
    handed = mesh.metric(b, "ldmesh_same_pod_connections_total", how="handed")
    assert handed >= 2 * (3 + 300), handed
    # The meshed client dialling the pod's own address goes through its
    # daemon once, in plaintext (counted as proxied), then is handed over.
    assert mesh.metric(b, "ldmesh_same_pod_connections_total", how="proxied") >= 151
    assert mesh.metric(b, "ldmesh_policy_decisions_total", decision="deny") in (None, 0)

    # Remote peers: strict mTLS and policy as before.
    r = mesh.curl(a, "http://%s:8080/remote" % b.addr4, shim=False)
    assert r.returncode != 0, r
    marker = "same-pod-remote-%s" % os.urandom(8).hex()
    pcap = os.path.join(cluster.tmp, "remote.pcap")
    with mesh.capture(b, pcap, "tcp port %d" % mesh.wire_port(b, 8080)):
        j = mesh.app_json(mesh.curl(a, "http://%s:8080/%s" % (b.addr4, marker)))
    assert j["peer"] == a.addr4 and any("URI=" + CLIENT in x for x in j["xfcc"]), j
    assert marker in app.out()
    with open(pcap, "rb") as f:
        wire = f.read()
    # On the wire: a TLS handshake record, and the request nowhere in clear.
    assert b"\x16\x03\x01" in wire and marker.encode() not in wire


def test_same_pod_app_tls_stays_end_to_end(cluster):
    """openssl s_server with its own certificate on 0.0.0.0 (meshed):
    s_client from the same pod, meshed and not, over 127.0.0.1 and the pod
    address sees the app's certificate, not the mesh's handshake."""
    a, b = server_pod(cluster)
    key, crt = os.path.join(b.dir, "app-key.pem"), os.path.join(b.dir, "app-cert.pem")
    mesh.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", key, "-out", crt, "-days", "1", "-subj",
                 "/CN=app-own-certificate")
    srv = b.popen([mesh.tool("openssl"), "s_server", "-accept", "8443", "-cert", crt, "-key",
                   key, "-www"], name="s_server")
    b.wait_listening(srv, 8443)
    for shim in (True, False):
        for host in ("127.0.0.1", b.addr4):
            r = b.run([mesh.tool("openssl"), "s_client", "-ign_eof", "-connect", "%s:8443" % host],
                      shim=shim, input="GET / HTTP/1.0\r\n\r\n", timeout=30)
            assert "CN = app-own-certificate" in r.stdout, (host, shim, r)
            assert "s_server -accept 8443" in r.stdout, (host, shim, r)


ASYNC_SERVER = r'''
import asyncio, sys
async def main():
    async def echo(r, w):
        line = await r.readline()
        peer = w.get_extra_info("peername")[0]
        w.write(b"echo " + line.strip() + b" from " + peer.encode() + b"\n")
        await w.drain()
        w.close()
    srv = await asyncio.start_server(echo, "0.0.0.0", 0)
    print("port %d" % srv.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(600)
asyncio.run(main())
'''


def test_same_pod_dual_stack_and_ephemeral_listeners(cluster):
    """nginx (2 workers) on [::] dual stack reached over ::1, 127.0.0.1 and
    localhost; an asyncio server on 0.0.0.0 port 0 reached on 127.0.0.1 at
    the port getsockname gave it; a server bound only to the pod address;
    meshed and unmeshed clients, 100 sequential and 50 concurrent requests
    each through the nginx paths."""
    _, b = server_pod(cluster)
    tmp, conf = mesh.nginx_conf(b, "[::]:8082 ipv6only=off",
                                'location / { return 200 "nginx $remote_addr\\n"; }',
                                workers=2, log_format="$remote_addr $request_uri")
    ngx = b.popen([mesh.tool("nginx"), "-p", tmp, "-e", os.path.join(tmp, "error.log"), "-c",
                   conf], name="nginx")
    b.wait_listening(ngx, 8082)
    for shim in (True, False):
        for url, peer in (("http://[::1]:8082/v6", "::1"),
                          ("http://127.0.0.1:8082/v4", "::ffff:127.0.0.1"),
                          ("http://localhost:8082/name", None)):
            r = mesh.curl(b, url, shim=shim)
            assert r.returncode == 0 and r.stdout.startswith("nginx "), (url, shim, r)
            if peer:
                assert r.stdout.strip() == "nginx " + peer, (url, shim, r)
        load(b, "http://[::1]:8082/load6", shim)
        load(b, "http://127.0.0.1:8082/load4", shim)
    with open(os.path.join(tmp, "access.log")) as f:
        log = f.read()
    assert "::1 /v6" in log and "::ffff:127.0.0.1 /v4" in log, log[-2000:]

    path = os.path.join(b.dir, "async_server.py")
    with open(path, "w") as f:
        f.write(ASYNC_SERVER)
    srv = b.popen([PYTHON, path], name="asyncio")
    port = int(srv.wait_output(r"^port (\d+)$", timeout=20).group(1))
    b.wait_listening(srv, port)
    for shim in (True, False):
        r = b.run([mesh.tool("socat"), "-t", "5", "-", "TCP:127.0.0.1:%d" % port], shim=shim,
                  input="hi\n", timeout=30)
        assert r.stdout == "echo hi from 127.0.0.1\n", (shim, r)

    pod_only = mesh.start_app(b, 8083)  # bound to the pod address alone
    for shim in (True, False):
        j = mesh.app_json(mesh.curl(b, "http://%s:8083/pod-only" % b.addr4, shim=shim))
        assert j["peer"] == b.addr4 and j["xfcc"] == [], j
    assert "/pod-only" in pod_only.out()


FTP_SERVER = r'''
import sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
auth = DummyAuthorizer()
auth.add_anonymous(sys.argv[2])
FTPHandler.authorizer = auth
FTPHandler.permit_foreign_addresses = False
srv = FTPServer((sys.argv[1], 2121), FTPHandler)
print("listening", flush=True)
srv.serve_forever(timeout=1)
'''

FTP_CLIENT = r'''
import ftplib, hashlib, sys
host = sys.argv[1]
f = ftplib.FTP()
f.connect(host, 2121, timeout=20)
f.login()
f.set_pasv(False)  # active mode: the server connects back to our listener
data = bytearray()
f.retrbinary("RETR blob.bin", data.extend)
f.quit()
print("got %d %s" % (len(data), hashlib.sha256(data).hexdigest()), flush=True)
'''


def test_same_pod_ftp_active_mode(cluster):
    """python3 ftplib (meshed) in active mode against python3-pyftpdlib
    (meshed) in the same pod: the client's data listener is on the
    wildcard address, held by the daemon, and the server connects back
    over 127.0.0.1 and ::1; 1 MiB arrives intact."""
    _, b = server_pod(cluster)
    root = os.path.join(b.dir, "ftp")
    os.makedirs(root, exist_ok=True)
    blob = os.urandom(1 << 20)
    with open(os.path.join(root, "blob.bin"), "wb") as f:
        f.write(blob)
    want = "got %d %s" % (len(blob), hashlib.sha256(blob).hexdigest())
    srv_py, cli_py = os.path.join(b.dir, "ftpd.py"), os.path.join(b.dir, "ftpc.py")
    with open(srv_py, "w") as f:
        f.write(FTP_SERVER)
    with open(cli_py, "w") as f:
        f.write(FTP_CLIENT)
    handed = 0
    for host in ("127.0.0.1", "::1"):
        # plain: pyftpdlib imports crypt, whose libcrypt call crashes
        # under the ASan preload; the client stays sanitized.
        srv = b.popen([PYTHON, srv_py, host, root], name="ftpd", plain=True)
        srv.wait_output(r"^listening$", timeout=20)
        b.wait_listening(srv, 2121)
        r = b.run([PYTHON, cli_py, host], timeout=60)
        assert r.stdout.strip() == want, (host, r)
        # The data connection came to the client's listener, held by the
        # daemon, and was handed over.
        now = mesh.metric(b, "ldmesh_same_pod_connections_total", how="handed")
        assert now > handed, (host, now)
        handed = now
        srv.stop()


REUSEPORT_SERVER = r'''
import os, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(64)
print("listening", flush=True)
while True:
    c, peer = s.accept()
    if os.fork() == 0:  # fork after accept: the child serves, the parent accepts on
        s.close()
        c.recv(100)
        c.sendall(b"pid %d peer %s\n" % (os.getppid(), peer[0].encode()))
        c.close()
        os._exit(0)
    c.close()
'''

REUSEPORT_CLIENT = r'''
import socket, sys
seen = {}
for i in range(int(sys.argv[2])):
    s = socket.create_connection((sys.argv[1], 8085), timeout=10)
    s.sendall(b"hi")
    line = s.makefile().readline().split()
    seen[line[1]] = line[3]
    s.close()
print("pids=%d peers=%s" % (len(seen), ",".join(sorted(set(seen.values())))), flush=True)
'''


def test_same_pod_reuseport_and_fork_after_accept(cluster):
    """Two meshed processes share 0.0.0.0:8085 with SO_REUSEPORT, each
    forking a child per accepted connection: 40 local connections from a
    meshed and an unmeshed client are all answered, by both processes,
    with the real local peer address."""
    _, b = server_pod(cluster)
    path = os.path.join(b.dir, "reuseport.py")
    with open(path, "w") as f:
        f.write(REUSEPORT_SERVER)
    for i in range(2):
        srv = b.popen([PYTHON, path, "8085"], name="reuseport")
        srv.wait_output(r"^listening$", timeout=20)
    b.wait_listening(srv, 8085)
    cli = os.path.join(b.dir, "reuseport_client.py")
    with open(cli, "w") as f:
        f.write(REUSEPORT_CLIENT)
    for shim in (True, False):
        for host in ("127.0.0.1", b.addr4):
            r = b.run([PYTHON, cli, host, "40"], shim=shim, timeout=60)
            assert r.stdout.strip() == "pids=2 peers=%s" % host, (host, shim, r)
