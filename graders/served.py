"""What the grader serves a training run, and the one contract every served task follows (grader side, trusted).

A training run's `train()` works on something that lives in the grader's process: CartPole's
environments (graders/rl/server.py), NAS's search space (graders/nas/search.py). The worker only
holds a proxy that forwards calls; the counting and the records are the grader's. Every
served task does the same five things, in one way:
- it is **opened** once per run (`make_envs()`, the search object): a second opening, and any
  request before the first, is refused;
- it **validates** every argument of the (untrusted) worker and refuses malformed ones;
- it **counts** what it serves against a budget (`budget`: episodes started, architectures
  evaluated; None: no budget) and refuses a request past it, with a message that names the
  budget and what to do;
- it **ends itself** when the student's own time is up (`time_up`, the run's StudentClock):
  the request that finds the time up is answered as the last one (CartPole's environments
  retire, the search says nothing remains), so that a template's loop returns what it trained
  without reading a clock; the next request is refused;
- it **records** what it served and says so in one line (`summary`).
A refusal is a `CallbackRefused`: the worker sees it as a RuntimeError with its message.
tests/test_served.py runs one conformance test on every served task.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from graders.sandbox import CallbackRefused

TIME_CHECK_S = 0.05  # how often (wall clock) a request asks whether the student's time is up


class ServedTask:
    """The contract's shared half; a served task subclasses it and names its unit (`unit`, e.g. "episodes")."""

    unit = "requests"  # what the budget counts, e.g. "episodes"
    counted = "used"  # how it counts them, e.g. "started"
    budget_name = "budget"  # e.g. "training budget"
    what = "the served task"  # how messages name it, e.g. "make_envs()"

    def __init__(self, budget: int | None, time_up: Callable[[], bool] | None = None):
        self.budget = budget
        self.used = 0  # units counted against the budget
        self.time_up = time_up
        self.opened = False
        self.out_of_time = False
        self._next_time_check = 0.0

    def callbacks(self) -> dict:
        raise NotImplementedError

    def summary(self) -> str:
        raise NotImplementedError

    def _open(self) -> None:
        if self.opened:
            raise CallbackRefused(f"{self.what} may be opened once per training run; reuse what it gave")
        self.opened = True

    def _require_open(self, request: str) -> None:
        if not self.opened:
            raise CallbackRefused(f"{request} before {self.what}")

    def _time_is_up(self) -> bool:
        """Whether the student's own time is up (asked at most every TIME_CHECK_S); once up, it stays up."""
        if self.time_up is not None and not self.out_of_time:
            now = time.monotonic()
            if now >= self._next_time_check:
                self._next_time_check = now + TIME_CHECK_S
                self.out_of_time = bool(self.time_up())
        return self.out_of_time

    def _refuse_if_out_of_time(self) -> None:
        if self.out_of_time:
            raise CallbackRefused(f"your train() has used its time (counted in your own code's time): {self.what} "
                                  "has ended; stop and return what you trained")

    def _left(self) -> int | None:
        return None if self.budget is None else self.budget - self.used

    def _charge(self, n: int, request: str, how_to_stop: str) -> None:
        """Count n more units, or refuse them all when they would pass the budget (or the time is used)."""
        self._refuse_if_out_of_time()
        if self.budget is not None and self.used + n > self.budget:
            raise CallbackRefused(f"the {self.budget_name} is {self.budget} {self.unit} and {self.used} have been "
                                  f"{self.counted}: {request} refused. {how_to_stop}")
        self.used += n
