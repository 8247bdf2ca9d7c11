#!/bin/bash
# A mount session under valgrind memcheck: find, reads of every file of a few pairs, control
# writes (accepted, refused, bad input), a refresh, an unmount. Fails on any memcheck error or
# definite leak. Uses the build in $EBSFS_BUILD_DIR (default: build).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${EBSFS_BUILD_DIR:-build}
. scripts/session.sh
session_start valgrind
start_emulator --fixture tests/emulator/fixtures/demo.json --pairs 40 --transition-delay 0.2

ALIBABA_CLOUD_ACCESS_KEY_ID=testid ALIBABA_CLOUD_ACCESS_KEY_SECRET=testsecret \
	valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \
	--errors-for-leak-kinds=definite --log-file="$work/valgrind.log" \
	"$build/ebsfs" "$mnt" -f -o "regions=cn-shanghai,cn-beijing,endpoint=http://127.0.0.1:$port,cache_ttl=1" \
	2>"$work/ebsfs.log" &
daemon_pid=$!
wait_mounted || { cat "$work/ebsfs.log"; exit 1; }

p=$mnt/cn-beijing/pair-cn-demo0000002
find "$mnt" -type f | wc -l
cat "$mnt"/cn-shanghai/pair-cn-demo000000*/* >/dev/null
echo 1 >"$p/reprotect"
cat "$p/reprotect" "$p/status"
echo 1 >"$mnt/cn-shanghai/pair-cn-demo0000001/reprotect" 2>/dev/null && exit 1
echo nonsense >"$mnt/cn-shanghai/pair-cn-demo0000001/stop" 2>/dev/null && exit 1
echo 1 >"$mnt/.ebsfs/refresh"
sleep 1.5
cat "$mnt/.ebsfs/stats" >/dev/null
fusermount3 -u "$mnt"
status=0
wait "$daemon_pid" || status=$?
daemon_pid=""
if [ "$status" -ne 0 ] || [ -s "$work/valgrind.log" ]; then
	echo "valgrind found problems (exit $status):"
	cat "$work/valgrind.log"
	exit 1
fi
echo "valgrind: no errors, no definite leaks"
