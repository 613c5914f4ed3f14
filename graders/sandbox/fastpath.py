"""The grader's end of the shared-memory fast path (layout and worker end: graders_worker/fastpath.py).

One `FastChannel` per worker process: a sealed memory file of fixed size and two
eventfds, created before the worker starts and inherited by it. While a call with
callbacks runs, `wait_for_message` serves the channel's requests until a pipe message
(the call's result, or a general callback) is ready.

The worker can write anything into the shared memory at any time, also while the
grader reads it. So the grader copies a slot first and reads only the copy; sizes are
fixed and checked against the copy; the file is sealed against shrinking (a shrunk
mapping would crash the grader with SIGBUS); the grader never reads back what it
wrote; both eventfds are non-blocking on the grader's side (a worker that drains or
saturates an eventfd cannot make the grader block). A request the grader cannot read
is refused with a message, like a refused callback.

After an answer, the grader polls the request slot for a while before it blocks:
twice the time the worker's last request took to come, when that was at most
`SPIN_S` (a loop that only steps the environment), else not at all (a worker that
computes between requests, or a loaded machine). The polling is time the grader's
thread spends on a CPU without serving: the student's clock is told, so it is not
counted as serving (`StudentClock.idle`).
"""

from __future__ import annotations

import fcntl
import logging
import math
import mmap
import os
import select
import time

import numpy as np

from graders.sandbox.errors import CallbackRefused
from graders_worker import fastpath as layout

log = logging.getLogger(__name__)

SPIN_S = 50e-6  # the longest the grader polls for the next request (see the module's docstring)


class FastChannel:
    """The shared memory and the two eventfds of one worker process."""

    def __init__(self):
        memfd = os.memfd_create("grader-fastpath", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(memfd, layout.SIZE)
            fcntl.fcntl(memfd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
            self._mm = mmap.mmap(memfd, layout.SIZE)
        except OSError:
            os.close(memfd)
            raise
        self.memfd = memfd
        # non-blocking for both processes (one open file each): the worker polls before it reads
        self.request_fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self.reply_fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._last_seq = 0
        self._answered = 0.0  # time.perf_counter() of the last answer
        self._spin = 0.0  # how long to poll for the next request; adapts in serve_one

    @classmethod
    def create(cls) -> FastChannel | None:
        """A new channel, or None where the system lacks memfd or eventfd (the pipes then do everything)."""
        try:
            return cls()
        except (OSError, AttributeError) as exc:
            log.warning("no shared-memory fast path for callbacks (%s); they go through the pipes", exc)
            return None

    def fds(self) -> tuple[int, int, int]:
        return self.memfd, self.request_fd, self.reply_fd

    def environment(self) -> dict[str, str]:
        """What the worker needs to find its end (graders_worker.fastpath.channel)."""
        return {layout.ENV: ",".join(map(str, self.fds()))}

    def close(self) -> None:
        self._mm.close()
        for fd in self.fds():
            os.close(fd)

    # -- serving -----------------------------------------------------------------------------
    def serve_one(self, callbacks: dict) -> bool:
        """Serve the request in the slot if it is new; False when there was none (a spurious ring)."""
        try:
            os.eventfd_read(self.request_fd)
        except BlockingIOError:
            pass
        # one read of the header into Python values: only those are used (a torn read is validated like any)
        seq, name, code, ndim, nbytes, *shape = layout.REQUEST.unpack_from(self._mm, layout.REQUEST_AT)
        if seq == self._last_seq:
            return False
        self._last_seq = seq
        if layout.SPINS:
            gap = time.perf_counter() - self._answered
            self._spin = min(SPIN_S, 2 * gap) if gap <= SPIN_S else 0.0
        try:
            array = self._read_request(code, ndim, nbytes, shape)
            name = name.rstrip(b"\0").decode("ascii")
            fn = callbacks.get(name) if callbacks else None
            if fn is None:
                raise CallbackRefused(f"no callback {name!r} is served during this call")
            answer = fn(array)
        except CallbackRefused as exc:
            self._refuse(seq, str(exc))
        except (TypeError, ValueError, KeyError, IndexError, UnicodeDecodeError) as exc:  # malformed request
            self._refuse(seq, f"malformed request: {exc}")
        else:
            self._answer(seq, answer)
        return True

    def poll_request(self) -> tuple[bool, float]:
        """Poll the request slot for a new request for up to the adapted time: (whether one came, seconds polled)."""
        if not self._spin:
            return False, 0.0
        unpack, mm, at, last, clock = layout.SEQ.unpack_from, self._mm, layout.REQUEST_AT, self._last_seq, \
            time.perf_counter
        start = clock()
        give_up = start + self._spin
        while unpack(mm, at)[0] == last:
            if clock() > give_up:
                return False, clock() - start
        return True, clock() - start

    def _read_request(self, code: int, ndim: int, nbytes: int, shape: list[int]) -> np.ndarray:
        if code >= len(layout.DTYPES) or ndim > layout.MAX_NDIM or nbytes > layout.REQUEST_CAPACITY:
            raise ValueError("the request's header is out of range")
        dtype, shape = layout.DTYPES[code], tuple(shape[:ndim])
        if math.prod(shape) * dtype.itemsize != nbytes:
            raise ValueError("the request's size does not match its shape")
        start = layout.REQUEST_PAYLOAD_AT
        return np.frombuffer(self._mm[start:start + nbytes], dtype=dtype).reshape(shape).copy()

    def _answer(self, seq: int, value) -> None:
        if isinstance(value, np.generic):
            value = np.asarray(value)
        if not isinstance(value, np.ndarray) or value.dtype not in layout.DTYPE_CODES or \
                value.ndim > layout.MAX_NDIM or value.nbytes > layout.REPLY_CAPACITY:
            self._refuse(seq, f"the grader's answer to this callback ({type(value).__name__}) does not fit the fast "
                              "path; call it with graders_worker.main.callback")
            return
        data = np.ascontiguousarray(value).tobytes()
        self._mm[layout.REPLY_PAYLOAD_AT:layout.REPLY_PAYLOAD_AT + len(data)] = data
        shape = (*value.shape, *(0,) * (layout.MAX_NDIM - value.ndim))
        self._post(seq, layout.OK, layout.DTYPE_CODES[value.dtype], value.ndim, len(data), shape)

    def _refuse(self, seq: int, message: str) -> None:
        data = message.encode()[:layout.REPLY_CAPACITY]
        self._mm[layout.REPLY_PAYLOAD_AT:layout.REPLY_PAYLOAD_AT + len(data)] = data
        self._post(seq, layout.REFUSED, 0, 0, len(data), (0,) * layout.MAX_NDIM)

    def _post(self, seq: int, status: int, code: int, ndim: int, nbytes: int, shape) -> None:
        layout.REPLY_FIELDS.pack_into(self._mm, layout.REPLY_AT + layout.SEQ.size, status, code, ndim, nbytes,
                                      *shape)
        layout.SEQ.pack_into(self._mm, layout.REPLY_AT, seq)  # last: the worker reads the reply once it sees it
        self._answered = time.perf_counter()
        try:
            os.eventfd_write(self.reply_fd, 1)
        except BlockingIOError:  # the worker saturated its own eventfd: its loss
            pass


def wait_for_message(channel: FastChannel | None, reader, callbacks: dict | None, end: float, clock=None) -> float:
    """Serve the fast channel until a pipe message is ready or the call's time is up; the call's end.

    `end`: the call's fixed deadline (time.monotonic()). `clock`: optional, an object
    whose `deadline()` is the call's current end before `end` (e.g. a
    `graders.sandbox.student_clock.StudentClock`, which moves it as the grader serves).
    The caller then reads the pipe with the returned end: at once when a message is
    ready, else it times out.
    """
    until = end if clock is None else min(end, clock.deadline())
    if reader.buffered:
        return until
    poll = select.poll()
    poll.register(reader.fd, select.POLLIN)
    if channel is not None:
        poll.register(channel.request_fd, select.POLLIN)
    served = False
    while True:
        left = until - time.monotonic()
        if left <= 0:
            if clock is None or (until := min(end, clock.deadline())) <= time.monotonic():
                return until
            continue
        if served:  # the next request may be about to come: poll its slot before blocking
            came, polled = channel.poll_request()
            if clock is not None:
                clock.idle(polled)
            if came:
                channel.serve_one(callbacks)
                continue
        served = False
        events = poll.poll(math.ceil(left * 1000))
        pipe_ready = False
        for fd, _ in events:
            if fd == reader.fd:
                pipe_ready = True
            else:
                served = channel.serve_one(callbacks)
        if pipe_ready:
            return until
