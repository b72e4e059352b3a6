#!/bin/sh
# Benchmark: direct vs ldmesh vs HAProxy sidecars in two network-namespace
# pods (run by `make bench` / `make bench-quick` after `make deps` and
# `make all`).  It reports, it never asserts timings: the exit status is
# non-zero only when something could not run.  Results go to
# build/bench/results.json and build/bench/results.md (printed at the end);
# see docs/benchmarks.md.
#
#   ci/bench.sh [--quick] [--reps N] [--duration S] [--only load,idle,limits]
set -eu
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
	echo "ci/bench.sh: the benchmark creates network namespaces; run as root" >&2
	exit 1
fi
for f in build/ldmeshd build/ldmeshctl build/libldmesh.so; do
	[ -e "$f" ] || { echo "ci/bench.sh: $f is missing: run make all" >&2; exit 1; }
done
for t in /usr/bin/wrk /usr/sbin/haproxy /usr/sbin/nginx /usr/bin/curl /usr/bin/python3; do
	[ -x "$t" ] || { echo "ci/bench.sh: $t is missing (make deps installs it)" >&2; exit 1; }
done

# The idle-connection holder is a benchmark helper, not part of `make all`.
mkdir -p build/bench
if [ ! -x build/bench/idlehold ] || [ tests/bench/idlehold.c -nt build/bench/idlehold ]; then
	${CC:-cc} -O2 -g -Wall -Wextra -Werror -std=gnu11 -o build/bench/idlehold \
		tests/bench/idlehold.c
fi

# The limits helper (memcpy, loopback TCP) for the bulk rows, likewise.
if [ ! -x build/bench/limits ] || [ tests/bench/limits.c -nt build/bench/limits ]; then
	${CC:-cc} -O2 -g -Wall -Wextra -Werror -std=gnu11 -o build/bench/limits \
		tests/bench/limits.c -lpthread
fi

# 10,000 idle connections through two proxies need ~4 fds each per process.
ulimit -Hn 200000 2>/dev/null || true
ulimit -Sn 200000 2>/dev/null || true

exec /usr/bin/python3 tests/bench/bench.py "$@"
