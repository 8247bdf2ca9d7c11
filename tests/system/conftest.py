"""Shared fixtures of the system suites: the build, the EBS emulator, and real ebsfs mounts.

Every process started here is stopped by PID in the fixture's finalizer; every mount is
unmounted with fusermount3 -u. Traffic goes to 127.0.0.1 only.
"""
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EMULATOR_DIR = os.path.join(ROOT, "tests", "emulator")
ACCESS_KEY_ID = "testid"
ACCESS_KEY_SECRET = "testsecret"
REGIONS = ("cn-shanghai", "cn-beijing")

# DESIGN.md section 1: the files of a pair directory and of .ebsfs.
STATE_FILES = (
    "status", "status_message", "site", "name", "description",
    "source_disk_id", "source_region", "source_zone_id",
    "destination_disk_id", "destination_region", "destination_zone_id",
    "primary_region", "primary_zone", "standby_region", "standby_zone",
    "rpo", "bandwidth", "last_recover_point", "create_time", "expired_time", "charge_type",
    "enable_rtc", "replica_group_id", "replica_group_name", "resource_group_id",
    "tags", "pair.json", "progress")
CONTROL_FILES = ("reprotect", "failover", "start", "stop")
META_FILES = ("stats", "refresh", "version")

sys.path.insert(0, EMULATOR_DIR)
import client as emulator_client  # noqa: E402  (the emulator's own signing client)

# Sanitizer and valgrind reports in a daemon log; any of them fails the test that caused it.
SANITIZER_REPORT = re.compile(
    r"ERROR: AddressSanitizer|runtime error:|LeakSanitizer|"
    r"^==\d+== (.*[1-9]\d* errors|Invalid |Mismatched |Conditional jump|Use of uninitialised|"
    r"Syscall param|Source and destination overlap|.*are definitely lost)", re.MULTILINE)


def build_dir():
    return os.path.abspath(os.environ.get("EBSFS_BUILD_DIR", os.path.join(ROOT, "build")))


def wrapper():
    """EBSFS_WRAPPER, e.g. "valgrind -q --error-exitcode=99": what every ebsfs runs under."""
    return shlex.split(os.environ.get("EBSFS_WRAPPER", ""))


def time_scale():
    """EBSFS_TIME_SCALE stretches the suite's time bounds for slow builds (valgrind)."""
    return float(os.environ.get("EBSFS_TIME_SCALE", "1"))


def bound(seconds):
    return seconds * time_scale()


def sanitizer_reports(text):
    return [line for line in text.splitlines() if SANITIZER_REPORT.search(line)]


def ebsfs_binary():
    path = os.path.join(build_dir(), "ebsfs")
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing: build first (meson compile -C {build_dir()})")
    return path


def wait_for(predicate, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def stop_process(proc, grace=5.0):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=grace)


class Emulator:
    """One emulator process on 127.0.0.1 with its admin endpoint."""

    def __init__(self, workdir, args):
        self.log_path = os.path.join(workdir, f"emulator-{len(os.listdir(workdir))}.log")
        self.process = emulator_client.Emulator("--log", self.log_path, *args,
                                                startup_timeout=30, workdir=workdir).start()
        self.proc = self.process.proc
        self.port = self.process.port
        self.url = f"http://127.0.0.1:{self.port}"

    def admin(self, path, body=None, method=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + "/_admin/" + path, data=data,
                                     method=method or ("POST" if data is not None else "GET"))
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def counters(self):
        return self.admin("counters")

    def calls(self, action=None):
        calls = self.counters().get("calls", {})
        return calls.get(action, 0) if action else sum(calls.values())

    def applied(self, action):
        return self.counters().get("applied", {}).get(action, 0)

    def reset(self):
        self.admin("reset", {})

    def requests(self, action=None):
        """The request log, or the entries of one action."""
        log = self.admin("requests")
        return [e for e in log if action is None or e["action"] == action]

    def fault(self, kind, action="*", count=1, arg=None):
        body = {"kind": kind, "action": action, "count": count}
        if arg is not None:
            body["arg"] = arg
        self.admin("faults", body)

    def clear_faults(self):
        self.admin("faults", method="DELETE")

    def pair(self, pair_id):
        return self.admin("pair?id=" + pair_id)

    def set_pair(self, pair_id, **fields):
        body = {"id": pair_id}
        body.update(fields)
        return self.admin("pair", body)

    def delete_pair(self, pair_id):
        return self.admin("pair?id=" + pair_id, method="DELETE")

    def add_key(self, key_id, secret, denied=False):
        """Adds an access key, or gives an existing one a new secret (a rotation)."""
        return self.admin("ak", {"id": key_id, "secret": secret, "denied": denied})

    def config(self, **settings):
        return self.admin("config", settings)

    def api(self, action, params):
        """One signed API call with the test key; returns (HTTP status, JSON body)."""
        status, _, body = emulator_client.call(self.port, action, params)
        return status, body

    def source_pairs(self, region, status=None):
        """Ids of the pairs whose source disk is in region, sorted; with status, each is
        first forced into it."""
        ids = sorted(self.view(region, "production"))
        if status is not None:
            for pair_id in ids:
                self.set_pair(pair_id, status=status)
        return ids

    def view(self, region, site):
        """Every record of one DescribeDiskReplicaPairs view, by pair id (costs API calls:
        take it before resetting the counters)."""
        records, token = {}, None
        while True:
            params = {"RegionId": region, "Site": site, "MaxResults": 500}
            if token:
                params["NextToken"] = token
            status, body = self.api("DescribeDiskReplicaPairs", params)
            assert status == 200, body
            records.update((r["ReplicaPairId"], r) for r in body["ReplicaPairs"])
            token = body.get("NextToken")
            if not token:
                return records

    def stop(self):
        self.process.stop()


@pytest.fixture
def emulator_factory(tmp_path):
    started = []

    def start(*args):
        emu = Emulator(str(tmp_path), args)
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


@pytest.fixture
def emulator(emulator_factory):
    """Two regions, 20 generated pairs (each under both regions), quick transitions."""
    return emulator_factory("--regions", "cn-shanghai,cn-beijing", "--pairs", "20",
                            "--transition-delay", "0.5")


def credentials_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_")}
    env["ALIBABA_CLOUD_ACCESS_KEY_ID"] = ACCESS_KEY_ID
    env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = ACCESS_KEY_SECRET
    env["ALIBABA_CLOUD_CLI_PROFILE_DISABLED"] = "true"
    env["HOME"] = tempfile.gettempdir()
    if extra:
        env.update(extra)
    return env


def ebsfs_command(emulator, mountpoint, options=(), regions=",".join(REGIONS), extra_args=(),
                  wrap=None, source=None):
    """The ebsfs command line of a foreground mount against emulator."""
    opts = []
    if emulator is not None:
        opts.append(f"endpoint={emulator.url}")
    if regions:
        opts.append(f"regions={regions}")
    opts.extend(options)
    cmd = list(wrapper() if wrap is None else wrap) + [ebsfs_binary()]
    cmd += ([source] if source else []) + [mountpoint, "-f"] + list(extra_args)
    if opts:
        cmd += ["-o", ",".join(opts)]
    return cmd


def run_ebsfs(cmd, env=None, timeout=30):
    """Runs an ebsfs command that is expected to exit by itself (a refused mount)."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=bound(timeout),
                          env=env if env is not None else credentials_env())


class Mount:
    """A real ebsfs mount in the foreground (-f), logs captured to a file."""

    def __init__(self, workdir, emulator, options=(), env=None, regions=",".join(REGIONS),
                 wrapper=None, extra_args=(), source=None, parent=None):
        self.workdir = workdir
        self.mountpoint = tempfile.mkdtemp(prefix="mnt-", dir=parent or workdir)
        self.log_path = os.path.join(workdir, f"ebsfs-{os.path.basename(self.mountpoint)}.log")
        self.cmd = ebsfs_command(emulator, self.mountpoint, options, regions, extra_args,
                                 wrapper, source)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env if env is not None else credentials_env())
        wait_for(lambda: self.proc.poll() is not None or os.path.ismount(self.mountpoint),
                 timeout=bound(30), what="the mount")
        if self.proc.poll() is not None:
            raise AssertionError(f"ebsfs exited with {self.proc.returncode}: {self.output()}")

    def path(self, *parts):
        return os.path.join(self.mountpoint, *parts)

    def read(self, *parts):
        with open(self.path(*parts)) as f:
            return f.read()

    def stats(self):
        """.ebsfs/stats as a dict of name -> value (str)."""
        return dict(line.split(" ", 1) for line in self.read(".ebsfs", "stats").splitlines())

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def unmount(self):
        if os.path.ismount(self.mountpoint):
            subprocess.run(["fusermount3", "-u", self.mountpoint], check=False)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            subprocess.run(["fusermount3", "-uz", self.mountpoint], check=False)
        self.log.close()


@pytest.fixture
def mount_factory(tmp_path):
    """start(emulator, *options, **Mount keywords) -> Mount; public=True puts the mount point
    where other users can reach it (pytest's directories are private to root)."""
    mounts = []
    public_dirs = []

    def start(emulator, *options, public=False, **kwargs):
        if public:
            if not public_dirs:
                public_dirs.append(tempfile.mkdtemp(prefix="ebsfs-public-"))
                os.chmod(public_dirs[0], 0o755)
            kwargs["parent"] = public_dirs[0]
        m = Mount(str(tmp_path), emulator, options, **kwargs)
        mounts.append(m)
        return m

    yield start
    reports = []
    for m in reversed(mounts):
        alive = m.proc.poll() is None  # a test may have killed it on purpose
        m.unmount()
        if alive and m.proc.returncode != 0:
            reports.append(f"{m.log_path}: exited with {m.proc.returncode} after unmounting")
    for path in public_dirs:
        for name in os.listdir(path):
            os.rmdir(os.path.join(path, name))
        os.rmdir(path)
    reports += [f"{m.log_path}: {line}" for m in mounts for line in sanitizer_reports(m.output())]
    if reports:
        pytest.fail("daemon failures:\n" + "\n".join(reports))


@pytest.fixture
def mnt(emulator, mount_factory):
    return mount_factory(emulator)


def sh(cmd, **kwargs):
    """Runs cmd through /bin/sh as a user would; returns CompletedProcess with text output."""
    return subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, timeout=120,
                          **kwargs)


class Shell:
    """What a finished shell command left: exit status, output, its PID and how long it took."""

    def __init__(self, cmd, timeout=120):
        start = time.monotonic()
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) as proc:
            self.pid = proc.pid
            self.stdout, self.stderr = proc.communicate(timeout=bound(timeout))
        self.returncode = proc.returncode
        self.took = time.monotonic() - start

    def __repr__(self):
        return (f"<exit {self.returncode} after {self.took:.2f}s, stdout {self.stdout!r}, "
                f"stderr {self.stderr!r}>")


def bash(cmd, timeout=120):
    """Runs cmd through bash. dash (/bin/sh) reports every failed write of its builtins as
    "I/O error"; bash names the errno, which is what these tests check."""
    return Shell(["bash", "-c", cmd], timeout)


def echo_1(path):
    """`echo 1 > path`: the whole interface of a control file."""
    return bash(f"echo 1 > {shlex.quote(path)}")


def write_once(path, text):
    """open(O_WRONLY|O_TRUNC) and one write(2) of text at offset 0 (a shell's printf may
    split its output into several writes); returns 0 or the errno."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, text.encode())
        return 0
    except OSError as e:
        return e.errno
    finally:
        os.close(fd)


def assert_fails(result, err):
    """The command failed and said why with errno err's text."""
    assert result.returncode != 0, result
    assert os.strerror(err) in result.stderr, result


def pytest_configure(config):
    config.addinivalue_line("markers", "soak: the bounded soak test (EBSFS_SOAK_SECONDS)")
