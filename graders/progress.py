"""Watching a grading as it runs: the listener `grade()` tells, and the terminal's progress line.

`grade(..., listener=...)` calls a `Listener` when the grading starts, when each check
starts and ends, and whenever the running check reports progress (`ctx.progress`: the
REINFORCE graders report each training episode as the grader's own CartPole server
counts it). A listener only watches: nothing it does changes a grade. The CLI passes
`TerminalProgress` when stderr is a terminal, nothing otherwise.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TextIO

from graders.checks import Check
from graders.results import CheckResult, Grading


class Listener:
    """Watches one grading; every method does nothing by default."""

    def grading_started(self, assignment: str, checks: Sequence[Check], limit_s: float) -> None:
        """`limit_s`: the whole grading's wall-clock limit."""

    def check_started(self, check: Check, limit_s: float) -> None:
        """`limit_s`: this check's time limit on this device."""

    def progress(self, text: str) -> None:
        """News from the running check, e.g. "episode 120: return 87"."""

    def check_finished(self, result: CheckResult) -> None:
        pass

    def grading_finished(self, grading: Grading) -> None:
        pass


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


class TerminalProgress(Listener):
    """A tqdm bar on a terminal: checks done of all, the running check, its elapsed time against its
    limit and its latest news; redrawn every half second so that a long training never looks stuck."""

    REFRESH_S = 0.5

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.bar = None
        self.check = ""
        self.limit = 0.0
        self.started = 0.0
        self.news = ""
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.ticker: threading.Thread | None = None

    @classmethod
    def for_stream(cls, stream: TextIO) -> TerminalProgress | None:
        """A progress display on `stream` when it is a terminal; None (quiet) otherwise."""
        isatty = getattr(stream, "isatty", None)
        return cls(stream) if isatty is not None and isatty() else None

    def grading_started(self, assignment: str, checks: Sequence[Check], limit_s: float) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=len(checks), desc=assignment, unit="check", file=self.stream, leave=False,
                        dynamic_ncols=True, bar_format="{desc}: {n_fmt}/{total_fmt} checks |{bar:12}| {postfix}")
        self.ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
        self.ticker.start()

    def check_started(self, check: Check, limit_s: float) -> None:
        with self.lock:
            self.check, self.limit, self.started, self.news = check.name, limit_s, time.monotonic(), ""
        self._draw()

    def progress(self, text: str) -> None:
        with self.lock:
            self.news = text

    def check_finished(self, result: CheckResult) -> None:
        with self.lock:
            self.check = ""
            if self.bar is not None:
                self.bar.update(1)
                self.bar.write(f"  {result.name}: {result.status} {result.points:g}/{result.max_points:g} "
                               f"({result.seconds:.1f} s)", file=self.stream)

    def grading_finished(self, grading: Grading) -> None:
        self.stop.set()
        if self.ticker is not None:
            self.ticker.join()
        if self.bar is not None:
            self.bar.close()

    def _tick(self) -> None:
        while not self.stop.wait(self.REFRESH_S):
            self._draw()

    def _draw(self) -> None:
        with self.lock:
            if self.bar is None or not self.check:
                return
            elapsed = time.monotonic() - self.started
            text = f"{self.check} {_clock(elapsed)} of {_clock(self.limit)}"
            self.bar.set_postfix_str(f"{text} | {self.news}" if self.news else text)
