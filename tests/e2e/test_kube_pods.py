"""The pods `ldmeshctl inject` makes, run by the tests' pod harness as a
kubelet would (kubelet.py): the native sidecar first and ready, the shim
and launcher copied into the shared emptyDir, the app containers with the
env and mounts as given, each container a process in the pod's network
namespace.  The demo app of conf/kubernetes/demo-app.yaml: a server pod and
a client Job's pod talk over strict mTLS with identities from the files
csi-driver-spiffe would write (tls.crt with the chain, tls.key, ca.crt);
the Job's pod completes and its sidecar exits 0 promptly on SIGTERM."""
import datetime
import json
import os
import re
import time

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import kube
import kubelet
import pods as podlib

DEMO = os.path.join(kube.REPO, "conf", "kubernetes", "demo-app.yaml")
TD = "cluster.local"


class Issuer:
    """A root and an intermediate CA, as a cert-manager CA issuer backed by
    an intermediate signs what csi-driver-spiffe asks for."""

    def __init__(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        self.now = now
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = self._ca("demo root", self.root_key, self.root_key, None, None)
        self.int_key = ec.generate_private_key(ec.SECP256R1())
        self.inter = self._ca("demo intermediate", self.int_key, self.root_key, self.root, 0)

    def _ca(self, cn, key, signer_key, signer, pathlen):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        b = (x509.CertificateBuilder().subject_name(name)
             .issuer_name(signer.subject if signer else name)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(self.now - datetime.timedelta(minutes=5))
             .not_valid_after(self.now + datetime.timedelta(days=2))
             .add_extension(x509.BasicConstraints(ca=True, path_length=pathlen), critical=True)
             .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                          False), critical=True)
             .add_extension(x509.SubjectAlternativeName(
                 [x509.UniformResourceIdentifier("spiffe://" + TD)]), critical=False))
        return b.sign(signer_key, hashes.SHA256())

    def write_svid(self, spiffe_id, out):
        """tls.crt (leaf, then the intermediate), tls.key and ca.crt, the
        file names csi-driver-spiffe writes."""
        os.makedirs(out, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = (x509.CertificateBuilder().subject_name(x509.Name([]))
                .issuer_name(self.inter.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(self.now - datetime.timedelta(minutes=5))
                .not_valid_after(self.now + datetime.timedelta(hours=1))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(True, False, True, False, False, False, False,
                                             False, False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]),
                               critical=False)
                .add_extension(x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(spiffe_id)]), critical=True)
                .sign(self.int_key, hashes.SHA256()))
        pem = serialization.Encoding.PEM
        with open(os.path.join(out, "tls.crt"), "wb") as f:
            f.write(leaf.public_bytes(pem) + self.inter.public_bytes(pem))
        with open(os.path.join(out, "tls.key"), "wb") as f:
            f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        with open(os.path.join(out, "ca.crt"), "wb") as f:
            f.write(self.root.public_bytes(pem))
        return out


def demo_objects():
    with open(DEMO) as f:
        return {(d["kind"], d["metadata"]["name"]): d for d in kube.load_all(f.read())}


def as_pod(obj, mode):
    """The Pod the API server would create from obj's template, after the
    webhook: here `ldmeshctl inject` on the workload, the template taken."""
    obj = json.loads(json.dumps(obj))
    tmpl = obj["spec"]["template"]
    # The test's io backend, through the pod's own annotation.
    tmpl.setdefault("metadata", {}).setdefault("annotations", {})[
        "config.ldmesh.io/io-backend"] = mode.backend
    r = kube.inject(yaml.safe_dump(obj), "--image", kubelet.LDMESH_IMAGE, stdin=True)
    assert r.returncode == 0 and r.stderr == b"", r.stderr.decode()
    return kube.pod_specs(kube.load_all(r.stdout.decode())[0])[0][1]


def runtime_ctl(mode, rp, *args):
    """ldmeshctl against a pod's sidecar, through its runtime volume."""
    import subprocess
    r = subprocess.run([mode.ldmeshctl, "--runtime-dir", rp.volume("ldmesh-runtime"), "--json"]
                       + list(args), capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)


def metrics(pod):
    r = pod.run(["curl", "-sf", "-m", "5", "http://%s:4191/metrics" % pod.addr4], shim=False,
                timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.timeout(120)
def test_demo_pods_strict_mtls_and_job_completes(cluster, tmp_path):
    mode = cluster.mode
    a, b = cluster.pair(start=False)
    issuer = Issuer()
    image = kubelet.ldmesh_image(mode, str(tmp_path / "image"))
    objs = demo_objects()
    cms = {"server-content": objs[("ConfigMap", "server-content")]["data"]}

    server_spec = as_pod(objs[("Deployment", "server")], mode)
    client_spec = as_pod(objs[("Job", "client")], mode)
    # Service DNS is not in the harness: the client gets the server pod's address.
    for e in client_spec["containers"][0]["env"]:
        if e["name"] == "SERVER_URL":
            e["value"] = "http://%s:8080/hello.txt" % a.addr4

    server = kubelet.RunningPod(
        a, server_spec, issuer.write_svid("spiffe://%s/ns/demo/sa/server" % TD,
                                          str(tmp_path / "id-server")),
        image, str(tmp_path / "pod-server"), configmaps=cms).run()
    # the sidecar copied the shim and the launcher before it got ready
    vol = server.volume("ldmesh-runtime")
    for f in ("libldmesh.so", "ldmesh-run", "ldmesh.conf", "handoff.sock", "ctl.sock"):
        assert os.path.exists(os.path.join(vol, f)), f
    # and runs as the non-root user the spec gives
    sidecar = server.sidecars[0]
    with open("/proc/%d/status" % sidecar.pid) as f:
        assert re.search(r"^Uid:\s+2102\s", f.read(), re.M)
    st = runtime_ctl(mode, server, "status")
    assert "spiffe://cluster.local/ns/demo/sa/server" in json.dumps(st)

    def listening():
        s = runtime_ctl(mode, server, "status")
        assert server.apps["server"].alive(), server.apps["server"].describe()
        return any(str(l.get("addr", "")).endswith(":8080") for l in s.get("listeners", []))
    podlib.wait_until(listening, 20, what="the server's listener in its sidecar")

    # strict: a client outside the mesh gets nothing from port 8080
    r = b.run(["curl", "-s", "-m", "5", "http://%s:8080/hello.txt" % a.addr4], shim=False,
              timeout=15)
    assert r.returncode != 0 and "hello" not in r.stdout

    client = kubelet.RunningPod(
        b, client_spec, issuer.write_svid("spiffe://%s/ns/demo/sa/client" % TD,
                                          str(tmp_path / "id-client")),
        image, str(tmp_path / "pod-client")).run()
    job = client.apps["client"]
    job.wait(60)
    assert job.popen.returncode == 0, job.describe()
    assert job.out() == "hello from the server, over mTLS\n"

    # what the server's sidecar saw: the client's SPIFFE ID, over TLS
    text = metrics(a)
    inbound = [l for l in text.splitlines() if l.startswith("tcp_open_total{")
               and 'direction="inbound"' in l and 'client_id="spiffe://cluster.local/ns/demo/sa/client"' in l]
    assert inbound and all('tls="true"' in l for l in inbound), text[-3000:]
    out = metrics(b)
    assert 'server_id="spiffe://cluster.local/ns/demo/sa/server"' in out

    # The Job's pod is done: the kubelet stops its native sidecar, which
    # exits 0 at once with no app connection open.
    [(rc, took)] = client.stop_sidecars(timeout=10)
    assert rc == 0, client.sidecars[0].describe()
    assert took < 3.0, took
