#!/bin/sh
# libFuzzer runs of every parser fed from outside the daemon (docs/reliability.md).
#
#   ci/fuzz.sh [--short] [--time S] [TARGET...]
#
# Builds each tests/fuzz/fuzz_<name>.c with clang and ASan+UBSan into
# build/fuzz/fuzz_<name>, linking only the sources it needs, then runs it for
# S seconds (60, or 5 with --short as in `make test`) on a temporary corpus
# merged with the seeds in tests/fuzz/corpus/<name>: new inputs go to the
# temporary directory, never into the tree.  Afterwards every file in
# tests/fuzz/regressions/<name>/ is replayed once.  One line per target, then
# "fuzz: N targets, M crashes"; the exit status is non-zero on any crash or
# build failure, and the crash input's path is printed (inputs are kept in
# build/fuzz/crashes/<name>/, logs in build/fuzz/logs/).
set -u
cd "$(dirname "$0")/.." || exit 2

secs=60
targets=""
while [ $# -gt 0 ]; do
	case "$1" in
	--short) secs=5 ;;
	--time)
		[ $# -ge 2 ] || { echo "ci/fuzz.sh: --time wants seconds" >&2; exit 2; }
		secs=$2
		shift
		;;
	-h | --help)
		sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	-*) echo "ci/fuzz.sh: unknown option $1" >&2; exit 2 ;;
	*) targets="$targets $1" ;;
	esac
	shift
done

CC=${FUZZ_CC:-clang}
if ! command -v "$CC" >/dev/null 2>&1; then
	echo "ci/fuzz.sh: $CC not found (Debian package clang)" >&2
	exit 2
fi
# -fno-sanitize-recover: a UBSan report must stop the run like a crash.
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CFLAGS="-g -O1 -std=gnu11 -D_GNU_SOURCE -Iinclude -Idaemon -Ishim"
OUT=build/fuzz

# What each target links beyond its own file: "sources | libraries".
needs()
{
	case "$1" in
	http1) echo "daemon/proto/http1.c daemon/proto/http1_head.c daemon/proto/http1_body.c |" ;;
	# daemon/config/ is the configuration parser, one file per section.
	policy) echo daemon/policy/compile.c daemon/policy/policy.c \
		daemon/config/*.c "daemon/util/spiffe.c | -lconfig" ;;
	detect) echo daemon/proto/http1*.c daemon/policy/compile.c \
		daemon/policy/policy.c daemon/config/*.c "daemon/util/spiffe.c | -lconfig" ;;
	spiffe) echo "daemon/util/spiffe.c |" ;;
	tls_sniff) echo "daemon/identity/tls.c daemon/util/spiffe.c | -lssl -lcrypto" ;;
	svid) echo "daemon/identity/tls.c daemon/util/spiffe.c | -lssl -lcrypto" ;;
	ctl) echo "daemon/control/ctl_parse.c |" ;;
	preamble) echo "shim/preamble.c |" ;;
	h2link) echo "daemon/transport/h2link.c daemon/util/clock.c | -lnghttp2" ;;
	h2) echo "daemon/proto/h2.c | -lnghttp2" ;;
	# handoff.c calls into the connection and listener code, which is the
	# rest of the daemon.
	handoff)
		for s in daemon/*.c daemon/*/*.c; do
			case "$s" in daemon/main.c | daemon/ctl/*) ;; *) printf '%s ' "$s" ;; esac
		done
		echo "| -luring -lconfig -lssl -lcrypto -lnghttp2 -lcares -lpthread -lm"
		;;
	*) return 1 ;;
	esac
}

# Compiles src once into build/fuzz/obj, again when it or a header changed.
obj()
{
	o="$OUT/obj/$(echo "$1" | sed 's/\.c$/.o/')"
	if [ ! -f "$o" ] || [ -n "$(find "$1" -newer "$o")" ] ||
		[ -n "$(find include daemon shim -name '*.h' -newer "$o" | head -n 1)" ]; then
		mkdir -p "$(dirname "$o")"
		# shellcheck disable=SC2086
		$CC $CFLAGS $SAN -fsanitize=fuzzer-no-link -c "$1" -o "$o" || return 1
	fi
	echo "$o"
}

build()
{
	name=$1
	spec=$(needs "$name") || {
		echo "no build rule for tests/fuzz/fuzz_$name.c: add it to needs() in ci/fuzz.sh"
		return 1
	}
	srcs=${spec%%|*}
	libs=${spec#*|}
	objs=""
	for s in $srcs; do
		o=$(obj "$s") || return 1
		objs="$objs $o"
	done
	# shellcheck disable=SC2086
	$CC $CFLAGS $SAN -fsanitize=fuzzer "tests/fuzz/fuzz_$name.c" $objs $libs \
		-o "$OUT/fuzz_$name"
}

if [ -z "$targets" ]; then
	for f in tests/fuzz/fuzz_*.c; do
		n=${f#tests/fuzz/fuzz_}
		targets="$targets ${n%.c}"
	done
fi

mkdir -p "$OUT/logs"
work=$(mktemp -d "${TMPDIR:-/tmp}/ldmesh-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

ntargets=0
crashes=0
failed=0
for name in $targets; do
	ntargets=$((ntargets + 1))
	log="$OUT/logs/$name.log"
	if ! build "$name" >"$OUT/logs/$name.build.log" 2>&1; then
		printf '%-12s BUILD FAILED (see %s)\n' "$name" "$OUT/logs/$name.build.log"
		tail -n 20 "$OUT/logs/$name.build.log" | sed 's/^/    /'
		failed=$((failed + 1))
		continue
	fi
	seeds="tests/fuzz/corpus/$name"
	mkdir -p "$work/$name" "$OUT/crashes/$name"
	[ -d "$seeds" ] || seeds=""
	# New inputs go to the first directory only: the seeds stay as they are.
	# shellcheck disable=SC2086
	"$OUT/fuzz_$name" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$OUT/crashes/$name/" \
		"$work/$name" $seeds >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	result=ok
	if [ "$rc" != 0 ]; then
		crashes=$((crashes + 1))
		input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
		result="CRASH (exit $rc) input ${input:-?} log $log"
		grep -m 3 -E 'ERROR: |runtime error|check failed|SUMMARY' "$log" | sed 's/^/    /'
	fi

	# Inputs that once crashed a parser, replayed one by one.
	reg="tests/fuzz/regressions/$name"
	nreg=0
	if [ -d "$reg" ] && [ -n "$(find "$reg" -type f)" ]; then
		nreg=$(find "$reg" -type f | wc -l)
		if ! "$OUT/fuzz_$name" -runs=1 "$reg"/* >"$OUT/logs/$name.regressions.log" 2>&1; then
			crashes=$((crashes + 1))
			bad=$(sed -n 's/^Running: //p' "$OUT/logs/$name.regressions.log" | tail -n 1)
			result="$result; REGRESSION ${bad:-?} log $OUT/logs/$name.regressions.log"
		fi
	fi
	printf '%-12s runs %-10s %3ss  regressions %-3s %s\n' "$name" "${runs:-?}" "$secs" \
		"$nreg" "$result"
done

echo "fuzz: $ntargets targets, $crashes crashes$([ "$failed" = 0 ] || echo ", $failed build failures")"
[ "$crashes" = 0 ] && [ "$failed" = 0 ]
