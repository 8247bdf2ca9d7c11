"""Security of ebsfs through real mounts: who may act (modes, ctl_group, allow_other with a real
second uid), secrets never echoed (logs at -d, stats, outcome lines, /proc), TLS verification,
credential file permissions, and STS sessions from instance metadata refreshed before they
expire.

    EBSFS_BUILD_DIR=build /usr/bin/python3 -m pytest tests/system/test_security.py -q
"""
import errno
import grp
import os
import re
import stat
import subprocess
import time

import pytest

from conftest import (ACCESS_KEY_SECRET, bound, credentials_env, emulator_client,
                      wait_for)
from faultutil import (as_nobody, audit_records, control_write, errname, first_pair,
                       make_certificate, mutating_calls, reachable_by_others, read_back,
                       read_state, write_as_nobody)

SH = "cn-shanghai"
PAIRS = 20
CONTROL_FILES = ("reprotect", "failover", "start", "stop")
ROLE = "EcsRamRoleTest"
# The shapes of the emulator's STS credentials (server.py issue_sts): a 44-character secret
# and a "CAIS..." token; a real STS token starts the same way.
STS_SECRET_RE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{44}(?![A-Za-z0-9])")
STS_TOKEN_RE = re.compile(r"CAIS[A-Za-z0-9+/=%]{40,}")


def control_paths(m, pair):
    return [m.path(SH, pair, name) for name in CONTROL_FILES] + [m.path(".ebsfs", "refresh")]


def env_without_keys(extra):
    env = credentials_env(extra)
    del env["ALIBABA_CLOUD_ACCESS_KEY_ID"], env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"]
    return env


def ecs_role_env(emulator):
    return env_without_keys({"ALIBABA_CLOUD_ECS_METADATA": ROLE,
                             "ALIBABA_CLOUD_IMDS_ENDPOINT": emulator.url})


def proc_text(pid, name):
    with open(f"/proc/{pid}/{name}", "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace")


def everything_the_daemon_said(m, pair):
    """The daemon's log, stats, outcome lines, command line and mount entry, as one text."""
    texts = [m.output(), m.read(".ebsfs", "stats"), proc_text(m.proc.pid, "cmdline")]
    texts += [read_back(p) for p in control_paths(m, pair)[:-1]]
    with open("/proc/self/mountinfo") as f:
        texts += [line for line in f if m.mountpoint in line]
    return "\n".join(texts)


# ---- who may act ---------------------------------------------------------------------------

@pytest.fixture
def ctl_group():
    """A group made for the test: (name, gid)."""
    name = f"ebsfsctl{os.getpid() % 100000}"
    subprocess.run(["groupadd", name], check=True, timeout=30)
    try:
        yield name, grp.getgrnam(name).gr_gid
    finally:
        subprocess.run(["groupdel", name], check=True, timeout=30)


def test_control_files_are_0600_owned_by_the_mounting_user(emulator, mount_factory):
    m = mount_factory(emulator)
    pair = first_pair(m)
    for path in control_paths(m, pair):
        st = os.stat(path)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == \
            (0o600, os.getuid(), os.getgid()), path
    assert stat.S_IMODE(os.stat(m.path(SH, pair, "status")).st_mode) == 0o444


def test_ctl_group_may_act_and_nobody_else(emulator, mount_factory, ctl_group):
    name, gid = ctl_group
    pair = emulator.source_pairs(SH, status="normal")[0]
    m = mount_factory(emulator, f"ctl_group={name}", "allow_other")
    for path in control_paths(m, pair):
        st = os.stat(path)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == \
            (0o660, os.getuid(), gid), path
    stop = m.path(SH, pair, "stop")
    emulator.reset()
    with reachable_by_others(m.mountpoint):
        assert write_as_nobody(stop) == (errno.EACCES, None)
        assert mutating_calls(emulator) == 0
        assert write_as_nobody(stop, groups=[gid]) == (0, 0)
    assert emulator.applied("StopDiskReplicaPair") == 1
    audit = audit_records(m.output())[-1]
    assert (audit["uid"], audit["pair"], audit["outcome"]) == ("65534", pair, "ok")


def test_other_user_reads_state_but_cannot_act(emulator, mount_factory):
    m = mount_factory(emulator, "allow_other")
    pair = first_pair(m)
    status = m.path(SH, pair, "status")
    mine = read_state(status)[0]
    emulator.reset()
    with reachable_by_others(m.mountpoint):
        cat = as_nobody(["cat", status])
        assert (cat.returncode, cat.stdout) == (0, mine), cat
        refused = {os.path.basename(p): write_as_nobody(p) for p in control_paths(m, pair)}
        read_ctl = as_nobody(["cat", m.path(SH, pair, "stop")])
    assert refused == {name: (errno.EACCES, None) for name in refused}
    assert read_ctl.returncode != 0 and os.strerror(errno.EACCES) in read_ctl.stderr
    assert mutating_calls(emulator) == 0
    assert audit_records(m.output()) == []


def test_without_allow_other_other_users_see_nothing(emulator, mount_factory):
    m = mount_factory(emulator)
    pair = first_pair(m)
    with reachable_by_others(m.mountpoint):
        cat = as_nobody(["cat", m.path(SH, pair, "status")])
        assert write_as_nobody(m.path(SH, pair, "stop")) == (errno.EACCES, None)
    assert cat.returncode != 0 and os.strerror(errno.EACCES) in cat.stderr, cat


# ---- secrets never echoed ------------------------------------------------------------------

def exercise(m, pair):
    """Reads every file of a pair and the stats, and writes each control file once (stop
    first: it is accepted from normal); returns each write's outcome."""
    for name in os.listdir(m.path(SH, pair)):
        read_state(m.path(SH, pair, name))
    m.read(".ebsfs", "stats")
    paths = sorted(control_paths(m, pair), key=lambda p: not p.endswith("/stop"))
    return {os.path.basename(p): errname(control_write(p, b"1")) for p in paths}


def test_access_key_secret_is_never_echoed(emulator, mount_factory):
    pair = emulator.source_pairs(SH, status="normal")[0]
    m = mount_factory(emulator, extra_args=["-d"])
    assert exercise(m, pair)["stop"] == "ok"
    emulator.add_key("testid", "rotated-secret")     # from now on every signature is wrong
    assert exercise(m, pair) == {name: "EACCES" for name in CONTROL_FILES + ("refresh",)}
    codes = emulator.counters()["by_code"]["StopDiskReplicaPair"]
    assert codes.get("SignatureDoesNotMatch") == 1
    said = everything_the_daemon_said(m, pair)
    assert "SignatureDoesNotMatch" in said
    assert ACCESS_KEY_SECRET not in said
    assert ACCESS_KEY_SECRET not in proc_text(m.proc.pid, "cmdline")


def test_sts_token_is_never_echoed_when_the_signature_fails(emulator, mount_factory):
    """V1 puts the SecurityToken in the string to sign, which the API quotes back in
    SignatureDoesNotMatch messages."""
    key, token, secret = "STS.ebsfstest", "CAIS" + "t0ken" * 12, "S3cret" * 7
    pair = emulator.source_pairs(SH, status="normal")[0]
    emulator.admin("ak", {"id": key, "secret": secret, "token": token})
    env = credentials_env({"ALIBABA_CLOUD_ACCESS_KEY_ID": key,
                           "ALIBABA_CLOUD_ACCESS_KEY_SECRET": secret,
                           "ALIBABA_CLOUD_SECURITY_TOKEN": token})
    m = mount_factory(emulator, "signature=v1", extra_args=["-d"], env=env)
    assert exercise(m, pair)["stop"] == "ok"
    emulator.admin("ak", {"id": key, "secret": "0ther" * 8, "token": token})
    assert exercise(m, pair) == {name: "EACCES" for name in CONTROL_FILES + ("refresh",)}
    failed = [e for e in emulator.requests() if e["code"] == "SignatureDoesNotMatch"]
    assert failed and all(e["sig"] == "v1" for e in failed)
    said = everything_the_daemon_said(m, pair)
    assert "SignatureDoesNotMatch" in said
    assert token not in said and secret not in said


def test_sts_session_from_metadata_is_never_echoed(emulator, mount_factory):
    sample = emulator_client.imds_credentials(emulator.port, role=ROLE)
    assert STS_SECRET_RE.search(sample["AccessKeySecret"])
    assert STS_TOKEN_RE.search(sample["SecurityToken"])
    pair = emulator.source_pairs(SH, status="normal")[0]
    m = mount_factory(emulator, extra_args=["-d"], env=ecs_role_env(emulator))
    assert exercise(m, pair)["stop"] == "ok"
    used = {e["access_key_id"] for e in emulator.requests("StopDiskReplicaPair")}
    assert all(k.startswith("STS.") for k in used)
    said = everything_the_daemon_said(m, pair) + proc_text(m.proc.pid, "environ")
    assert not STS_TOKEN_RE.findall(said)
    assert not STS_SECRET_RE.findall(said)


# ---- TLS -----------------------------------------------------------------------------------

@pytest.fixture
def tls_emulator(emulator_factory, tmp_path):
    """An emulator serving HTTPS with a self-signed certificate for 127.0.0.1: (emu, cert)."""
    cert, key = make_certificate(str(tmp_path))
    emu = emulator_factory("--regions", "cn-shanghai,cn-beijing", "--pairs", str(PAIRS),
                           "--tls-cert", cert, "--tls-key", key)
    return emu, cert


def tls_calls(emu):
    status, counters = emulator_client.admin(emu.port, "GET", "/_admin/counters", tls=True)
    assert status == 200
    return counters["total"]


def test_tls_is_verified(tls_emulator, mount_factory):
    emu, cert = tls_emulator
    endpoint = f"endpoint=https://127.0.0.1:{emu.port}"
    untrusted = mount_factory(None, endpoint, "timeout=3")
    start = time.monotonic()
    with pytest.raises(OSError) as refused:
        os.listdir(untrusted.path(SH))
    assert refused.value.errno == errno.EIO
    assert time.monotonic() - start <= bound(3 + 2)
    assert tls_calls(emu) == 0, "no request may cross an unverified connection"

    wrong_name = mount_factory(None, f"endpoint=https://localhost:{emu.port}", "timeout=3",
                               f"ca_file={cert}")
    with pytest.raises(OSError) as mismatch:
        os.listdir(wrong_name.path(SH))
    assert mismatch.value.errno == errno.EIO, "the certificate names 127.0.0.1 only"
    assert tls_calls(emu) == 0

    trusted = mount_factory(None, endpoint, f"ca_file={cert}")
    assert len(os.listdir(trusted.path(SH))) == PAIRS
    assert tls_calls(emu) > 0


# ---- credential files ----------------------------------------------------------------------

@pytest.mark.parametrize("mode,warned", [(0o644, True), (0o640, True), (0o600, False)])
def test_credentials_file_readable_by_others_is_warned_about(emulator, mount_factory, tmp_path,
                                                            mode, warned):
    path = tmp_path / "credentials"
    path.write_text("[default]\ntype = access_key\naccess_key_id = testid\n"
                    f"access_key_secret = {ACCESS_KEY_SECRET}\n")
    os.chmod(path, mode)
    env = env_without_keys({"ALIBABA_CLOUD_CREDENTIALS_FILE": str(path)})
    m = mount_factory(emulator, env=env)
    assert len(os.listdir(m.path(SH))) == PAIRS
    log = m.output()
    warning = f"{path} is readable by group or others (mode {mode:04o})"
    assert (warning in log) == warned, log
    assert ACCESS_KEY_SECRET not in log


# ---- STS sessions from instance metadata ---------------------------------------------------

def imds_fetches(emu):
    """Sessions the metadata service handed out."""
    return sum(1 for e in emu.requests("IMDS")
               if e["params"]["path"].endswith("/" + ROLE) and e["status"] == 200)


def sts_keys_used(emu):
    return {e["access_key_id"] for e in emu.requests() if e["action"] != "IMDS"}


def api_codes(emu):
    """Every answer code of the API side (IMDS excluded)."""
    return {code for action, codes in emu.counters()["by_code"].items() if action != "IMDS"
            for code in codes}


def test_sts_session_is_refreshed_before_it_expires(emulator_factory, mount_factory):
    """Sessions last 185 s; ebsfs renews them 180 s ahead, so every 5 s or so: across 12 s
    of reads, writes and refreshes nothing the user does fails."""
    emu = emulator_factory("--regions", "cn-shanghai,cn-beijing", "--pairs", str(PAIRS),
                           "--sts-ttl", "185", "--transition-delay", "0.3")
    pair = emu.source_pairs(SH, status="normal")[0]
    emu.reset()
    m = mount_factory(emu, "cache_ttl=1", env=ecs_role_env(emu))
    status = m.path(SH, pair, "status")
    deadline = time.monotonic() + 12
    results = []
    while time.monotonic() < deadline:
        results.append(read_state(status)[1])
        results.append(control_write(m.path(SH, pair, "stop" if len(results) % 4 else "start")))
        results.append(control_write(m.path(".ebsfs", "refresh"), b"1"))
        time.sleep(0.5)
    assert set(results) <= {0, errno.EBUSY}, [errname(r) for r in results]
    assert imds_fetches(emu) >= 3
    assert len(sts_keys_used(emu)) >= 3
    assert api_codes(emu) <= {"OK", "OperationDenied.InvalidStatus"}


def test_metadata_hang_while_the_session_is_valid_fails_nothing(emulator_factory,
                                                                mount_factory):
    emu = emulator_factory("--regions", "cn-shanghai,cn-beijing", "--pairs", str(PAIRS),
                           "--sts-ttl", "182")
    pair = emu.source_pairs(SH, status="normal")[0]
    m = mount_factory(emu, "timeout=2", env=ecs_role_env(emu))
    assert len(os.listdir(m.path(SH))) == PAIRS
    time.sleep(2.5)                           # the session is due for renewal
    emu.fault("hang", "IMDS", count=-1)
    start = time.monotonic()
    assert errname(control_write(m.path(SH, pair, "stop"))) == "ok"
    assert time.monotonic() - start <= bound(2 + 2)
    assert emu.applied("StopDiskReplicaPair") == 1


def test_current_session_is_used_while_metadata_fails(emulator_factory, mount_factory):
    emu = emulator_factory("--regions", "cn-shanghai,cn-beijing", "--pairs", str(PAIRS),
                           "--sts-ttl", "183")
    m = mount_factory(emu, "cache_ttl=1", env=ecs_role_env(emu))
    status = m.path(SH, first_pair(m), "status")
    emu.fault("http500", "IMDS", count=-1)
    time.sleep(3.5)                           # the session is due for renewal
    for _ in range(4):
        assert read_state(status)[1] == 0
        time.sleep(1.1)
    assert "session failed" in m.output() and "using the current one" in m.output()
    emu.clear_faults()
    fetched = imds_fetches(emu)
    wait_for(lambda: read_state(status)[1] == 0 and imds_fetches(emu) > fetched,
             timeout=bound(15), interval=0.5, what="a new session once metadata is back")
    assert api_codes(emu) == {"OK"}
