#!/bin/sh
# Builds the libFuzzer targets (build-fuzz, clang, ASan + UBSan), replays every saved regression
# input, then fuzzes each target for SECONDS (default 20) from a scratch copy of its seed
# corpus, so tests/fuzz/corpus/ stays as committed. Prints the executions per target and the
# total; exits non-zero on any crash, leak, timeout or out-of-memory.
#
#   scripts/fuzz.sh [SECONDS]
#
# Environment: BUILD_DIR (default build-fuzz), FUZZ_TARGETS (default: all), CC (default clang).
# Crashing inputs are left in $BUILD_DIR/fuzz-artifacts/<target>/; copy the ones that matter to
# tests/fuzz/regressions/<target>/.
set -u

seconds=${1:-20}
case $seconds in
'' | *[!0-9]*)
	echo "usage: $0 [SECONDS]" >&2
	exit 2
	;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-build-fuzz}
case $build in
/*) ;;
*) build=$root/$build ;;
esac
targets=${FUZZ_TARGETS:-pairs_page creds pct control attrs}

cd "$root" || exit 2
if [ ! -f "$build/build.ninja" ]; then
	CC=${CC:-clang} meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined \
		-Db_lundef=false >"$build.setup.log" 2>&1 || {
		cat "$build.setup.log" >&2
		echo "fuzz.sh: meson setup failed" >&2
		exit 2
	}
	rm -f "$build.setup.log"
fi
meson compile -C "$build" >/dev/null || {
	meson compile -C "$build" >&2
	echo "fuzz.sh: build failed" >&2
	exit 2
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ebsfs-fuzz.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT INT TERM
artifacts=$build/fuzz-artifacts
failed=""
opts="-timeout=5 -rss_limit_mb=2048"

# 1. Every saved regression input, each run once.
for t in $targets; do
	dir=tests/fuzz/regressions/$t
	[ -d "$dir" ] || continue
	files=$(find "$dir" -type f ! -name '.*' | sort)
	[ -n "$files" ] || continue
	n=$(echo "$files" | wc -l)
	# shellcheck disable=SC2086 # one argument per file; names are ours, no blanks
	if "$build/tests/fuzz/fuzz_$t" $opts $files >"$tmp/replay-$t.log" 2>&1; then
		echo "replay $t: $n inputs ok"
	else
		echo "replay $t: FAILED" >&2
		grep -E "ERROR|SUMMARY|check failed|Running:" "$tmp/replay-$t.log" | tail -20 >&2
		failed="$failed $t(replay)"
	fi
done

# 2. Fuzzing, one target after the other.
total=0
for t in $targets; do
	work=$tmp/corpus-$t
	mkdir -p "$work" "$artifacts/$t"
	if [ -d "tests/fuzz/corpus/$t" ]; then
		cp -R "tests/fuzz/corpus/$t/." "$work/"
	fi
	log=$tmp/fuzz-$t.log
	dict=""
	[ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
	# shellcheck disable=SC2086
	"$build/tests/fuzz/fuzz_$t" $opts $dict -max_total_time="$seconds" -print_final_stats=1 \
		-artifact_prefix="$artifacts/$t/" "$work" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9][0-9]*\).*/\1/p' "$log" | tail -1)
	execs=${execs:-0}
	total=$((total + execs))
	if [ $rc -eq 0 ]; then
		printf '%-12s %12s executions  ok\n' "$t" "$execs"
	else
		printf '%-12s %12s executions  FAILED (exit %d)\n' "$t" "$execs" "$rc" >&2
		grep -E "ERROR|SUMMARY|check failed|Test unit written" "$log" | tail -20 >&2
		failed="$failed $t"
	fi
done
printf '%-12s %12s executions\n' total "$total"

if [ -n "$failed" ]; then
	echo "fuzz.sh: failures:$failed (inputs in $artifacts)" >&2
	exit 1
fi
exit 0
