#!/bin/bash
# The whole test suite, as CI runs it: unit tests (cmocka) and lint, the emulator's own tests,
# the EBS client against the emulator, the filesystem through real mounts, the same mounts
# under ASan+UBSan, a valgrind session, and a bounded fuzz run. Exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh test || exit 1

failed=()
run() {
	local name=$1
	shift
	printf '\n=== %s\n' "$name"
	if "$@"; then
		printf '=== %s: ok\n' "$name"
	else
		printf '=== %s: FAILED\n' "$name"
		failed+=("$name")
	fi
}

build() {
	[ -f build/build.ninja ] || meson setup build -Dwerror=true >/dev/null || return 1
	meson compile -C build
}

pytest_suite() {
	EBSFS_BUILD_DIR=build /usr/bin/python3 -m pytest tests/system -q -p no:cacheprovider "$@"
}

run build build || { echo "the build failed"; exit 1; }
run "unit tests and lint" meson test -C build --print-errorlogs
run "system tests" pytest_suite
# Under the sanitizers: every suite that runs the daemon or the C client (the emulator's own
# tests and the packaging tests add nothing there).
run "system tests under ASan+UBSan" scripts/run-asan-suite.sh -m "not soak" \
	tests/system/test_fs_tree.py tests/system/test_fs_cache.py tests/system/test_fs_control.py \
	tests/system/test_fs_errors.py tests/system/test_fs_options.py \
	tests/system/test_bad_input.py tests/system/test_ebs_api.py
run "valgrind mount session" scripts/valgrind-session.sh
run "fuzzing" scripts/fuzz.sh "${EBSFS_FUZZ_SECONDS:-15}"

echo
if [ ${#failed[@]} -gt 0 ]; then
	echo "FAILED: ${failed[*]}"
	exit 1
fi
echo "all suites passed"
