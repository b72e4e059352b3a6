"""End-to-end tests of ldmeshctl: the CA verbs checked with the stock
`openssl` binary, and the CLI's exit codes, control-socket requests and
`run` lifecycle against stand-ins for the daemon.

Run: /usr/bin/python3 -m pytest tests/e2e/test_ca.py
The binary is $LDMESH_BUILD/ldmeshctl (default <repo>/build/ldmeshctl).
"""

import datetime
import os
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("LDMESH_BUILD", os.path.join(REPO, "build"))
CTL = os.path.join(BUILD, "ldmeshctl")
TD = "example.org"
ID = "spiffe://example.org/ns/shop/sa/orders"



@pytest.fixture(autouse=True)
def _tools_present():
    """A missing binary is a failure, never a skip: make test builds
    ldmeshctl and make deps installs openssl."""
    assert os.access(CTL, os.X_OK), "%s is not built: run make" % CTL
    assert shutil.which("openssl"), "openssl is not installed: run make deps"


def ctl(*args, env=None, timeout=30):
    """Runs ldmeshctl; returns the CompletedProcess (text mode)."""
    full_env = dict(os.environ)
    full_env.pop("LDMESH_RUNTIME_DIR", None)
    if env:
        full_env.update(env)
    return subprocess.run([CTL, *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def openssl(*args):
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30)


def cert_text(path):
    r = openssl("x509", "-in", path, "-text", "-noout")
    assert r.returncode == 0, r.stderr
    return r.stdout


def short_tmp():
    """A short directory: Unix socket paths are limited to 108 bytes."""
    return tempfile.mkdtemp(prefix="ldm", dir="/tmp")


def read_until(p, done, timeout=10):
    """Reads p's stdout (a binary pipe) until done(text so far) is true;
    returns the text.  Bounded: fails if p ends or timeout passes first."""
    fd, buf = p.stdout.fileno(), b""
    deadline = time.monotonic() + timeout
    while not done(buf.decode(errors="replace")):
        left = deadline - time.monotonic()
        assert left > 0, "timed out after %ss; stdout so far: %r" % (timeout, buf)
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 65536)
            assert chunk, "stdout closed (rc %s); stdout so far: %r" % (p.poll(), buf)
            buf += chunk
    return buf.decode(errors="replace")


@pytest.fixture
def ca(tmp_path):
    """A CA for example.org in tmp_path/ca; returns the directory."""
    d = tmp_path / "ca"
    r = ctl("ca", "init", "--dir", str(d), "--trust-domain", TD)
    assert r.returncode == 0, r.stderr
    return d


@pytest.fixture
def svid(ca, tmp_path):
    """An SVID for ID issued into tmp_path/out; returns the directory."""
    out = tmp_path / "out"
    r = ctl("ca", "issue", "--dir", str(ca), "--id", ID, "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


# ---- ca init ----------------------------------------------------------


def test_ca_init_files_and_modes(ca):
    assert stat.S_IMODE(os.stat(ca).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(ca / "ca.pem").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(ca / "ca-key.pem").st_mode) == 0o600
    assert (ca / "ca-key.pem").read_text().startswith("-----BEGIN PRIVATE KEY-----")


def test_ca_init_root_extensions(ca):
    text = cert_text(str(ca / "ca.pem"))
    assert "Subject: CN = ldmesh root CA, O = example.org" in text
    assert "Issuer: CN = ldmesh root CA, O = example.org" in text
    assert "X509v3 Basic Constraints: critical\n                CA:TRUE" in text
    assert "X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign" in text
    assert "X509v3 Subject Key Identifier" in text
    assert "URI:spiffe://example.org\n" in text
    assert "NIST CURVE: P-256" in text
    r = openssl("verify", "-CAfile", str(ca / "ca.pem"), str(ca / "ca.pem"))
    assert r.returncode == 0 and "OK" in r.stdout


def test_ca_init_serials_are_random_and_positive(tmp_path):
    serials = set()
    for i in range(3):
        d = tmp_path / f"ca{i}"
        assert ctl("ca", "init", "--dir", str(d), "--trust-domain", TD).returncode == 0
        r = openssl("x509", "-in", str(d / "ca.pem"), "-noout", "-serial")
        serial = int(r.stdout.strip().split("=")[1], 16)
        assert 0 < serial < 2**128
        serials.add(serial)
    assert len(serials) == 3


def test_ca_init_days(tmp_path):
    d = tmp_path / "ca"
    assert ctl("ca", "init", "--dir", str(d), "--trust-domain", TD,
               "--days", "10").returncode == 0
    pem = str(d / "ca.pem")
    assert openssl("x509", "-in", pem, "-noout", "-checkend", str(9 * 86400)).returncode == 0
    assert openssl("x509", "-in", pem, "-noout", "-checkend", str(11 * 86400)).returncode != 0


def test_ca_init_refuses_overwrite(ca):
    before = (ca / "ca.pem").read_bytes()
    r = ctl("ca", "init", "--dir", str(ca), "--trust-domain", TD)
    assert r.returncode == 1
    assert "already exists" in r.stderr and "--force" in r.stderr
    assert (ca / "ca.pem").read_bytes() == before
    r = ctl("ca", "init", "--dir", str(ca), "--trust-domain", TD, "--force")
    assert r.returncode == 0, r.stderr
    assert (ca / "ca.pem").read_bytes() != before


@pytest.mark.parametrize("td", ["", "Example.org", "spiffe://example.org",
                                "example.org/x", "exa mple", "a:1"])
def test_ca_init_rejects_bad_trust_domain(tmp_path, td):
    r = ctl("ca", "init", "--dir", str(tmp_path / "ca"), "--trust-domain", td)
    assert r.returncode == 1
    assert r.stderr.startswith("ldmeshctl: ")
    assert not (tmp_path / "ca" / "ca.pem").exists()


# ---- ca issue ---------------------------------------------------------


def test_issue_verifies_with_stock_openssl(ca, svid):
    for purpose in ([], ["-purpose", "sslclient"], ["-purpose", "sslserver"]):
        r = openssl("verify", *purpose, "-CAfile", str(ca / "ca.pem"), str(svid / "svid.pem"))
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.strip().endswith(": OK")


def test_issue_svid_extensions(svid):
    text = cert_text(str(svid / "svid.pem"))
    assert text.count("URI:") == 1
    assert f"URI:{ID}\n" in text
    assert "X509v3 Subject Alternative Name: critical" in text
    assert "X509v3 Basic Constraints: critical\n                CA:FALSE" in text
    assert ("X509v3 Key Usage: critical\n"
            "                Digital Signature, Key Agreement") in text
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in text
    assert "X509v3 Authority Key Identifier" in text
    assert "X509v3 Subject Key Identifier" in text
    assert "NIST CURVE: P-256" in text
    assert "ecdsa-with-SHA256" in text
    # The ID's path lives in the SAN only.
    subject = [ln for ln in text.splitlines() if ln.strip().startswith("Subject:")][0]
    assert "orders" not in subject and "shop" not in subject


def test_issue_files_modes_and_key_match(ca, svid):
    assert stat.S_IMODE(os.stat(svid / "svid-key.pem").st_mode) == 0o600
    key = (svid / "svid-key.pem").read_text()
    assert key.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert (svid / "svid.pem").read_text().count("BEGIN CERTIFICATE") == 1
    assert (svid / "bundle.pem").read_bytes() == (ca / "ca.pem").read_bytes()
    pub_cert = openssl("x509", "-in", str(svid / "svid.pem"), "-noout", "-pubkey").stdout
    pub_key = openssl("pkey", "-in", str(svid / "svid-key.pem"), "-pubout").stdout
    assert pub_cert and pub_cert == pub_key
    # Files are replaced by rename: no temporary file is left behind.
    assert sorted(os.listdir(svid)) == ["bundle.pem", "svid-key.pem", "svid.pem"]


def _asn1_date(s):
    return datetime.datetime.strptime(s.strip(), "%b %d %H:%M:%S %Y GMT")


def test_issue_validity_window(ca, tmp_path):
    out = tmp_path / "o"
    r = ctl("ca", "issue", "--dir", str(ca), "--id", ID, "--out", str(out), "--hours", "2")
    assert r.returncode == 0, r.stderr
    dates = dict(ln.split("=", 1) for ln in
                 openssl("x509", "-in", str(out / "svid.pem"), "-noout", "-dates")
                 .stdout.splitlines())
    span = _asn1_date(dates["notAfter"]) - _asn1_date(dates["notBefore"])
    assert span == datetime.timedelta(hours=2, minutes=5)
    now = datetime.datetime.utcnow()
    assert _asn1_date(dates["notBefore"]) <= now - datetime.timedelta(minutes=4)


def test_issue_default_is_24_hours(svid):
    pem = str(svid / "svid.pem")
    assert openssl("x509", "-in", pem, "-noout", "-checkend", str(23 * 3600)).returncode == 0
    assert openssl("x509", "-in", pem, "-noout", "-checkend", str(25 * 3600)).returncode != 0


def test_reissue_replaces_files(ca, svid):
    before = (svid / "svid.pem").read_bytes()
    r = ctl("ca", "issue", "--dir", str(ca), "--id", ID, "--out", str(svid))
    assert r.returncode == 0, r.stderr
    assert (svid / "svid.pem").read_bytes() != before
    assert stat.S_IMODE(os.stat(svid / "svid-key.pem").st_mode) == 0o600


def test_issue_json_output(ca, tmp_path):
    import json
    out = tmp_path / "o"
    r = ctl("--json", "ca", "issue", "--dir", str(ca), "--id", ID, "--out", str(out))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["id"] == ID and doc["cert"] == f"{out}/svid.pem"


VALID_IDS = [
    "spiffe://example.org/a",
    "spiffe://example.org/ns/default/sa/web",
    "spiffe://example.org/A-b_c.d/1.2",
    "spiffe://example.org/.../a",  # only "." and ".." are dot segments
]


@pytest.mark.parametrize("spiffe_id", VALID_IDS)
def test_issue_accepts_valid_ids(ca, tmp_path, spiffe_id):
    r = ctl("ca", "issue", "--dir", str(ca), "--id", spiffe_id, "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr


# (malformed ID, a piece of the message that must explain why)
MALFORMED_IDS = [
    ("", "empty"),
    ("example.org/ns/a", "must start with spiffe://"),
    ("https://example.org/a", "must start with spiffe://"),
    ("SPIFFE://example.org/a", "lowercase"),
    ("spiffe://", "trust domain is empty"),
    ("spiffe:///a", "trust domain is empty"),
    ("spiffe://Example.org/a", "lowercase"),
    ("spiffe://exa$mple.org/a", "trust domain contains '$'"),
    ("spiffe://example.org", "no path"),
    ("spiffe://example.org/", "must not end with '/'"),
    ("spiffe://example.org/a/", "must not end with '/'"),
    ("spiffe://example.org/a//b", "empty segment"),
    ("spiffe://example.org/a/./b", "'.' is not allowed"),
    ("spiffe://example.org/a/..", "'..' is not allowed"),
    ("spiffe://example.org/a?x=1", "query"),
    ("spiffe://example.org?x=1", "query"),
    ("spiffe://example.org/a#frag", "fragment"),
    ("spiffe://example.org:8443/a", "port"),
    ("spiffe://user@example.org/a", "userinfo"),
    ("spiffe://example.org/a%20b", "percent-encoded"),
    ("spiffe://example.org/a b", "path contains a space"),
    ("spiffe://example.org/caf\u00e9", "path contains byte 0xc3"),
    ("spiffe://example.org/" + "a" * 2100, "limit is 2048"),
    ("spiffe://" + "a" * 256 + "/x", "limit is 255"),
]


@pytest.mark.parametrize("spiffe_id,why", MALFORMED_IDS)
def test_issue_rejects_malformed_ids(ca, tmp_path, spiffe_id, why):
    out = tmp_path / "o"
    r = ctl("ca", "issue", "--dir", str(ca), "--id", spiffe_id, "--out", str(out))
    assert r.returncode == 1
    assert why in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_issue_rejects_other_trust_domain(ca, tmp_path):
    out = tmp_path / "o"
    r = ctl("ca", "issue", "--dir", str(ca), "--id", "spiffe://other.org/ns/a/sa/b",
            "--out", str(out))
    assert r.returncode == 1
    assert '"other.org"' in r.stderr and '"example.org"' in r.stderr
    assert not out.exists()


def test_issue_without_ca(tmp_path):
    r = ctl("ca", "issue", "--dir", str(tmp_path / "none"), "--id", ID,
            "--out", str(tmp_path / "o"))
    assert r.returncode == 1
    assert "ca.pem" in r.stderr and "ca init" in r.stderr


def test_issue_refuses_to_outlive_ca(tmp_path):
    d = tmp_path / "ca"
    assert ctl("ca", "init", "--dir", str(d), "--trust-domain", TD,
               "--days", "1").returncode == 0
    r = ctl("ca", "issue", "--dir", str(d), "--id", ID, "--out", str(tmp_path / "o"),
            "--hours", "48")
    assert r.returncode == 1
    assert "outlive the CA" in r.stderr


def test_bundle_keeps_extra_roots(ca, tmp_path):
    """ca.pem may hold the signing root plus older ones during a rotation."""
    old = tmp_path / "old"
    assert ctl("ca", "init", "--dir", str(old), "--trust-domain", TD).returncode == 0
    with open(ca / "ca.pem", "a") as f:
        f.write((old / "ca.pem").read_text())
    out = tmp_path / "o"
    r = ctl("ca", "issue", "--dir", str(ca), "--id", ID, "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert (out / "bundle.pem").read_text().count("BEGIN CERTIFICATE") == 2
    r = openssl("verify", "-CAfile", str(out / "bundle.pem"), str(out / "svid.pem"))
    assert r.returncode == 0, r.stdout + r.stderr


# ---- usage errors and exit codes ---------------------------------------


def test_status_daemon_unreachable_exits_2():
    r = ctl("status", "--runtime-dir", "/nonexistent")
    assert r.returncode == 2
    assert "/nonexistent/ctl.sock" in r.stderr
    assert "No such file or directory" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_runtime_dir_from_environment():
    r = ctl("conns", env={"LDMESH_RUNTIME_DIR": "/nonexistent-env"})
    assert r.returncode == 2 and "/nonexistent-env/ctl.sock" in r.stderr


@pytest.mark.parametrize("args", [
    [],
    ["bogus"],
    ["status", "extra"],
    ["status", "--bogus"],
    ["drain", "--timeout"],
    ["drain", "--timeout", "soon"],
    ["policy"],
    ["policy", "check", "--from", ID],
    ["policy", "check", "--port", "99999"],
    ["policy", "check", "--port", "80", "--from", "not-an-id"],
    ["ca"],
    ["ca", "frobnicate"],
    ["ca", "init", "--trust-domain", TD],
    ["ca", "init", "--dir", "/tmp/x"],
    ["ca", "init", "--dir", "/tmp/x", "--trust-domain", TD, "--days", "0"],
    ["ca", "issue", "--dir", "/tmp/x", "--id", ID],
    ["ca", "issue", "--dir", "/tmp/x", "--id", ID, "--out", "/tmp/y", "--hours", "-1"],
    ["run"],
    ["run", "--"],
    ["run", "--bogus", "--", "true"],
    ["--runtime-dir"],
])
def test_usage_errors_exit_1(args):
    r = ctl(*args)
    assert r.returncode == 1, (args, r.stdout, r.stderr)
    assert "usage" in r.stderr or "ldmeshctl:" in r.stderr
    assert r.stdout == ""


def test_help_and_version():
    r = ctl("--help")
    assert r.returncode == 0 and "ca issue" in r.stdout and "policy check" in r.stdout
    r = ctl("--version")
    assert r.returncode == 0 and r.stdout.startswith("ldmeshctl ")


# ---- control socket requests, against a stand-in daemon ---------------


class FakeCtl:
    """Listens on <dir>/ctl.sock, records each request line and answers
    with the next canned reply."""

    def __init__(self, replies):
        self.dir = short_tmp()
        self.requests = []
        self.replies = list(replies)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(os.path.join(self.dir, "ctl.sock"))
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.replies:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                self.requests.append(data.decode())
                conn.sendall(self.replies.pop(0))

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def fake_ctl():
    made = []

    def make(*replies):
        f = FakeCtl(replies)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


def test_ctl_forwards_plain_verbs(fake_ctl):
    verbs = ["status", "conns", "stats", "reload"]
    f = fake_ctl(*[b"OK\nbody of " + v.encode() + b"\n" for v in verbs])
    for v in verbs:
        r = ctl(v, "--runtime-dir", f.dir)
        assert r.returncode == 0, r.stderr
        assert r.stdout == f"body of {v}\n"
    assert f.requests == [f"LDMCTL1 text {v}\n" for v in verbs]


def test_ctl_check_exit_status_follows_the_problem_count(fake_ctl):
    """`check` prints the daemon's answer and exits 1 when it counts a
    problem (include/ldmesh/ctl.h: the body starts "problems N"), 0 when
    none, and 1 with a message when the answer does not say."""
    f = fake_ctl(b"OK\nproblems 0\nall good\n", b"OK\nproblems 2\nlistener\nidentity\n",
                 b"OK\nsomething else\n")
    r = ctl("check", "--runtime-dir", f.dir)
    assert r.returncode == 0 and r.stdout == "problems 0\nall good\n", r
    r = ctl("check", "--runtime-dir", f.dir)
    assert r.returncode == 1 and r.stdout == "problems 2\nlistener\nidentity\n", r
    r = ctl("check", "--runtime-dir", f.dir)
    assert r.returncode == 1 and "does not say whether it found problems" in r.stderr, r


def test_ctl_top_frames(fake_ctl):
    """`top` without a terminal: one frame a second from `stats raw`, each
    the difference from the one before (20 requests in about a second),
    busiest first; SIGTERM ends it with exit 0."""
    peer = "spiffe://example.org/ns/shop/sa/payments"

    def raw(requests, ok, fast, slow):
        buckets = [0] * 26
        buckets[0], buckets[10] = fast, slow  # le=1 ms and le=100 ms
        return ("inbound 8080 %d %d %d 1 1 100 200 %s %s\n" % (
            requests, ok, requests - ok, " ".join(map(str, buckets)), peer)).encode()
    # A spare third reply: a slow runner may let a third refresh start
    # before SIGTERM lands; only the first two frames are checked.
    f = fake_ctl(b"OK\n" + raw(10, 10, 10, 0), b"OK\n" + raw(30, 28, 28, 2),
                 b"OK\n" + raw(30, 28, 28, 2))
    env = dict(os.environ)
    env.pop("LDMESH_RUNTIME_DIR", None)
    p = subprocess.Popen([CTL, "--runtime-dir", f.dir, "top"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        # Each frame is written whole (one fflush of a few hundred bytes):
        # the second header and a final newline mean two complete frames.
        seen = read_until(p, lambda t: t.count("ldmeshctl top") >= 2 and t.endswith("\n"))
    finally:
        p.send_signal(signal.SIGTERM)
        rest, err = p.communicate(timeout=10)
    out, err = seen + rest.decode(errors="replace"), err.decode(errors="replace")
    assert p.returncode == 0, err
    assert f.requests[:2] == ["LDMCTL1 text stats raw\n"] * 2
    frames = [fr for fr in out.split("ldmeshctl top") if fr.strip()]
    assert len(frames) >= 2, out
    row = [l for l in frames[1].splitlines() if peer in l]
    assert len(row) == 1, frames[1]
    cols = row[0].split()
    # DIRECTION PEER PORT RPS SUCCESS P50 P99 OPEN
    assert cols[0] == "inbound" and cols[2] == "8080", cols
    assert 10 <= float(cols[3]) <= 25 and cols[4] == "90.00%", cols
    assert float(cols[5]) <= 1 and 50 < float(cols[6]) <= 100 and cols[7] == "1", cols


def test_ctl_json_flag_anywhere(fake_ctl):
    f = fake_ctl(b'OK\n[{"direction":"inbound"}]\n', b"OK\n{}\n")
    assert ctl("conns", "--json", "--runtime-dir", f.dir).stdout == '[{"direction":"inbound"}]\n'
    assert ctl("--json", f"--runtime-dir={f.dir}", "status").returncode == 0
    assert f.requests == ["LDMCTL1 json conns\n", "LDMCTL1 json status\n"]


def test_ctl_drain_timeout(fake_ctl):
    f = fake_ctl(b"OK\n", b"OK\n")
    assert ctl("--runtime-dir", f.dir, "drain", "--timeout", "7").returncode == 0
    assert ctl("--runtime-dir", f.dir, "drain").returncode == 0
    assert f.requests == ["LDMCTL1 text drain 7\n", "LDMCTL1 text drain\n"]


def test_ctl_err_answer_exits_1(fake_ctl):
    f = fake_ctl(b"ERR config: /etc/ldmesh.conf:3: unknown key\n")
    r = ctl("reload", "--runtime-dir", f.dir)
    assert r.returncode == 1
    assert r.stderr == "ldmeshctl: config: /etc/ldmesh.conf:3: unknown key\n"
    assert r.stdout == ""


@pytest.mark.parametrize("body,code", [
    (b"decision allow\nrule orders-from-payments\n", 0),
    (b"decision deny\nrule default-deny\n", 3),
    (b'{"decision": "allow", "rule": "r"}\n', 0),
    (b'{"decision":"deny","rule":null}\n', 3),
])
def test_ctl_policy_check_exit_codes(fake_ctl, body, code):
    f = fake_ctl(b"OK\n" + body)
    r = ctl("policy", "check", "--from", "spiffe://example.org/ns/shop/sa/payments",
            "--port", "8080", "--method", "GET", "--path", "/api/orders",
            "--runtime-dir", f.dir)
    assert r.returncode == code, r.stderr
    assert r.stdout == body.decode()
    assert f.requests == ["LDMCTL1 text policy-check spiffe://example.org/ns/shop/sa/payments "
                          "8080 GET /api/orders\n"]


def test_ctl_policy_check_absent_values(fake_ctl):
    f = fake_ctl(b"OK\ndecision deny\n")
    r = ctl("--json", "policy", "check", "--port", "9000", "--runtime-dir", f.dir)
    assert r.returncode == 3
    assert f.requests == ["LDMCTL1 json policy-check - 9000 - -\n"]


# ---- run, against a stand-in ldmeshd -----------------------------------

FAKE_DAEMON = textwrap.dedent("""\
    #!{python}
    # Stand-in for ldmeshd: records how it was started, serves handoff.sock
    # until SIGTERM.
    import os, signal, socket, sys
    args = sys.argv[1:]
    rt = args[args.index("--runtime-dir") + 1]
    with open(os.environ["FAKE_DAEMON_LOG"], "w") as f:
        f.write(repr(args) + "\\n" + os.environ.get("LD_PRELOAD", "<unset>") + "\\n")
    if os.environ.get("FAKE_DAEMON_FAIL"):
        sys.exit(int(os.environ["FAKE_DAEMON_FAIL"]))
    def stop(sig, frame):
        with open(os.environ["FAKE_DAEMON_LOG"], "a") as f:
            f.write("stopped\\n")
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(os.path.join(rt, "handoff.sock"))
    s.listen(16)
    while True:
        c, _ = s.accept()
        c.close()
    """)


@pytest.fixture
def run_env(tmp_path):
    """Runtime dir, fake shim and fake daemon for `ldmeshctl run`."""
    rt = short_tmp()
    shim = tmp_path / "libldmesh.so"
    shim.write_text("not a library: ld.so warns and goes on\n")
    daemon = tmp_path / "ldmeshd"
    daemon.write_text(FAKE_DAEMON.format(python=sys.executable))
    daemon.chmod(0o755)
    log = tmp_path / "daemon.log"
    env = {"LDMESH_SHIM": str(shim), "LDMESH_DAEMON": str(daemon),
           "FAKE_DAEMON_LOG": str(log), "LD_PRELOAD": ""}
    yield rt, shim, log, env
    shutil.rmtree(rt, ignore_errors=True)


def test_run_starts_and_stops_daemon(run_env, tmp_path):
    rt, shim, log, env = run_env
    conf = tmp_path / "ldmesh.conf"
    conf.write_text("trust_domain = \"example.org\";\n")
    r = ctl("--runtime-dir", rt, "run", "--config", str(conf), "--",
            "sh", "-c", 'echo "$LD_PRELOAD|$LDMESH_RUNTIME_DIR"; exit 7', env=env)
    assert r.returncode == 7, r.stderr
    assert r.stdout == f"{shim}|{rt}\n"
    args, preload, stopped = log.read_text().splitlines()
    assert args == repr(["-c", str(conf), "--runtime-dir", rt])
    assert preload == "<unset>"  # the daemon never gets the shim
    assert stopped == "stopped"


def test_run_keeps_existing_preload_first(run_env, tmp_path):
    """ldmesh-run adds the shim after what LD_PRELOAD holds (a sanitizer
    runtime must stay first), once."""
    rt, shim, log, env = run_env
    other = tmp_path / "other.so"
    other.write_text("")
    env = dict(env, LD_PRELOAD="%s %s" % (other, shim))
    r = ctl("run", "--runtime-dir", rt, "--", "sh", "-c", 'echo "$LD_PRELOAD"', env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{other} {shim}\n"
    assert log.read_text().splitlines()[1] == "<unset>"


def test_run_command_flags_are_not_global(run_env):
    rt, shim, log, env = run_env
    r = ctl("--runtime-dir", rt, "run", "printf", "%s,", "--json", "--runtime-dir", "x",
            env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "--json,--runtime-dir,x,"


def test_run_killed_command_exit_status(run_env):
    rt, shim, log, env = run_env
    r = ctl("--runtime-dir", rt, "run", "--", "sh", "-c", "kill -TERM $$", env=env)
    assert r.returncode == 128 + signal.SIGTERM
    assert log.read_text().splitlines()[-1] == "stopped"


def test_run_forwards_sigterm(run_env):
    rt, shim, log, env = run_env
    full = dict(os.environ, **env)
    p = subprocess.Popen([CTL, "--runtime-dir", rt, "run", "--", "sh", "-c",
                          "echo up; exec sleep 30"],
                         env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # "up" is printed by the command itself: it runs, so `run` has
        # forked it (and holds the signals it forwards from before the fork).
        read_until(p, lambda t: "up\n" in t)
    finally:
        p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == 128 + signal.SIGTERM, p.stderr.read()
    assert log.read_text().splitlines()[-1] == "stopped"


def test_run_daemon_exits_early(run_env):
    rt, shim, log, env = run_env
    r = ctl("--runtime-dir", rt, "run", "--", "true", env=dict(env, FAKE_DAEMON_FAIL="3"))
    assert r.returncode == 2
    assert "exited with status 3" in r.stderr


def test_run_uses_running_daemon(run_env):
    rt, shim, log, env = run_env
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(os.path.join(rt, "handoff.sock"))
    s.listen(4)
    try:
        env = dict(env, LDMESH_DAEMON="/nonexistent/ldmeshd")
        r = ctl("--runtime-dir", rt, "run", "--", "sh", "-c", 'echo "$LD_PRELOAD"; exit 4',
                env=env)
        assert r.returncode == 4, r.stderr
        assert r.stdout == f"{shim}\n"
        assert not log.exists()
    finally:
        s.close()


def test_run_command_not_found(run_env):
    rt, shim, log, env = run_env
    r = ctl("--runtime-dir", rt, "run", "--", "/nonexistent/cmd", env=env)
    assert r.returncode == 127
    assert "/nonexistent/cmd" in r.stderr
    assert log.read_text().splitlines()[-1] == "stopped"


def test_run_missing_shim(run_env):
    rt, shim, log, env = run_env
    r = ctl("--runtime-dir", rt, "run", "--", "true",
            env=dict(env, LDMESH_SHIM="/nonexistent/libldmesh.so"))
    assert r.returncode == 1
    assert "LDMESH_SHIM" in r.stderr


def test_run_makes_runtime_dir_absolute(run_env):
    rt, shim, log, env = run_env
    full = dict(os.environ, **env)
    full.pop("LDMESH_RUNTIME_DIR", None)
    r = subprocess.run([CTL, "--runtime-dir", os.path.basename(rt), "run", "--",
                        "sh", "-c", 'echo "$LDMESH_RUNTIME_DIR"'],
                       cwd=os.path.dirname(rt), env=full, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{rt}\n"
    assert f"'--runtime-dir', '{rt}'" in log.read_text()
