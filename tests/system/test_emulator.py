"""Tests of the EBS API emulator (tests/emulator/).

    /usr/bin/python3 -m pytest tests/system/test_emulator.py -q

Self-contained: every emulator is started as a subprocess on port 0 (--port-file) and
stopped by PID in a fixture finalizer.
"""

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EMU_DIR = os.path.join(ROOT, "tests", "emulator")
sys.path.insert(0, EMU_DIR)

import signing  # noqa: E402
from client import (EMULATOR, PYTHON, Emulator, build_request, call, imds,  # noqa: E402
                    imds_credentials, send, utc_now)
from model import Model  # noqa: E402

DEMO = os.path.join(EMU_DIR, "fixtures", "demo.json")
P1, P2, P3, P4 = ("pair-cn-demo0000001", "pair-cn-demo0000002", "pair-cn-demo0000003",
                  "pair-cn-demo0000004")
SH, BJ = "cn-shanghai", "cn-beijing"
RID_RE = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")
RECORD_FIELDS = [
    "ReplicaPairId", "PairName", "Description", "Status", "StatusMessage", "SourceDiskId",
    "SourceRegion", "SourceZoneId", "DestinationDiskId", "DestinationRegion",
    "DestinationZoneId", "PrimaryRegion", "PrimaryZone", "StandbyRegion", "StandbyZone",
    "RPO", "Bandwidth", "LastRecoverPoint", "ChargeType", "ExpiredTime", "CreateTime",
    "ReplicaGroupId", "ReplicaGroupName", "Site", "ResourceGroupId", "EnableRtc", "Tags"]
DELAY = 0.3


# =====================================================================================
# signature vectors (ebs-api.md 6.1.1, 6.1.2, 6.2.1, 6.2.2, 6.2.3) -- no emulator needed

def test_pct_rules():
    assert signing.pct("str'str") == "str%27str"
    assert signing.pct("str(str") == "str%28str"
    assert signing.pct("str)str") == "str%29str"
    assert signing.pct("str*str") == "str%2Astr"
    assert signing.pct("a b~c/d:e,f!") == "a%20b~c%2Fd%3Ae%2Cf%21"
    assert signing.pct("é") == "%C3%A9"
    assert signing.form_decode("a=b+c&d=%2B&e=") == [("a", "b c"), ("d", "+"), ("e", "")]


V1A = {"AccessKeyId": "testid", "Action": "DescribeDedicatedHosts", "Format": "JSON",
       "RegionId": "cn-beijing", "SignatureMethod": "HMAC-SHA1",
       "SignatureNonce": "edb2b34af0af9a6d14deaf7c1a5315eb", "SignatureVersion": "1.0",
       "Timestamp": "2023-03-13T08:34:30Z", "Version": "2014-05-26"}


def test_vector_v1_a():
    cqs = ("AccessKeyId=testid&Action=DescribeDedicatedHosts&Format=JSON&RegionId=cn-beijing"
           "&SignatureMethod=HMAC-SHA1&SignatureNonce=edb2b34af0af9a6d14deaf7c1a5315eb"
           "&SignatureVersion=1.0&Timestamp=2023-03-13T08%3A34%3A30Z&Version=2014-05-26")
    assert signing.canonical_query(V1A) == cqs
    sts = signing.v1_string_to_sign("GET", V1A)
    assert sts == (
        "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeDedicatedHosts%26Format%3DJSON"
        "%26RegionId%3Dcn-beijing%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D"
        "edb2b34af0af9a6d14deaf7c1a5315eb%26SignatureVersion%3D1.0%26Timestamp%3D"
        "2023-03-13T08%253A34%253A30Z%26Version%3D2014-05-26")
    assert signing.v1_signature("testsecret", sts) == "9NaGiOspFP5UPcwX8Iwt2YJXXuk="
    assert signing.v1_signature("testsecret", signing.v1_string_to_sign("POST", V1A)) == \
        "ZvQ9xGiFnquSJRvj+WE6kdSpTwU="
    # Signature itself is never part of the string to sign
    with_sig = dict(V1A, Signature="whatever")
    assert signing.v1_string_to_sign("GET", with_sig) == sts


def test_vector_v1_b():
    p = {"Timestamp": "2016-02-23T12:46:24Z", "Format": "XML", "AccessKeyId": "testid",
         "Action": "DescribeRegions", "SignatureMethod": "HMAC-SHA1",
         "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf", "Version": "2014-05-26",
         "SignatureVersion": "1.0"}
    sts = signing.v1_string_to_sign("GET", p)
    assert sts == (
        "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26"
        "SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"
        "%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D"
        "2014-05-26")
    assert signing.v1_signature("testsecret", sts) == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
    assert signing.v1_signature("testsecret", signing.v1_string_to_sign("POST", p)) == \
        "MxbnVAM4w6sft9xjVpe/GCKueuk="


def test_vector_v1_c():
    sts = signing.v1_string_to_sign("", {"test": "ok"})
    assert sts == "&%2F&test%3Dok"
    assert signing.v1_signature("accessKeySecret", sts) == "jHx/oHoHNrbVfhncHEvPdHXZwHU="


def test_vector_v1_ebs_1():
    p = {"AccessKeyId": "testid", "Action": "DescribeDiskReplicaPairs", "Format": "JSON",
         "MaxResults": "10", "PairIds": "pair-cn-abc,pair-cn-def", "RegionId": "cn-hangzhou",
         "Site": "production", "SignatureMethod": "HMAC-SHA1",
         "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf", "SignatureVersion": "1.0",
         "Timestamp": "2024-01-01T00:00:00Z", "Version": "2021-07-30"}
    assert signing.canonical_query(p) == (
        "AccessKeyId=testid&Action=DescribeDiskReplicaPairs&Format=JSON&MaxResults=10"
        "&PairIds=pair-cn-abc%2Cpair-cn-def&RegionId=cn-hangzhou&SignatureMethod=HMAC-SHA1"
        "&SignatureNonce=3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf&SignatureVersion=1.0"
        "&Site=production&Timestamp=2024-01-01T00%3A00%3A00Z&Version=2021-07-30")
    assert signing.v1_signature("testsecret", signing.v1_string_to_sign("GET", p)) == \
        "bednFqVWNCGYNfXxluap2XFwWiA="
    assert signing.v1_signature("testsecret", signing.v1_string_to_sign("POST", p)) == \
        "R6hdFOjt+EspE5pkI5AwiZbaHh0="


def test_vector_v1_ebs_2():
    p = {"AccessKeyId": "STS.testid", "Action": "DescribeDiskReplicaPairs", "Format": "JSON",
         "RegionId": "cn-hangzhou", "SecurityToken": "tok/en+a=b",
         "SignatureMethod": "HMAC-SHA1", "SignatureNonce": "nonce-0001",
         "SignatureVersion": "1.0", "Tag.1.Key": "env", "Tag.1.Value": "prod test*~",
         "Timestamp": "2024-01-01T00:00:00Z", "Version": "2021-07-30"}
    assert signing.canonical_query(p) == (
        "AccessKeyId=STS.testid&Action=DescribeDiskReplicaPairs&Format=JSON"
        "&RegionId=cn-hangzhou&SecurityToken=tok%2Fen%2Ba%3Db&SignatureMethod=HMAC-SHA1"
        "&SignatureNonce=nonce-0001&SignatureVersion=1.0&Tag.1.Key=env"
        "&Tag.1.Value=prod%20test%2A~&Timestamp=2024-01-01T00%3A00%3A00Z"
        "&Version=2021-07-30")
    sts = signing.v1_string_to_sign("POST", p)
    assert sts == (
        "POST&%2F&AccessKeyId%3DSTS.testid%26Action%3DDescribeDiskReplicaPairs%26Format%3D"
        "JSON%26RegionId%3Dcn-hangzhou%26SecurityToken%3Dtok%252Fen%252Ba%253Db%26"
        "SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3Dnonce-0001%26SignatureVersion%3D1.0"
        "%26Tag.1.Key%3Denv%26Tag.1.Value%3Dprod%2520test%252A~%26Timestamp%3D"
        "2024-01-01T00%253A00%253A00Z%26Version%3D2021-07-30")
    assert signing.v1_signature("testsecret", sts) == "8gz4KeDOL6ejM2KvGAa96uMZBFY="


def _v3(method, host, action, version, date, query, body=b"", extra=None, ctype=None):
    payload_hash = signing.sha256_hex(body)
    headers = {"host": [host], "x-acs-action": [action], "x-acs-version": [version],
               "x-acs-date": [date],
               "x-acs-signature-nonce": ["3156853299f313e23d1673dc12e1703d"],
               "x-acs-content-sha256": [payload_hash]}
    if ctype:
        headers["content-type"] = [ctype]
    for k, v in (extra or {}).items():
        headers[k] = [v]
    cr = signing.v3_canonical_request(method, "/", query, headers, list(headers),
                                      payload_hash)
    _, signed = signing.v3_canonical_headers(headers, list(headers))
    return cr, signed, payload_hash


def test_vector_v3_official():
    cr, signed, h = _v3("POST", "ecs.cn-shanghai.aliyuncs.com", "RunInstances", "2014-05-26",
                        "2023-10-26T10:22:32Z",
                        {"ImageId": "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
                         "RegionId": "cn-shanghai"})
    assert h == signing.EMPTY_SHA256 == \
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert cr == (
        "POST\n/\nImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd"
        "&RegionId=cn-shanghai\n"
        "host:ecs.cn-shanghai.aliyuncs.com\nx-acs-action:RunInstances\n"
        "x-acs-content-sha256:" + h + "\nx-acs-date:2023-10-26T10:22:32Z\n"
        "x-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\nx-acs-version:2014-05-26\n"
        "\nhost;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;"
        "x-acs-version\n" + h)
    assert signing.sha256_hex(cr) == \
        "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
    sig = signing.v3_signature("YourAccessKeySecret", signing.v3_string_to_sign(cr))
    assert sig == "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
    assert signing.v3_authorization("YourAccessKeyId", signed, sig) == (
        "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;"
        "x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,"
        "Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0")
    parsed = signing.parse_v3_authorization(
        signing.v3_authorization("YourAccessKeyId", signed, sig))
    assert parsed["Credential"] == "YourAccessKeyId" and parsed["Signature"] == sig


def test_vector_v3_sdk():
    ph = "55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23"
    cr = signing.v3_canonical_request("", "", {"test": "ok", "empty": ""},
                                      {"x-acs-test": ["http", "https"]},
                                      ["x-acs-test", "x-acs-TEST"], ph)
    assert cr == "\n/\nempty=&test=ok\nx-acs-test:http,https\n\nx-acs-test\n" + ph
    sig = signing.v3_signature("secret", signing.v3_string_to_sign(cr))
    assert signing.v3_authorization("acesskey", "x-acs-test", sig) == (
        "ACS3-HMAC-SHA256 Credential=acesskey,SignedHeaders=x-acs-test,"
        "Signature=4ab59fffe3c5738ff8a2729f90cc04fe18b02a4b15b2102cbaf92f9ff3df2ea3")


def test_vector_v3_ebs_c():
    cr, signed, _ = _v3("POST", "ebs.cn-shanghai.aliyuncs.com", "ReprotectDiskReplicaPair",
                        "2021-07-30", "2024-01-01T00:00:00Z",
                        {"ClientToken": "123e4567-e89b-12d3-a456-426655440000",
                         "RegionId": "cn-shanghai", "ReplicaPairId": "pair-cn-dsa1234",
                         "ReverseReplicate": "true"})
    assert signed == ("host;x-acs-action;x-acs-content-sha256;x-acs-date;"
                      "x-acs-signature-nonce;x-acs-version")
    assert signing.sha256_hex(cr) == \
        "176a06f40adb8ef516429bc177b07ef0802bfa62d0488c344b73c408b2c6949e"
    assert signing.v3_signature("YourAccessKeySecret", signing.v3_string_to_sign(cr)) == \
        "a4c018bc6113f15cbf92cfd1e8c8cc863a5cbff02843b289ed022b29a7c8fa13"


def test_vector_v3_ebs_d():
    cr, signed, _ = _v3("POST", "ebs.cn-hangzhou.aliyuncs.com", "DescribeDiskReplicaPairs",
                        "2021-07-30", "2024-01-01T00:00:00Z",
                        {"MaxResults": "10", "RegionId": "cn-hangzhou"},
                        extra={"x-acs-accesskey-id": "STS.YourAccessKeyId",
                               "x-acs-security-token": "YourSecurityToken"})
    assert signed == ("host;x-acs-accesskey-id;x-acs-action;x-acs-content-sha256;"
                      "x-acs-date;x-acs-security-token;x-acs-signature-nonce;x-acs-version")
    assert signing.sha256_hex(cr) == \
        "00137ff229989e00b4e96ea2e1df069c93a7a6dd194d4b3f115711fcfe6f22fa"
    sig = signing.v3_signature("YourAccessKeySecret", signing.v3_string_to_sign(cr))
    assert sig == "6e9370e682e883c2a7c3e4c7f5215b821794cfa9b8b846d4e2246188f93f8ca4"
    assert signing.v3_authorization("STS.YourAccessKeyId", signed, sig).startswith(
        "ACS3-HMAC-SHA256 Credential=STS.YourAccessKeyId,SignedHeaders=host;")


def test_vector_v3_ebs_e():
    body = b"PairIds=pair-cn-abc%2Cpair-cn-def&RegionId=cn-hangzhou"
    assert signing.canonical_query(signing.form_decode(body)).encode() == body
    cr, signed, ph = _v3("POST", "ebs.cn-hangzhou.aliyuncs.com", "DescribeDiskReplicaPairs",
                         "2021-07-30", "2024-01-01T00:00:00Z", [], body=body,
                         ctype="application/x-www-form-urlencoded")
    assert ph == "ee05fe49fefa531aae7826038476d79f71f8726d4acf8997f6497b9293979f52"
    assert cr.split("\n")[2] == ""
    assert signed == ("content-type;host;x-acs-action;x-acs-content-sha256;x-acs-date;"
                      "x-acs-signature-nonce;x-acs-version")
    assert signing.sha256_hex(cr) == \
        "18d5c9a0b782bf03d0afebd522afb0ef7888a4d8f4115bfc19ec374dfc52ac30"
    assert signing.v3_signature("YourAccessKeySecret", signing.v3_string_to_sign(cr)) == \
        "73db4320a88aa2e80e8716226fb699e3d2bd420030043c2aedcf2be55554b678"


# =====================================================================================
# fixtures

def _start(request, *args, **kw):
    emu = Emulator(*args, **kw)
    request.addfinalizer(emu.stop)
    return emu.start()


@pytest.fixture(scope="module")
def emu(request):
    return _start(request, "--fixture", DEMO, "--pairs", "40", "--seed", "7",
                  "--transition-delay", str(DELAY), "--ak-denied", "readonly:rosecret")


@pytest.fixture(autouse=True)
def _clean(request):
    if "emu" in request.fixturenames:
        e = request.getfixturevalue("emu")
        e.clear_faults()
        e.config(transition_delay=DELAY)
        e.reset()
    yield


def ok(res):
    status, headers, body = res
    assert status == 200, (status, body)
    return body


def err(res, status, code):
    s, headers, body = res
    assert (s, body and body.get("Code")) == (status, code), (s, body)
    for k in ("RequestId", "HostId", "Code", "Message", "Recommend"):
        assert k in body, body
    assert headers["x-acs-request-id"] == body["RequestId"]
    return body


def describe(emu, region, site="production", **params):
    params.update(RegionId=region, Site=site)
    return ok(emu.call("DescribeDiskReplicaPairs", params))


def record(emu, region, pid, site="production"):
    recs = describe(emu, region, site, PairIds=pid)["ReplicaPairs"]
    return recs[0] if recs else None


def wait_status(emu, pid, want, timeout=5.0):
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = emu.pair(pid).get("Status")
        if seen == want:
            return
        time.sleep(0.05)
    raise AssertionError("%s: status %s, wanted %s" % (pid, seen, want))


def restore_demo(emu):
    """Put the demo pairs back into their fixture state."""
    with open(DEMO) as f:
        for rec in json.load(f):
            fields = {k: rec[k] for k in ("Status", "SourceDiskId", "SourceRegion",
                                          "SourceZoneId", "DestinationDiskId",
                                          "DestinationRegion", "DestinationZoneId",
                                          "PairName")}
            status, _ = emu.set_pair(rec["ReplicaPairId"], **fields)
            assert status == 200


# =====================================================================================
# wire, authentication

@pytest.mark.parametrize("sig,method,form", [
    ("v3", "POST", False), ("v3", "GET", False), ("v3", "POST", True),
    ("v1", "GET", False), ("v1", "POST", False), ("v1", "POST", True)])
def test_signed_requests_accepted(emu, sig, method, form):
    s, h, body = emu.call("DescribeDiskReplicaPairs",
                          {"RegionId": SH, "PairIds": P1 + ",pair-cn-nothere0000"},
                          sig=sig, method=method, form=form)
    assert s == 200, body
    assert h["content-type"] == "application/json;charset=utf-8"
    assert h["x-acs-request-id"] == body["RequestId"] and RID_RE.match(body["RequestId"])
    assert [r["ReplicaPairId"] for r in body["ReplicaPairs"]] == [P1]


def test_keep_alive_connection_reused(emu):
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    try:
        for _ in range(5):
            ok(call(emu.port, "DescribeRegions", {}, conn=conn))
        sock = conn.sock
        ok(call(emu.port, "DescribeRegions", {}, conn=conn))
        assert conn.sock is sock and sock is not None
    finally:
        conn.close()


def test_query_plus_is_a_space(emu):
    # The Go SDK builds URLs with url.Values.Encode (space -> '+') but signs with %20.
    url, headers, body = build_request("DescribeDiskReplicaPairs",
                                       {"RegionId": SH, "Name": "db primary"},
                                       host_header="127.0.0.1:%d" % emu.port)
    assert "Name=db%20primary" in url
    s, _, data = send(emu.port, "POST", url.replace("%20", "+"), headers)
    assert s == 200, data
    url, headers, body = build_request("DescribeDiskReplicaPairs",
                                       {"RegionId": SH, "Name": "db primary"}, sig="v1",
                                       method="GET")
    s, _, data = send(emu.port, "GET", url.replace("%20", "+"), headers)
    assert s == 200, data


def test_wrong_signature(emu):
    b = err(emu.call("DescribeRegions", {}, sig="v1", bad_signature=True),
            400, "SignatureDoesNotMatch")
    assert "server string to sign is:POST&%2F&AccessKeyId%3Dtestid" in b["Message"]
    b = err(emu.call("DescribeRegions", {}, sig="v3", bad_signature=True),
            400, "SignatureDoesNotMatch")
    assert "ACS3-HMAC-SHA256\n" in b["Message"]
    err(emu.call("DescribeRegions", {}, secret="nope"), 400, "SignatureDoesNotMatch")
    # tampering with a parameter after signing
    url, headers, _ = build_request("DescribeDiskReplicaPairs", {"RegionId": SH},
                                    host_header="127.0.0.1:%d" % emu.port)
    err(send_json(emu.port, "POST", url.replace(SH, BJ), headers), 400,
        "SignatureDoesNotMatch")
    # the host header (with port) is signed
    url, headers, _ = build_request("DescribeRegions", {}, host_header="127.0.0.1:1")
    headers["host"] = "127.0.0.1:%d" % emu.port
    err(send_json(emu.port, "POST", url, headers), 400, "SignatureDoesNotMatch")
    c = emu.counters()
    assert c["by_code"]["DescribeRegions"]["SignatureDoesNotMatch"] == 4


def send_json(port, method, url, headers, body=b""):
    s, h, data = send(port, method, url, headers, body)
    return s, h, json.loads(data)


def test_v3_content_sha256_and_unsigned_headers(emu):
    url, headers, body = build_request("DescribeDiskReplicaPairs", {"RegionId": SH},
                                       form=True, host_header="127.0.0.1:%d" % emu.port)
    err(send_json(emu.port, "POST", url, headers, body + b"&x=1"), 400,
        "SignatureDoesNotMatch")
    url, headers, body = build_request("DescribeRegions", {},
                                       host_header="127.0.0.1:%d" % emu.port)
    headers["x-acs-extra"] = "1"
    b = err(send_json(emu.port, "POST", url, headers), 400, "IncompleteSignature")
    assert "x-acs-extra" in b["Message"]
    headers.pop("x-acs-extra")
    headers["authorization"] = headers["authorization"].replace("ACS3-HMAC-SHA256",
                                                                "ACS3-HMAC-SM3")
    err(send_json(emu.port, "POST", url, headers), 400, "IncompleteSignature")


def test_unknown_key(emu):
    err(emu.call("DescribeRegions", {}, ak="nobody", sig="v3"), 404,
        "InvalidAccessKeyId.NotFound")
    err(emu.call("DescribeRegions", {}, ak="nobody", sig="v1"), 404,
        "InvalidAccessKeyId.NotFound")


@pytest.mark.parametrize("sig", ["v1", "v3"])
def test_stale_timestamp(emu, sig):
    err(emu.call("DescribeRegions", {}, sig=sig, timestamp=utc_now(-16 * 60)), 400,
        "InvalidTimeStamp.Expired")
    err(emu.call("DescribeRegions", {}, sig=sig, timestamp=utc_now(+16 * 60)), 400,
        "InvalidTimeStamp.Expired")
    ok(emu.call("DescribeRegions", {}, sig=sig, timestamp=utc_now(-14 * 60)))
    err(emu.call("DescribeRegions", {}, sig=sig, timestamp="2024-01-01 00:00:00"), 400,
        "InvalidTimeStamp.Format")


@pytest.mark.parametrize("sig", ["v1", "v3"])
def test_nonce_reuse(emu, sig):
    nonce = uuid.uuid4().hex
    ok(emu.call("DescribeRegions", {}, sig=sig, nonce=nonce))
    err(emu.call("DescribeRegions", {}, sig=sig, nonce=nonce), 400, "SignatureNonceUsed")
    # a refused signature does not burn the nonce
    nonce = uuid.uuid4().hex
    err(emu.call("DescribeRegions", {}, sig=sig, nonce=nonce, bad_signature=True), 400,
        "SignatureDoesNotMatch")
    ok(emu.call("DescribeRegions", {}, sig=sig, nonce=nonce))


def test_routing_and_parameter_errors(emu):
    err(emu.call("DescribeRegions", {}, version="2014-05-26"), 400, "InvalidVersion")
    err(emu.call("DescribeRegions", {}, version="2014-05-26", sig="v1"), 400,
        "InvalidVersion")
    err(emu.call("DescribeNothing", {}), 404, "InvalidAction.NotFound")
    err(emu.call("DescribeNothing", {}, sig="v1"), 404, "InvalidAction.NotFound")
    err(emu.call("DescribeDiskReplicaPairs", {}), 400, "MissingRegionId")
    err(emu.call("FailoverDiskReplicaPair", {"RegionId": BJ}), 400, "MissingReplicaPairId")
    for bad in ({"MaxResults": 0}, {"MaxResults": 501}, {"MaxResults": "x"},
                {"PageSize": 101}, {"PageNumber": 0}, {"Site": "primary"},
                {"NextToken": "garbage!"},
                {"PairIds": ",".join("pair-cn-%011d" % i for i in range(101))}):
        params = dict(bad, RegionId=SH)
        err(emu.call("DescribeDiskReplicaPairs", params), 400, "InvalidParameter")
    err(emu.call("StartDiskReplicaPair", {"RegionId": SH, "ReplicaPairId": P1},
                 client_token="x" * 65), 400, "InvalidParameter")
    # V1 without its common parameters
    s, h, data = send(emu.port, "GET", "/?Action=DescribeRegions&Version=2021-07-30", {})
    assert s == 400 and json.loads(data)["Code"] == "MissingAccessKeyId"
    s, h, data = send(emu.port, "PUT", "/?Action=DescribeRegions&Version=2021-07-30", {})
    assert s == 403 and json.loads(data)["Code"] == "UnsupportedHTTPMethod"


def test_denied_key_cannot_mutate(emu):
    ok(emu.call("DescribeDiskReplicaPairs", {"RegionId": SH}, ak="readonly",
                secret="rosecret"))
    err(emu.call("StopDiskReplicaPair", {"RegionId": SH, "ReplicaPairId": P1},
                 ak="readonly", secret="rosecret"), 403, "Forbidden.Action")
    assert emu.pair(P1)["Status"] == "normal"


# =====================================================================================
# the model: records, views, pagination

def test_record_fields_and_formats(emu):
    recs, _ = emu.describe_all(SH)
    assert recs
    for r in recs:
        assert list(r) == RECORD_FIELDS
        assert re.match(r"^pair-cn-[a-z0-9]{11}$", r["ReplicaPairId"]), r
        assert re.match(r"^d-[a-z0-9]{20}$", r["SourceDiskId"]), r
        assert re.match(r"^d-[a-z0-9]{20}$", r["DestinationDiskId"]), r
        assert r["SourceZoneId"].startswith(r["SourceRegion"] + "-")
        assert r["DestinationZoneId"].startswith(r["DestinationRegion"] + "-")
        assert r["RPO"] == 900 and r["ChargeType"] in ("PREPAY", "POSTPAY")
        assert isinstance(r["EnableRtc"], bool)
        assert 1e9 < r["CreateTime"] < 1e10
        if r["ChargeType"] == "POSTPAY":
            assert r["Bandwidth"] == 0 and r["ExpiredTime"] == 0
        else:
            assert r["Bandwidth"] in (10240, 20480, 51200, 102400)
            assert r["ExpiredTime"] > r["CreateTime"]
        assert 0 <= len(r["Tags"]) <= 3
        for t in r["Tags"]:
            assert set(t) == {"TagKey", "TagValue"}
    emu.config(create_time_ms=True)
    try:
        assert record(emu, SH, P1)["CreateTime"] > 1e12
    finally:
        emu.config(create_time_ms=False)


def test_site_views(emu):
    prod = record(emu, SH, P1, "production")
    backup = record(emu, BJ, P1, "backup")
    assert prod["Site"] == "production" and backup["Site"] == "backup"
    assert dict(prod, Site=None) == dict(backup, Site=None)
    assert emu.pair(P1) == prod
    assert "_emulator" in emu.admin("GET", "/_admin/pair?id=%s&debug=1" % P1)[1]
    assert emu.set_pair(P1, NoSuchField=1)[0] == 400
    assert record(emu, BJ, P1, "production") is None
    assert record(emu, SH, P1, "backup") is None
    # every pair is in exactly one production view and one backup view
    total = 44
    n = 0
    for region in (SH, BJ):
        for site in ("production", "backup"):
            recs, _ = emu.describe_all(region, site)
            for r in recs:
                key = "SourceRegion" if site == "production" else "DestinationRegion"
                assert r[key] == region and r["Site"] == site
            n += len(recs)
    assert n == 2 * total
    assert describe(emu, SH)["TotalCount"] == 22     # 2 demo + 20 generated
    assert describe(emu, SH, "backup")["TotalCount"] == 22


def test_pagination_both_ways(emu):
    first = describe(emu, BJ, "backup")
    assert len(first["ReplicaPairs"]) == 10 and first["TotalCount"] == 22
    assert first["NextToken"]
    seen = []
    token = None
    calls = 0
    for _ in range(50):
        params = {"MaxResults": 3}
        if token:
            params["NextToken"] = token
        page = describe(emu, BJ, "backup", **params)
        calls += 1
        seen += [r["ReplicaPairId"] for r in page["ReplicaPairs"]]
        token = page["NextToken"]
        if not token:
            break
    assert calls == 8 and len(seen) == 22 == len(set(seen))
    paged = []
    for number in range(1, 6):
        page = describe(emu, BJ, "backup", PageNumber=number, PageSize=5)
        assert page["TotalCount"] == 22 and page["PageNumber"] == number
        assert page["PageSize"] == 5
        paged += [r["ReplicaPairId"] for r in page["ReplicaPairs"]]
    assert paged == seen
    assert describe(emu, BJ, "backup", PageNumber=6, PageSize=5)["ReplicaPairs"] == []
    all_at_once = describe(emu, BJ, "backup", MaxResults=500)
    assert all_at_once["NextToken"] == "" and len(all_at_once["ReplicaPairs"]) == 22
    # a token of another view is refused
    err(emu.call("DescribeDiskReplicaPairs",
                 {"RegionId": SH, "Site": "backup", "NextToken": first["NextToken"]}),
        400, "InvalidParameter")


def test_filters(emu):
    assert [r["ReplicaPairId"] for r in describe(emu, SH, Name="DB-PRIM")["ReplicaPairs"]] \
        == [P1]
    got = describe(emu, BJ, **{"Tag.1.Key": "team", "Tag.1.Value": "web"})
    assert P4 in [r["ReplicaPairId"] for r in got["ReplicaPairs"]]
    got = describe(emu, BJ, ReplicaGroupId="pg-demo000000000001")["ReplicaPairs"]
    assert [r["ReplicaPairId"] for r in got] == [P4]
    got = describe(emu, BJ, ReplicaGroupId="-", MaxResults=500)["ReplicaPairs"]
    assert P4 not in [r["ReplicaPairId"] for r in got] and P3 in [r["ReplicaPairId"]
                                                                   for r in got]
    got = describe(emu, SH, ResourceGroupId="rg-acfmdemo0000001", MaxResults=500)
    assert {r["ReplicaPairId"] for r in got["ReplicaPairs"]} == {P1, P2}


def test_describe_regions(emu):
    b = ok(emu.call("DescribeRegions", {"ResourceType": "ear", "AcceptLanguage": "en-US"}))
    assert [r["RegionId"] for r in b["Regions"]] == [SH, BJ]
    sh = b["Regions"][0]
    assert sh["RegionEndpoint"] == "ebs.cn-shanghai.aliyuncs.com"
    assert sh["LocalName"] == "China (Shanghai)"
    assert all(z["ZoneId"].startswith(SH + "-") and z["ResourceTypes"] == ["ear"]
               for z in sh["Zones"])


def test_generation_deterministic():
    a = Model(ref_time=1700000000)
    a.generate(2000, 5, ["cn-hangzhou", "cn-shanghai", "cn-beijing"])
    b = Model(ref_time=1700000000)
    b.generate(300, 5, ["cn-hangzhou", "cn-shanghai", "cn-beijing"])
    ra = [a.record(p) for p in a.pairs.values()]
    rb = [b.record(p) for p in b.pairs.values()]
    assert ra[:300] == rb
    for k, r in enumerate(ra):
        regions = ["cn-hangzhou", "cn-shanghai", "cn-beijing"]
        assert r["SourceRegion"] == regions[k % 3]
        assert r["DestinationRegion"] == regions[(k + 1) % 3]
    counts = {}
    for r in ra:
        counts[r["Status"]] = counts.get(r["Status"], 0) + 1
    assert counts["normal"] > 1300
    assert 120 < counts["failovered"] < 280 and 120 < counts["stopped"] < 280
    assert 30 < counts["syncing"] < 130
    assert sum(1 for r in ra if r["ReplicaGroupId"]) < 200
    one = Model(ref_time=1700000000)
    one.generate(50, 1, ["cn-shanghai"])
    for p in one.pairs.values():
        assert p.src_region == p.dst_region == "cn-shanghai" and p.src_zone != p.dst_zone


# =====================================================================================
# the state machine

def test_failover_reprotect_start_cycle(emu):
    restore_demo(emu)
    before = record(emu, SH, P1)
    # failover must be called in the destination region
    err(emu.call("FailoverDiskReplicaPair", {"RegionId": SH, "ReplicaPairId": P1}), 403,
        "OperationDenied.OperateNotAllowedForPrimary")
    ok(emu.call("FailoverDiskReplicaPair", {"RegionId": BJ, "ReplicaPairId": P1}))
    assert record(emu, SH, P1)["Status"] == "failovering"
    wait_status(emu, P1, "failovered")
    err(emu.call("FailoverDiskReplicaPair", {"RegionId": BJ, "ReplicaPairId": P1}), 403,
        "OperationDenied.InvalidStatus")
    err(emu.call("ReprotectDiskReplicaPair", {"RegionId": SH, "ReplicaPairId": P1}), 403,
        "OperationDenied.OperateNotAllowedForPrimary")
    ok(emu.call("ReprotectDiskReplicaPair", {"RegionId": BJ, "ReplicaPairId": P1}))
    assert record(emu, SH, P1)["Status"] == "reprotecting"
    wait_status(emu, P1, "stopped")
    # direction reversed: now seen as production from Beijing
    assert record(emu, SH, P1) is None
    after = record(emu, BJ, P1)
    assert after["SourceRegion"] == BJ and after["DestinationRegion"] == SH
    assert after["SourceDiskId"] == before["DestinationDiskId"]
    assert after["SourceZoneId"] == before["DestinationZoneId"]
    assert after["PrimaryRegion"] == SH and after["StandbyRegion"] == BJ
    assert record(emu, SH, P1, "backup")["Site"] == "backup"
    # start from either region
    ok(emu.call("StartDiskReplicaPair", {"RegionId": SH, "ReplicaPairId": P1}))
    r = record(emu, BJ, P1)
    assert r["Status"] in ("syncing", "initial_syncing")
    prog = ok(emu.call("DescribeDiskReplicaPairProgress",
                       {"RegionId": BJ, "ReplicaPairId": P1}))
    assert 0 <= prog["Progress"] < 100
    wait_status(emu, P1, "normal")
    r = record(emu, BJ, P1)
    assert r["LastRecoverPoint"] >= int(time.time()) - 5
    prog = ok(emu.call("DescribeDiskReplicaPairProgress",
                       {"RegionId": SH, "ReplicaPairId": P1}))
    assert prog["Progress"] == 100 and prog["RecoverPoint"] == r["LastRecoverPoint"]
    c = emu.counters()
    assert c["applied"] == {"FailoverDiskReplicaPair": 1, "ReprotectDiskReplicaPair": 1,
                            "StartDiskReplicaPair": 1}
    restore_demo(emu)


def test_reprotect_without_reverse_keeps_direction(emu):
    restore_demo(emu)
    ok(emu.call("ReprotectDiskReplicaPair",
                {"RegionId": BJ, "ReplicaPairId": P2, "ReverseReplicate": "false"}))
    wait_status(emu, P2, "stopped")
    r = record(emu, SH, P2)
    assert r["SourceRegion"] == SH and r["DestinationRegion"] == BJ
    restore_demo(emu)


def test_invalid_transitions_and_unknown_pairs(emu):
    restore_demo(emu)
    err(emu.call("ReprotectDiskReplicaPair", {"RegionId": BJ, "ReplicaPairId": P1}), 403,
        "OperationDenied.InvalidStatus")
    err(emu.call("StopDiskReplicaPair", {"RegionId": BJ, "ReplicaPairId": P3}), 403,
        "OperationDenied.InvalidStatus")
    err(emu.call("StartDiskReplicaPair", {"RegionId": SH, "ReplicaPairId": P1}), 403,
        "OperationDenied.InvalidStatus")
    err(emu.call("DeleteDiskReplicaPair", {"RegionId": SH, "ReplicaPairId": P1}), 403,
        "OperationDenied.InvalidStatus")
    err(emu.call("ModifyDiskReplicaPair", {"RegionId": SH, "ReplicaPairId": P1,
                                           "PairName": "x-renamed"}), 403,
        "OperationDenied.InvalidStatus")
    # delete must be called in the source region
    err(emu.call("DeleteDiskReplicaPair", {"RegionId": SH, "ReplicaPairId": P3}), 403,
        "OperationDenied.OperateNotAllowedForStandby")
    for action in ("StartDiskReplicaPair", "StopDiskReplicaPair", "FailoverDiskReplicaPair",
                   "ReprotectDiskReplicaPair", "DeleteDiskReplicaPair",
                   "ModifyDiskReplicaPair", "DescribeDiskReplicaPairProgress"):
        err(emu.call(action, {"RegionId": SH, "ReplicaPairId": "pair-cn-nothere0000"}),
            404, "NoSuchResource")
    # a pair seen from neither side of the region
    err(emu.call("StopDiskReplicaPair", {"RegionId": "cn-hangzhou", "ReplicaPairId": P1}),
        404, "NoSuchResource")
    assert emu.counters().get("applied") == {}


def test_stop_modify_delete(emu):
    restore_demo(emu)
    ok(emu.call("StopDiskReplicaPair", {"RegionId": SH, "ReplicaPairId": P1}))
    assert record(emu, SH, P1)["Status"] == "stopping"
    wait_status(emu, P1, "stopped")
    ok(emu.call("ModifyDiskReplicaPair", {"RegionId": BJ, "ReplicaPairId": P1,
                                          "PairName": "db-renamed", "RPO": 900,
                                          "EnableRtc": "false"}))
    r = record(emu, SH, P1)
    assert r["PairName"] == "db-renamed" and r["EnableRtc"] is False
    err(emu.call("ModifyDiskReplicaPair", {"RegionId": BJ, "ReplicaPairId": P1,
                                           "PairName": "http://x"}), 400,
        "InvalidParameter")
    # create a throw-away pair and delete it
    b = ok(emu.call("CreateDiskReplicaPair", {
        "RegionId": SH, "SourceZoneId": "cn-shanghai-e", "DiskId": "d-uf6tmp000000000000001",
        "DestinationRegionId": BJ, "DestinationZoneId": "cn-beijing-f",
        "DestinationDiskId": "d-2zetmp000000000000001", "PairName": "tmp-pair",
        "ChargeType": "PREPAY", "Period": 1, "Bandwidth": 20480,
        "Tag.1.Key": "env", "Tag.1.Value": "test"}, client_token=uuid.uuid4().hex))
    pid = b["ReplicaPairId"]
    assert re.match(r"^pair-cn-[a-z0-9]{11}$", pid) and b["OrderId"].isdigit()
    assert record(emu, SH, pid)["Status"] == "creating"
    wait_status(emu, pid, "created")
    prog = ok(emu.call("DescribeDiskReplicaPairProgress", {"RegionId": SH,
                                                           "ReplicaPairId": pid}))
    assert prog == {"RequestId": prog["RequestId"], "Progress": 0}
    ok(emu.call("StartDiskReplicaPair", {"RegionId": SH, "ReplicaPairId": pid}))
    assert record(emu, SH, pid)["Status"] == "initial_syncing"
    ok(emu.call("StopDiskReplicaPair", {"RegionId": SH, "ReplicaPairId": pid}))
    wait_status(emu, pid, "stopped")
    ok(emu.call("DeleteDiskReplicaPair", {"RegionId": SH, "ReplicaPairId": pid}))
    assert record(emu, SH, pid)["Status"] == "deleting"
    deadline = time.monotonic() + 5
    while record(emu, SH, pid) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert record(emu, SH, pid) is None
    err(emu.call("DescribeDiskReplicaPairProgress", {"RegionId": SH, "ReplicaPairId": pid}),
        404, "NoSuchResource")
    restore_demo(emu)


def test_zero_delay_settles_on_next_read(emu):
    restore_demo(emu)
    emu.config(transition_delay=0)
    ok(emu.call("StopDiskReplicaPair", {"RegionId": SH, "ReplicaPairId": P4}))
    assert record(emu, BJ, P4)["Status"] == "stopped"
    restore_demo(emu)


def test_async_invalid_via_admin(emu):
    restore_demo(emu)
    s, rec = emu.set_pair(P4, status="invalid", StatusMessage="DeviceRemoved", after=0.2)
    assert s == 200 and rec["Status"] == "normal"
    time.sleep(0.3)
    r = record(emu, BJ, P4)
    assert (r["Status"], r["StatusMessage"]) == ("invalid", "DeviceRemoved")
    emu.set_pair(P4, status="normal", StatusMessage="")
    restore_demo(emu)


# =====================================================================================
# idempotency

def test_client_token_idempotency(emu):
    restore_demo(emu)
    token = str(uuid.uuid4())
    a = ok(emu.call("StopDiskReplicaPair", {"RegionId": SH, "ReplicaPairId": P1},
                    client_token=token))
    b = ok(emu.call("StopDiskReplicaPair", {"RegionId": SH, "ReplicaPairId": P1},
                    client_token=token, sig="v1"))
    assert a["RequestId"] == b["RequestId"]
    err(emu.call("StopDiskReplicaPair", {"RegionId": BJ, "ReplicaPairId": P1},
                 client_token=token), 400, "IdempotentParameterMismatch")
    c = emu.counters()
    assert c["calls"]["StopDiskReplicaPair"] == 3, emu.requests()
    assert c["applied"]["StopDiskReplicaPair"] == 1
    # the same token for another action is independent
    wait_status(emu, P1, "stopped")
    ok(emu.call("StartDiskReplicaPair", {"RegionId": SH, "ReplicaPairId": P1},
                client_token=token))
    wait_status(emu, P1, "normal")
    # CreateDiskReplicaPair returns the same ReplicaPairId
    params = {"RegionId": SH, "SourceZoneId": "cn-shanghai-f", "DiskId": "d-uf6idem00000000000001",
              "DestinationRegionId": BJ, "DestinationZoneId": "cn-beijing-g",
              "DestinationDiskId": "d-2zeidem00000000000001"}
    token = str(uuid.uuid4())
    x = ok(emu.call("CreateDiskReplicaPair", params, client_token=token))
    y = ok(emu.call("CreateDiskReplicaPair", params, client_token=token))
    assert x == y
    assert emu.counters()["applied"]["CreateDiskReplicaPair"] == 1
    emu.admin("DELETE", "/_admin/pair?id=" + x["ReplicaPairId"])
    restore_demo(emu)


def test_drop_after_action_then_retry(emu):
    restore_demo(emu)
    emu.fault("drop_after_action", "FailoverDiskReplicaPair", 1)
    token = str(uuid.uuid4())
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        emu.call("FailoverDiskReplicaPair", {"RegionId": BJ, "ReplicaPairId": P1},
                 client_token=token)
    assert emu.pair(P1)["Status"] in ("failovering", "failovered")
    b = ok(emu.call("FailoverDiskReplicaPair", {"RegionId": BJ, "ReplicaPairId": P1},
                    client_token=token))
    log = [e for e in emu.requests() if e["action"] == "FailoverDiskReplicaPair"]
    assert [e["code"] for e in log] == ["fault:drop_after_action", None]
    assert log[0]["request_id"] == log[1]["request_id"] == b["RequestId"]
    c = emu.counters()
    assert c["calls"]["FailoverDiskReplicaPair"] == 2
    assert c["applied"]["FailoverDiskReplicaPair"] == 1
    restore_demo(emu)


# =====================================================================================
# faults

@pytest.mark.parametrize("kind,status,code", [
    ("http500", 500, "InternalError"), ("http503", 503, "ServiceUnavailable"),
    ("http504", 504, "RequestTimeout"), ("last_token_processing", 403, "LastTokenProcessing"),
    ("invalid_status", 403, "OperationDenied.InvalidStatus"),
    ("forbidden", 403, "Forbidden.Action")])
def test_error_faults(emu, kind, status, code):
    emu.fault(kind, "DescribeRegions", 2)
    for _ in range(2):
        err(emu.call("DescribeRegions", {}), status, code)
    ok(emu.call("DescribeRegions", {}))
    assert emu.counters()["by_code"]["DescribeRegions"] == {code: 2, "OK": 1}


def test_throttle_fault(emu):
    emu.fault("throttle", "*", 1, 1500)
    s, h, b = emu.call("DescribeDiskReplicaPairs", {"RegionId": SH})
    assert (s, b["Code"]) == (400, "Throttling.User")
    assert h["x-ratelimit-user-api"] == "Limit:1,Remain:0,TimeLeft:1500,Reset:0"
    ok(emu.call("DescribeDiskReplicaPairs", {"RegionId": SH}))


def test_fault_action_filter_and_forever(emu):
    emu.fault("http503", "StopDiskReplicaPair", -1)
    ok(emu.call("DescribeRegions", {}))
    for _ in range(3):
        err(emu.call("StopDiskReplicaPair", {"RegionId": SH, "ReplicaPairId": P1}), 503,
            "ServiceUnavailable")
    s, faults = emu.admin("GET", "/_admin/faults")
    assert faults[0]["count"] == -1
    emu.clear_faults()
    assert emu.admin("GET", "/_admin/faults")[1] == []
    assert emu.pair(P1)["Status"] == "normal"


def test_latency_fault(emu):
    emu.fault("latency", "DescribeRegions", 1, 400)
    t = time.monotonic()
    ok(emu.call("DescribeRegions", {}))
    assert time.monotonic() - t >= 0.39


def test_hang_fault_does_not_block_others(emu):
    emu.fault("hang", "DescribeRegions", 1)
    result = {}

    def hung():
        try:
            emu.call("DescribeRegions", {}, timeout=1.0)
            result["r"] = "answered"
        except (socket.timeout, TimeoutError):
            result["r"] = "timeout"

    t = threading.Thread(target=hung)
    t.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    ok(emu.call("DescribeDiskReplicaPairs", {"RegionId": SH}))
    assert time.monotonic() - t0 < 0.5
    t.join(5)
    assert result["r"] == "timeout"
    # the hang ends once the client went away
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if any(e.get("code") == "fault:hang" for e in emu.requests()):
            break
        time.sleep(0.05)
    assert any(e.get("code") == "fault:hang" for e in emu.requests())


def test_hang_fault_with_limit(emu):
    emu.fault("hang", "DescribeRegions", 1, 0.3)
    t = time.monotonic()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        emu.call("DescribeRegions", {}, timeout=5)
    assert 0.25 <= time.monotonic() - t < 2


def test_malformed_truncated_drop_reset(emu):
    emu.fault("malformed", "DescribeRegions", 1)
    s, h, body = emu.call("DescribeRegions", {}, raw=True)
    assert s == 200
    with pytest.raises(ValueError):
        json.loads(body)
    emu.fault("malformed", "DescribeRegions", 1, "html")
    s, h, body = emu.call("DescribeRegions", {}, raw=True)
    assert s == 200 and body.startswith(b"<html>")
    emu.fault("truncated", "DescribeRegions", 1)
    with pytest.raises(http.client.IncompleteRead):
        emu.call("DescribeRegions", {})
    emu.fault("drop", "DescribeRegions", 1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        emu.call("DescribeRegions", {})
    emu.fault("reset", "DescribeRegions", 1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        emu.call("DescribeRegions", {})
    ok(emu.call("DescribeRegions", {}))
    by = emu.counters()["by_code"]["DescribeRegions"]
    assert by == {"fault:malformed": 2, "fault:truncated": 1, "fault:drop": 1,
                  "fault:reset": 1, "OK": 1}


def test_drop_does_not_act(emu):
    restore_demo(emu)
    emu.fault("drop", "StopDiskReplicaPair", 1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        emu.call("StopDiskReplicaPair", {"RegionId": SH, "ReplicaPairId": P1},
                 client_token="t-drop")
    assert emu.pair(P1)["Status"] == "normal"
    assert emu.counters()["applied"] == {}


def test_fault_flag_on_command_line(request):
    e = _start(request, "--fault", "http503:DescribeRegions:1",
               "--fault", "throttle:*:1:250")
    s, h, b = e.call("DescribeDiskReplicaPairs", {"RegionId": SH})
    assert s == 400 and "TimeLeft:250" in h["x-ratelimit-user-api"]
    err(e.call("DescribeRegions", {}), 503, "ServiceUnavailable")
    ok(e.call("DescribeRegions", {}))


# =====================================================================================
# instance metadata and STS keys

def test_imds_flow_and_sts_keys(emu):
    creds = imds_credentials(emu.port, v2=True)
    assert creds["Code"] == "Success" and creds["AccessKeyId"].startswith("STS.")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", creds["Expiration"])
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", creds["LastUpdated"])
    again = imds_credentials(emu.port, v2=False)
    assert again["AccessKeyId"] != creds["AccessKeyId"]
    for sig in ("v3", "v1"):
        ok(emu.call("DescribeDiskReplicaPairs", {"RegionId": SH}, sig=sig,
                    ak=creds["AccessKeyId"], secret=creds["AccessKeySecret"],
                    token=creds["SecurityToken"]))
    err(emu.call("DescribeRegions", {}, ak=creds["AccessKeyId"],
                 secret=creds["AccessKeySecret"]), 400, "MissingSecurityToken")
    err(emu.call("DescribeRegions", {}, ak=creds["AccessKeyId"],
                 secret=creds["AccessKeySecret"], token=again["SecurityToken"]), 400,
        "InvalidSecurityToken.MismatchWithAccessKey")
    err(emu.call("DescribeRegions", {}, sig="v1", ak=creds["AccessKeyId"],
                 secret=creds["AccessKeySecret"], token="x" + creds["SecurityToken"]), 400,
        "InvalidSecurityToken.MismatchWithAccessKey")
    status, text = imds(emu.port, "/latest/meta-data/ram/security-credentials/Nope")
    assert status == 404
    status, text = imds(emu.port, "/latest/api/token", "PUT")
    assert status == 400
    status, text = imds(emu.port, "/latest/meta-data/ram/security-credentials/",
                        token="bogus")
    assert status == 401
    c = emu.counters()
    # two credential flows (3 + 2 requests) and three bad requests
    assert c["calls"]["IMDS"] == 8
    log = json.dumps(emu.requests())
    for secret in (creds["AccessKeySecret"], creds["SecurityToken"],
                   again["SecurityToken"]):
        assert secret not in log


def test_imds_fault(emu):
    emu.fault("http500", "IMDS", 1)
    status, _ = imds(emu.port, "/latest/meta-data/ram/security-credentials/")
    assert status == 500
    status, _ = imds(emu.port, "/latest/meta-data/ram/security-credentials/")
    assert status == 200


def test_sts_expiry_and_imds_v2_only(request):
    e = _start(request, "--sts-ttl", "1", "--imds-v2-only")
    status, _ = imds(e.port, "/latest/meta-data/ram/security-credentials/")
    assert status == 401
    creds = imds_credentials(e.port, v2=True)
    kw = dict(ak=creds["AccessKeyId"], secret=creds["AccessKeySecret"],
              token=creds["SecurityToken"])
    ok(e.call("DescribeRegions", {}, **kw))
    time.sleep(1.1)
    err(e.call("DescribeRegions", {}, **kw), 400, "InvalidSecurityToken.Expired")
    err(e.call("DescribeRegions", {}, sig="v1", **kw), 400, "InvalidSecurityToken.Expired")


def test_assume_role(emu):
    b = ok(emu.call("AssumeRole", {"RoleArn": "acs:ram::123456789012:role/demo",
                                   "RoleSessionName": "ebsfs", "DurationSeconds": 900},
                    sig="v1", form=True, version="2015-04-01"))
    c = b["Credentials"]
    ok(emu.call("DescribeRegions", {}, ak=c["AccessKeyId"], secret=c["AccessKeySecret"],
                token=c["SecurityToken"]))


# =====================================================================================
# admin, log, process

def test_admin_counters_and_reset(emu):
    ok(emu.call("DescribeRegions", {}))
    err(emu.call("DescribeRegions", {}, bad_signature=True), 400, "SignatureDoesNotMatch")
    c = emu.counters()
    assert c == {"calls": {"DescribeRegions": 2},
                 "by_code": {"DescribeRegions": {"OK": 1, "SignatureDoesNotMatch": 1}},
                 "applied": {}, "total": 2}
    log = emu.requests()
    assert len(log) == 2
    for e in log:
        for k in ("t", "action", "region", "params", "client_token", "status", "code",
                  "request_id", "access_key_id"):
            assert k in e
        assert e["access_key_id"] == "testid"
    text = json.dumps(log)
    assert "testsecret" not in text and "Signature=" not in text
    assert not any(k.startswith("Signature") or k in ("AccessKeyId", "SecurityToken")
                   for e in log for k in e["params"])
    assert emu.admin("POST", "/_admin/reset")[0] == 200
    assert emu.counters() == {"calls": {}, "by_code": {}, "applied": {}, "total": 0}
    assert emu.requests() == []
    assert emu.admin("GET", "/_admin/pair?id=pair-cn-nothere0000")[0] == 404
    assert emu.admin("GET", "/_admin/nothing")[0] == 404


def test_log_file_and_sigterm(request, tmp_path):
    log = tmp_path / "req.log"
    e = _start(request, "--log", str(log), "--fixture", DEMO)
    ok(e.call("DescribeDiskReplicaPairs", {"RegionId": SH}, sig="v1",
              token=None))
    creds = imds_credentials(e.port)
    ok(e.call("DescribeRegions", {}, ak=creds["AccessKeyId"],
              secret=creds["AccessKeySecret"], token=creds["SecurityToken"]))
    assert e.stop() == 0
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["action"] for x in lines] == ["DescribeDiskReplicaPairs", "IMDS", "IMDS",
                                            "IMDS", "DescribeRegions"]
    text = log.read_text()
    assert creds["AccessKeySecret"] not in text and creds["SecurityToken"] not in text
    assert "testsecret" not in text
    assert "stopped after 5 requests" in e.stderr()


def test_refuses_non_loopback_host(tmp_path):
    p = subprocess.run([PYTHON, EMULATOR, "--host", "0.0.0.0", "--port-file",
                        str(tmp_path / "port")], capture_output=True, timeout=20)
    assert p.returncode == 2 and b"loopback" in p.stderr
    assert not (tmp_path / "port").exists()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not available")
def test_tls(request, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    e = _start(request, "--tls-cert", str(cert), "--tls-key", str(key), "--fixture", DEMO,
               tls=True)
    b = ok(e.call("DescribeDiskReplicaPairs", {"RegionId": SH}))
    assert b["TotalCount"] == 2
    assert e.counters()["total"] == 1
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError,
                        http.client.BadStatusLine)):
        call(e.port, "DescribeRegions", {})     # plain HTTP to the TLS port


def test_large_page_is_fast(request):
    e = _start(request, "--pairs", "20000", "--regions", "cn-hangzhou,cn-shanghai")
    ok(e.call("DescribeDiskReplicaPairs", {"RegionId": "cn-hangzhou", "MaxResults": 500}))
    best = 1e9
    for _ in range(3):
        t = time.monotonic()
        b = ok(e.call("DescribeDiskReplicaPairs",
                      {"RegionId": "cn-hangzhou", "MaxResults": 500}))
        best = min(best, time.monotonic() - t)
    assert len(b["ReplicaPairs"]) == 500 and b["TotalCount"] == 10000
    assert best < 0.1, best
