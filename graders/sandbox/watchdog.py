"""Limits that rlimits cannot enforce, checked from the grader's side while a worker runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from graders.sandbox import procfs
from graders.sandbox.cgroups import Group
from graders.sandbox.limits import Limits

WATCH_SECONDS = 0.2


def oom_reason(limits: Limits) -> str:
    return f"the memory limit: its processes held over {limits.memory_mb} MB (shared memory and tmpfs count)"


class Watchdog(threading.Thread):
    """Enforces what rlimits cannot, from the grader's side, while one worker runs.

    - resident memory of the whole process tree (RLIMIT_AS is per process, and CUDA
      needs it off: the driver maps far more address space than it uses);
    - the size of the scratch directory, when one is given (the fallback mode's:
      bubblewrap's tmpfs has its own size);
    - an OOM kill in the worker's cgroup, when it has one: the kernel kills one process,
      the watchdog the rest, and says why;
    - it remembers every process of the tree it saw, so that the worker's stop can kill
      those that left the process group (setsid) when there is no pid namespace.

    When a limit is passed it records why in `reason` and calls `kill`.
    """

    def __init__(self, pid: int, limits: Limits, kill: Callable[[], None], scratch: str | None = None,
                 cgroup: Group | None = None):
        super().__init__(daemon=True)
        self.pid, self.limits, self.kill, self.scratch, self.cgroup = pid, limits, kill, scratch, cgroup
        self.stopped = threading.Event()
        self.seen: dict[int, str] = {}
        self.reason: str | None = None

    def tree(self) -> list[int]:
        pids, stack = [], [self.pid]
        while stack and len(pids) < 100_000:
            pid = stack.pop()
            pids.append(pid)
            stack += procfs.children(pid)
        return pids

    def _over_limit(self, pids: list[int], check_scratch: bool) -> str | None:
        if self.cgroup is not None and self.cgroup.oom_killed():
            return oom_reason(self.limits)
        if self.limits.memory_mb:
            resident = sum(procfs.resident_mb(pid) for pid in pids)
            if resident > self.limits.memory_mb:
                return f"the memory limit: {resident:.0f} MB resident, limit {self.limits.memory_mb} MB"
        if check_scratch and procfs.directory_mb(self.scratch) > self.limits.disk_mb:
            return f"the disk limit: its scratch directory holds over {self.limits.disk_mb} MB or too many files"
        return None

    def run(self) -> None:
        scratch_checked = 0.0
        while not self.stopped.wait(WATCH_SECONDS):
            pids = self.tree()
            for pid in pids:
                if pid not in self.seen and (start := procfs.start_time(pid)):
                    self.seen[pid] = start
            check_scratch = self.scratch is not None and time.monotonic() > scratch_checked + 1
            if check_scratch:
                scratch_checked = time.monotonic()
            if reason := self._over_limit(pids, check_scratch):
                self.reason = reason
                self.kill()
                return
