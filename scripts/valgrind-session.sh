#!/bin/bash
# A mount session under valgrind memcheck: find, reads of every file of a few pairs, control
# writes (accepted, refused, bad input), a refresh, an unmount. Fails on any memcheck error or
# definite leak. Uses the build in $EBSFS_BUILD_DIR (default: build).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${EBSFS_BUILD_DIR:-build}
work=$(mktemp -d /tmp/ebsfs-valgrind-XXXXXX)
mnt=$work/mnt
mkdir -p "$mnt"
emu_pid=""
vg_pid=""
cleanup() {
	mountpoint -q "$mnt" 2>/dev/null && fusermount3 -u "$mnt"
	[ -n "$vg_pid" ] && wait "$vg_pid" 2>/dev/null
	[ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null && wait "$emu_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

/usr/bin/python3 tests/emulator/ebs_emulator.py --port 0 --port-file "$work/port" \
	--fixture tests/emulator/fixtures/demo.json --pairs 40 --transition-delay 0.2 \
	2>"$work/emulator.err" &
emu_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")

ALIBABA_CLOUD_ACCESS_KEY_ID=testid ALIBABA_CLOUD_ACCESS_KEY_SECRET=testsecret \
	valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \
	--errors-for-leak-kinds=definite --log-file="$work/valgrind.log" \
	"$build/ebsfs" "$mnt" -f -o "regions=cn-shanghai,cn-beijing,endpoint=http://127.0.0.1:$port,cache_ttl=1" \
	2>"$work/ebsfs.log" &
vg_pid=$!
for _ in $(seq 300); do mountpoint -q "$mnt" && break; sleep 0.1; done
mountpoint -q "$mnt" || { echo "the mount did not come up"; cat "$work/ebsfs.log"; exit 1; }

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
wait "$vg_pid" || status=$?
vg_pid=""
if [ "$status" -ne 0 ] || [ -s "$work/valgrind.log" ]; then
	echo "valgrind found problems (exit $status):"
	cat "$work/valgrind.log"
	exit 1
fi
echo "valgrind: no errors, no definite leaks"
