"""ebs.c and http.c against the emulator, through the ebs_probe driver: every operation with
both signature schemes, pagination, every credential source, retries under injected faults,
the errno table, and that no secret ever reaches the driver's output."""
import json
import os
import subprocess
import time

import pytest

from conftest import (ACCESS_KEY_SECRET, bound, build_dir, credentials_env, sanitizer_reports,
                      wait_for, wrapper)

SIGNATURES = ["v3", "v1"]
REGIONS = "cn-shanghai,cn-beijing"


def probe_binary():
    path = os.path.join(build_dir(), "tests", "ebs_probe")
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing: build first (meson compile -C {build_dir()})")
    return path


class Result:
    def __init__(self, proc, took):
        self.proc = proc
        self.took = took
        self.lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]

    @property
    def out(self):
        assert len(self.lines) == 1, self.proc.stdout + self.proc.stderr
        return self.lines[0]

    def ok(self):
        assert self.out["ok"] is True, self.out
        return self.out

    def failed(self, errno):
        assert self.out["ok"] is False, self.out
        assert self.out["errno"] == errno, self.out
        return self.out


def probe(emu, *command, sig="v3", env=None, timeout_ms=10000, retries=3, debug=False,
          extra=()):
    cmd = wrapper() + [probe_binary(), "--endpoint", emu.url, "--signature", sig,
           "--timeout-ms", str(timeout_ms), "--retries", str(retries), "--max-rps", "1000"]
    if debug:
        cmd.append("--debug")
    cmd += list(extra) + list(command)
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=bound(120),
                          env=env if env is not None else credentials_env())
    assert not sanitizer_reports(proc.stderr), proc.stderr
    return Result(proc, time.monotonic() - start)


def env_without_keys(extra):
    env = credentials_env()
    for name in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                 "ALIBABA_CLOUD_CLI_PROFILE_DISABLED"):
        env.pop(name, None)
    env["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] = "true"
    env.update(extra)
    return env


@pytest.fixture
def emu(emulator_factory):
    return emulator_factory("--regions", REGIONS, "--pairs", "40", "--transition-delay", "0.3")


def idle_pair(emu, status="normal"):
    """A pair outside any group, forced into status, with its regions."""
    listing = probe(emu, "describe-pairs", "cn-shanghai", "production").ok()
    for p in listing["pairs"]:
        if p["record"].get("ReplicaGroupId", "") == "":
            emu.set_pair(p["id"], status=status)
            return p["id"], p["source_region"], p["destination_region"]
    raise AssertionError("no ungrouped pair in the emulator")


def wait_status(emu, pair_id, status):
    wait_for(lambda: emu.pair(pair_id)["Status"] == status, timeout=bound(15),
             what=f"{pair_id} to become {status}")


# ---- Every operation, both signature schemes --------------------------------------------------

@pytest.mark.parametrize("sig", SIGNATURES)
def test_describe_regions(emu, sig):
    assert probe(emu, "describe-regions", sig=sig).ok()["regions"] == ["cn-beijing", "cn-shanghai"]
    params = [r["params"] for r in emu.requests() if r["action"] == "DescribeRegions"]
    assert params and params[-1]["ResourceType"] == "ear"


@pytest.mark.parametrize("sig", SIGNATURES)
def test_describe_pairs_both_views(emu, sig):
    prod = probe(emu, "describe-pairs", "cn-shanghai", "production", sig=sig).ok()
    backup = probe(emu, "describe-pairs", "cn-shanghai", "backup", sig=sig).ok()
    assert prod["count"] == 20 and backup["count"] == 20
    assert all(p["site"] == "production" and p["source_region"] == "cn-shanghai"
               for p in prod["pairs"])
    assert all(p["site"] == "backup" and p["destination_region"] == "cn-shanghai"
               for p in backup["pairs"])
    first = prod["pairs"][0]
    admin_view = {k: v for k, v in emu.pair(first["id"]).items() if not k.startswith("_")}
    assert first["record"] == admin_view


@pytest.mark.parametrize("sig", SIGNATURES)
def test_describe_pairs_by_id(emu, sig):
    ids = [p["id"] for p in probe(emu, "describe-pairs", "cn-beijing", "production").ok()["pairs"]]
    got = probe(emu, "describe-pairs", "cn-beijing", "production", ",".join(ids[:3]),
                sig=sig).ok()
    assert sorted(p["id"] for p in got["pairs"]) == sorted(ids[:3])
    assert probe(emu, "describe-pairs", "cn-beijing", "production", "pair-cn-nope",
                 sig=sig).ok()["count"] == 0


@pytest.mark.parametrize("sig", SIGNATURES)
def test_progress(emu, sig):
    pair_id, source, _ = idle_pair(emu)
    out = probe(emu, "progress", source, pair_id, sig=sig).ok()
    assert 0 <= out["progress"] <= 100
    assert out["recover_point"] > 1_000_000_000


@pytest.mark.parametrize("sig", SIGNATURES)
def test_every_action(emu, sig):
    pair_id, source, dest = idle_pair(emu)
    steps = [("stop", source, "stopped"), ("start", source, "normal"),
             ("failover", dest, "failovered"), ("reprotect", dest, "stopped")]
    for i, (action, region, settles_in) in enumerate(steps):
        token = f"tok-{sig}-{i}"
        out = probe(emu, "act", action, region, pair_id, token, sig=sig).ok()
        assert out["request_id"]
        wait_status(emu, pair_id, settles_in)
    log = [r for r in emu.requests() if (r["action"] or "").endswith("DiskReplicaPair")]
    assert [r["client_token"] for r in log] == [f"tok-{sig}-{i}" for i in range(4)]
    assert all(r["sig"] == sig for r in log)
    reprotect = log[-1]
    assert reprotect["action"] == "ReprotectDiskReplicaPair"
    assert reprotect["params"]["ReverseReplicate"] == "true"
    assert reprotect["region"] == dest
    applied = emu.counters()["applied"]
    for action in ("Stop", "Start", "Failover", "Reprotect"):
        assert applied[f"{action}DiskReplicaPair"] == 1
    # After reprotect the direction is reversed.
    assert emu.pair(pair_id)["SourceRegion"] == dest


def test_action_without_token_gets_one(emu):
    pair_id, source, _ = idle_pair(emu)
    probe(emu, "act", "stop", source, pair_id).ok()
    token = [r for r in emu.requests() if r["action"] == "StopDiskReplicaPair"][0]["client_token"]
    assert token and len(token) <= 64


# ---- Pagination ----------------------------------------------------------------------------

@pytest.mark.parametrize("sig", SIGNATURES)
def test_more_than_500_pairs_take_every_page(emulator_factory, sig):
    emu = emulator_factory("--regions", REGIONS, "--pairs", "1300")
    emu.reset()
    out = probe(emu, "describe-pairs", "cn-shanghai", "production", sig=sig).ok()
    assert out["count"] == 650
    assert len({p["id"] for p in out["pairs"]}) == 650
    assert emu.calls("DescribeDiskReplicaPairs") == 2
    pages = [r["params"] for r in emu.requests() if r["action"] == "DescribeDiskReplicaPairs"]
    assert all(p["MaxResults"] == "500" for p in pages)
    assert "NextToken" not in pages[0] and pages[1]["NextToken"]


# ---- Credential sources ----------------------------------------------------------------------

@pytest.mark.parametrize("sig", SIGNATURES)
def test_sts_token_from_the_environment(emulator_factory, sig):
    emu = emulator_factory("--regions", REGIONS, "--ak", "STS.envid:envsecret:env-token-1")
    env = env_without_keys({"ALIBABA_CLOUD_ACCESS_KEY_ID": "STS.envid",
                            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "envsecret",
                            "ALIBABA_CLOUD_SECURITY_TOKEN": "env-token-1",
                            "ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "true"})
    probe(emu, "describe-regions", sig=sig, env=env).ok()
    env["ALIBABA_CLOUD_SECURITY_TOKEN"] = "env-token-2"
    out = probe(emu, "describe-regions", sig=sig, env=env).failed("EACCES")
    assert out["code"].startswith("InvalidSecurityToken")


def test_credentials_file(emu, tmp_path):
    path = tmp_path / "credentials"
    path.write_text("[default]\ntype = access_key\naccess_key_id = nobody\n"
                    "access_key_secret = nothing\n\n"
                    "[work]\ntype = access_key\naccess_key_id = testid\n"
                    f"access_key_secret = {ACCESS_KEY_SECRET}\n")
    env = env_without_keys({"ALIBABA_CLOUD_CREDENTIALS_FILE": str(path),
                            "ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "true"})
    probe(emu, "describe-regions", env=env).failed("EACCES")
    probe(emu, "describe-regions", env=env, extra=("--profile", "work")).ok()
    env["ALIBABA_CLOUD_PROFILE"] = "work"
    probe(emu, "describe-regions", env=env, sig="v1").ok()


def test_cli_config(emu, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"current": "main", "profiles": [
        {"name": "main", "mode": "AK", "access_key_id": "testid",
         "access_key_secret": ACCESS_KEY_SECRET, "region_id": "cn-shanghai"},
        {"name": "other", "mode": "AK", "access_key_id": "nobody",
         "access_key_secret": "nothing"}]}))
    env = env_without_keys({"ALIBABA_CLOUD_CONFIG_FILE": str(path)})
    probe(emu, "describe-regions", env=env).ok()
    probe(emu, "describe-regions", env=env, extra=("--profile", "other")).failed("EACCES")


def ram_role_env(emu):
    env = env_without_keys({"ALIBABA_CLOUD_ECS_METADATA": "EcsRamRoleTest",
                            "ALIBABA_CLOUD_IMDS_ENDPOINT": emu.url,
                            "ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "true"})
    env.pop("ALIBABA_CLOUD_ECS_METADATA_DISABLED")
    return env


def api_keys(emu):
    return [r["access_key_id"] for r in emu.requests()
            if r["action"] not in (None, "IMDS") and r["status"] == 200]


@pytest.mark.parametrize("sig", SIGNATURES)
def test_ecs_ram_role(emulator_factory, sig):
    emu = emulator_factory("--regions", REGIONS, "--pairs", "4")
    probe(emu, "describe-pairs", "cn-beijing", "backup", sig=sig, env=ram_role_env(emu)).ok()
    keys = api_keys(emu)
    assert keys and all(k.startswith("STS.") for k in keys)
    assert any(r["action"] == "IMDS" for r in emu.requests())


def test_ecs_ram_role_session_is_refreshed(emulator_factory):
    # A session shorter than the refresh margin is renewed before every signature, so each
    # call below goes out with a key minted for it, including after the first ones expired.
    emu = emulator_factory("--regions", REGIONS, "--sts-ttl", "2")
    res = probe(emu, "describe-regions", env=ram_role_env(emu),
                extra=("--repeat", "3", "--interval-ms", "2500"))
    assert [line["ok"] for line in res.lines] == [True, True, True], res.proc.stderr
    keys = api_keys(emu)
    assert len(keys) == 3 and len(set(keys)) == 3


# ---- Retries under faults ------------------------------------------------------------------

def test_server_errors_then_success_is_one_call(emu):
    emu.reset()
    emu.fault("http500", "DescribeRegions", 2)
    res = probe(emu, "describe-regions")
    res.ok()
    assert emu.counters()["by_code"]["DescribeRegions"] == {"InternalError": 2, "OK": 1}


@pytest.mark.parametrize("kind", ["http503", "http504", "drop", "reset", "truncated"])
def test_transient_faults_are_retried(emu, kind):
    emu.reset()
    emu.fault(kind, "DescribeDiskReplicaPairs", 1)
    assert probe(emu, "describe-pairs", "cn-shanghai", "production").ok()["count"] == 20
    assert emu.calls("DescribeDiskReplicaPairs") == 2


def test_throttling_waits_for_time_left(emu):
    emu.reset()
    emu.fault("throttle", "DescribeRegions", 1, 700)
    res = probe(emu, "describe-regions")
    assert res.ok()["ms"] >= 700
    assert emu.calls("DescribeRegions") == 2


def test_lost_answer_is_retried_with_the_same_token(emu):
    pair_id, source, _ = idle_pair(emu)
    emu.reset()
    emu.fault("drop_after_action", "StopDiskReplicaPair", 1)
    probe(emu, "act", "stop", source, pair_id, "token-lost-answer").ok()
    log = [r for r in emu.requests() if r["action"] == "StopDiskReplicaPair"]
    assert len(log) == 2
    assert {r["client_token"] for r in log} == {"token-lost-answer"}
    assert emu.applied("StopDiskReplicaPair") == 1


def test_last_token_processing_is_retried(emu):
    pair_id, source, _ = idle_pair(emu)
    emu.reset()
    emu.fault("last_token_processing", "StopDiskReplicaPair", 1)
    probe(emu, "act", "stop", source, pair_id, "token-busy").ok()
    assert emu.calls("StopDiskReplicaPair") == 2
    assert emu.applied("StopDiskReplicaPair") == 1


def test_hang_ends_at_the_timeout(emu):
    emu.fault("hang", "DescribeRegions", -1, 30)
    res = probe(emu, "describe-regions", timeout_ms=800)
    out = res.failed("ETIMEDOUT")
    assert out["code"] == "Transport.Timeout"
    assert res.took < bound(0.8 + 1.5)


def test_the_last_attempt_decides_the_error(emu):
    emu.fault("http500", "DescribeRegions", 1)
    emu.fault("hang", "DescribeRegions", -1, 30)
    assert probe(emu, "describe-regions", timeout_ms=1500).failed("ETIMEDOUT")


@pytest.mark.parametrize("variant", ["partial", "html", "empty", "array"])
def test_malformed_answer_is_eio(emu, variant):
    emu.fault("malformed", "DescribeDiskReplicaPairs", 1, variant)
    out = probe(emu, "describe-pairs", "cn-shanghai", "production").failed("EIO")
    assert out["code"] == "MalformedResponse"


def test_malformed_action_answer_is_eio(emu):
    pair_id, source, _ = idle_pair(emu)
    emu.fault("malformed", "StopDiskReplicaPair", 1, "html")
    probe(emu, "act", "stop", source, pair_id).failed("EIO")


# ---- The errno table -------------------------------------------------------------------------

@pytest.mark.parametrize("sig", SIGNATURES)
def test_invalid_status_is_ebusy(emu, sig):
    pair_id, source, _ = idle_pair(emu, "normal")
    out = probe(emu, "act", "start", source, pair_id, sig=sig).failed("EBUSY")
    assert out["code"] == "OperationDenied.InvalidStatus"
    assert out["request_id"] and out["http_status"] == 403


def test_wrong_site_is_ebusy(emu):
    pair_id, source, _ = idle_pair(emu)
    probe(emu, "act", "failover", source, pair_id).failed("EBUSY")


@pytest.mark.parametrize("sig", SIGNATURES)
def test_wrong_secret_is_eacces(emu, sig):
    env = credentials_env({"ALIBABA_CLOUD_ACCESS_KEY_SECRET": "not-the-secret"})
    out = probe(emu, "describe-regions", sig=sig, env=env).failed("EACCES")
    assert out["code"] == "SignatureDoesNotMatch"


def test_unknown_key_is_eacces(emu):
    env = credentials_env({"ALIBABA_CLOUD_ACCESS_KEY_ID": "nobody"})
    assert probe(emu, "describe-regions", env=env).failed("EACCES")["code"].startswith(
        "InvalidAccessKeyId")


def test_denied_key_is_eacces_for_actions(emulator_factory):
    emu = emulator_factory("--regions", REGIONS, "--pairs", "10", "--ak-denied", "ro:rosecret")
    env = credentials_env({"ALIBABA_CLOUD_ACCESS_KEY_ID": "ro",
                           "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "rosecret"})
    pair = probe(emu, "describe-pairs", "cn-shanghai", "production", env=env).ok()["pairs"][0]
    out = probe(emu, "act", "stop", "cn-shanghai", pair["id"], env=env).failed("EACCES")
    assert out["code"] == "Forbidden.Action"


@pytest.mark.parametrize("command", [("act", "stop", "cn-shanghai", "pair-cn-nope"),
                                     ("progress", "cn-shanghai", "pair-cn-nope")])
def test_unknown_pair_is_enoent(emu, command):
    assert probe(emu, *command).failed("ENOENT")["code"] == "NoSuchResource"


def test_persistent_throttling_is_eagain(emu):
    emu.reset()
    emu.fault("throttle", "DescribeRegions", -1, 50)
    out = probe(emu, "describe-regions", retries=3).failed("EAGAIN")
    assert out["code"] == "Throttling.User"
    assert emu.calls("DescribeRegions") == 3


def test_persistent_server_error_is_eio(emu):
    emu.reset()
    emu.fault("http500", "DescribeRegions", -1)
    assert probe(emu, "describe-regions", retries=2).failed("EIO")["code"] == "InternalError"
    assert emu.calls("DescribeRegions") == 2


def test_unreachable_endpoint_is_eio(emu, tmp_path):
    class Closed:
        url = "http://127.0.0.1:1"
    out = probe(Closed, "describe-regions", retries=2).failed("EIO")
    assert out["code"] == "Transport.Failed"


def test_plain_http_to_a_remote_host_is_refused(emu):
    class Remote:
        url = "http://10.0.0.1:8080"
    out = probe(Remote, "describe-regions").failed("EINVAL")
    assert emu.calls() == 0 and "loopback" in out["message"]


# ---- Secrets stay secret ------------------------------------------------------------------------

SECRET = "S3cr3t-never-printed-9f8e7d"
TOKEN = "T0ken-never-printed-1a2b3c"


@pytest.mark.parametrize("sig", SIGNATURES)
def test_secrets_never_reach_the_output(emulator_factory, sig):
    emu = emulator_factory("--regions", REGIONS, "--pairs", "6",
                           "--ak", f"STS.secretid:{SECRET}:{TOKEN}")
    good = env_without_keys({"ALIBABA_CLOUD_ACCESS_KEY_ID": "STS.secretid",
                             "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET,
                             "ALIBABA_CLOUD_SECURITY_TOKEN": TOKEN,
                             "ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "true"})
    wrong_secret = dict(good, ALIBABA_CLOUD_ACCESS_KEY_SECRET=SECRET + "x")
    emu.fault("http500", "*", 1)
    runs = [probe(emu, "describe-pairs", "cn-shanghai", "production", sig=sig, env=good,
                  debug=True),
            probe(emu, "describe-regions", sig=sig, env=wrong_secret, debug=True),
            probe(emu, "act", "stop", "cn-shanghai", "pair-cn-nope", sig=sig, env=good,
                  debug=True)]
    runs[0].ok()
    runs[1].failed("EACCES")
    runs[2].failed("ENOENT")
    for res in runs:
        text = res.proc.stdout + res.proc.stderr
        assert "debug" in res.proc.stderr
        for secret in (SECRET, TOKEN, "Authorization", "Signature="):
            assert secret not in text, (secret, text)


# ---- TLS ---------------------------------------------------------------------------------------

def self_signed(tmp_path, name, san):
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=ebsfs-test", "-addext", f"subjectAltName={san}",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


class Https:
    """The emulator over TLS (its admin endpoint then speaks TLS too: no counters here)."""

    def __init__(self, emu, host="127.0.0.1"):
        self.url = f"https://{host}:{emu.port}"


def test_tls_is_verified_against_the_extra_ca_file(emulator_factory, tmp_path):
    cert, key = self_signed(tmp_path, "good", "IP:127.0.0.1,DNS:localhost")
    emu = emulator_factory("--regions", REGIONS, "--tls-cert", cert, "--tls-key", key)
    probe(Https(emu), "describe-regions", extra=("--ca-file", cert)).ok()
    probe(Https(emu, "localhost"), "describe-regions", sig="v1", extra=("--ca-file", cert)).ok()
    out = probe(Https(emu), "describe-regions").failed("EIO")
    assert out["code"] == "Transport.Failed" and "certificate" in out["message"]


def test_tls_host_name_mismatch_is_refused(emulator_factory, tmp_path):
    cert, key = self_signed(tmp_path, "other", "DNS:other.example")
    emu = emulator_factory("--regions", REGIONS, "--tls-cert", cert, "--tls-key", key)
    out = probe(Https(emu), "describe-regions", extra=("--ca-file", cert)).failed("EIO")
    assert out["code"] == "Transport.Failed"
