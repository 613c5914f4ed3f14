"""The worker's stdout and stderr, drained by a thread and kept up to a cap."""

from __future__ import annotations

import os
import select
import threading
import time

POLL_SECONDS = 0.1


class OutputCapture(threading.Thread):
    """Drains the worker's stdout/stderr, keeping the first `cap` bytes.

    It reads the pipe's descriptor only when poll says there is something, so `stop()`
    ends it at once even while a process that escaped the worker's kill still holds the
    pipe open (a blocking read would last as long as that process, and close() with it).
    """

    def __init__(self, stream, cap: int):
        super().__init__(daemon=True)
        self.stream, self.cap = stream, cap
        self.fd = stream.fileno()
        self.kept = bytearray()
        self.total = 0
        self.lock = threading.Lock()
        self._stopped = threading.Event()

    def settle(self, timeout: float = 0.5) -> None:
        """Wait until what the worker already wrote has been taken in.

        The worker flushes its output before each reply, so once the pipe reads empty
        (twice, a moment apart) the output of the call just answered is all here.
        """
        end = time.monotonic() + timeout
        empty_once = False
        while self.is_alive() and time.monotonic() < end:
            ready, _, _ = select.select([self.fd], [], [], 0)
            if not ready and empty_once:
                break
            empty_once = not ready
            time.sleep(0.002)
        with self.lock:
            pass

    def stop(self, timeout: float = 1.0) -> None:
        """Take in what is already written (up to `timeout`), then stop reading: never waits for the writers."""
        self.settle(timeout)
        self._stopped.set()
        self.join()

    def run(self) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        while not self._stopped.is_set():
            if not poller.poll(POLL_SECONDS * 1000):
                continue
            try:
                chunk = os.read(self.fd, 1 << 16)
            except OSError:
                return
            if not chunk:  # every writer has closed the pipe
                return
            with self.lock:
                self.total += len(chunk)
                if len(self.kept) < self.cap:
                    self.kept += chunk[: self.cap - len(self.kept)]
