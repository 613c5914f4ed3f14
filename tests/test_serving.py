"""Serving a worker's callbacks: the shared-memory fast path (graders/sandbox/fastpath.py) and the
student's clock (graders/sandbox/student_clock.py).

The fast path carries small array callbacks through a sealed shared memory file; a
hostile worker may write anything into it at any time, so the tests attack it: bad
headers, a resized file, flooded and saturated eventfds, a thread scribbling over
both slots while the grader serves. The clock charges the student's own time only:
set-up before `clock_start` and the grader's serving time are not counted, and the
student's own work is stopped at its limit. Timing here is semantic (a busy grader
callback is charged to the grader); no test depends on how fast the machine is.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from graders.rl.server import CartPoleServer
from graders.sandbox import CallbackRefused, Limits, StudentError, Worker, WorkerTimeout, fastpath, isolation
from graders.sandbox.student_clock import StudentClock, python_pid, thread_busy_s

MODES = ("bubblewrap", "process")

ECHO = """
import numpy as np
from graders_worker import fastpath
from graders_worker.fastpath import call_array

def has_channel():
    return fastpath.channel() is not None

def echo(arrays):
    return [np.array(call_array("double", np.asarray(a))) for a in arrays]

def ask(name, array):
    try:
        return call_array(name, np.asarray(array))
    except RuntimeError as exc:
        return "refused: " + str(exc)
"""


def _limits(mode: str) -> Limits:
    try:
        isolation.plan(mode)
    except isolation.IsolationUnavailable as exc:
        pytest.skip(f"bubblewrap does not work here: {exc}")
    return Limits(isolation=mode)


def _double(array: np.ndarray) -> np.ndarray:
    return array * 2


@pytest.mark.parametrize("mode", MODES)
def test_arrays_round_trip_through_the_fast_path(mode):
    arrays = [np.arange(3, dtype=np.uint8), np.array([[1.5, -2.0]], dtype=np.float32), np.array(7, dtype=np.int64),
              np.ones((2, 3, 4), dtype=np.float64), np.array([True, False])]
    with Worker("bandits", ECHO, limits=_limits(mode)) as worker:
        assert worker.call("has_channel") is True
        got = worker.call("echo", arrays, callbacks={"double": _double})
    for g, a in zip(got, arrays, strict=True):
        np.testing.assert_array_equal(g, a * 2, strict=True)


def test_refused_and_unknown_callbacks_are_errors_in_the_worker():
    def refuse(array):
        raise CallbackRefused("not today")

    with Worker("bandits", ECHO) as worker:
        assert worker.call("ask", "refuse", [1], callbacks={"refuse": refuse}) == "refused: not today"
        assert "no callback 'other'" in worker.call("ask", "other", [1], callbacks={"refuse": refuse})
        large = worker.call("ask", "double", np.ones(1000), callbacks={"double": _double})  # through the pipes
        np.testing.assert_array_equal(large, np.full(1000, 2.0))
        too_big = worker.call("ask", "grow", [1], callbacks={"grow": lambda a: np.zeros(10**5)})
        assert "does not fit the fast path" in too_big


def test_a_fast_request_outside_a_call_with_callbacks_is_refused_at_once():
    with Worker("bandits", ECHO) as worker:
        assert "no callback 'double'" in worker.call("ask", "double", [1], timeout=60)


def test_without_a_fast_channel_the_pipes_serve(monkeypatch):
    monkeypatch.setattr(fastpath.FastChannel, "create", classmethod(lambda cls: None))
    with Worker("bandits", ECHO) as worker:
        assert worker.call("has_channel") is False
        got = worker.call("echo", [np.arange(4)], callbacks={"double": _double})
    np.testing.assert_array_equal(got[0], np.arange(4) * 2)


HOSTILE = """
import fcntl, os, struct, threading, time
import numpy as np
from graders_worker import fastpath as L

def ping():
    return "pong"

def channel():
    ch = L.channel()
    return ch, ch._mm, ch._request_fd, ch._reply_fd

def raw_request(seq, name, code, ndim, nbytes, shape, payload=b""):
    ch, mm, request_fd, _ = channel()
    mm[L.REQUEST_PAYLOAD_AT:L.REQUEST_PAYLOAD_AT + len(payload)] = payload
    L.REQUEST.pack_into(mm, L.REQUEST_AT, seq, name, code, ndim, nbytes, *shape)
    os.eventfd_write(request_fd, 1)
    ch._wait(seq)
    _, status, _, _, n, *_ = L.REPLY.unpack_from(mm, L.REPLY_AT)
    return status, mm[L.REPLY_PAYLOAD_AT:L.REPLY_PAYLOAD_AT + min(n, 200)].decode("utf-8", "replace")

def bad_headers():
    replies = [
        raw_request(101, b"double", 99, 1, 1, (1, 0, 0, 0), b"x"),  # unknown dtype
        raw_request(102, b"double", 2, 9, 1, (1, 0, 0, 0), b"x"),  # too many dimensions
        raw_request(103, b"double", 2, 1, 10**9, (10**9, 0, 0, 0)),  # over the slot
        raw_request(104, b"double", 2, 2, 4, (3, 5, 0, 0), b"xxxx"),  # size does not match the shape
        raw_request(105, b"\\xff\\xfe", 2, 1, 1, (1, 0, 0, 0), b"x"),  # not a name
    ]
    memfd = int(os.environ[L.ENV].split(",")[0])
    for attempt in (lambda: os.ftruncate(memfd, 10), lambda: os.ftruncate(memfd, 1 << 30),
                    lambda: fcntl.fcntl(memfd, fcntl.F_ADD_SEALS, 0)):
        try:
            attempt()
            replies.append("resized!")
        except OSError:
            pass
    return replies

def saturate_and_flood():
    ch, mm, request_fd, reply_fd = channel()
    os.eventfd_write(reply_fd, 0xfffffffffffffffe)  # the grader's next write would block
    for _ in range(1000):
        os.eventfd_write(request_fd, 1)  # rings without a new request
    try:
        return L.call_array("double", np.arange(3)).tolist()
    except Exception as exc:
        return repr(exc)

def scribble_while_stepping(steps):
    from graders_worker.rl.served_env import ServedEnvs
    ch, mm, request_fd, _ = channel()
    stop = False
    def scribble():  # everywhere but the two sequence numbers (the worker's own liveness)
        rng = np.random.default_rng(0)
        while not stop:
            at = int(rng.integers(8, L.SIZE - 64))
            if not L.REPLY_AT - 64 < at < L.REPLY_AT + 8:
                mm[at:at + 64] = rng.bytes(64)
            if rng.random() < 0.1:
                os.eventfd_write(request_fd, 1)
    thread = threading.Thread(target=scribble, daemon=True)
    thread.start()
    envs = ServedEnvs()(4)
    errors = 0
    for _ in range(100):
        try:
            envs.reset()
            break
        except Exception:
            errors += 1
    for _ in range(steps):
        try:
            envs.step(np.zeros(4, dtype=np.int64))
        except Exception:
            errors += 1
    stop = True
    thread.join()
    return errors
"""


@pytest.mark.parametrize("mode", MODES)
def test_the_clock_watches_the_workers_python_process(mode):
    with Worker("bandits", ECHO, limits=_limits(mode)) as worker:
        worker.call("has_channel")
        pid = python_pid(worker._proc.pid)
        assert pid == worker._proc.pid or mode == "bubblewrap"
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert b"graders_worker.main" in f.read()


def test_bad_requests_are_refused_and_the_file_cannot_be_resized():
    with Worker("bandits", HOSTILE) as worker:
        replies = worker.call("bad_headers", callbacks={"double": _double})
    assert len(replies) == 5, replies  # nothing was resized
    assert all(status == 1 and "malformed request" in text for status, text in replies), replies


def test_flooded_and_saturated_eventfds_do_not_block_the_grader():
    with Worker("bandits", HOSTILE) as worker:
        got = worker.call("saturate_and_flood", callbacks={"double": _double}, timeout=60)
        assert got == [0, 2, 4] or "Error" in got  # the worker hurt only itself
        assert worker.call("ping") == "pong"


def test_scribbling_over_shared_memory_changes_nothing_the_grader_recorded():
    server = CartPoleServer(seed=3)
    accepted = []
    step = server.step

    def logged_step(actions):
        result = step(actions)  # raises for actions it refuses: those change nothing
        accepted.append(np.array(actions))
        return result

    callbacks = {**server.callbacks(), "env_step": logged_step}
    with Worker("reinforce", "def discounted_returns(r, g):\n    return r\n" + HOSTILE) as worker:
        try:
            worker.call("scribble_while_stepping", 3000, callbacks=callbacks, timeout=120)
        except StudentError:
            pass  # whatever the scribbling did to the worker itself
    replay = CartPoleServer(seed=3)
    replay.make(4)
    replay.reset()
    for actions in accepted:
        replay.step(actions)
    assert server.steps > 0 and len(accepted) == server.vector_steps
    assert (server.episode_returns, server.steps) == (replay.episode_returns, replay.steps)


# --- the student's clock ------------------------------------------------------------------------


# schedstat's figures lag the running thread by up to a scheduler tick (1-10 ms): measured 0.2998 s for 0.3 s
TICK_S = 0.02


def _burn(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_clock_counts_the_student_from_its_start_and_not_the_grader_serving():
    clock = StudentClock(10.0, margin=0.1, setup_s=30.0, hard_end=time.monotonic() + 12.0)
    assert clock.deadline() == pytest.approx(clock.created + 12.0, abs=0.05)  # the hard end comes first
    clock = StudentClock(10.0, margin=0.1, setup_s=30.0, hard_end=time.monotonic() + 45.0)
    assert clock.deadline() == pytest.approx(clock.created + 30.0)
    clock.start()
    started = clock.started
    clock.start()  # a second start changes nothing
    assert clock.started == started
    assert clock.deadline() == pytest.approx(started + 11.0, abs=0.05)
    time.sleep(0.2)  # the student computing (its own time: the serving allowance is 2x it)
    _burn(0.3)  # the grader busy serving: credited
    assert clock.excluded_s() >= 0.3 - TICK_S and clock.serving >= 0.3 - TICK_S
    assert clock.deadline() >= started + 11.3 - TICK_S
    clock.stop()
    assert clock.own_s() == pytest.approx(clock.stopped - started - clock.excluded_s())
    assert clock.own_s() < 0.3


def test_the_graders_polling_for_the_next_request_is_charged_to_the_student():
    # fastpath.wait_for_message polls for a quick worker's next request on a CPU and tells the clock: the worker
    # was computing then, so that time is the student's, not serving
    clock = StudentClock(10.0, margin=0.1, setup_s=30.0, hard_end=time.monotonic() + 45.0)
    clock.idle(5.0)  # before the start: nothing to take off
    clock.start()
    _burn(0.2)  # serving
    start = time.perf_counter()
    _burn(0.3)  # polling
    clock.idle(time.perf_counter() - start)
    clock.stop()
    assert 0.2 - TICK_S <= clock.serving <= 0.2 + TICK_S
    assert clock.own_s() >= 0.3 - TICK_S


def test_thread_busy_time_grows_with_work_not_with_sleep():
    before = thread_busy_s()
    time.sleep(0.3)
    slept = thread_busy_s() - before
    _burn(0.2)
    assert slept < 0.2 and thread_busy_s() - before >= 0.2 - TICK_S


CLOCKED = """
import time
import numpy as np
from graders_worker.fastpath import call_array
from graders_worker.main import callback

def ping():
    return "pong"

def run(setup_s, own_s, calls):
    time.sleep(setup_s)  # imports, set-up: before the student's clock starts
    callback("clock_start")
    for _ in range(calls):
        call_array("slow", np.zeros(1))
    end = time.process_time() + own_s  # own work: CPU time, however loaded the machine
    while time.process_time() < end:
        pass
    return "done"
"""


def _slow_callback(array):
    _burn(0.01)  # the grader takes 10 ms to serve each call
    return array


@pytest.mark.parametrize("setup_s, own_s, calls, stopped", [
    (4.0, 0.2, 200, False),  # 4 s of set-up and 2 s of serving on a budget of 3 s: not charged
    (0.0, 6.0, 0, True),  # 6 s of its own work on a budget of 3 s: stopped
    (8.0, 0.0, 0, True),  # a set-up longer than its allowance: stopped
])
def test_student_is_charged_only_its_own_time(setup_s, own_s, calls, stopped):
    clock = StudentClock(3.0, margin=0.1, setup_s=6.0, hard_end=time.monotonic() + 60)
    with Worker("bandits", CLOCKED) as worker:
        worker.call("ping")  # start the worker outside the clock
        if stopped:
            with pytest.raises(WorkerTimeout):
                worker.call("run", setup_s, own_s, calls, callbacks={"slow": _slow_callback, **clock.callbacks()},
                            clock=clock)
        else:
            assert worker.call("run", setup_s, own_s, calls, clock=clock,
                               callbacks={"slow": _slow_callback, **clock.callbacks()}) == "done"
            clock.stop()
            assert clock.serving >= calls * 0.01 and clock.own_s() < 3.3
