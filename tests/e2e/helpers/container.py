#!/usr/bin/python3
"""One container of a pod, as a kubelet starts it (tests/e2e/kubelet.py).

    container.py SPEC.json

Runs inside the pod's network namespace, in the mount namespace that
`ip netns exec` made for it, so every mount here is this container's own:
  - a fresh tmpfs on /run (so /var/run/... mount points exist and nothing of
    the host's /run shows through);
  - the image: its usr/local bind-mounted read-only over /usr/local (the
    ldmesh image; app images are the host's own stock binaries);
  - each volumeMount: the volume's directory bind-mounted at mountPath,
    read-only when the spec says so;
  - readOnlyRootFilesystem: / remounted read-only;
  - runAsUser/runAsGroup: the ids are dropped, supplementary groups cleared
    (fsGroup-style volume groups kept as one supplementary group);
then it execs command + args with exactly the env the spec gives, in
workingDir (default /).
"""
import json
import os
import subprocess
import sys


def mount(*args):
    subprocess.run(["mount"] + list(args), check=True)


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    mount("--make-rslave", "/")
    mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run")
    if spec.get("image_root"):
        mount("--bind", os.path.join(spec["image_root"], "usr", "local"), "/usr/local")
        mount("-o", "remount,bind,ro", "/usr/local")
    for m in spec["mounts"]:
        target = os.path.realpath(m["mountPath"])
        # Mount points under /run are made on the fresh tmpfs; elsewhere
        # only a directory the host already has can take the mount.
        if target.startswith("/run/"):
            os.makedirs(target, exist_ok=True)
        elif not os.path.isdir(target):
            sys.exit("container.py: no directory %s to mount on" % m["mountPath"])
        mount("--bind", m["source"], target)
        if m.get("readOnly"):
            mount("-o", "remount,bind,ro", target)
    if spec.get("readOnlyRootFilesystem"):
        mount("-o", "remount,bind,ro", "/")
    os.chdir(spec.get("workingDir") or "/")
    if spec.get("gid") is not None:
        os.setgroups(spec.get("groups", []))
        os.setgid(spec["gid"])
    if spec.get("uid") is not None:
        os.setuid(spec["uid"])
    argv = spec["argv"]
    os.execvpe(argv[0], argv, spec["env"])


if __name__ == "__main__":
    main()
