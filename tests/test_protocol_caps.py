"""What a worker's reply may cost the grader: bounded before it is built, and cut on receipt.

The grader's memory is measured as the growth of its peak resident set (VmHWM, reset
through /proc/self/clear_refs), in a child process where the reply is read.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from graders.checks import MAX_ELEMENTS, CheckFailed, as_array, expect_close
from graders.sandbox import Limits, StudentError, Worker, WorkerDied, WorkerTimeout
from graders_worker import protocol

LENGTH = struct.Struct("<Q")


def peak_mb() -> float:
    return int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1)) / 1024


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


READ_IN_A_CHILD = """
import re, sys
from graders_worker import protocol

def peak():
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024

import numpy  # before the baseline
open("/proc/self/clear_refs", "w").write("5")
before = peak()
try:
    message = protocol.Reader(0).receive()
    outcome = "read"
except protocol.ProtocolError as exc:
    outcome = type(exc).__name__
print(outcome, peak() - before)
"""


def grader_reads(chunks) -> tuple[str, float]:
    """(outcome, growth of the reader's peak memory in MB) for a reply written as `chunks`."""
    reader = subprocess.Popen([sys.executable, "-c", READ_IN_A_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": os.getcwd()})

    def feed():
        try:
            for chunk in chunks:
                reader.stdin.write(chunk)
            reader.stdin.close()
        except OSError:  # the reader stopped reading: refused
            pass

    writer = threading.Thread(target=feed)
    writer.start()
    out = reader.stdout.read().decode().split()
    writer.join()
    reader.wait(timeout=60)
    return out[0], float(out[1])


def header(body, sizes: list[int]) -> bytes:
    raw = json.dumps({"body": body, "sizes": sizes}).encode()
    return LENGTH.pack(len(raw)) + raw


def test_a_64_mb_header_of_empty_dicts_is_refused_unread():
    empties = b'{"body": {"op": "result", "value": [' + b"{}," * ((64 << 20) // 3) + b'{}]}, "sizes": []}'
    outcome, grew = grader_reads([LENGTH.pack(len(empties)), empties])
    assert outcome == "MessageTooLarge"
    assert grew < 16, f"the grader grew by {grew:.0f} MB"  # unfixed: about 3.3 GB


def test_the_largest_allowed_reply_costs_about_its_size():
    """1 MB of JSON (empty dicts: the costliest JSON) and 255 MB of bool array in one reply."""
    n = 255 << 20
    empties = b"{}," * ((protocol.MAX_JSON_BYTES - 200) // 3)
    body = (b'{"body": {"op": "result", "value": {"d": [' + empties + b'{}], "a": {"__array__": 0, "dtype": "bool", '
            b'"shape": [' + str(n).encode() + b"]}}}, \"sizes\": [" + str(n).encode() + b"]}")
    assert len(body) <= protocol.MAX_JSON_BYTES
    chunks = [LENGTH.pack(len(body)), body, LENGTH.pack(n)] + [b"\x01" * (1 << 20)] * (n >> 20)
    outcome, grew = grader_reads(chunks)
    assert outcome == "read"
    assert grew < 255 * 1.15 + 80, f"the grader grew by {grew:.0f} MB for a 256 MB reply"


def test_arrays_are_checked_against_their_bytes_before_they_are_built():
    one = LENGTH.pack(8) + b"\0" * 8
    for body, sizes, tail in (
            ({"__array__": 0, "dtype": "float64", "shape": [1 << 20, 1 << 20]}, [8], one),  # a forged shape
            ({"__array__": 0, "dtype": "float64", "shape": [2**62, 2**62, 0]}, [0], LENGTH.pack(0)),
            ({"__array__": 0, "dtype": "float64", "shape": [1] * 40}, [8], one),
            # no element, but more than numpy can index (issue 29 item 7: an internal grader error, exit 2)
            ({"__array__": 0, "dtype": "float64", "shape": [0] + [1 << 28] * 5}, [0], LENGTH.pack(0)),
            ({"__array__": 0, "dtype": "uint8", "shape": [1 << 28] * 4 + [0]}, [0], LENGTH.pack(0)),
            ({"__array__": 0, "dtype": "float64", "shape": [-1]}, [8], one),
            ({"__array__": 0, "dtype": "object", "shape": [1]}, [8], one),
            ([{"__array__": 0, "dtype": "uint8", "shape": [8]}] * 2, [8], one),  # one buffer, two arrays
            ({"__array__": 0, "dtype": "uint8", "shape": [4]}, [4], LENGTH.pack(5) + b"\0" * 5),  # prefix disagrees
            ({"x": 1}, [-5], b""),
            ({"x": 1}, [2**63], b""),
            ({"x": 1}, [0] * (protocol.MAX_ARRAYS + 1), b""),
    ):
        with pytest.raises(protocol.ProtocolError):
            read_raw(header({"op": "result", "value": body}, sizes) + tail)


def test_nesting_is_bounded():
    def nested(depth):
        value = 0
        for _ in range(depth):
            value = [value]
        return {"v": value}

    assert roundtrip(nested(protocol.MAX_DEPTH - 2))["v"]
    with pytest.raises(protocol.ProtocolError, match="nested"):
        roundtrip(nested(protocol.MAX_DEPTH + 1))
    with pytest.raises(protocol.ProtocolError):
        deep = b'{"body": {"v": ' + b"[" * 100_000 + b"]" * 100_000 + b'}, "sizes": []}'
        read_raw(LENGTH.pack(len(deep)) + deep)


def read_raw(data: bytes) -> dict:
    """What the grader's reader makes of `data` written to its pipe."""
    read, write = os.pipe()

    def feed():
        try:
            os.write(write, data)  # blocks until read, or fails when the reader gives up
        except OSError:
            pass
        os.close(write)

    threading.Thread(target=feed).start()
    try:
        return protocol.Reader(read).receive()
    finally:
        os.close(read)


def roundtrip(message) -> dict:
    return read_raw(protocol.encode(message))


def test_received_arrays_are_plain_and_writable():
    got = roundtrip({"a": np.arange(6, dtype=np.int16).reshape(2, 3), "b": np.ones(3, bool)})
    assert type(got["a"]) is np.ndarray and got["a"].flags.writeable and got["a"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert got["b"].dtype == bool and got["b"].base is not got["a"].base


def test_shapes_are_checked_before_any_conversion():
    votes = np.ones(255 << 20, dtype=bool)  # the reply: 255 MB; as float64 it would be 2 GB
    reset_peak()
    before = peak_mb()
    with pytest.raises(CheckFailed, match=r"expected shape \(500,\)"):
        as_array(votes, "actions", (500,))
    with pytest.raises(CheckFailed, match="at most"):
        as_array(votes, "actions")  # an open shape: the size is bounded instead
    assert peak_mb() - before < 16
    with pytest.raises(CheckFailed, match="expected numbers"):
        as_array([[1, 2], [3]], "ragged")
    with pytest.raises(CheckFailed, match="expected numbers"):
        as_array({"a": 1}, "a dict")
    with pytest.raises(CheckFailed, match="expected numbers"):
        as_array([10**400], "a huge int")
    with pytest.raises(CheckFailed, match="expected numbers"):
        as_array("1.5", "text")
    assert as_array([True, False], "bools", (2,)).tolist() == [1.0, 0.0]
    assert as_array(np.arange(3, dtype=np.int8), "ints", (3,), dtype=np.int64).dtype == np.int64
    assert as_array([2.0, 0.0, -1.0], "tokens", (3,), dtype=np.int64).tolist() == [2, 0, -1]
    for not_whole in ([2.9, 0.0], [-0.9, 1.0], [np.nan, 1.0], [1e30, 1.0]):  # never truncated into a valid token
        with pytest.raises(CheckFailed, match="whole numbers"):
            as_array(not_whole, "tokens", (2,), dtype=np.int64)
    expect_close(np.float32(0.5), 0.5, "a scalar")
    assert MAX_ELEMENTS * 8 <= 256 << 20


# ------------------------------------------------------------------ through a real worker

REPLIES = """
import json, os, struct, sys, time
from graders_worker import main

REPLY_FD = int(sys.argv[5])

def _raw(message):  # a message written by hand, past the worker's own checks; then nothing more
    header = json.dumps({"body": message, "sizes": []}).encode()
    os.write(REPLY_FD, struct.pack("<Q", len(header)))
    view = memoryview(header)
    while view:
        view = view[os.write(REPLY_FD, view):]
    time.sleep(3600)

def plain_flood(n):
    return [{}] * n

def raise_huge(n):
    raise ValueError("E" * n)

def raw_error(n):
    _raw({"op": "error", "type": "ValueError", "message": "R" * n})

def raw_error_not_text():
    _raw({"op": "error", "type": "ValueError", "message": {"nested": [1, 2, 3]}})

def raw_result_without_value():
    _raw({"op": "result"})

def callback_forever():
    while True:
        main.callback("ping")
"""


def reply_worker(**limits) -> Worker:
    return Worker("bandits", REPLIES, limits=Limits(isolation="process", cgroup="off", **limits))


def test_exception_messages_are_cut_to_the_output_cap_on_receipt():
    with reply_worker(output_kb=4) as w:
        with pytest.raises(StudentError) as raised:
            w.call("raise_huge", 20 << 20)  # the worker cuts it first
        assert len(str(raised.value)) < 5000
        with pytest.raises(StudentError) as raised:
            w.call("raw_error", (1 << 20) - 200, timeout=30)  # bypassing the worker: the grader cuts it
        assert len(str(raised.value)) < 5000 and "more characters dropped" in str(raised.value)
        w.close()  # it sleeps after a message by hand: the next call starts a fresh one
        with pytest.raises(StudentError, match="nested"):
            w.call("raw_error_not_text", timeout=30)


def test_replies_over_the_json_cap_are_the_students_error():
    with reply_worker(message_kb=64) as w:
        assert len(w.call("plain_flood", 1000)) == 1000
        with pytest.raises(StudentError, match="too large to send.*numpy arrays"):
            w.call("plain_flood", 100_000)  # refused by the worker's own encoder
        assert w.call("plain_flood", 1) == [{}]
        with pytest.raises(WorkerDied, match="over the size limit"):
            w.call("raw_error", 20 << 20, timeout=30)  # by hand: refused unread by the grader


def test_a_reply_without_its_keys_reaches_the_check_as_plain_data():
    with reply_worker() as w:
        assert w.call("raw_result_without_value", timeout=30) is None


def test_a_callback_flood_ends_with_the_calls_deadline():
    with reply_worker() as w:
        w.call("plain_flood", 0)
        start = time.monotonic()
        with pytest.raises(WorkerTimeout):
            w.call("callback_forever", timeout=1.0, callbacks={"ping": lambda: 1})
        assert time.monotonic() - start < 60
