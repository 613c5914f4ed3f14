"""A cgroup per worker (graders/sandbox/cgroups.py): memory with shared memory, CPU, tasks; and the fallback.

The real-kernel tests need a grader that can make cgroups (root, or a delegated v2
subtree) and are skipped elsewhere; the detection of v2, v1 and no access runs on fake
trees everywhere. Nothing here measures speed: CPU theft is checked by membership, quota
and CPU-time accounting.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path

import pytest

from graders.config import Config
from graders.sandbox import HostError, Limits, StudentError, Worker, WorkerDied, cgroups, isolation

HOSTILE = Path(__file__).parent / "hostile"
MODES = ("bubblewrap", "process")

PROBE = """
import os, time

def memfd_hoard(mb, per_file=16):
    files = []
    for _ in range(0, mb, per_file):
        files.append(os.memfd_create("hoard"))
        os.posix_fallocate(files[-1], 0, per_file << 20)
    return mb

def tmpfs_hoard(mb, per_file=16):
    for i in range(0, mb, per_file):
        with open(f"/dev/shm/hoard{i}", "wb") as f:
            os.posix_fallocate(f.fileno(), 0, per_file << 20)
    return mb

def fork_until_refused():
    children = 0
    try:
        while children < 2000:
            if os.fork() == 0:
                time.sleep(300)
                os._exit(0)
            children += 1
    except OSError:
        pass
    return children

def my_cgroups():
    return open("/proc/self/cgroup").read()

def spin(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    return seconds
"""


def cgroup_worker(mode: str, code: str = PROBE, **kwargs) -> Worker:
    """A worker in `mode` with a cgroup, or a skip where there is none."""
    found = cgroups.support()
    if not isinstance(found, cgroups.Support):
        pytest.skip(f"no cgroups here: {found}")
    try:
        isolation.plan(mode)
    except isolation.IsolationUnavailable as exc:
        pytest.skip(str(exc))
    limits = kwargs.pop("limits", Limits())
    limits.isolation = mode
    return Worker("bandits", code, limits=limits, **kwargs)


def leftover_groups() -> list[str]:
    """Groups of this process's workers still present."""
    found = cgroups.support()
    mine = f"{cgroups.PREFIX}{os.getpid()}."
    return [e.path for parent, _ in found.parents for e in os.scandir(parent)
            if e.name.startswith(mine) and not e.name.endswith(".grader")]


def tasks_with_token(token: str) -> list[int]:
    mark = f"GRADER_WORKER_TOKEN={token}".encode()
    found = []
    for entry in os.scandir("/proc"):
        try:
            if entry.name.isdigit() and mark in Path(f"/proc/{entry.name}/environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def groups_of(pid: int) -> dict[str, str]:
    """{controller: group} from /proc/PID/cgroup, as the grader sees it."""
    groups = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            groups[name] = path
    return groups


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ memory


@pytest.mark.parametrize("mode", MODES)
def test_memfd_and_tmpfs_memory_count_against_memory_mb(mode):
    limits = Limits(memory_mb=256, file_size_mb=64, open_files=256, disk_mb=1024)
    with cgroup_worker(mode, limits=limits) as w:
        assert "a cgroup per worker" in w.isolation
        with pytest.raises(WorkerDied, match="memory limit"):
            w.call("memfd_hoard", 600, timeout=60)  # outside RLIMIT_AS and resident memory
        if mode == "bubblewrap":  # its /dev/shm is a private tmpfs (in the process mode, the machine's)
            with pytest.raises(WorkerDied, match="memory limit"):
                w.call("tmpfs_hoard", 600, timeout=60)
        assert w.call("spin", 0) == 0  # a fresh worker, a fresh group
    assert leftover_groups() == []


def test_without_a_cgroup_the_result_says_so_and_process_limits_still_hold():
    limits = Limits(memory_mb=300, cgroup="off", isolation="process")
    with Worker("bandits", PROBE + "\ndef hog(mb):\n    return len(bytearray(mb << 20))\n", limits=limits) as w:
        assert "no cgroup (turned off" in w.isolation and "not bounded" in w.isolation
        own = groups_of(os.getpid())
        assert w.call("my_cgroups") and groups_of(w._proc.pid) == own  # stays in the grader's groups
        with pytest.raises((WorkerDied, StudentError), match="MemoryError|memory limit"):
            w.call("hog", 600)  # RLIMIT_AS, as before


# ------------------------------------------------------------------ CPU


@pytest.mark.parametrize("mode", MODES)
def test_setsid_cpu_thieves_stay_in_their_group_and_quota(mode):
    """30 setsid children (tests/hostile/cpu_thieves.py) next to a classmate's grading: all
    of them in the thief's group, whose quota is its one thread; CPU time says it kept to it."""
    thief_code = (HOSTILE / "cpu_thieves.py").read_text() + "\ndef ping():\n    return 1\n"
    with cgroup_worker(mode, thief_code, threads=1) as thief, cgroup_worker(mode) as classmate:
        classmate.call("spin", 0)
        thief.call("ping")  # its import started the thieves
        group = thief._cgroup
        deadline = time.monotonic() + 30
        while len(thieves := [p for p in tasks_with_token(thief._token) if p != thief._proc.pid]) < 30:
            assert time.monotonic() < deadline, f"only {len(thieves)} thieves started"
            time.sleep(0.05)
        names = {Path(p).name for p in group.paths}
        for pid in thieves:
            placed = groups_of(pid)
            for controller in ("",) if group.version == 2 else cgroups.CONTROLLERS:
                assert Path(placed[controller]).name in names, f"thief {pid} is outside the {controller} group"
        cpu = group.by_controller["cpu"]
        if group.version == 2:
            assert Path(cpu, "cpu.max").read_text().split() == [str(cgroups.PERIOD_US)] * 2
        else:
            assert int(Path(cpu, "cpu.cfs_quota_us").read_text()) == int(Path(cpu, "cpu.cfs_period_us").read_text())
        used_before, start = cpu_seconds(thieves), time.monotonic()
        classmate.call("spin", 1.0, timeout=120)  # the classmate's grading, meanwhile
        used, wall = cpu_seconds(thieves) - used_before, time.monotonic() - start
        assert used <= 1.0 * wall * 1.15 + 0.3, f"30 thieves used {used:.2f} CPU s in {wall:.2f} s"
    time.sleep(0.2)
    assert tasks_with_token(thief._token) == [] and leftover_groups() == []


# ------------------------------------------------------------------ tasks


@pytest.mark.parametrize("mode", MODES)
def test_pids_max_bounds_even_a_root_worker(mode):
    with cgroup_worker(mode, limits=Limits(processes=20)) as w:
        forked = w.call("fork_until_refused", timeout=60)
        assert forked <= 20 + cgroups.TASKS_MARGIN
        assert len(w._cgroup.tasks()) <= 20 + cgroups.TASKS_MARGIN
    assert leftover_groups() == []


# ------------------------------------------------------------------ clean-up


def test_groups_are_removed_with_their_processes_many_times():
    found = cgroups.support()
    if not isinstance(found, cgroups.Support):
        pytest.skip(f"no cgroups here: {found}")
    for _ in range(50):
        group = cgroups.Group(found, memory_mb=64, cpus=1, tasks=8)
        fds = group.open_procs()
        try:
            child = subprocess.Popen(["sh", "-c", "setsid sleep 300 & exec sleep 300"],
                                     preexec_fn=lambda fds=fds: [os.write(f, b"0") for f in fds])
        finally:
            for fd in fds:
                os.close(fd)
        while len(group.tasks()) < 2:
            time.sleep(0.005)
        stray = (group.tasks() - {child.pid}).pop()
        group.kill()
        child.wait()
        group.remove()
        assert all(not os.path.exists(p) for p in group.paths)
        assert not os.path.exists(f"/proc/{stray}") or "Z" in Path(f"/proc/{stray}/stat").read_text().split()[2]
    assert leftover_groups() == []


def test_groups_left_by_a_killed_grader_are_removed():
    found = cgroups.support()
    if not isinstance(found, cgroups.Support):
        pytest.skip(f"no cgroups here: {found}")
    dead = subprocess.Popen(["true"])
    dead.wait()
    paths = [os.path.join(parent, f"{cgroups.PREFIX}{dead.pid}.0.abcdef") for parent, _ in found.parents]
    for path in paths:
        os.mkdir(path)
    fds = [os.open(os.path.join(p, "cgroup.procs"), os.O_WRONLY) for p in paths]
    orphan = subprocess.Popen(["sleep", "300"], preexec_fn=lambda: [os.write(f, b"0") for f in fds])
    for fd in fds:
        os.close(fd)
    assert cgroups.detect() == found
    assert orphan.wait(timeout=10) == -9
    assert not any(os.path.exists(p) for p in paths)


# ------------------------------------------------------------------ detection, on fake trees


def fake_tree(tmp_path: Path, mounts: list[str], own: list[str]) -> tuple[str, str]:
    (tmp_path / "mountinfo").write_text("".join(f"{i} 1 0:{i} {m}\n" for i, m in enumerate(mounts, 30)))
    (tmp_path / "cgroup").write_text("".join(f"{line}\n" for line in own))
    return str(tmp_path / "mountinfo"), str(tmp_path / "cgroup")


def test_v2_is_preferred_and_groups_get_its_limits(tmp_path):
    parent = tmp_path / "unified" / "user.slice" / "grading.scope"
    parent.mkdir(parents=True)
    (parent / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (parent / "cgroup.subtree_control").write_text("")
    v1 = tmp_path / "memory"
    v1.mkdir()
    files = fake_tree(tmp_path, [f"/ {tmp_path}/unified rw - cgroup2 cgroup2 rw", f"/ {v1} rw - cgroup cgroup rw,memory"],
                      ["4:memory:/", "0::/user.slice/grading.scope"])
    found = cgroups.detect(*files)
    assert found == cgroups.Support(2, ((str(parent), cgroups.CONTROLLERS),))
    assert (parent / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"
    group = cgroups.Group(found, memory_mb=100, cpus=2, tasks=50)
    (path,) = map(Path, group.paths)
    assert path.parent == parent and path.name.startswith(f"graders.{os.getpid()}.")
    assert (path / "memory.max").read_text() == str(100 << 20)
    assert (path / "cpu.max").read_text() == f"{2 * cgroups.PERIOD_US} {cgroups.PERIOD_US}"
    assert (path / "pids.max").read_text() == str(50 + cgroups.TASKS_MARGIN)
    assert "v2" in isolation.Plan("process", None, cgroups=found).describe()


def test_v2_delegation_moves_a_lone_grader_into_a_leaf(tmp_path, monkeypatch):
    parent = tmp_path / "scope"
    parent.mkdir()
    (parent / "cgroup.controllers").write_text("cpu memory pids\n")
    (parent / "cgroup.subtree_control").write_text("")
    (parent / "cgroup.procs").write_text(f"{os.getpid()}\n")
    write = cgroups._write

    def kernel_like(path, value):  # a group with processes of its own cannot delegate
        leaf = parent / f"graders.{os.getpid()}.grader" / "cgroup.procs"
        if path.endswith("subtree_control") and not leaf.exists():
            raise OSError(errno.EBUSY, "Device or resource busy")
        write(path, value)

    monkeypatch.setattr(cgroups, "_write", kernel_like)
    files = fake_tree(tmp_path, [f"/ {parent} rw - cgroup2 cgroup2 rw"], ["0::/"])
    assert isinstance(cgroups.detect(*files), cgroups.Support)
    assert (parent / f"graders.{os.getpid()}.grader" / "cgroup.procs").read_text() == str(os.getpid())
    (parent / "cgroup.procs").write_text(f"{os.getpid()}\n1\n")  # not alone: no move, no cgroups
    (parent / f"graders.{os.getpid()}.grader" / "cgroup.procs").unlink()
    assert "cannot create cgroup v2 groups" in cgroups.detect(*files)


def test_v1_hierarchies_and_the_groups_limits(tmp_path):
    for name in ("memory", "cpu,cpuacct", "pids"):
        (tmp_path / name / "session").mkdir(parents=True)
    files = fake_tree(tmp_path, [f"/ {tmp_path}/unified rw - cgroup2 cgroup2 rw",
                                 f"/ {tmp_path}/memory rw - cgroup cgroup rw,memory",
                                 f"/ {tmp_path}/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct",
                                 f"/session {tmp_path}/pids rw - cgroup cgroup rw,pids"],
                      ["4:memory:/session", "2:cpu,cpuacct:/session", "8:pids:/session", "0::/"])
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("")
    (tmp_path / "memory" / "session" / "memory.memsw.limit_in_bytes").write_text("")
    found = cgroups.detect(*files)
    assert found == cgroups.Support(1, ((f"{tmp_path}/memory/session", ("memory",)),
                                        (f"{tmp_path}/cpu,cpuacct/session", ("cpu",)),
                                        (f"{tmp_path}/pids", ("pids",))))
    group = cgroups.Group(found, memory_mb=100, cpus=1, tasks=None)
    memory, cpu, pids = (Path(group.by_controller[c]) for c in cgroups.CONTROLLERS)
    assert (memory / "memory.limit_in_bytes").read_text() == str(100 << 20)
    assert not (memory / "memory.memsw.limit_in_bytes").exists()  # a fresh group's files come from the kernel
    assert (cpu / "cpu.cfs_quota_us").read_text() == str(cgroups.PERIOD_US)
    assert (pids / "pids.max").read_text() == "max"


def test_no_cgroup_access_falls_back_and_says_why(tmp_path, monkeypatch, caplog):
    files = fake_tree(tmp_path, [], ["0::/"])
    reason = cgroups.detect(*files)
    assert isinstance(reason, str) and "no cgroup v2 hierarchy" in reason and "no cgroup v1 memory" in reason
    monkeypatch.setattr(cgroups, "support", lambda: reason)
    isolation._warn_once.cache_clear()
    plan = isolation.plan("process")
    assert plan.cgroups is None and f"no cgroup ({reason})" in plan.describe()
    assert any("without a cgroup per worker" in r.message for r in caplog.records)
    with pytest.raises(isolation.IsolationUnavailable, match="cgroup = 'required'"):
        isolation.plan("process", "required")
    with pytest.raises(ValueError):
        isolation.plan("process", "sometimes")


def test_the_cgroup_mode_comes_from_the_config(tmp_path):
    (tmp_path / "c.toml").write_text('[limits]\ncgroup = "off"\nmessage_kb = 64\n')
    limits = Config.load(tmp_path / "c.toml").sandbox_limits()
    assert (limits.cgroup, limits.message_kb) == ("off", 64)
    assert "no cgroup (turned off" in Worker("bandits", "", limits=limits).isolation


def test_a_failed_start_leaves_no_group(monkeypatch):
    found = cgroups.support()
    if not isinstance(found, cgroups.Support):
        pytest.skip(f"no cgroups here: {found}")
    from graders.sandbox import worker as proxy

    def broken(*args, **kwargs):
        raise OSError("no such interpreter")

    monkeypatch.setattr(proxy.subprocess, "Popen", broken)
    w = Worker("bandits", PROBE, limits=Limits(isolation="process"))
    with pytest.raises(HostError, match="no such interpreter"):  # the host's failure, never the student's
        w.call("spin", 0)
    assert leftover_groups() == []


def test_groups_are_made_beneath_the_graders_own():
    found = cgroups.support()
    if not isinstance(found, cgroups.Support):
        pytest.skip(f"no cgroups here: {found}")
    own = groups_of(os.getpid())
    for parent, controllers in found.parents:
        key = "" if found.version == 2 else controllers[0]
        assert parent.endswith(own[key].rstrip("/")) or own[key] == "/"
