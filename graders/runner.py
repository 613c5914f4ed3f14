"""One grading, as a pipeline: load the submission, run the checks, score.

Each check runs with the fixtures it asks for (graders/contract.py); whatever happens
in the student's process becomes that check's result, and the next check runs
regardless.
"""

from __future__ import annotations

import inspect
import logging
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from graders import assignments
from graders.checks import Check, CheckFailed
from graders.config import Config, Effective
from graders.contract import FIXTURES, CheckWorker, Context
from graders.results import CheckResult, Grading
from graders.sandbox import Worker, WorkerError
from graders.submission import SubmissionFormatError, load

log = logging.getLogger(__name__)


class DeviceError(RuntimeError):
    """The requested device is not available."""


def resolve_device(device: str) -> str:
    if device not in ("auto", "cpu", "cuda"):
        raise DeviceError(f"unknown device '{device}' (auto, cpu or cuda)")
    if device == "cpu":
        return "cpu"
    try:
        import torch

        available = torch.cuda.is_available()
    except ImportError:
        available = False
    if device == "cuda" and not available:
        raise DeviceError("--device cuda was asked for, but no CUDA device is available here (try --device auto)")
    return "cuda" if available else "cpu"


def _run_check(check: Check, worker: Worker, ctx: Context, total_deadline: float,
               spawn: Callable[[], Worker]) -> CheckResult:
    result = CheckResult(check.name, 0.0, check.points, "passed", kind=check.kind)
    ctx.notes = []
    printed_before = len(worker.output)
    if time.monotonic() >= total_deadline:
        result.status, result.message = "timeout", "not run: the grading's total time limit was reached"
        return result
    try:
        worker.start()  # importing the submission has its own limit; the check's clock starts after it
    except WorkerError as exc:
        result.status, result.message = exc.status, str(exc)
        result.output = worker.output[printed_before:]
        return result
    start = time.monotonic()
    ctx.deadline = min(start + check.timeout_for(ctx.device), total_deadline)
    fresh: list[Worker] = []

    def fresh_worker() -> CheckWorker:
        fresh.append(spawn())
        return CheckWorker(fresh[-1], ctx)

    fixtures = {"worker": CheckWorker(worker, ctx), "ctx": ctx, "fresh_worker": fresh_worker}
    assert set(fixtures) == set(FIXTURES)
    kwargs = {name: fixtures[name] for name in inspect.signature(check.fn).parameters}
    try:
        check.fn(**kwargs)
        result.points = check.points
    except CheckFailed as exc:
        result.status, result.message = "failed", str(exc)
    except AssertionError as exc:
        result.status, result.message = "failed", str(exc) or "assertion failed"
    except WorkerError as exc:
        result.status, result.message = exc.status, str(exc)
    except Exception:  # a bug of the grader: say so, and keep grading
        log.exception("internal error in check %s", check.name)
        result.status = "error"
        result.message = "internal grader error (not your fault; tell your instructor):\n" + traceback.format_exc()
        ctx.internal_errors.append(check.name)
    finally:
        ctx.deadline = None
        for other in fresh:
            other.close()
    result.seconds = round(time.monotonic() - start, 3)
    result.message = "\n".join([m for m in [result.message, *ctx.notes] if m])
    result.output = worker.output[printed_before:] + "".join(other.output for other in fresh)
    return result


def grade(assignment: str | Effective, submission: str | Path, *, device: str = "auto", config: Config | None = None,
          artifacts_dir: str | Path | None = None) -> Grading:
    """Grade one submission of one assignment (a name, or an assignment as a config grades it)."""
    effective = assignment if isinstance(assignment, Effective) else (config or Config()).effective(assignment)
    name, checks, limits = effective.name, effective.checks, effective.limits
    device = resolve_device(device)
    grading = Grading(name, str(submission), device)
    ctx = Context(name, device, effective.settings, Path(artifacts_dir) if artifacts_dir else None,
                  private=effective.private)
    start = time.monotonic()
    try:
        _file, code = load(submission, name, assignments.template_names(name))
    except SubmissionFormatError as exc:
        grading.results = [CheckResult(c.name, 0.0, c.points, "error", str(exc), kind=c.kind) for c in checks]
        grading.seconds = time.monotonic() - start
        return grading
    readable = effective.grader.worker_readable(ctx) if effective.grader.worker_readable else []

    def spawn() -> Worker:
        return Worker(name, code, device=device, threads=ctx.threads, limits=limits, readable=readable)

    with spawn() as worker:
        grading.isolation = worker.isolation
        total_deadline = start + effective.total_seconds(device)
        for c in checks:
            grading.results.append(_run_check(c, worker, ctx, total_deadline, spawn))
            log.info("%s: %s %s/%s", c.name, grading.results[-1].status, grading.results[-1].points, c.points)
    if ctx.internal_errors:
        grading.internal_error = f"checks {ctx.internal_errors} raised inside the grader"
    grading.artifacts = ctx.artifacts
    grading.seconds = time.monotonic() - start
    return grading
