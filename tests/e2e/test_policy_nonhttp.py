"""Issue 18: a port guarded only by HTTP (L7) allow rules refuses whatever
is not HTTP (HTTP/1.x, or HTTP/2 decided stream by stream), every time, whichever side speaks first and however the
bytes arrive; the refusal is the connection-level decision that `ldmeshctl
policy check` gives, and it is counted.  Pod a is the caller (identity
spiffe://cluster.local/ns/acc/sa/client), pod b the server, strict mTLS.
"""
import os
import random

import mesh
from mesh import spiffe
from pods import HELPERS, PYTHON, wait_until

CLIENT = spiffe("acc", "client")
SERVER = spiffe("acc", "server")

SAYHELLO_ONLY = [{"name": "grpc-sayhello", "action": "allow", "ports": [50051],
                  "principals": [CLIENT], "paths": ["/demo.Greeter/SayHello"]}]
WHOLE_PORT = [{"name": "grpc-port", "action": "allow", "ports": [50051],
               "principals": [CLIENT]}]
API_ONLY = [{"name": "api-only", "action": "allow", "ports": [8090], "principals": [CLIENT],
             "methods": ["GET", "POST"], "paths": ["/api/*"]}]


def caller_and_server(cluster, policies):
    a, b = cluster.pair(start=False)
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    mesh.configure(a, ca.issue(CLIENT, os.path.join(cluster.tmp, "id-a")), mtls="strict")
    mesh.configure(b, ca.issue(SERVER, os.path.join(cluster.tmp, "id-b")), mtls="strict",
                   policies=policies, policy_default="deny")
    return a, b


def denials(pod, port, rule="no-allow-rule-matched"):
    return mesh.metric(pod, "ldmesh_policy_decisions_total", decision="deny", rule=rule,
                       port=port) or 0


def helper(name):
    return os.path.join(HELPERS, name)


def policy_check(pod, *args):
    return pod.ctl("policy", "check", "--from", CLIENT, "--port", *args)


def test_grpc_on_http_rule_port_decided_call_by_call(cluster):
    """The issue's reproduction, now decided per call (issue 14):
    python3-grpcio server in pod b, grpcio client in pod a calling SayHello
    and Other on fresh channels 20 times, where the port's only rule allows
    /demo.Greeter/SayHello: every SayHello is OK, every Other gets
    PERMISSION_DENIED and never reaches the server, and both are counted;
    `policy check` says the same per path.  A raw client writing the
    HTTP/2 preface a byte per segment gets the server's SETTINGS.  With a
    rule without paths for the same caller and port, both calls succeed."""
    a, b = caller_and_server(cluster, SAYHELLO_ONLY)
    srv = b.popen([PYTHON, helper("grpc_peer.py"), "server", "0.0.0.0", "50051"],
                  name="grpc-server")
    srv.wait_output(r"^listening$", timeout=30)
    b.wait_listening(srv, 50051)

    r = policy_check(b, "50051")
    assert r.returncode == 3 and "decision deny" in r.stdout, r
    assert "no-allow-rule-matched" in r.stdout and "HTTP/2" in r.stdout, r
    r = policy_check(b, "50051", "--method", "POST", "--path", "/demo.Greeter/Other")
    assert r.returncode == 3 and "decision deny" in r.stdout, r
    r = policy_check(b, "50051", "--method", "POST", "--path", "/demo.Greeter/SayHello")
    assert r.returncode == 0 and "grpc-sayhello" in r.stdout, r

    calls = a.run([PYTHON, helper("grpc_peer.py"), "client", b.addr4, "50051", "20"],
                  timeout=150)
    rounds = [line.split() for line in calls.stdout.splitlines() if line.startswith("round ")]
    assert len(rounds) == 40, calls
    assert {x[3] for x in rounds if x[2] == "SayHello"} == {"OK"}, calls
    assert {x[3] for x in rounds if x[2] == "Other"} == {"PERMISSION_DENIED"}, calls
    for _ in range(3):
        r = a.run([PYTHON, helper("grpc_peer.py"), "bytewise", b.addr4, "50051"], timeout=30)
        assert r.stdout.startswith("got ") and r.stdout.split()[-1] == "4", r  # SETTINGS
    assert srv.out().count("call SayHello") == 20 and "call Other" not in srv.out(), srv.out()
    assert denials(b, 50051) == 20, b.daemon_log()[-3000:]
    assert mesh.metric(b, "ldmesh_policy_decisions_total", decision="allow", port=50051,
                       rule="grpc-sayhello") == 20

    mesh.reconfigure(b, policies=WHOLE_PORT).ok()
    r = policy_check(b, "50051")
    assert r.returncode == 0 and "decision allow" in r.stdout and "grpc-port" in r.stdout, r
    calls = a.run([PYTHON, helper("grpc_peer.py"), "client", b.addr4, "50051", "2"],
                  timeout=60)
    rounds = [line.split() for line in calls.stdout.splitlines() if line.startswith("round ")]
    assert len(rounds) == 4 and {x[3] for x in rounds} == {"OK"}, calls
    assert "call Other" in srv.out()


RANDOM_CLIENT = r'''
import random, socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(18)
for i in range(n):
    payload = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    try:
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(payload)
        s.settimeout(1)
        got = s.recv(4096)
        print("%d %s" % (i, "eof" if not got else "data"), flush=True)
    except OSError as e:
        print("%d %s" % (i, type(e).__name__), flush=True)
    finally:
        s.close()
print("done", flush=True)
'''


def test_non_http_bytes_never_reach_an_http_rule_port(cluster):
    """Port 8090 allows only GET/POST /api/* for the caller.  An HTTP/1
    GET /api/x reaches the app (the control), but a TLS ClientHello in
    plaintext (openssl s_client) and 100 random-byte payloads never put a
    byte into the app, and are counted as denials.  (HTTP/2 is HTTP: its
    streams are decided one by one, test_http2.py.)"""
    a, b = caller_and_server(cluster, API_ONLY)
    rec = b.popen([PYTHON, helper("recorder.py"), "0.0.0.0", "8090"], name="recorder")
    rec.wait_output(r"^listening$", timeout=20)
    b.wait_listening(rec, 8090)
    url = "http://%s:8090/api/x" % b.addr4

    ok = mesh.curl(a, url)
    assert ok.returncode == 0 and ok.stdout == "/api/x", ok
    rec.wait_output(r"^http GET /api/x$", timeout=10)

    tls = a.run([mesh.tool("openssl"), "s_client", "-connect", "%s:8090" % b.addr4,
                 "-servername", "b"], input="", timeout=30)
    assert tls.returncode != 0 and "BEGIN CERTIFICATE" not in tls.stdout, tls
    path = os.path.join(a.dir, "random_client.py")
    with open(path, "w") as f:
        f.write(RANDOM_CLIENT)
    rnd = a.run([PYTHON, path, b.addr4, "8090", "100"], timeout=200)
    assert rnd.stdout.rstrip().endswith("done"), rnd
    assert " data" not in rnd.stdout, rnd

    # Once pod b's daemon holds no connection, every one it opened to the
    # app has ended; none carried a byte.
    wait_until(lambda: not [c for c in mesh.conns(b) if c.get("direction") == "inbound"], 30,
               interval=0.2, what="pod b's inbound connections to end")

    def ended():
        out = rec.out().splitlines()
        lines = [x for x in out if x.startswith("conn ")]
        return lines if len(lines) + 1 == out.count("accept") else None

    lines = wait_until(ended, 15, interval=0.2, what="the app to see each connection end")
    assert all(x.startswith("conn bytes=0 ") for x in lines), \
        [x for x in lines if not x.startswith("conn bytes=0 ")]
    assert rec.out().count("http GET") == 1
    # The decided ones are counted (a random payload that is a partial
    # token line is held until the client gives up: no decision then).
    assert denials(b, 8090) >= 80, b.daemon_log()[-3000:]
