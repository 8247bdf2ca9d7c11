#!/usr/bin/python3
"""ebsfs benchmarks: every figure of docs/performance.md, measured in one run on this machine.

    /usr/bin/python3 bench/bench.py --build-dir build-release [--quick] [--json FILE]

bench/run.sh builds the release build and runs this. Everything is compared as a ratio of two
things measured in the same run, alternated where they are timings; the targets are printed,
never asserted (the exit status says only whether the harness itself worked).

Every process this starts is stopped by its PID, every mount is unmounted with
fusermount3 -u, every temporary directory is removed, whatever happens (signals included).
Traffic goes to 127.0.0.1 only. Every wait is bounded.
"""
import argparse
import json
import math
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "emulator"))
import client as emulator_client  # noqa: E402  (starts and stops the emulator by PID)
REGIONS = ["cn-shanghai", "cn-beijing"]
PAGE = 500  # MaxResults fs/ebs.c asks for
AK, SECRET = "testid", "testsecret"
RUN_LIMIT_S = 1500  # the whole run, cleanup included (run.sh adds its own outer limit)


def log(msg):
    sys.stdout.write("  . " + msg + "\n")
    sys.stdout.flush()


def kib(n_bytes):
    return n_bytes / 1024.0


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def wait_for(pred, timeout, what, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise RuntimeError("timed out after %.0fs waiting for %s" % (timeout, what))


def creds_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_")}
    env.update({"ALIBABA_CLOUD_ACCESS_KEY_ID": AK, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET,
                "ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "true",
                "HOME": tempfile.gettempdir()})
    if extra:
        env.update(extra)
    return env


def stop_pid(proc, grace=10.0):
    """SIGTERM, then SIGKILL, to this one process."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)


class Resources:
    """Everything started, so that it can all be stopped in reverse order."""

    def __init__(self):
        self.items = []

    def add(self, kind, obj):
        self.items.append((kind, obj))
        return obj

    def release(self, obj):
        for i, (_, o) in enumerate(self.items):
            if o is obj:
                del self.items[i]
                return

    def cleanup(self):
        while self.items:
            kind, obj = self.items.pop()
            try:
                if kind == "dir":
                    shutil.rmtree(obj, ignore_errors=True)
                else:
                    obj.stop()
            except Exception as e:  # keep cleaning
                sys.stderr.write("cleanup of %s: %s\n" % (kind, e))


RES = Resources()


class Emulator:
    def __init__(self, workdir, pairs, regions=REGIONS, delay=2.0):
        t0 = time.monotonic()
        self.process = emulator_client.Emulator(
            "--pairs", pairs, "--regions", ",".join(regions), "--transition-delay", delay,
            startup_timeout=120)
        RES.add("emulator", self)
        self.process.start()
        self.start_s = time.monotonic() - t0
        self.proc = self.process.proc
        self.port = self.process.port
        self.url = "http://127.0.0.1:%d" % self.port
        self.pairs = pairs
        self.regions = list(regions)

    def admin(self, path, body=None, method=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + "/_admin/" + path, data=data,
                                     method=method or ("POST" if data is not None else "GET"))
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def reset(self):
        self.admin("reset", {})

    def calls(self):
        """{action: n} since the last reset."""
        return dict(self.admin("counters").get("calls", {}))

    def set_pair(self, pair_id, **fields):
        body = {"id": pair_id}
        body.update(fields)
        return self.admin("pair", body)

    def view_sizes(self):
        """{(region, site): n} by the generator's rule (README: pair k has its source in
        regions[k % R] and its destination in regions[(k+1) % R])."""
        r = len(self.regions)
        out = {(g, s): 0 for g in self.regions for s in ("production", "backup")}
        for k in range(self.pairs):
            out[(self.regions[k % r], "production")] += 1
            out[(self.regions[(k + 1) % r], "backup")] += 1
        return out

    def sweep_pages(self):
        """DescribeDiskReplicaPairs calls of one sweep per region and view."""
        return sum(max(1, math.ceil(n / PAGE)) for n in self.view_sizes().values())

    def stop(self):
        self.process.stop()


class Mount:
    def __init__(self, build_dir, workdir, emu, options=(), env_extra=None):
        self.mnt = tempfile.mkdtemp(prefix="mnt-", dir=workdir)
        self.log_path = self.mnt + ".log"
        opts = ["endpoint=" + emu.url, "regions=" + ",".join(emu.regions)] + list(options)
        self.options = list(options)
        cmd = [os.path.join(build_dir, "ebsfs"), self.mnt, "-f", "-o", ",".join(opts)]
        self.out = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=subprocess.STDOUT,
                                     env=creds_env(env_extra))
        RES.add("mount", self)
        wait_for(lambda: self.proc.poll() is not None or os.path.ismount(self.mnt), 30,
                 "the mount")
        if self.proc.poll() is not None:
            raise RuntimeError("ebsfs exited %s: %s" % (self.proc.returncode, self.output()))

    def path(self, *parts):
        return os.path.join(self.mnt, *parts)

    def output(self):
        self.out.flush()
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def rss_kib(self):
        """VmRSS of the daemon, KiB."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stats(self):
        out = {}
        with open(self.path(".ebsfs", "stats")) as f:
            for line in f:
                k, _, v = line.strip().partition(" ")
                out[k] = v
        return out

    def refresh(self):
        fd = os.open(self.path(".ebsfs", "refresh"), os.O_WRONLY)
        try:
            os.write(fd, b"1\n")
        finally:
            os.close(fd)

    def stop(self):
        if os.path.ismount(self.mnt):
            subprocess.run(["fusermount3", "-u", self.mnt], check=False, timeout=30,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stop_pid(self.proc)
            subprocess.run(["fusermount3", "-uz", self.mnt], check=False, timeout=30,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.out.close()
        try:
            os.rmdir(self.mnt)
        except OSError:
            pass
        try:
            os.unlink(self.log_path)
        except OSError:
            pass


def close(obj):
    """Stops one resource now (mount or emulator) and forgets it."""
    RES.release(obj)
    obj.stop()


def run(cmd, timeout, **kw):
    return subprocess.run(cmd, timeout=timeout, check=True, **kw)


# ---- the table ------------------------------------------------------------------------------

ROWS = []
DETAILS = {}


def row(figure, ebsfs, baseline, ratio, target, verdict, note=""):
    ROWS.append({"figure": figure, "ebsfs": ebsfs, "baseline": baseline,
                 "ratio": ratio, "target": target, "verdict": verdict, "note": note})
    print("  => %s | %s | %s | %s | %s | %s" % (figure, ebsfs, baseline, ratio, target,
                                                 verdict))
    sys.stdout.flush()


def fmt_ratio(x):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if x == 0:
        return "0"
    if x < 0.01:
        return "%.5f" % x
    return "%.2fx" % x


def verdict(ok):
    return "PASS" if ok else "MISS"


def print_table():
    cols = ["figure", "ebsfs", "baseline", "ratio", "target", "verdict"]
    cells = [[str(r[c]) for c in cols] for r in ROWS]
    widths = [max([len(c)] + [len(x[i]) for x in cells]) for i, c in enumerate(cols)]
    line = "| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths)) + " |"
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for x in cells:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(x, widths)) + " |")
    notes = [(i + 1, r["note"]) for i, r in enumerate(ROWS) if r["note"]]
    if notes:
        print()
        for i, n in notes:
            print("  [%d] %s" % (i, n))


# ---- helpers over the mounts ---------------------------------------------------------------

def find_files(root, timeout=600):
    out = run(["find", root, "-type", "f"], timeout, stdout=subprocess.PIPE).stdout
    return out.decode().splitlines()


def timed_find(root, timeout=600):
    """(seconds, files found) of one find ROOT -type f, its output read through a pipe."""
    t0 = time.perf_counter()
    out = run(["find", root, "-type", "f"], timeout, stdout=subprocess.PIPE).stdout
    return time.perf_counter() - t0, out.count(b"\n")


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def pair_dirs(mount, region):
    return sorted(os.listdir(mount.path(region)))


# ---- 3. API economy (first: it needs cold mounts) --------------------------------------------

def fig_economy(a, work, emu500):
    ttl = 600
    emu500.reset()
    m = Mount(a.build_dir, work, emu500, ["cache_ttl=%d" % ttl])
    t0 = time.monotonic()
    files = find_files(m.mnt)
    state = [p for p in files if os.path.basename(p) != "progress"
             and os.sep + ".ebsfs" + os.sep not in p]
    for p in state:
        read_file(p)
    pass1_s = time.monotonic() - t0
    c1 = emu500.calls()
    n_pairs = sum(len(pair_dirs(m, r)) for r in emu500.regions)
    per_pair_files = sorted({os.path.basename(p) for p in state})
    control = {"reprotect", "failover", "start", "stop"}
    state_names = [n for n in per_pair_files if n not in control]
    emu500.reset()
    t1 = time.monotonic()
    files2 = find_files(m.mnt)
    for p in files2:
        if os.path.basename(p) != "progress" and os.sep + ".ebsfs" + os.sep not in p:
            read_file(p)
    pass2_s = time.monotonic() - t1
    c2 = emu500.calls()
    within = (time.monotonic() - t0) < ttl
    ids = {r: pair_dirs(m, r) for r in emu500.regions}
    close(m)

    calls1 = sum(c1.values())
    expect = emu500.sweep_pages()
    per_pair_client = n_pairs * len(state_names)
    DETAILS["economy"] = {"pass1_calls": c1, "pass1_s": pass1_s, "pass2_calls": c2,
                          "pass2_s": pass2_s, "pair_dirs": n_pairs, "files_read": len(state),
                          "state_files_per_pair": len(state_names)}
    log("cold pass: %d files read (%d pair dirs x %d state files + control files) in %.1fs, "
        "calls %s" % (len(state), n_pairs, len(state_names), pass1_s, c1))
    log("warm pass: %.1fs later, calls %s" % (pass2_s, c2))
    row("API calls: cold find + read all but progress, 2 regions x %d pairs (%d pair dirs)"
        % (emu500.pairs, n_pairs), calls1,
        "%d (one sweep per region+view)" % expect, fmt_ratio(calls1 / expect), "<= 1.00x",
        verdict(calls1 <= expect),
        "cache_ttl=%d; %d files read, %d of them state files; calls: %s"
        % (ttl, len(state), n_pairs * len(state_names), c1))
    row("  same vs a per-pair client (1 describe per pair per file)", calls1,
        per_pair_client, fmt_ratio(calls1 / per_pair_client), "-", "info")
    calls2 = sum(c2.values())
    row("API calls: the same again within cache_ttl", calls2, 0, "-", "0",
        verdict(calls2 == 0 and within),
        "" if within else "the second pass ended after cache_ttl: not a within-TTL figure")

    # 64 concurrent cold readers, one status file of a different pair each, half per region.
    n_readers = 64
    targets = []
    for i in range(n_readers):
        region = emu500.regions[i % len(emu500.regions)]
        targets.append((region, ids[region][i // len(emu500.regions)]))

    def cold_read(concurrent):
        emu500.reset()
        mm = Mount(a.build_dir, work, emu500, ["cache_ttl=%d" % ttl])
        errors = []
        barrier = threading.Barrier(n_readers if concurrent else 1, timeout=30)

        def reader(items):
            try:
                barrier.wait()
                for region, pid in items:
                    read_file(mm.path(region, pid, "status"))
            except Exception as e:
                errors.append(repr(e))

        t0 = time.perf_counter()
        if concurrent:
            threads = [threading.Thread(target=reader, args=([t],)) for t in targets]
        else:
            threads = [threading.Thread(target=reader, args=(targets,))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        wall = time.perf_counter() - t0
        calls = emu500.calls()
        close(mm)
        if errors or any(t.is_alive() for t in threads):
            raise RuntimeError("cold readers failed: %s" % errors[:3])
        return sum(calls.values()), calls, wall

    c64, d64, w64 = cold_read(True)
    c1r, d1r, w1r = cold_read(False)
    log("64 concurrent cold readers: %s in %.2fs; one reader, same 64 files: %s in %.2fs"
        % (d64, w64, d1r, w1r))
    row("API calls: 64 concurrent cold readers (64 pairs, both regions)", c64,
        "%d (1 reader, same files)" % c1r, fmt_ratio(c64 / c1r if c1r else float("nan")),
        "<= 1.00x", verdict(c64 <= c1r),
        "per-pair client: %d calls; wall %.2fs (64 readers) vs %.2fs (1 reader)"
        % (n_readers, w64, w1r))
    return ids


# ---- 1. warm read ----------------------------------------------------------------------------

def parse_readloop(text):
    med, rounds, iters = {}, {}, {}
    for line in text.splitlines():
        f = line.split()
        if f[0] == "median":
            med[int(f[1])] = float(f[2])
        elif f[0] == "round":
            rounds.setdefault(int(f[2]), []).append(float(f[3]))
        elif f[0] == "iterations":
            iters[int(f[1])] = int(f[2])
    return med, rounds, iters


def fig_warm_read(a, work, shm, emu500, ids):
    m = Mount(a.build_dir, work, emu500, [])  # default cache_ttl (5 s)
    region = emu500.regions[0]
    src = m.path(region, ids[region][0], "status")
    # The copy sits as deep as the file in the mount (six components from /), so that both
    # paths cost the same walk up to the last three names.
    copy = os.path.join(shm, region, ids[region][0], "status")
    os.makedirs(os.path.dirname(copy))
    shutil.copyfile(src, copy)
    before = m.stats()
    out = run([os.path.join(a.build_dir, "bench", "readloop"), "-n", str(a.read_iterations),
               "-t", str(a.read_round_ms), "-r", str(a.read_rounds), "-w", "1000", src, copy],
              600, stdout=subprocess.PIPE).stdout.decode()
    after = m.stats()
    close(m)
    med, rounds, iters = parse_readloop(out)
    upcalls = sum(int(after[k]) - int(before[k]) for k in ("cache_hits", "cache_misses"))
    total_ops = iters[0] * a.read_rounds + 1000
    DETAILS["warm_read"] = {"rounds_ns": rounds, "median_ns": med, "daemon_cache_lookups":
                            upcalls, "ops": total_ops}
    log("rounds ns/op, ebsfs: %s" % " ".join("%.0f" % x for x in rounds[0]))
    log("rounds ns/op, tmpfs: %s" % " ".join("%.0f" % x for x in rounds[1]))
    ratio = med[0] / med[1]
    log("iterations per round: ebsfs %d, tmpfs %d" % (iters[0], iters[1]))
    row("warm read: open/read/close of one state file, ns/op (median of %d rounds)"
        % a.read_rounds, "%.0f ns" % med[0], "%.0f ns (tmpfs copy)" % med[1],
        fmt_ratio(ratio), "<= 1.50x", verdict(ratio <= 1.5),
        "default cache_ttl=5; the daemon answered %d cache lookups during %d reads "
        "(upcalls only when the kernel's entry/attr timeout lapsed)" % (upcalls, total_ops))


# ---- 2. tree walk ----------------------------------------------------------------------------

def mem_available_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def copy_tree(src, dst, timeout=900):
    """cp -r of src to dst, excluding nothing: one cp -r per top-level entry, run side by side
    (the copy reads every file, progress included, and is slow through FUSE)."""
    os.mkdir(dst)
    procs = [subprocess.Popen(["cp", "-r", os.path.join(src, e), os.path.join(dst, e)])
             for e in sorted(os.listdir(src))]
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            rc = p.wait(timeout=max(1, deadline - time.monotonic()))
            if rc != 0:
                raise RuntimeError("cp -r exited %d" % rc)
    finally:
        for p in procs:
            stop_pid(p)


def fig_tree(a, work, shm):
    emu = Emulator(work, a.tree_pairs)
    m = Mount(a.build_dir, work, emu, ["cache_ttl=600", "timeout=60", "max_rps=10000"])
    emu.reset()
    t0 = time.perf_counter()
    n_files = len(find_files(m.mnt))
    cold_s = time.perf_counter() - t0
    cold = emu.calls()
    expect = emu.sweep_pages()
    sizes = emu.view_sizes()
    n_pairs = sum(len(pair_dirs(m, r)) for r in emu.regions)
    log("cold find: %d files, %d pair dirs, %.2fs, calls %s; views %s"
        % (n_files, n_pairs, cold_s, cold,
           ", ".join("%s/%s=%d" % (g, s, n) for (g, s), n in sorted(sizes.items()))))
    cold_calls = sum(cold.values())
    row("API calls: cold find -type f, 2 regions x %d pairs (%d pair dirs, %d files)"
        % (emu.pairs, n_pairs, n_files), cold_calls,
        "%d (sum of ceil(view/%d) over 4 region+views)" % (expect, PAGE),
        fmt_ratio(cold_calls / expect), "<= 1.00x", verdict(cold_calls <= expect),
        "calls: %s" % cold)

    need_kib = n_files * 6  # a tmpfs file: a page plus inode and dentry
    if mem_available_kib() < need_kib + 2 * 1024 * 1024:
        row("tree walk, warm find (ebsfs vs tmpfs copy)", "-", "-", "-", "<= 2.00x",
            "SKIP", "not enough memory for a tmpfs copy of %d files" % n_files)
        close(m)
        close(emu)
        return
    emu.reset()
    copy = os.path.join(shm, "tree")
    t0 = time.perf_counter()
    copy_tree(m.mnt, copy)
    copy_s = time.perf_counter() - t0
    copy_calls = emu.calls()
    log("cp -r of the mount to tmpfs: %.1fs, calls %s (not part of any figure above)"
        % (copy_s, copy_calls))
    n_copy = len(find_files(copy))
    n_copy_calls = sum(copy_calls.values())
    row("  API calls of the cp -r that made the copy (reads every file, progress too)",
        n_copy_calls, "%d progress files" % n_pairs, fmt_ratio(n_copy_calls / n_pairs), "-",
        "info", "counted apart from the cold figure (cache_ttl=600: no sweep repeats); %s"
        % copy_calls)
    emu.reset()
    fuse_s, tmpfs_s = [], []
    for i in range(a.tree_rounds):
        order = [(m.mnt, fuse_s, n_files), (copy, tmpfs_s, n_copy)]
        if i % 2:
            order.reverse()
        for root, acc, want in order:
            secs, found = timed_find(root)
            if found != want:
                raise RuntimeError("find %s found %d files, not %d" % (root, found, want))
            acc.append(secs)
    warm = emu.calls()
    close(m)
    close(emu)
    shutil.rmtree(copy, ignore_errors=True)
    log("warm find rounds, ebsfs: %s s" % " ".join("%.2f" % x for x in fuse_s))
    log("warm find rounds, tmpfs: %s s" % " ".join("%.2f" % x for x in tmpfs_s))
    DETAILS["tree"] = {"cold_calls": cold, "cold_s": cold_s, "expected": expect,
                       "files": n_files, "copy_files": n_copy, "copy_s": copy_s,
                       "copy_calls": copy_calls, "fuse_s": fuse_s, "tmpfs_s": tmpfs_s,
                       "warm_calls": warm}
    ratio = median(fuse_s) / median(tmpfs_s)
    row("tree walk: warm find -type f, %d files, s (median of %d)" % (n_files, a.tree_rounds),
        "%.2f s" % median(fuse_s), "%.2f s (tmpfs copy, %d files)" % (median(tmpfs_s), n_copy),
        fmt_ratio(ratio), "<= 2.00x", verdict(ratio <= 2.0),
        "cache_ttl=600 so every round is warm; API calls during the warm rounds: %d; "
        "the copy took %.0fs" % (sum(warm.values()), copy_s))


# ---- 4. memory -------------------------------------------------------------------------------

def sweep_all(m, regions):
    for r in regions:  # one after the other: one sweep at a time, as a walk would
        os.listdir(m.path(r))


def records_held(m, regions):
    st = m.stats()
    return sum(int(st.get("region.%s.pairs" % r, 0)) for r in regions)


def fig_memory(a, work):
    opts = ["cache_ttl=600", "timeout=60", "max_rps=10000"]
    refresh_emu = None
    for n in a.mem_pairs:
        emu = Emulator(work, n)
        m = Mount(a.build_dir, work, emu, opts)
        time.sleep(0.3)
        empty = m.rss_kib()
        t0 = time.perf_counter()
        sweep_all(m, emu.regions)
        sweep_s = time.perf_counter() - t0
        time.sleep(0.3)
        full = m.rss_kib()
        held = records_held(m, emu.regions)
        per = (full - empty) * 1024.0 / held if held else float("nan")
        DETAILS.setdefault("memory", {})[n] = {"empty_kib": empty, "full_kib": full,
                                               "records": held, "sweep_s": sweep_s,
                                               "emulator_start_s": emu.start_s}
        log("%d pairs: emulator up in %.1fs, sweep %.1fs, RSS %d -> %d KiB, %d records held"
            % (n, emu.start_s, sweep_s, empty, full, held))
        row("memory: RSS per record after a full sweep, %d pairs x 2 regions" % n,
            "%.2f KiB" % kib(per), "%d KiB empty -> %d KiB, %d records" % (empty, full, held),
            "-", "<= 2 KiB", verdict(per <= 2048),
            "a pair is held once per region directory it shows in (both, here)")
        if n == a.refresh_pairs:
            refresh_emu = emu
        prev = [k for k in DETAILS["memory"] if k < n]
        if prev:
            p = DETAILS["memory"][max(prev)]
            slope = ((full - p["full_kib"]) * 1024.0 / (held - p["records"])
                     if held > p["records"] else float("nan"))
            row("  marginal: RSS per extra record, %d -> %d pairs" % (max(prev), n),
                "%.2f KiB" % kib(slope), "-", "-", "<= 2 KiB", verdict(slope <= 2048),
                "the fixed part (allocator arenas of the sweep threads, libcurl, jansson) "
                "drops out")
        close(m)
        if emu is not refresh_emu:
            close(emu)
    if refresh_emu is None:
        return

    def refresh_series(env_extra):
        m = Mount(a.build_dir, work, refresh_emu, opts, env_extra)
        sweep_all(m, refresh_emu.regions)
        time.sleep(0.3)
        base = m.rss_kib()
        series = []
        t0 = time.perf_counter()
        for _ in range(a.refreshes):
            m.refresh()
            series.append(m.rss_kib())
        secs = time.perf_counter() - t0
        close(m)
        return base, series, secs

    base, series, secs = refresh_series(None)
    grow = series[-1] - base
    log("%d refreshes (%.1fs): RSS after sweep %d KiB, then %s"
        % (a.refreshes, secs, base, " ".join(str(x) for x in series)))
    DETAILS["refresh"] = {"base_kib": base, "series_kib": series, "seconds": secs}
    row("memory: RSS growth over %d refreshes of the same tree (%d pairs x 2 regions)"
        % (a.refreshes, a.refresh_pairs), "%+d KiB" % grow,
        "%d KiB after the first sweep" % base, fmt_ratio(series[-1] / base), "none (+0)",
        verdict(grow <= max(1024, base * 0.02)),
        "after refresh 1: %+d KiB, max %+d KiB; the same tree comes back each time"
        % (series[0] - base, max(series) - base))
    base1, series1, _ = refresh_series({"MALLOC_ARENA_MAX": "1"})
    log("same with MALLOC_ARENA_MAX=1: after sweep %d KiB, then %s"
        % (base1, " ".join(str(x) for x in series1)))
    DETAILS["refresh_arena1"] = {"base_kib": base1, "series_kib": series1}
    row("  diagnosis: the same with MALLOC_ARENA_MAX=1", "%+d KiB" % (series1[-1] - base1),
        "%d KiB after the first sweep" % base1, fmt_ratio(series1[-1] / base1), "-", "info",
        "after refresh 1: %+d KiB; growth after that: %+d KiB"
        % (series1[0] - base1, series1[-1] - series1[0]))
    close(refresh_emu)


# ---- 5. control latency ----------------------------------------------------------------------

def rtt(a, emu, region, action, params, n, reset=None, token=False):
    cmd = [os.path.join(a.build_dir, "bench", "rtt"), "-e", emu.url, "-g", region, "-a", action,
           "-n", str(n), "-w", "2"]
    for k, v in params.items():
        cmd += ["-p", "%s=%s" % (k, v)]
    if token:
        cmd.append("-t")
    if reset:
        cmd += ["-R", emu.url + "/_admin/pair", "-B", json.dumps(reset)]
    out = run(cmd, 300, stdout=subprocess.PIPE, env=creds_env()).stdout.decode()
    res = {}
    for line in out.splitlines():
        f = line.split()
        if f[0] in ("median", "min", "connects"):
            res[f[0]] = float(f[1])
    return res


def pick_pair(m, emu, region, status=None):
    """A pair whose source (production side) is region."""
    for pid in pair_dirs(m, region):
        if read_file(m.path(region, pid, "source_region")).decode().strip() != region:
            continue
        if status and read_file(m.path(region, pid, "status")).decode().strip() != status:
            continue
        return pid
    raise RuntimeError("no pair with source in %s" % region)


def fig_control(a, work, emu):
    m = Mount(a.build_dir, work, emu, ["max_rps=1000"])
    region, other = emu.regions
    sweep_all(m, emu.regions)  # a warm mount: the pair is cached in both region directories
    pid = pick_pair(m, emu, region)
    ctl = m.path(region, pid, "start")
    reset = {"id": pid, "status": "stopped"}
    n = a.control_writes
    times, errors = [], []
    emu.reset()
    for i in range(n + 2):  # two untimed first: connections, caches
        # Writes of one action on one pair within 200 ms of a call join it (racing writers,
        # serialised by the kernel): space them out, untimed.
        time.sleep(0.25)
        emu.set_pair(pid, status="stopped")
        fd = os.open(ctl, os.O_WRONLY)
        try:
            t0 = time.perf_counter()
            os.write(fd, b"1\n")
            dt = time.perf_counter() - t0
        except OSError as e:
            errors.append(e.strerror)
            dt = None
        finally:
            os.close(fd)
        if i >= 2 and dt is not None:
            times.append(dt)
    calls = emu.calls()
    outcome = read_file(ctl).decode().strip()
    close(m)
    if errors or len(times) < n:
        raise RuntimeError("control writes failed: %s (outcome file: %s)" % (errors[:3],
                                                                             outcome))
    per_write = {k: v / float(n + 2) for k, v in calls.items()}
    start = rtt(a, emu, region, "StartDiskReplicaPair", {"ReplicaPairId": pid}, n, reset,
                token=True)
    d_prod = rtt(a, emu, region, "DescribeDiskReplicaPairs",
                 {"MaxResults": PAGE, "Site": "production", "PairIds": pid}, n)
    d_back = rtt(a, emu, other, "DescribeDiskReplicaPairs",
                 {"MaxResults": PAGE, "Site": "backup", "PairIds": pid}, n)
    w = median(times) * 1e9
    s, p, b = start["median"], d_prod["median"], d_back["median"]
    n_desc = per_write.get("DescribeDiskReplicaPairs", 0)
    expect = s + (p + b) / 2 * n_desc
    DETAILS["control"] = {"write_s": times, "calls_per_write": per_write, "rtt_start": start,
                          "rtt_describe_production": d_prod, "rtt_describe_backup": d_back}
    log("write of start: median %.2f ms over %d; API calls per write: %s"
        % (w / 1e6, n, per_write))
    log("rtt: Start %.2f ms, Describe(PairIds) production %.2f ms, backup %.2f ms "
        "(new connections during the timed calls: %d)"
        % (s / 1e6, p / 1e6, b / 1e6, start.get("connects", 0)))
    row("control: write '1' to start (stopped pair), ms (median of %d)" % n,
        "%.2f ms" % (w / 1e6), "%.2f ms (1 signed Start, rtt.c)" % (s / 1e6),
        fmt_ratio(w / s), "<= 1.20x", verdict(w / s <= 1.2),
        "a write makes %s; Start + %.0f x Describe(PairIds) by rtt.c = %.2f ms"
        % (", ".join("%.0f %s" % (v, k) for k, v in sorted(per_write.items())), n_desc,
           expect / 1e6))
    row("  same vs its own API calls (Start + targeted refresh) by rtt.c",
        "%.2f ms" % (w / 1e6), "%.2f ms" % (expect / 1e6), fmt_ratio(w / expect), "-",
        "info", "what the daemon adds over the calls it makes: %.2f ms" % ((w - expect) / 1e6))


# ---- 6. change notification ------------------------------------------------------------------

def poll_wake_once(m, emu, pid, region, value, trigger, timeout=15.0):
    """Waits in poll(POLLPRI|POLLERR) on pid's status file, changes the status to value
    and calls trigger(). Returns, in seconds from the change: the wake, the end of
    trigger(), and when a read first showed value (None: the read right after the wake
    did); the woken reader re-reads every 10 ms for up to 3 s if it sees the old value."""
    path = m.path(region, pid, "status")
    fd = os.open(path, os.O_RDONLY)
    try:
        os.pread(fd, 4096, 0)  # a read at offset 0 acknowledges earlier changes
        p = select.poll()
        p.register(fd, select.POLLPRI | select.POLLERR)
        if p.poll(0):
            os.pread(fd, 4096, 0)
        ready = threading.Event()
        woke = {}

        def waiter():
            ready.set()
            ev = p.poll(int(timeout * 1000))
            woke["t"] = time.perf_counter()
            woke["ev"] = ev

        t = threading.Thread(target=waiter)
        t.start()
        ready.wait(5)
        time.sleep(0.2)  # the waiter is in poll(); the kernel has sent FUSE_POLL
        t0 = time.perf_counter()
        emu.set_pair(pid, status=value)
        trigger()
        t_done = time.perf_counter()
        t.join(timeout + 5)
        if t.is_alive() or not woke.get("ev"):
            raise RuntimeError("poll did not wake within %.0fs" % timeout)
        got = os.pread(fd, 4096, 0).decode().strip()
        seen = None
        if got != value:
            deadline = time.perf_counter() + 3.0
            while got != value and time.perf_counter() < deadline:
                time.sleep(0.01)
                got = os.pread(fd, 4096, 0).decode().strip()
            if got != value:
                raise RuntimeError("woke, but the file still says %r, not %r, 3 s later"
                                   % (got, value))
            seen = time.perf_counter() - t0
        return woke["t"] - t0, t_done - t0, seen
    finally:
        os.close(fd)


def fig_notify(a, work, emu):
    region = emu.regions[0]
    m = Mount(a.build_dir, work, emu, ["cache_ttl=1"])
    pid = pick_pair(m, emu, region, status="normal")
    lat, bound, stale = [], [], []
    values = ["stopped", "normal"]
    for i in range(a.notify_rounds):
        l, b, seen = poll_wake_once(m, emu, pid, region, values[i % 2], m.refresh)
        lat.append(l)
        bound.append(b)
        if seen is not None:
            stale.append(seen)
    log("refresh-driven wakes (ms): %s; change+refresh (ms): %s"
        % (" ".join("%.1f" % (x * 1e3) for x in lat), " ".join("%.1f" % (x * 1e3)
                                                              for x in bound)))
    late = [x - y for x, y in zip(lat, bound) if x > y + 0.010]
    row("change -> poll wake, explicit refresh, ms (median of %d)" % len(lat),
        "%.1f ms" % (median(lat) * 1e3), "%.1f ms (change + 1 refresh)" % (median(bound) * 1e3),
        fmt_ratio(median(lat) / median(bound)), "within 1 refresh",
        verdict(not late and not stale),
        "cache_ttl=1; %s; %d of %d woken readers read the old value first"
        % ("every wake came before the write to .ebsfs/refresh returned (+10 ms)"
           if not late else "%d wakes came later than the refresh" % len(late),
           len(stale), len(lat)))

    # TTL-driven: nobody refreshes and nobody else reads; the daemon sweeps expired regions
    # on its own while someone waits in poll(2) (cache.c, keeper thread, every 250 ms).
    lat2, stale2 = [], []
    for i in range(a.notify_rounds):
        l, _, seen = poll_wake_once(m, emu, pid, region, values[(i + 1) % 2], lambda: None)
        lat2.append(l)
        if seen is not None:
            stale2.append(seen - l)
    t0 = time.perf_counter()
    m.refresh()
    one_refresh = time.perf_counter() - t0
    close(m)
    limit = 1.0 + 0.25 + one_refresh
    log("TTL-driven wakes (ms): %s; bound cache_ttl + keeper period + 1 refresh = %.0f ms"
        % (" ".join("%.1f" % (x * 1e3) for x in lat2), limit * 1e3))
    DETAILS["notify"] = {"refresh_latency_s": lat, "refresh_bound_s": bound,
                         "refresh_stale_reads": stale, "ttl_latency_s": lat2,
                         "ttl_bound_s": limit, "ttl_stale_read_delays_s": stale2}
    if stale2:
        log("TTL-driven: %d of %d woken readers first read the OLD value; the new one showed "
            "%s ms after the wake" % (len(stale2), len(lat2),
                                      " ".join("%.0f" % (x * 1e3) for x in stale2)))
    row("change -> poll wake, cache_ttl=1, no refresh, no other reader, ms (median of %d)"
        % len(lat2), "%.0f ms" % (median(lat2) * 1e3),
        "%.0f ms (ttl + 250 ms + 1 refresh)" % (limit * 1e3),
        fmt_ratio(median(lat2) / limit), "within 1 ttl + 1 refresh",
        verdict(max(lat2) <= limit and not stale2),
        "max %.0f ms; the keeper checks every 250 ms whether a watched region expired; "
        "%d of %d woken readers read the old value first%s"
        % (max(lat2) * 1e3, len(stale2), len(lat2),
           " (new value %.0f ms after the wake, at most)" % (max(stale2) * 1e3)
           if stale2 else ""))


# ---- main ------------------------------------------------------------------------------------

def on_signal(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build-release"))
    ap.add_argument("--quick", action="store_true", help="small sizes (checks the harness)")
    ap.add_argument("--json", help="write every raw measurement there")
    ap.add_argument("--only", help="comma list of figures: economy,read,tree,memory,"
                                   "control,notify")
    a = ap.parse_args()
    a.build_dir = os.path.abspath(a.build_dir)
    a.read_iterations, a.read_rounds, a.read_round_ms = 200000, 9, 400
    a.tree_pairs, a.tree_rounds = 5000, 5
    a.mem_pairs, a.refresh_pairs, a.refreshes = [1000, 10000, 100000], 10000, 20
    a.control_writes, a.notify_rounds = 20, 9
    if a.quick:
        a.read_iterations, a.read_rounds, a.read_round_ms = 20000, 3, 100
        a.tree_pairs, a.tree_rounds = 500, 3
        a.mem_pairs, a.refresh_pairs, a.refreshes = [200, 1000], 1000, 5
        a.control_writes, a.notify_rounds = 5, 3
    only = set(a.only.split(",")) if a.only else None

    for exe in ("ebsfs", "bench/readloop", "bench/rtt"):
        if not os.access(os.path.join(a.build_dir, exe), os.X_OK):
            sys.exit("bench: %s/%s is missing: build first" % (a.build_dir, exe))
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(RUN_LIMIT_S)

    work = RES.add("dir", tempfile.mkdtemp(prefix="ebsfs-bench-"))
    shm_parent = "/dev/shm" if os.path.isdir("/dev/shm") else None
    shm = RES.add("dir", tempfile.mkdtemp(prefix="ebsfs-bench-", dir=shm_parent))
    t_start = time.monotonic()
    failed = []
    try:
        rev = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = "?"
    print("ebsfs benchmarks: ebsfs %s, kernel %s, %d CPUs, load %s, build %s%s" % (
        rev or "?", os.uname().release, os.cpu_count(),
        open("/proc/loadavg").read().split()[0], a.build_dir,
        " (quick sizes)" if a.quick else ""))

    def figure(name, fn, *args):
        if only and name not in only:
            return None
        print("\n== %s (%.0fs into the run)" % (name, time.monotonic() - t_start))
        sys.stdout.flush()
        t0 = time.monotonic()
        try:
            return fn(*args)
        except KeyboardInterrupt:
            raise
        except Exception as e:
            failed.append(name)
            row(name, "-", "-", "-", "-", "ERROR", "%s: %s" % (type(e).__name__, e))
            return None
        finally:
            log("%s took %.1fs" % (name, time.monotonic() - t0))

    rc = 0
    try:
        emu500 = None
        if not only or only & {"economy", "read"}:
            emu500 = Emulator(work, 500)
        ids = figure("economy", fig_economy, a, work, emu500)
        if ids is None and emu500 is not None and (not only or "read" in only):
            m = Mount(a.build_dir, work, emu500, [])
            ids = {r: pair_dirs(m, r) for r in emu500.regions}
            close(m)
        if ids is not None:
            figure("read", fig_warm_read, a, work, shm, emu500, ids)
        if emu500 is not None:
            close(emu500)
        figure("tree", fig_tree, a, work, shm)
        figure("memory", fig_memory, a, work)
        if not only or only & {"control", "notify"}:
            emu = Emulator(work, 20, delay=0)
            figure("control", fig_control, a, work, emu)
            figure("notify", fig_notify, a, work, emu)
            close(emu)
    except KeyboardInterrupt as e:
        print("\nbench: interrupted (%s); cleaning up" % e)
        rc = 130
    finally:
        signal.alarm(0)
        RES.cleanup()
    print("\nebsfs benchmark results (%.0fs, load now %s)\n" % (
        time.monotonic() - t_start, open("/proc/loadavg").read().split()[0]))
    print_table()
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rows": ROWS, "details": DETAILS}, f, indent=1, default=str)
    if failed:
        print("\nbench: figures that could not be measured: %s" % ", ".join(failed))
        rc = rc or 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
