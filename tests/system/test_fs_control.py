"""Control files (DESIGN.md section 1): `echo 1 > reprotect` and friends, the region each
action is sent to, the outcome line, the audit trail, every row of the errno table, and
writers racing on one file."""
import calendar
import errno
import os
import re
import threading
import time

import pytest

from conftest import (assert_fails, bash, bound, credentials_env, echo_1, wait_for,
                      write_once)

SH, BJ = "cn-shanghai", "cn-beijing"
STAMP = r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"
OK_LINE = re.compile(STAMP + r" ok request_id=(\S+)\n")
ERROR_LINE = re.compile(STAMP + r" error ([A-Za-z.]+): (.*) request_id=(\S+)\n")
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
ACTIONS = {"reprotect": "ReprotectDiskReplicaPair", "failover": "FailoverDiskReplicaPair",
           "start": "StartDiskReplicaPair", "stop": "StopDiskReplicaPair"}


def recent(stamp):
    """The outcome line's time is the time of the write, in UTC."""
    t = calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))
    return abs(time.time() - t) < 60


def pair_in(emu, status):
    """A pair with its source in cn-shanghai (destination cn-beijing), forced into status."""
    pair_id = emu.source_pairs(SH)[0]
    emu.set_pair(pair_id, status=status)
    return pair_id


def outcome(mnt, region, pair_id, name):
    return mnt.read(region, pair_id, name)


def audit_lines(mnt, action):
    return [line for line in mnt.output().splitlines()
            if "audit:" in line and f"action={action}" in line]


def the_call(emu, action):
    """The one request of action in the emulator's log."""
    calls = emu.requests(action)
    assert len(calls) == 1, calls
    return calls[0]


@pytest.fixture
def loaded(emulator, mount_factory):
    """mount(*options) -> a mount with cn-shanghai and cn-beijing loaded, counters reset."""
    def mount(*options, **kwargs):
        mnt = mount_factory(emulator, *options, **kwargs)
        for region in (SH, BJ):
            assert bash(f"ls {mnt.path(region)}").returncode == 0
        emulator.reset()
        return mnt
    return mount


# ---- an accepted action -----------------------------------------------------------------

def test_reprotect_under_the_source_region_goes_to_the_destination(emulator, loaded):
    pair_id = pair_in(emulator, "failovered")
    mnt = loaded("cache_ttl=60")
    assert outcome(mnt, SH, pair_id, "reprotect") == ""

    wrote = echo_1(mnt.path(SH, pair_id, "reprotect"))
    assert (wrote.returncode, wrote.stderr) == (0, ""), wrote
    call = the_call(emulator, "ReprotectDiskReplicaPair")
    assert call["region"] == BJ  # the pair's DestinationRegion, not the directory's
    assert call["params"]["ReplicaPairId"] == pair_id
    assert UUID4.fullmatch(call["client_token"])
    assert (call["status"], emulator.applied("ReprotectDiskReplicaPair")) == (200, 1)

    # no waiting for cache_ttl (60 s): both directories show the transition at once
    assert mnt.read(SH, pair_id, "status") == "reprotecting\n"
    assert mnt.read(BJ, pair_id, "status") == "reprotecting\n"

    line = outcome(mnt, SH, pair_id, "reprotect")
    stamp, request_id = OK_LINE.fullmatch(line).groups()
    assert recent(stamp) and request_id == call["request_id"]
    assert os.stat(mnt.path(SH, pair_id, "reprotect")).st_size == len(line)
    assert outcome(mnt, SH, pair_id, "failover") == ""

    [audit] = audit_lines(mnt, "ReprotectDiskReplicaPair")
    assert f"audit: uid=0 pid={wrote.pid} comm=bash region={SH} pair={pair_id} " \
           f"action=ReprotectDiskReplicaPair client_token={call['client_token']} " \
           f"request_id={request_id} outcome=ok" in audit
    stats = mnt.stats()
    assert stats["control_writes_reprotect_ok"] == "1"
    assert stats["api_calls_ReprotectDiskReplicaPair_ok"] == "1"


def test_a_full_dr_cycle(emulator, loaded):
    """normal -> failover -> failovered -> reprotect -> stopped (reversed) -> start -> normal."""
    pair_id = pair_in(emulator, "normal")
    mnt = loaded("cache_ttl=1")

    def settles(region, status):
        wait_for(lambda: mnt.read(region, pair_id, "status") == status + "\n",
                 timeout=bound(0.5 + 1 + 3), interval=0.1, what=f"status {status}")

    def act(region, name, transient):
        wrote = echo_1(mnt.path(region, pair_id, name))
        assert wrote.returncode == 0, wrote
        assert mnt.read(region, pair_id, "status") == transient + "\n"
        assert OK_LINE.fullmatch(outcome(mnt, region, pair_id, name))
        return the_call(emulator, ACTIONS[name])

    assert act(SH, "failover", "failovering")["region"] == BJ
    settles(SH, "failovered")
    assert act(SH, "reprotect", "reprotecting")["region"] == BJ
    settles(BJ, "stopped")
    # reprotected in reverse: cn-beijing is the source now
    for region in (SH, BJ):
        assert mnt.read(region, pair_id, "source_region") == BJ + "\n"
        assert mnt.read(region, pair_id, "destination_region") == SH + "\n"
    assert mnt.read(SH, pair_id, "site") == "backup\n"
    assert mnt.read(BJ, pair_id, "site") == "production\n"
    act(BJ, "start", "syncing")
    settles(SH, "normal")
    assert emulator.counters()["applied"] == {
        "FailoverDiskReplicaPair": 1, "ReprotectDiskReplicaPair": 1, "StartDiskReplicaPair": 1}


# ---- input -------------------------------------------------------------------------------

def test_only_1_at_offset_0_is_accepted(emulator, loaded):
    pair_id = pair_in(emulator, "normal")
    mnt = loaded()
    path = mnt.path(SH, pair_id, "stop")
    refused = ["2", "11", "1\n\n", "0", "yes", "1 ", " 1", "\n", "1\r\n", "true\n"]
    for text in refused:
        assert write_once(path, text) == errno.EINVAL, text
    assert_fails(bash(f"printf 1 | dd of={path} bs=1 seek=1 conv=notrunc status=none"),
                 errno.EINVAL)
    truncated = bash(f": > {path}")  # open with O_TRUNC and no write: nothing to do
    assert truncated.returncode == 0, truncated
    assert emulator.counters()["total"] == 0
    assert outcome(mnt, SH, pair_id, "stop") == ""
    assert mnt.stats()["control_writes_stop_EINVAL"] == str(len(refused) + 1)
    assert "no API call" in mnt.output()

    accepted = bash(f"printf 1 > {path}")  # the newline is optional
    assert accepted.returncode == 0, accepted
    assert emulator.applied("StopDiskReplicaPair") == 1


# ---- the errno table ---------------------------------------------------------------------

def assert_outcome(mnt, pair_id, name, err, code):
    """The write failed with err, the outcome line names code, and the stats counted it."""
    line = outcome(mnt, SH, pair_id, name)
    match = ERROR_LINE.fullmatch(line)
    assert match and match.group(2) == code, line
    assert mnt.stats()[f"control_writes_{name}_{errno.errorcode[err]}"] == "1"
    return match


def test_action_the_status_does_not_allow_is_ebusy(emulator, loaded):
    pair_id = pair_in(emulator, "normal")
    mnt = loaded("cache_ttl=60")
    wrote = echo_1(mnt.path(SH, pair_id, "reprotect"))
    assert_fails(wrote, errno.EBUSY)
    match = assert_outcome(mnt, pair_id, "reprotect", errno.EBUSY,
                           "OperationDenied.InvalidStatus")
    assert match.group(3).endswith("(status: normal)"), match.group(0)
    call = the_call(emulator, "ReprotectDiskReplicaPair")
    assert call["region"] == BJ and match.group(4) == call["request_id"]
    assert emulator.applied("ReprotectDiskReplicaPair") == 0
    [audit] = audit_lines(mnt, "ReprotectDiskReplicaPair")
    assert re.search(r" outcome=EBUSY api_region=\S+$", audit), audit


def test_status_named_is_the_current_one_not_the_cached_one(emulator, loaded):
    pair_id = pair_in(emulator, "failovered")
    mnt = loaded("cache_ttl=60")
    assert mnt.read(SH, pair_id, "status") == "failovered\n"
    emulator.set_pair(pair_id, status="stopped")  # changed behind the cache's back
    assert_fails(echo_1(mnt.path(SH, pair_id, "reprotect")), errno.EBUSY)
    line = outcome(mnt, SH, pair_id, "reprotect")
    assert "(status: stopped)" in line, line
    assert mnt.read(SH, pair_id, "status") == "stopped\n"


def test_key_without_permission_is_eacces(emulator_factory, mount_factory):
    emu = emulator_factory("--regions", f"{SH},{BJ}", "--pairs", "4",
                           "--ak-denied", "deniedid:deniedsecret")
    pair_id = pair_in(emu, "normal")
    env = credentials_env({"ALIBABA_CLOUD_ACCESS_KEY_ID": "deniedid",
                           "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "deniedsecret"})
    mnt = mount_factory(emu, env=env)
    assert mnt.read(SH, pair_id, "status") == "normal\n"  # reading is allowed
    assert_fails(echo_1(mnt.path(SH, pair_id, "stop")), errno.EACCES)
    assert_outcome(mnt, pair_id, "stop", errno.EACCES, "Forbidden.Action")
    assert emu.applied("StopDiskReplicaPair") == 0


def test_refused_signature_is_eacces(emulator, loaded):
    pair_id = pair_in(emulator, "normal")
    mnt = loaded()
    emulator.add_key("testid", "rotated-secret")  # the key's secret changed in the cloud
    assert_fails(echo_1(mnt.path(SH, pair_id, "stop")), errno.EACCES)
    assert_outcome(mnt, pair_id, "stop", errno.EACCES, "SignatureDoesNotMatch")
    assert emulator.calls("StopDiskReplicaPair") == 1  # not retried


@pytest.mark.parametrize("key_id, secret, code", [
    ("testid", "wrong-secret", "SignatureDoesNotMatch"),
    ("nosuchkey", "testsecret", "InvalidAccessKeyId.NotFound")])
def test_mount_with_refused_credentials_reads_eio_and_says_why(emulator, mount_factory,
                                                               key_id, secret, code):
    env = credentials_env({"ALIBABA_CLOUD_ACCESS_KEY_ID": key_id,
                           "ALIBABA_CLOUD_ACCESS_KEY_SECRET": secret})
    mnt = mount_factory(emulator, "timeout=2", env=env)
    assert_fails(bash(f"ls {mnt.path(SH)}"), errno.EIO)
    assert mnt.stats()["region.cn-shanghai.last_sweep_outcome"] == code
    assert code in mnt.output()
    assert emulator.calls("DescribeDiskReplicaPairs") == 1  # refused credentials: no retry


def test_pair_deleted_after_listing_is_enoent(emulator, loaded):
    pair_id = pair_in(emulator, "normal")
    mnt = loaded("cache_ttl=60")
    emulator.delete_pair(pair_id)
    assert_fails(echo_1(mnt.path(SH, pair_id, "stop")), errno.ENOENT)
    assert_outcome(mnt, pair_id, "stop", errno.ENOENT, "NoSuchResource")

    assert echo_1(mnt.path(".ebsfs", "refresh")).returncode == 0
    for region in (SH, BJ):
        assert_fails(bash(f"cat {mnt.path(region, pair_id, 'status')}"), errno.ENOENT)
        assert pair_id not in bash(f"ls {mnt.path(region)}").stdout


def test_throttled_after_every_retry_is_eagain(emulator, loaded):
    pair_id = pair_in(emulator, "normal")
    mnt = loaded("retries=2")
    emulator.fault("throttle", "StopDiskReplicaPair", -1, 100)
    wrote = echo_1(mnt.path(SH, pair_id, "stop"))
    assert_fails(wrote, errno.EAGAIN)
    assert wrote.took < bound(3), wrote
    assert_outcome(mnt, pair_id, "stop", errno.EAGAIN, "Throttling.User")
    calls = emulator.requests("StopDiskReplicaPair")
    assert len(calls) == 2 and len({c["client_token"] for c in calls}) == 1


def test_hung_api_is_etimedout_within_the_timeout(emulator, loaded):
    pair_id = pair_in(emulator, "normal")
    mnt = loaded("timeout=2", "retries=3")
    emulator.fault("hang", "StopDiskReplicaPair", -1)
    wrote = echo_1(mnt.path(SH, pair_id, "stop"))
    assert_fails(wrote, errno.ETIMEDOUT)
    assert wrote.took < 2 + bound(1.5), wrote  # timeout covers the retries too
    line = outcome(mnt, SH, pair_id, "stop")
    assert ERROR_LINE.fullmatch(line), line
    assert mnt.stats()["control_writes_stop_ETIMEDOUT"] == "1"


def test_server_error_after_every_retry_is_eio(emulator, loaded):
    pair_id = pair_in(emulator, "normal")
    mnt = loaded("retries=2")
    emulator.fault("http500", "StopDiskReplicaPair", -1)
    assert_fails(echo_1(mnt.path(SH, pair_id, "stop")), errno.EIO)
    match = assert_outcome(mnt, pair_id, "stop", errno.EIO, "InternalError")
    calls = emulator.requests("StopDiskReplicaPair")
    assert len(calls) == 2 and len({c["client_token"] for c in calls}) == 1
    assert match.group(4) == calls[-1]["request_id"]


def test_malformed_answer_is_eio(emulator, loaded):
    pair_id = pair_in(emulator, "normal")
    mnt = loaded()
    emulator.fault("malformed", "StopDiskReplicaPair", -1)
    assert_fails(echo_1(mnt.path(SH, pair_id, "stop")), errno.EIO)
    assert ERROR_LINE.fullmatch(outcome(mnt, SH, pair_id, "stop"))
    assert mnt.stats()["control_writes_stop_EIO"] == "1"
    assert emulator.applied("StopDiskReplicaPair") == 0


def test_malformed_answer_still_names_its_request_id(emulator, loaded):
    pair_id = pair_in(emulator, "normal")
    mnt = loaded()
    emulator.fault("malformed", "StopDiskReplicaPair", 1)
    assert_fails(echo_1(mnt.path(SH, pair_id, "stop")), errno.EIO)
    match = ERROR_LINE.fullmatch(outcome(mnt, SH, pair_id, "stop"))
    assert match.group(4) == the_call(emulator, "StopDiskReplicaPair")["request_id"]


def test_answer_lost_after_the_action_is_retried_with_the_same_token(emulator, loaded):
    pair_id = pair_in(emulator, "normal")
    mnt = loaded()
    emulator.fault("drop_after_action", "StopDiskReplicaPair", 1)
    wrote = echo_1(mnt.path(SH, pair_id, "stop"))
    assert wrote.returncode == 0, wrote
    calls = emulator.requests("StopDiskReplicaPair")
    # The first attempt acted and lost its answer; libcurl may resend it unchanged on a fresh
    # connection (refused: SignatureNonceUsed) before the daemon signs a new attempt.
    assert len(calls) >= 2 and len({c["client_token"] for c in calls}) == 1
    assert calls[-1]["status"] == 200
    assert emulator.applied("StopDiskReplicaPair") == 1
    assert mnt.read(SH, pair_id, "status") == "stopping\n"


# ---- racing writers ------------------------------------------------------------------------

def race(paths):
    """echo 1 > path, one writer per path, all at once; returns their results."""
    barrier = threading.Barrier(len(paths))
    results = [None] * len(paths)

    def writer(i):
        barrier.wait()
        results[i] = echo_1(paths[i])

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(len(paths))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_two_writers_racing_on_one_file_make_one_call(emulator, loaded):
    two_writers_make_one_call(emulator, loaded, (SH, SH))


def test_two_writers_racing_under_both_region_dirs_make_one_call(emulator, loaded):
    two_writers_make_one_call(emulator, loaded, (SH, BJ))


def two_writers_make_one_call(emulator, loaded, dirs):
    pair_id = pair_in(emulator, "normal")
    mnt = loaded()
    # the answer takes a second, so that the second writer arrives while the call is out
    emulator.fault("latency", "FailoverDiskReplicaPair", 1, 1000)
    results = race([mnt.path(region, pair_id, "failover") for region in dirs])
    assert [r.returncode for r in results] == [0, 0], results
    assert emulator.calls("FailoverDiskReplicaPair") == 1
    assert emulator.applied("FailoverDiskReplicaPair") == 1
    audits = audit_lines(mnt, "FailoverDiskReplicaPair")
    assert len(audits) == 2 and all(re.search(r" outcome=ok api_region=\S+( \(joined a call in flight\))?$", a)
                                    for a in audits), audits
    assert sum("joined a call in flight" in a for a in audits) == 1
    for region in dirs:
        assert OK_LINE.fullmatch(outcome(mnt, region, pair_id, "failover"))
    assert mnt.stats()["control_writes_failover_ok"] == "2"
