"""mTLS and policy helpers for the e2e tests, on top of pods.py (which they
use but do not change).

  CA, SVID      a CA and SVIDs from `ldmeshctl ca init/issue`, and the odd
                certificates the daemon must refuse, made with the stock
                `openssl` CLI (expired, no URI SAN, two URI SANs, another
                trust domain signed by our CA).
  configure()   writes a pod's config (identity, inbound modes, outbound,
                services, policies) and starts its daemon; reconfigure()
                rewrites it with changes and runs `ldmeshctl reload`.
  trio()        three pods on a bridge in a hub namespace the test creates.
  metrics()     Prometheus text scraped from the daemon's admin_addr inside
                the pod's namespace (curl over loopback, no shim).
  capture()     tcpdump on the pod's veth0, to a file, and a pcap reader
                that reassembles TCP streams and walks TLS records.
  start_app()   a small HTTP/1.1 app (python) that answers every request
                with JSON naming what it saw, including the
                x-forwarded-client-cert header; GET /blob/N sends N bytes.
  start_loop()  a bounded HTTP request loop in a pod, one line per request.
  single_cluster  fixture: a Cluster in one mode, for mode-independent checks.

Everything started goes through the Cluster (pods.py), so its teardown
stops it; every wait is bounded.
"""
import contextlib
import datetime
import hashlib
import itertools
import json
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import time

import pytest

import pods as podlib
from pods import PATH, PYTHON, RUN_PREFIX, Pod, sh, wait_until

TD = "cluster.local"
ADMIN_PORT = 4191
MESH_NETWORKS = ["10.250.0.0/16", "fd00:250::/64"]

_trio_counter = itertools.count(1)
_file_counter = itertools.count(1)


def tool(name):
    path = shutil.which(name, path=PATH)
    if not path:
        pytest.fail("%s is not installed" % name, pytrace=False)
    return path


def run(args, timeout=30, env=None, check=True, input=None):
    """Runs a host-side tool (openssl, ldmeshctl ca) to completion."""
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                       env=env, input=input)
    if check and r.returncode != 0:
        raise AssertionError("%s failed (rc %d)\n--- stdout\n%s\n--- stderr\n%s" % (
            " ".join(map(str, args)), r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
    return r


def host_env(mode):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LDMESH_", "LD_PRELOAD", "ASAN_", "UBSAN_"))}
    env["PATH"] = PATH
    if mode.asan:
        env["ASAN_OPTIONS"] = "detect_leaks=0"
    return env


def openssl(*args, **kw):
    return run([tool("openssl")] + list(args), **kw)


@pytest.fixture
def single_cluster(tmp_path):
    """A pods.Cluster in one mode (io_uring), for checks that do not depend
    on the I/O backend; import it into a test module to use it."""
    if os.geteuid() != 0:
        pytest.fail("the e2e tests create network namespaces: run them as root", pytrace=False)
    m = podlib.Mode("io_uring")
    m.check_built()
    c = podlib.Cluster(m, tmp_path)
    try:
        yield c
    finally:
        c.close()


# --- certificates ----------------------------------------------------------

class SVID:
    """The three identity files in one directory, as `ca issue` writes them."""

    def __init__(self, d):
        self.dir = str(d)
        self.cert = os.path.join(self.dir, "svid.pem")
        self.key = os.path.join(self.dir, "svid-key.pem")
        self.bundle = os.path.join(self.dir, "bundle.pem")

    def serial(self):
        """Serial number as uppercase hex without leading zeros."""
        return cert_serial(self.cert)

    def uris(self):
        return cert_uris(self.cert)

    def __repr__(self):
        return "<SVID %s %s>" % (self.dir, self.uris())


def cert_serial(path):
    out = openssl("x509", "-in", path, "-noout", "-serial").stdout.strip()
    return normalize_serial(out.split("=", 1)[1])


def normalize_serial(s):
    s = s.replace(":", "").strip().upper().lstrip("0")
    return s or "0"


def cert_uris(path):
    text = openssl("x509", "-in", path, "-noout", "-ext", "subjectAltName", check=False).stdout
    return re.findall(r"URI:(\S+?)(?:,|$)", text, re.M)


class CA:
    """A CA made by `ldmeshctl ca init`; issue() makes SVIDs with `ca issue`,
    sign() makes leaf certificates with the stock openssl CLI."""

    def __init__(self, mode, d, td=TD):
        self.mode, self.dir, self.td = mode, str(d), td
        run([mode.ldmeshctl, "ca", "init", "--dir", self.dir, "--trust-domain", td],
            env=host_env(mode))
        self.cert = os.path.join(self.dir, "ca.pem")
        self.key = os.path.join(self.dir, "ca-key.pem")

    def issue(self, spiffe_id, out, hours=None):
        args = [self.mode.ldmeshctl, "ca", "issue", "--dir", self.dir, "--id", spiffe_id,
                "--out", str(out)]
        if hours:
            args += ["--hours", str(hours)]
        run(args, env=host_env(self.mode))
        return SVID(out)

    def sign(self, out, uris, not_before=None, not_after=None):
        """A P-256 leaf signed by this CA with openssl: the given URI SANs
        (none, one or several, of any trust domain) and validity.  Writes
        the same three file names as `ca issue`."""
        os.makedirs(out, exist_ok=True)
        svid = SVID(out)
        work = os.path.join(out, "openssl")
        os.makedirs(work, exist_ok=True)
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", svid.key)
        os.chmod(svid.key, 0o600)
        csr = os.path.join(work, "leaf.csr")
        openssl("req", "-new", "-key", svid.key, "-subj", "/O=ldmesh e2e/CN=odd leaf",
                "-out", csr)
        with open(os.path.join(work, "index.txt"), "w"):
            pass
        with open(os.path.join(work, "serial"), "w") as f:
            f.write("%032X\n" % random.getrandbits(120))
        san = ""
        if uris:
            san = "subjectAltName = critical, @alt\n[ alt ]\n" + "".join(
                "URI.%d = %s\n" % (i + 1, u) for i, u in enumerate(uris))
        cnf = os.path.join(work, "ca.cnf")
        with open(cnf, "w") as f:
            f.write("[ ca ]\ndefault_ca = d\n[ d ]\n"
                    "database = {w}/index.txt\nnew_certs_dir = {w}\nserial = {w}/serial\n"
                    "default_md = sha256\npolicy = any\nunique_subject = no\n"
                    "copy_extensions = none\nemail_in_dn = no\n"
                    "[ any ]\norganizationName = optional\ncommonName = optional\n"
                    "[ leaf ]\nbasicConstraints = critical, CA:FALSE\n"
                    "keyUsage = critical, digitalSignature, keyAgreement\n"
                    "extendedKeyUsage = serverAuth, clientAuth\n"
                    "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n"
                    "{san}".format(w=work, san=san))
        now = datetime.datetime.now(datetime.timezone.utc)
        nb = not_before or now - datetime.timedelta(minutes=5)
        na = not_after or now + datetime.timedelta(hours=24)
        fmt = "%Y%m%d%H%M%SZ"
        openssl("ca", "-batch", "-config", cnf, "-cert", self.cert, "-keyfile", self.key,
                "-in", csr, "-out", svid.cert, "-extensions", "leaf", "-notext",
                "-startdate", nb.strftime(fmt), "-enddate", na.strftime(fmt))
        shutil.copy(self.cert, svid.bundle)
        return svid


def spiffe(ns, sa, td=TD):
    return "spiffe://%s/ns/%s/sa/%s" % (td, ns, sa)


def replace_atomically(src, dst):
    """Copies src over dst the way secret volumes and spiffe-helper do:
    write a temporary file next to it, then rename."""
    tmp = "%s.tmp%d" % (dst, next(_file_counter))
    shutil.copy(src, tmp)
    os.chmod(tmp, os.stat(src).st_mode & 0o777)
    os.rename(tmp, dst)


def write_atomically(path, data, mode=0o644):
    tmp = "%s.tmp%d" % (path, next(_file_counter))
    with open(tmp, "w") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.rename(tmp, path)


# --- configuration -----------------------------------------------------------

def cfg_value(v):
    """Python value -> libconfig text: dict is a group, list of dicts (or a
    tuple) a list ( ), other lists an array [ ]."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, dict):
        return "{ " + " ".join("%s = %s;" % (k, cfg_value(x)) for k, x in v.items()) + " }"
    if isinstance(v, tuple) or (v and all(isinstance(x, dict) for x in v)):
        return "( " + ", ".join(cfg_value(x) for x in v) + " )"
    if isinstance(v, list):
        return "[ " + ", ".join(cfg_value(x) for x in v) + " ]"
    raise TypeError("no libconfig form for %r" % (v,))


# Links (outbound.links) are on by default in the daemon.  The suite runs
# every test both ways: with links in the io_uring and asan modes, with
# per-connection mTLS (links off) in the epoll mode.  LDMESH_TEST_LINKS=1 or
# =0 puts every mode on one side.  Mesh traffic between pods crosses the
# wire on the link port when links are on (wire_port).
FORCED_LINKS = os.environ.get("LDMESH_TEST_LINKS")


def links_on(mode):
    """Whether pods of this test mode carry mesh traffic on links."""
    if FORCED_LINKS in ("0", "1"):
        return FORCED_LINKS == "1"
    return mode.backend != "epoll"


def wire_port(pod, app_port):
    """The TCP port mesh traffic to app_port in pod uses between pods."""
    return 15008 if links_on(pod.mode) else app_port


def config_text(pod, svid=None, mtls=None, ports=None, mesh_networks=None, egress=None,
                egress_allow=None, services=None, policies=None, policy_default=None,
                links=None, link_port=None, opaque_ports=(), workers=None, extra=""):
    """A full config for pod.  pods.Pod.config_text hardcodes
    inbound.mtls = "disable", so this builds its own."""
    lines = ['runtime_dir = "%s";' % pod.runtime_dir,
             'admin_addr = "127.0.0.1:%d";' % ADMIN_PORT,
             'io_backend = "%s";' % pod.mode.backend,
             "workers = %d;" % (workers or pod.mode.workers),
             "drain_timeout_ms = %d;" % podlib.DRAIN_MS,
             'trust_domain = "%s";' % TD]
    if svid is not None:
        lines.append("identity = %s;" % cfg_value(
            {"cert": svid.cert, "key": svid.key, "bundle": svid.bundle}))
    inbound = {}
    if mtls:
        inbound["mtls"] = mtls
    entries = {p: {"port": p, "mtls": m} for p, m in (ports or {}).items()}
    for p in opaque_ports:
        entries.setdefault(p, {"port": p})["opaque"] = True
    if entries:
        inbound["ports"] = tuple(entries[p] for p in sorted(entries))
    if link_port is not None:
        inbound["link_port"] = link_port
    if inbound:
        lines.append("inbound = %s;" % cfg_value(inbound))
    outbound = {"mesh_networks": list(mesh_networks if mesh_networks is not None
                                      else MESH_NETWORKS)}
    if egress:
        outbound["egress"] = egress
    if egress_allow:
        outbound["egress_allow"] = tuple(egress_allow)
    if links is None:
        links = links_on(pod.mode)
    # Links on is the daemon's default: left out then, unless forced or
    # tuned, so the suite runs the default as users get it.
    if links is not True or FORCED_LINKS:
        # True / False, or a dict of outbound.links keys (enabled implied).
        outbound["links"] = dict({"enabled": True}, **links) if isinstance(links, dict) \
            else {"enabled": bool(links)}
    lines.append("outbound = %s;" % cfg_value(outbound))
    if services:
        lines.append("services = %s;" % cfg_value(tuple(services)))
    if policies is not None:
        lines.append("policies = %s;" % cfg_value(tuple(policies)))
    if policy_default:
        lines.append('policy_default = "%s";' % policy_default)
    if extra:
        lines.append(extra)
    return "\n".join(lines) + "\n"


def configure(pod, svid=None, start=True, **settings):
    """Writes pod's config and starts its daemon (start=True and none
    running).  The settings are remembered for reconfigure()."""
    pod.svid = svid
    pod.settings = dict(settings)
    with open(pod.config, "w") as f:
        f.write(config_text(pod, svid=svid, **settings))
    if start and (pod.daemon is None or not pod.daemon.alive()):
        pod.start_daemon()
    return pod


def reconfigure(pod, reload=True, **changes):
    """Rewrites pod's config with changed settings and `ldmeshctl reload`s
    it; returns the reload's Result."""
    settings = dict(getattr(pod, "settings", {}))
    settings.update(changes)
    pod.settings = settings
    write_atomically(pod.config, config_text(pod, svid=pod.svid, **settings))
    if reload:
        return pod.ctl("reload")
    return None


def log_since(pod, offset):
    return pod.daemon_log()[offset:]


def wait_log(pod, pattern, offset=0, timeout=10):
    """Waits until regex pattern appears in pod's daemon log after offset."""
    rx = re.compile(pattern, re.M)
    try:
        return wait_until(lambda: rx.search(pod.daemon_log()[offset:]), timeout, interval=0.1,
                          what="%r in pod %s's daemon log" % (pattern, pod.label))
    except TimeoutError as e:
        raise AssertionError("%s; log since offset:\n%s" % (e, pod.daemon_log()[offset:][-4000:]))


# --- topology ----------------------------------------------------------------

def trio(cluster, labels=("a", "b", "c"), subnet=100):
    """Three (or more) pods whose veth0s are ports of a bridge in a hub
    namespace: 10.250.<subnet>.1, .2, .3 and fd00:250::1, ::2, ::3, all on
    one /24 (/64).  Daemons are not started (see configure())."""
    k = next(_trio_counter)
    hub = "%sh%dhub" % (RUN_PREFIX, k)
    sh("ip", "netns", "add", hub)
    cluster.namespaces.append(hub)
    sh("ip", "-n", hub, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", hub, "link", "set", "br0", "up")
    made = []
    for i, label in enumerate(labels, 1):
        ns = "%sh%d%s" % (RUN_PREFIX, k, label)
        sh("ip", "netns", "add", ns)
        cluster.namespaces.append(ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        port = "v%s%d" % (label, i)
        sh("ip", "link", "add", "veth0", "netns", ns, "type", "veth",
           "peer", "name", port, "netns", hub)
        sh("ip", "-n", hub, "link", "set", port, "master", "br0")
        sh("ip", "-n", hub, "link", "set", port, "up")
        v4, v6 = "10.250.%d.%d" % (subnet, i), "fd00:250::%d" % i
        sh("ip", "-n", ns, "addr", "add", v4 + "/24", "dev", "veth0")
        sh("ip", "-n", ns, "-6", "addr", "add", v6 + "/64", "dev", "veth0", "nodad")
        sh("ip", "-n", ns, "link", "set", "veth0", "up")
        made.append((label, ns, v4, v6))
    result = []
    for i, (label, ns, v4, v6) in enumerate(made):
        _, _, p4, p6 = made[(i + 1) % len(made)]
        pod = Pod(cluster, label, ns, v4, v6, p4, p6)
        cluster.pods.append(pod)
        result.append(pod)
    return result


def add_address(pod, cidr):
    sh("ip", "-n", pod.ns, "addr", "add", cidr, "dev", "veth0")


# --- metrics -----------------------------------------------------------------

_SERIES = re.compile(r'^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)\s*$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metrics(pod):
    """{(name, frozenset(labels.items())): value} from pod's /metrics."""
    r = pod.run([tool("curl"), "-sS", "--max-time", "5",
                 "http://127.0.0.1:%d/metrics" % ADMIN_PORT], shim=False, timeout=15)
    assert r.returncode == 0, "scraping pod %s's /metrics: %r" % (pod.label, r)
    out = {}
    for line in r.stdout.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SERIES.match(line)
        assert m, "bad metrics line %r" % line
        labels = frozenset(_LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(pod, name, _m=None, **labels):
    """Sum of the series called name whose labels include labels (0 when
    none exists)."""
    m = metrics(pod) if _m is None else _m
    want = set((k, str(v)) for k, v in labels.items())
    return sum(v for (n, l), v in m.items() if n == name and want <= l)


def wait_metric(pod, name, at_least, timeout=10, **labels):
    try:
        return wait_until(lambda: metric(pod, name, **labels) >= at_least, timeout, interval=0.2,
                          what="%s%s >= %s in pod %s" % (name, labels, at_least, pod.label))
    except TimeoutError as e:
        rows = ["%s %s %s" % (n, dict(l), v) for (n, l), v in sorted(
            metrics(pod).items(), key=lambda x: x[0][0]) if n == name]
        raise AssertionError("%s; series now:\n%s" % (e, "\n".join(rows)))


# --- packet capture ----------------------------------------------------------

@contextlib.contextmanager
def capture(pod, path, bpf="tcp", iface="veth0"):
    """tcpdump on pod's iface (inside its namespace) writing path while the
    block runs; stopped with SIGTERM afterwards (bounded).  -B 8192: an
    8 MiB kernel buffer (the default is 2 MiB), so a burst of traffic is
    not dropped while tcpdump writes the file.  A capture that dropped
    packets all the same fails here when the block ends: the streams read
    from it would be missing segments, and a test would fail later for a
    misleading reason (or pass on less than it claims to check)."""
    p = pod.popen([tool("tcpdump"), "-i", iface, "-n", "-U", "--immediate-mode", "-B", "8192",
                   "-s", "0", "-Z", "root", "-w", path, bpf], shim=False, name="tcpdump")
    p.wait_output(r"listening on %s" % iface, stream="err", timeout=15)
    try:
        yield p
    finally:
        time.sleep(0.3)  # let the last segments of the exchange land
        p.stop(timeout=5)
    # Printed by tcpdump on SIGTERM (absent if it had to be killed).
    dropped = re.search(r"^(\d+) packets? dropped by kernel", p.err(), re.M)
    assert not dropped or dropped.group(1) == "0", \
        "tcpdump on pod %s's %s dropped packets; the capture %s is incomplete:\n%s" % (
            pod.label, iface, path, p.err()[-1000:])


def read_pcap(path):
    """TCP segments in a pcap file: list of (src, sport, dst, dport, seq,
    flags, payload).  Ethernet or Linux cooked captures, IPv4 and IPv6."""
    with open(path, "rb") as f:
        data = f.read()
    assert len(data) >= 24, "pcap %s is empty" % path
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise AssertionError("%s is not a pcap file (magic %r)" % (path, magic))
    linktype = struct.unpack(e + "I", data[20:24])[0]
    off, segs = 24, []
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(e + "IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if linktype == 1:
            l3, ethertype = 14, struct.unpack(">H", pkt[12:14])[0]
            if ethertype == 0x8100:
                l3, ethertype = 18, struct.unpack(">H", pkt[16:18])[0]
        elif linktype == 113:
            l3, ethertype = 16, struct.unpack(">H", pkt[14:16])[0]
        elif linktype == 276:
            l3, ethertype = 20, struct.unpack(">H", pkt[0:2])[0]
        else:
            raise AssertionError("unexpected pcap link type %d" % linktype)
        ip = pkt[l3:]
        if ethertype == 0x0800 and len(ip) >= 20 and ip[9] == 6:
            ihl = (ip[0] & 15) * 4
            total = struct.unpack(">H", ip[2:4])[0]
            src, dst = socket.inet_ntop(socket.AF_INET, ip[12:16]), \
                socket.inet_ntop(socket.AF_INET, ip[16:20])
            tcp = ip[ihl:total]
        elif ethertype == 0x86DD and len(ip) >= 40 and ip[6] == 6:
            plen = struct.unpack(">H", ip[4:6])[0]
            src, dst = socket.inet_ntop(socket.AF_INET6, ip[8:24]), \
                socket.inet_ntop(socket.AF_INET6, ip[24:40])
            tcp = ip[40:40 + plen]
        else:
            continue
        if len(tcp) < 20:
            continue
        sport, dport, seq = struct.unpack(">HHI", tcp[:8])
        doff = (tcp[12] >> 4) * 4
        segs.append((src, sport, dst, dport, seq, tcp[13], tcp[doff:]))
    return segs


def tcp_streams(segs):
    """{(src, sport, dst, dport): bytes} reassembled by sequence number
    (retransmissions and overlaps dropped)."""
    by = {}
    for src, sport, dst, dport, seq, flags, payload in segs:
        key = (src, sport, dst, dport)
        entry = by.setdefault(key, {"isn": None, "parts": {}})
        if flags & 0x02:  # SYN
            entry["isn"] = (seq + 1) & 0xFFFFFFFF
        if payload:
            entry["parts"].setdefault(seq, payload)
    out = {}
    for key, entry in by.items():
        parts = entry["parts"]
        if not parts:
            out[key] = b""
            continue
        base = entry["isn"] if entry["isn"] is not None else min(parts)
        buf, pos = bytearray(), 0
        for seq, payload in sorted(parts.items(), key=lambda x: (x[0] - base) & 0xFFFFFFFF):
            rel = (seq - base) & 0xFFFFFFFF
            if rel + len(payload) <= pos:
                continue
            buf += payload[max(0, pos - rel):]
            pos = rel + len(payload)
        out[key] = bytes(buf)
    return out


def tls_records(stream):
    """[(content_type, version, body)] from the start of a TLS byte stream,
    stopping at the first thing that is not a record."""
    recs, off = [], 0
    while off + 5 <= len(stream):
        ctype, ver, n = stream[off], struct.unpack(">H", stream[off + 1:off + 3])[0], \
            struct.unpack(">H", stream[off + 3:off + 5])[0]
        if ctype not in (20, 21, 22, 23) or ver not in (0x0301, 0x0302, 0x0303) or \
                off + 5 + n > len(stream):
            break
        recs.append((ctype, ver, stream[off + 5:off + 5 + n]))
        off += 5 + n
    return recs


def server_hello_version(records):
    """The version a ServerHello selected: its supported_versions extension
    (TLS 1.3) or its legacy version field; None if there is no ServerHello."""
    for ctype, _, body in records:
        if ctype != 22 or len(body) < 4 or body[0] != 2:
            continue
        h = body[4:]
        legacy = struct.unpack(">H", h[0:2])[0]
        p = 2 + 32
        p += 1 + h[p]           # session id
        p += 2 + 1              # cipher suite, compression
        if p + 2 > len(h):
            return legacy
        end = p + 2 + struct.unpack(">H", h[p:p + 2])[0]
        p += 2
        while p + 4 <= end:
            etype, elen = struct.unpack(">HH", h[p:p + 4])
            if etype == 0x002B and elen == 2:
                return struct.unpack(">H", h[p + 4:p + 6])[0]
            p += 4 + elen
        return legacy
    return None


# --- apps ----------------------------------------------------------------------

APP = r'''
import hashlib, http.server, json, random, sys, threading

BLOBS = {}

def blob(n):
    if n not in BLOBS:
        BLOBS[n] = random.Random(n).randbytes(n)
    return BLOBS[n]

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60

    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        xfcc = self.headers.get_all("x-forwarded-client-cert") or []
        print("request port=%d %s %s xfcc=%s" % (self.server.server_address[1], self.command,
              self.path, json.dumps(xfcc)), flush=True)
        if self.command == "GET" and self.path.startswith("/blob/"):
            data = blob(int(self.path[6:]))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            view = memoryview(data)
            for i in range(0, len(data), 65536):
                self.wfile.write(view[i:i + 65536])
            return
        out = json.dumps({"method": self.command, "path": self.path, "xfcc": xfcc,
                          "peer": self.client_address[0], "peer_port": self.client_address[1],
                          "port": self.server.server_address[1],
                          "body": body.decode(errors="replace")}).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = answer

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.client_address[0], fmt % args))

addr = sys.argv[1]
servers = []
for port in sys.argv[2:]:
    s = http.server.ThreadingHTTPServer((addr, int(port)), H)
    s.daemon_threads = True
    servers.append(s)
    threading.Thread(target=s.serve_forever, daemon=True).start()
print("listening", flush=True)
# A safety net for strays: the harness kills it long before (make soak runs
# for SOAK_SECONDS, 600 by default, and needs it alive all along).
threading.Event().wait(7200)
'''

LOOP = r'''
import http.client, json, sys, time, os

host, port, path, count, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3], \
    int(sys.argv[4]), float(sys.argv[5])
per_conn = int(sys.argv[6]) if len(sys.argv) > 6 else 1
stop = sys.argv[7] if len(sys.argv) > 7 else ""
deadline = time.monotonic() + limit
conn, used, done = None, 0, 0
while done < count and time.monotonic() < deadline and not (stop and os.path.exists(stop)):
    if conn is None or used >= per_conn:
        if conn is not None:
            conn.close()
        conn, used = http.client.HTTPConnection(host, port, timeout=10), 0
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        print("status=%d" % r.status, flush=True)
        if r.getheader("connection", "").lower() == "close":
            conn.close()
            conn = None
    except Exception as e:
        print("error=%s:%s" % (type(e).__name__, str(e).replace(" ", "_")), flush=True)
        conn.close()
        conn = None
    used += 1
    done += 1
    time.sleep(0.01)
print("done n=%d" % done, flush=True)
'''


def _script(pod, name, text):
    path = os.path.join(pod.dir, name)
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write(text)
    return path


def nginx_conf(pod, listen, server, workers=1, log_format=None):
    """Writes an nginx config under pod.dir/nginx: `listen` and the
    `server` block's other lines as given, the access log in that
    directory (in log_format, nginx's default when None); returns
    (dir, config path)."""
    tmp = os.path.join(pod.dir, "nginx")
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(os.path.join(tmp, d), exist_ok=True)
    conf = os.path.join(tmp, "nginx.conf")
    log = ('    log_format custom "%s";\n    access_log %s/access.log custom;' % (log_format, tmp)
           if log_format else "    access_log %s/access.log;" % tmp)
    with open(conf, "w") as f:
        f.write("""
daemon off;
master_process on;
worker_processes {workers};
user root root;
pid {t}/nginx.pid;
error_log {t}/error.log info;
events {{ worker_connections 256; }}
http {{
{log}
    client_body_temp_path {t}/body;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
    default_type text/plain;
    server {{
        listen {listen};
        {server}
    }}
}}
""".format(t=tmp, workers=workers, log=log, listen=listen, server=server))
    return tmp, conf


def start_app(pod, *ports, addr=None, shim=True):
    """The JSON HTTP app on ports in pod (with the shim unless shim=False);
    waits until every port listens."""
    srv = pod.popen([PYTHON, _script(pod, "mesh_app.py", APP), addr or pod.addr4]
                    + [str(p) for p in ports], name="app", shim=shim)
    srv.wait_output(r"^listening$", timeout=20)
    for p in ports:
        pod.wait_listening(srv, p)
    return srv


def blob_sha256(n):
    return hashlib.sha256(random.Random(n).randbytes(n)).hexdigest()


def start_loop(pod, host, port, path, count, limit, per_conn=1, stop_file=""):
    """A request loop in pod: at most count GETs, at most limit seconds,
    until stop_file exists; per_conn requests per keep-alive connection;
    one status=N or error=... line each, then "done n=N"."""
    return pod.popen([PYTHON, _script(pod, "mesh_loop.py", LOOP), host, str(port), path,
                      str(count), str(limit), str(per_conn), stop_file], name="loop")


def service_mesh(cluster, subnet, services, port=8080, labels=("a", "b", "c", "d"),
                 server_sa="web"):
    """Pods on one bridge (mesh.trio): the first is the client, the others
    the servers, all strict mTLS (servers as spiffe shop/server_sa).  The
    virtual address is 10.250.<subnet>.100:port, owned by no pod;
    services(vip, servers) gives the client's services list.  Returns
    (client, servers, vip)."""
    pods = trio(cluster, labels=labels, subnet=subnet)
    a, servers = pods[0], pods[1:]
    vip = "10.250.%d.100:%d" % (subnet, port)
    ca = CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    configure(a, ca.issue(spiffe("shop", "client"), os.path.join(cluster.tmp, "id-" + a.label)),
              mtls="strict", services=services(vip, servers))
    for s in servers:
        configure(s, ca.issue(spiffe("shop", server_sa),
                              os.path.join(cluster.tmp, "id-" + s.label)), mtls="strict")
    return a, servers, vip


def service_loop(pod, vip, path, count, per_conn, limit=60):
    """start_loop against a service address "ip:port", waited for: the
    statuses and errors seen."""
    host, port = vip.split(":")
    p = start_loop(pod, host, int(port), path, count, limit, per_conn=per_conn)
    p.wait(timeout=limit + 30)
    return loop_results(p)


def loop_results(proc):
    out = proc.out()
    return re.findall(r"^status=(\d+)$", out, re.M), re.findall(r"^error=(.*)$", out, re.M)


def curl(pod, *args, timeout=30, shim=True, max_time=15):
    """Stock curl in pod: -sS, bounded by --max-time max_time (seconds;
    keep it below timeout, which bounds the whole run)."""
    return pod.run([tool("curl"), "-sS", "-g", "--max-time", str(max_time)] +
                   [str(a) for a in args], shim=shim, timeout=timeout)


def app_json(result):
    """The app's JSON answer from a curl Result."""
    assert result.returncode == 0, result
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError("the app's answer is not JSON: %r" % result)


def conns(pod):
    return pod.ctl_json("conns")


def find_conn(rows, direction, peer_ip=None, peer_port=None, local_port=None):
    for c in rows:
        if c.get("direction") != direction:
            continue
        peer = str(c.get("peer_addr", ""))
        local = str(c.get("local_addr", ""))
        if peer_ip and not peer.startswith((peer_ip + ":", "[%s]:" % peer_ip)):
            continue
        if peer_port and not peer.endswith(":%s" % peer_port):
            continue
        if local_port and not local.endswith(":%s" % local_port):
            continue
        return c
    return None
