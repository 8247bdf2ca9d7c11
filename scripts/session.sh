# Sourced by demo.sh and valgrind-session.sh: a work directory with a mount point, the EBS
# emulator on loopback, and the cleanup both need (unmount, then stop what was started, by PID).
#   session_start NAME            makes $work and $mnt, arms the cleanup
#   start_emulator ARGS...        starts the emulator, sets $port
#   wait_mounted                  waits for $mnt to be a mount point, fails if it never is
# A script that starts the daemon sets $daemon_pid so the cleanup waits for it.

session_start() {
	work=$(mktemp -d "/tmp/ebsfs-$1-XXXXXX")
	mnt=$work/mnt
	mkdir -p "$mnt"
	emu_pid=""
	daemon_pid=""
	trap session_cleanup EXIT
}

session_cleanup() {
	if mountpoint -q "$mnt" 2>/dev/null; then fusermount3 -u "$mnt"; fi
	if [ -n "$daemon_pid" ]; then wait "$daemon_pid" 2>/dev/null || true; fi
	if [ -n "$emu_pid" ]; then
		kill "$emu_pid" 2>/dev/null || true
		wait "$emu_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}

start_emulator() {
	/usr/bin/python3 tests/emulator/ebs_emulator.py --port 0 --port-file "$work/port" "$@" \
		2>"$work/emulator.err" &
	emu_pid=$!
	for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
	port=$(cat "$work/port")
}

wait_mounted() {
	for _ in $(seq 300); do mountpoint -q "$mnt" && return 0; sleep 0.1; done
	echo "the mount did not come up" >&2
	return 1
}
