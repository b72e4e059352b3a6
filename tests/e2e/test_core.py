"""Stock, unmodified binaries through two daemons: curl, wget, python's
http.server, nginx, node, redis, ssh; and what the socket API tells a C
program on each side.

Every test uses two pods (a: client, b: server), each with its own ldmeshd.
Clients in a dial b's veth address, so the connection goes shim(a) ->
ldmeshd(a) -> TCP -> ldmeshd(b) -> shim(b) -> server.
"""
import os
import re
import secrets
import shutil
import subprocess

import pytest

import mesh
from pods import PYTHON, through_mesh, wait_until


def require(binary):
    path = shutil.which(binary, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if not path:
        pytest.fail("%s is not installed (make deps installs it)" % binary, pytrace=False)
    return path


def serve_dir(pod):
    """A document root with a unique index.html; returns (dir, body)."""
    root = os.path.join(pod.dir, "www")
    os.makedirs(root, exist_ok=True)
    body = "hello from pod %s %s\n" % (pod.label, secrets.token_hex(8))
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write(body)
    return root, body


def start_http_server(pod, port, bind=None, **kw):
    root, body = serve_dir(pod)
    srv = pod.popen([PYTHON, "-m", "http.server", str(port), "--bind", bind or pod.addr4,
                     "--directory", root], name="http.server", **kw)
    pod.wait_listening(srv, port)
    return srv, body


def fetch_curl(pod, url, **kw):
    return pod.run([require("curl"), "-sS", "-g", "--max-time", "20", url], **kw)


def fetch_wget(pod, url, **kw):
    return pod.run([require("wget"), "-q", "-T", "20", "-t", "1", "-O", "-", url], **kw)


def test_curl_wget_python_http_server(pods):
    a, b = pods
    srv, body = start_http_server(b, 8080)
    url = "http://%s:8080/index.html" % b.addr4

    with through_mesh(a, b, 8080, n=2):
        r = fetch_curl(a, url).ok()
        assert r.stdout == body
        r = fetch_wget(a, url).ok()
        assert r.stdout == body

    # http.server logs "<client address> - - [date] "GET ..." 200 -".
    m = srv.wait_output(r'^(\S+) - - .*"GET /index.html HTTP/1.1" 200.*\n(?:.*\n)*?'
                        r'(\S+) - - .*"GET /index.html HTTP/1.1" 200', stream="err")
    assert m.group(1) == a.addr4 and m.group(2) == a.addr4, srv.err()


def write_nginx_conf(pod, port, root):
    return mesh.nginx_conf(pod, "%s:%d" % (pod.addr4, port), "root %s;" % root)


def test_curl_wget_nginx(pods):
    a, b = pods
    nginx = require("nginx")
    root, body = serve_dir(b)
    tmp, conf = write_nginx_conf(b, 8081, root)
    srv = b.popen([nginx, "-p", tmp, "-e", os.path.join(tmp, "error.log"), "-c", conf],
                  name="nginx")
    b.wait_listening(srv, 8081)
    url = "http://%s:8081/index.html" % b.addr4

    with through_mesh(a, b, 8081, n=2):
        r = fetch_curl(a, url).ok()
        assert r.stdout == body
        r = fetch_wget(a, url).ok()
        assert r.stdout == body

    # nginx writes a request's access.log line once it has finished it, which
    # can be just after the client has the whole body: wait for both lines.
    def logged():
        try:
            with open(os.path.join(tmp, "access.log")) as f:
                return [l for l in f.read().splitlines() if "GET /index.html" in l]
        except FileNotFoundError:
            return []
    try:
        wait_until(lambda: len(logged()) >= 2, 10, interval=0.05,
                   what="2 requests in nginx's access.log")
    except TimeoutError:
        pass
    lines = logged()
    assert len(lines) == 2, lines
    for line in lines:
        assert line.split()[0] == a.addr4, "nginx logged %r, expected pod a's address %s" % (
            line, a.addr4)


def test_sockinfo_sees_tcp_addresses(pods):
    """getpeername/getsockname/SO_DOMAIN/SO_TYPE/SO_ERROR/TCP_NODELAY on
    both ends of a meshed connection answer as on plain TCP."""
    a, b = pods
    srv = b.popen([b.mode.prog("acceptinfo"), b.addr4, "9000", "1"], name="acceptinfo")
    b.wait_listening(srv, 9000)

    with through_mesh(a, b, 9000):
        r = a.prog("sockinfo", b.addr4, 9000).ok()
    kv = r.kv()
    assert kv["connect"] == "ok", r
    assert kv["peer"] == "%s:9000" % b.addr4, r
    local_ip, local_port = kv["local"].rsplit(":", 1)
    assert local_ip == a.addr4 and 0 < int(local_port) < 65536, r
    assert kv["domain"] == "AF_INET", r
    assert kv["type"] == "SOCK_STREAM", r
    assert kv["so_error"] == "0", r
    assert kv["nodelay"] == "1", r
    assert kv["reply"] == "echo:ping", r

    m = srv.wait_output(r"^accepted n=1 (.*)$")
    s = dict(x.split("=", 1) for x in m.group(1).split())
    # The server sees the client's real TCP address, the very one the
    # client's getsockname reported, and its own TCP address.
    assert s["peer"] == kv["local"], (s, kv)
    assert s["getpeername"] == kv["local"], (s, kv)
    assert s["local"] == "%s:9000" % b.addr4, s
    assert s["domain"] == "AF_INET" and s["type"] == "SOCK_STREAM", s


def test_accepted_fd_across_exec(pods):
    """A server that passes the accepted fd to an exec'd child (sshd,
    inetd style): the child, which never saw accept(), still gets TCP
    answers from getpeername/getsockname/SO_DOMAIN."""
    a, b = pods
    srv = b.popen([b.mode.prog("execpeer"), b.addr4, "9010"], name="execpeer")
    b.wait_listening(srv, 9010)
    with through_mesh(a, b, 9010):
        r = a.prog("sockinfo", b.addr4, 9010).ok()
    kv = r.kv()
    assert kv["reply"] == "echo:ping", r
    m = srv.wait_output(r"^accepted peer=(\S+) getpeername=(\S+)$")
    assert m.group(1) == kv["local"] and m.group(2) == kv["local"], srv.out()
    m = srv.wait_output(r"^child getpeername=(\S+) getsockname=(\S+) domain=(\S+)$")
    assert m.group(1) == kv["local"], srv.out()
    assert m.group(2) == "%s:9010" % b.addr4, srv.out()
    assert m.group(3) == "AF_INET", srv.out()
    srv.wait_output(r"^child exit=0$")


def test_node_http_server_and_client(pods):
    a, b = pods
    node = require("node")
    server_js = ("require('http').createServer((q, s) => {"
                 " s.end('node says hi to ' + q.socket.remoteAddress + ':' + q.socket.remotePort);"
                 "}).listen(%d, '%s', () => console.log('listening'));" % (8082, b.addr4))
    srv = b.popen([node, "-e", server_js], name="node-server")
    srv.wait_output("^listening$")
    b.wait_listening(srv, 8082)

    client_js = ("const r = require('http').get('http://%s:8082/', res => {"
                 " let d = ''; res.on('data', c => d += c);"
                 " res.on('end', () => { console.log(res.statusCode + ' ' + d);"
                 " console.log('local ' + r.socket.localAddress + ':' + r.socket.localPort); });"
                 "}); r.on('error', e => { console.log('error ' + e.code); process.exit(1); });"
                 % b.addr4)
    with through_mesh(a, b, 8082):
        r = a.run([node, "-e", client_js], timeout=30).ok()
    m = re.search(r"^200 node says hi to (\S+):(\d+)$", r.stdout, re.M)
    assert m, r
    assert m.group(1) == a.addr4, r
    lm = re.search(r"^local (\S+):(\d+)$", r.stdout, re.M)
    assert lm and lm.group(1) == a.addr4 and lm.group(2) == m.group(2), r


def test_redis(pods):
    a, b = pods
    server = require("redis-server")
    cli = require("redis-cli")
    srv = b.popen([server, "--port", "6390", "--bind", b.addr4, "--save", "", "--appendonly",
                   "no", "--protected-mode", "no", "--daemonize", "no", "--dir", b.dir],
                  name="redis-server")
    b.wait_listening(srv, 6390)
    base = [cli, "-h", b.addr4, "-p", "6390"]
    value = secrets.token_hex(8)
    with through_mesh(a, b, 6390, n=3):
        assert a.run(base + ["SET", "ldmesh", value]).ok().stdout.strip() == "OK"
        assert a.run(base + ["GET", "ldmesh"]).ok().stdout.strip() == value
        # CLIENT LIST run by the client itself: redis shows its real address.
        r = a.run(base + ["CLIENT", "LIST"]).ok()
    addrs = re.findall(r"\baddr=(\S+):\d+", r.stdout)
    assert addrs and set(addrs) == {a.addr4}, r


def ssh_setup(pod, port):
    keygen = require("ssh-keygen")
    if not os.path.exists("/usr/sbin/sshd"):
        pytest.fail("/usr/sbin/sshd is not installed (openssh-server)", pytrace=False)
    d = os.path.join(pod.dir, "ssh")
    os.makedirs(d, exist_ok=True)
    hostkey = os.path.join(d, "host_ed25519")
    userkey = os.path.join(d, "user_ed25519")
    for k in (hostkey, userkey):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", k], check=True,
                       timeout=30)
    shutil.copy(userkey + ".pub", os.path.join(d, "authorized_keys"))
    conf = os.path.join(d, "sshd_config")
    with open(conf, "w") as f:
        f.write("Port %d\nListenAddress %s\nHostKey %s\nPidFile %s/sshd.pid\n"
                "AuthorizedKeysFile %s/authorized_keys\nPermitRootLogin prohibit-password\n"
                "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                "StrictModes no\nUseDNS no\nLogLevel VERBOSE\n"
                % (port, pod.addr4, hostkey, d, d))
    # sshd's privilege-separated child chroots here; Debian's service
    # creates it at boot, a container may not have it.
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    return conf, userkey


def start_sshd(pod, port):
    conf, userkey = ssh_setup(pod, port)
    srv = pod.popen(["/usr/sbin/sshd", "-D", "-e", "-f", conf], name="sshd")
    pod.wait_listening(srv, port)
    return srv, userkey


def ssh_cmd(userkey, host, port):
    return [require("ssh"), "-F", "/dev/null", "-i", userkey, "-p", str(port),
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR",
            "root@" + host, "echo", "hi"]


def test_ssh_server_speaks_first(pods):
    """SSH: the server talks first.  The banner reaches a client that sends
    nothing, with no protocol-detection pause, and a login works."""
    a, b = pods
    srv, userkey = start_sshd(b, 2222)

    with through_mesh(a, b, 2222):
        r = a.python("banner.py", b.addr4, 2222).ok()
    m = re.search(r"^banner=(.*) ms=(-?\d+)$", r.stdout, re.M)
    assert m and m.group(1).startswith("SSH-2.0-"), r
    # A daemon that waited for client bytes before connecting to sshd would
    # only deliver the banner after its detection timeout (seconds).
    assert int(m.group(2)) < 2000, "banner took %s ms: %r" % (m.group(2), r)

    with through_mesh(a, b, 2222):
        r = a.run(ssh_cmd(userkey, b.addr4, 2222), timeout=60)
    assert r.returncode == 0 and r.stdout == "hi\n", "%r\n--- sshd\n%s" % (r, srv.err()[-3000:])


def test_ssh_server_sees_client_address(pods):
    """sshd re-executes itself for each connection: the address it logs
    comes from getpeername() in a process that inherited the accepted fd
    across exec."""
    a, b = pods
    srv, userkey = start_sshd(b, 2222)
    r = a.run(ssh_cmd(userkey, b.addr4, 2222), timeout=60)
    assert r.returncode == 0 and r.stdout == "hi\n", r
    m = srv.wait_output(r"Accepted publickey for root from (\S+) port (\d+)", stream="err")
    assert m.group(1) == a.addr4, srv.err()[-3000:]
