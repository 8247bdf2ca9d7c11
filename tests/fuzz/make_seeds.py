#!/usr/bin/python3
"""Writes the seed corpora of tests/fuzz/corpus/<target>/ from real-shaped data: the examples
of docs/ebs-api.md (2.2.1 pages, 4.1 error bodies, 7.2 INI, 7.3 config.json, 7.4 IMDS) and
pages and errors captured from the EBS emulator. Run from the repository root:

    /usr/bin/python3 tests/fuzz/make_seeds.py

Standard library only. Existing seeds of the same name are overwritten; others are kept."""

import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
sys.path.insert(0, os.path.join(ROOT, "tests", "emulator"))

DOC_PAGE = """{
  "RequestId": "AAA478A0-BEE6-1D42-BEB6-A9CFEAD60001",
  "NextToken": "",
  "PageNumber": 1,
  "PageSize": 10,
  "TotalCount": 1,
  "ReplicaPairs": [
    {
      "ReplicaPairId": "pair-cn-abc123", "PairName": "db-data", "Description": "",
      "Status": "normal", "StatusMessage": "",
      "SourceDiskId": "d-bp1aaaa", "SourceRegion": "cn-beijing", "SourceZoneId": "cn-beijing-f",
      "DestinationDiskId": "d-uf6bbbb", "DestinationRegion": "cn-shanghai", "DestinationZoneId": "cn-shanghai-e",
      "PrimaryRegion": "cn-beijing", "PrimaryZone": "cn-beijing-f",
      "StandbyRegion": "cn-shanghai", "StandbyZone": "cn-shanghai-e",
      "RPO": 900, "Bandwidth": 10240, "LastRecoverPoint": 1704067200,
      "ChargeType": "PREPAY", "ExpiredTime": 1706745600, "CreateTime": 1704060000,
      "ReplicaGroupId": "", "ReplicaGroupName": "", "Site": "production",
      "ResourceGroupId": "rg-acfmvs0001", "EnableRtc": false,
      "Tags": [ { "TagKey": "env", "TagValue": "prod" } ]
    }
  ]
}
"""

# Variants the parser promises to tolerate: the older wrapper, nulls, missing keys,
# milliseconds, reals, several tags, a NextToken.
PAGE_VARIANTS = {
    "wrapper": {"RequestId": "R-1", "ReplicaPairs": {"ReplicaPair": [
        {"ReplicaPairId": "pair-cn-w1", "Status": "created", "RPO": 900}]}},
    "nulls": {"RequestId": "R-2", "NextToken": None, "ReplicaPairs": [
        {"ReplicaPairId": "pair-cn-n1", "PairName": None, "RPO": None, "EnableRtc": None,
         "Tags": None, "CreateTime": None}]},
    "empty": {"RequestId": "R-3", "ReplicaPairs": [], "TotalCount": 0},
    "no_list": {"RequestId": "R-4"},
    "ms_reals": {"RequestId": "R-5", "NextToken": "tok-2", "ReplicaPairs": [
        {"ReplicaPairId": "pair-cn-m1", "CreateTime": 1704060000123, "LastRecoverPoint": 1.7e9,
         "ExpiredTime": 0, "Bandwidth": 0, "EnableRtc": True,
         "Tags": [{"TagKey": "z", "TagValue": "1"}, {"TagKey": "a", "TagValue": "x=y"},
                  {"TagKey": "", "TagValue": "dropped"}, {"TagKey": "m\nn", "TagValue": "v\r"}]},
        {"PairName": "no id, skipped"}, 42, None]},
    "bad_list": {"RequestId": "R-6", "ReplicaPairs": "not a list"},
    "unicode": {"RequestId": "R-7", "ReplicaPairs": [
        {"ReplicaPairId": "pair-cn-u1", "Description": "d\u00e9j\u00e0 \u4e2d\u6587 \U0001f600",
         "StatusMessage": "DeviceKeyChanged", "Status": "invalid", "RPO": -1}]},
}

ERRORS = {
    "invalid_status": {
        "RequestId": "6BE56E05-0000-0000-0000-FD90C4FFD581",
        "HostId": "ebs.cn-hangzhou.aliyuncs.com",
        "Code": "OperationDenied.InvalidStatus",
        "Message": "The operation is not allowed in current status.",
        "Recommend": "https://api.aliyun.com/troubleshoot?q=OperationDenied.InvalidStatus"
                     "&product=Ebs&requestId=6BE56E05-0000-0000-0000-FD90C4FFD581"},
    "lower_case": {"requestId": "r-1", "code": "Throttling.User",
                   "message": "Request was denied due to user flow control."},
    "signature": {"RequestId": "r-2", "HostId": "ebs.cn-shanghai.aliyuncs.com",
                  "Code": "SignatureDoesNotMatch",
                  "Message": "Specified signature is not matched with our calculation. server "
                             "string to sign is:GET&%2F&AccessKeyId%3Dtestid%26SecurityToken%3Dx"},
    "access_denied": {"RequestId": "r-3", "Code": "Forbidden.Action",
                      "Message": "User not authorized to operate on the specified resource.",
                      "AccessDeniedDetail": {"AuthAction": "ebs:FailoverDiskReplicaPair",
                                             "NoPermissionType": "ImplicitDeny"}},
    "no_code": {"RequestId": "r-4", "Message": "no code here"},
}

INI = {
    "doc": """[default]
type = access_key
access_key_id = foo
access_key_secret = bar

[ecs]
type = ecs_ram_role
role_name = EcsRamRoleTest        ; optional, auto-discovered if absent

[ram]
type = ram_role_arn
access_key_id = foo
access_key_secret = bar
role_arn = acs:ram::123456789012:role/demo
role_session_name = session_name
; optional: policy = {...}

[oidc]
type = oidc_role_arn               ; README only; not handled by Go profile provider
oidc_provider_arn = ...
oidc_token_file_path = ...
role_arn = ...
role_session_name = ...
""",
    "ecs_default": "# comment\n[default]\ntype=ecs_ram_role\n",
    "quoted": "[ default ]\r\ntype = \"access_key\"\r\naccess_key_id='id'\r\n"
              "access_key_secret = se;cret # note\r\n",
    "unclosed": "[default\ntype = access_key\n",
    "no_equals": "[default]\ntype access_key\n",
    "other_only": "[prod]\ntype = access_key\naccess_key_id = a\naccess_key_secret = b\n",
}

CLI = {
    "ak": {"current": "default", "profiles": [
        {"name": "default", "mode": "AK", "access_key_id": "LTAI5tExample",
         "access_key_secret": "secretExample", "sts_token": "", "ram_role_name": "",
         "region_id": "cn-shanghai", "output_format": "json", "language": "en"}],
        "meta_path": ""},
    "sts": {"current": "x", "profiles": [
        {"name": "x", "mode": "AK"},
        {"name": "default", "mode": "StsToken", "access_key_id": "STS.id",
         "access_key_secret": "s", "sts_token": "tok", "region_id": "cn-beijing"}]},
    "ecs": {"current": "default", "profiles": [
        {"name": "default", "mode": "EcsRamRole", "ram_role_name": "EcsRamRoleTest"}]},
    "ram_arn": {"current": "default", "profiles": [
        {"name": "default", "mode": "RamRoleArn", "access_key_id": "a",
         "access_key_secret": "b", "ram_role_arn": "acs:ram::1:role/r",
         "ram_session_name": "s", "expired_seconds": 900}]},
    "no_profiles": {"current": "default"},
    "profiles_object": {"profiles": {"name": "default"}},
}

IMDS = {
    "doc": {"AccessKeyId": "STS.xxx", "AccessKeySecret": "...", "SecurityToken": "...",
            "Expiration": "2024-01-01T06:00:00Z", "LastUpdated": "2024-01-01T00:00:00Z",
            "Code": "Success"},
    "failed": {"Code": "Failed", "Message": "role not found"},
    "bad_time": {"AccessKeyId": "STS.a", "AccessKeySecret": "b", "SecurityToken": "c",
                 "Expiration": "2024-13-45T99:00:00", "Code": "Success"},
    "no_token": {"AccessKeyId": "STS.a", "AccessKeySecret": "b",
                 "Expiration": "2024-01-01T06:00:00Z", "Code": "Success"},
}

PCT = [
    b"",
    b"abcXYZ019-_.~",
    b"a b+c*d%7E/e:f",
    "d\u00e9j\u00e0 \u4e2d\u6587 \U0001f600".encode(),
    b"Action=DescribeDiskReplicaPairs\nVersion=2021-07-30\nRegionId=cn-shanghai\n"
    b"MaxResults=500\nSite=production\nNextToken=abc/def+==\nFormat=JSON",
    b"AccessKeyId=testid\nSignatureMethod=HMAC-SHA1\nSignatureVersion=1.0\n"
    b"SignatureNonce=3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf\nTimestamp=2016-02-23T12:46:24Z\n"
    b"Action=DescribeRegions\nVersion=2014-05-26",
    b"PairIds=pair-cn-a,pair-cn-b\nClientToken=0c593ea1-3bea-11e9-b96b-88e9fe637760\n"
    b"k=\n=v\nk=v2\nk=v1\nk",
    bytes(range(1, 256)),
]

CONTROL = [
    b"\x001", b"\x001\n", b"\x00", b"\x000", b"\x002", b"\x0011", b"\x001 1", b"\x00yes",
    b"\x001\n\n", b"\x00 1", b"\x001\r\n", b"\x001\x00", b"\x00failover", b"\x00reprotect",
    b"\x80" + struct.pack("=q", 1) + b"1", b"\x80" + struct.pack("=q", 0) + b"1\n",
    b"\x80" + struct.pack("=q", -1) + b"1",
]


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def compact(doc):
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def capture():
    """Pages and error bodies from the emulator, as raw bytes."""
    from client import Emulator  # noqa: E402

    pages, errors = [], []
    with Emulator("--pairs", "30", "--regions", "cn-shanghai,cn-beijing,cn-hangzhou") as emu:
        for region in ("cn-shanghai", "cn-beijing"):
            for site in ("production", "backup"):
                token = None
                for _ in range(3):
                    params = {"RegionId": region, "MaxResults": "4", "Site": site}
                    if token:
                        params["NextToken"] = token
                    status, _, body = emu.call("DescribeDiskReplicaPairs", params, raw=True)
                    pages.append(("%s_%s_%d" % (region, site, len(pages)), body))
                    token = json.loads(body).get("NextToken")
                    if not token:
                        break
        status, _, body = emu.call("DescribeDiskReplicaPairs",
                                   {"RegionId": "cn-hangzhou", "MaxResults": "500"}, raw=True)
        pages.append(("all_500", body))
        for name, kw in (("bad_signature", {"bad_signature": True}),
                         ("unknown_key", {"ak": "nosuchkey"})):
            _, _, body = emu.call("DescribeDiskReplicaPairs", {"RegionId": "cn-shanghai"},
                                  raw=True, **kw)
            errors.append((name, body))
        _, _, body = emu.call("FailoverDiskReplicaPair",
                              {"RegionId": "cn-shanghai", "ReplicaPairId": "pair-nope"},
                              client_token="0c593ea1-3bea-11e9-b96b-88e9fe637760", raw=True)
        errors.append(("no_such_pair", body))
        _, _, body = emu.call("DescribeDiskReplicaPairs", {"RegionId": "cn-shanghai",
                                                           "MaxResults": "9999"}, raw=True)
        errors.append(("bad_max_results", body))
    with Emulator("--pairs", "3", "--create-time-ms") as emu:
        _, _, body = emu.call("DescribeDiskReplicaPairs", {"RegionId": "cn-shanghai"}, raw=True)
        pages.append(("create_time_ms", body))
    return pages, errors


def main():
    pages = [("doc_example", DOC_PAGE.encode())]
    pages += [(k, compact(v).encode()) for k, v in PAGE_VARIANTS.items()]
    errors = [(k, compact(v).encode()) for k, v in ERRORS.items()]
    try:
        got_pages, got_errors = capture()
        pages += [("emu_" + n, b) for n, b in got_pages]
        errors += [("emu_" + n, b) for n, b in got_errors]
    except Exception as e:  # the static seeds are still worth writing
        print("emulator capture failed: %s" % e, file=sys.stderr)

    for name, body in pages:
        write("pairs_page", "page_" + name, body)
        write("attrs", "page_" + name, body)
    for name, body in errors:
        write("pairs_page", "error_" + name, body)
    for name, text in INI.items():
        write("creds", "ini_" + name, b"\x00" + text.encode())
    for name, doc in CLI.items():
        write("creds", "cli_" + name, b"\x01" + json.dumps(doc, indent=2).encode())
    for name, doc in IMDS.items():
        write("creds", "imds_" + name, b"\x02" + compact(doc).encode())
    for i, data in enumerate(PCT):
        write("pct", "seed_%02d" % i, data)
    for i, data in enumerate(CONTROL):
        write("control", "seed_%02d" % i, data)


if __name__ == "__main__":
    main()
