"""What the grader reads about the worker's processes from /proc (Linux)."""

from __future__ import annotations

import os
import resource


def tasks_of_uid(uid: int) -> int:
    """Processes + threads of `uid` on this machine: RLIMIT_NPROC counts them all."""
    count = 0
    if not os.path.isdir("/proc"):  # not Linux (a student's Mac): nothing to count
        return 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            if int(fields["Uid"].split()[0]) == uid:
                count += int(fields["Threads"])
        except (OSError, KeyError, ValueError):
            continue
    return count


def children(pid: int) -> list[int]:
    found = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return found


def _stat_field(pid: int, index: int) -> str | None:
    """Field `index` of /proc/PID/stat after the command name (0: the state), None when there is none."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[index]
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> str | None:
    return _stat_field(pid, 19)


def resident_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / (1 << 20)
    except (OSError, IndexError, ValueError):
        return 0.0


def directory_mb(path: str, max_entries: int = 20000) -> float:
    """Size of a directory tree; a tree of more than `max_entries` counts as infinite."""
    total, stack, seen = 0, [path], 0
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for e in entries:
            seen += 1
            if seen > max_entries:
                return float("inf")
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                else:
                    total += e.stat(follow_symlinks=False).st_blocks * 512
            except OSError:
                continue
    return total / (1 << 20)


def state(pid: int) -> str | None:
    """The process's state letter (R, S, D, Z, ...), None when it does not exist."""
    return _stat_field(pid, 0)


def uids(pid: int) -> tuple[int, ...]:
    """Real, effective, saved and filesystem uid of a process (() when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            line = next(line for line in f if line.startswith("Uid:"))
        return tuple(int(u) for u in line.split()[1:])
    except (OSError, StopIteration, ValueError):
        return ()


def running_as(uid: int) -> list[int]:
    """Processes that hold `uid` in any of their uids, zombies left out (they hold nothing but an exit status)."""
    found = []
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else ():
        if entry.name.isdigit() and uid in uids(int(entry.name)) and state(int(entry.name)) not in (None, "Z", "X"):
            found.append(int(entry.name))
    return found


def has_environment_entry(pid: int, entry: str) -> bool:
    """Whether `entry` ("NAME=value") is in the environment process `pid` started with."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return entry.encode() in f.read().split(b"\0")
    except OSError:
        return False
