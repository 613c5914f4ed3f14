"""One grading, as a pipeline: load the submission, run the checks, score.

Each check runs with the worker proxy and the grading context injected by
parameter name; whatever happens in the student's process becomes that check's
result, and the next check runs regardless.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import time
import traceback
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from graders import assignments
from graders.checks import Check, CheckFailed, collect
from graders.config import Config
from graders.isolation import plan as plan_isolation
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


@dataclass
class Context:
    """What a check knows about this grading besides the worker: the `ctx` fixture."""

    assignment: str
    device: str
    settings: dict
    artifacts_dir: Path | None = None
    notes: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    internal_errors: list[str] = field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        return list(self.settings["seeds"])

    @property
    def threads(self) -> int:
        return int(self.settings["threads"])

    def rng(self, purpose: str, seed_index: int = 0) -> np.random.Generator:
        """A random stream for one purpose, derived one-way from a grading seed.

        Streams of different purposes are independent, so a value a student sees (a
        scripted input, the seed of their agent) reveals nothing about another stream
        (the testbed, the evaluation episodes) unless the seed itself can be guessed:
        hidden seeds should be large random numbers (see graders/config.py).
        """
        key = zlib.crc32(purpose.encode())
        return np.random.default_rng(np.random.SeedSequence(self.seeds[seed_index], spawn_key=(key,)))

    def worker_seed(self, purpose: str, seed_index: int = 0) -> int:
        """A seed to hand to the student's code (their own RNG), from its own stream."""
        return int(self.rng(f"worker:{purpose}", seed_index).integers(2**31))

    def threshold(self, name: str) -> float:
        return self.settings["thresholds"][name]

    def option(self, name: str):
        return self.settings[name]

    def note(self, text: str) -> None:
        self.notes.append(text)

    def artifact(self, filename: str) -> Path | None:
        """A path for a feedback file (a PNG), or None when no feedback folder was asked for."""
        if self.artifacts_dir is None:
            return None
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        self.artifacts.append(filename)
        return self.artifacts_dir / filename


def _apply_overrides(checks: list[Check], overrides: dict) -> list[Check]:
    known = {c.name for c in checks}
    if unknown := set(overrides) - known:
        raise KeyError(f"config overrides unknown checks {sorted(unknown)}; known: {sorted(known)}")
    # copies: the module's own Check objects are shared by every grading in this process
    return [dataclasses.replace(c, **overrides.get(c.name, {})) for c in checks]


def _run_check(check: Check, worker: Worker, ctx: Context, total_deadline: float) -> CheckResult:
    fixtures = {"worker": worker, "ctx": ctx}
    kwargs = {name: fixtures[name] for name in inspect.signature(check.fn).parameters}
    timeout = check.timeout_for(ctx.device)
    result = CheckResult(check.name, 0.0, check.points, "passed", kind=check.kind)
    ctx.notes = []
    printed_before = len(worker.output)
    start = time.monotonic()
    if start >= total_deadline:
        result.status, result.message = "timeout", "not run: the grading's total time limit was reached"
        return result
    worker.deadline = min(start + timeout, total_deadline)
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
        worker.deadline = None
    result.seconds = round(time.monotonic() - start, 3)
    result.message = "\n".join([m for m in [result.message, *ctx.notes] if m])
    result.output = worker.output[printed_before:]
    return result


def grade(assignment: str, submission: str | Path, *, device: str = "auto", config: Config | None = None,
          artifacts_dir: str | Path | None = None) -> Grading:
    """Grade one submission of one assignment."""
    config = config or Config()
    module = assignments.grader_module(assignment)
    settings = config.settings(assignment, getattr(module, "DEFAULTS", {}))
    checks = _apply_overrides(collect(module), settings["checks"])
    device = resolve_device(device)
    limits = config.sandbox_limits()
    grading = Grading(assignment, str(submission), device, isolation=plan_isolation(limits.isolation).describe())
    ctx = Context(assignment, device, settings, Path(artifacts_dir) if artifacts_dir else None)
    start = time.monotonic()
    try:
        _file, code = load(submission, assignment, assignments.template_names(assignment))
    except SubmissionFormatError as exc:
        grading.results = [CheckResult(c.name, 0.0, c.points, "error", str(exc), kind=c.kind) for c in checks]
        grading.seconds = time.monotonic() - start
        return grading
    # a grader that lets the worker read files (datasets) names them: worker_readable(ctx) -> paths
    readable = module.worker_readable(ctx) if hasattr(module, "worker_readable") else []
    with Worker(assignment, code, device=device, threads=ctx.threads, limits=limits, readable=readable) as worker:
        total = settings["total_seconds"] or sum(c.timeout_for(device) for c in checks) + limits.import_seconds
        for c in checks:
            grading.results.append(_run_check(c, worker, ctx, start + total))
            log.info("%s: %s %s/%s", c.name, grading.results[-1].status, grading.results[-1].points, c.points)
    if ctx.internal_errors:
        grading.internal_error = f"checks {ctx.internal_errors} raised inside the grader"
    grading.artifacts = ctx.artifacts
    grading.seconds = time.monotonic() - start
    return grading
