"""Everything but reading state and writing 1 to a control file is refused with a precise
errno (DESIGN.md section 1, "Everything else"), unknown names are ENOENT, and other users
get what the modes say (default_permissions; the mounts here use allow_other)."""
import errno
import os
import shlex

import pytest

from conftest import Shell, assert_fails, bash, echo_1

SH, BJ = "cn-shanghai", "cn-beijing"
NOBODY = 65534
USERS_GID = 100  # the "users" group of Debian's base system


@pytest.fixture
def pair(emulator):
    """A normal pair with its source in cn-shanghai."""
    return emulator.source_pairs(SH, status="normal")[0]


def as_nobody(cmd, groups=()):
    """cmd through bash as uid/gid nobody, with the supplementary groups given."""
    ids = ["--reuid", str(NOBODY), "--regid", str(NOBODY)]
    ids += ["--groups", ",".join(map(str, groups))] if groups else ["--clear-groups"]
    return Shell(["setpriv"] + ids + ["bash", "-c", cmd])


# ---- the namespace is the daemon's ----------------------------------------------------------

REFUSED = [
    ("mkdir {region}/new", "mkdir"),
    ("mkdir {pair}/new", "mkdir"),
    ("touch {pair}/new", "create"),
    ("mkfifo {pair}/fifo", "mknod"),
    ("rm {pair}/status", "unlink"),
    ("rm {pair}/reprotect", "unlink"),
    ("rmdir {pair}", "rmdir"),
    ("rm -r {region}", "rmdir"),
    ("mv {pair}/status {pair}/state", "rename"),
    ("mv {pair} {region}/elsewhere", "rename"),
    ("chmod 666 {pair}/status", "chmod"),
    ("chmod 666 {pair}/stop", "chmod"),
    ("chmod 777 {pair}", "chmod"),
    ("chown nobody {pair}/status", "chown"),
    ("chgrp users {pair}/stop", "chown"),
    ("ln {pair}/status {pair}/hard", "link"),
    ("ln -s status {pair}/soft", "symlink"),
    ("touch {pair}/status", "utimens"),
    ("truncate -s 0 {pair}/status", "truncate"),
    ("echo normal > {pair}/status", "write"),
    ("echo 1 > {mnt}/.ebsfs/stats", "write"),
    ("echo 1 >> {pair}/name", "write"),
]


@pytest.mark.parametrize("cmd, what", REFUSED, ids=[what + ":" + cmd.split()[0]
                                                     for cmd, what in REFUSED])
def test_namespace_changes_are_eperm(mnt, emulator, pair, cmd, what):
    region = mnt.path(SH)
    before = sorted(os.listdir(region))
    emulator.reset()
    done = bash(cmd.format(mnt=mnt.mountpoint, region=region, pair=mnt.path(SH, pair)))
    assert_fails(done, errno.EPERM)
    assert sorted(os.listdir(region)) == before
    assert mnt.read(SH, pair, "status") == "normal\n"
    # nothing but progress (which a stat may fetch) was asked of the API
    assert set(emulator.counters()["calls"]) <= {"DescribeDiskReplicaPairProgress"}


UNKNOWN = [
    "{mnt}/nope",
    "{mnt}/us-west-1/x",
    "{mnt}/.ebsfs/nope",
    "{mnt}/cn-shanghai/pair-cn-nosuchpair/status",
    "{mnt}/cn-shanghai/{pair}/nope",
    "{mnt}/cn-shanghai/{pair}/status/below",
    "{mnt}/cn-shanghai/{pair}/STATUS",
]


@pytest.mark.parametrize("path", UNKNOWN)
def test_unknown_names_are_enoent(mnt, pair, path):
    full = path.format(mnt=mnt.mountpoint, pair=pair)
    expected = errno.ENOTDIR if full.endswith("/below") else errno.ENOENT
    assert_fails(bash(f"cat {shlex.quote(full)}"), expected)
    assert_fails(bash(f"stat {shlex.quote(full)}"), expected)


def test_dot_and_dotdot(mnt, pair):
    assert os.path.samefile(mnt.path(SH, pair, "."), mnt.path(SH, pair))
    assert os.path.samefile(mnt.path(SH, pair, ".."), mnt.path(SH))
    assert os.path.samefile(mnt.path(SH, ".."), mnt.mountpoint)
    assert mnt.read(SH, pair, "..", pair, ".", "status") == "normal\n"
    done = bash(f"cd {mnt.path(SH, pair)} && cat ./status ../{pair}/site")
    assert (done.returncode, done.stdout) == (0, "normal\nproduction\n"), done


def test_reading_a_directory_is_eisdir(mnt, pair):
    assert_fails(bash(f"cat {mnt.path(SH, pair)}"), errno.EISDIR)


# ---- other users ----------------------------------------------------------------------------

def test_others_read_state_but_cannot_act(emulator, mount_factory, pair):
    mnt = mount_factory(emulator, "allow_other", public=True)
    pair_dir = mnt.path(SH, pair)
    assert as_nobody(f"ls -l {pair_dir}").returncode == 0
    read = as_nobody(f"cat {pair_dir}/status")
    assert (read.returncode, read.stdout) == (0, "normal\n"), read
    emulator.reset()

    for cmd in (f"echo 1 > {pair_dir}/stop", f"echo 1 > {mnt.mountpoint}/.ebsfs/refresh",
                f"cat {pair_dir}/stop", f"mkdir {pair_dir}/x", f"touch {pair_dir}/status"):
        assert_fails(as_nobody(cmd), errno.EACCES)
    assert emulator.counters()["total"] == 0
    assert mnt.stats()["control_writes_stop_ok"] == "0"


def test_ctl_group_members_may_act(emulator, mount_factory, pair):
    mnt = mount_factory(emulator, "allow_other", "ctl_group=users", public=True)
    pair_dir = mnt.path(SH, pair)
    listing = bash(f"ls -l {pair_dir}/stop {pair_dir}/status {mnt.mountpoint}/.ebsfs/refresh")
    assert [line.split()[0] + " " + line.split()[3] for line in listing.stdout.splitlines()] \
        == ["-rw-rw---- users", "-r--r--r-- root", "-rw-rw---- users"], listing

    assert_fails(as_nobody(f"echo 1 > {pair_dir}/stop"), errno.EACCES)
    wrote = as_nobody(f"echo 1 > {pair_dir}/stop", groups=[USERS_GID])
    assert wrote.returncode == 0, wrote
    assert emulator.applied("StopDiskReplicaPair") == 1
    assert f"audit: uid={NOBODY} pid={wrote.pid} comm=bash region={SH} pair={pair} " \
           f"action=StopDiskReplicaPair" in mnt.output()
    read_back = as_nobody(f"cat {pair_dir}/stop", groups=[USERS_GID])
    assert " ok request_id=" in read_back.stdout, read_back


def test_root_writes_to_a_foreign_mount_reach_the_daemon_as_root(mnt, emulator, pair):
    """Root passes the mode checks; the audit names uid 0 and the command."""
    wrote = echo_1(mnt.path(SH, pair, "stop"))
    assert wrote.returncode == 0, wrote
    assert f"uid=0 pid={wrote.pid} comm=bash" in mnt.output()
