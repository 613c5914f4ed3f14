"""Grade a whole class: one folder of submissions in, a folder of results out.

Each student is graded in a process of their own (forked from a server that has
already imported the grader, so a start costs milliseconds), `jobs` at a time;
that process starts the sandboxed worker as `graders grade` does. Whatever a
submission does (crash, hang, eat memory, kill its grader) ends in its own row: the
batch gives each grading a wall-clock limit (the sum of its checks' limits plus
a margin) and records a grading process that dies or overruns as `crashed`.

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

import csv
import ctypes
import hashlib
import io
import json
import logging
import multiprocessing
import os
import queue
import shutil
import signal
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path

from graders import assignments
from graders.checks import Check, collect
from graders.config import Config
from graders.results import STATUSES, CheckResult, Grading, write_json
from graders.submission import SubmissionFormatError, find_file

log = logging.getLogger(__name__)

SUBMISSION_SUFFIXES = (".py", ".ipynb")
RECORD = "grading.json"
# Beyond the sum of the checks' own limits: process start, grader setup, writing outputs.
GRADING_MARGIN_S = 60.0
STUDENT_STATUSES = ("passed", *STATUSES[1:], "crashed", "grader_error")  # best to worst


class BatchError(ValueError):
    """The submissions folder or the options cannot be used."""


@dataclass(frozen=True)
class Submission:
    student: str
    path: Path  # the file or the folder find_file() resolves


# -- finding the submissions ---------------------------------------------------------------------
def is_nbgrader_layout(folder: Path, assignment: str) -> bool:
    """nbgrader's `submitted/<student>/<assignment>/`: some student folder holds the assignment folder."""
    return any((child / assignment).is_dir() for child in folder.iterdir() if child.is_dir())


def discover(folder: str | Path, assignment: str) -> list[Submission]:
    """The submissions in `folder`, sorted by student.

    Flat layout: every `.py`/`.ipynb` file (student = its stem) or folder (student = its
    name) is one student. nbgrader layout (`folder` is nbgrader's `submitted/`): each
    `<student>/<assignment>/`; students without that folder have not submitted it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BatchError(f"{folder} is not a folder of submissions")
    visible = sorted(p for p in folder.iterdir() if not p.name.startswith((".", "_")))
    if is_nbgrader_layout(folder, assignment):
        found = [Submission(p.name, p / assignment) for p in visible if (p / assignment).is_dir()]
    else:
        found = [Submission(p.stem if p.is_file() else p.name, p) for p in visible
                 if p.is_dir() or p.suffix in SUBMISSION_SUFFIXES]
    seen: dict[str, Path] = {}
    for s in found:
        if s.student in seen:
            raise BatchError(f"two submissions for student '{s.student}': {seen[s.student].name} and {s.path.name}")
        seen[s.student] = s.path
    return found


def digest(submission: Path, assignment: str) -> str:
    """sha256 of the file that will be graded ('' when there is none: that error is graded too)."""
    try:
        return hashlib.sha256(find_file(submission, assignment).read_bytes()).hexdigest()
    except (SubmissionFormatError, OSError):
        return ""


# -- records ---------------------------------------------------------------------------------------
def atomic_write(path: Path, data: str | bytes) -> None:
    """Write via a temporary file and rename, so a reader (or a resume) never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    tmp.replace(path)


@dataclass
class Record:
    """One student's outcome, as stored in grading.json."""

    student: str
    sha256: str
    status: str
    grading: Grading
    graded_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        return {"student": self.student, "sha256": self.sha256, "status": self.status,
                "graded_at": self.graded_at, "grading": self.grading.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> Record:
        g = dict(data["grading"])
        results = [CheckResult(**r) for r in g.pop("results")]
        known = {f.name for f in fields(Grading)}
        grading = Grading(**{k: v for k, v in g.items() if k in known}, results=results)
        return cls(data["student"], data["sha256"], data["status"], grading, data.get("graded_at", 0.0))


def student_status(grading: Grading) -> str:
    """`passed` for full marks; else the worst check status; `grader_error` for a grader bug."""
    if grading.internal_error:
        return "grader_error"
    worst = max((STUDENT_STATUSES.index(r.status) for r in grading.results if r.status in STATUSES), default=0)
    return STUDENT_STATUSES[worst]


def read_record(student_dir: Path) -> Record | None:
    try:
        return Record.from_dict(json.loads((student_dir / RECORD).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_outputs(student_dir: Path, record: Record) -> None:
    """results.json and feedback.html, then grading.json, which marks the student done."""
    from graders import feedback

    write_json(record.grading, student_dir / "results.json")
    atomic_write(student_dir / "feedback.html",
                 feedback.student_page(record.grading, record.student, student_dir / "artifacts"))
    atomic_write(student_dir / RECORD, json.dumps(record.to_dict(), indent=1))


def crashed_record(student: str, sha: str, checks: list[Check], assignment: str, submission: Path, device: str,
                   reason: str, seconds: float) -> Record:
    """The row of a student whose grading process died or overran: every check gets zero."""
    message = f"the grading of this submission was stopped: {reason}. Nothing was graded; tell your instructor."
    grading = Grading(assignment, str(submission), device, seconds=seconds,
                      results=[CheckResult(c.name, 0.0, c.points, "error", message, kind=c.kind) for c in checks])
    return Record(student, sha, "crashed", grading)


# -- one grading, in its own process -------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    assignment: str
    student: str
    submission: str
    student_dir: str
    sha256: str
    device: str
    config: str | None
    gpu: int | None = None


def _die_with_parent() -> None:
    """SIGTERM this process when its parent (the fork server, which dies with the batch) dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _terminate(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through `with Worker`, which kills the worker


def grade_one(job: Job) -> None:
    """Body of a grading process: grade, then write the student's outputs."""
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the batch, which then stops us
    _die_with_parent()
    student_dir = Path(job.student_dir)
    log_fd = os.open(student_dir / "grading.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    for fd in (1, 2):
        os.dup2(log_fd, fd)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    if job.gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(job.gpu)
    from graders.runner import grade

    artifacts = student_dir / "artifacts"
    shutil.rmtree(artifacts, ignore_errors=True)  # a regrade must not show the old plots
    grading = grade(job.assignment, job.submission, device=job.device, config=Config.load(job.config),
                    artifacts_dir=artifacts)
    write_outputs(student_dir, Record(job.student, job.sha256, student_status(grading), grading))


# -- the batch -------------------------------------------------------------------------------------
@dataclass
class Progress:
    """A one-line progress bar with ETA on a terminal; a line per student otherwise."""

    total: int
    stream: io.TextIOBase | None = None
    done: int = 0
    problems: int = 0
    start: float = field(default_factory=time.monotonic)

    def update(self, record: Record, running: int) -> None:
        self.done += 1
        self.problems += record.status not in ("passed", "failed")
        if self.stream is None:
            return
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        width = 30
        bar = "#" * round(width * self.done / self.total)
        line = (f"[{bar:{width}}] {self.done}/{self.total}  {_clock(elapsed)} elapsed, ETA {_clock(eta)}"
                f"  ({running} running, {self.problems} with errors)  last: {record.student} "
                f"{record.grading.score:g}/{record.grading.max_score:g} {record.status}")
        if self.stream.isatty():
            self.stream.write("\r\x1b[2K" + line + ("\n" if self.done == self.total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass
class BatchReport:
    graded: list[str]
    skipped: list[str]
    records: list[Record]
    out: Path
    seconds: float


def available_cpus() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def gpu_slots(device: str, jobs: int, gpu_jobs: int) -> list[int | None]:
    """One entry per grading that may run at once: a GPU index on CUDA (`gpu_jobs` per GPU), else None."""
    if device != "cuda":
        return [None] * jobs
    import torch

    slots = [gpu for gpu in range(torch.cuda.device_count()) for _ in range(max(1, gpu_jobs))]
    if not slots:
        raise BatchError("no CUDA device to share")
    return slots[:jobs]


def grading_limit(checks: list[Check], device: str, config: Config, settings: dict) -> float:
    """Wall-clock limit of one grading process: the grading's own limit (its `total_seconds`,
    else the sum of its checks' limits), plus the import limit and a margin."""
    total = settings.get("total_seconds") or sum(c.timeout_for(device) for c in checks)
    return total + config.sandbox_limits().import_seconds + GRADING_MARGIN_S


class _Scheduler:
    """Runs gradings on a thread pool, each thread supervising one grading process at a time."""

    def __init__(self, job_for: Callable[[Submission, str, int | None], Job], limit: float, slots: list,
                 crashed: Callable[[Submission, str, str, float], Record], bar: Progress,
                 on_record: Callable[[Record], None] | None, preload: list[str]):
        self.job_for, self.limit, self.crashed, self.bar, self.on_record = job_for, limit, crashed, bar, on_record
        self.slots: queue.Queue = queue.Queue()
        for slot in slots:
            self.slots.put(slot)
        self.workers = len(slots)
        self.mp = multiprocessing.get_context("forkserver")
        self.mp.set_forkserver_preload(preload)
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.procs: dict[str, multiprocessing.process.BaseProcess] = {}

    def run(self, pending: list[tuple[Submission, str]]) -> list[Record]:
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="grade")
        futures = [pool.submit(self._one, s, sha) for s, sha in pending]
        try:
            records = [f.result() for f in futures]
        except BaseException:  # Ctrl-C (or a bug): stop the gradings, record nothing for them
            self.stopping.set()
            for f in futures:
                f.cancel()
            with self.lock:
                for proc in self.procs.values():
                    proc.terminate()
            pool.shutdown(wait=True)
            raise
        pool.shutdown(wait=True)
        return [r for r in records if r is not None]

    def _one(self, s: Submission, sha: str) -> Record | None:
        if self.stopping.is_set():
            return None
        slot = self.slots.get()
        began = time.monotonic()
        try:
            record, reason = self._supervise(self.job_for(s, sha, slot))
        finally:
            self.slots.put(slot)
        if self.stopping.is_set():
            return None
        if record is None:
            record = self.crashed(s, sha, reason, time.monotonic() - began)
        with self.lock:
            self.bar.update(record, len(self.procs))
        if self.on_record:
            self.on_record(record)
        return record

    def _supervise(self, job: Job) -> tuple[Record | None, str]:
        """Run grade_one in a fresh process: (the record it wrote, '') or (None, why there is none)."""
        proc = self.mp.Process(target=grade_one, args=(job,), name=f"grade-{job.student}")
        with self.lock:
            if self.stopping.is_set():
                return None, "the batch was stopped"
            proc.start()
            self.procs[job.student] = proc
        try:
            proc.join(self.limit)
            if proc.is_alive():
                reason = f"it ran longer than the batch limit of {self.limit:.0f} s"
                proc.terminate()  # SIGTERM: the grading process kills its worker on the way out
                proc.join(10)
                if proc.is_alive():
                    proc.kill()
                    proc.join()
            elif proc.exitcode != 0:
                code = proc.exitcode
                reason = (f"the grading process was killed by {signal.Signals(-code).name}" if code < 0
                          else f"the grading process exited with code {code}")
            else:
                record = read_record(Path(job.student_dir))
                if record is not None and record.sha256 == job.sha256:
                    return record, ""
                reason = "the grading process wrote no result"
        finally:
            with self.lock:
                self.procs.pop(job.student, None)
        if not self.stopping.is_set():
            log.warning("%s: %s (see %s/grading.log)", job.student, reason, job.student_dir)
        return None, reason


def run_batch(assignment: str, submissions: str | Path, out: str | Path, *, jobs: int | None = None,
              device: str = "auto", config_path: str | Path | None = None, regrade: bool = False,
              gpu_jobs: int = 1, progress: io.TextIOBase | None = None,
              on_record: Callable[[Record], None] | None = None) -> BatchReport:
    """Grade every submission not graded yet (all with `regrade`); then rewrite grades.csv and the summary."""
    from graders.runner import resolve_device

    start = time.monotonic()
    module = assignments.grader_module(assignment)
    config = Config.load(config_path)
    settings = config.settings(assignment, getattr(module, "DEFAULTS", {}))
    checks = collect(module)
    for c in checks:  # the overrides grade() applies: the crashed rows and the time limit need them
        c.points = settings["checks"].get(c.name, {}).get("points", c.points)
        c.timeout = settings["checks"].get(c.name, {}).get("timeout", c.timeout)
    device = resolve_device(device)
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

    config_file = str(Path(config_path).resolve()) if config_path else None

    def job_for(s: Submission, sha: str, gpu: int | None) -> Job:
        student_dir = students_dir / s.student
        student_dir.mkdir(exist_ok=True)
        return Job(assignment, s.student, str(s.path.resolve()), str(student_dir), sha, device, config_file, gpu)

    def crashed(s: Submission, sha: str, reason: str, seconds: float) -> Record:
        record = crashed_record(s.student, sha, checks, assignment, s.path.resolve(), device, reason, seconds)
        write_outputs(students_dir / s.student, record)
        return record

    slots = gpu_slots(device, max(1, jobs or available_cpus()), gpu_jobs)
    scheduler = _Scheduler(job_for, grading_limit(checks, device, config, settings), slots, crashed,
                           Progress(len(pending), progress), on_record,
                           preload=["graders.batch", "graders.runner", module.__name__])
    graded = scheduler.run(pending)
    log.info("graded %d, skipped %d already graded", len(graded), len(skipped))

    records = [r for s in found if (r := read_record(students_dir / s.student)) is not None]
    write_tables(out, checks, records)
    return BatchReport([r.student for r in graded], skipped, records, out, time.monotonic() - start)


# -- class-level outputs -------------------------------------------------------------------------
def write_tables(out: Path, checks: list[Check], records: list[Record]) -> None:
    """grades.csv, summary.txt, summary.png and index.html, from every student's record."""
    from graders import feedback

    names = [c.name for c in checks]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", *names, "total", "max", "status", "seconds"])
    for r in records:
        points = {c.name: c.points for c in r.grading.results}
        writer.writerow([r.student, *(_num(points.get(n, "")) for n in names), _num(r.grading.score),
                         _num(r.grading.max_score), r.status, f"{r.grading.seconds:.1f}"])
    atomic_write(out / "grades.csv", buffer.getvalue())
    atomic_write(out / "summary.txt", summary_text(checks, records))
    atomic_write(out / "summary.png", feedback.histogram_png([r.grading.score for r in records],
                                                             sum(c.points for c in checks)))
    atomic_write(out / "index.html", feedback.summary_page(checks, records))


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def failures_per_check(checks: list[Check], records: list[Record]) -> dict[str, dict[str, int]]:
    """{check: {status: number of students}} over the class."""
    table = {c.name: dict.fromkeys(STATUSES, 0) for c in checks}
    for r in records:
        for result in r.grading.results:
            if result.name in table and result.status in STATUSES:
                table[result.name][result.status] += 1
    return table


def summary_text(checks: list[Check], records: list[Record]) -> str:
    scores = sorted(r.grading.score for r in records)
    maximum = sum(c.points for c in checks)
    lines = [f"{len(records)} students graded"]
    if scores:
        lines.append(f"score: mean {statistics.mean(scores):.2f}, median {statistics.median(scores):g}, "
                     f"min {scores[0]:g}, max {scores[-1]:g} (of {maximum:g})")
    by_status = {s: sum(r.status == s for r in records) for s in STUDENT_STATUSES}
    lines.append("students by status: " + ", ".join(f"{s} {n}" for s, n in by_status.items() if n))
    lines += ["", f"{'check':40} {'points':>6} " + " ".join(f"{s:>8}" for s in STATUSES)]
    points = {c.name: c.points for c in checks}
    for name, counts in failures_per_check(checks, records).items():
        lines.append(f"{name:40} {points[name]:>6g} " + " ".join(f"{counts[s]:>8}" for s in STATUSES))
    return "\n".join(lines) + "\n"


