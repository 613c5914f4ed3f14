"""A cgroup per worker: memory (shared memory and tmpfs files included), CPU and tasks.

rlimits are per process and the resident-memory watchdog sees mapped pages only: a worker
can hold gigabytes in memfd or tmpfs files, start setsid children that take every core
from a classmate's grading, or fork as root past RLIMIT_NPROC. A cgroup bounds all its
processes together, whatever they do: the memory limit counts anonymous memory, page
cache, shared memory and tmpfs pages; the CPU quota holds it to the grading's thread
count of cores; the pids limit bounds its tasks. The worker enters its group between fork
and exec (`Group.open_procs`, written to in the child), so that everything it, or
bubblewrap, starts is inside from the start.

Where: cgroup v2 (the unified hierarchy, e.g. a systemd subtree delegated to the grader)
when it offers the memory, cpu and pids controllers; else cgroup v1's memory, cpu and
pids hierarchies, when the grader may create groups there (root). Worker groups are made
beneath the grader's own group in each hierarchy, so that limits set above the grader
still hold. Elsewhere (a laptop without root, a container without cgroup access) there
is none, and the result says so (`graders.sandbox.isolation.Plan.describe`).
"""

from __future__ import annotations

import errno
import functools
import itertools
import logging
import os
import re
import secrets
import signal
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

CONTROLLERS = ("memory", "cpu", "pids")
PREFIX = "graders."  # graders.<grader pid>.<n>.<random>: a group of this process's workers
PERIOD_US = 100_000
TASKS_MARGIN = 16  # bubblewrap's own processes, Python's helper threads
REMOVE_SECONDS = 5.0


@dataclass(frozen=True)
class Support:
    """Where this process can make worker groups: (directory, the controllers it holds) per hierarchy."""

    version: int  # 1 or 2
    parents: tuple[tuple[str, tuple[str, ...]], ...]

    def describe(self) -> str:
        return f"a cgroup per worker (v{self.version}: memory incl. shared memory and tmpfs, CPU quota, tasks)"


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, value) -> None:
    with open(path, "w") as f:
        f.write(str(value))


def _mounts(mountinfo: str) -> list[tuple[str, str, str, set[str]]]:
    """(root inside the hierarchy, mount point, type, super options) of each cgroup mount."""
    found = []
    for line in _read(mountinfo).splitlines():
        left, _, right = line.partition(" - ")
        fields, fs = left.split(), right.split()
        if len(fields) >= 5 and len(fs) >= 3 and fs[0] in ("cgroup", "cgroup2"):
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])  # \040 is a space
            found.append((fields[3], point, fs[0], set(fs[2].split(","))))
    return found


def _own_groups(cgroup_file: str) -> dict[str, str]:
    """This process's group per controller ('' for the v2 hierarchy), from /proc/self/cgroup."""
    groups = {}
    for line in _read(cgroup_file).splitlines():
        _hid, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            groups[name] = path.removesuffix(" (deleted)")
    return groups


def _directory(root: str, point: str, group: str) -> str | None:
    """Where `group` lies in a hierarchy mounted at `point` from its `root` (None: not below it)."""
    root = root.rstrip("/")
    if group != root and not group.startswith(root + "/"):
        return None
    return os.path.normpath(point + "/" + group[len(root):])


def _probe(parent: str) -> None:
    """Make and remove a group under `parent` (OSError when this process may not)."""
    path = os.path.join(parent, f"{PREFIX}{os.getpid()}.probe.{secrets.token_hex(3)}")
    os.mkdir(path)
    os.rmdir(path)


def _v2(mounts, own: dict[str, str]) -> Support | str:
    mount = next((m for m in mounts if m[2] == "cgroup2"), None)
    if mount is None or "" not in own:
        return "no cgroup v2 hierarchy"
    parent = _directory(mount[0], mount[1], own[""])
    if parent is None:
        return "this process's cgroup v2 group is outside the mounted hierarchy"
    available = _read(os.path.join(parent, "cgroup.controllers")).split()
    if missing := [c for c in CONTROLLERS if c not in available]:
        return f"cgroup v2 offers no {', '.join(missing)} controller at {parent}"
    try:
        _delegate(parent)
        _probe(parent)
    except OSError as exc:
        return f"cannot create cgroup v2 groups under {parent}: {exc.strerror or exc}"
    return Support(2, ((parent, CONTROLLERS),))


def _delegate(parent: str) -> None:
    """Enable the controllers for `parent`'s children.

    A v2 group with processes of its own cannot hand controllers to children (EBUSY). In a
    subtree delegated to the grader alone (`systemd-run --scope -p Delegate=yes ...`) the
    grader moves itself into a leaf first, as delegation asks.
    """
    subtree = os.path.join(parent, "cgroup.subtree_control")
    if all(c in _read(subtree).split() for c in CONTROLLERS):
        return
    wanted = " ".join(f"+{c}" for c in CONTROLLERS)
    try:
        _write(subtree, wanted)
        return
    except OSError as exc:
        if exc.errno != errno.EBUSY or _read(os.path.join(parent, "cgroup.procs")).split() != [str(os.getpid())]:
            raise
    leaf = os.path.join(parent, f"{PREFIX}{os.getpid()}.grader")
    os.makedirs(leaf, exist_ok=True)
    _write(os.path.join(leaf, "cgroup.procs"), os.getpid())
    log.info("moved the grader into %s to delegate cgroup controllers to its workers", leaf)
    _write(subtree, wanted)


def _v1(mounts, own: dict[str, str]) -> Support | str:
    parents: dict[str, list[str]] = {}
    for controller in CONTROLLERS:
        mount = next((m for m in mounts if m[2] == "cgroup" and controller in m[3]), None)
        if mount is None:
            return f"no cgroup v1 {controller} hierarchy"
        parent = _directory(mount[0], mount[1], own.get(controller, "/"))
        if parent is None:
            return f"this process's cgroup v1 {controller} group is outside the mounted hierarchy"
        parents.setdefault(parent, []).append(controller)
    for parent in parents:
        try:
            _probe(parent)
        except OSError as exc:
            return f"cannot create cgroup v1 groups under {parent}: {exc.strerror or exc}"
    return Support(1, tuple((p, tuple(c)) for p, c in parents.items()))


def detect(mountinfo: str = "/proc/self/mountinfo", cgroup_file: str = "/proc/self/cgroup") -> Support | str:
    """How worker groups can be made here, or why they cannot (v2 first, then v1)."""
    try:
        mounts, own = _mounts(mountinfo), _own_groups(cgroup_file)
    except (OSError, ValueError) as exc:
        return f"cannot read this process's cgroups: {exc}"
    reasons = []
    for way in (_v2, _v1):
        try:
            found = way(mounts, own)
        except OSError as exc:
            found = f"{exc}"
        if isinstance(found, Support):
            for parent, _ in found.parents:
                _remove_stale(parent)
            return found
        reasons.append(found)
    return "; ".join(reasons)


@functools.cache
def support() -> Support | str:
    """`detect()`, once per process."""
    return detect()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _remove_stale(parent: str) -> None:
    """Groups left by graders that were killed before they could remove them."""
    for entry in os.scandir(parent):
        parts = entry.name.split(".")
        if entry.name.startswith(PREFIX) and len(parts) > 2 and parts[1].isdigit() and not _alive(int(parts[1])):
            _kill_and_remove([entry.path])


def _tasks(paths: list[str]) -> set[int]:
    found = set()
    for path in paths:
        try:
            found.update(int(p) for p in _read(os.path.join(path, "cgroup.procs")).split())
        except (OSError, ValueError):
            continue
    return found


def _kill(paths: list[str]) -> None:
    for path in paths:
        try:  # v2 (Linux 5.14+): the kernel kills every task, forks in flight included
            _write(os.path.join(path, "cgroup.kill"), 1)
        except OSError:
            pass
    for _ in range(1000):  # v1: kill what is listed until nothing is (pids.max bounds a fork bomb)
        tasks = _tasks(paths)
        if not tasks:
            return
        for pid in tasks:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.001)


def _kill_and_remove(paths: list[str]) -> bool:
    _kill(paths)
    end = time.monotonic() + REMOVE_SECONDS
    left = [p for p in paths if os.path.isdir(p)]
    while left:
        for path in list(left):
            try:
                os.rmdir(path)
                left.remove(path)
            except FileNotFoundError:
                left.remove(path)
            except OSError:  # EBUSY while its killed tasks exit
                pass
        if left and time.monotonic() > end:
            log.warning("could not remove the worker cgroups %s", left)
            return False
        if left:
            _kill(left)
            time.sleep(0.01)
    return True


class Group:
    """One worker's group: a directory in each hierarchy (one under v2, up to three under v1)."""

    _numbers = itertools.count()

    def __init__(self, found: Support, *, memory_mb: int | None, cpus: int, tasks: int | None):
        name = f"{PREFIX}{os.getpid()}.{next(self._numbers)}.{secrets.token_hex(3)}"
        self.version = found.version
        self.paths = [os.path.join(parent, name) for parent, _ in found.parents]
        self.by_controller = {c: os.path.join(parent, name) for parent, cs in found.parents for c in cs}
        try:
            for path in self.paths:
                os.mkdir(path)
            self._limit(memory_mb, cpus, tasks)
        except BaseException:
            _kill_and_remove(self.paths)
            raise

    def _limit(self, memory_mb: int | None, cpus: int, tasks: int | None) -> None:
        memory, cpu, pids = (self.by_controller[c] for c in CONTROLLERS)
        quota = max(1, cpus) * PERIOD_US
        pids_max = tasks + TASKS_MARGIN if tasks else "max"
        if self.version == 2:
            _write(f"{memory}/memory.max", memory_mb << 20 if memory_mb else "max")
            for name, value in (("memory.swap.max", 0), ("memory.oom.group", 1)):
                if os.path.exists(f"{memory}/{name}"):
                    _write(f"{memory}/{name}", value)
            _write(f"{cpu}/cpu.max", f"{quota} {PERIOD_US}")
        else:
            if memory_mb:
                _write(f"{memory}/memory.limit_in_bytes", memory_mb << 20)
                if os.path.exists(f"{memory}/memory.memsw.limit_in_bytes"):  # memory + swap: no swapping past it
                    _write(f"{memory}/memory.memsw.limit_in_bytes", memory_mb << 20)
            _write(f"{cpu}/cpu.cfs_period_us", PERIOD_US)
            _write(f"{cpu}/cpu.cfs_quota_us", quota)
        _write(f"{pids}/pids.max", pids_max)

    def open_procs(self) -> list[int]:
        """Fds of the groups' cgroup.procs; the child writes b"0" to each between fork and exec to enter."""
        return [os.open(os.path.join(path, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC) for path in self.paths]

    def tasks(self) -> set[int]:
        """The processes in the group now."""
        return _tasks(self.paths)

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of the group for its memory limit."""
        memory = self.by_controller["memory"]
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            fields = dict(line.split() for line in _read(f"{memory}/{name}").splitlines() if line.count(" ") == 1)
        except (OSError, ValueError):
            return False
        return int(fields.get("oom_kill", 0)) > 0

    def kill(self) -> None:
        """SIGKILL every process in the group."""
        _kill(self.paths)

    def remove(self) -> str:
        """Kill what is left and remove the group (the worker's own process should be reaped first);
        '' when it is gone, else why not."""
        if _kill_and_remove(self.paths):
            return ""
        return f"the worker's cgroup still held processes {REMOVE_SECONDS:.0f} s after it was stopped"
