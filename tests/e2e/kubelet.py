"""A kubelet for the pod harness: runs a Pod spec (as `ldmeshctl inject`
wrote it) in one of the tests' network-namespace pods (pods.Pod).

What it does, in the kubelet's order:
  - volumes: an emptyDir is a fresh 0777 directory; the csi-driver-spiffe
    volume is the directory of identity files the test wrote, as the driver
    would (tls.crt, tls.key, ca.crt; group from its fs-group attribute);
  - initContainers in order: a native sidecar (restartPolicy: Always) is
    started and the next container waits for its startupProbe (HTTP GET in
    the pod's network namespace); others run to completion, exit 0 needed;
  - containers: started, each a process in the pod's network namespace
    with its own mount namespace (helpers/container.py): the volumes at
    their mountPaths, read-only where the spec says, the env exactly as
    given, command + args, runAsUser/runAsGroup, readOnlyRootFilesystem.
Images: the ldmesh image is a directory laid out as the Containerfile
makes it (usr/local/bin/ldmeshd, ldmeshctl, ldmesh-run,
usr/local/lib/ldmesh/libldmesh.so), filled from the build of the test's
mode; any other image is the host's own stock binaries.
"""
import json
import os
import re
import shutil
import time

import pods as podlib

HELPER = os.path.join(podlib.HELPERS, "container.py")
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LDMESH_IMAGE = "ldmesh:test"


def ldmesh_image(mode, root):
    """The ldmesh image's files for mode, under root."""
    for d in ("usr/local/bin", "usr/local/lib/ldmesh"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    files = {"usr/local/bin/ldmeshd": mode.ldmeshd,
             "usr/local/bin/ldmeshctl": mode.ldmeshctl,
             "usr/local/bin/ldmesh-run": os.path.join(mode.plain_build, "ldmesh-run"),
             # LD_PRELOAD names the shim alone: under ASan it would need
             # libasan first, so apps get the plain shim (pods.Mode.preload).
             "usr/local/lib/ldmesh/libldmesh.so": mode.plain_shim}
    for rel, src in files.items():
        shutil.copy2(src, os.path.join(root, rel))
    for dirpath, dirs, names in os.walk(root):
        os.chmod(dirpath, 0o755)
        for n in names:
            p = os.path.join(dirpath, n)
            os.chmod(p, 0o755 if os.access(p, os.X_OK) else 0o644)
    os.chmod(root, 0o755)
    return root


class RunningPod:
    def __init__(self, pod, spec, identity_dir, image_root, workdir, configmaps=None):
        self.pod, self.spec = pod, spec
        self.configmaps = configmaps or {}
        self.identity_dir, self.image_root = identity_dir, image_root
        self.dir = workdir
        self.volumes = {}
        self.sidecars = []  # Procs of native sidecars
        self.apps = {}  # name -> Proc
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)

    # --- volumes -------------------------------------------------------------
    def make_volumes(self):
        for v in self.spec.get("volumes", []):
            name = v["name"]
            if "emptyDir" in v:
                path = os.path.join(self.dir, "vol-" + name)
                os.makedirs(path)
                os.chmod(path, 0o777)
            elif "configMap" in v:
                path = os.path.join(self.dir, "vol-" + name)
                os.makedirs(path)
                os.chmod(path, 0o755)
                for key, text in self.configmaps[v["configMap"]["name"]].items():
                    with open(os.path.join(path, key), "w") as f:
                        f.write(text)
                    os.chmod(os.path.join(path, key), 0o644)
            elif v.get("csi", {}).get("driver") == "spiffe.csi.cert-manager.io":
                path = self.identity_dir
                gid = v["csi"].get("volumeAttributes", {}).get(
                    "spiffe.csi.cert-manager.io/fs-group")
                if gid is not None:
                    for f in os.listdir(path):
                        os.chown(os.path.join(path, f), 0, int(gid))
                        os.chmod(os.path.join(path, f), 0o640)
                    os.chown(path, 0, int(gid))
                    os.chmod(path, 0o750)
            else:
                raise AssertionError("kubelet.py: no support for volume %r" % v)
            self.volumes[name] = path

    def volume(self, name):
        return self.volumes[name]

    # --- containers ------------------------------------------------------------
    def _container_spec(self, c):
        env = {"PATH": IMAGE_PATH, "HOSTNAME": self.spec.get("hostname", "pod")}
        for e in c.get("env", []):
            assert "valueFrom" not in e, "kubelet.py: valueFrom is not supported"
            env[e["name"]] = e.get("value", "")
        # $(VAR) in command and args is the container's env, as Kubernetes
        # expands it.
        argv = [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                       lambda m: env.get(m.group(1), m.group(0)), a)
                for a in list(c.get("command", [])) + list(c.get("args", []))]
        assert argv, "kubelet.py: container %s needs a command" % c["name"]
        sc = c.get("securityContext", {})
        psc = self.spec.get("securityContext", {})
        uid = sc.get("runAsUser", psc.get("runAsUser"))
        gid = sc.get("runAsGroup", psc.get("runAsGroup", uid))
        if sc.get("runAsNonRoot"):
            assert uid not in (None, 0), "runAsNonRoot without a non-root runAsUser"
        mounts = [{"source": self.volumes[m["name"]], "mountPath": m["mountPath"],
                   "readOnly": m.get("readOnly", False)} for m in c.get("volumeMounts", [])]
        image_root = self.image_root if c["image"] == LDMESH_IMAGE else None
        return {"argv": argv, "env": env, "mounts": mounts, "uid": uid, "gid": gid,
                "groups": [], "image_root": image_root, "workingDir": c.get("workingDir"),
                "readOnlyRootFilesystem": sc.get("readOnlyRootFilesystem", False)}

    def start(self, c, daemon=False):
        path = os.path.join(self.dir, "container-%s.json" % c["name"])
        with open(path, "w") as f:
            json.dump(self._container_spec(c), f)
        return self.pod.cluster.popen(self.pod.ns, [podlib.PYTHON, HELPER, path],
                                      name=c["name"], dirpath=self.pod.dir,
                                      env={"PATH": podlib.PATH}, daemon=daemon)

    def probe(self, probe):
        get = probe["httpGet"]
        url = "http://%s:%d%s" % (self.pod.addr4, get["port"], get["path"])
        r = self.pod.run(["curl", "-sf", "-m", "1", "-o", "/dev/null", url], shim=False,
                         timeout=10)
        return r.returncode == 0

    def run(self, timeout=30):
        """Starts the pod; returns once every app container is started."""
        self.make_volumes()
        for c in self.spec.get("initContainers", []):
            if c.get("restartPolicy") == "Always":
                p = self.start(c, daemon=True)
                p.expected_exit = False
                self.sidecars.append(p)
                deadline = time.time() + timeout
                while not self.probe(c["startupProbe"]):
                    assert p.alive(), "sidecar %s exited: %s" % (c["name"], p.describe())
                    assert time.time() < deadline, "sidecar %s never started: %s" % (
                        c["name"], p.describe())
                    time.sleep(0.1)
            else:
                p = self.start(c)
                p.wait(timeout)
                assert p.popen.returncode == 0, "init container %s failed: %s" % (
                    c["name"], p.describe())
        for c in self.spec["containers"]:
            self.apps[c["name"]] = self.start(c)
        return self

    def stop_sidecars(self, timeout):
        """What the kubelet does once the app containers exited: SIGTERM to
        the sidecars, in reverse order; returns their exit statuses and how
        long each took."""
        out = []
        for p in reversed(self.sidecars):
            p.expected_exit = True
            t0 = time.monotonic()
            p.signal(15)
            p.wait(timeout)
            out.append((p.popen.returncode, time.monotonic() - t0))
        return out
