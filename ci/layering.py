#!/usr/bin/python3
"""Layering check for the daemon (docs/architecture.md, "The daemon").

    ci/layering.py [BUILD]          (run by `make check`)

Folders are layered, lowest first: util, loop, config, identity, transport,
policy, telemetry, proto, proxy, then the daemon itself (daemon/*.c) with its
control surfaces (daemon/control/).  A
file (source or header) may include headers of its own layer or below,
and its object may call functions defined in its own layer or below.
Includes are each file's own `#include "..."` lines, calls come from `nm`
on the objects in BUILD (default build/).

The check fails on any upward include or call and names it; the summary
line is `layering: no upward references in N files`."""
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORDER = ["util", "loop", "config", "identity", "transport", "policy", "telemetry", "proto",
         "proxy", "daemon"]
# The control surfaces (ctl.sock verbs, admin HTTP, /metrics) answer for the
# whole daemon: they sit at its level.
SAME_AS = {"control": "daemon"}


def layer_of(path):
    """Layer index of a daemon source or header path (relative), or None."""
    parts = path.split("/")
    if len(parts) < 2 or parts[0] != "daemon":
        return None
    if len(parts) == 2:
        return ORDER.index("daemon")
    if parts[1] in ORDER or parts[1] in SAME_AS:
        return ORDER.index(SAME_AS.get(parts[1], parts[1]))
    return None  # daemon/ctl/: the CLI, not the daemon


def sources():
    out = []
    for root, _, files in os.walk(os.path.join(REPO, "daemon")):
        for f in files:
            if f.endswith(".c"):
                rel = os.path.relpath(os.path.join(root, f), REPO)
                if layer_of(rel) is not None:
                    out.append(rel)
    return sorted(out)


def includes(src):
    """The daemon headers src includes itself (a header's own includes are
    its file's business: each is checked where it is written)."""
    out = []
    with open(os.path.join(REPO, src)) as f:
        for m in re.finditer(r'^#include "([^"]+)"', f.read(), re.M):
            for base in (os.path.dirname(src), "daemon"):
                cand = os.path.normpath(os.path.join(base, m.group(1)))
                if os.path.exists(os.path.join(REPO, cand)):
                    out.append(cand)
                    break
    return out


def symbols(obj):
    r = subprocess.run(["nm", obj], capture_output=True, text=True, check=True)
    defined, used = set(), set()
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) == 2 and f[0] == "U":
            used.add(f[1])
        elif len(f) == 3 and f[1] in "TDBR":
            defined.add(f[2])
    return defined, used


def main(argv):
    build = argv[1] if len(argv) > 1 else "build"
    srcs = sources()
    found = set()
    definer = {}
    uses = {}
    for s in srcs:
        obj = os.path.join(REPO, build, "obj", s[:-2] + ".o")
        if not os.path.exists(obj):
            sys.exit("layering: %s is missing: build first (make all)" % obj)
        d, u = symbols(obj)
        for name in d:
            definer[name] = s
        uses[s] = u
    headers = []
    for root, _, files in os.walk(os.path.join(REPO, "daemon")):
        for f in files:
            rel = os.path.relpath(os.path.join(root, f), REPO)
            if f.endswith(".h") and layer_of(rel) is not None:
                headers.append(rel)
    for s in srcs + sorted(headers):
        mine = layer_of(s)
        for h in includes(s):
            lh = layer_of(h)
            if lh is not None and lh > mine:
                found.add("%s includes %s" % (s, h))
        for name in sorted(uses.get(s, ())):
            t = definer.get(name)
            if t and layer_of(t) > mine:
                found.add("%s calls %s (%s)" % (s, name, t))
    for x in sorted(found):
        print("layering: upward reference: %s" % x)
    if found:
        print("layering: %d upward references (docs/architecture.md, The daemon)" % len(found))
        return 1
    print("layering: no upward references in %d files" % (len(srcs) + len(headers)))
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv))
