#!/bin/sh
# CI test run: C unit tests, short fuzz runs (ci/fuzz.sh --short), then the
# e2e suite (network-namespace pods, stock binaries) in all three modes
# (io_uring, epoll, asan).  Run by `make test` after `make all` and `make
# asan`.  The last line printed is pytest's summary; the exit status is
# non-zero if anything failed.
set -u
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
	echo "ci/test.sh: the e2e tests create network namespaces and veth pairs;" \
		"run as root (sudo make test)" >&2
	exit 1
fi

unit=0
make test-unit || unit=$?
if [ "$unit" != 0 ]; then
	echo "ci/test.sh: unit tests failed (exit $unit); running the e2e suite anyway"
fi

# Every parser fed from outside, about 5 s each; before pytest, whose
# summary stays the last line.
fuzz=0
ci/fuzz.sh --short || fuzz=$?
if [ "$fuzz" != 0 ]; then
	echo "ci/test.sh: fuzzing failed (exit $fuzz); running the e2e suite anyway"
fi

# Debian's python3 with python3-pytest, never a pyenv or venv python.
/usr/bin/python3 -m pytest -q tests/e2e
e2e=$?
# pytest exits 5 when it collected no test: that is a failure here.
[ "$unit" = 0 ] && [ "$fuzz" = 0 ] && [ "$e2e" = 0 ] && exit 0
exit 1
