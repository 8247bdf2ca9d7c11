"""Packaging and documentation: the man page, --help/--version, meson install, the systemd
unit, fstab-style mounts through mount(8), the DR drill script, and every shell example of
the man page, run against real mounts over the emulator.

Run: /usr/bin/python3 -m pytest tests/system/test_contrib.py  (EBSFS_BUILD_DIR: the build)
"""
import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import (ROOT, bound, build_dir, credentials_env, ebsfs_binary, sh, stop_process,
                      wait_for, wrapper)

MAN_PAGE = os.path.join(ROOT, "docs", "ebsfs.1")
DRILL = os.path.join(ROOT, "contrib", "ebs-dr-drill")
UNIT = os.path.join(ROOT, "contrib", "ebsfs@.service")
CONF_EXAMPLE = os.path.join(ROOT, "contrib", "ebsfs.conf.example")
DEMO = os.path.join(ROOT, "tests", "emulator", "fixtures", "demo.json")
DESIGN = os.path.join(os.path.dirname(ROOT), "shared", "DESIGN.md")

# demo.json: 0001 normal and 0002 failovered (cn-shanghai -> cn-beijing), 0003 stopped.
NORMAL_PAIR = "pair-cn-demo0000001"
FAILOVERED_PAIR = "pair-cn-demo0000002"
STOPPED_PAIR = "pair-cn-demo0000003"

# DESIGN.md section 2: every ebsfs option and (a word of) its default as --help prints it.
OPTION_DEFAULTS = {
    "regions": "DescribeRegions",
    "endpoint": "https://ebs.{region}.aliyuncs.com",
    "cache_ttl": "5",
    "timeout": "10",
    "retries": "3",
    "max_rps": "10",
    "signature": "v3",
    "profile": "ALIBABA_CLOUD_PROFILE",
    "ctl_group": "none",
    "ca_file": "system store",
}

# The shell's default PATH when PATH is unset, which is how mount(8) runs mount.fuse3.
DEFAULT_SH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def demo_emulator(emulator_factory, delay="0.3", *extra):
    return emulator_factory("--fixture", DEMO, "--regions", "cn-shanghai,cn-beijing",
                            "--transition-delay", delay, *extra)


def unroff(text):
    return text.replace("\\-", "-").replace("\\e", "\\").replace("\\(aq", "'")


def man_section(name):
    """The raw roff of section name of the man page."""
    src = open(MAN_PAGE).read()
    m = re.search(r"^\.SH %s\n(.*?)(?=^\.SH )" % re.escape(name), src, re.S | re.M)
    assert m, f"no section {name} in {MAN_PAGE}"
    return m.group(1)


def man_examples():
    """The literal lines of the EXAMPLES section's .EX blocks, unescaped."""
    lines, inside = [], False
    for line in man_section("EXAMPLES").splitlines():
        if line in (".EX", ".nf"):
            inside = True
        elif line in (".EE", ".fi"):
            inside = False
        elif inside:
            lines.append(unroff(line))
    return lines


def user_commands(words):
    """The "$ " commands of EXAMPLES whose first word is in words."""
    out = []
    for line in man_examples():
        if line.startswith("$ ") and line[2:].split()[0] in words:
            out.append(line[2:])
    return out


def run_drill(*args, timeout=120):
    return subprocess.run(["/bin/sh", DRILL] + list(args), capture_output=True, text=True,
                          timeout=timeout)


def pids_mentioning(needle):
    """PIDs whose command line contains needle (a unique temporary path of this test)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline and int(pid) != os.getpid():
            found.append(int(pid))
    return found


def kill_daemons_of(mountpoint):
    """Safety net after a failed mount(8) test: the ebsfs daemons serving mountpoint."""
    for pid in pids_mentioning(mountpoint):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    subprocess.run(["fusermount3", "-uz", mountpoint], capture_output=True)


def read(path):
    with open(path) as f:
        return f.read()


# ---- --help, --version, the man page ------------------------------------------------------


def test_help_lists_every_design_option_with_its_default():
    out = subprocess.run([ebsfs_binary(), "--help"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    # Each option's entry runs from its "    name=" line to the next option's.
    entries = {}
    names = list(OPTION_DEFAULTS)
    for i, name in enumerate(names):
        start = text.index(f"    {name}=")
        end = min([text.index(f"    {n}=") for n in names if text.index(f"    {n}=") > start]
                  + [len(text)])
        entries[name] = " ".join(text[start:end].split())
    for name, default in OPTION_DEFAULTS.items():
        m = re.search(r"\(default: ([^)]*)\)", entries[name])
        assert m, f"{name}: no default in {entries[name]!r}"
        assert default in m.group(1), f"{name}: default {m.group(1)!r}, expected {default!r}"
    assert "default_permissions is always on" in text
    for fuse_opt in ("-f", "-d", "-s", "allow_other", "auto_unmount"):
        assert fuse_opt in text, fuse_opt


def test_option_table_matches_design():
    if not os.path.exists(DESIGN):
        pytest.skip(f"{DESIGN} is not here")
    design = read(DESIGN)
    section = design[design.index("## 2. Options"):design.index("## 3.")]
    names = set(re.findall(r"^\| ([a-z_]+)=", section, re.M))
    assert names == set(OPTION_DEFAULTS)


def test_version():
    out = subprocess.run([ebsfs_binary(), "--version"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    version = re.search(r"^\s*version\s*:\s*'([^']+)'", read(os.path.join(ROOT, "meson.build")),
                        re.M)
    lines = out.stdout.splitlines()
    assert lines[0] == f"ebsfs {version.group(1)}"
    assert re.match(r"libfuse 3\.\d+", lines[1])


def test_man_page_renders_without_warnings():
    if not shutil.which("groff") or not shutil.which("man"):
        pytest.skip("groff or man is not installed (apt-get install groff-base man-db)")
    lint = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", MAN_PAGE],
                          capture_output=True, text=True, timeout=60)
    assert lint.returncode == 0 and lint.stderr == "", lint.stderr
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8", MANPAGER="cat", PAGER="cat")
    out = subprocess.run(["man", "--warnings", "-l", MAN_PAGE], capture_output=True,
                         text=True, timeout=60, env=env)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "THE TREE", "CONTROL FILES", "CACHING",
                    "OPTIONS", "CREDENTIALS", "FILES", "ENVIRONMENT", "EXIT STATUS",
                    "EXAMPLES", "SECURITY", "SEE ALSO"):
        assert re.search(r"^%s$" % section, out.stdout, re.M), section
    assert "ebsfs [SOURCE] MOUNTPOINT [-f] [-d] [-s] [-o OPTION[,OPTION...]]" in out.stdout
    if shutil.which("mandoc"):  # optional: stricter, style included
        lint = subprocess.run(["mandoc", "-Tlint", MAN_PAGE], capture_output=True, text=True,
                              timeout=60)
        assert lint.returncode == 0 and not lint.stdout + lint.stderr, lint.stdout + lint.stderr


def test_man_page_documents_every_option_state_file_and_control_file():
    text = unroff(read(MAN_PAGE))
    options = unroff(man_section("OPTIONS"))
    for name, default in OPTION_DEFAULTS.items():
        assert re.search(r"^\.B[IR]? %s=" % name, options, re.M), name
    for value in ("Default: 5.", "Default: 10.", "Default: 3.", "Default: v3."):
        assert value in " ".join(options.split()), value
    tree = man_section("THE TREE")
    for f in ("status", "status_message", "site", "name", "description", "source_disk_id",
              "source_region", "source_zone_id", "destination_disk_id", "destination_region",
              "destination_zone_id", "primary_region", "primary_zone", "standby_region",
              "standby_zone", "rpo", "bandwidth", "last_recover_point", "create_time",
              "expired_time", "charge_type", "enable_rtc", "replica_group_id",
              "replica_group_name", "resource_group_id", "tags", "pair.json", "progress"):
        assert re.search(r"^\.BR? .*\b%s\b" % re.escape(f), tree, re.M), f
    controls = man_section("CONTROL FILES")
    for f in ("failover", "reprotect", "start", "stop"):
        assert f".B {f}\n" in controls, f
    for errno_name in ("EINVAL", "EBUSY", "EACCES", "ENOENT", "EAGAIN", "ETIMEDOUT", "EIO"):
        assert f".B {errno_name}\n" in controls, errno_name
    env = man_section("ENVIRONMENT")
    for var in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                "ALIBABA_CLOUD_SECURITY_TOKEN", "ALIBABA_CLOUD_PROFILE",
                "ALIBABA_CLOUD_CONFIG_FILE", "ALIBABA_CLOUD_CLI_PROFILE_DISABLED",
                "ALIBABA_CLOUD_CREDENTIALS_FILE", "ALIBABA_CLOUD_ECS_METADATA",
                "ALIBABA_CLOUD_ECS_METADATA_DISABLED", "ALIBABA_CLOUD_IMDSV1_DISABLED",
                "ALIBABA_CLOUD_IMDS_ENDPOINT"):
        assert var in env, var
    # Every name the daemon reads is documented.
    creds_src = read(os.path.join(ROOT, "fs", "creds.c"))
    for var in set(re.findall(r'"(ALIBABA_CLOUD_[A-Z0-9_]+)"', creds_src)):
        assert var in text, f"{var} (read by fs/creds.c) is not in the man page"


# ---- meson install ---------------------------------------------------------------------------


def test_meson_install_destdir(tmp_path):
    if not shutil.which("meson"):
        pytest.skip("meson is not installed")
    build, dest = str(tmp_path / "build"), str(tmp_path / "dest")
    setup = subprocess.run(["meson", "setup", "--prefix", "/usr", build, ROOT],
                           capture_output=True, text=True, timeout=300)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    inst = subprocess.run(["meson", "install", "-C", build, "--destdir", dest],
                          capture_output=True, text=True, timeout=900)
    assert inst.returncode == 0, inst.stdout + inst.stderr
    for rel, executable in (("usr/bin/ebsfs", True), ("usr/bin/ebs-dr-drill", True),
                            ("usr/share/man/man1/ebsfs.1", False),
                            ("usr/lib/systemd/system/ebsfs@.service", False),
                            ("usr/share/doc/ebsfs/examples/ebsfs.conf.example", False)):
        path = os.path.join(dest, rel)
        assert os.path.isfile(path), f"{rel} was not installed: {inst.stdout}"
        assert os.access(path, os.X_OK) == executable, rel
    unit = read(os.path.join(dest, "usr/lib/systemd/system/ebsfs@.service"))
    assert "ExecStart=/usr/bin/ebsfs ebsfs %f -f -o ${EBSFS_OPTIONS}" in unit
    assert "@BINDIR@" not in unit
    assert read(os.path.join(dest, "usr/share/man/man1/ebsfs.1")) == read(MAN_PAGE)
    out = subprocess.run([os.path.join(dest, "usr/bin/ebsfs"), "--version"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.startswith("ebsfs ")


# ---- the systemd unit --------------------------------------------------------------------


def unit_directives(text):
    d = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            k, v = line.split("=", 1)
            d.setdefault(k, []).append(v)
    return d


def test_unit_keeps_the_mount_visible_and_is_hardened():
    d = unit_directives(read(UNIT))
    assert d["Type"] == ["simple"]
    assert d["EnvironmentFile"] == ["/etc/ebsfs/%i.conf"]
    assert d["ExecStop"] == ["-/bin/fusermount3 -u %f"]
    assert d["Restart"] == ["on-failure"]
    assert "network-online.target" in d["After"][0] and "network-online.target" in d["Wants"][0]
    assert d["NoNewPrivileges"] == ["yes"]
    assert d["DeviceAllow"] == ["/dev/fuse rw"]
    assert "AF_INET" in d["RestrictAddressFamilies"][0]
    # Each of these gives the service its own mount namespace, whose mounts systemd does not
    # propagate to the host (systemd.exec(5), PrivateMounts=): the FUSE mount would vanish.
    for namespacing in ("ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices",
                        "PrivateMounts", "ReadWritePaths", "ReadOnlyPaths",
                        "InaccessiblePaths", "ProtectKernelTunables", "ProtectKernelModules",
                        "ProtectKernelLogs", "ProtectControlGroups", "TemporaryFileSystem",
                        "BindPaths", "MountFlags"):
        assert namespacing not in d, namespacing


def test_unit_verifies(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    units = tmp_path / "units"
    units.mkdir()
    text = read(UNIT).replace("@BINDIR@/ebsfs", ebsfs_binary())
    (units / "ebsfs@.service").write_text(text)
    os.symlink("ebsfs@.service", units / "ebsfs@mnt-ebs.service")
    out = subprocess.run(["systemd-analyze", "verify", "--man=no",
                          str(units / "ebsfs@mnt-ebs.service")],
                         capture_output=True, text=True, timeout=120, cwd=str(units))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ebsfs@" not in out.stderr, out.stderr


def test_unit_command_lines_mount_and_unmount(emulator_factory, tmp_path):
    """Runs ExecStart and ExecStop as systemd would expand them for one instance, with the
    environment of the example configuration plus the emulator's endpoint."""
    emu = demo_emulator(emulator_factory)
    mnt = str(tmp_path / "mnt")
    os.mkdir(mnt)
    d = unit_directives(read(UNIT))
    conf = {}
    for line in read(CONF_EXAMPLE).splitlines():
        if line and not line.startswith("#"):
            k, v = line.split("=", 1)
            conf[k] = v
    assert set(conf) == {"EBSFS_OPTIONS"}, "secrets must stay commented in the example"
    options = conf["EBSFS_OPTIONS"] + f",endpoint={emu.url}"

    def expand(cmd):
        return [w.replace("%f", mnt).replace("${EBSFS_OPTIONS}", options)
                .replace("@BINDIR@/ebsfs", ebsfs_binary()) for w in cmd.lstrip("-").split()]

    log = open(tmp_path / "unit.log", "w")
    proc = subprocess.Popen(wrapper() + expand(d["ExecStart"][0]), stdout=log,
                            stderr=subprocess.STDOUT, env=credentials_env())
    try:
        wait_for(lambda: proc.poll() is not None or os.path.ismount(mnt), timeout=bound(30),
                 what="the unit's ExecStart to mount")
        assert proc.poll() is None, read(tmp_path / "unit.log")
        assert read(os.path.join(mnt, "cn-shanghai", NORMAL_PAIR, "status")) == "normal\n"
        stop = subprocess.run(expand(d["ExecStop"][0]), capture_output=True, text=True,
                              timeout=60)
        assert stop.returncode == 0, stop.stderr
        assert proc.wait(timeout=bound(30)) == 0, read(tmp_path / "unit.log")
    finally:
        if proc.poll() is None:
            subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
            stop_process(proc)
        log.close()


# ---- mount(8) and fstab --------------------------------------------------------------------


def can_unshare():
    if not shutil.which("unshare") or not os.path.isdir("/usr/local/sbin"):
        return False
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                          capture_output=True).returncode == 0


def ebsfs_on_default_path():
    return shutil.which("ebsfs", path=DEFAULT_SH_PATH)


def run_in_namespace(tmp_path, script, env):
    """Runs script in a private mount namespace in which /usr/local/sbin holds only an
    `ebsfs` link to the build: how an installed ebsfs is found through the default PATH."""
    shim = tmp_path / "shim"
    shim.mkdir()
    os.symlink(ebsfs_binary(), shim / "ebsfs")
    full = f'mount --bind "{shim}" /usr/local/sbin || exit 99\n' + script
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                           full], capture_output=True, text=True, timeout=120, env=env)


MOUNT_AND_READ = """
trap 'fusermount3 -u "$MNT" 2>/dev/null' EXIT
{mount} || exit 98
grep " $MNT fuse.ebsfs " /proc/self/mounts || exit 97
cat "$MNT/cn-shanghai/{pair}/status" || exit 96
fusermount3 -u "$MNT" || exit 95
trap - EXIT
"""


def test_mount_t_fuse_ebsfs_runs_ebsfs_from_the_default_path(emulator_factory, tmp_path):
    if not can_unshare():
        pytest.skip("needs unshare(1) with CAP_SYS_ADMIN and /usr/local/sbin")
    emu = demo_emulator(emulator_factory)
    mnt = str(tmp_path / "mnt")
    os.mkdir(mnt)
    env = credentials_env({"MNT": mnt})
    mount = (f'mount -t fuse.ebsfs ebsfs "$MNT" '
             f'-o regions=cn-shanghai,endpoint={emu.url},_netdev')
    try:
        out = run_in_namespace(tmp_path, MOUNT_AND_READ.format(mount=mount, pair=NORMAL_PAIR),
                               env)
    finally:
        kill_daemons_of(mnt)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"ebsfs {mnt} fuse.ebsfs " in out.stdout
    assert out.stdout.endswith("normal\n")


def test_mount_clears_path_so_the_build_dir_on_path_is_not_enough(emulator_factory, tmp_path):
    """Documents why the man page asks for a default-PATH directory: mount(8) drops PATH
    (util-linux sanitize_env) before it runs mount.fuse3 and /bin/sh."""
    if ebsfs_on_default_path():
        pytest.skip(f"an ebsfs is installed at {ebsfs_on_default_path()}")
    emu = demo_emulator(emulator_factory)
    mnt = str(tmp_path / "mnt")
    os.mkdir(mnt)
    env = credentials_env({"PATH": build_dir() + ":" + os.environ.get("PATH", "")})
    try:
        out = subprocess.run(["mount", "-t", "fuse.ebsfs", "ebsfs", mnt, "-o",
                              f"regions=cn-shanghai,endpoint={emu.url}"],
                             capture_output=True, text=True, timeout=60, env=env)
        assert out.returncode != 0
        assert "ebsfs: not found" in out.stderr
        assert not os.path.ismount(mnt)
    finally:
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
        kill_daemons_of(mnt)


def fstab_lines():
    return [line for line in man_examples()
            if not line.startswith(("$", "#")) and " fuse" in line]


def test_fstab_line_of_the_man_page(emulator_factory, tmp_path):
    if not can_unshare():
        pytest.skip("needs unshare(1) with CAP_SYS_ADMIN and /usr/local/sbin")
    lines = [line for line in fstab_lines() if line.split()[2] == "fuse.ebsfs"]
    assert len(lines) == 1, fstab_lines()
    emu = demo_emulator(emulator_factory)
    mnt = str(tmp_path / "mnt")
    os.mkdir(mnt)
    spec, path, fstype, opts, freq, passno = lines[0].split()
    assert (spec, path, fstype) == ("ebsfs", "/mnt/ebs", "fuse.ebsfs")
    fstab = tmp_path / "fstab"
    fstab.write_text(f"{spec} {mnt} {fstype} {opts},endpoint={emu.url} {freq} {passno}\n")
    env = credentials_env({"MNT": mnt})
    try:
        out = run_in_namespace(
            tmp_path, MOUNT_AND_READ.format(mount=f'mount -T "{fstab}" "$MNT"',
                                            pair=FAILOVERED_PAIR), env)
    finally:
        kill_daemons_of(mnt)
    assert out.returncode == 0, out.stdout + out.stderr
    # allow_other reached the kernel; _netdev did not reach ebsfs (it would refuse it).
    assert "allow_other" in out.stdout
    assert out.stdout.endswith("failovered\n")


def test_fstab_line_with_a_path_outside_the_default_path(emulator_factory, tmp_path):
    lines = [line for line in fstab_lines() if line.split()[2] == "fuse"]
    assert len(lines) == 1, fstab_lines()
    spec, path, fstype, opts, freq, passno = lines[0].split()
    assert spec == "/opt/ebsfs/bin/ebsfs#ebsfs"
    emu = demo_emulator(emulator_factory)
    mnt = str(tmp_path / "mnt")
    os.mkdir(mnt)
    fstab = tmp_path / "fstab"
    fstab.write_text(f"{ebsfs_binary()}#ebsfs {mnt} {fstype} {opts},endpoint={emu.url} "
                     f"{freq} {passno}\n")
    try:
        out = subprocess.run(["mount", "-T", str(fstab), mnt], capture_output=True, text=True,
                             timeout=60, env=credentials_env())
        assert out.returncode == 0, out.stderr
        assert read(os.path.join(mnt, "cn-shanghai", NORMAL_PAIR, "status")) == "normal\n"
        assert subprocess.run(["fusermount3", "-u", mnt]).returncode == 0
    finally:
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
        kill_daemons_of(mnt)


# ---- the DR drill --------------------------------------------------------------------------


def test_drill_fails_over_reprotects_and_starts(emulator_factory, mount_factory):
    emu = demo_emulator(emulator_factory)
    m = mount_factory(emu, "cache_ttl=1")
    pair_dir = m.path("cn-shanghai", NORMAL_PAIR)
    assert read(os.path.join(pair_dir, "source_region")) == "cn-shanghai\n"
    emu.reset()
    out = run_drill("-t", str(int(bound(30))), "-i", "0.2", pair_dir, timeout=bound(120))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "drill complete" in out.stdout
    for step, target in (("failover", "failovered"), ("reprotect", "stopped"),
                         ("start", "normal")):
        assert re.search(r"^\S+Z %s: accepted: \S+Z ok request_id=\S+$" % step, out.stdout,
                         re.M), out.stdout
        assert re.search(r"^\S+Z %s: status %s$" % (step, target), out.stdout, re.M)
    assert read(os.path.join(pair_dir, "status")) == "normal\n"
    assert read(os.path.join(pair_dir, "source_region")) == "cn-beijing\n"
    assert emu.pair(NORMAL_PAIR)["Status"] == "normal"
    counters = emu.counters()
    for action in ("FailoverDiskReplicaPair", "ReprotectDiskReplicaPair",
                   "StartDiskReplicaPair"):
        assert counters["applied"].get(action, 0) == 1, (action, counters)
    assert counters["calls"].get("StopDiskReplicaPair", 0) == 0
    # Failover and reprotect went to the secondary's region, from the cn-shanghai directory.
    regions = {r["action"]: r["region"] for r in emu.requests()
               if r["action"] in ("FailoverDiskReplicaPair", "ReprotectDiskReplicaPair")}
    assert regions == {"FailoverDiskReplicaPair": "cn-beijing",
                       "ReprotectDiskReplicaPair": "cn-beijing"}


def test_drill_times_out(emulator_factory, mount_factory):
    emu = demo_emulator(emulator_factory, "60")
    m = mount_factory(emu, "cache_ttl=1")
    out = run_drill("-t", "1", "-i", "0.2", m.path("cn-shanghai", NORMAL_PAIR))
    assert out.returncode == 3, out.stdout + out.stderr
    assert "failover: timed out after 1 s waiting for status failovered" in out.stderr
    assert "(last seen: failovering)" in out.stderr
    assert emu.applied("FailoverDiskReplicaPair") == 1
    assert emu.calls("ReprotectDiskReplicaPair") == 0


def test_drill_reports_a_refused_action_with_the_read_back_line(emulator_factory,
                                                                 mount_factory):
    emu = demo_emulator(emulator_factory)
    m = mount_factory(emu, "cache_ttl=1")
    emu.fault("invalid_status", "FailoverDiskReplicaPair", count=-1)
    out = run_drill("-t", "10", "-i", "0.2", m.path("cn-shanghai", NORMAL_PAIR))
    assert out.returncode == 2, out.stdout + out.stderr
    assert re.search(r"failover: read-back: \S+Z error OperationDenied.InvalidStatus: .* "
                     r"request_id=\S+", out.stderr), out.stderr
    assert emu.applied("FailoverDiskReplicaPair") == 0
    assert emu.calls("ReprotectDiskReplicaPair") == 0


def test_drill_stops_on_an_error_status(emulator_factory, mount_factory):
    emu = demo_emulator(emulator_factory, "60")
    m = mount_factory(emu, "cache_ttl=1")
    proc = subprocess.Popen(["/bin/sh", DRILL, "-t", "60", "-i", "0.2",
                             m.path("cn-shanghai", NORMAL_PAIR)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: emu.pair(NORMAL_PAIR)["Status"] == "failovering", timeout=bound(30),
                 what="the failover")
        emu.set_pair(NORMAL_PAIR, status="failover_failed", StatusMessage="disk detached")
        stdout, stderr = proc.communicate(timeout=bound(60))
    finally:
        stop_process(proc)
    assert proc.returncode == 4, stdout + stderr
    assert "the pair entered status failover_failed: disk detached" in stderr


def test_drill_refuses_a_pair_that_is_not_replicating(emulator_factory, mount_factory):
    emu = demo_emulator(emulator_factory)
    m = mount_factory(emu, "cache_ttl=1")
    out = run_drill("-i", "0.2", m.path("cn-beijing", STOPPED_PAIR))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "status 'stopped'" in out.stderr
    assert emu.calls("FailoverDiskReplicaPair") == 0


def test_drill_dry_run_writes_nothing(emulator_factory, mount_factory):
    emu = demo_emulator(emulator_factory)
    m = mount_factory(emu, "cache_ttl=1")
    pair_dir = m.path("cn-shanghai", NORMAL_PAIR)
    out = run_drill("-n", pair_dir)
    assert out.returncode == 0, out.stdout + out.stderr
    for name in ("failover", "reprotect", "start"):
        assert f"{name}: would write 1 to {pair_dir}/{name}" in out.stdout
    assert "would wait up to 1800 s for status normal" in out.stdout
    calls = emu.counters()["calls"]
    assert not {a for a in calls if not a.startswith("Describe")}, calls
    assert read(os.path.join(pair_dir, "failover")) == ""


def test_drill_usage(tmp_path):
    out = run_drill("--help")
    assert out.returncode == 0
    for line in ("0  the drill completed", "1  usage", "2  an action was refused",
                 "3  a step timed out"):
        assert line in out.stdout, line
    assert run_drill().returncode == 1
    assert run_drill("-t", "soon", str(tmp_path)).returncode == 1
    assert run_drill("-i", "0", str(tmp_path)).returncode == 1
    assert run_drill("-x", str(tmp_path)).returncode == 1
    out = run_drill(str(tmp_path))
    assert out.returncode == 1 and "not an ebsfs pair directory" in out.stderr


def test_drill_is_posix_sh():
    if shutil.which("dash"):
        assert subprocess.run(["dash", "-n", DRILL]).returncode == 0
    if shutil.which("shellcheck"):
        out = subprocess.run(["shellcheck", "-s", "sh", DRILL], capture_output=True,
                             text=True)
        assert out.returncode == 0, out.stdout


# ---- the man page's EXAMPLES, run -----------------------------------------------------------

# Every cat/echo/find/jq/grep/touch/watch example of EXAMPLES, in the order the scenario
# below runs them ({m}: the mount point, {p}: the pair).
EXAMPLES = [
    "cat {m}/cn-shanghai/{p}/status",
    "grep . {m}/*/*/status",
    "jq .Status < {m}/cn-shanghai/{p}/pair.json",
    "touch /tmp/t",
    "echo 1 > {m}/cn-beijing/{p}/reprotect",
    "cat {m}/cn-beijing/{p}/reprotect",
    "watch -n1 cat {m}/cn-shanghai/{p}/status",
    "find {m} -name status -newer /tmp/t",
    "cat {m}/.ebsfs/stats",
    "echo 1 > {m}/.ebsfs/refresh",
]


def test_examples_are_all_covered():
    documented = user_commands({"cat", "echo", "find", "jq", "grep", "touch", "watch"})
    expected = [e.format(m="/mnt/ebs", p="pair-cn-xxxx") for e in EXAMPLES]
    assert sorted(documented) == sorted(expected)


def test_examples_of_the_man_page(emulator_factory, mount_factory, tmp_path):
    emu = demo_emulator(emulator_factory)
    m = mount_factory(emu, "cache_ttl=1")
    stamp = str(tmp_path / "t")
    missing_jq = False

    def run(template):
        cmd = template.format(m=m.mountpoint, p=FAILOVERED_PAIR).replace("/tmp/t", stamp)
        if cmd.startswith("watch -n1 "):
            cmd = cmd[len("watch -n1 "):]  # watch needs a terminal; its command is the test
        out = sh(cmd)
        assert out.returncode == 0, (cmd, out.stderr)
        return out.stdout

    status_path = f"{m.mountpoint}/cn-shanghai/{FAILOVERED_PAIR}/status"
    assert run(EXAMPLES[0]) == "failovered\n"
    grep = run(EXAMPLES[1])
    assert f"{status_path}:failovered" in grep.splitlines()
    assert f"{m.mountpoint}/cn-beijing/{NORMAL_PAIR}/status:normal" in grep.splitlines()
    if shutil.which("jq"):
        assert run(EXAMPLES[2]) == '"failovered"\n'
    else:
        missing_jq = True  # reported as a skip at the end, once the rest has run
    run(EXAMPLES[3])
    time.sleep(1.1)  # state file times have whole seconds
    assert run(EXAMPLES[4]) == ""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ok request_id=\S+\n", run(EXAMPLES[5]))
    assert run(EXAMPLES[6]) in ("reprotecting\n", "stopped\n")
    wait_for(lambda: read(status_path) == "stopped\n", timeout=bound(30), interval=0.2,
             what="the reprotect to settle")
    found = run(EXAMPLES[7]).split()
    assert status_path in found
    assert f"{m.mountpoint}/cn-beijing/{FAILOVERED_PAIR}/status" in found
    assert f"{m.mountpoint}/cn-shanghai/{NORMAL_PAIR}/status" not in found
    stats = dict(line.split(" ", 1) for line in run(EXAMPLES[8]).splitlines())
    assert stats["api_calls_ReprotectDiskReplicaPair_ok"] == "1"
    assert stats["control_writes_reprotect_ok"] == "1"
    assert run(EXAMPLES[9]) == ""
    stats = dict(line.split(" ", 1) for line in read(f"{m.mountpoint}/.ebsfs/stats").splitlines())
    assert stats["control_writes_refresh_ok"] == "1"
    assert json.loads(read(f"{m.mountpoint}/cn-beijing/{FAILOVERED_PAIR}/pair.json"))[
        "SourceRegion"] == "cn-beijing"
    if missing_jq:
        pytest.skip("jq is not installed (apt-get install jq): its example did not run")
