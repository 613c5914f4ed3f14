"""Running gradings: each in a process of its own, `jobs` at a time, each under a wall-clock limit.

Each student is graded in a process forked from a server that has already imported
the grader (a start costs milliseconds); that process starts the sandboxed worker as
`graders grade` does and writes the student's outputs. The scheduler supervises it:
a grading process that dies or overruns its limit yields no record, and the caller
records the student as `crashed`.
"""

from __future__ import annotations

import ctypes
import io
import logging
import multiprocessing
import os
import queue
import shutil
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from graders.batch.records import read_record, write_outputs
from graders.batch.submissions import BatchError, Submission
from graders.config import Config
from graders.outputs.table import printable
from graders.results import Record, student_status

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    assignment: str
    student: str
    submission: str  # the copy to grade (graders.batch.records.write_snapshot)
    student_dir: str
    sha256: str
    device: str
    config_text: str | None  # the instructor TOML itself: it travels with the job
    gpu: int | None = None
    source: str = ""  # the submission as found in the class's folder, for the record
    unsafe_host: str = ""  # the failed host check the instructor graded anyway with (graders/doctor.py), recorded


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
    config = Config.parse(job.config_text, "the instructor config") if job.config_text else Config()
    grading = grade(job.assignment, job.submission, device=job.device, config=config, artifacts_dir=artifacts)
    grading.submission = job.source or job.submission
    grading.unsafe_host = job.unsafe_host
    write_outputs(student_dir, Record(job.student, job.sha256, student_status(grading), grading))


@dataclass
class Progress:
    """A one-line progress bar with ETA on a terminal, drawn from the first second and redrawn every
    second (so that a long first grading never looks stuck); a line per student otherwise."""

    total: int
    stream: io.TextIOBase | None = None
    done: int = 0
    problems: int = 0
    running: int = 0
    last: str = ""
    start: float = field(default_factory=time.monotonic)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(self, workers: int) -> None:
        if self.stream is None or not self.total:
            return
        if not self.stream.isatty():
            self.stream.write(f"grading {self.total} submissions, {workers} at a time\n")
            self.stream.flush()
            return
        self._draw()
        threading.Thread(target=self._tick, name="batch-progress", daemon=True).start()

    def end(self) -> None:
        self._stop.set()

    def update(self, record: Record, running: int) -> None:
        with self._lock:
            self.done += 1
            self.running = running
            self.problems += record.status not in ("passed", "failed")
            self.last = (f"  last: {printable(record.student)} {record.grading.score:g}/{record.grading.max_score:g} "
                         f"{record.status}")
        if self.stream is None:
            return
        if self.stream.isatty():
            self._draw()
        else:
            self.stream.write(self._line() + "\n")
            self.stream.flush()

    def _line(self) -> str:
        elapsed = time.monotonic() - self.start
        eta = _clock(elapsed / self.done * (self.total - self.done)) if self.done else "?"
        width = 30
        bar = "#" * round(width * self.done / max(self.total, 1))
        return (f"[{bar:{width}}] {self.done}/{self.total}  {_clock(elapsed)} elapsed, ETA {eta}"
                f"  ({self.running} running, {self.problems} with errors){self.last}")

    def _draw(self) -> None:
        with self._lock:
            end = "\n" if self.done == self.total else ""
            self.stream.write("\r\x1b[2K" + self._line() + end)
            self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(1.0) and self.done < self.total:
            self._draw()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


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


class Scheduler:
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
        self.bar.begin(min(self.workers, len(pending)))
        try:
            records = [f.result() for f in futures]
        except BaseException:
            self.bar.end()  # Ctrl-C (or a bug): stop the gradings, record nothing for them
            self.stopping.set()
            for f in futures:
                f.cancel()
            with self.lock:
                for proc in self.procs.values():
                    proc.terminate()
            pool.shutdown(wait=True)
            raise
        pool.shutdown(wait=True)
        self.bar.end()
        return [r for r in records if r is not None]

    def _one(self, s: Submission, sha: str) -> Record | None:
        if self.stopping.is_set():
            return None
        slot = self.slots.get()
        began = time.monotonic()
        try:
            record, reason = self._supervise(self.job_for(s, sha, slot))
        except Exception as exc:  # e.g. this student's results cannot be written: their row says so, the rest go on
            record, reason = None, could_not_run(s, exc)
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
            self.bar.running = len(self.procs)
        try:
            record, reason = supervise(proc, job, self.limit)
        finally:
            with self.lock:
                self.procs.pop(job.student, None)
        if record is None and not self.stopping.is_set():
            log.warning("%s: %s (see %s/grading.log)", job.student, reason, job.student_dir)
        return record, reason


def could_not_run(s: Submission, exc: Exception) -> str:
    """Log why the batch could not run a student's grading (their file gone, their folder unwritable); the reason."""
    log.error("%s: the grading could not be run", s.student, exc_info=exc)
    return f"the batch could not run it ({type(exc).__name__}: {exc})"


def supervise(proc: multiprocessing.process.BaseProcess, job: Job, limit: float) -> tuple[Record | None, str]:
    """Wait for a started grading process, stopping it at `limit` seconds: (its record, '') or (None, why not)."""
    proc.join(limit)
    if proc.is_alive():
        reason = f"it ran longer than the batch limit of {limit:.0f} s"
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
    return None, reason
