"""Shared fixtures of the system suites: the build, the EBS emulator, and real ebsfs mounts.

Every process started here is stopped by PID in the fixture's finalizer; every mount is
unmounted with fusermount3 -u. Traffic goes to 127.0.0.1 only.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EMULATOR = os.path.join(ROOT, "tests", "emulator", "ebs_emulator.py")
PYTHON = "/usr/bin/python3"
ACCESS_KEY_ID = "testid"
ACCESS_KEY_SECRET = "testsecret"


def build_dir():
    return os.path.abspath(os.environ.get("EBSFS_BUILD_DIR", os.path.join(ROOT, "build")))


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
        self.workdir = workdir
        port_file = os.path.join(workdir, "emulator.port")
        self.log_path = os.path.join(workdir, "emulator.log")
        self.stderr = open(os.path.join(workdir, "emulator.stderr"), "w")
        cmd = [PYTHON, EMULATOR, "--port", "0", "--port-file", port_file,
               "--log", self.log_path] + list(args)
        self.proc = subprocess.Popen(cmd, stdout=self.stderr, stderr=subprocess.STDOUT)
        wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip(),
                 timeout=30, what="the emulator to listen")
        self.port = int(open(port_file).read().strip())
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

    def requests(self):
        return self.admin("requests")

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

    def config(self, **settings):
        return self.admin("config", settings)

    def stop(self):
        stop_process(self.proc)
        self.stderr.close()


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
    """Two regions, a fixed demo fixture plus generated pairs, quick transitions."""
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


class Mount:
    """A real ebsfs mount in the foreground (-f), logs captured to a file."""

    def __init__(self, workdir, emulator, options=(), env=None, regions="cn-shanghai,cn-beijing",
                 wrapper=(), extra_args=()):
        self.workdir = workdir
        self.mountpoint = tempfile.mkdtemp(prefix="mnt-", dir=workdir)
        self.log_path = os.path.join(workdir, f"ebsfs-{os.path.basename(self.mountpoint)}.log")
        opts = []
        if emulator is not None:
            opts.append(f"endpoint={emulator.url}")
        if regions:
            opts.append(f"regions={regions}")
        opts.extend(options)
        self.cmd = list(wrapper) + [ebsfs_binary(), self.mountpoint, "-f"] + list(extra_args)
        if opts:
            self.cmd += ["-o", ",".join(opts)]
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env if env is not None else credentials_env())
        wait_for(lambda: self.proc.poll() is not None or os.path.ismount(self.mountpoint),
                 timeout=30, what="the mount")
        if self.proc.poll() is not None:
            raise AssertionError(f"ebsfs exited with {self.proc.returncode}: {self.output()}")

    def path(self, *parts):
        return os.path.join(self.mountpoint, *parts)

    def output(self):
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
    mounts = []

    def start(emulator, *options, **kwargs):
        m = Mount(str(tmp_path), emulator, options, **kwargs)
        mounts.append(m)
        return m

    yield start
    for m in reversed(mounts):
        m.unmount()


@pytest.fixture
def mnt(emulator, mount_factory):
    return mount_factory(emulator)


def sh(cmd, **kwargs):
    """Runs cmd through /bin/sh as a user would; returns CompletedProcess with text output."""
    return subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, timeout=120,
                          **kwargs)
