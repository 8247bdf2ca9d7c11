"""The namespace of DESIGN.md section 1 as users see it: find, ls -l, stat, du, cat.

Three regions, so that a pair (source regions[k % 3], destination regions[(k + 1) % 3]) shows
under exactly two of them and must not show under the third.
"""
import calendar
import json
import os
import re
import shutil
import stat
import time

import pytest

from conftest import CONTROL_FILES, META_FILES, STATE_FILES, bash, sh

REGIONS = ("cn-shanghai", "cn-beijing", "cn-hangzhou")
# Statuses the pairs are pinned to (pinned: no timed transition changes a record mid-test).
STATUSES = ("normal", "stopped", "failovered", "invalid", "syncing", "created")
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

# state file -> the API field it shows (DESIGN.md section 1, ebs-api.md 2.2.1)
FIELDS = {
    "status": "Status", "status_message": "StatusMessage", "site": "Site",
    "name": "PairName", "description": "Description",
    "source_disk_id": "SourceDiskId", "source_region": "SourceRegion",
    "source_zone_id": "SourceZoneId", "destination_disk_id": "DestinationDiskId",
    "destination_region": "DestinationRegion", "destination_zone_id": "DestinationZoneId",
    "primary_region": "PrimaryRegion", "primary_zone": "PrimaryZone",
    "standby_region": "StandbyRegion", "standby_zone": "StandbyZone",
    "rpo": "RPO", "bandwidth": "Bandwidth", "last_recover_point": "LastRecoverPoint",
    "create_time": "CreateTime", "expired_time": "ExpiredTime", "charge_type": "ChargeType",
    "enable_rtc": "EnableRtc", "replica_group_id": "ReplicaGroupId",
    "replica_group_name": "ReplicaGroupName", "resource_group_id": "ResourceGroupId",
}
TIME_FILES = ("last_recover_point", "create_time", "expired_time")


def iso(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds)) if seconds else ""


def expected_content(name, record):
    """What state file name must hold for the API record (progress excepted)."""
    if name == "tags":
        return "".join(f"{k}={v}\n" for k, v in
                       sorted((t["TagKey"], t["TagValue"]) for t in record["Tags"]))
    if name == "pair.json":
        raise AssertionError("pair.json is compared as JSON")
    value = record[FIELDS[name]]
    if name in TIME_FILES:
        value = iso(value)
    elif isinstance(value, bool):
        value = "true" if value else "false"
    return f"{value}\n"


@pytest.fixture
def emu(emulator_factory):
    e = emulator_factory("--regions", ",".join(REGIONS), "--pairs", "12",
                         "--transition-delay", "0.5")
    ids = sorted(pid for r in REGIONS for pid in e.view(r, "production"))
    for i, pair_id in enumerate(ids):
        e.set_pair(pair_id, status=STATUSES[i % len(STATUSES)])
    return e


@pytest.fixture
def views(emu):
    """(region, site) -> {pair id: record}, as the API answers; counters reset after."""
    out = {(r, s): emu.view(r, s) for r in REGIONS for s in ("production", "backup")}
    emu.reset()
    return out


@pytest.fixture
def mnt(emu, views, mount_factory):
    return mount_factory(emu, "cache_ttl=60", regions=",".join(REGIONS))


def region_records(views, region):
    """{pair id: record} of a region directory: production view first, as the daemon."""
    records = dict(views[(region, "backup")])
    records.update(views[(region, "production")])
    return records


def test_find_lists_every_region_pair_and_file(mnt, views, emu):
    expected = {mnt.mountpoint, mnt.path(".ebsfs")}
    expected |= {mnt.path(".ebsfs", f) for f in META_FILES}
    for region in REGIONS:
        expected.add(mnt.path(region))
        for pair_id in region_records(views, region):
            expected.add(mnt.path(region, pair_id))
            expected |= {mnt.path(region, pair_id, f) for f in STATE_FILES + CONTROL_FILES}

    found = sh(f"find {mnt.mountpoint}")
    assert found.returncode == 0, found.stderr
    assert sorted(found.stdout.splitlines()) == sorted(expected)
    # 12 pairs, each under its source and its destination region only
    for pair_id in {p for r in REGIONS for p in views[(r, "production")]}:
        record = emu.pair(pair_id)
        where = {r for r in REGIONS if os.path.isdir(mnt.path(r, pair_id))}
        assert where == {record["SourceRegion"], record["DestinationRegion"]}, pair_id


def test_find_costs_one_sweep_per_region_and_no_progress_call(mnt, emu):
    files = sh(f"find {mnt.mountpoint} -type f")
    assert files.returncode == 0, files.stderr
    assert len(files.stdout.splitlines()) == 3 + 3 * 8 * (len(STATE_FILES) + 4)
    counters = emu.counters()
    assert counters["calls"] == {"DescribeDiskReplicaPairs": 2 * len(REGIONS)}


def test_modes_and_owner_as_ls_shows_them(mnt, views):
    pair_id = sorted(views[("cn-beijing", "production")])[0]
    listing = sh(f"ls -ln {mnt.path('cn-beijing', pair_id)}")
    assert listing.returncode == 0, listing.stderr
    modes = {}
    for line in listing.stdout.splitlines()[1:]:
        mode, _, uid, gid, *_, name = line.split()
        modes[name] = mode
        assert (int(uid), int(gid)) == (os.getuid(), os.getgid()), line
    assert modes == {**{f: "-r--r--r--" for f in STATE_FILES},
                     **{f: "-rw-------" for f in CONTROL_FILES}}

    def mode_of(*parts):
        st = os.stat(mnt.path(*parts))
        assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
        return stat.filemode(st.st_mode)

    for d in ((), (".ebsfs",), ("cn-beijing",), ("cn-beijing", pair_id)):
        assert mode_of(*d) == "dr-xr-xr-x", d
    assert mode_of(".ebsfs", "stats") == "-r--r--r--"
    assert mode_of(".ebsfs", "version") == "-r--r--r--"
    assert mode_of(".ebsfs", "refresh") == "-rw-------"


def test_every_state_file_matches_the_api_record(mnt, views):
    for region in REGIONS:
        for pair_id, record in region_records(views, region).items():
            for name in STATE_FILES:
                if name in ("pair.json", "progress"):
                    continue
                content = mnt.read(region, pair_id, name)
                assert content == expected_content(name, record), (region, pair_id, name)
            assert json.loads(mnt.read(region, pair_id, "pair.json")) == record


def test_site_says_how_each_region_sees_the_pair(mnt, emu, views):
    for pair_id in views[("cn-shanghai", "production")]:
        record = emu.pair(pair_id)
        assert mnt.read(record["SourceRegion"], pair_id, "site") == "production\n"
        assert mnt.read(record["DestinationRegion"], pair_id, "site") == "backup\n"


def test_state_files_hold_one_line_and_st_size_is_its_length(mnt, views):
    region = "cn-hangzhou"
    for pair_id in region_records(views, region):
        for name in STATE_FILES:
            path = mnt.path(region, pair_id, name)
            with open(path, "rb") as f:
                content = f.read()
            assert os.stat(path).st_size == len(content), path
            if name == "tags":
                lines = content.decode().splitlines(keepends=True)
                assert all(re.fullmatch(r"[^=\n]+=[^\n]*\n", line) for line in lines), content
                assert lines == sorted(lines)
            else:
                assert content.endswith(b"\n") and content.count(b"\n") == 1, (path, content)


def test_timestamps_are_iso8601_utc(mnt, views):
    seen = 0
    for pair_id, record in region_records(views, "cn-shanghai").items():
        for name in TIME_FILES:
            value = mnt.read("cn-shanghai", pair_id, name).rstrip("\n")
            if record[FIELDS[name]]:
                assert ISO_UTC.match(value), (pair_id, name, value)
                assert calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ")) == \
                    record[FIELDS[name]]
                seen += 1
            else:
                assert value == "", (pair_id, name)
    assert seen > 0


def test_values_are_verbatim_but_stay_on_one_line(mnt, emu, views):
    pair_id = sorted(views[("cn-shanghai", "production")])[0]
    emu.set_pair(pair_id, status="brand_new_status", Description="first line\nsecond\tline")
    assert bash(f"echo 1 > {mnt.path('.ebsfs', 'refresh')}").returncode == 0
    assert mnt.read("cn-shanghai", pair_id, "status") == "brand_new_status\n"
    assert mnt.read("cn-shanghai", pair_id, "description") == "first line second line\n"
    assert json.loads(mnt.read("cn-shanghai", pair_id, "pair.json"))["Description"] == \
        "first line\nsecond\tline"


def test_create_time_in_milliseconds_is_detected(emulator_factory, mount_factory):
    emu = emulator_factory("--regions", "cn-shanghai,cn-beijing", "--pairs", "4",
                           "--create-time-ms")
    records = emu.view("cn-shanghai", "production")
    mnt = mount_factory(emu)
    for pair_id, record in records.items():
        assert record["CreateTime"] > 10**12
        assert mnt.read("cn-shanghai", pair_id, "create_time") == \
            iso(record["CreateTime"] // 1000) + "\n"


def test_progress_is_a_percent_fetched_only_when_read(mnt, emu, views):
    synced, syncing = sorted(views[("cn-shanghai", "production")])[:2]
    emu.set_pair(synced, status="normal")
    emu.set_pair(syncing, status="syncing")  # the emulator says 50% while no sync is timed
    emu.reset()
    assert sh(f"find {mnt.mountpoint} -type f").returncode == 0
    assert emu.calls("DescribeDiskReplicaPairProgress") == 0

    assert mnt.read("cn-shanghai", synced, "progress") == "100\n"
    assert mnt.read("cn-shanghai", syncing, "progress") == "50\n"
    assert emu.calls("DescribeDiskReplicaPairProgress") == 2
    # cached for cache_ttl, like every other value
    assert mnt.read("cn-shanghai", synced, "progress") == "100\n"
    assert emu.calls("DescribeDiskReplicaPairProgress") == 2
    progress = emu.requests("DescribeDiskReplicaPairProgress")
    assert {(e["region"], e["params"]["ReplicaPairId"]) for e in progress} == \
        {("cn-shanghai", synced), ("cn-shanghai", syncing)}


def test_meta_files(mnt):
    assert re.fullmatch(r"ebsfs \d+\.\d+\.\d+\S*\n", mnt.read(".ebsfs", "version"))
    path = mnt.path(".ebsfs", "stats")
    size = os.stat(path).st_size
    text = mnt.read(".ebsfs", "stats")
    assert size == len(text)
    for line in text.splitlines():
        assert re.fullmatch(r"[A-Za-z0-9_.-]+ \S+", line), line
    stats = mnt.stats()
    assert stats["regions"] == "3"
    for name in ("api_calls_DescribeDiskReplicaPairs_ok", "api_retries", "cache_hits",
                 "cache_misses", "control_writes_reprotect_EBUSY", "control_writes_refresh_ok",
                 "region.cn-hangzhou.sweeps_ok", "region.cn-hangzhou.last_sweep_outcome"):
        assert name in stats, name
    assert mnt.read(".ebsfs", "refresh") == ""


def test_ls_la_stat_du_behave(mnt, views):
    pair_id = sorted(views[("cn-shanghai", "production")])[0]
    pair_dir = mnt.path("cn-shanghai", pair_id)
    listing = bash(f"ls -la {pair_dir}")
    assert listing.returncode == 0, listing
    names = [line.split()[-1] for line in listing.stdout.splitlines()[1:]]
    assert sorted(names) == sorted((".", "..") + STATE_FILES + CONTROL_FILES)

    st = bash(f"stat -c '%F %a %s' {pair_dir} {pair_dir}/status {pair_dir}/stop")
    assert st.returncode == 0, st
    status_len = len(mnt.read("cn-shanghai", pair_id, "status"))
    assert st.stdout.splitlines() == ["directory 555 0", f"regular file 444 {status_len}",
                                      "regular empty file 600 0"]

    total = sum(len(mnt.read("cn-shanghai", pair_id, f).encode())
                for f in STATE_FILES + CONTROL_FILES)
    du = bash(f"du -sb {pair_dir}")
    assert du.returncode == 0, du
    assert du.stdout.split() == [str(total), pair_dir]
    du_all = bash(f"du -s {mnt.mountpoint}")
    assert du_all.returncode == 0, du_all


@pytest.mark.skipif(not shutil.which("tree"), reason="tree is not installed")
def test_tree_behaves(mnt, views):
    out = bash(f"tree -a {mnt.mountpoint}")
    assert out.returncode == 0, out
    pairs = sum(len(region_records(views, r)) for r in REGIONS)
    assert out.stdout.splitlines()[-1] == \
        f"{4 + pairs} directories, {3 + pairs * (len(STATE_FILES) + 4)} files"
