"""Grade a whole class: one folder of submissions in, a folder of results out.

    discover (batch.submissions) -> skip students already graded -> an executor runs the
    gradings (batch.scheduler: a process each, `jobs` at a time, on this machine; or
    batch.ray_executor: a Ray task each, on a cluster) -> each student's outputs are
    written as their grading ends (batch.records) -> the class's outputs (graders.outputs)

Whatever a submission does (crash, hang, eat memory, kill its grader) ends in its own
row: each grading process has a wall-clock limit (the grading's own limit plus a
margin), and one that dies or overruns is recorded as `crashed`.

The results folder, written as the batch goes:

    students/<student>/grading.json   the full record; written last, atomically: its
                                      presence (with the submission's digest) means "done"
    students/<student>/results.json   Gradescope schema
    students/<student>/feedback.html  the page for the student, plots embedded
    students/<student>/artifacts/     the plots the grader wrote
    students/<student>/grading.log    the grader's log for this student
    grades.csv, summary.txt, summary.png, index.html   rewritten at the end of every run

A re-run skips every student whose `grading.json` matches the submission's current
digest, so a batch killed at any moment (even with SIGKILL) resumes where it was;
`regrade=True` grades everyone again.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from graders import outputs
from graders.batch.records import crashed_record, read_record, write_outputs
from graders.batch.scheduler import Job, Progress, Scheduler, available_cpus, gpu_slots
from graders.batch.submissions import BatchError, Submission, digest, discover
from graders.config import Config
from graders.results import Record

log = logging.getLogger(__name__)

# Beyond the grading's own limit: process start, grader setup, writing outputs.
GRADING_MARGIN_S = 60.0

__all__ = ["BatchError", "BatchReport", "run_batch"]


class Executor(Protocol):
    """Runs the pending gradings; each student's files are written as their grading ends.

    `run` returns the records of the students it graded: a grading that died or overran
    is a `crashed` record; Ctrl-C stops it, recording nothing for the gradings in flight.
    The local `Scheduler` and `ray_executor.RayExecutor` are the two.
    """

    def run(self, pending: list[tuple[Submission, str]]) -> list[Record]: ...


@dataclass
class BatchReport:
    graded: list[str]
    skipped: list[str]
    records: list[Record]
    out: Path
    seconds: float


def run_batch(assignment: str, submissions: str | Path, out: str | Path, *, jobs: int | None = None,
              device: str = "auto", config_path: str | Path | None = None, regrade: bool = False,
              gpu_jobs: int = 1, progress: io.TextIOBase | None = None,
              on_record: Callable[[Record], None] | None = None, ray: str | None = None) -> BatchReport:
    """Grade every submission not graded yet (all with `regrade`); then rewrite the class's outputs.

    `ray`: a Ray address (`ray://head:10001`, `auto`, or `local` for a Ray started here) to
    grade on that cluster instead of this machine's processes; `device` is then the cluster's.
    """
    from graders.runner import resolve_device

    start = time.monotonic()
    config = Config.load(config_path)
    effective = config.effective(assignment)  # a bad config stops here, before any grading
    config_text = Path(config_path).read_text() if config_path else None
    device = resolve_device(device) if ray is None else device
    found = discover(submissions, assignment)
    out = Path(out)
    students_dir = out / "students"
    students_dir.mkdir(parents=True, exist_ok=True)

    pending, skipped = [], []
    for s in found:
        sha = digest(s.path, assignment)
        old = read_record(students_dir / s.student)
        if not regrade and old is not None and old.sha256 == sha and old.grading.assignment == assignment:
            skipped.append(s.student)
        else:
            pending.append((s, sha))

    def job_for(s: Submission, sha: str, gpu: int | None) -> Job:
        student_dir = students_dir / s.student
        student_dir.mkdir(exist_ok=True)
        return Job(assignment, s.student, str(s.path.resolve()), str(student_dir), sha, device, config_text, gpu)

    def crashed(s: Submission, sha: str, reason: str, seconds: float) -> Record:
        record = crashed_record(s.student, sha, effective.checks, assignment, s.path.resolve(), device, reason,
                                seconds)
        write_outputs(students_dir / s.student, record)
        return record

    preload = ["graders.batch", "graders.runner", effective.grader.module.__name__]
    bar = Progress(len(pending), progress)
    executor: Executor
    if ray is not None:
        from graders.batch.ray_executor import RayExecutor

        executor = RayExecutor(ray, effective, config_text, device, students_dir, bar, on_record, preload=preload,
                               margin=GRADING_MARGIN_S, jobs=jobs, gpu_jobs=gpu_jobs)
    else:
        slots = gpu_slots(device, max(1, jobs or available_cpus()), gpu_jobs)
        executor = Scheduler(job_for, effective.total_seconds(device) + GRADING_MARGIN_S, slots, crashed, bar,
                             on_record, preload)
    graded = executor.run(pending)
    log.info("graded %d, skipped %d already graded", len(graded), len(skipped))

    records = [r for s in found if (r := read_record(students_dir / s.student)) is not None]
    outputs.write_class(effective.checks, records, out)
    return BatchReport([r.student for r in graded], skipped, records, out, time.monotonic() - start)
