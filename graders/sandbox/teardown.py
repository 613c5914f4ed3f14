"""What a stopped worker leaves behind: nothing a later worker can reach, or the reason why not.

A later worker is separated from an earlier one (the VAE's decoder from the encoder that
saw the held-out images) only if, when it starts, every process the earlier one started
is gone (a live process relays anything: POSIX locks on a file both can read, inotify, a
listening socket) and nothing it wrote can be read. Killing the process group is not
enough (setsid, double forks, a cleared environment). So a stop ends with the strongest
proof the mode offers:

- the worker's cgroup is empty (graders/sandbox/cgroups.py);
- when the grader is root, each worker runs under a uid of its own: no process holds
  that uid any more (`reap_uid`; a process cannot give up its uid without privileges,
  and the seccomp filter sets no_new_privs, so no setuid program gives it another);
- under bubblewrap, the sandbox's first process (its pid namespace's init) is gone: the
  kernel kills the rest of the namespace with it (`wait_exited`).

What a process can leave when it is gone: under bubblewrap, nothing outside the kernel
(its /tmp, /dev/shm, scratch, IPC and network namespaces die with it); kernel keyrings,
SysV IPC, message queues and sockets are refused by the seccomp filter
(graders/sandbox/seccomp.py). In the process-limits mode a worker can create files in
every directory any user may write to (/tmp, /dev/shm, ...): when it runs under a uid of
its own, everything that uid owns there is removed (`remove_left_by`).
`guarantee(plan)` says, per mode, whether that adds up to "nothing outlives a worker".
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import signal
import stat
import time

from graders.sandbox import procfs, seccomp

log = logging.getLogger(__name__)

STOP_SECONDS = 5.0  # to kill what is left and see it gone; a stop never waits longer
TEMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock", "/dev/mqueue")
PSEUDO_FILESYSTEMS = {"proc", "sysfs", "cgroup", "cgroup2", "devpts", "debugfs", "tracefs", "securityfs", "pstore",
                      "bpf", "configfs", "fusectl", "hugetlbfs", "autofs", "binfmt_misc", "efivarfs", "nsfs", "rpc_pipefs"}
MAX_SCANNED_DIRS = 1_000_000


def reap_uid(uid: int, seconds: float = STOP_SECONDS) -> str:
    """Kill every process that holds `uid` until none is left; '' when none is, else what is left."""
    end = time.monotonic() + seconds
    while pids := procfs.running_as(uid):
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if time.monotonic() > end:
            return f"{len(pids)} processes of the worker's uid {uid} still ran {seconds:.0f} s after it was stopped"
        time.sleep(0.005)
    return ""


def wait_exited(pid: int, start: str | None, seconds: float = STOP_SECONDS) -> str:
    """Wait until process `pid` (started at `start`) has exited; '' when it has, else why not."""
    end = time.monotonic() + seconds
    while procfs.start_time(pid) == start and procfs.state(pid) not in (None, "Z", "X"):
        if time.monotonic() > end:
            return f"the sandbox's first process {pid} still ran {seconds:.0f} s after it was stopped"
        time.sleep(0.005)
    return ""


def _writable_by_workers(st: os.stat_result, gid: int) -> bool:
    return bool(st.st_mode & 0o002 or (st.st_gid == gid and st.st_mode & 0o020))


def _pseudo_mounts() -> set[str]:
    """Mount points of filesystems that hold no files a worker could leave (/proc, /sys, ...): not scanned."""
    skip = set()
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return skip
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, fs = left.split(), right.split()
        if len(fields) >= 5 and fs and fs[0] in PSEUDO_FILESYSTEMS:
            skip.add(fields[4].replace("\\040", " "))
    return skip


@functools.cache
def shared_dirs(gid: int) -> tuple[str, ...]:
    """Directories where a worker (any uid, group `gid`) may create entries: the temporary folders and every
    world-writable (or `gid`-writable) directory of the machine, found once per process (a walk of every
    directory but those of /proc, /sys and the like: 2.2 s for 63,000 directories on the development machine)."""
    skip = _pseudo_mounts()
    found, stack, seen = {d for d in TEMP_DIRS if os.path.isdir(d)}, ["/"], 0
    started = time.monotonic()
    while stack and seen < MAX_SCANNED_DIRS:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if not entry.is_dir(follow_symlinks=False) or entry.path in skip:
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            seen += 1
            if not (st.st_mode & 0o001 or (st.st_gid == gid and st.st_mode & 0o010)):
                continue  # a worker cannot pass through it: nothing below is its to write
            if _writable_by_workers(st, gid):
                found.add(entry.path)
            stack.append(entry.path)
    log.info("%d directories any worker may write to (%d scanned in %.1f s)", len(found), seen,
             time.monotonic() - started)
    return tuple(sorted(found))


def _remove(path: str, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def remove_left_by(uid: int, gid: int) -> str:
    """Remove what `uid` owns in the directories every worker may write to; '' when all of it is gone."""
    problems = []
    stack = [(d, 0) for d in shared_dirs(gid)]
    while stack:
        folder, depth = stack.pop()
        try:
            parent_dev = os.stat(folder).st_dev
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
                if st.st_uid == uid:
                    _remove(entry.path, st)
                elif stat.S_ISDIR(st.st_mode) and st.st_dev == parent_dev and depth < 32 \
                        and _writable_by_workers(st, gid):
                    stack.append((entry.path, depth + 1))
            except FileNotFoundError:
                continue
            except OSError as exc:
                problems.append(f"{entry.path}: {exc.strerror or exc}")
    return f"could not remove what the worker left: {'; '.join(problems[:3])}" if problems else ""


def _protected_hardlinks() -> bool:
    try:
        with open("/proc/sys/fs/protected_hardlinks") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


def guarantee(mode: str, own_uid: bool) -> str:
    """'' when a stopped worker of this mode leaves nothing a later worker can reach; else why not.

    `own_uid`: each worker runs under a uid of its own (the grader is root and could drop it).
    """
    if missing := seccomp.missing():
        return missing
    if mode == "bubblewrap":
        return ""
    if not own_uid:
        return ("without bubblewrap the worker runs under the grader's own uid: its files, and processes that "
                "leave its process group, cannot be told from the grader's")
    if not _protected_hardlinks():
        return ("fs.protected_hardlinks is off: a worker can link a file it does not own under a name of its "
                "choice in /tmp, which the grader does not remove")
    return ""
