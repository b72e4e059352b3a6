"""`ldmeshctl inject` against golden files (tests/kube/golden/NAME.in.yaml or
.in.json -> NAME.out.yaml, and NAME.err.txt for its notes on stderr), every
output validated as Kubernetes objects by kubernetes-models, with no field
the schemas do not know.  LDMESH_GOLDEN_UPDATE=1 rewrites the golden outputs
(review the diff).  No cluster, no root: these run in a second."""
import glob
import json
import os
import re
import subprocess
import tempfile

import pytest

import kube

INPUTS = sorted(glob.glob(os.path.join(kube.GOLDEN, "*.in.yaml")) +
                glob.glob(os.path.join(kube.GOLDEN, "*.in.json")))
UPDATE = os.environ.get("LDMESH_GOLDEN_UPDATE") == "1"


def golden_name(path):
    return re.sub(r"\.in\.(yaml|json)$", "", os.path.basename(path))


def read(path):
    with open(path) as f:
        return f.read()


@pytest.mark.parametrize("src", INPUTS, ids=golden_name)
def test_golden(src):
    base = os.path.join(kube.GOLDEN, golden_name(src))
    r = kube.inject(src)
    assert r.returncode == 0, r.stderr.decode()
    out, err = r.stdout.decode(), r.stderr.decode()
    if UPDATE:
        with open(base + ".out.yaml", "w") as f:
            f.write(out)
        if err:
            with open(base + ".err.txt", "w") as f:
                f.write(err)
        elif os.path.exists(base + ".err.txt"):
            os.unlink(base + ".err.txt")
    assert out == read(base + ".out.yaml")
    assert err == (read(base + ".err.txt") if os.path.exists(base + ".err.txt") else "")


def test_golden_set_is_varied():
    """The set covers what the issue lists."""
    names = {golden_name(p) for p in INPUTS}
    assert {"pod-multi", "deploy-init", "statefulset", "cronjob", "list", "multi", "pod",
            "disabled", "injected", "command-annotation", "opaque", "spire"} <= names
    assert any(p.endswith(".json") for p in INPUTS)


def test_outputs_and_inputs_validate():
    """Every input and every output are valid Kubernetes objects; injecting
    adds no field unknown to the schemas (core/v1 and the workload kinds)."""
    problems = []
    for src in INPUTS:
        base = os.path.join(kube.GOLDEN, golden_name(src))
        for path in (src, base + ".out.yaml"):
            docs = kube.load_all(read(path))
            problems += ["%s: %s" % (os.path.basename(path), p) for p in kube.validate(docs)]
    assert problems == []


def test_validator_catches_unknown_and_wrong_fields():
    """The validator itself: a misspelt field and a wrong type are found."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"initContainers": [{"name": "s", "image": "i", "restartPolcy": "Always"}],
                    "containers": [{"name": "a", "image": "b",
                                    "env": [{"name": "X", "valu": "1"}]}]}}
    problems = kube.validate([pod])
    assert any("/spec/initContainers/0/restartPolcy" in p for p in problems), problems
    assert any("/spec/containers/0/env/0/valu" in p for p in problems), problems
    pod["spec"]["containers"][0]["image"] = 7
    assert any("image must be string" in p for p in kube.validate([pod]))


@pytest.mark.parametrize("src", INPUTS, ids=golden_name)
def test_twice_is_once(src):
    out = os.path.join(kube.GOLDEN, golden_name(src) + ".out.yaml")
    r = kube.inject(out)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode() == read(out)


def test_injected_pod_shape():
    """What every injected pod template gets, read from the outputs."""
    seen = 0
    for src in INPUTS:
        if golden_name(src) in ("disabled",):
            continue
        for doc in kube.load_all(read(os.path.join(kube.GOLDEN, golden_name(src) + ".out.yaml"))):
            for name, spec in kube.pod_specs(doc):
                seen += 1
                spire = spec["initContainers"][0]["name"] == "ldmesh-spiffe-helper"
                # ldmesh-proxy first, after SPIRE's spiffe-helper when that is the issuer.
                side = spec["initContainers"][1 if spire else 0]
                assert side["name"] == "ldmesh-proxy" and side["restartPolicy"] == "Always"
                assert side["startupProbe"]["httpGet"] == {"path": "/ready", "port": 4191}
                assert side["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 4191}
                assert side["livenessProbe"]["httpGet"] == {"path": "/live", "port": 4191}
                sc = side["securityContext"]
                assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"]
                assert not sc["allowPrivilegeEscalation"]
                assert sc["capabilities"] == {"drop": ["ALL"]}
                assert side["resources"]["requests"]
                assert [n for n, _ in [(c["name"], c) for c in spec["initContainers"]]
                        ].count("ldmesh-proxy") == 1
                vols = {v["name"]: v for v in spec["volumes"]}
                assert vols["ldmesh-runtime"] == {"name": "ldmesh-runtime", "emptyDir": {}}
                if spire:
                    assert vols["ldmesh-identity"] == {"name": "ldmesh-identity",
                                                       "emptyDir": {"medium": "Memory"}}
                    assert vols["ldmesh-spire-agent"]["csi"]["driver"] == "csi.spiffe.io"
                else:
                    assert vols["ldmesh-identity"]["csi"]["driver"] == "spiffe.csi.cert-manager.io"
                # the identity goes to the sidecar (and its issuer) only
                for c in spec["containers"] + spec["initContainers"][2 if spire else 1:]:
                    assert "ldmesh-identity" not in [m["name"] for m in c.get("volumeMounts", [])]
                for c in spec["containers"]:
                    env = kube.env_of(c)
                    assert env["LD_PRELOAD"].split(":")[0] == kube.SHIM, (name, c["name"])
                    assert env["LDMESH_RUNTIME_DIR"] == "/var/run/ldmesh"
                    m = [m for m in c["volumeMounts"] if m["name"] == "ldmesh-runtime"]
                    assert m == [{"name": "ldmesh-runtime", "mountPath": "/var/run/ldmesh",
                                  "readOnly": True}]
                    if "command" in c:
                        assert c["command"][:2] == [kube.LAUNCHER, "--"]
                for c in spec["initContainers"] + spec["containers"]:
                    s = c.get("securityContext", {})
                    assert not s.get("privileged") and not s.get("capabilities", {}).get("add")
    assert seen >= 12
    for path in glob.glob(os.path.join(kube.GOLDEN, "*.out.yaml")):
        assert "NET_ADMIN" not in read(path) and "NET_RAW" not in read(path)
        assert "privileged: true" not in read(path)


def test_details():
    """Own LD_PRELOAD kept after the shim; existing init containers stay
    unmeshed unless annotated; a command from the annotation; a note names
    the annotation for a container without a command."""
    docs = kube.load_all(read(os.path.join(kube.GOLDEN, "pod-multi.out.yaml")))
    spec = docs[0]["spec"]
    cache = [c for c in spec["containers"] if c["name"] == "cache"][0]
    assert kube.env_of(cache)["LD_PRELOAD"] == \
        kube.SHIM + ":/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
    assert "command" not in cache and cache["args"] == ["--port", "6379"]
    metrics = [c for c in spec["containers"] if c["name"] == "metrics"][0]
    assert kube.env_of(metrics)["LDMESH_RUNTIME_DIR"] == "/var/run/ldmesh"
    assert kube.env_of(metrics)["ENABLED"] == "yes"
    err = read(os.path.join(kube.GOLDEN, "pod-multi.err.txt"))
    assert "container cache has no command" in err
    assert "config.ldmesh.io/command-cache" in err

    spec = kube.pod_specs(kube.load_all(read(os.path.join(kube.GOLDEN, "deploy-init.out.yaml")))[0])[0][1]
    names = [c["name"] for c in spec["initContainers"]]
    assert names == ["ldmesh-proxy", "wait-for-db", "migrate"]
    wait, migrate = spec["initContainers"][1], spec["initContainers"][2]
    assert "env" not in wait and wait["command"][0] == "sh"
    assert migrate["command"][:3] == [kube.LAUNCHER, "--", "/app/migrate"]
    assert kube.env_of(migrate)["LDMESH_EXCLUDE_PORTS"] == "9102,25,6000-6010"
    assert kube.env_of(migrate)["LDMESH_EXCLUDE_CIDRS"] == "169.254.169.254/32"
    conf = kube.env_of(spec["initContainers"][0])["LDMESH_CONFIG"]
    assert 'mtls = "permissive";' in conf and "exclude_ports = [ 9102 ];" in conf
    assert 'log_level = "debug";' in conf  # from the Deployment's own annotations
    assert spec["initContainers"][0]["resources"]["limits"] == {"cpu": "500m", "memory": "128Mi"}

    spec = kube.pod_specs(kube.load_all(read(os.path.join(kube.GOLDEN,
                                                          "command-annotation.out.yaml")))[0])[0][1]
    c = spec["containers"][0]
    assert c["command"] == [kube.LAUNCHER, "--", "/ko-app/gosvc"] and c["args"] == ["-listen", ":8080"]
    conf = kube.env_of(spec["initContainers"][0])["LDMESH_CONFIG"]
    assert 'trust_domain = "prod.example.org";' in conf
    assert 'policy_default = "deny";' in conf
    assert '{ port = 8081; mtls = "permissive"; }' in conf and "9090" in conf
    assert 'paths = [ "/livez" ]' in conf
    assert 'mesh_networks = [ "10.0.0.0/8", "fd00::/8" ]' in conf

    docs = kube.load_all(read(os.path.join(kube.GOLDEN, "disabled.out.yaml")))
    assert docs == kube.load_all(read(os.path.join(kube.GOLDEN, "disabled.in.yaml")))


def test_opaque_ports_rendered():
    """config.ldmesh.io/opaque-ports: one inbound.ports entry per port with
    opaque = true (ranges expanded), merged with a probe port's entry; a
    probe rule on an opaque port allows the port, not a path (the daemon
    refuses HTTP conditions there)."""
    spec = kube.pod_specs(kube.load_all(read(os.path.join(kube.GOLDEN, "opaque.out.yaml")))[0])[0][1]
    conf = kube.env_of(spec["initContainers"][0])["LDMESH_CONFIG"]
    assert '{ port = 6379; mtls = "permissive"; opaque = true; }' in conf
    assert '{ port = 8080; mtls = "permissive"; }' in conf
    assert "{ port = 5432; opaque = true; }" in conf and "{ port = 6380; opaque = true; }" in conf
    assert "ports = [ 6379 ]; unauthenticated = true; }" in conf
    assert 'ports = [ 8080 ]; unauthenticated = true; methods = [ "GET" ]; paths = [ "/healthz" ]' \
        in conf
    assert "#" not in conf.split("\n", 1)[1]  # no comment stands in for a setting
    spec = kube.pod_specs(kube.load_all(read(os.path.join(kube.GOLDEN, "deploy-init.out.yaml")))[0])[0][1]
    assert "{ port = 5432; opaque = true; }" in kube.env_of(spec["initContainers"][0])["LDMESH_CONFIG"]


def test_spire_identity():
    """config.ldmesh.io/identity: spire: spiffe-helper as a native sidecar
    before ldmesh-proxy, the agent socket from the SPIFFE CSI driver, its
    helper.conf from the pod's annotation (downwardAPI, no ConfigMap), the
    files it writes are the ones the rendered config reads."""
    docs = kube.load_all(read(os.path.join(kube.GOLDEN, "spire.out.yaml")))
    images = []
    for doc in docs:
        meta = doc["metadata"] if doc["kind"] == "Pod" else doc["spec"]["template"]["metadata"]
        helper_conf = meta["annotations"]["ldmesh.io/spiffe-helper-conf"]
        spec = kube.pod_specs(doc)[0][1]
        helper, proxy = spec["initContainers"][0], spec["initContainers"][1]
        assert helper["name"] == "ldmesh-spiffe-helper" and helper["restartPolicy"] == "Always"
        assert proxy["name"] == "ldmesh-proxy"
        images.append(helper["image"])
        assert helper["args"] == ["-config", "/etc/ldmesh-spiffe-helper/helper.conf"]
        mounts = {m["name"]: m for m in helper["volumeMounts"]}
        assert mounts["ldmesh-spire-agent"]["mountPath"] == "/spiffe-workload-api"
        assert mounts["ldmesh-spire-agent"]["readOnly"]
        assert mounts["ldmesh-identity"]["mountPath"] == "/var/run/secrets/spiffe.io"
        assert not mounts["ldmesh-identity"]["readOnly"]
        assert helper["securityContext"]["runAsUser"] == proxy["securityContext"]["runAsUser"]
        vols = {v["name"]: v for v in spec["volumes"]}
        assert vols["ldmesh-spiffe-helper"]["downwardAPI"]["items"] == [
            {"path": "helper.conf", "fieldRef": {
                "fieldPath": "metadata.annotations['ldmesh.io/spiffe-helper-conf']"}}]
        assert vols["ldmesh-spire-agent"]["csi"] == {"driver": "csi.spiffe.io", "readOnly": True}
        kv = dict(line.split(" = ", 1) for line in helper_conf.splitlines())
        assert kv["agent_address"] == '"/spiffe-workload-api/spire-agent.sock"'
        assert kv["cert_dir"] == '"/var/run/secrets/spiffe.io"'
        assert kv["daemon_mode"] == "true"
        conf = kube.env_of(proxy)["LDMESH_CONFIG"]
        for key, name in (("cert", "svid_file_name"), ("key", "svid_key_file_name"),
                          ("bundle", "svid_bundle_file_name")):
            assert '%s = "/var/run/secrets/spiffe.io/%s";' % (key, kv[name].strip('"')) in conf
        assert "svid_key.pem" in proxy["command"][2]  # waits for the files
    assert images == ["ghcr.io/spiffe/spiffe-helper:0.8.0",
                      "registry.example/mirror/spiffe-helper:0.8.0"]


def test_rendered_configs_load():
    """Every rendered pod config is one ldmeshd accepts: run with it, the
    daemon gets past the config and stops only at the identity files, which
    do not exist here."""
    ldmeshd = os.path.join(kube.REPO, "build", "ldmeshd")
    seen = 0
    for out in sorted(glob.glob(os.path.join(kube.GOLDEN, "*.out.yaml"))):
        for doc in kube.load_all(read(out)):
            for name, spec in kube.pod_specs(doc):
                proxy = [c for c in spec.get("initContainers", []) if c["name"] == "ldmesh-proxy"]
                if not proxy:
                    continue
                conf = kube.env_of(proxy[0])["LDMESH_CONFIG"]
                conf = conf.replace('admin_addr = "0.0.0.0:4191";', 'admin_addr = "";')
                conf = conf.replace("/var/run/secrets/spiffe.io/", "/nonexistent/ldmesh-id/")
                with tempfile.TemporaryDirectory() as tmp:
                    conf = conf.replace('"/var/run/ldmesh"', json.dumps(tmp))
                    path = os.path.join(tmp, "ldmesh.conf")
                    with open(path, "w") as f:
                        f.write(conf)
                    r = subprocess.run([ldmeshd, "-c", path], capture_output=True, timeout=20)
                err = r.stderr.decode()
                assert r.returncode == 1 and "/nonexistent/ldmesh-id/" in err, \
                    (os.path.basename(out), name, err)
                seen += 1
    assert seen >= 12


def test_stdin_and_image():
    text = read(os.path.join(kube.GOLDEN, "cronjob.in.yaml"))
    r = kube.inject(text, "--image", "registry.example/ldmesh:test", stdin=True)
    assert r.returncode == 0, r.stderr
    spec = kube.pod_specs(kube.load_all(r.stdout.decode())[0])[0][1]
    assert spec["initContainers"][0]["image"] == "registry.example/ldmesh:test"


MALFORMED = [
    ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n\tspec: {}\n", 5),
    ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: \"x\n", 5),
    ("apiVersion: v1\nkind: Pod\nkind: Service\n", 3),
    ("a: 1\n---\nb: [1, 2\nc: 3\n", 4),
    ("a: *nowhere\n", 1),
    ('{"apiVersion": "v1",\n "kind": "Pod",\n "metadata": {"name": "x",}}\n', 3),
    ('{"kind": "Pod",\n "kind": "Pod"}\n', 2),
]


@pytest.mark.parametrize("text,line", MALFORMED)
def test_malformed(text, line):
    r = kube.inject(text, stdin=True)
    assert r.returncode == 1
    assert r.stdout == b""
    err = r.stderr.decode().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("ldmeshctl: inject: <stdin>: line %d: " % line), err


@pytest.mark.parametrize("annotation,message", [
    ("config.ldmesh.io/mtls-mode: strikt", "expected one of strict, permissive, disable"),
    ("config.ldmesh.io/skip-inbound-ports: 80,x", '"x" is not a port'),
    ("config.ldmesh.io/trust-domain: Bad.Domain", "trust domain"),
    ("config.ldmesh.io/mtls: strict", "unknown annotation config.ldmesh.io/mtls"),
    ("config.ldmesh.io/command-app: /app", "expected a JSON list of strings"),
    ("config.ldmesh.io/identity: vault", "expected one of csi-driver-spiffe, spire"),
    ('config.ldmesh.io/spiffe-helper-image: "a b"', "is not an image reference"),
    ("ldmesh.io/inject: maybe", "takes enabled or disabled"),
])
def test_bad_annotation(annotation, message):
    text = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    %s\n"
            "spec:\n  containers:\n  - name: app\n    image: x\n") % annotation
    r = kube.inject(text, stdin=True)
    assert r.returncode == 1 and r.stdout == b""
    err = r.stderr.decode()
    assert err.count("\n") == 1 and message in err and "Pod/p" in err, err


def test_bounded_aliases():
    """A billion-laughs document fails with a message, fast."""
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 10):
        lines.append("a%d: &a%d [%s]" % (i, i, ",".join(["*a%d" % (i - 1)] * 10)))
    r = kube.inject("\n".join(lines) + "\n", stdin=True, timeout=20)
    assert r.returncode == 1 and r.stdout == b""
    assert "aliases included" in r.stderr.decode()


def test_types_survive():
    """Strings that look like other types stay strings, numbers stay numbers."""
    text = ('apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n'
            '  a: "yes"\n  b: "08"\n  c: "1.5"\n  d: ""\n  e: "null"\n  f: "~"\n  g: "0x1F"\n'
            '  h: "line1\\nline2\\n"\n  i: " lead"\n')
    r = kube.inject(text, stdin=True)
    assert r.returncode == 0
    assert kube.load_all(r.stdout.decode()) == kube.load_all(text)


def test_conf_manifests_validate():
    """conf/kubernetes: every object of a Kubernetes kind validates (the
    cert-manager kinds are CRDs, not in the schemas), and the demo app
    injected validates too."""
    conf = os.path.join(kube.REPO, "conf", "kubernetes")
    problems = []
    for path in sorted(glob.glob(os.path.join(conf, "*.yaml"))):
        docs = [d for d in kube.load_all(read(path))
                if not d["apiVersion"].startswith("cert-manager.io/")]
        problems += ["%s: %s" % (os.path.basename(path), p) for p in kube.validate(docs)]
    r = kube.inject(os.path.join(conf, "demo-app.yaml"))
    assert r.returncode == 0 and r.stderr == b"", r.stderr
    problems += ["injected demo-app: " + p for p in kube.validate(kube.load_all(r.stdout.decode()))]
    assert problems == []
    hook = [d for d in kube.load_all(read(os.path.join(conf, "webhook.yaml")))
            if d["kind"] == "MutatingWebhookConfiguration"][0]["webhooks"][0]
    assert hook["failurePolicy"] == "Ignore"
    assert hook["namespaceSelector"] == {"matchLabels": {"ldmesh.io/inject": "enabled"}}
