"""The worker's stdout and stderr, drained by a thread and kept up to a cap."""

from __future__ import annotations

import select
import threading
import time


class OutputCapture(threading.Thread):
    """Drains the worker's stdout/stderr, keeping the first `cap` bytes."""

    def __init__(self, stream, cap: int):
        super().__init__(daemon=True)
        self.stream, self.cap = stream, cap
        self.kept = bytearray()
        self.total = 0
        self.lock = threading.Lock()

    def settle(self, timeout: float = 0.5) -> None:
        """Wait until what the worker already wrote has been taken in.

        The worker flushes its output before each reply, so once the pipe reads empty
        (twice, a moment apart) the output of the call just answered is all here.
        """
        end = time.monotonic() + timeout
        empty_once = False
        while self.is_alive() and time.monotonic() < end:
            ready, _, _ = select.select([self.stream], [], [], 0)
            if not ready and empty_once:
                break
            empty_once = not ready
            time.sleep(0.002)
        with self.lock:
            pass

    def run(self) -> None:
        while chunk := self.stream.read1(1 << 16):
            with self.lock:
                self.total += len(chunk)
                if len(self.kept) < self.cap:
                    self.kept += chunk[: self.cap - len(self.kept)]

