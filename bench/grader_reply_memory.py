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

Each record carries the commit and the settings (`--array-mb`: a smaller array, for a quick look).
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import provenance  # noqa: E402

ARRAY_MB = 255  # the largest array a reply may carry is just under protocol.MAX_ARRAY_BYTES (256 MB)
JSON_MARGIN = 256  # bytes of the JSON part that are not empty dicts


def peak_mb() -> float:
    return int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1)) / 1024


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _read(array_bytes: int) -> dict:
    from graders_worker import protocol

    read, write = os.pipe()
    dicts = (protocol.MAX_JSON_BYTES - JSON_MARGIN) // 3
    header = (b'{"body": {"op": "result", "value": {"d": [' + b"{}," * dicts + b'{}], "a": {"__array__": 0, '
              b'"dtype": "bool", "shape": [%d]}}}, "sizes": [%d]}' % (array_bytes, array_bytes))

    def feed():  # another thread writes it little by little: no copy of the reply in this process
        os.write(write, struct.pack("<Q", len(header)) + header + struct.pack("<Q", array_bytes))
        chunk = b"\x01" * (1 << 20)
        for _ in range(array_bytes >> 20):
            os.write(write, chunk)
        os.close(write)

    reset_peak()
    before, start = peak_mb(), time.perf_counter()
    threading.Thread(target=feed).start()
    message = protocol.Reader(read).receive()
    seconds = time.perf_counter() - start
    assert message["value"]["a"].nbytes == array_bytes
    return {"json_bytes": len(header), "array_bytes": array_bytes, "seconds": seconds, "peak_growth_mb": peak_mb() - before}


WORKER_CODE = """
import numpy as np

def nothing():
    return None

def largest(dicts, array_bytes):
    return {"d": [{}] * dicts, "a": np.ones(array_bytes, dtype=bool)}
"""


def _worker(array_bytes: int) -> dict:
    from graders.checks import CheckFailed, as_array
    from graders.sandbox import Limits, Worker
    from graders_worker import protocol

    dicts = (protocol.MAX_JSON_BYTES - JSON_MARGIN) // 4  # "{}, " each
    with Worker("bandits", WORKER_CODE, limits=Limits(isolation="process")) as worker:
        worker.call("nothing")
        reset_peak()
        before, start = peak_mb(), time.perf_counter()
        reply = worker.call("largest", dicts, array_bytes, timeout=300)
        seconds = time.perf_counter() - start
        try:
            as_array(reply["a"], "actions", (500,))
        except CheckFailed:
            pass
        growth = peak_mb() - before
        isolation = worker.isolation
    return {"json_dicts": dicts, "array_bytes": array_bytes, "seconds": seconds, "peak_growth_mb": growth,
            "isolation": isolation}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="append the records to this JSONL file")
    parser.add_argument("--array-mb", type=int, default=ARRAY_MB, help="the reply's array, in MB (default: the largest)")
    parser.add_argument("--child", choices=["read", "worker"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps({"read": _read, "worker": _worker}[args.child](args.array_mb << 20)))
        return
    from graders_worker import protocol

    settings = {"out": args.out, "array_mb": args.array_mb, "max_json_bytes": protocol.MAX_JSON_BYTES,
                "json_margin": JSON_MARGIN}
    for case in ("read", "worker"):
        done = subprocess.run([sys.executable, __file__, "--child", case, "--array-mb", str(args.array_mb)],
                              capture_output=True, text=True, check=True)
        record = {**provenance.stamp(settings), "case": case, **json.loads(done.stdout.splitlines()[-1]),
                  "load": round(os.getloadavg()[0], 1), "date": time.strftime("%Y-%m-%d")}
        record = {k: round(v, 2) if isinstance(v, float) else v for k, v in record.items()}
        print(json.dumps(record))
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
