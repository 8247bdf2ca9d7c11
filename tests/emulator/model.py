"""The emulator's data: replication pairs, their two site views, the state machine.

ebs-api.md section 2.2.1 (the record), section 3 (statuses, allowed-from table), section 5
(which region an action must be called in).  Transitions are lazy: an action sets a
transient status and the time it settles; every request first settles what is due
(settle()), so behaviour is deterministic and needs no timer thread.

Not thread-safe by itself: the server holds one lock around every call into the model.
"""

import base64
import bisect
import heapq
import json
import random
import string
import time

from errors import ApiError

ALNUM = string.ascii_lowercase + string.digits

# region -> (zh-CN name, en-US name, disk id prefix, zone letters)
REGION_INFO = {
    "cn-qingdao": ("华北1（青岛）", "China (Qingdao)", "m5e", "bc"),
    "cn-beijing": ("华北2（北京）", "China (Beijing)", "2ze", "fghikl"),
    "cn-zhangjiakou": ("华北3（张家口）", "China (Zhangjiakou)", "8vb", "abc"),
    "cn-huhehaote": ("华北5（呼和浩特）", "China (Hohhot)", "hp3", "ab"),
    "cn-wulanchabu": ("华北6（乌兰察布）", "China (Ulanqab)", "0jl", "abc"),
    "cn-hangzhou": ("华东1（杭州）", "China (Hangzhou)", "bp1", "hijk"),
    "cn-shanghai": ("华东2（上海）", "China (Shanghai)", "uf6", "efglmn"),
    "cn-nanjing": ("华东5（南京-本地地域）", "China (Nanjing - Local Region)", "gc7", "a"),
    "cn-fuzhou": ("华东6（福州-本地地域）", "China (Fuzhou - Local Region)", "gw0", "a"),
    "cn-shenzhen": ("华南1（深圳）", "China (Shenzhen)", "wz9", "cdef"),
    "cn-heyuan": ("华南2（河源）", "China (Heyuan)", "f8z", "ab"),
    "cn-guangzhou": ("华南3（广州）", "China (Guangzhou)", "7xv", "ab"),
    "cn-chengdu": ("西南1（成都）", "China (Chengdu)", "2vc", "ab"),
    "cn-hongkong": ("中国香港", "China (Hong Kong)", "j6c", "bcd"),
    "ap-southeast-1": ("新加坡", "Singapore", "t4n", "abc"),
    "ap-southeast-3": ("马来西亚（吉隆坡）", "Malaysia (Kuala Lumpur)", "8ps", "ab"),
    "ap-southeast-5": ("印度尼西亚（雅加达）", "Indonesia (Jakarta)", "k1a", "abc"),
    "ap-northeast-1": ("日本（东京）", "Japan (Tokyo)", "6we", "abc"),
    "ap-northeast-2": ("韩国（首尔）", "South Korea (Seoul)", "mj7", "a"),
    "us-west-1": ("美国（硅谷）", "US (Silicon Valley)", "rj9", "ab"),
    "us-east-1": ("美国（弗吉尼亚）", "US (Virginia)", "0xi", "ab"),
    "eu-central-1": ("德国（法兰克福）", "Germany (Frankfurt)", "gw8", "abc"),
    "eu-west-1": ("英国（伦敦）", "UK (London)", "d7o", "ab"),
    "me-central-1": ("沙特（利雅得）", "Saudi Arabia (Riyadh)", "l4v", "a"),
}


def region_info(region):
    info = REGION_INFO.get(region)
    if info is None:
        prefix = (region.replace("-", "") + "xyz")[-3:]
        info = (region, region, prefix, "ab")
    return info


def region_zones(region):
    letters = region_info(region)[3]
    if len(letters) < 2:
        letters = letters + "b"
    return [region + "-" + c for c in letters]


STATUSES = ("invalid", "creating", "created", "create_failed", "initial_syncing",
            "syncing", "manual_syncing", "normal", "stopping", "stopped", "stop_failed",
            "failovering", "failovered", "failover_failed", "reprotecting",
            "reprotect_failed", "deleting", "delete_failed", "deleted")
STATUS_MESSAGES = ("PrePayOrderExpired", "PostPayOrderCeaseService", "DeviceRemoved",
                   "DeviceKeyChanged", "DeviceSizeChanged", "OperationDenied.QuotaExceed")
SYNCING = ("initial_syncing", "syncing", "manual_syncing")

# Allowed-from table, ebs-api.md 3.2.
START_FROM = frozenset(("created", "stopped"))
STOP_FROM = frozenset(("initial_syncing", "syncing", "manual_syncing", "normal"))
FAILOVER_FROM = frozenset(("created", "initial_syncing", "syncing", "manual_syncing",
                           "normal", "stopping", "stopped", "stop_failed",
                           "failover_failed", "reprotect_failed"))
REPROTECT_FROM = frozenset(("failovered",))
DELETE_FROM = frozenset(("stopped", "invalid", "failovered"))
MODIFY_FROM = frozenset(("created", "stopped"))


class Pair:
    __slots__ = ("seq", "id", "name", "desc", "status", "status_msg",
                 "src_disk", "src_region", "src_zone", "dst_disk", "dst_region", "dst_zone",
                 "pri_region", "pri_zone", "sby_region", "sby_zone",
                 "rpo", "bandwidth", "lrp", "charge", "expired", "created",
                 "group_id", "group_name", "rg", "rtc", "tags",
                 "started", "synced",
                 "tr_kind", "tr_to", "tr_start", "tr_at", "tr_gen", "tr_msg")

    def __init__(self):
        self.seq = 0
        self.id = ""
        self.name = ""
        self.desc = ""
        self.status = "normal"
        self.status_msg = ""
        self.src_disk = self.src_region = self.src_zone = ""
        self.dst_disk = self.dst_region = self.dst_zone = ""
        self.pri_region = self.pri_zone = self.sby_region = self.sby_zone = ""
        self.rpo = 900
        self.bandwidth = 0
        self.lrp = 0
        self.charge = "POSTPAY"
        self.expired = 0
        self.created = 0
        self.group_id = self.group_name = ""
        self.rg = ""
        self.rtc = False
        self.tags = ()
        self.started = False
        self.synced = False
        self.tr_kind = None
        self.tr_to = None
        self.tr_start = 0.0
        self.tr_at = 0.0
        self.tr_gen = 0
        self.tr_msg = None


# API field name -> (slot, type) for fixtures and the admin endpoint.
FIELDS = {
    "ReplicaPairId": ("id", str), "PairName": ("name", str), "Description": ("desc", str),
    "Status": ("status", str), "StatusMessage": ("status_msg", str),
    "SourceDiskId": ("src_disk", str), "SourceRegion": ("src_region", str),
    "SourceZoneId": ("src_zone", str),
    "DestinationDiskId": ("dst_disk", str), "DestinationRegion": ("dst_region", str),
    "DestinationZoneId": ("dst_zone", str),
    "PrimaryRegion": ("pri_region", str), "PrimaryZone": ("pri_zone", str),
    "StandbyRegion": ("sby_region", str), "StandbyZone": ("sby_zone", str),
    "RPO": ("rpo", int), "Bandwidth": ("bandwidth", int),
    "LastRecoverPoint": ("lrp", "time"), "ChargeType": ("charge", str),
    "ExpiredTime": ("expired", "time"), "CreateTime": ("created", "time"),
    "ReplicaGroupId": ("group_id", str), "ReplicaGroupName": ("group_name", str),
    "ResourceGroupId": ("rg", str), "EnableRtc": ("rtc", bool), "Tags": ("tags", "tags"),
}
DIRECTION_SLOTS = frozenset(("src_region", "dst_region"))


def parse_time(value, ref):
    """A fixture/admin time: an integer (seconds; milliseconds when > 1e11 are divided),
    or "now", "now-600", "now+86400" relative to the reference time."""
    if isinstance(value, bool):
        raise ValueError("time must be a number or 'now[+-]N'")
    if isinstance(value, (int, float)):
        v = int(value)
        return v // 1000 if v > 100000000000 else v
    s = str(value).strip()
    if s.startswith("now"):
        rest = s[3:].strip()
        return int(ref + (int(rest) if rest else 0))
    return parse_time(int(s), ref)


def parse_bool(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    s = str(value).strip().lower()
    if s in ("true", "1", "yes"):
        return True
    if s in ("false", "0", "no", ""):
        return False
    raise ValueError("not a boolean: %r" % (value,))


def parse_tags(value):
    out = []
    for t in value or ():
        if isinstance(t, dict):
            k = t.get("TagKey", t.get("Key"))
            v = t.get("TagValue", t.get("Value", ""))
        else:
            k, v = t
        if k is None:
            raise ValueError("tag without TagKey")
        out.append((str(k), "" if v is None else str(v)))
    return tuple(out)


def encode_token(region, site, seq):
    raw = ("ebs1|%s|%s|%d" % (region, site, seq)).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_token(token, region, site):
    """Returns the last seq of the previous page, or raises ApiError."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("utf-8")
        tag, tregion, tsite, seq = raw.split("|")
        if tag != "ebs1" or tregion != region or tsite != site:
            raise ValueError(raw)
        return int(seq)
    except (ValueError, UnicodeDecodeError):
        raise ApiError("InvalidParameter", "The specified parameter NextToken is not valid.")


class Model:
    def __init__(self, transition_delay=2.0, create_time_ms=False, ref_time=None):
        self.pairs = {}                 # id -> Pair, in seq order
        self.disks = set()
        self.delay = float(transition_delay)
        self.create_time_ms = create_time_ms
        self.ref = int(ref_time if ref_time is not None else time.time())
        self._seq = 0
        self._heap = []
        self._hseq = 0
        self._version = 0               # bumped when a pair is added/removed/changes direction
        self._index = {}
        self._index_version = -1
        self.failover_from = set(FAILOVER_FROM)

    # ---------------------------------------------------------------- building
    def add(self, p):
        if p.id in self.pairs:
            raise ValueError("duplicate ReplicaPairId %s" % p.id)
        self._seq += 1
        p.seq = self._seq
        self.pairs[p.id] = p
        self.disks.add(p.src_disk)
        self.disks.add(p.dst_disk)
        self._version += 1

    def remove(self, p):
        self.pairs.pop(p.id, None)
        self.disks.discard(p.src_disk)
        self.disks.discard(p.dst_disk)
        p.tr_gen += 1
        self._version += 1

    def new_pair_id(self, rng):
        for _ in range(1000):
            pid = "pair-cn-" + "".join(rng.choices(ALNUM, k=11))
            if pid not in self.pairs:
                return pid
        raise RuntimeError("cannot find a free pair id")

    def new_disk_id(self, rng, region):
        prefix = region_info(region)[2]
        for _ in range(1000):
            did = "d-" + prefix + "".join(rng.choices(ALNUM, k=20 - len(prefix)))
            if did not in self.disks:
                return did
        raise RuntimeError("cannot find a free disk id")

    def generate(self, n, seed, regions):
        """n pairs; pair k: source regions[k % R], destination regions[(k+1) % R]
        (with one region both are there, in different zones).  Same seed and regions give
        the same pairs, and --pairs M is a prefix of --pairs N for M < N; time fields are
        relative to the reference time (--epoch)."""
        rng = random.Random(seed)
        ref = self.ref
        nreg = len(regions)
        apps = ("db", "erp", "crm", "web", "oms", "wms", "billing", "search", "cache", "mq",
                "gitlab", "jenkins", "hr", "bi", "pay", "auth", "ledger", "mail", "files",
                "iot")
        roles = ("primary", "data", "logs", "archive", "redo", "wal", "home", "media",
                 "index", "shard", "binlog", "scratch")
        envs = ("prod", "prod", "prod", "staging", "dev")
        teams = ("storage", "platform", "payments", "data", "web", "sre")
        owners = ("alice", "bob", "chen.wei", "li.na", "wang.fang", "zhang.yu")
        rgs = ["rg-acfm" + "".join(rng.choices(ALNUM, k=11)) for _ in range(4)]
        groups = {}
        zones = {r: region_zones(r) for r in regions}
        for k in range(n):
            p = Pair()
            src = regions[k % nreg]
            dst = regions[(k + 1) % nreg]
            p.id = self.new_pair_id(rng)
            app = rng.choice(apps)
            role = rng.choice(roles)
            env = rng.choice(envs)
            p.name = "%s-%s-%05d" % (app, role, k)
            if rng.random() < 0.7:
                p.desc = "%s %s volume of %s, replicated %s to %s" % (
                    env, role, app, src, dst)
            p.src_region = p.pri_region = src
            p.dst_region = p.sby_region = dst
            p.src_zone = rng.choice(zones[src])
            dzones = [z for z in zones[dst] if z != p.src_zone]
            p.dst_zone = rng.choice(dzones)
            p.pri_zone, p.sby_zone = p.src_zone, p.dst_zone
            p.src_disk = self.new_disk_id(rng, src)
            p.dst_disk = self.new_disk_id(rng, dst)
            p.rpo = 900
            p.created = ref - rng.randint(86400, 2 * 365 * 86400)
            if rng.random() < 0.4:
                p.charge = "PREPAY"
                p.bandwidth = rng.choice((10240, 20480, 51200, 102400))
                months = rng.choice((1, 3, 6, 12, 24, 36))
                period = months * 30 * 86400
                elapsed = ref - p.created
                p.expired = p.created + (elapsed // period + 1) * period
            else:
                p.charge = "POSTPAY"
                p.bandwidth = 0
                p.expired = 0
            p.rg = rng.choice(rgs)
            p.rtc = rng.random() < 0.2
            ntags = rng.choice((0, 0, 1, 1, 2, 3))
            tagvals = {"env": env, "team": rng.choice(teams), "app": app,
                       "owner": rng.choice(owners),
                       "cost-center": "cc-%04d" % rng.randint(1000, 1099)}
            keys = rng.sample(sorted(tagvals), ntags)
            p.tags = tuple((key, tagvals[key]) for key in keys)
            u = rng.random()
            p.started = p.synced = True
            if u < 0.10:
                p.status = "failovered"
                p.lrp = ref - rng.randint(600, 7 * 86400)
            elif u < 0.20:
                p.status = "stopped"
                p.lrp = ref - rng.randint(3600, 30 * 86400)
            elif u < 0.24:
                p.status = "syncing"
                p.lrp = ref - rng.randint(p.rpo, 2 * p.rpo)
                start = ref - rng.randint(0, 120)
                self._schedule(p, "sync", "normal", start, rng.randint(120, 900))
            elif u < 0.25:
                p.status = "created"
                p.started = p.synced = False
            elif u < 0.26:
                p.status = "invalid"
                p.status_msg = rng.choice(STATUS_MESSAGES)
                if rng.random() < 0.5:
                    p.lrp = ref - rng.randint(86400, 60 * 86400)
                else:
                    p.started = p.synced = False
            else:
                p.status = "normal"
                p.lrp = ref - rng.randint(0, p.rpo)
            if p.status == "normal" and rng.random() < 0.05:
                key = (p.src_zone, p.dst_zone)
                g = groups.get(key)
                if g is None or g[2] >= 17:
                    g = ["pg-" + "".join(rng.choices(ALNUM, k=16)),
                         "%s-consistency-group" % app, 0, rng.random() < 0.3]
                    groups[key] = g
                g[2] += 1
                p.group_id, p.group_name, p.rtc = g[0], g[1], g[3]
            self.add(p)

    def load_records(self, records):
        """Load ReplicaPair records (production view, API field names).  Missing fields
        get defaults; time fields accept 'now-N'."""
        if not isinstance(records, list):
            raise ValueError("fixture must be a JSON list of ReplicaPair records")
        for i, rec in enumerate(records):
            if not isinstance(rec, dict):
                raise ValueError("fixture record %d is not an object" % i)
            p = self.pair_from_record(rec)
            self.add(p)

    def pair_from_record(self, rec):
        for req in ("ReplicaPairId", "SourceRegion", "DestinationRegion"):
            if not rec.get(req):
                raise ValueError("record without %s: %r" % (req, rec))
        p = Pair()
        p.status = "normal"
        self.set_fields(p, rec, initial=True)
        if not p.src_zone:
            p.src_zone = region_zones(p.src_region)[0]
        if not p.dst_zone:
            p.dst_zone = region_zones(p.dst_region)[1]
        p.pri_region = p.pri_region or p.src_region
        p.pri_zone = p.pri_zone or p.src_zone
        p.sby_region = p.sby_region or p.dst_region
        p.sby_zone = p.sby_zone or p.dst_zone
        rng = random.Random(p.id)
        p.src_disk = p.src_disk or self.new_disk_id(rng, p.src_region)
        p.dst_disk = p.dst_disk or self.new_disk_id(rng, p.dst_region)
        p.name = p.name if "PairName" in rec else p.id
        if not p.created:
            p.created = self.ref - 86400
        p.started = p.status not in ("created", "creating", "create_failed") and (
            p.lrp > 0 or p.status != "invalid")
        p.synced = p.started and p.status != "initial_syncing"
        if p.started and not p.lrp and p.status in ("normal", "stopped", "failovered"):
            p.lrp = self.ref - 60
        return p

    def set_fields(self, p, rec, initial=False):
        """Set API-named fields on p (fixture or admin); raises ValueError."""
        changed_direction = False
        for name, value in rec.items():
            spec = FIELDS.get(name)
            if spec is None:
                if name == "Site":
                    continue
                raise ValueError("unknown field %r" % name)
            slot, kind = spec
            if slot == "id" and not initial:
                continue
            if kind == "time":
                value = parse_time(value, self.ref) if value not in (None, "") else 0
            elif kind is int:
                value = int(value)
            elif kind is bool:
                value = parse_bool(value)
            elif kind == "tags":
                value = parse_tags(value)
            else:
                value = "" if value is None else str(value)
            if slot in DIRECTION_SLOTS and getattr(p, slot) != value:
                changed_direction = True
            setattr(p, slot, value)
        if changed_direction and not initial:
            self._version += 1

    # ---------------------------------------------------------------- transitions
    def _schedule(self, p, kind, to, start, delay, msg=None):
        p.tr_kind = kind
        p.tr_to = to
        p.tr_start = start
        p.tr_at = start + max(0.0, float(delay))
        p.tr_msg = msg
        p.tr_gen += 1
        self._hseq += 1
        heapq.heappush(self._heap, (p.tr_at, self._hseq, p.tr_gen, p))

    def cancel(self, p):
        p.tr_kind = p.tr_to = p.tr_msg = None
        p.tr_gen += 1

    def settle(self, now=None):
        """Apply every transition that is due."""
        if now is None:
            now = time.time()
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, gen, p = heapq.heappop(heap)
            if gen != p.tr_gen or p.tr_kind is None or self.pairs.get(p.id) is not p:
                continue
            self._apply(p)

    def _apply(self, p):
        kind = p.tr_kind
        at = int(p.tr_at)
        if kind == "delete":
            self.remove(p)
            return
        if kind in ("sync", "oneshot"):
            p.lrp = at
            p.synced = True
        elif kind == "reprotect_reverse":
            p.src_disk, p.dst_disk = p.dst_disk, p.src_disk
            p.src_region, p.dst_region = p.dst_region, p.src_region
            p.src_zone, p.dst_zone = p.dst_zone, p.src_zone
            self._version += 1
        # reprotect_keep: failovered is cancelled, the current direction is kept.
        if p.tr_msg is not None:
            p.status_msg = p.tr_msg
        p.status = p.tr_to
        p.tr_kind = p.tr_to = p.tr_msg = None
        p.tr_gen += 1

    # ---------------------------------------------------------------- views
    def _view(self, region, site):
        if self._index_version != self._version:
            self._index = {}
            self._index_version = self._version
        key = (region, site)
        v = self._index.get(key)
        if v is None:
            if site == "production":
                lst = [p for p in self.pairs.values() if p.src_region == region]
            else:
                lst = [p for p in self.pairs.values() if p.dst_region == region]
            v = (lst, [p.seq for p in lst])
            self._index[key] = v
        return v

    def in_view(self, p, region, site):
        return (p.src_region if site == "production" else p.dst_region) == region

    def describe(self, region, site, pair_ids=None, group_id=None, rg=None, name=None,
                 tags=None, token=None, max_results=10, page=None):
        """Returns dict(records=[Pair], next_token, total, page_number, page_size).
        token mode when page is None: keyset on seq after `token`; page mode: page=(n, size).
        """
        lst, seqs = self._view(region, site)
        filtered = pair_ids is not None or group_id is not None or rg is not None or \
            name is not None or tags
        if pair_ids is not None:
            seen = set()
            cand = []
            for pid in pair_ids:
                p = self.pairs.get(pid)
                if p is not None and pid not in seen and self.in_view(p, region, site):
                    seen.add(pid)
                    cand.append(p)
            cand.sort(key=lambda q: q.seq)
            lst = cand
        if group_id is not None:
            want = "" if group_id == "-" else group_id
            lst = [p for p in lst if p.group_id == want]
        if rg is not None:
            lst = [p for p in lst if p.rg == rg]
        if name is not None:
            low = name.lower()
            lst = [p for p in lst if low in p.name.lower()]
        if tags:
            def has_tags(p):
                mine = dict(p.tags)
                for k, v in tags:
                    if k not in mine or (v is not None and mine[k] != v):
                        return False
                return True
            lst = [p for p in lst if has_tags(p)]
        if filtered:
            seqs = [p.seq for p in lst]
        total = len(lst)
        if page is not None:
            number, size = page
            start = (number - 1) * size
            return {"records": lst[start:start + size], "next_token": "",
                    "total": total, "page_number": number, "page_size": size}
        start = 0
        if token:
            start = bisect.bisect_right(seqs, decode_token(token, region, site))
        chunk = lst[start:start + max_results]
        more = start + max_results < total
        nxt = encode_token(region, site, chunk[-1].seq) if (more and chunk) else ""
        return {"records": chunk, "next_token": nxt, "total": total,
                "page_number": start // max_results + 1, "page_size": max_results}

    def record(self, p, site="production"):
        """The ReplicaPair JSON object, every field of ebs-api.md 2.2.1, in that order."""
        return {
            "ReplicaPairId": p.id, "PairName": p.name, "Description": p.desc,
            "Status": p.status, "StatusMessage": p.status_msg,
            "SourceDiskId": p.src_disk, "SourceRegion": p.src_region,
            "SourceZoneId": p.src_zone,
            "DestinationDiskId": p.dst_disk, "DestinationRegion": p.dst_region,
            "DestinationZoneId": p.dst_zone,
            "PrimaryRegion": p.pri_region, "PrimaryZone": p.pri_zone,
            "StandbyRegion": p.sby_region, "StandbyZone": p.sby_zone,
            "RPO": p.rpo, "Bandwidth": p.bandwidth, "LastRecoverPoint": p.lrp,
            "ChargeType": p.charge, "ExpiredTime": p.expired,
            "CreateTime": p.created * 1000 if self.create_time_ms else p.created,
            "ReplicaGroupId": p.group_id, "ReplicaGroupName": p.group_name,
            "Site": site, "ResourceGroupId": p.rg, "EnableRtc": p.rtc,
            "Tags": [{"TagKey": k, "TagValue": v} for k, v in p.tags],
        }

    def debug_record(self, p):
        rec = self.record(p, "production")
        rec["_emulator"] = {
            "seq": p.seq, "started": p.started, "synced": p.synced,
            "transition": None if p.tr_kind is None else {
                "kind": p.tr_kind, "to": p.tr_to, "start": p.tr_start, "at": p.tr_at},
        }
        return rec

    # ---------------------------------------------------------------- actions
    def lookup(self, region, pair_id):
        p = self.pairs.get(pair_id)
        if p is None or region not in (p.src_region, p.dst_region):
            raise ApiError("NoSuchResource",
                           "The specified resource %s does not exist." % pair_id)
        return p

    @staticmethod
    def _need(p, allowed):
        if p.status not in allowed:
            raise ApiError("OperationDenied.InvalidStatus",
                           "The operation is not allowed in current status (%s)." % p.status)

    @staticmethod
    def _on_secondary(p, region):
        """Failover/Reprotect: must be called in the current destination region."""
        if region != p.dst_region:
            raise ApiError("OperationDenied.OperateNotAllowedForPrimary")

    def start(self, p, region, one_shot, now):
        self._need(p, START_FROM)
        if one_shot:
            p.status = "manual_syncing"
            self._schedule(p, "oneshot", "stopped", now, self.delay)
        else:
            p.status = "syncing" if p.synced else "initial_syncing"
            self._schedule(p, "sync", "normal", now, self.delay)
        p.started = True

    def stop(self, p, region, now):
        self._need(p, STOP_FROM)
        p.status = "stopping"
        self._schedule(p, "stop", "stopped", now, self.delay)

    def failover(self, p, region, now):
        self._on_secondary(p, region)
        self._need(p, self.failover_from)
        p.status = "failovering"
        self._schedule(p, "failover", "failovered", now, self.delay)

    def reprotect(self, p, region, reverse, now):
        self._on_secondary(p, region)
        self._need(p, REPROTECT_FROM)
        p.status = "reprotecting"
        kind = "reprotect_reverse" if reverse else "reprotect_keep"
        self._schedule(p, kind, "stopped", now, self.delay)

    def delete(self, p, region, now):
        if region != p.src_region:
            raise ApiError("OperationDenied.OperateNotAllowedForStandby")
        self._need(p, DELETE_FROM)
        p.status = "deleting"
        self._schedule(p, "delete", "deleted", now, self.delay)

    def modify(self, p, region, fields, now):
        self._need(p, MODIFY_FROM)
        for slot, value in fields.items():
            setattr(p, slot, value)

    def create(self, region, fields, now, rng):
        for did in (fields["src_disk"], fields["dst_disk"]):
            if did in self.disks:
                raise ApiError("OperationDenied",
                               "The disk %s is already in a replication pair." % did)
        p = Pair()
        p.id = self.new_pair_id(rng)
        for slot, value in fields.items():
            setattr(p, slot, value)
        p.src_region = p.pri_region = region
        p.pri_zone = p.src_zone
        p.sby_region, p.sby_zone = p.dst_region, p.dst_zone
        p.created = int(now)
        p.status = "creating"
        self.add(p)
        self._schedule(p, "create", "created", now, self.delay)
        return p

    def admin_status(self, p, status, msg, after, now):
        """Admin: set status now, or after `after` seconds (async, e.g. to invalid)."""
        if after:
            self._schedule(p, "set", status, now, after, msg)
        else:
            self.cancel(p)
            p.status = status
            if msg is not None:
                p.status_msg = msg

    def progress(self, p, now):
        """(Progress 0-100, RecoverPoint or None)."""
        if p.status in SYNCING:
            if p.tr_kind in ("sync", "oneshot"):
                span = p.tr_at - p.tr_start
                frac = 1.0 if span <= 0 else (now - p.tr_start) / span
                prog = min(99, max(0, int(frac * 100)))
            else:
                prog = 50
        else:
            prog = 100 if p.synced else 0
        return prog, (p.lrp if p.started else None)


def load_fixture(path):
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)
