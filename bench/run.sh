#!/bin/bash
# ebsfs benchmarks, one command: release build, emulators, mounts, every figure of
# docs/performance.md, a table, then cleanup (bench.py stops what it started by PID,
# unmounts with fusermount3 -u and removes its temporary directories, even when interrupted).
#
#     bench/run.sh [--quick] [--json FILE] [--only economy,read,tree,memory,control,notify]
#
# Needs /dev/fuse and fusermount3; traffic stays on 127.0.0.1. About 4 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f build-release/build.ninja ]; then
	meson setup build-release --buildtype=release >/dev/null
fi
if ! out=$(meson compile -C build-release 2>&1); then
	printf '%s\n' "$out"
	echo "bench: the release build failed" >&2
	exit 1
fi

# bench.py bounds itself (signal.alarm); this outer limit only catches a wedged interpreter.
exec timeout --foreground --kill-after=60 1800 /usr/bin/python3 bench/bench.py --build-dir build-release "$@"
