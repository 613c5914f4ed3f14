"""What a worker's stop costs, and that it does not wait for a process that escaped.

For each isolation mode: the seconds `Worker.close()` takes after a plain call, and after a
call that leaves a stray (double fork into a new session, then `sleep` with an empty
environment, holding the worker's output pipe: issue 28's case), median of `--repeats`;
whether the stray was still alive after the close; and first, the walk that finds the
directories any worker may write to (`teardown.shared_dirs`: once per grader process, in the
process-limits mode with a uid per worker only). One JSON row per mode, stamped with the commit
and settings, naming the Python (the process-limits mode gives each worker a uid of its own only
when every user can read that Python: run it with such a venv to measure that case).

    PYTHONPATH=. .venv/bin/python bench/worker_teardown.py [--repeats 5] [--torch] [--out bench/results/worker_teardown.jsonl]

`--torch`: the submission imports torch too, as every submission of the torch assignments does
(an interpreter with torch loaded is slow to exit).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import provenance  # noqa: E402
from graders.sandbox import Limits, Worker, isolation, procfs, teardown  # noqa: E402

SOURCE = """
import os

def plain():
    return 1

def stray(seconds):
    r, w = os.pipe()
    if os.fork() == 0:
        os.setsid()
        pid = os.fork()
        if pid == 0:
            os.execve("/bin/sleep", ["sleep", str(seconds)], {})
        os.write(w, str(pid).encode())
        os._exit(0)
    os.close(w)
    os.wait()
    return int(os.read(r, 64))
"""
MODES = {"bubblewrap": ("bubblewrap", "auto"), "process": ("process", "auto"),
         "process, no cgroup": ("process", "off"), "process, no cgroup, grader's uid": ("process", "off")}


def close_seconds(mode: str, call: str, source: str) -> tuple[float, bool | None]:
    isolation_mode, cgroup = MODES[mode]
    worker = Worker("bandits", source, limits=Limits(isolation=isolation_mode, cgroup=cgroup))
    if "grader's uid" in mode:
        worker.plan = dataclasses.replace(worker.plan, uid=None, cgroups=None)
    pid = worker.call(call, 30) if call == "stray" else worker.call(call)
    started = time.monotonic()
    worker.close()
    seconds = time.monotonic() - started
    if call != "stray" or isolation_mode == "bubblewrap":
        return seconds, None  # (a pid inside bubblewrap's namespace means nothing here)
    alive = procfs.state(pid) not in (None, "Z", "X")
    if alive:
        os.kill(pid, signal.SIGKILL)
    return seconds, alive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--torch", action="store_true", help="the submission imports torch")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    source = ("import torch\n" if args.torch else "") + SOURCE
    stamp = provenance.stamp({**vars(args), "modes": MODES})
    load = os.getloadavg()[0]
    started = time.monotonic()
    found = teardown.shared_dirs(isolation.SANDBOX_GID)
    rows = [{**stamp, "shared_dirs_scan_s": round(time.monotonic() - started, 2), "shared_dirs": list(found),
             "load_average": round(load, 1)}]
    print(json.dumps(rows[-1]))
    for mode in MODES:
        try:
            isolation.plan(MODES[mode][0])
        except isolation.IsolationUnavailable as exc:
            print(f"{mode}: skipped ({exc})")
            continue
        plain = [close_seconds(mode, "plain", source)[0] for _ in range(args.repeats)]
        strays = [close_seconds(mode, "stray", source) for _ in range(args.repeats)]
        own_uid = isolation.plan(MODES[mode][0]).uid is not None and "grader's uid" not in mode
        rows.append({**stamp, "mode": mode, "python": sys.executable, "uid_per_worker": own_uid,
                     "repeats": args.repeats, "load_average": round(os.getloadavg()[0], 1),
                     "close_s_median": round(statistics.median(plain), 3),
                     "close_with_stray_s_median": round(statistics.median(s for s, _ in strays), 3),
                     "close_with_stray_s_max": round(max(s for s, _ in strays), 3),
                     "stray_alive_after": sorted({str(a) for _, a in strays})})
        print(json.dumps(rows[-1]))
    if args.out:
        with open(args.out, "a") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)


if __name__ == "__main__":
    main()
