"""`ldmeshctl webhook` over HTTPS with a test certificate, fed real
admission.k8s.io/v1 AdmissionReviews as the API server sends them.  The
JSONPatch it answers, applied with python3-jsonpatch, gives exactly what
`ldmeshctl inject` prints for the same Pod.  Runs on loopback with an
ephemeral port; no cluster, no root."""
import base64
import concurrent.futures
import copy
import glob
import http.client
import json
import os
import socket
import ssl
import subprocess
import time
import uuid

import jsonpatch
import pytest
import yaml

import kube


def make_cert(dirpath, cn):
    cert, key = os.path.join(dirpath, "tls.crt"), os.path.join(dirpath, "tls.key")
    tmp_c, tmp_k = cert + ".new", key + ".new"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", tmp_k, "-out", tmp_c,
                    "-days", "1", "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    # key first, then the certificate, each by rename: what cert-manager's
    # Secret update looks like to a reader.
    os.rename(tmp_k, key)
    os.rename(tmp_c, cert)
    return cert, key


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Webhook:
    def __init__(self, tmp):
        self.dir = str(tmp)
        self.cert, self.key = make_cert(self.dir, "webhook-1")
        self.port = free_port()
        self.err = open(os.path.join(self.dir, "webhook.err"), "wb")
        self.proc = subprocess.Popen(
            [kube.LDMESHCTL, "webhook", "--listen", "127.0.0.1:%d" % self.port,
             "--cert", self.cert, "--key", self.key, "--image", "registry.example/ldmesh:t"],
            stdout=subprocess.DEVNULL, stderr=self.err)
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise AssertionError("webhook did not start: " + self.log())
                time.sleep(0.05)

    def log(self):
        with open(os.path.join(self.dir, "webhook.err")) as f:
            return f.read()

    def context(self):
        ctx = ssl.create_default_context(cafile=self.cert)
        return ctx

    def conn(self):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context(),
                                           timeout=20)

    def post(self, body, conn=None, path="/inject"):
        c = conn or self.conn()
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        c.request("POST", path, body=data, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        out = r.status, r.read()
        if conn is None:
            c.close()
        return out

    def close(self):
        self.proc.terminate()
        try:
            rc = self.proc.wait(10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.err.close()
        return rc


@pytest.fixture
def webhook(tmp_path):
    if not os.path.exists(kube.LDMESHCTL):
        pytest.fail("build/ldmeshctl is missing (run `make all`)", pytrace=False)
    w = Webhook(tmp_path)
    try:
        yield w
    finally:
        rc = w.close()
        assert rc == 0, "webhook exit status %s: %s" % (rc, w.log())


def review(pod, op="CREATE", kind="Pod", namespace="shop"):
    return {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": kind.lower() + "s"},
            "requestKind": {"group": "", "version": "v1", "kind": kind},
            "requestResource": {"group": "", "version": "v1", "resource": kind.lower() + "s"},
            "namespace": namespace, "operation": op,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                         "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": pod, "oldObject": None, "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def golden_pods():
    """Every pod of the golden inputs as the API server would create it."""
    pods = []
    for path in sorted(glob.glob(os.path.join(kube.GOLDEN, "*.in.*"))):
        with open(path) as f:
            for doc in kube.load_all(f.read()):
                for obj in doc.get("items", [doc]):
                    if obj.get("kind") == "Pod":
                        pods.append(obj)
                        continue
                    for name, spec in kube.pod_specs(obj):
                        tmpl = kube.pod_specs  # noqa: keep flake quiet
                        meta = copy.deepcopy(_template_meta(obj))
                        meta.setdefault("generateName", name + "-")
                        pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                                     "spec": copy.deepcopy(spec)})
    return pods


def _template_meta(obj):
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"].get("metadata", {})
    return obj["spec"]["template"].get("metadata", {})


def answer(status, body, req):
    assert status == 200, body
    out = json.loads(body)
    assert out["apiVersion"] == "admission.k8s.io/v1" and out["kind"] == "AdmissionReview"
    assert out["response"]["uid"] == req["request"]["uid"]
    return out["response"]


def test_patch_equals_inject(webhook):
    pods = golden_pods()
    assert len(pods) >= 12
    changed = 0
    for pod in pods:
        req = review(pod)
        resp = answer(*webhook.post(req), req)
        assert resp["allowed"] is True
        r = kube.inject(yaml.safe_dump(pod), "--image", "registry.example/ldmesh:t", stdin=True)
        assert r.returncode == 0, r.stderr
        expected = kube.load_all(r.stdout.decode())[0]
        if "patch" not in resp:
            assert expected == pod  # disabled or already injected
            continue
        changed += 1
        assert resp["patchType"] == "JSONPatch"
        patch = jsonpatch.JsonPatch(json.loads(base64.b64decode(resp["patch"])))
        assert patch.apply(pod) == expected
        # notes from inject reach kubectl as admission warnings
        notes = [l for l in r.stderr.decode().splitlines() if "note:" in l]
        assert len(resp.get("warnings", [])) == len(notes)
    assert changed >= 10
    # patches are small: containers are edited, not replaced
    req = review(pods[0])
    ops = json.loads(base64.b64decode(answer(*webhook.post(req), req)["patch"]))
    assert {"op": "replace", "path": "/spec/containers"} not in [
        {k: o[k] for k in ("op", "path")} for o in ops]


def test_not_ours_is_allowed_unchanged(webhook):
    pod = golden_pods()[0]
    for req in (review(pod, op="UPDATE"), review({"apiVersion": "v1", "kind": "Service",
                                                  "metadata": {"name": "s"}}, kind="Service")):
        resp = answer(*webhook.post(req), req)
        assert resp["allowed"] is True and "patch" not in resp


def test_bad_annotation_is_refused_with_reason(webhook):
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "annotations": {"config.ldmesh.io/mtls-mode": "strikt"}},
           "spec": {"containers": [{"name": "a", "image": "x", "command": ["/a"]}]}}
    req = review(pod)
    resp = answer(*webhook.post(req), req)
    assert resp["allowed"] is False and resp["status"]["code"] == 400
    assert "config.ldmesh.io/mtls-mode" in resp["status"]["message"]


def test_malformed_gets_400_and_next_is_answered(webhook):
    pod = golden_pods()[0]
    conn = webhook.conn()
    bad = [b"{not json", b"", json.dumps({"apiVersion": "admission.k8s.io/v1beta1",
                                          "kind": "AdmissionReview", "request": {"uid": "x"}}).encode(),
           json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(),
           b"[1, 2, 3]", b"\x00\xff" * 100]
    for body in bad:
        status, text = webhook.post(body, conn=conn)
        assert status == 400, (body, text)
        assert text.strip(), "a 400 carries a message"
        req = review(pod)  # the same connection goes on
        assert answer(*webhook.post(req, conn=conn), req)["allowed"] is True
    conn.close()
    # wrong path and method
    c = webhook.conn()
    c.request("GET", "/inject")
    r = c.getresponse()
    assert r.status == 405 and r.read()
    c.request("GET", "/healthz")
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"ok\n"
    c.close()
    # bytes that are not HTTP, a TLS handshake that never comes, plaintext
    ctx = webhook.context()
    with socket.create_connection(("127.0.0.1", webhook.port)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"\x16garbage that is not a request\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 400")
    with socket.create_connection(("127.0.0.1", webhook.port)) as raw:
        raw.sendall(b"POST /inject HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
        raw.settimeout(10)
        try:
            raw.recv(100)
        except (ConnectionResetError, socket.timeout):
            pass
    # a client that sends half a head and goes away
    with socket.create_connection(("127.0.0.1", webhook.port)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"POST /inject HTTP/1.1\r\nContent-Length: 100000\r\n\r\n{")
    req = review(pod)
    assert answer(*webhook.post(req), req)["allowed"] is True
    assert webhook.proc.poll() is None


def test_200_concurrent_requests(webhook):
    pods = golden_pods()
    reqs = [review(pods[i % len(pods)]) for i in range(200)]
    barrier_ctx = webhook.context()

    def one(req):
        c = http.client.HTTPSConnection("127.0.0.1", webhook.port, context=barrier_ctx,
                                        timeout=60)
        try:
            c.request("POST", "/inject", body=json.dumps(req).encode(),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=200) as ex:
        results = list(ex.map(one, reqs))
    assert len(results) == 200
    for req, (status, body) in zip(reqs, results):
        assert answer(status, body, req)["allowed"] is True


def test_certificate_reloaded(webhook):
    def served():
        with socket.create_connection(("127.0.0.1", webhook.port)) as raw:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            with ctx.wrap_socket(raw) as s:
                return s.getpeercert(binary_form=True)

    with open(webhook.cert) as f:
        first = ssl.PEM_cert_to_DER_cert(f.read())
    assert served() == first
    time.sleep(1.1)  # a new mtime even on coarse clocks
    make_cert(webhook.dir, "webhook-2")
    with open(webhook.cert) as f:
        second = ssl.PEM_cert_to_DER_cert(f.read())
    deadline = time.time() + 10
    while served() != second:
        assert time.time() < deadline, "the new certificate was not served"
        time.sleep(0.2)
    # a broken pair keeps the last good one serving
    with open(webhook.key, "w") as f:
        f.write("not a key\n")
    time.sleep(1.5)
    assert served() == second
    assert "keeping the old certificate" in webhook.log()
