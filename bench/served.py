"""A submission's `train()` in a grading worker, as the training check runs it, with its costs (bench helper).

`served_train` starts a worker on the submission, then calls its `train()` through
`graders.rl.training.serve_training` (the adapter, the shared-memory fast path, the
`CartPoleServer`, the `StudentClock`) and reports, from the moment the student's code
starts (the adapter's imports before it are not counted): wall seconds, CPU seconds of
the grader and of the worker, and the clock's figures. Imported by the bench scripts
next to it (run them from the repository root with PYTHONPATH=.).
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import numpy as np


def grader_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_s(pid: int) -> float:
    """CPU seconds of a process (all its threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def served_train(assignment: str, source: str, server, seed: int, budget_s: float, warm_up=None, after=None) -> dict:
    """Run `source`'s train() on `server`; its costs from the start of train() (see the module's docstring).

    `warm_up`: (name, args) of a call that starts the worker outside the timing;
    `after(worker)`: what to do with the trained worker (its value is returned as "after").
    """
    from graders.rl.training import TRAIN_MARGIN, serve_training
    from graders.sandbox import Worker
    from graders.sandbox.student_clock import StudentClock, python_pid

    with Worker(assignment, source, threads=1) as worker:
        name, args = warm_up or ("discounted_returns", (np.ones(2), 0.5))
        worker.call(name, *args)
        pid = python_pid(worker._proc.pid)
        clock = StudentClock(budget_s, margin=TRAIN_MARGIN, setup_s=60, hard_end=time.monotonic() + 10 * budget_s + 60)
        at_start = {}
        start = clock.start

        def start_and_mark(*args):
            at_start.update(grader=grader_cpu_s(), worker=process_cpu_s(pid))
            start(*args)

        clock.start = start_and_mark
        serve_training(worker, server, clock, seed, "cpu")
        grader, work = grader_cpu_s() - at_start["grader"], process_cpu_s(pid) - at_start["worker"]
        done = after(worker) if after else None
        output = worker.output
    return {"wall": clock.stopped - clock.started, "grader_cpu": grader, "worker_cpu": work, "cpu": grader + work,
            "own": clock.own_s(), "serving": clock.serving, "cpu_wait": clock.cpu_wait, "after": done,
            "output": output}


def report(result: dict, out: str | None) -> None:
    """Print a bench's result, and append it as one JSON line to `out` when given."""
    import json

    print(json.dumps(result, indent=1))
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(result) + "\n")
