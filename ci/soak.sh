#!/bin/sh
# Soak test (docs/reliability.md, "Soak"): mixed load through two meshed
# pods for SOAK_SECONDS (default 600), RSS and fd slopes of both daemons
# must stay flat and no request may fail.  Needs root (network namespaces)
# and `make all`.  SOAK_MODE=epoll|asan picks the other builds/backends.
set -eu
cd "$(dirname "$0")/.."
: "${SOAK_SECONDS:=600}"
export SOAK_SECONDS
exec /usr/bin/python3 tests/soak/soak.py "$@"
