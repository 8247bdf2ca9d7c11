#!/bin/bash
# The demo: builds ebsfs, starts the EBS emulator on loopback with four sample pairs, mounts,
# and shows a disaster-recovery session through plain shell commands, then unmounts.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh build
[ -f build/build.ninja ] || meson setup build -Dwerror=true >/dev/null
meson compile -C build >/dev/null

. scripts/session.sh
session_start demo
start_emulator --fixture tests/emulator/fixtures/demo.json --transition-delay 3 \
	--log "$work/emulator.log"

# The emulator's test key; a real mount takes credentials from the usual chain.
export ALIBABA_CLOUD_ACCESS_KEY_ID=testid ALIBABA_CLOUD_ACCESS_KEY_SECRET=testsecret
build/ebsfs "$mnt" -f -o "regions=cn-shanghai,cn-beijing,endpoint=http://127.0.0.1:$port" \
	2>"$work/ebsfs.log" &
daemon_pid=$!
wait_mounted

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
