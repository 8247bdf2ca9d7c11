"""Mount options (DESIGN.md section 2): a bad option stops the mount with a clear message,
exit code 1 and no API call; the SOURCE MOUNTPOINT form of mount.fuse3 and fstab works; the
V1 signature works end to end."""
import os

import pytest

from conftest import (ebsfs_binary, ebsfs_command, echo_1, run_ebsfs, sanitizer_reports,
                      wrapper)

SH = "cn-shanghai"

BAD = [
    ("regions=Not_A_Region", "regions: 'Not_A_Region' is not a region id"),
    ("endpoint=ftp://x", "endpoint: 'ftp://x' is not an http:// or https:// URL"),
    ("endpoint=http://10.0.0.1", "plain http:// is allowed only to a loopback host"),
    ("cache_ttl=abc", "cache_ttl: 'abc' is not a whole number"),
    ("timeout=0", "timeout: '0' is not a whole number from 1"),
    ("retries=99", "retries: '99' is not a whole number from 1 to 10"),
    ("max_rps=0", "max_rps: '0' is not a rate above 0"),
    ("signature=v2", "signature: 'v2' is neither v3 nor v1"),
    ("ctl_group=nosuchgroup", "ctl_group: no group named 'nosuchgroup'"),
    ("ca_file=/nonexistent/ca.pem", "ca_file: cannot read '/nonexistent/ca.pem'"),
    ("access_key_secret=xyz", "secrets are never accepted as options"),
    ("access_key_id=testid", "secrets are never accepted as options"),
    ("no_such_option=1", "unknown option"),
]


def refused_mount(emulator, tmp_path, option):
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    done = run_ebsfs(ebsfs_command(emulator, str(mountpoint), (option,)))
    assert not os.path.ismount(mountpoint)
    assert sanitizer_reports(done.stderr) == []
    assert emulator.counters()["total"] == 0
    return done


@pytest.mark.parametrize("option, message", BAD, ids=[o.split("=")[0] for o, _ in BAD])
def test_bad_option_stops_the_mount(emulator, tmp_path, option, message):
    done = refused_mount(emulator, tmp_path, option)
    assert done.returncode == 1, done
    assert message in done.stderr, done.stderr
    assert "xyz" not in done.stderr  # a secret given as an option is not echoed


def test_bad_region_later_in_the_list_is_named_as_a_region(emulator, tmp_path):
    done = refused_mount(emulator, tmp_path, "regions=cn-shanghai,Not_A_Region")
    assert done.returncode == 1, done
    assert "regions: 'Not_A_Region' is not a region id" in done.stderr, done.stderr


def test_no_mount_point_is_a_usage_error(emulator):
    done = run_ebsfs(wrapper() + [ebsfs_binary(), "-f", "-o", f"endpoint={emulator.url}"])
    assert done.returncode == 1, done
    assert "no mount point" in done.stderr
    assert emulator.counters()["total"] == 0


def test_source_mountpoint_form(emulator, mount_factory):
    pair_id = emulator.source_pairs(SH)[0]
    mnt = mount_factory(emulator, source="ebsfs")
    with open("/proc/self/mounts") as f:
        entry = [line.split() for line in f if line.split()[1] == mnt.mountpoint]
    assert [e[:3] for e in entry] == [["ebsfs", mnt.mountpoint, "fuse.ebsfs"]]
    assert "default_permissions" in entry[0][3]
    assert mnt.read(SH, pair_id, "site") == "production\n"


def test_signature_v1_end_to_end(emulator, mount_factory):
    pair_id = emulator.source_pairs(SH, status="normal")[0]
    emulator.reset()
    mnt = mount_factory(emulator, "signature=v1")
    assert mnt.read(SH, pair_id, "status") == "normal\n"
    assert mnt.read(SH, pair_id, "progress") == "100\n"
    wrote = echo_1(mnt.path(SH, pair_id, "stop"))
    assert wrote.returncode == 0, wrote
    assert emulator.applied("StopDiskReplicaPair") == 1
    log = emulator.requests()
    assert {e["action"] for e in log} == {"DescribeDiskReplicaPairs", "StopDiskReplicaPair",
                                          "DescribeDiskReplicaPairProgress"}
    assert {(e["sig"], e["status"]) for e in log} == {("v1", 200)}


def test_signature_v3_is_the_default(emulator, mount_factory):
    pair_id = emulator.source_pairs(SH)[0]
    emulator.reset()
    mnt = mount_factory(emulator)
    mnt.read(SH, pair_id, "status")
    assert {(e["sig"], e["status"]) for e in emulator.requests()} == {("v3", 200)}
