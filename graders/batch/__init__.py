"""Grade a whole class: one folder of submissions in, a folder of results out.

    discover (batch.submissions: the layout, each student's file, what is not graded and why)
    -> skip students already graded -> an executor runs the gradings (batch.scheduler: a
    process each, `jobs` at a time, on this machine; or batch.ray_executor: a Ray task
    each, on a cluster) -> each student's outputs are written as their grading ends
    (batch.records) -> the class's outputs (graders.outputs)

Whatever a submission does (crash, hang, eat memory, kill its grader) ends in its own
row: each grading process has a wall-clock limit (the grading's own limit plus a
margin), and one that dies or overruns is recorded as `crashed`; so is one whose
results cannot be written. A student whose submission cannot be graded safely (a
link, not one regular file) gets a row that says why, without a grading.

The results folder, written as the batch goes:

    students/<student>/grading.json   the full record; written last, atomically: its
                                      presence (with the submission's digest) means "done"
    students/<student>/submission/    the copy of the file graded (the bytes hashed)
    students/<student>/results.json   Gradescope schema
    students/<student>/feedback.html  the page for the student, plots embedded
    students/<student>/artifacts/     the plots the grader wrote
    students/<student>/grading.log    the grader's log for this student
    grades.csv, summary.txt, summary.png, index.html   rewritten at the end of every run
    report/, similarity/              the item analysis and the code similarity (instructor only), likewise

A re-run skips every student whose `grading.json` matches the submission's current
digest (unless it says `crashed` or `grader_error`, or lacks the copy of the file graded,
as results of an older version do), so a batch killed at any moment (even with SIGKILL) resumes
where it was; `regrade=True` grades everyone again. Flags the instructor accepts
(`[flags] accept` in the config) are applied to every record at the end of each run,
and recorded.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from graders import outputs
from graders.batch.records import crashed_record, read_record, refused_record, snapshot_file, write_outputs, write_snapshot
from graders.batch.scheduler import Job, Progress, Scheduler, available_cpus, gpu_slots
from graders.batch.submissions import LAYOUTS, BatchError, Submission, discover, read_file
from graders.config import Config
from graders.results import NotGraded, Record, student_status

log = logging.getLogger(__name__)

# Beyond the grading's own limit: process start, grader setup, writing outputs.
GRADING_MARGIN_S = 60.0
# Rows a re-run grades again: the grading process died, or the grader or its host failed (never the student's doing).
REGRADED = ("crashed", "grader_error")

__all__ = ["LAYOUTS", "BatchError", "BatchReport", "run_batch"]


class Executor(Protocol):
    """Runs the pending gradings; each student's files are written as their grading ends.

    `run` returns the records of the students it graded: a grading that died or overran
    is a `crashed` record; Ctrl-C stops it, recording nothing for the gradings in flight.
    The local `Scheduler` and `ray_executor.RayExecutor` are the two; both get each
    student's `Job` (the copy graded) and crashed rows from the batch.
    """

    def run(self, pending: list[tuple[Submission, str]]) -> list[Record]: ...


@dataclass
class BatchReport:
    graded: list[str]  # graded by this run
    skipped: list[str]  # already graded (same file): not graded again
    records: list[Record]  # a row per student, this run's or an earlier one's
    out: Path
    seconds: float
    layout: str = "flat"
    not_graded: list[NotGraded] = field(default_factory=list)  # entries of the folder not graded, and why
    refused: list[str] = field(default_factory=list)  # students with a row that says why they were not graded
    report_notes: list[str] = field(default_factory=list)  # the item analysis and code similarity: where, what
    report_errors: list[str] = field(default_factory=list)  # ...and what could not be written (a grader error)


def run_batch(assignment: str, submissions: str | Path, out: str | Path, *, jobs: int | None = None,
              device: str = "auto", config_path: str | Path | None = None, regrade: bool = False,
              gpu_jobs: int = 1, layout: str = "auto", progress: io.TextIOBase | None = None,
              on_record: Callable[[Record], None] | None = None, ray: str | None = None,
              unsafe_host: str = "") -> BatchReport:
    """Grade every submission not graded yet (all with `regrade`); then rewrite the class's outputs.

    `ray`: a Ray address (`ray://head:10001`, `auto`, or `local` for a Ray started here) to
    grade on that cluster instead of in this machine's processes; `device` is then the
    cluster's (`auto`: CUDA when the cluster has GPUs). `unsafe_host`: why the host check failed
    (graders/doctor.py), when the instructor grades anyway: every row of this run records it. Then the instructor's
    class report (item analysis and code similarity: graders/outputs/class_report.py).
    """
    from graders.runner import resolve_device

    start = time.monotonic()
    config = Config.load(config_path)
    effective = config.effective(assignment)  # a bad config stops here, before any grading
    config_text = Path(config_path).read_text() if config_path else None
    found = discover(submissions, assignment, layout)
    out = Path(out)
    students_dir = out / "students"
    students_dir.mkdir(parents=True, exist_ok=True)

    refused, pending, skipped = [], [], []
    for s in found.submissions:
        if s.problem:
            refused.append(s)
            continue
        old = read_record(students_dir / s.student)
        if (not regrade and old is not None and old.sha256 == s.sha256 and old.grading.assignment == assignment
                and old.status not in REGRADED and snapshot_file(students_dir / s.student) is not None):
            skipped.append(s.student)
        else:
            pending.append((s, s.sha256))

    with contextlib.ExitStack() as stack:
        cluster = None
        if ray is None:
            device = resolve_device(device, effective.grader.gpu)
        elif pending or refused:  # a cluster only when there is a row to write (its device is in the row)
            from graders.batch import ray_executor

            cluster = stack.enter_context(ray_executor.connected(ray))
            device = ray_executor.cluster_device(device, cluster.cluster_resources().get("GPU", 0))

        def save(record: Record, reason: str) -> Record:
            """Write a record; a student whose results cannot be written keeps a row in this run's tables."""
            record.grading.unsafe_host = unsafe_host
            try:
                write_outputs(students_dir / record.student, record)
            except Exception as exc:
                log.error("%s: the results could not be written (%s: %s)", record.student, type(exc).__name__, exc)
                record.status = "crashed"
                for result in record.grading.results:
                    result.message = f"{reason}; its results could not be written: {exc}. Tell your instructor."
            return record

        this_run: dict[str, Record] = {
            s.student: save(refused_record(s.student, effective.checks, assignment, s.shown, device, s.problem),
                            s.problem) for s in refused}

        def job_for(s: Submission, sha: str, gpu: int | None) -> Job:
            student_dir = students_dir / s.student
            student_dir.mkdir(exist_ok=True)
            copy, graded_sha = write_snapshot(student_dir, assignment, s.suffix, read_file(s.root, s.parts))
            return Job(assignment, s.student, str(copy), str(student_dir), graded_sha, device, config_text, gpu,
                       s.shown, unsafe_host)

        def crashed(s: Submission, sha: str, reason: str, seconds: float) -> Record:
            return save(crashed_record(s.student, sha, effective.checks, assignment, s.shown, device, reason,
                                       seconds), reason)

        graded: list[Record] = []
        if pending:
            limit = effective.total_seconds(device) + GRADING_MARGIN_S
            bar = Progress(len(pending), progress)
            preload = ["graders.batch", "graders.runner", effective.grader.module.__name__]
            executor: Executor
            if cluster is not None:
                executor = ray_executor.RayExecutor(cluster, job_for, limit, crashed, bar, on_record, preload,
                                                    effective.checks, device=device, gpu_jobs=gpu_jobs, window=jobs,
                                                    threads=int(effective.settings["threads"]))
            else:
                slots = gpu_slots(device, max(1, jobs or available_cpus()), gpu_jobs)
                executor = Scheduler(job_for, limit, slots, crashed, bar, on_record, preload)
            graded = executor.run(pending)
    this_run.update((r.student, r) for r in graded)
    log.info("graded %d, skipped %d already graded, %d entries not graded", len(graded), len(skipped),
             len(found.not_graded))

    records = [r for s in found.submissions
               if (r := this_run.get(s.student) or read_record(students_dir / s.student)) is not None]
    for r in records:  # the flags the instructor accepts: the withheld points are given, and recorded
        accepted = config.accepted_checks(r.student)
        if accepted != set() and r.grading.accept_flags(accepted):
            r.status = student_status(r.grading)
            write_outputs(students_dir / r.student, r)
    outputs.write_class(effective.checks, records, out, found.not_graded)
    from graders.outputs import class_report  # instructor-only (never in a student kit)

    written = class_report.write_all(effective.checks, records, out, found.not_graded)
    return BatchReport([r.student for r in graded], skipped, records, out, time.monotonic() - start, found.layout,
                       found.not_graded, [s.student for s in found.submissions if s.problem], written.notes,
                       written.errors)
