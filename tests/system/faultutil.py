"""Helpers of the reliability, bad-input and security suites: timed reads and control writes
through a mount, the daemon's .ebsfs/stats and audit lines, the emulator's request log, the
figures file, and system chores (RSS, dead mounts, TLS certificates, a second uid).

Fixtures stay in conftest.py; this module only holds plain functions and small classes.
"""
import contextlib
import errno
import json
import os
import re
import stat
import subprocess
import tempfile
import threading
import time
from unittest import mock

FIGURES_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".figures",
                            "reliability.json")
NOBODY = 65534
AUDIT_RE = re.compile(r"audit: uid=(\d+) pid=(\d+) comm=(\S+) region=(\S+) pair=(\S+) "
                      r"action=(\S+) client_token=(\S+) request_id=(\S+) outcome=(\S+)")


def errname(code):
    return "ok" if code == 0 else errno.errorcode.get(code, str(code))


# ---- through the mount ---------------------------------------------------------------------

def read_state(path):
    """One cat of path: (content or None, errno or 0, seconds taken)."""
    start = time.monotonic()
    try:
        with open(path, "rb") as f:
            data = f.read().decode()
        err = 0
    except OSError as e:
        data, err = None, e.errno
    return data, err, time.monotonic() - start


def control_write(path, data=b"1\n", offset=None):
    """One write(2) of data to a control file opened as the shell's '>' does; returns its
    errno, 0 when the write returned its length."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        n = os.write(fd, data) if offset is None else os.pwrite(fd, data, offset)
        assert n == len(data), f"short write: {n} of {len(data)}"
        return 0
    except OSError as e:
        return e.errno
    finally:
        os.close(fd)


def timed_write(path, data=b"1\n"):
    """(errno, seconds) of control_write."""
    start = time.monotonic()
    err = control_write(path, data)
    return err, time.monotonic() - start


def read_back(path):
    with open(path) as f:
        return f.read()


def bounded_stats(mount, seconds):
    """.ebsfs/stats as {name: value string}, read by a child that must finish within seconds:
    a deadlocked daemon fails the caller instead of hanging it."""
    out = subprocess.run(["cat", mount.path(".ebsfs", "stats")], capture_output=True,
                         text=True, timeout=seconds, check=True).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def audit_records(log_text):
    """The control-write audit lines of a daemon log, in order, as dicts."""
    keys = ("uid", "pid", "comm", "region", "pair", "action", "client_token", "request_id",
            "outcome")
    return [dict(zip(keys, m.groups())) for m in AUDIT_RE.finditer(log_text)]


def first_pair(mount, region="cn-shanghai"):
    return sorted(os.listdir(mount.path(region)))[0]


def alive(mount):
    return mount.proc.poll() is None


# ---- the emulator's side -------------------------------------------------------------------

def faults_served(emu):
    """How many requests the emulator answered with an injected fault: its --log file (one
    JSON object a line, kept across /_admin/reset) gives those a "fault" key."""
    with open(emu.log_path) as f:
        return sum(1 for line in f if '"fault": ' in line)


def mutating_calls(emu):
    calls = emu.counters()["calls"]
    return sum(n for action, n in calls.items() if action.endswith("DiskReplicaPair"))


# ---- figures -------------------------------------------------------------------------------

class Figures:
    """Counters shared by the tests of one module, saved as one section of FIGURES_PATH."""

    def __init__(self, section):
        self.section = section
        self.lock = threading.Lock()
        self.values = {"tests": 0, "faults_injected": 0, "faults_survived": 0,
                       "reads_served_stale": 0, "reads_under_faults": 0,
                       "max_read_latency_under_faults_s": 0.0}

    def add(self, name, n):
        with self.lock:
            self.values[name] += n

    def read_took(self, seconds):
        with self.lock:
            self.values["reads_under_faults"] += 1
            key = "max_read_latency_under_faults_s"
            self.values[key] = round(max(self.values[key], seconds), 3)

    def save(self):
        """Saves the section, unless no test of it ran (-k, -m soak)."""
        if self.values["tests"]:
            save_figures(self.section, self.values)


def save_figures(section, values):
    """Prints values and stores them as FIGURES_PATH[section], keeping the other sections."""
    os.makedirs(os.path.dirname(FIGURES_PATH), exist_ok=True)
    try:
        with open(FIGURES_PATH) as f:
            figures = json.load(f)
    except (OSError, ValueError):
        figures = {}
    figures[section] = values
    with open(FIGURES_PATH, "w") as f:
        json.dump(figures, f, indent=2, sort_keys=True)
    print(f"\nfigures [{section}]: " + json.dumps(values, sort_keys=True))


# ---- processes and mounts ------------------------------------------------------------------

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def stat_errno(path):
    try:
        os.stat(path)
        return 0
    except OSError as e:
        return e.errno


def mounts_at(path):
    """How many mounts are stacked on path (/proc/self/mountinfo)."""
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if line.split()[4] == path)


def clear_mounts(path):
    """Unmounts whatever is left on path (a killed daemon's dead mount)."""
    for _ in range(mounts_at(path)):
        subprocess.run(["fusermount3", "-uz", path], check=False, timeout=30)


def remount(mount_factory, emulator, mountpoint, *options, **kwargs):
    """A mount_factory mount on an existing mount point (Mount always makes a fresh one)."""
    with mock.patch.object(tempfile, "mkdtemp", return_value=mountpoint):
        return mount_factory(emulator, *options, **kwargs)


@contextlib.contextmanager
def reachable_by_others(path):
    """Lets other users walk down to path (pytest's tmp directories are 0700)."""
    changed = []
    d = os.path.dirname(os.path.abspath(path))
    while d != "/":
        mode = stat.S_IMODE(os.stat(d).st_mode)
        if mode & 0o001 == 0:
            os.chmod(d, mode | 0o001)
            changed.append((d, mode))
        d = os.path.dirname(d)
    try:
        yield
    finally:
        for d, mode in changed:
            os.chmod(d, mode)


def sanitized(binary):
    """True for an ASan build, whose quarantine makes RSS meaningless as a leak measure."""
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False)
    return "libasan" in ldd.stdout


def as_nobody(argv, groups=()):
    """Runs argv as uid/gid 65534, with groups as its only supplementary groups."""
    extra = f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups"
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", extra]
                          + list(argv), capture_output=True, text=True, timeout=60)


# Prints the errno of opening argv[1] for writing (0 when allowed) and, when it opens, of
# writing "1\n" to it: the control-file probe of another user.
ERRNO_PROBE = """
import os, sys
try:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
except OSError as e:
    print(e.errno, "-")
    sys.exit(0)
try:
    os.write(fd, b"1\\n")
    print(0, 0)
except OSError as e:
    print(0, e.errno)
"""


def write_as_nobody(path, groups=()):
    """(errno of the open, errno of the write or None) of `echo 1 > path` by uid 65534."""
    proc = as_nobody(["/usr/bin/python3", "-c", ERRNO_PROBE, path], groups)
    assert proc.returncode == 0, proc
    opened, wrote = proc.stdout.split()
    return int(opened), None if wrote == "-" else int(wrote)


# ---- TLS -----------------------------------------------------------------------------------

def make_certificate(directory):
    """A self-signed certificate for 127.0.0.1: (cert.pem, key.pem)."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    return cert, key

