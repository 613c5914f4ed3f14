"""One grading, as a pipeline: load the submission, run the checks, score.

Each check runs with the fixtures it asks for (graders/contract.py); whatever happens
in the student's process becomes that check's result, and the next check runs
regardless.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from graders.checks import Check, CheckFailed, CheckFlagged, CheckSkipped, SetupError
from graders.config import Config, Effective
from graders.contract import FIXTURES, CheckWorker, Context
from graders.progress import Listener
from graders.results import SKIPPED, CheckResult, Grading
from graders.sandbox import HostError, SubmissionLoadError, Worker, WorkerError
from graders.selection import NOT_SELECTED, select
from graders.submission import Submission, SubmissionFormatError, load

log = logging.getLogger(__name__)


class DeviceError(RuntimeError):
    """The requested device is not available."""


def resolve_device(device: str, gpu: bool = True) -> str:
    """The device a grading runs on: `gpu` False for a grader that puts nothing on a GPU (contract.py's GPU hook),
    which runs on the CPU (with auto, without importing torch to ask; cuda asked where there is none is an error
    whatever the grader)."""
    if device not in ("auto", "cpu", "cuda"):
        raise DeviceError(f"unknown device '{device}' (auto, cpu or cuda)")
    if device == "cpu" or (device == "auto" and not gpu):
        return "cpu"
    try:
        import torch

        available = torch.cuda.is_available()
    except ImportError:
        available = False
    if device == "cuda" and not available:
        raise DeviceError("--device cuda was asked for, but no CUDA device is available here (try --device auto)")
    return "cuda" if available and gpu else "cpu"


NOT_LOADED = "not graded: the submission does not load (the reason is under {first})"
HOST_FAILED = "not graded: the grading machine could not run your code (not your fault; your instructor is told)"


def _not_loaded(check: Check, first: str) -> CheckResult:
    """The row of a check after the first one already reported that the submission does not load."""
    return CheckResult(check.name, 0.0, check.points, "error", NOT_LOADED.format(first=first), kind=check.kind)


def _preload(modules: tuple[str, ...]) -> None:
    """Import the grader's slow dependencies (its PRELOAD hook) in a thread while the first worker starts; a failure
    is left to the check that imports the module, where it is reported."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - reported by the check that needs it
            log.debug("preloading %s failed", name, exc_info=True)


class Ahead:
    """Workers launched when the grading starts, one for each check to run whose first fresh worker is declared
    `fresh_ahead` (graders/checks.py): each imports the submission beside the first worker, so its import overlaps
    the earlier checks. A thread of its own waits for each one's import, under the usual limit (the process itself
    is started from the grading's thread: a worker dies with the thread that started it). `take` hands a worker
    to its check; the check closes it, taken or not; leaving the `with` stops any left."""

    def __init__(self, checks: Sequence[Check], spawn: Callable[..., Worker]):
        self._launched: dict[str, tuple[Worker, threading.Thread | None]] = {}
        try:
            for c in checks:
                if c.fresh_ahead is not None:
                    worker, waiting = spawn(warm=c.fresh_ahead), None
                    try:
                        worker.launch()
                        waiting = threading.Thread(target=self._wait, args=(worker,), daemon=True)
                        waiting.start()
                    except Exception:  # noqa: BLE001 - its check starts it again, from the grading's thread
                        log.debug("a worker launched ahead failed to start", exc_info=True)
                    self._launched[c.name] = (worker, waiting)
        except BaseException:
            self.__exit__()
            raise

    @staticmethod
    def _wait(worker: Worker) -> None:
        try:
            worker.start()  # the wait for its import: a failure is kept by the worker, and its check's start says it
        except Exception:  # noqa: BLE001
            log.debug("a worker launched ahead failed to import the submission", exc_info=True)

    def take(self, name: str) -> Worker | None:
        """The worker launched ahead for check `name` (once), its import finished; None when there is none."""
        if name not in self._launched:
            return None
        worker, waiting = self._launched.pop(name)
        if waiting is not None:
            waiting.join()
        return worker

    def __enter__(self) -> Ahead:
        return self

    def __exit__(self, *exc) -> None:
        for name in list(self._launched):
            self.take(name).close()


def _run_check(check: Check, worker: Worker, ctx: Context, total_deadline: float,
               spawn: Callable[[], Worker], submission: Submission,
               preloaded: threading.Thread, ahead: Ahead) -> tuple[CheckResult, bool]:
    """The check's result, and whether the submission failed to load during it."""
    result = CheckResult(check.name, 0.0, check.points, "passed", kind=check.kind)
    ctx.notes, ctx.metrics = [], {}
    if time.monotonic() >= total_deadline:
        result.status, result.message = "timeout", "not run: the grading's total time limit was reached"
        return result, False
    own = check.kind == "training"  # a training run starts where no other check's calls have run (contract.py)
    if own:
        worker = spawn()
    printed_before = len(worker.output)
    try:
        worker.start()  # importing the submission has its own limit; the check's clock starts after it
    except WorkerError as exc:
        result.status, result.message = exc.status, submission.explain(str(exc))
        result.output = worker.output[printed_before:]
        if own:
            worker.close()
        return result, isinstance(exc, SubmissionLoadError)
    except HostError as exc:  # the machine, not the student (graders/sandbox/probe.py): a grader error
        result.status, result.message = "error", f"{HOST_FAILED}: {exc}"
        ctx.internal_errors.append(check.name)
        return result, False
    preloaded.join()  # the grader's own slow imports, made while the worker started: not the check's time
    start = time.monotonic()
    ctx.deadline = min(start + check.timeout_for(ctx.device), total_deadline)
    if ctx.listener:
        ctx.listener.check_started(check, ctx.deadline - start)
    fresh: list[Worker] = []

    def fresh_worker() -> CheckWorker:
        started = time.monotonic()
        fresh.append(ahead.take(check.name) or spawn())
        fresh[-1].start()  # like the first worker's, its import (or the wait for it) is not charged to the check
        ctx.deadline += time.monotonic() - started
        return CheckWorker(fresh[-1], ctx)

    fixtures = {"worker": CheckWorker(worker, ctx), "ctx": ctx, "fresh_worker": fresh_worker,
                "seed_index": check.seed_index}
    assert set(fixtures) == set(FIXTURES)
    kwargs = {name: fixtures[name] for name in inspect.signature(check.fn).parameters}
    load_failed = False
    try:
        check.fn(**kwargs)
        result.points = check.points
    except CheckFailed as exc:
        result.status, result.message = "failed", str(exc)
    except CheckFlagged as exc:
        result.status, result.message = "flagged", f"FLAG for the instructor: {exc}"
        result.flag, result.withheld = exc.flag, check.points
    except AssertionError as exc:
        result.status, result.message = "failed", str(exc) or "assertion failed"
    except (SetupError, HostError) as exc:  # the grader's machine, not the student: say why, and count it as ours
        result.status, result.message = "error", f"the grader is not set up for this check (not your fault): {exc}"
        ctx.internal_errors.append(check.name)
    except WorkerError as exc:  # the student's process: map its lines back to what the student wrote
        result.status, result.message = exc.status, submission.explain(str(exc), worker.load_failures)
        load_failed = isinstance(exc, SubmissionLoadError) and worker.failed_to_load  # not a fresh worker's alone
    except CheckSkipped as exc:  # it cannot run here (only in a student kit: graders/release)
        result.status, result.message = SKIPPED, str(exc)
    except Exception:  # a bug of the grader: say so, and keep grading
        log.exception("internal error in check %s", check.name)
        result.status = "error"
        result.message = "internal grader error (not your fault; tell your instructor):\n" + traceback.format_exc()
        ctx.internal_errors.append(check.name)
    finally:
        ctx.deadline = None
        untaken = ahead.take(check.name)  # a check that failed before it asked for its fresh worker
        for other in fresh + ([worker] if own else []) + ([untaken] if untaken else []):
            other.close()
    result.seconds = round(time.monotonic() - start, 3)
    if result.status in ("failed", "error", "timeout") and (blame := ctx.blame(check.needs)):
        result.message = f"Probably not this check's own fault: {blame}.\n{result.message}"
    result.message = "\n".join([m for m in [result.message, *ctx.notes] if m])
    result.output = worker.output[printed_before:] + "".join(other.output for other in fresh)
    result.metrics = dict(ctx.metrics)
    return result, load_failed


def grade(assignment: str | Effective, submission: str | Path, *, device: str = "auto", config: Config | None = None,
          artifacts_dir: str | Path | None = None, listener: Listener | None = None,
          checks: Sequence[str] = (), unit: bool = False, unavailable: Mapping[str, str] | None = None) -> Grading:
    """Grade one submission of one assignment (a name, or an assignment as a config grades it).

    `listener` (graders.progress) is told what happens as it happens, for a progress display.
    `checks`, `unit`: grade only those checks (names of rows or of declared checks), or only the unit checks,
    with what they need (graders/selection.py); the others are skipped rows. Raises SelectionError for a name
    that is no check. `unavailable`: {check: why} of the checks this installation cannot run (a student kit's:
    graders/release/replay.skipped_in_kit), skipped rows too.
    """
    effective = assignment if isinstance(assignment, Effective) else (config or Config()).effective(assignment)
    selected = select(effective.checks, checks, unit)
    skipped = {c.name: NOT_SELECTED for c in effective.checks if selected is not None and c.name not in selected}
    skipped |= {c.name: why for c in effective.checks
                if (why := (unavailable or {}).get(c.name)) is not None and c.name not in skipped}
    listener = listener or Listener()
    grading = None
    try:
        chosen = [c for c in effective.checks if c.name not in skipped]
        limit = effective.total_seconds(resolve_device(device, effective.grader.gpu), selected)
        listener.grading_started(effective.name, chosen, limit)
        grading = _grade(effective, submission, device, artifacts_dir, listener, selected, skipped)
    finally:
        listener.grading_finished(grading)
    return grading


def _grade(effective: Effective, submission: str | Path, device: str, artifacts_dir: str | Path | None,
           listener: Listener, selected: frozenset[str] | None = None, skipped: dict[str, str] | None = None,
           ) -> Grading:
    """The pipeline: load, run each check (the rows in `skipped` are not run: {name: why}), score."""
    name, checks, limits = effective.name, effective.checks, effective.limits
    skipped = skipped or {}
    device = resolve_device(device, effective.grader.gpu)
    grading = Grading(name, str(submission), device, selection=None if selected is None else sorted(selected))
    ctx = Context(name, device, effective.settings, Path(artifacts_dir) if artifacts_dir else None,
                  private=effective.private, listener=listener, checks=checks)
    start = time.monotonic()
    try:
        loaded = load(submission, name)
    except SubmissionFormatError as exc:  # one message, in the first row
        first = CheckResult(checks[0].name, 0.0, checks[0].points, "error", str(exc), kind=checks[0].kind)
        grading.results = [first, *(_not_loaded(c, checks[0].name) for c in checks[1:])]
        grading.seconds = time.monotonic() - start
        return grading
    except Exception:  # a bug of the grader: still a complete grading (and results.json), flagged
        log.exception("internal error while loading %s", submission)
        message = "internal grader error while reading the submission (not your fault; tell your instructor):\n"
        grading.results = [CheckResult(c.name, 0.0, c.points, "error", message + traceback.format_exc(limit=-3),
                                       kind=c.kind) for c in checks]
        grading.internal_error = "loading the submission raised inside the grader"
        grading.seconds = time.monotonic() - start
        return grading
    readable = effective.grader.worker_readable(ctx) if effective.grader.worker_readable else []

    def spawn(warm: tuple[str, ...] = ()) -> Worker:
        return Worker(name, loaded.code, device=device, threads=ctx.threads, limits=limits, readable=readable,
                      warm=warm)

    preloaded = threading.Thread(target=_preload, args=(effective.grader.preload,), daemon=True)
    preloaded.start()
    with spawn() as worker, Ahead([c for c in checks if c.name not in skipped], spawn) as ahead:
        grading.isolation = worker.isolation
        total_deadline = start + effective.total_seconds(device, selected)
        load_failed_in = None
        for c in checks:
            if c.name in skipped:
                grading.results.append(CheckResult(c.name, 0.0, c.points, SKIPPED, skipped[c.name], kind=c.kind))
            elif load_failed_in is not None:
                grading.results.append(_not_loaded(c, load_failed_in))
            else:
                result, load_failed = _run_check(c, worker, ctx, total_deadline, spawn, loaded, preloaded, ahead)
                grading.results.append(result)
                if load_failed:
                    load_failed_in = c.name
            ctx.results[c.name] = grading.results[-1]
            listener.check_finished(grading.results[-1])
            log.info("%s: %s %s/%s", c.name, grading.results[-1].status, grading.results[-1].points, c.points)
    if ctx.internal_errors:
        grading.internal_error = f"checks {ctx.internal_errors} raised inside the grader"
        if worker.host_error:
            grading.internal_error = f"the grading host failed: {worker.host_error}"
    grading.artifacts = ctx.artifacts
    grading.seconds = time.monotonic() - start
    return grading
