"""The time a call charges to the student: their own code's time, not the grader's, not the machine's load.

A training call's time limit should count what the student's code does, whatever the
grader and the machine cost it:
- imports and set-up the adapter does before the student's `train()` runs are not
  charged (they have their own allowance);
- the time the worker waits for the grader's callbacks (serving environment steps) is
  not charged: the grader measures it in the thread that serves the call, as the time
  that thread was not asleep (running, or runnable and waiting for a CPU, from
  `/proc/thread-self/schedstat`). It sleeps only while the worker computes, so that is
  the time from each request of the worker to the grader's answer, the grader's own
  wake-up on a loaded machine included;
- the time the worker's main thread waited for a CPU is not charged either (its
  `run_delay` in `/proc/PID/schedstat`, read by the grader): on a loaded machine that
  is its wake-up after every answer of the grader, and the stretching of its own work
  by other processes, which would otherwise turn a batch's load into time-outs.
What is charged is the wall time since the start less those two: the student's
computing, and its own waits (a GPU, a sleep). Nothing the worker reports enters
these numbers. The serving not charged is at most SERVING_ALLOWANCE times the
student's own computing, counting the serving thread's CPU time only (its waits for a
CPU are the machine's load, never the student's): an honest loop computes more than it asks (a forward pass
per step costs more than the step it asks for), while a loop that only floods the
grader with requests would otherwise make the grader's CPU work for the whole wall
limit at no cost to its own budget; past the allowance, the grader's serving is the
student's time too. The call still ends at a fixed wall-clock time (`hard_end`, e.g. the
check's own limit less what comes after the call): a worker can make the grader busy,
or make its own main thread wait for a CPU, on purpose, and the time not charged must
not stretch a batch beyond the limits it was planned with.
"""

from __future__ import annotations

import time

from graders.sandbox import procfs

SERVING_ALLOWANCE = 2.0  # the grader's serving not charged, at most this many times the student's own computing


def _schedstat(path: str) -> tuple[float, float] | None:
    """(seconds on a CPU, seconds runnable waiting for one) of the task behind `path`, or None."""
    try:
        with open(path, "rb") as f:
            on_cpu, run_delay = f.read().split()[:2]
        return int(on_cpu) / 1e9, int(run_delay) / 1e9
    except (OSError, ValueError):
        return None


def thread_busy_s() -> float:
    """Seconds the calling thread has run or waited for a CPU since it started."""
    return sum(thread_times())


def thread_times() -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable waiting for one) of the calling thread since it started."""
    stat = _schedstat("/proc/thread-self/schedstat")
    return stat if stat is not None else (time.thread_time(), 0.0)  # without schedstat: CPU time only


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().split(b"(", 1)[1].rsplit(b")", 1)[0].decode(errors="replace")
    except (OSError, IndexError):
        return ""


def python_pid(root: int) -> int:
    """The worker's Python process: `root` itself, or under bubblewrap the oldest process below its launchers."""
    pid = root
    for _ in range(4):
        kids = procfs.children(pid)
        if _comm(pid) != "bwrap" or not kids:
            return pid
        pid = min(kids, key=lambda k: int(procfs.start_time(k) or 1 << 62))
    return pid


class StudentClock:
    """A call's deadline: set-up allowance, then budget x (1 + margin) of the student's own time.

    Pass it to `Worker.call(..., clock=clock, callbacks={**clock.callbacks(), ...})`: the
    worker calls back `clock_start` when the student's code starts (before it, the call
    has `setup_s`); from then on the call ends when the student's own time (wall time
    since the start, less the grader's serving and the worker's waits for a CPU)
    reaches `budget_s * (1 + margin)`, and in any case at `hard_end` (time.monotonic()).
    Every method must be called from the thread that runs the call (the serving time is
    that thread's).
    """

    def __init__(self, budget_s: float, *, margin: float, setup_s: float, hard_end: float):
        self.budget_s = budget_s
        self.limit_s = budget_s * (1.0 + margin)
        self.setup_s = setup_s
        self.hard_end = hard_end
        self.created = time.monotonic()
        self.started: float | None = None
        self.stopped: float | None = None
        self._worker_root: int | None = None
        self._worker_stat: str | None = None
        self._at_start = (0.0, 0.0, 0.0)  # (grader on a CPU, grader waiting for one, worker run delay)
        self.serving, self.cpu_wait = 0.0, 0.0  # seconds of serving and of waiting for a CPU, as last measured
        self.serving_charged = 0.0  # the serving past SERVING_ALLOWANCE: charged to the student after all
        self._idle = 0.0  # seconds the serving thread polled for requests on a CPU (not serving: see idle)

    def callbacks(self) -> dict:
        return {"clock_start": self.start}

    def watch(self, worker_pid: int) -> None:
        """The worker process (Worker.call tells it) whose main thread's waits for a CPU are not charged."""
        self._worker_root = worker_pid

    def _worker_delay(self) -> float:
        stat = _schedstat(self._worker_stat) if self._worker_stat else None
        return stat[1] if stat is not None else 0.0

    def start(self, *_) -> None:
        """The student's code starts now (a callback from the worker; only the first one counts)."""
        if self.started is None:
            self.started = time.monotonic()
            if self._worker_root is not None:
                self._worker_stat = f"/proc/{python_pid(self._worker_root)}/schedstat"
            self._at_start = (*thread_times(), self._worker_delay())

    def idle(self, seconds: float) -> None:
        """The serving thread spent `seconds` on a CPU polling for the worker's next request (the fast
        path's polling): the worker was computing then, so it is the student's time, not serving."""
        if self.started is not None and self.stopped is None:
            self._idle += seconds

    def stop(self) -> None:
        """Freeze the figures (the call is over)."""
        if self.stopped is None:
            self.excluded_s()
            self.stopped = time.monotonic()

    def excluded_s(self) -> float:
        """The time not charged so far: the grader's serving (up to SERVING_ALLOWANCE x the student's own computing)
        and the worker's waits for a CPU. The allowance weighs the serving thread's CPU time only: on a loaded
        machine its waits for a CPU grow, and they are not the student's doing."""
        if self.started is not None and self.stopped is None:
            on_cpu, waiting = thread_times()
            self.serving = max(self.serving, on_cpu + waiting - self._at_start[0] - self._at_start[1] - self._idle)
            serving_cpu = max(0.0, on_cpu - self._at_start[0] - self._idle)  # (the polling's waits too: lenient)
            delay = self._worker_delay()
            if delay:  # 0: the process is gone or unreadable; keep the last figure
                self.cpu_wait = max(self.cpu_wait, delay - self._at_start[2])
            computing = (time.monotonic() - self.started) - self.serving - self.cpu_wait
            self.serving_charged = max(0.0, serving_cpu - SERVING_ALLOWANCE * max(computing, 0.0))
        return self.serving - self.serving_charged + self.cpu_wait

    def deadline(self) -> float:
        """The call's end as of now (time.monotonic()); it moves later as time not charged accrues."""
        if self.started is None:
            return min(self.hard_end, self.created + self.setup_s)
        return min(self.hard_end, self.started + self.limit_s + self.excluded_s())

    def own_s(self) -> float:
        """The student's own time so far."""
        if self.started is None:
            return 0.0
        return (self.stopped or time.monotonic()) - self.started - self.excluded_s()
