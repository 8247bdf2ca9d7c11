"""Bad input never reaches the API: every control file refuses anything but "1" (optionally
followed by one newline) written at offset 0 in one write, with EINVAL and no API call; bad
mount options are refused with a clear message, exit status 1 and no API call.

    EBSFS_BUILD_DIR=build /usr/bin/python3 -m pytest tests/system/test_bad_input.py -q
"""
import errno
import os
import subprocess

import pytest

from conftest import Emulator, bound, credentials_env, ebsfs_command, wait_for
from faultutil import control_write, errname, first_pair, mounts_at, mutating_calls, read_back

SH = "cn-shanghai"
CONTROL_FILES = ("reprotect", "failover", "start", "stop")

# label -> (bytes written, offset or None for a plain write at the file position 0)
BAD_WRITES = {
    "0": (b"0", None),
    "2": (b"2", None),
    "11": (b"11", None),
    "1 1": (b"1 1", None),
    "yes": (b"yes", None),
    " 1": (b" 1", None),
    "01": (b"01", None),
    "1\\r\\n": (b"1\r\n", None),
    "1\\n\\n": (b"1\n\n", None),
    "4 KiB of garbage": (bytes((i * 7 + 33) % 94 + 33 for i in range(4096)), None),
    "binary": (bytes(range(0x80, 0x100)), None),
    "NUL": (b"\0", None),
    "1 NUL": (b"1\0", None),
    "NUL 1": (b"\x001", None),
    "1 at offset 1": (b"1", 1),
    "1\\n at offset 4096": (b"1\n", 4096),
}


def control_paths(m, pair):
    paths = {name: m.path(SH, pair, name) for name in CONTROL_FILES}
    paths["refresh"] = m.path(".ebsfs", "refresh")
    return paths


@pytest.mark.parametrize("name", CONTROL_FILES + ("refresh",))
def test_bad_input_is_einval_and_makes_no_api_call(emulator, mount_factory, name):
    m = mount_factory(emulator, "cache_ttl=3600")
    pair = first_pair(m)
    path = control_paths(m, pair)[name]
    emulator.reset()
    wrong = {label: errname(control_write(path, data, offset))
             for label, (data, offset) in BAD_WRITES.items()}
    wrong = {label: got for label, got in wrong.items() if got != "EINVAL"}
    assert not wrong, f"expected EINVAL for every bad input, got {wrong}"
    # write(2) of nothing never reaches a FUSE filesystem: the kernel returns 0 itself
    assert control_write(path, b"") == 0
    assert emulator.counters()["total"] == 0
    assert m.stats()[f"control_writes_{name}_EINVAL"] == str(len(BAD_WRITES))
    if name != "refresh":
        assert read_back(path) == "", "a refused write leaves no outcome line"


@pytest.mark.parametrize("name", CONTROL_FILES + ("refresh",))
def test_write_split_in_two_acts_once_then_refuses_the_rest(emulator, mount_factory, name):
    m = mount_factory(emulator, "cache_ttl=3600")
    pair = first_pair(m)
    emulator.reset()
    fd = os.open(control_paths(m, pair)[name], os.O_WRONLY | os.O_TRUNC)
    try:
        try:
            os.write(fd, b"1")          # a whole request: the API is asked
        except OSError as e:
            assert e.errno == errno.EBUSY, "refused by the pair's status at most"
        calls = emulator.counters()["total"]
        assert calls >= 1
        with pytest.raises(OSError) as second:
            os.write(fd, b"\n")         # at offset 1
        assert second.value.errno == errno.EINVAL
    finally:
        os.close(fd)
    assert emulator.counters()["total"] == calls
    if name != "refresh":
        assert mutating_calls(emulator) == 1


# ---- mount options -------------------------------------------------------------------------

# (the -o option, what the error names); each with regions=cn-shanghai unless it sets them
BAD_OPTIONS = [
    ("cache_ttl=abc", "cache_ttl"), ("cache_ttl=-1", "cache_ttl"), ("timeout=0", "timeout"),
    ("timeout=601", "timeout"), ("retries=0", "retries"), ("retries=3x", "retries"),
    ("max_rps=0", "max_rps"), ("max_rps=nan", "max_rps"), ("signature=v2", "signature"),
    ("profile=../x", "profile"), ("ctl_group=no-such-group-ebsfs", "ctl_group"),
    ("ca_file=/nonexistent/ca.pem", "ca_file"),
    ("access_key_secret=testsecret", "secrets are never accepted"),
    ("access_key_id=testid", "secrets are never accepted"),
    ("security_token=token", "secrets are never accepted"),
    ("nosuchoption", "nosuchoption"), ("cache_ttl", "cache_ttl"), ("=1", "unknown option"),
    ("regions=", "regions"), ("regions=CN-SHANGHAI", "regions"),
    ("regions=cn_shanghai", "regions"), ("regions=../../etc", "regions"),
    ("regions=-cn", "regions"), ("regions=cn-shanghai-", "regions"), ("regions=c", "regions"),
    ("regions=" + "a" * 64, "regions"), ("regions=cn-shanghai,cn_beijing", "cn_beijing"),
    ("endpoint=ftp://127.0.0.1:21", "endpoint"), ("endpoint=file:///etc/passwd", "endpoint"),
    ("endpoint=127.0.0.1:8080", "endpoint"), ("endpoint=https://", "endpoint"),
    ("endpoint=http://10.0.0.1", "endpoint"), ("endpoint=http://example.com", "endpoint"),
    ("endpoint=http://{region}.example.com", "endpoint"),
    ("endpoint=http://127.0.0.1.nip.io", "endpoint"),
    ("endpoint=http://localhost.example.com", "endpoint"),
    ("endpoint=http://127.0.0.1@example.com", "endpoint"),
    ("endpoint=http://[::2]:80", "endpoint"), ("endpoint=http://[::ffff:127.0.0.1]", "endpoint"),
    ("endpoint=http://127.0.0.1:1/path", "endpoint"),
]


def run_refused(cmd, mountpoint):
    """Runs a mount that should be refused: (exit status, stderr). A mount that goes ahead
    instead is unmounted at once (exit status 0)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=credentials_env())
    wait_for(lambda: proc.poll() is not None or os.path.ismount(mountpoint),
             timeout=bound(20), what="ebsfs to exit or mount")
    if proc.poll() is None:
        subprocess.run(["fusermount3", "-u", mountpoint], check=True, timeout=30)
    return proc.wait(timeout=bound(20)), proc.stderr.read()


@pytest.fixture(scope="module")
def idle_emulator(tmp_path_factory):
    """One emulator that no refused mount may ever call."""
    emu = Emulator(str(tmp_path_factory.mktemp("emulator")), ["--regions", "cn-shanghai"])
    yield emu
    emu.stop()


@pytest.mark.parametrize("option,named", BAD_OPTIONS, ids=[o for o, _ in BAD_OPTIONS])
def test_bad_option_is_refused_before_any_api_call(idle_emulator, tmp_path, option, named):
    mountpoint = str(tmp_path)
    regions = None if option.startswith("regions=") else SH
    emulator = None if option.startswith("endpoint=") else idle_emulator
    status, stderr = run_refused(ebsfs_command(emulator, mountpoint, [option], regions=regions),
                                 mountpoint)
    assert mounts_at(mountpoint) == 0
    assert status == 1, stderr
    assert named in stderr, stderr
    assert "testsecret" not in stderr, "the refusal echoes the secret"
    assert idle_emulator.counters()["total"] == 0
