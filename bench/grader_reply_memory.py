"""The grader's peak memory for the largest reply a worker may send.

The largest allowed reply: a JSON part just under `[limits] message_kb` (1 MB), made
of empty dicts (the costliest JSON to parse), and arrays just under
`protocol.MAX_ARRAY_BYTES` (256 MB) in all, as a bool array (the costliest to convert).
Each case runs in a fresh child process acting as the grader; the figure is the growth
of its peak resident set (VmHWM, reset through /proc/self/clear_refs just before):

- `read`: `protocol.Reader.receive` of the reply from a pipe, nothing else;
- `worker`: a real worker (`graders.sandbox.Worker`) returns the reply from a call, and
  the check hands its array to `as_array` with the shape it expected, which refuses it.

    PYTHONPATH=. .venv/bin/python bench/grader_reply_memory.py [--out bench/results/grader_reply_memory.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import subprocess
import sys
import threading
import time

ARRAY_BYTES = 255 << 20
JSON_MARGIN = 256  # bytes of the JSON part that are not empty dicts


def peak_mb() -> float:
    return int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1)) / 1024


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _read() -> dict:
    from graders_worker import protocol

    read, write = os.pipe()
    dicts = (protocol.MAX_JSON_BYTES - JSON_MARGIN) // 3
    header = (b'{"body": {"op": "result", "value": {"d": [' + b"{}," * dicts + b'{}], "a": {"__array__": 0, '
              b'"dtype": "bool", "shape": [%d]}}}, "sizes": [%d]}' % (ARRAY_BYTES, ARRAY_BYTES))

    def feed():  # another thread writes it little by little: no copy of the reply in this process
        os.write(write, struct.pack("<Q", len(header)) + header + struct.pack("<Q", ARRAY_BYTES))
        chunk = b"\x01" * (1 << 20)
        for _ in range(ARRAY_BYTES >> 20):
            os.write(write, chunk)
        os.close(write)

    reset_peak()
    before, start = peak_mb(), time.perf_counter()
    threading.Thread(target=feed).start()
    message = protocol.Reader(read).receive()
    seconds = time.perf_counter() - start
    assert message["value"]["a"].nbytes == ARRAY_BYTES
    return {"json_bytes": len(header), "array_bytes": ARRAY_BYTES, "seconds": seconds, "peak_growth_mb": peak_mb() - before}


WORKER_CODE = """
import numpy as np

def nothing():
    return None

def largest(dicts, array_bytes):
    return {"d": [{}] * dicts, "a": np.ones(array_bytes, dtype=bool)}
"""


def _worker() -> dict:
    from graders.checks import CheckFailed, as_array
    from graders.sandbox import Limits, Worker
    from graders_worker import protocol

    dicts = (protocol.MAX_JSON_BYTES - JSON_MARGIN) // 4  # "{}, " each
    with Worker("bandits", WORKER_CODE, limits=Limits(isolation="process")) as worker:
        worker.call("nothing")
        reset_peak()
        before, start = peak_mb(), time.perf_counter()
        reply = worker.call("largest", dicts, ARRAY_BYTES, timeout=300)
        seconds = time.perf_counter() - start
        try:
            as_array(reply["a"], "actions", (500,))
        except CheckFailed:
            pass
        growth = peak_mb() - before
        isolation = worker.isolation
    return {"json_dicts": dicts, "array_bytes": ARRAY_BYTES, "seconds": seconds, "peak_growth_mb": growth,
            "isolation": isolation}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="append the records to this JSONL file")
    parser.add_argument("--child", choices=["read", "worker"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps({"read": _read, "worker": _worker}[args.child]()))
        return
    for case in ("read", "worker"):
        done = subprocess.run([sys.executable, __file__, "--child", case], capture_output=True, text=True, check=True)
        record = {"case": case, **json.loads(done.stdout.splitlines()[-1]),
                  "load": round(os.getloadavg()[0], 1), "date": time.strftime("%Y-%m-%d")}
        record = {k: round(v, 2) if isinstance(v, float) else v for k, v in record.items()}
        print(json.dumps(record))
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
