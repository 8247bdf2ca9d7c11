"""HTTP side of the EBS emulator: routing, authentication, operations, idempotency,
faults, instance metadata, admin endpoint, counters and the request log.

See README.md beside this file for the contract and ../../../shared/docs/ebs-api.md for the
API.  Standard library only.
"""

import base64
import calendar
import collections
import json
import random
import re
import secrets
import select
import socket
import ssl
import string
import struct
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import signing
from errors import ApiError, invalid, missing
from model import STATUSES, parse_bool, region_info, region_zones

EBS_VERSION = "2021-07-30"
STS_VERSION = "2015-04-01"
TIME_WINDOW = 15 * 60          # +- seconds a Timestamp / x-acs-date may be off
NONCE_TTL = 30 * 60            # nonces are remembered at least this long (>= 15 min)
MAX_BODY = 4 * 1024 * 1024
MAX_HANG = 3600.0              # a "forever" hang still ends after an hour
MAX_LOG = 100000               # request log entries kept in memory
JSON_TYPE = "application/json;charset=utf-8"

# Parameters that are not business parameters (not logged as params, not part of the
# ClientToken fingerprint).
COMMON_PARAMS = frozenset((
    "Action", "Version", "Format", "AccessKeyId", "Signature", "SignatureMethod",
    "SignatureVersion", "SignatureNonce", "SignatureType", "Timestamp", "SecurityToken",
    "ClientToken"))

FAULT_KINDS = ("http500", "http503", "http504", "throttle", "latency", "hang", "malformed",
               "truncated", "drop", "drop_after_action", "last_token_processing",
               "invalid_status", "forbidden", "reset")
FAULT_ERRORS = {
    "http500": "InternalError", "http503": "ServiceUnavailable", "http504": "RequestTimeout",
    "last_token_processing": "LastTokenProcessing",
    "invalid_status": "OperationDenied.InvalidStatus", "forbidden": "Forbidden.Action",
}

_TS_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?Z$")
_REGION_RE = re.compile(r"^[a-z]{2,4}(-[a-z0-9]+){1,4}$")
_NAME_RE = re.compile(r"^[A-Za-z\u4e00-\u9fff][A-Za-z0-9\u4e00-\u9fff:_.\-]{1,127}$")
_ALNUM = string.ascii_letters + string.digits


def new_request_id():
    return str(uuid.uuid4()).upper()


def iso_utc(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def parse_timestamp(value):
    m = _TS_RE.match(value or "")
    if not m:
        return None
    y, mo, d, h, mi, s = (int(x) for x in m.groups()[:6])
    try:
        return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) if 1 <= mo <= 12 else None
    except (ValueError, OverflowError):
        return None


class Fault:
    __slots__ = ("id", "kind", "action", "count", "arg")

    def __init__(self, fid, kind, action="*", count=1, arg=None):
        if kind not in FAULT_KINDS:
            raise ValueError("unknown fault kind %r (known: %s)" % (kind, ", ".join(FAULT_KINDS)))
        self.id = fid
        self.kind = kind
        self.action = action or "*"
        self.count = int(count)
        self.arg = arg

    def matches(self, action):
        if self.action == "*":
            return action != "IMDS"
        return self.action == action

    def as_dict(self):
        return {"id": self.id, "kind": self.kind, "action": self.action,
                "count": self.count, "arg": self.arg}


def parse_fault_spec(spec):
    """kind[:action[:count[:arg]]]"""
    parts = spec.split(":", 3)
    kind = parts[0]
    action = parts[1] if len(parts) > 1 and parts[1] else "*"
    count = int(parts[2]) if len(parts) > 2 and parts[2] else 1
    arg = parts[3] if len(parts) > 3 and parts[3] != "" else None
    return kind, action, count, arg


def _num(arg, default):
    if arg is None or arg == "":
        return default
    try:
        return float(arg)
    except (TypeError, ValueError):
        return default


class State:
    """Everything shared by the handler threads."""

    def __init__(self, cfg, model):
        self.cfg = cfg
        self.model = model
        self.lock = threading.RLock()       # model, idempotency cache, AK table, nonces
        self.stats_lock = threading.Lock()  # counters, request log, faults
        self.stopping = threading.Event()
        self.rng = random.Random(cfg.get("seed", 1) * 7919 + 17)
        self.keys = {}
        for ak, secret, token in cfg["aks"]:
            self.add_key(ak, secret, token=token)
        for ak, secret, token in cfg["aks_denied"]:
            self.add_key(ak, secret, token=token, denied=True)
        self.idem = {}
        self.nonces = {}
        self.nonce_q = collections.deque()
        self.imds_tokens = {}
        self.faults = []
        self.fault_seq = 0
        self.reset_stats()
        self.log_file = None
        if cfg.get("log"):
            self.log_file = open(cfg["log"], "a", encoding="utf-8", buffering=1)

    # ------------------------------------------------------------------ keys
    def add_key(self, ak, secret, token=None, expires=None, principal=None, denied=False):
        self.keys[ak] = {"secret": secret, "token": token, "expires": expires,
                         "principal": principal or ak, "denied": denied,
                         "sts": ak.startswith("STS.") or token is not None}

    def issue_sts(self, principal, ttl):
        ak = "STS." + "".join(secrets.choice(_ALNUM) for _ in range(25))
        secret = "".join(secrets.choice(_ALNUM) for _ in range(44))
        token = "CAIS" + base64.b64encode(secrets.token_bytes(300)).decode("ascii")
        now = time.time()
        expires = now + int(ttl)
        with self.lock:
            self.add_key(ak, secret, token=token, expires=expires, principal=principal)
            # keep the table bounded: forget STS keys expired for more than a day
            if len(self.keys) > 10000:
                for k in [k for k, v in self.keys.items()
                          if v["expires"] and v["expires"] < now - 86400]:
                    del self.keys[k]
        return {"AccessKeyId": ak, "AccessKeySecret": secret, "SecurityToken": token,
                "Expiration": iso_utc(expires), "LastUpdated": iso_utc(now)}

    def use_nonce(self, ak, nonce, now):
        """True if fresh (and remembers it), False if used within NONCE_TTL."""
        q = self.nonce_q
        while q and q[0][0] < now - NONCE_TTL:
            _, key = q.popleft()
            if self.nonces.get(key, now) < now - NONCE_TTL + 1:
                self.nonces.pop(key, None)
        key = (ak, nonce)
        if key in self.nonces:
            return False
        self.nonces[key] = now
        q.append((now, key))
        return True

    # ------------------------------------------------------------------ stats
    def reset_stats(self):
        with self.stats_lock:
            self.calls = collections.Counter()
            self.by_code = collections.defaultdict(collections.Counter)
            self.applied = collections.Counter()
            self.total = 0
            self.log = collections.deque(maxlen=MAX_LOG)

    def record(self, entry, applied=False):
        action = entry["action"] or "(none)"
        with self.stats_lock:
            self.calls[action] += 1
            self.by_code[action][entry["code"] or "OK"] += 1
            if applied:
                self.applied[action] += 1
            self.total += 1
            self.log.append(entry)
            if self.log_file is not None:
                try:
                    self.log_file.write(json.dumps(entry, ensure_ascii=False) + "\n")
                except (OSError, ValueError):
                    pass
        if self.cfg.get("verbose"):
            sys.stderr.write("ebs-emulator: %s %s %s %s %s\n" % (
                entry["status"], action, entry.get("region") or "-",
                entry["code"] or "OK", entry.get("access_key_id") or "-"))

    def counters(self):
        with self.stats_lock:
            return {"calls": dict(self.calls),
                    "by_code": {a: dict(c) for a, c in self.by_code.items()},
                    "applied": dict(self.applied), "total": self.total}

    # ------------------------------------------------------------------ faults
    def add_fault(self, kind, action="*", count=1, arg=None):
        with self.stats_lock:
            self.fault_seq += 1
            f = Fault(self.fault_seq, kind, action, count, arg)
            if f.count != 0:
                self.faults.append(f)
            return f

    def take_fault(self, action):
        with self.stats_lock:
            for f in self.faults:
                if f.matches(action):
                    if f.count > 0:
                        f.count -= 1
                        if f.count == 0:
                            self.faults.remove(f)
                    return f
        return None


# ====================================================================================
# parameter helpers

def req(params, name):
    v = params.get(name)
    if v is None or v == "":
        raise missing(name)
    return v


def opt_int(params, name, lo=None, hi=None, default=None):
    v = params.get(name)
    if v is None or v == "":
        return default
    try:
        n = int(v)
    except ValueError:
        raise invalid(name, "It must be an integer.")
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        raise invalid(name, "It must be between %s and %s." % (lo, hi))
    return n


def opt_bool(params, name, default=None):
    v = params.get(name)
    if v is None or v == "":
        return default
    if v.lower() == "true":
        return True
    if v.lower() == "false":
        return False
    raise invalid(name, "It must be true or false.")


def region_param(params, required=True):
    r = params.get("RegionId")
    if r is None or r == "":
        if required:
            raise missing("RegionId")
        return None
    if not _REGION_RE.match(r):
        raise ApiError("InvalidRegionId", "The specified RegionId %s is not valid." % r, 400)
    return r


def tag_params(params, limit=20):
    """Tag.N.Key / Tag.N.Value -> [(key, value or None)] ordered by N."""
    found = {}
    for k, v in params.items():
        if not k.startswith("Tag."):
            continue
        parts = k.split(".")
        if len(parts) != 3 or not parts[1].isdigit() or parts[2] not in ("Key", "Value"):
            raise invalid(k)
        found.setdefault(int(parts[1]), {})[parts[2]] = v
    if len(found) > limit:
        raise invalid("Tag", "At most %d tags." % limit)
    out = []
    for n in sorted(found):
        t = found[n]
        if not t.get("Key"):
            raise missing("Tag.%d.Key" % n)
        out.append((t["Key"], t.get("Value")))
    return out


def check_name(params, name, lo, hi, pattern=None):
    v = params.get(name)
    if v is None:
        return None
    if not (lo <= len(v) <= hi) or v.startswith(("http://", "https://")) or \
            (pattern is not None and not pattern.match(v)):
        raise invalid(name)
    return v


def check_client_token(token):
    if token is None:
        return None
    if len(token) > 64 or not token.isascii() or not token.isprintable() or token == "":
        raise invalid("ClientToken", "It must be 1-64 printable ASCII characters.")
    return token


# ====================================================================================
# operations: fn(state, params, ctx, now) -> payload dict (RequestId added by caller)

def op_describe_regions(st, params, ctx, now):
    region_param(params, required=False)
    rtype = params.get("ResourceType")
    if rtype not in (None, "", "ear", "lens", "dbsc"):
        raise invalid("ResourceType")
    lang = params.get("AcceptLanguage") or "zh-CN"
    if lang not in ("zh-CN", "en-US", "ja"):
        raise invalid("AcceptLanguage")
    types = [rtype] if rtype else ["ear", "lens", "dbsc"]
    regions = []
    for r in st.cfg["regions"]:
        zh, en, _, _ = region_info(r)
        regions.append({
            "RegionId": r, "LocalName": zh if lang == "zh-CN" else en,
            "RegionEndpoint": "ebs.%s.aliyuncs.com" % r,
            "Zones": [{"ZoneId": z, "LocalName": _zone_name(zh, en, z, lang),
                       "ResourceTypes": list(types)} for z in region_zones(r)],
        })
    return {"Regions": regions}


def _zone_name(zh, en, zone, lang):
    letter = zone.rsplit("-", 1)[-1].upper()
    if lang == "zh-CN":
        city = zh.split("（")[-1].rstrip("）")
        return "%s 可用区%s" % (city, letter)
    city = en.split("(")[-1].rstrip(")")
    return "%s Zone %s" % (city, letter)


def op_describe_pairs(st, params, ctx, now):
    region = region_param(params)
    site = params.get("Site") or "production"
    if site not in ("production", "backup"):
        raise invalid("Site", "It must be production or backup.")
    max_results = opt_int(params, "MaxResults", 1, 500)
    page_number = opt_int(params, "PageNumber", 1, 1000000)
    page_size = opt_int(params, "PageSize", 1, 100)
    token = params.get("NextToken") or None
    pair_ids = None
    if params.get("PairIds"):
        pair_ids = [x.strip() for x in params["PairIds"].split(",") if x.strip()]
        if len(pair_ids) > 100:
            raise invalid("PairIds", "At most 100 IDs.")
    tags = tag_params(params)
    page = None
    if token is None and max_results is None and (page_number or page_size):
        page = (page_number or 1, page_size or 10)
    m = st.model
    res = m.describe(region, site, pair_ids=pair_ids,
                     group_id=params.get("ReplicaGroupId") or None,
                     rg=params.get("ResourceGroupId") or None,
                     name=params.get("Name") or None, tags=tags, token=token,
                     max_results=max_results or 10, page=page)
    return {"NextToken": res["next_token"], "PageNumber": res["page_number"],
            "PageSize": res["page_size"], "TotalCount": res["total"],
            "ReplicaPairs": [m.record(p, site) for p in res["records"]]}


def op_progress(st, params, ctx, now):
    region = region_param(params)
    p = st.model.lookup(region, req(params, "ReplicaPairId"))
    prog, rp = st.model.progress(p, now)
    out = {"Progress": prog}
    if rp is not None:
        out["RecoverPoint"] = rp
    return out


def _pair(st, params):
    region = region_param(params)
    return region, st.model.lookup(region, req(params, "ReplicaPairId"))


def op_start(st, params, ctx, now):
    one_shot = opt_bool(params, "OneShot", False)
    region, p = _pair(st, params)
    st.model.start(p, region, one_shot, now)
    return {}


def op_stop(st, params, ctx, now):
    region, p = _pair(st, params)
    st.model.stop(p, region, now)
    return {}


def op_failover(st, params, ctx, now):
    region, p = _pair(st, params)
    st.model.failover(p, region, now)
    return {}


def op_reprotect(st, params, ctx, now):
    reverse = opt_bool(params, "ReverseReplicate", True)
    region, p = _pair(st, params)
    st.model.reprotect(p, region, reverse, now)
    return {}


def op_delete(st, params, ctx, now):
    region, p = _pair(st, params)
    st.model.delete(p, region, now)
    return {}


def op_modify(st, params, ctx, now):
    fields = {}
    v = check_name(params, "PairName", 2, 128, _NAME_RE)
    if v is not None:
        fields["name"] = v
    v = check_name(params, "Description", 2, 256)
    if v is not None:
        fields["desc"] = v
    v = opt_int(params, "RPO", 1, 86400)
    if v is not None:
        fields["rpo"] = v
    v = opt_int(params, "Bandwidth", 0, 10 ** 9)
    if v is not None:
        fields["bandwidth"] = v
    v = opt_bool(params, "EnableRtc")
    if v is not None:
        fields["rtc"] = v
    region, p = _pair(st, params)
    st.model.modify(p, region, fields, now)
    return {}


def op_create(st, params, ctx, now):
    region = region_param(params)
    src_zone = req(params, "SourceZoneId")
    src_disk = req(params, "DiskId")
    dst_region = req(params, "DestinationRegionId")
    if not _REGION_RE.match(dst_region):
        raise invalid("DestinationRegionId")
    dst_zone = req(params, "DestinationZoneId")
    dst_disk = req(params, "DestinationDiskId")
    if not src_zone.startswith(region + "-"):
        raise invalid("SourceZoneId", "The zone is not in RegionId %s." % region)
    if not dst_zone.startswith(dst_region + "-"):
        raise invalid("DestinationZoneId",
                      "The zone is not in DestinationRegionId %s." % dst_region)
    if src_zone == dst_zone:
        raise invalid("DestinationZoneId", "It must differ from SourceZoneId.")
    charge = params.get("ChargeType") or "POSTPAY"
    if charge not in ("PREPAY", "POSTPAY"):
        raise invalid("ChargeType")
    period = opt_int(params, "Period")
    if charge == "PREPAY":
        if period is None:
            raise missing("Period")
        if period not in (1, 2, 3, 6, 12, 24, 36, 60):
            raise invalid("Period")
        if (params.get("PeriodUnit") or "Month") != "Month":
            raise invalid("PeriodUnit")
    bandwidth = opt_int(params, "Bandwidth", default=10240)
    if bandwidth not in (10240, 20480, 51200, 102400):
        raise invalid("Bandwidth", "It must be 10240, 20480, 51200 or 102400.")
    if charge == "POSTPAY":
        bandwidth = 0
    name = check_name(params, "PairName", 2, 128, _NAME_RE)
    desc = check_name(params, "Description", 2, 256)
    fields = {
        "src_zone": src_zone, "src_disk": src_disk, "dst_region": dst_region,
        "dst_zone": dst_zone, "dst_disk": dst_disk, "charge": charge,
        "bandwidth": bandwidth, "rpo": opt_int(params, "RPO", 1, 86400, 900),
        "name": name or "", "desc": desc or "",
        "rg": params.get("ResourceGroupId") or "",
        "rtc": opt_bool(params, "EnableRtc", False),
        "tags": tuple((k, v or "") for k, v in tag_params(params)),
        "expired": int(now) + period * 30 * 86400 if charge == "PREPAY" else 0,
    }
    p = st.model.create(region, fields, now, st.rng)
    if not p.name:
        p.name = p.id
    return {"ReplicaPairId": p.id, "OrderId": str(st.rng.randint(10 ** 14, 10 ** 15 - 1))}


def op_assume_role(st, params, ctx, now):
    arn = req(params, "RoleArn")
    session = req(params, "RoleSessionName")
    duration = opt_int(params, "DurationSeconds", 900, 43200, 3600)
    creds = st.issue_sts("role:" + arn, duration)
    creds.pop("LastUpdated", None)
    return {"AssumedRoleUser": {"Arn": "%s/%s" % (arn, session),
                                "AssumedRoleId": "3%017d:%s" % (st.rng.randint(0, 10 ** 16),
                                                                session)},
            "Credentials": creds}


# name -> (version, mutating, handler)
OPERATIONS = {
    "DescribeRegions": (EBS_VERSION, False, op_describe_regions),
    "DescribeDiskReplicaPairs": (EBS_VERSION, False, op_describe_pairs),
    "DescribeDiskReplicaPairProgress": (EBS_VERSION, False, op_progress),
    "StartDiskReplicaPair": (EBS_VERSION, True, op_start),
    "StopDiskReplicaPair": (EBS_VERSION, True, op_stop),
    "FailoverDiskReplicaPair": (EBS_VERSION, True, op_failover),
    "ReprotectDiskReplicaPair": (EBS_VERSION, True, op_reprotect),
    "DeleteDiskReplicaPair": (EBS_VERSION, True, op_delete),
    "ModifyDiskReplicaPair": (EBS_VERSION, True, op_modify),
    "CreateDiskReplicaPair": (EBS_VERSION, True, op_create),
    "AssumeRole": (STS_VERSION, False, op_assume_role),
}


# ====================================================================================

class _Drop(Exception):
    """Close the connection without an answer."""

    def __init__(self, code, reset=False):
        super().__init__(code)
        self.code = code
        self.reset = reset


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ebs-emulator"
    sys_version = ""
    timeout = 120      # idle keep-alive connections end after this

    def log_message(self, fmt, *args):   # silence the default access log
        pass

    def setup(self):
        super().setup()
        # Headers and body go out in two writes; without TCP_NODELAY the second waits for a
        # delayed ACK (~40 ms) on every kept-alive request, which no real front end does.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def version_string(self):
        return self.server_version

    @property
    def st(self):
        return self.server.state

    # ------------------------------------------------------------------ plumbing
    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            size = 0
            for _ in range(100000):
                line = self.rfile.readline(1024)
                if not line:
                    break
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    for _ in range(100):   # trailers
                        t = self.rfile.readline(8192)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                size += n
                if size > MAX_BODY:
                    raise ValueError("body too large")
                chunks.append(self.rfile.read(n))
                self.rfile.readline(16)
            return b"".join(chunks)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        n = int(length)
        if n < 0 or n > MAX_BODY:
            raise ValueError("bad Content-Length")
        return self.rfile.read(n)

    def _dispatch(self, method):
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._send(400, b'{"Code":"InvalidParameter","Message":"bad request body"}',
                       None)
            return
        path = urlsplit(self.path).path
        self._entry = None
        try:
            if path.startswith("/_admin/") or path == "/_admin":
                self._admin(method, path, body)
            elif path.startswith("/latest/"):
                self._imds(method, path)
            else:
                self._api(method, path, body)
        except _Drop as d:
            self._drop(d.reset)
        except _Handled:
            pass
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout):
            self.close_connection = True
        except Exception:   # a bug in the emulator: say so loudly, answer 500, go on
            traceback.print_exc()
            self.close_connection = True
            try:
                self._send(500, json.dumps({
                    "RequestId": new_request_id(), "HostId": "ebs.aliyuncs.com",
                    "Code": "InternalError",
                    "Message": "emulator bug: %s" % traceback.format_exc(limit=1).strip(),
                    "Recommend": ""}).encode("utf-8"), None)
            except (OSError, ValueError):
                pass

    def _send(self, status, body, request_id, headers=(), content_type=JSON_TYPE,
              declared_length=None):
        self._commit()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length",
                         str(len(body) if declared_length is None else declared_length))
        if request_id:
            self.send_header("x-acs-request-id", request_id)
            self.send_header("x-acs-trace-id", secrets.token_hex(16))
        for k, v in headers:
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _drop(self, reset=False):
        self.close_connection = True
        try:
            if reset:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _hang(self, seconds):
        """Wait until the client goes away, `seconds` pass, or the server stops."""
        limit = MAX_HANG if seconds is None or seconds <= 0 else min(seconds, MAX_HANG)
        end = time.monotonic() + limit
        sock = self.connection
        for _ in range(int(limit * 20) + 2):
            left = end - time.monotonic()
            if left <= 0 or self.st.stopping.is_set():
                return
            try:
                r, _, _ = select.select([sock], [], [], min(0.05, left))
            except (OSError, ValueError):
                return
            if r:
                try:
                    sock.settimeout(0.2)
                    data = sock.recv(4096)
                except (ssl.SSLWantReadError, socket.timeout, BlockingIOError):
                    continue
                except OSError:
                    return
                if not data:
                    return

    # ------------------------------------------------------------------ API
    def _api(self, method, path, body):
        st = self.st
        t0 = time.time()
        rid = new_request_id()
        entry = {"t": round(t0, 6), "action": None, "region": None, "params": {},
                 "client_token": None, "status": 0, "code": None, "request_id": rid,
                 "access_key_id": None, "sig": None, "method": method}
        self._entry, self._applied = entry, False
        try:
            query = urlsplit(self.path).query
            query_pairs = signing.form_decode(query)
            form_pairs = []
            ctype = (self.headers.get("Content-Type") or "").lower()
            if ctype.startswith("application/x-www-form-urlencoded") and body:
                form_pairs = signing.form_decode(body)
            params = {}
            for k, v in query_pairs:
                params[k] = v
            for k, v in form_pairs:
                params[k] = v
            auth_header = self.headers.get("Authorization")
            v3 = auth_header is not None or self.headers.get("x-acs-action") is not None
            if v3:
                action = self.headers.get("x-acs-action")
                version = self.headers.get("x-acs-version")
            else:
                action = params.get("Action")
                version = params.get("Version")
            entry["action"] = action
            entry["region"] = params.get("RegionId")
            entry["params"] = {k: v for k, v in params.items() if k not in COMMON_PARAMS}
            entry["client_token"] = params.get("ClientToken")
            entry["sig"] = "v3" if v3 else "v1"
            if path != "/":
                raise ApiError("InvalidAction.NotFound",
                               "Specified api is not found, please check your url and "
                               "method (path %s)." % path)
            if method not in ("GET", "POST"):
                raise ApiError("UnsupportedHTTPMethod")
            if not action:
                raise missing("Action")
            op = OPERATIONS.get(action)
            if op is None:
                raise ApiError("InvalidAction.NotFound")
            if not version:
                raise missing("Version")
            if version != op[0]:
                raise ApiError("InvalidVersion",
                               "Specified parameter Version is not valid (%s)." % version)
            key = self._authenticate(v3, method, params, query_pairs, body, entry)
            mutating = op[1]
            fault = st.take_fault(action)
            after = None
            if fault is not None:
                after = self._pre_fault(fault, entry)
            if mutating and key["denied"]:
                raise ApiError("Forbidden.Action")
            status, payload, rid_used, applied = self._execute(action, op, params, key, rid)
            entry["request_id"] = rid_used
            if applied is None:
                entry["replay"] = True
                applied = False
            self._applied = applied
            out = payload
            if after == "drop_after_action":
                entry["status"], entry["code"] = 0, "fault:drop_after_action"
                raise _Drop("fault:drop_after_action")
            if after == "truncated":
                entry["status"], entry["code"] = status, "fault:truncated"
                self.close_connection = True
                cut = out[:max(1, len(out) // 2)]
                self._send(status, cut, rid_used, declared_length=len(out) + 64)
                return
            entry["status"] = status
            self._send(status, out, rid_used)
        except ApiError as e:
            entry["status"], entry["code"] = e.status, e.code
            if e.code == "SignatureDoesNotMatch" and getattr(e, "debug", None):
                entry["sign_debug"] = e.debug
            self._send_error(e, rid, entry.get("region"))
        except _Drop as d:
            if not entry["code"]:
                entry["code"] = d.code
            raise
        finally:
            self._commit()

    def _commit(self):
        """Count and log the current request (once), before its answer goes out, so a
        client that reads the counters right after its answer sees it."""
        entry = getattr(self, "_entry", None)
        if entry is not None:
            self._entry = None
            entry["ms"] = round((time.time() - entry["t"]) * 1000, 3)
            self.st.record(entry, self._applied)

    def _send_error(self, e, rid, region):
        host = "ebs.%s.aliyuncs.com" % region if region and _REGION_RE.match(region) \
            else "ebs.aliyuncs.com"
        body = {"RequestId": rid, "HostId": host, "Code": e.code, "Message": e.message,
                "Recommend": "https://api.aliyun.com/troubleshoot?q=%s&product=Ebs"
                             "&requestId=%s" % (e.code, rid)}
        self._send(e.status, json.dumps(body, ensure_ascii=False).encode("utf-8"), rid,
                   headers=e.headers)

    def _pre_fault(self, fault, entry):
        """Apply a fault before the action.  Returns 'truncated'/'drop_after_action' when
        the fault acts after the action, None otherwise; raises to answer instead."""
        kind = fault.kind
        entry["fault"] = kind
        if kind == "latency":
            time.sleep(min(_num(fault.arg, 1000.0), MAX_HANG * 1000) / 1000.0)
            return None
        if kind in FAULT_ERRORS:
            raise ApiError(FAULT_ERRORS[kind])
        if kind == "throttle":
            left = int(_num(fault.arg, 1000))
            raise ApiError("Throttling.User", headers=[
                ("x-ratelimit-user-api", "Limit:1,Remain:0,TimeLeft:%d,Reset:0" % left)])
        if kind == "hang":
            entry["code"] = "fault:hang"
            self._hang(_num(fault.arg, 0))
            raise _Drop("fault:hang")
        if kind == "drop":
            entry["code"] = "fault:drop"
            raise _Drop("fault:drop")
        if kind == "reset":
            entry["code"] = "fault:reset"
            raise _Drop("fault:reset", reset=True)
        if kind == "malformed":
            entry["status"], entry["code"] = 200, "fault:malformed"
            variant = fault.arg or "partial"
            bodies = {"html": b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                      "empty": b"",
                      "garbage": b"\x00\xff not json at all \xfe",
                      "array": b"[1, 2, 3]"}
            bad = bodies.get(variant,
                             b'{"RequestId":"' + entry["request_id"].encode() +
                             b'","ReplicaPairs":[{"ReplicaPairId":"pair-cn-')
            self._send(200, bad, entry["request_id"])
            raise _Handled()
        return kind   # truncated, drop_after_action

    def _execute(self, action, op, params, key, rid):
        """Run the operation.  Returns (status, body bytes, request id, applied) where
        applied is None for an idempotent replay."""
        st = self.st
        _, mutating, fn = op
        token = check_client_token(params.get("ClientToken")) if mutating else None
        now = time.time()
        with st.lock:
            st.model.settle(now)
            ikey = fp = None
            if token is not None:
                ikey = (key["principal"], action, token)
                fp = tuple(sorted((k, v) for k, v in params.items()
                                  if k not in COMMON_PARAMS))
                prev = st.idem.get(ikey)
                if prev is not None:
                    if prev[0] != fp:
                        raise ApiError("IdempotentParameterMismatch")
                    return prev[1], prev[2], prev[3], None
            payload = fn(st, params, {"key": key}, now)
            out = {"RequestId": rid}
            out.update(payload)
            body = json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            if ikey is not None:
                st.idem[ikey] = (fp, 200, body, rid)
        return 200, body, rid, bool(mutating)

    # ------------------------------------------------------------------ auth
    def _authenticate(self, v3, method, params, query_pairs, body, entry):
        st = self.st
        now = time.time()
        if v3:
            ak, token, ts_value, nonce, verify = self._v3_parts(method, query_pairs, body)
        else:
            ak, token, ts_value, nonce, verify = self._v1_parts(method, params)
        entry["access_key_id"] = ak
        with st.lock:
            key = st.keys.get(ak)
        if key is None:
            raise ApiError("InvalidAccessKeyId.NotFound",
                           "Specified access key is not found.")
        ts = parse_timestamp(ts_value)
        if ts is None:
            raise ApiError("InvalidTimeStamp.Format",
                           "Specified time stamp or date value is not well formatted (%s)."
                           % ts_value)
        if abs(now - ts) > TIME_WINDOW:
            raise ApiError("InvalidTimeStamp.Expired",
                           "Specified time stamp or date value is expired (%s, server time "
                           "%s)." % (ts_value, iso_utc(now)))
        if key["sts"]:
            if not token:
                raise missing("SecurityToken")
            if key["token"] is not None and not signing.constant_time_equal(
                    token, key["token"]):
                raise ApiError("InvalidSecurityToken.MismatchWithAccessKey")
            if key["expires"] is not None and now >= key["expires"]:
                raise ApiError("InvalidSecurityToken.Expired")
        elif token:
            raise ApiError("InvalidSecurityToken.MismatchWithAccessKey",
                           "A SecurityToken was sent with a permanent AccessKey.")
        verify(key["secret"])
        with st.lock:
            fresh = st.use_nonce(ak, nonce, now)
        if not fresh:
            raise ApiError("SignatureNonceUsed")
        return key

    def _v1_parts(self, method, params):
        for name in ("AccessKeyId", "Signature", "SignatureMethod", "SignatureNonce",
                     "Timestamp"):
            if not params.get(name):
                raise missing(name)
        if params["SignatureMethod"] != "HMAC-SHA1":
            raise ApiError("InvalidSignatureMethod")
        if params.get("SignatureVersion", "1.0") != "1.0":
            raise invalid("SignatureVersion", "It must be 1.0.")

        def verify(secret):
            sts = signing.v1_string_to_sign(method, params)
            want = signing.v1_signature(secret, sts)
            if not signing.constant_time_equal(want, params["Signature"]):
                raise ApiError("SignatureDoesNotMatch",
                               "Specified signature is not matched with our calculation. "
                               "server string to sign is:" + sts)

        return (params["AccessKeyId"], params.get("SecurityToken"), params["Timestamp"],
                params["SignatureNonce"], verify)

    def _v3_parts(self, method, query_pairs, body):
        auth = self.headers.get("Authorization")
        if auth is None:
            raise ApiError("IncompleteSignature",
                           "The request signature does not conform to Aliyun standards. "
                           "(Authorization header is missing)")
        parts = signing.parse_v3_authorization(auth)
        if parts is None or parts["algorithm"] != signing.V3_ALGORITHM:
            raise ApiError("IncompleteSignature",
                           "The request signature does not conform to Aliyun standards. "
                           "(unsupported algorithm; use %s)" % signing.V3_ALGORITHM)
        for name in ("Credential", "SignedHeaders", "Signature"):
            if not parts.get(name):
                raise ApiError("IncompleteSignature",
                               "The request signature does not conform to Aliyun "
                               "standards. (%s missing in Authorization)" % name)
        ak = parts["Credential"]
        signed = [h.strip().lower() for h in parts["SignedHeaders"].split(";") if h.strip()]
        received = {}
        for name, value in self.headers.items():
            received.setdefault(name.lower(), []).append(value)
        for name in ("x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"):
            if not received.get(name):
                raise ApiError("IncompleteSignature",
                               "The request signature does not conform to Aliyun "
                               "standards. (%s header is missing)" % name)
        must = {"host"} | {n for n in received if n.startswith("x-acs-")}
        if body and "content-type" in received:
            must.add("content-type")
        unsigned = sorted(must - set(signed))
        if unsigned:
            raise ApiError("IncompleteSignature",
                           "The request signature does not conform to Aliyun standards. "
                           "(headers not signed: %s)" % ",".join(unsigned))
        payload_hash = received["x-acs-content-sha256"][0].strip()
        if payload_hash != signing.sha256_hex(body):
            raise ApiError("SignatureDoesNotMatch",
                           "Specified signature is not matched with our calculation. "
                           "(x-acs-content-sha256 does not match the request body)")
        given = self.headers.get("x-acs-accesskey-id")
        if given is not None and given.strip() != ak:
            raise ApiError("IncompleteSignature",
                           "The request signature does not conform to Aliyun standards. "
                           "(x-acs-accesskey-id differs from the Credential)")
        uri = urlsplit(self.path).path or "/"

        def verify(secret):
            cr = signing.v3_canonical_request(method, uri, query_pairs, received, signed,
                                              payload_hash)
            sts = signing.v3_string_to_sign(cr)
            want = signing.v3_signature(secret, sts)
            if not signing.constant_time_equal(want, parts["Signature"].lower()):
                e = ApiError("SignatureDoesNotMatch",
                             "Specified signature is not matched with our calculation. "
                             "server string to sign is:" + sts)
                e.debug = {"canonical_request": re.sub(
                    r"(?m)^(x-acs-security-token:).*$", r"\1***", cr)}
                raise e

        token = self.headers.get("x-acs-security-token")
        return (ak, token.strip() if token else None, received["x-acs-date"][0].strip(),
                received["x-acs-signature-nonce"][0].strip(), verify)

    # ------------------------------------------------------------------ IMDS
    def _imds(self, method, path):
        st = self.st
        t0 = time.time()
        entry = {"t": round(t0, 6), "action": "IMDS", "region": None,
                 "params": {"path": path, "method": method}, "client_token": None,
                 "status": 0, "code": None, "request_id": None, "access_key_id": None}
        self._entry, self._applied = entry, False
        try:
            fault = st.take_fault("IMDS")
            if fault is not None:
                entry["fault"] = fault.kind
                self._imds_fault(fault, entry)
            status, ctype, body = self._imds_answer(method, path, entry)
            entry["status"] = status
            if status != 200:
                entry["code"] = str(status)
            self._send(status, body, None, content_type=ctype)
        except _Handled:
            pass
        except _Drop as d:
            if not entry["code"]:
                entry["code"] = d.code
            raise
        finally:
            self._commit()

    def _imds_fault(self, fault, entry):
        kind = fault.kind
        if kind == "latency":
            time.sleep(min(_num(fault.arg, 1000.0), MAX_HANG * 1000) / 1000.0)
            return
        if kind == "hang":
            entry["code"] = "fault:hang"
            self._hang(_num(fault.arg, 0))
            raise _Drop("fault:hang")
        if kind in ("drop", "drop_after_action", "reset"):
            raise _Drop("fault:" + kind, reset=(kind == "reset"))
        status = {"http503": 503, "http504": 504, "throttle": 429, "forbidden": 403}.get(
            kind, 500)
        if kind in ("malformed", "truncated"):
            status = 200
        entry["status"], entry["code"] = status, "fault:" + kind
        body = b'{"Code":"Success","AccessKeyId":' if status == 200 else \
            ("%d error\n" % status).encode()
        if kind == "truncated":
            self.close_connection = True
            self._send(200, body, None, content_type="text/plain",
                       declared_length=len(body) + 64)
        else:
            self._send(status, body, None, content_type="text/plain")
        raise _Handled()

    def _imds_answer(self, method, path, entry):
        st = self.st
        cfg = st.cfg
        text = "text/plain"
        if path == "/latest/api/token":
            if method != "PUT":
                return 405, text, b"Method Not Allowed\n"
            ttl = self.headers.get("X-aliyun-ecs-metadata-token-ttl-seconds")
            try:
                ttl = int(ttl)
            except (TypeError, ValueError):
                return 400, text, b"missing or bad X-aliyun-ecs-metadata-token-ttl-seconds\n"
            if not 1 <= ttl <= 21600:
                return 400, text, b"X-aliyun-ecs-metadata-token-ttl-seconds out of range\n"
            tok = base64.urlsafe_b64encode(secrets.token_bytes(33)).decode("ascii")
            now = time.time()
            with st.lock:
                for k in [k for k, exp in st.imds_tokens.items() if exp < now]:
                    del st.imds_tokens[k]
                st.imds_tokens[tok] = now + ttl
            return 200, text, tok.encode("ascii")
        if method not in ("GET", "HEAD"):
            return 405, text, b"Method Not Allowed\n"
        tok = self.headers.get("X-aliyun-ecs-metadata-token")
        if tok is not None or cfg["imds_v2_only"]:
            with st.lock:
                exp = st.imds_tokens.get(tok or "")
            if exp is None or exp < time.time():
                return 401, text, b"Unauthorized\n"
        role = cfg["imds_role"]
        base = "/latest/meta-data/"
        creds = base + "ram/security-credentials/"
        if path in ("/latest/meta-data", base):
            return 200, text, b"instance-id\nregion-id\nzone-id\nram/\n"
        if path in (base + "ram", base + "ram/"):
            return 200, text, b"security-credentials/\n"
        if path in (creds, creds[:-1]):
            return 200, text, role.encode("utf-8")
        if path.startswith(creds):
            name = path[len(creds):].rstrip("/")
            if name != role:
                return 404, text, b"Not Found\n"
            c = st.issue_sts("role:" + role, cfg["sts_ttl"])
            entry["access_key_id"] = c["AccessKeyId"]
            c["Code"] = "Success"
            return 200, text, json.dumps(c, indent=2).encode("utf-8")
        if path == base + "region-id":
            return 200, text, cfg["regions"][0].encode()
        if path == base + "zone-id":
            return 200, text, region_zones(cfg["regions"][0])[0].encode()
        if path == base + "instance-id":
            return 200, text, b"i-uf6emulator000000001"
        return 404, text, b"Not Found\n"

    # ------------------------------------------------------------------ admin
    def _admin_send(self, status, obj):
        self._send(status, json.dumps(obj, ensure_ascii=False, indent=1).encode("utf-8"),
                   None)

    def _admin(self, method, path, body):
        q = parse_qs(urlsplit(self.path).query)
        try:
            data = json.loads(body.decode("utf-8")) if body.strip() else {}
        except ValueError as e:
            return self._admin_send(400, {"error": "bad JSON body: %s" % e})
        try:
            return self._admin_route(method, path, q, data)
        except (ValueError, TypeError, KeyError) as e:
            return self._admin_send(400, {"error": "%s: %s" % (type(e).__name__, e)})

    def _admin_route(self, method, path, q, data):
        st = self.st
        m = st.model
        if path == "/_admin/counters" and method == "GET":
            return self._admin_send(200, st.counters())
        if path == "/_admin/reset" and method == "POST":
            st.reset_stats()
            return self._admin_send(200, {"ok": True})
        if path == "/_admin/requests" and method == "GET":
            with st.stats_lock:
                log = list(st.log)
            if "action" in q:
                log = [e for e in log if e["action"] in q["action"]]
            return self._admin_send(200, log)
        if path == "/_admin/faults":
            if method == "POST":
                items = data if isinstance(data, list) else [data]
                out = []
                for d in items:
                    f = st.add_fault(d["kind"], d.get("action") or "*",
                                     d.get("count", 1), d.get("arg"))
                    out.append(f.as_dict())
                return self._admin_send(200, out if isinstance(data, list) else out[0])
            if method == "DELETE":
                with st.stats_lock:
                    st.faults = []
                return self._admin_send(200, {"ok": True})
            if method == "GET":
                with st.stats_lock:
                    return self._admin_send(200, [f.as_dict() for f in st.faults])
        if path == "/_admin/pair":
            pid = (q.get("id") or [None])[0] or data.get("id")
            if not pid:
                raise ValueError("id is required")
            now = time.time()
            with st.lock:
                m.settle(now)
                p = m.pairs.get(pid)
                if method == "GET":
                    if p is None:
                        return self._admin_send(404, {"error": "no such pair %s" % pid})
                    if (q.get("debug") or ["0"])[0] not in ("0", ""):
                        return self._admin_send(200, m.debug_record(p))
                    return self._admin_send(200, m.record(p))
                if method == "DELETE":
                    if p is None:
                        return self._admin_send(404, {"error": "no such pair %s" % pid})
                    m.remove(p)
                    return self._admin_send(200, {"ok": True})
                if method == "POST":
                    fields = {k: v for k, v in data.items()
                              if k not in ("id", "status", "after", "create")}
                    if p is None:
                        if not data.get("create"):
                            return self._admin_send(404, {"error": "no such pair %s" % pid})
                        rec = dict(fields)
                        rec["ReplicaPairId"] = pid
                        if "status" in data:
                            rec["Status"] = data["status"]
                        p = m.pair_from_record(rec)
                        m.add(p)
                        return self._admin_send(200, m.record(p))
                    status = data.get("status", fields.pop("Status", None))
                    msg = fields.pop("StatusMessage", None)
                    m.set_fields(p, fields)
                    if status is not None:
                        m.admin_status(p, str(status), msg, float(data.get("after") or 0),
                                       now)
                    elif msg is not None:
                        p.status_msg = str(msg)
                    return self._admin_send(200, m.record(p))
        if path == "/_admin/config":
            cfg = st.cfg
            if method == "POST":
                for k, v in data.items():
                    if k == "transition_delay":
                        m.delay = float(v)
                        cfg[k] = float(v)
                    elif k == "sts_ttl":
                        cfg[k] = int(v)
                    elif k in ("imds_v2_only", "verbose"):
                        cfg[k] = parse_bool(v)
                    elif k == "create_time_ms":
                        m.create_time_ms = cfg[k] = parse_bool(v)
                    elif k == "failover_from":
                        bad = [s for s in v if s not in STATUSES]
                        if bad:
                            raise ValueError("unknown statuses %s" % bad)
                        m.failover_from = set(v)
                    else:
                        raise ValueError("unknown setting %r" % k)
            out = {k: cfg[k] for k in ("transition_delay", "sts_ttl", "imds_v2_only",
                                       "create_time_ms", "regions", "imds_role")}
            out["failover_from"] = sorted(m.failover_from)
            out["pairs"] = len(m.pairs)
            return self._admin_send(200, out)
        if path == "/_admin/ak" and method == "POST":
            exp = data.get("expires_in")
            st.add_key(data["id"], data["secret"], token=data.get("token"),
                       expires=None if exp is None else time.time() + float(exp),
                       denied=bool(data.get("denied")))
            return self._admin_send(200, {"ok": True})
        return self._admin_send(404, {"error": "no admin route %s %s" % (method, path)})


class _Handled(Exception):
    """The answer was already sent."""


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, state, ssl_ctx=None, family=socket.AF_INET):
        self.address_family = family
        self.state = state
        self.ssl_ctx = ssl_ctx
        super().__init__(addr, Handler)

    def finish_request(self, request, client_address):
        if self.ssl_ctx is not None:
            try:
                request.settimeout(10)
                request = self.ssl_ctx.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except (ssl.SSLError, OSError):
                try:
                    request.close()
                except OSError:
                    pass
                return
            try:
                self.RequestHandlerClass(request, client_address, self)
            finally:
                try:
                    request.close()
                except OSError:
                    pass
            return
        self.RequestHandlerClass(request, client_address, self)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, socket.timeout, TimeoutError)):
            return
        super().handle_error(request, client_address)
