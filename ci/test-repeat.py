#!/usr/bin/python3
"""Flake hunt: runs the e2e suite N times (all three modes, as `make test`
does) and prints, per test, how often it failed.

    ci/test-repeat.py [N] [-- PYTEST_ARGS...]      (make test-repeat N=10)

Each run writes build/repeat/run-K.xml (pytest's JUnit report) and prints
pytest's own summary line; the last line is
`test-repeat: N runs, T tests, F failed at least once, R runs red`.
Exits 1 if any test failed in any run.  Use it before landing a change
that touches tests or timing (docs/reliability.md)."""
import collections
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv):
    runs = 10
    extra = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    if argv:
        runs = int(argv[0])
    if runs < 1:
        sys.exit("test-repeat: N must be at least 1")
    outdir = os.path.join(REPO, "build", "repeat")
    os.makedirs(outdir, exist_ok=True)
    failed = collections.Counter()
    seen = set()
    red = 0
    for k in range(1, runs + 1):
        xml = os.path.join(outdir, "run-%d.xml" % k)
        t0 = time.monotonic()
        p = subprocess.run(["/usr/bin/python3", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "--junitxml", xml, "tests/e2e"] + extra,
                           cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = [x for x in p.stdout.splitlines() if x.strip()]
        summary = lines[-1] if lines else "(no output)"
        print("run %d/%d (%.0f s): %s" % (k, runs, time.monotonic() - t0, summary), flush=True)
        if p.returncode != 0:
            red += 1
            with open(os.path.join(outdir, "run-%d.log" % k), "w") as f:
                f.write(p.stdout)
        if not os.path.exists(xml):
            failed["(pytest produced no report)"] += 1
            continue
        for case in ET.parse(xml).getroot().iter("testcase"):
            name = "%s::%s" % (case.get("classname"), case.get("name"))
            seen.add(name)
            if case.find("failure") is not None or case.find("error") is not None:
                failed[name] += 1
    for name, n in sorted(failed.items(), key=lambda x: (-x[1], x[0])):
        print("  %-90s failed %d of %d" % (name, n, runs))
    print("test-repeat: %d runs, %d tests, %d failed at least once, %d runs red" %
          (runs, len(seen), len(failed), red))
    return 1 if failed or red else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
