#!/bin/sh
# Builds ebsfs with AddressSanitizer and UndefinedBehaviorSanitizer in build-asan and runs the
# system suite against it. A sanitizer report in a daemon's log fails the test that caused it
# (tests/system/conftest.py). Arguments go to pytest (default: the whole of tests/system).
set -eu

cd "$(dirname "$0")/.."

if [ ! -d build-asan ]; then
	meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
fi
meson compile -C build-asan

export EBSFS_BUILD_DIR=build-asan
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Sanitized code is slower: stretch the suite's time bounds (not its timeouts).
export EBSFS_TIME_SCALE="${EBSFS_TIME_SCALE:-2}"

[ $# -gt 0 ] || set -- tests/system
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider "$@"
