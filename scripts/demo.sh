#!/bin/bash
# The demo: builds ebsfs, starts the EBS emulator on loopback with four sample pairs, mounts,
# and shows a disaster-recovery session through plain shell commands, then unmounts.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

scripts/deps.sh build
[ -f build/build.ninja ] || meson setup build -Dwerror=true >/dev/null
meson compile -C build >/dev/null

work=$(mktemp -d /tmp/ebsfs-demo-XXXXXX)
mnt=$work/mnt
mkdir -p "$mnt"
emu_pid=""
daemon_pid=""
cleanup() {
	mountpoint -q "$mnt" 2>/dev/null && fusermount3 -u "$mnt"
	[ -n "$daemon_pid" ] && wait "$daemon_pid" 2>/dev/null || true
	[ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null && wait "$emu_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

/usr/bin/python3 tests/emulator/ebs_emulator.py --port 0 --port-file "$work/port" \
	--fixture tests/emulator/fixtures/demo.json --transition-delay 3 \
	--log "$work/emulator.log" 2>"$work/emulator.err" &
emu_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")

# The emulator's test key; a real mount takes credentials from the usual chain.
export ALIBABA_CLOUD_ACCESS_KEY_ID=testid ALIBABA_CLOUD_ACCESS_KEY_SECRET=testsecret
build/ebsfs "$mnt" -f -o "regions=cn-shanghai,cn-beijing,endpoint=http://127.0.0.1:$port" \
	2>"$work/ebsfs.log" &
daemon_pid=$!
for _ in $(seq 100); do mountpoint -q "$mnt" && break; sleep 0.1; done

step() {
	printf '\n\033[1m$ %s\033[0m\n' "$*"
	(cd "$mnt" && bash -c "$*") || printf '(exit status %d)\n' $?
}

echo "ebsfs mounted at $mnt over the emulator at 127.0.0.1:$port"
step 'find . -maxdepth 2 | sort'
step 'ls -l cn-shanghai/pair-cn-demo0000002'
step 'grep . */*/status'
p=cn-beijing/pair-cn-demo0000002
step "cat $p/name $p/status $p/site $p/source_region $p/destination_region"
step "jq -c '{Status, SourceRegion, DestinationRegion}' < $p/pair.json 2>/dev/null || cat $p/pair.json"
step "echo 1 > $p/reprotect && echo accepted"
step "cat $p/reprotect"
step "cat $p/status"
step "until [ \"\$(cat $p/status)\" = stopped ]; do sleep 1; done; cat $p/status $p/source_region"
q=cn-shanghai/pair-cn-demo0000001
step "cat $q/status; echo 1 > $q/reprotect"
step "cat $q/reprotect"
step "echo yes > $q/stop"
step "grep -v ' 0\$' .ebsfs/stats"
printf '\n\033[1m$ fusermount3 -u %s\033[0m\n' "$mnt"
fusermount3 -u "$mnt"
wait "$daemon_pid" || true
daemon_pid=""
printf '\nThe daemon'"'"'s audit trail:\n'
grep -E 'audit|refused' "$work/ebsfs.log" || true
