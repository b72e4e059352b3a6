"""Helpers for the Kubernetes tests: run `ldmeshctl inject`, read YAML, and
validate objects with the npm package kubernetes-models (tests/kube/validate.mjs,
installed by `make deps` into build/npm)."""
import json
import os
import subprocess

import pytest
import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KUBE = os.path.join(REPO, "tests", "kube")
GOLDEN = os.path.join(KUBE, "golden")
LDMESHCTL = os.path.join(REPO, "build", "ldmeshctl")
NPM_DIR = os.environ.get("LDMESH_NPM_DIR", os.path.join(REPO, "build", "npm"))
SHIM = "/var/run/ldmesh/libldmesh.so"
LAUNCHER = "/var/run/ldmesh/ldmesh-run"


def inject(path_or_text, *args, stdin=False, timeout=30):
    """Runs ldmeshctl inject on a file (or on text through stdin)."""
    if not os.path.exists(LDMESHCTL):
        pytest.fail("build/ldmeshctl is missing (run `make all` first)", pytrace=False)
    if stdin:
        cmd, inp = [LDMESHCTL, "inject", "-"] + list(args), path_or_text.encode()
    else:
        cmd, inp = [LDMESHCTL, "inject", path_or_text] + list(args), None
    return subprocess.run(cmd, input=inp, capture_output=True, timeout=timeout)


def load_all(text):
    return [d for d in yaml.safe_load_all(text) if d is not None]


def validate(docs):
    """Problems kubernetes-models finds in docs (a list of objects): schema
    errors and fields unknown to the schemas; [] when they are valid."""
    if not os.path.exists(os.path.join(NPM_DIR, "node_modules", "kubernetes-models")):
        pytest.fail("kubernetes-models is missing from %s (run `make deps`)" % NPM_DIR,
                    pytrace=False)
    r = subprocess.run(["node", os.path.join(KUBE, "validate.mjs"), NPM_DIR],
                       input=json.dumps(docs).encode(), capture_output=True, timeout=60)
    if r.returncode not in (0, 1):
        raise AssertionError("validate.mjs failed: %s" % r.stderr.decode()[-2000:])
    return r.stdout.decode().splitlines()


def pod_specs(obj):
    """(name, pod spec) of every pod template in obj."""
    kind = obj.get("kind")
    if kind == "List":
        return [s for item in obj.get("items", []) for s in pod_specs(item)]
    if kind == "Pod":
        return [(obj["metadata"].get("name"), obj["spec"])]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController",
                "Job"):
        return [(obj["metadata"]["name"], obj["spec"]["template"]["spec"])]
    if kind == "CronJob":
        return [(obj["metadata"]["name"], obj["spec"]["jobTemplate"]["spec"]["template"]["spec"])]
    return []


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}
