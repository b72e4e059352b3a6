"""Issue 11, "no silent holes": ldmeshd reports TCP listeners in its pod
that it does not hold (a program started without the shim, a static or Go
binary): one warning naming address, port, pid and command, the gauge
ldmesh_unprotected_listeners, `ldmeshctl check` exiting 1 and naming them,
and `ldmeshctl status` listing them; all of it goes back to normal when the
listener closes.  Controls that must never be reported: a meshed listener
(whose socket the daemon holds), loopback-only listeners, a listener on a
port the config excludes, the daemon's own admin listener on 0.0.0.0, and
meshed listeners while their shims hand them to a restarted daemon.
`check` also reports an expiring identity and a rejected reload.

Absence is only asserted once a positive marker proves the scan got there:
an unprotected listener started after (or, for the restart, together with)
the controls is reported, and a control would have been due no later.
"""
import datetime
import json
import os
import re
import signal
import time

import mesh
from mesh import spiffe
from pods import PYTHON, wait_until

SERVER = spiffe("shop", "orders")
EXCLUDED = 8089
REPORT_S = 5  # the contract: reported within a few seconds


def config(pod, svid, extra=""):
    """pod's config: its identity, the admin listener on every address (the
    daemon's own socket, never reported) and EXCLUDED left out of the mesh."""
    text = mesh.config_text(pod, svid=svid, extra="inbound = { exclude_ports = [ %d ]; };\n%s"
                            % (EXCLUDED, extra))
    text = text.replace('admin_addr = "127.0.0.1:%d";' % mesh.ADMIN_PORT,
                        'admin_addr = "0.0.0.0:%d";' % mesh.ADMIN_PORT)
    assert 'admin_addr = "0.0.0.0:' in text
    with open(pod.config, "w") as f:
        f.write(text)


def server_pod(cluster, hours=None):
    _, b = cluster.pair(start=False)
    ca = mesh.CA(cluster.mode, os.path.join(cluster.tmp, "ca"))
    svid = ca.issue(SERVER, os.path.join(cluster.tmp, "id-b"), hours=hours)
    config(b, svid)
    b.start_daemon()
    return b, ca, svid


def httpd(pod, port, name="httpd"):
    """Stock busybox httpd, not meshed (no LD_PRELOAD); port may be
    "IP:PORT".  Waits until it listens."""
    www = os.path.join(pod.dir, "www")
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write("plaintext\n")
    p = pod.popen([mesh.tool("busybox"), "httpd", "-f", "-p", str(port), "-h", www], name=name,
                  shim=False)
    pod.wait_listening(p, int(str(port).rsplit(":", 1)[-1]))
    return p


def warnings(pod, log=None):
    """{port: (addr, owner)} of every unprotected-listener warning."""
    text = pod.daemon_log() if log is None else log
    return {int(m.group(2)): (m.group(1), m.group(3)) for m in re.finditer(
        r"warn: unprotected listener (\S+):(\d+) \(([^)]*)\): plaintext, not meshed$", text, re.M)}


def wait_reported(pod, port, timeout=REPORT_S):
    try:
        return wait_until(lambda: warnings(pod).get(port), timeout, interval=0.1,
                          what="a warning for port %d in pod %s's daemon log" % (port, pod.label))
    except TimeoutError as e:
        raise AssertionError("%s; log tail:\n%s" % (e, pod.daemon_log()[-3000:]))


def check(pod, json_out=False):
    """`ldmeshctl check` -> (exit status, text or parsed JSON)."""
    r = pod.ctl("check", "--json") if json_out else pod.ctl("check")
    assert r.returncode in (0, 1), r
    if not json_out:
        return r.returncode, r.stdout
    try:
        return r.returncode, json.loads(r.stdout)
    except ValueError as e:
        raise AssertionError("check --json printed invalid JSON (%s): %r" % (e, r))


def wait_check(pod, rc, timeout=REPORT_S):
    try:
        return wait_until(lambda: check(pod)[0] == rc, timeout, interval=0.2,
                          what="`ldmeshctl check` to exit %d" % rc)
    except TimeoutError as e:
        raise AssertionError("%s: %r" % (e, pod.ctl("check")))


def gauge(pod):
    return mesh.metric(pod, "ldmesh_unprotected_listeners")


def test_unmeshed_listener_is_reported_until_it_closes(cluster):
    """busybox httpd started without the shim in a meshed pod is reported
    within 5 s (log line with pid and command, gauge 1, check exits 1 and
    names it, status lists it); a meshed python3 http.server, loopback-only
    listeners (busybox on 127.0.0.1, python on ::1), busybox on the excluded
    port and the daemon's admin listener on 0.0.0.0 are not.  After httpd is
    killed: an info line, check exits 0, the gauge is 0."""
    b, _, _ = server_pod(cluster)
    assert check(b)[0] == 0, b.ctl("check")
    assert gauge(b) == 0

    meshed = b.popen([PYTHON, "-m", "http.server", "8080", "--bind", "0.0.0.0"], name="meshed")
    b.wait_listening(meshed, 8080)
    wait_until(lambda: b.listener_accepted(8080) is not None, 10,
               what="pod b's daemon to hold the meshed listener on 8080")
    httpd(b, "127.0.0.1:8088", name="loopback4")
    loop6 = b.popen([PYTHON, "-m", "http.server", "8087", "--bind", "::1"], name="loopback6",
                    shim=False)
    b.wait_listening(loop6, 8087)
    httpd(b, EXCLUDED, name="excluded")

    hole = httpd(b, 8081)
    addr, owner = wait_reported(b, 8081)
    assert owner == "pid %d busybox" % hole.pid, (owner, hole.pid)
    assert addr in ("[::]", "0.0.0.0"), addr
    # Only the hole: every control was listening before it and due no later.
    assert set(warnings(b)) == {8081}, warnings(b)
    # The plaintext it serves is real, from outside the pod too.
    r = mesh.curl(b.cluster.pods[0], "http://%s:8081/" % b.addr4, shim=False)
    assert r.returncode == 0 and "plaintext" in r.stdout, r

    assert wait_until(lambda: gauge(b) == 1, REPORT_S, interval=0.2,
                      what="ldmesh_unprotected_listeners 1")
    rc, text = check(b)
    assert rc == 1, text
    assert re.search(r"^problems +1$", text, re.M), text
    assert re.search(r"unprotected listener \S+:8081 \(pid %d busybox\)" % hole.pid, text), text
    rc, j = check(b, json_out=True)
    assert rc == 1 and j["ok"] is False, j
    assert [(p["kind"], p["port"], p["pid"], p["command"]) for p in j["problems"]] == [
        ("unprotected_listener", 8081, hole.pid, "busybox")], j
    assert j["listeners"] == {"held": 1, "unprotected": 1}, j

    st = b.status()
    assert [(u["port"], u["pid"], u["command"]) for u in st["unprotected_listeners"]] == [
        (8081, hole.pid, "busybox")], st
    text = b.ctl("status").ok().stdout
    assert re.search(r"^unprotected +1", text, re.M), text
    assert re.search(r"^  \S+:8081 \(pid %d busybox\): plaintext, not meshed$" % hole.pid, text,
                     re.M), text

    hole.stop()
    wait_check(b, 0)
    mesh.wait_log(b, r"info: unprotected listener \S+:8081 \(pid %d busybox\) gone: closed"
                  % hole.pid, timeout=REPORT_S)
    assert gauge(b) == 0
    rc, j = check(b, json_out=True)
    assert rc == 0 and j["ok"] is True and j["problems"] == [], j
    assert b.status()["unprotected_listeners"] == []
    # One warning for the whole life of the listener.
    assert len(re.findall(r"warn: unprotected listener", b.daemon_log())) == 1, b.daemon_log()


def test_restart_does_not_report_listeners_the_shims_hand_back(cluster):
    """A meshed listener's socket stays in its app while the daemon is down
    and is handed to the new daemon only when the shim's backoff (up to
    6.4 s) says so; until then it is unheld.  The new daemon does not
    report it, while an unmeshed httpd that was listening all along is
    reported at the same deadline."""
    b, _, _ = server_pod(cluster)
    meshed = b.popen([PYTHON, "-m", "http.server", "8080", "--bind", "0.0.0.0"], name="meshed")
    b.wait_listening(meshed, 8080)
    wait_until(lambda: b.listener_accepted(8080) is not None, 10,
               what="pod b's daemon to hold the meshed listener on 8080")
    hole = httpd(b, 8081)
    wait_reported(b, 8081)

    assert b.stop_daemon(signal.SIGTERM) == 0
    time.sleep(3)  # the shim's retry interval grows meanwhile (0.2, 0.4, ... s)
    b.start_daemon()
    log = b.daemon_logs[-1]

    def new_log():
        with open(log, errors="replace") as f:
            return f.read()

    try:
        wait_until(lambda: 8081 in warnings(b, new_log()), 15, interval=0.1,
                   what="the restarted daemon to report the unmeshed httpd")
    except TimeoutError as e:
        raise AssertionError("%s; log:\n%s" % (e, new_log()[-3000:]))
    wait_until(lambda: b.listener_accepted(8080) is not None, 10,
               what="the shim to hand 8080 to the restarted daemon")
    assert set(warnings(b, new_log())) == {8081}, new_log()
    rc, j = check(b, json_out=True)
    assert rc == 1 and [p["port"] for p in j["problems"]] == [8081], j
    assert [p["pid"] for p in j["problems"]] == [hole.pid], j


def test_check_reports_identity_expiring_and_rejected_reload(cluster):
    """check exits 1 for an SVID with less than a quarter of its lifetime
    left and names it; a renewed SVID (picked up from its files) clears it.
    A rejected reload is a problem until a reload succeeds."""
    b, ca, svid = server_pod(cluster)
    rc, text = check(b)
    assert rc == 0, text
    assert re.search(r"^identity +%s, valid until " % re.escape(SERVER), text, re.M), text

    now = datetime.datetime.now(datetime.timezone.utc)
    odd = ca.sign(os.path.join(cluster.tmp, "odd"), [SERVER],
                  not_before=now - datetime.timedelta(hours=3),
                  not_after=now + datetime.timedelta(minutes=20))
    for name in ("svid.pem", "svid-key.pem", "bundle.pem"):
        mesh.replace_atomically(os.path.join(odd.dir, name), os.path.join(svid.dir, name))
    wait_check(b, 1, timeout=10)
    rc, j = check(b, json_out=True)
    assert rc == 1 and [p["kind"] for p in j["problems"]] == ["identity_expiring"], j
    assert j["problems"][0]["spiffe_id"] == SERVER, j
    assert re.search(r"identity %s expires at \S+, in 1\dm" % re.escape(SERVER),
                     check(b)[1]), check(b)

    ca.issue(SERVER, svid.dir)  # renewed in place, as spiffe-helper would
    wait_check(b, 0, timeout=10)

    with open(b.config, "a") as f:
        f.write("no_such_key = 1;\n")
    r = b.ctl("reload")
    assert r.returncode == 1 and "no_such_key" in r.stderr, r
    rc, j = check(b, json_out=True)
    assert rc == 1 and [p["kind"] for p in j["problems"]] == ["config_reload_rejected"], j
    assert "no_such_key" in j["problems"][0]["error"], j
    assert "no_such_key" in check(b)[1]
    config(b, svid)
    b.ctl("reload").ok()
    assert check(b)[0] == 0, b.ctl("check")
