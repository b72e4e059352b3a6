#!/bin/bash
# ldmesh demo (run by `make demo` after `make deps` and `make all`).
#
# Two "pods" -- network namespaces joined by a veth pair, 10.250.200.1 (a)
# and 10.250.200.2 (b) -- each with its own ldmeshd and its own SPIFFE
# identity from a CA made by ldmeshctl; the hop between them is mTLS.  A stock
# `python3 -m http.server` runs in pod b and a stock `curl` in pod a, both
# with LD_PRELOAD=libldmesh.so and nothing else changed.  The script shows
# what curl got, what the server logged (pod a's real address), and what
# each daemon reports with `ldmeshctl conns` while a download is live.
# Everything it starts is stopped and removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
BUILD=${BUILD:-build}
BIN="$REPO/$BUILD"
PY=/usr/bin/python3

if [ "$(id -u)" != 0 ]; then
	echo "ci/demo.sh: creating network namespaces needs root (sudo make demo)" >&2
	exit 1
fi
for f in "$BIN/ldmeshd" "$BIN/ldmeshctl" "$BIN/libldmesh.so"; do
	[ -e "$f" ] || { echo "ci/demo.sh: $f is missing: run make all" >&2; exit 1; }
done
for t in curl ip "$PY"; do
	command -v "$t" >/dev/null || { echo "ci/demo.sh: $t is missing: run make deps" >&2; exit 1; }
done

NSA="ldmdemo$$a"
NSB="ldmdemo$$b"
A=10.250.200.1
B=10.250.200.2
T=$(mktemp -d /tmp/ldmdemo.XXXXXX)
PIDS=()
NS_MADE=()

section() { printf '\n===== %s =====\n' "$*"; }

cleanup() {
	set +e
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for _ in $(seq 1 30); do
		alive=0
		for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && break
		sleep 0.1
	done
	for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
	wait 2>/dev/null
	for ns in "${NS_MADE[@]}"; do ip netns del "$ns" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND until it succeeds.
wait_for() {
	local secs=$1 what=$2 i
	shift 2
	for i in $(seq 1 $((secs * 10))); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "ci/demo.sh: timed out after ${secs}s waiting for $what" >&2
	return 1
}

section "1. two pods: $NSA ($A) and $NSB ($B), joined by a veth pair"
for ns in "$NSA" "$NSB"; do
	ip netns add "$ns"
	NS_MADE+=("$ns")
	ip -n "$ns" link set lo up
done
ip link add veth0 netns "$NSA" type veth peer name veth0 netns "$NSB"
ip -n "$NSA" addr add $A/24 dev veth0
ip -n "$NSB" addr add $B/24 dev veth0
ip -n "$NSA" link set veth0 up
ip -n "$NSB" link set veth0 up
echo "pod a: $(ip -n "$NSA" -br addr show veth0)"
echo "pod b: $(ip -n "$NSB" -br addr show veth0)"

section "2. a CA and one SPIFFE identity per pod (ldmeshctl ca init / ca issue)"
"$BIN/ldmeshctl" ca init --dir "$T/ca" --trust-domain cluster.local | sed 's/^/    /'
"$BIN/ldmeshctl" ca issue --dir "$T/ca" --id spiffe://cluster.local/ns/demo/sa/client \
	--out "$T/a/id" | sed 's/^/    /'
"$BIN/ldmeshctl" ca issue --dir "$T/ca" --id spiffe://cluster.local/ns/demo/sa/web \
	--out "$T/b/id" | sed 's/^/    /'

section "3. one ldmeshd per pod, mTLS strict"
for p in a b; do
	mkdir -p "$T/$p"
	cat >"$T/$p/ldmesh.conf" <<EOF
runtime_dir = "$T/$p/run";
admin_addr = "";
identity = { cert = "$T/$p/id/svid.pem"; key = "$T/$p/id/svid-key.pem"; bundle = "$T/$p/id/bundle.pem"; };
inbound = { mtls = "strict"; };
outbound = { mesh_networks = [ "10.250.0.0/16" ]; };
EOF
	mkdir -p "$T/$p/run"
done
ip netns exec "$NSA" "$BIN/ldmeshd" -c "$T/a/ldmesh.conf" --runtime-dir "$T/a/run" 2>"$T/a/ldmeshd.log" &
PIDS+=($!)
ip netns exec "$NSB" "$BIN/ldmeshd" -c "$T/b/ldmesh.conf" --runtime-dir "$T/b/run" 2>"$T/b/ldmeshd.log" &
PIDS+=($!)
for p in a b; do
	if ! wait_for 15 "ldmeshd in pod $p" "$BIN/ldmeshctl" --runtime-dir "$T/$p/run" status; then
		cat "$T/$p/ldmeshd.log" >&2
		exit 1
	fi
	echo "pod $p daemon:"
	"$BIN/ldmeshctl" --runtime-dir "$T/$p/run" status | sed 's/^/    /'
done

section "4. stock python3 -m http.server in pod b (LD_PRELOAD=libldmesh.so)"
mkdir -p "$T/www"
echo "Hello from pod b, served through two ldmesh daemons." >"$T/www/index.html"
head -c $((4 * 1024 * 1024)) /dev/zero >"$T/www/big.bin"
ip netns exec "$NSB" env LD_PRELOAD="$BIN/libldmesh.so" LDMESH_RUNTIME_DIR="$T/b/run" \
	PYTHONUNBUFFERED=1 "$PY" -m http.server 8080 --bind $B --directory "$T/www" \
	>"$T/server.log" 2>&1 &
PIDS+=($!)
wait_for 15 "the server to listen on $B:8080" \
	sh -c "ip netns exec '$NSB' ss -Hltn 'sport = :8080' | grep -q LISTEN"
echo "listening on $B:8080 (its listening socket was handed to pod b's ldmeshd)"

section "5. curl -sv http://$B:8080/ in pod a (LD_PRELOAD=libldmesh.so)"
ip netns exec "$NSA" env LD_PRELOAD="$BIN/libldmesh.so" LDMESH_RUNTIME_DIR="$T/a/run" \
	curl -sv --max-time 20 "http://$B:8080/" 2>&1 | sed 's/^/    /'

section "6. a live connection: curl --limit-rate 400k downloads 4 MiB from pod b"
ip netns exec "$NSA" env LD_PRELOAD="$BIN/libldmesh.so" LDMESH_RUNTIME_DIR="$T/a/run" \
	curl -sS --max-time 60 --limit-rate 400k -o /dev/null "http://$B:8080/big.bin" &
SLOW=$!
PIDS+=($SLOW)
sleep 2
echo "pod a  ldmeshctl conns (outbound: curl -> $B:8080):"
"$BIN/ldmeshctl" --runtime-dir "$T/a/run" conns | sed 's/^/    /'
echo
echo "pod b  ldmeshctl conns (inbound: from pod a's real address $A):"
"$BIN/ldmeshctl" --runtime-dir "$T/b/run" conns | sed 's/^/    /'
kill -TERM $SLOW 2>/dev/null || true

section "7. the same curl without the mesh: pod b's port demands mTLS"
if ip netns exec "$NSA" curl -sS --max-time 10 "http://$B:8080/" 2>&1 | sed 's/^/    /'; then
	echo "    (unexpected: plaintext was served)"
fi
echo "pod b refused it:"
grep -E "plaintext connection .* refused" "$T/b/ldmeshd.log" | sed 's/^/    /'

section "8. what the server in pod b logged (client address = pod a, $A)"
sleep 0.3
# Request lines only: the download stopped in step 6 also left a
# BrokenPipeError traceback there (http.server prints one per client gone).
grep -E '"[A-Z]+ [^"]* HTTP/1\.[01]"' "$T/server.log" | sed 's/^/    /'
if grep -q BrokenPipeError "$T/server.log"; then
	echo "    (and a BrokenPipeError for the 4 MiB download stopped in step 6)"
fi

section "done: stopping everything this demo started"
