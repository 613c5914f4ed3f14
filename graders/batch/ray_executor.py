"""Grading a class on a Ray cluster: each grading a Ray task, on whichever node has room.

    python -m graders batch ASSIGNMENT SUBMISSIONS --out RESULTS --ray ADDRESS

The driver (the batch's process) reads each submission once, the file itself and never
through a link, and sends its bytes with the instructor's config text to a Ray task that
asks for the grading's resources: `threads` CPUs, and 1/`gpu_jobs` of a GPU when the
device is CUDA. No shared filesystem is assumed. On its node the task writes the file
into a private temporary folder and runs `scheduler.grade_one` there, in a process of
its own under the same wall-clock limit as a local grading (`scheduler.supervise`), and
returns plain JSON: the record, the grading's log, the plots.

The driver trusts that reply no more than a local grading's record: `read_reply` checks
it against the driver's own effective checks (student, digest, check names, kinds and
points, statuses, scores within bounds, PNG plots of bounded size); a reply that fails
is refused and the student gets a `grader_error` row, never its numbers. The driver then
writes the student's files as a local grading does, `grading.json` last, so resuming,
`--regrade`, the class's outputs, the gradebook and the exit code are those of a local batch.

Faults: a node lost mid-batch costs only the gradings in flight on it, which Ray runs
again elsewhere (at most `RAY_RETRIES` more times); a grading process that dies or
overruns on its node is a `crashed` row, as locally, and so is a task that failed for good.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import logging
import math
import multiprocessing
import os
import re
import shutil
import stat
import sys
import tempfile
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from graders.batch.records import crashed_record, write_outputs
from graders.batch.scheduler import Job, Progress, available_cpus, grade_one, supervise
from graders.batch.submissions import BatchError, Submission
from graders.checks import Check
from graders.config import Effective
from graders.files import atomic_write
from graders.results import STATUSES, CheckResult, Grading, Record, student_status
from graders.submission import MAX_BYTES, SubmissionFormatError, find_file

log = logging.getLogger(__name__)

RAY_RETRIES = 2  # runs of a grading after the first, when its node or worker process is lost
MAX_LOG_CHARS = 1 << 20  # the end of a node's grading.log that comes back
MAX_ARTIFACTS = 16
MAX_ARTIFACT_BYTES = 8 << 20
MAX_REPLY_BYTES = 4 * MAX_ARTIFACTS * MAX_ARTIFACT_BYTES
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ARTIFACT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.png")
REPLY_KEYS = {"record", "reason", "log", "artifacts", "node", "seconds"}
RECORD_KEYS = {"student", "sha256", "status", "graded_at", "grading"}
GRADING_KEYS = {"assignment", "submission", "device", "results", "seconds", "isolation", "artifacts",
                "internal_error", "score", "max_score"}
RESULT_KEYS = {"name", "points", "max_points", "status", "message", "seconds", "output", "kind"}


class Refused(ValueError):
    """A node's reply that breaks the contract: it is never written as anyone's grade."""


@dataclass
class Reply:
    """What a grading task sent back, once checked."""

    record: Record | None  # None: the grading process died or overran on the node (`reason` says which)
    reason: str
    log: str
    artifacts: dict[str, bytes]
    node: str
    seconds: float


# ---------------------------------------------------------------- on the node


def _grade_task(task: dict) -> bytes:
    """The Ray task: `grade_on_node` with the node's id and the GPU Ray gave it."""
    import ray

    gpus = ray.get_gpu_ids() if task["device"] == "cuda" else []
    return grade_on_node(task, ray.get_runtime_context().get_node_id(), gpus[0] if gpus else None)


def grade_on_node(task: dict, node: str = "", gpu: int | str | None = None) -> bytes:
    """Grade one submission as a local batch does, in a private temporary folder; the reply as JSON bytes."""
    began = time.monotonic()
    if task["code"] != code_fingerprint():
        return _reply(None, "this Ray node runs other grader code than the batch's driver "
                      "(install the same version on every node)", "", {}, node, began)
    with tempfile.TemporaryDirectory(prefix="grading-") as tmp:
        file = Path(tmp, "submission", task["file_name"])
        file.parent.mkdir()
        file.write_bytes(task["data"])
        out = Path(tmp, "out")
        out.mkdir()
        # grade_one sets CUDA_VISIBLE_DEVICES from job.gpu: the forkserver keeps the environment it started with
        job = Job(task["assignment"], task["student"], str(file), str(out), task["sha256"], task["device"],
                  task["config_text"], gpu)
        proc = _grading_processes(tuple(task["preload"])).Process(target=grade_one, args=(job,),
                                                                    name=f"grade-{job.student}")
        _start_without_main(proc)
        record, reason = supervise(proc, job, task["limit"])
        text = _tail(out / "grading.log")
        artifacts = _read_artifacts(out / "artifacts", record.grading.artifacts) if record else {}
    return _reply(record.to_dict() if record else None, reason, text, artifacts, node, began)


@functools.cache
def _grading_processes(preload: tuple[str, ...]):
    """Grading processes are forked from a server that imported the grader once (as in the local batch)."""
    mp = multiprocessing.get_context("forkserver")
    mp.set_forkserver_preload(list(preload))
    return mp


def _start_without_main(proc: multiprocessing.process.BaseProcess) -> None:
    """Start `proc` without making it run this process's main script again, as multiprocessing does.

    In a Ray worker that script is Ray's default_worker.py: importing Ray in every grading
    process would cost seconds. The grading needs nothing from it.
    """
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        proc.start()
    finally:
        sys.modules["__main__"] = main


@functools.cache
def code_fingerprint() -> str:
    """A digest of the grader's code (graders/ and graders_worker/): driver and nodes must run the same."""
    import graders
    import graders_worker

    h = hashlib.sha256()
    for package in (graders, graders_worker):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root.parent)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - MAX_LOG_CHARS))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _read_artifacts(folder: Path, names: Sequence[str]) -> dict[str, bytes]:
    """The plots the grading listed and wrote (the grader's own files), as bytes."""
    found = {}
    for name in names[:MAX_ARTIFACTS]:
        path = folder / name
        if ARTIFACT_NAME.fullmatch(name) and path.is_file() and path.stat().st_size <= MAX_ARTIFACT_BYTES:
            found[name] = path.read_bytes()
    return found


def _reply(record: dict | None, reason: str, text: str, artifacts: dict[str, bytes], node: str, began: float) -> bytes:
    return json.dumps({"record": record, "reason": reason, "log": text, "node": node,
                       "artifacts": {name: base64.b64encode(data).decode() for name, data in artifacts.items()},
                       "seconds": time.monotonic() - began}).encode()


# ---------------------------------------------------------------- on the driver


def read_submission(path: Path, assignment: str) -> tuple[str, bytes]:
    """(the file's name, its bytes): the file `find_file` picks, opened without following a link."""
    if path.is_symlink():
        raise SubmissionFormatError(f"{path.name} is a symbolic link: submit the file itself")
    file = find_file(path, assignment)
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if file.is_symlink():
            raise SubmissionFormatError(f"{file.name} is a symbolic link: submit the file itself") from None
        raise SubmissionFormatError(f"cannot read {file.name}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise SubmissionFormatError(f"{file.name} is not a regular file")
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise SubmissionFormatError(f"{file.name} is larger than {MAX_BYTES >> 20} MB")  # as submission.load says
    return file.name, data


def read_reply(raw: object, task: dict, checks: Sequence[Check]) -> Reply:
    """A node's reply, checked against what the driver sent and its own checks; Refused when it does not hold."""
    if not isinstance(raw, bytes) or len(raw) > MAX_REPLY_BYTES:
        raise Refused("the reply is not JSON bytes of a bounded size")
    try:
        data = json.loads(raw)
    except ValueError:
        raise Refused("the reply is not JSON") from None
    _expect(isinstance(data, dict) and set(data) == REPLY_KEYS, "the reply has other fields than a grading's")
    reason, text, node = data["reason"], data["log"], data["node"]
    _expect(all(isinstance(v, str) for v in (reason, text, node)), "reason, log and node must be text")
    _expect(_number(data["seconds"]), "seconds must be a number")
    _expect(isinstance(data["artifacts"], dict) and len(data["artifacts"]) <= MAX_ARTIFACTS, "too many plots")
    artifacts = {name: _png(name, b64) for name, b64 in data["artifacts"].items()}
    if data["record"] is None:
        _expect(bool(reason) and not artifacts, "no record and no reason")
        return Reply(None, reason[:1000], text[-MAX_LOG_CHARS:], {}, node[:100], data["seconds"])
    record = _record(data["record"], task, checks)
    _expect(set(artifacts) <= set(record.grading.artifacts), "a plot the grading did not list")
    return Reply(record, "", text[-MAX_LOG_CHARS:], artifacts, node[:100], data["seconds"])


def _record(data: object, task: dict, checks: Sequence[Check]) -> Record:
    """The record, rebuilt field by field: only what a local grading of this task could have written."""
    _expect(isinstance(data, dict) and set(data) == RECORD_KEYS, "the record has other fields")
    _expect(data["student"] == task["student"] and data["sha256"] == task["sha256"],
            "the record is for another student or another file")
    g = data["grading"]
    _expect(isinstance(g, dict) and set(g) == GRADING_KEYS, "the grading has other fields")
    _expect(g["assignment"] == task["assignment"] and g["device"] == task["device"], "another assignment or device")
    _expect(isinstance(g["submission"], str) and isinstance(g["isolation"], str), "submission and isolation are text")
    _expect(g["internal_error"] is None or isinstance(g["internal_error"], str), "internal_error is text or null")
    _expect(_number(g["seconds"]), "the grading's seconds must be a number")
    _expect(isinstance(g["artifacts"], list) and len(g["artifacts"]) <= MAX_ARTIFACTS
            and all(isinstance(a, str) and ARTIFACT_NAME.fullmatch(a) for a in g["artifacts"]), "bad plot names")
    results = g["results"]
    _expect(isinstance(results, list) and [r.get("name") if isinstance(r, dict) else None for r in results]
            == [c.name for c in checks], "the checks are not this assignment's checks, in its order")
    grading = Grading(task["assignment"], task["submission"], task["device"], seconds=g["seconds"],
                      isolation=g["isolation"], artifacts=list(g["artifacts"]), internal_error=g["internal_error"],
                      results=[_result(r, c) for r, c in zip(results, checks)])
    _expect(data["status"] == student_status(grading), "the status does not follow from the checks")
    return Record(task["student"], task["sha256"], data["status"], grading)


def _result(r: dict, check: Check) -> CheckResult:
    _expect(set(r) == RESULT_KEYS, f"check {check.name}: other fields")
    _expect(r["kind"] == check.kind and r["max_points"] == check.points and _number(r["max_points"]),
            f"check {check.name}: its kind or points are not the driver's")
    _expect(r["status"] in STATUSES, f"check {check.name}: unknown status")
    _expect(_number(r["points"]) and r["points"] == (check.points if r["status"] == "passed" else 0),
            f"check {check.name}: {r['points']!r} points for a {r['status']!r} check worth {check.points}")
    _expect(_number(r["seconds"]) and isinstance(r["message"], str) and isinstance(r["output"], str),
            f"check {check.name}: seconds, message or output of the wrong type")
    return CheckResult(check.name, r["points"], check.points, r["status"], r["message"], r["seconds"], r["output"],
                       check.kind)


def _png(name: object, b64: object) -> bytes:
    _expect(isinstance(name, str) and ARTIFACT_NAME.fullmatch(name) is not None, "a plot's name is not a PNG file name")
    _expect(isinstance(b64, str) and len(b64) <= MAX_ARTIFACT_BYTES * 4 // 3 + 4, f"plot {name} is too large")
    try:
        data = base64.b64decode(b64, validate=True)
    except ValueError:
        raise Refused(f"plot {name} is not base64") from None
    _expect(data.startswith(PNG_SIGNATURE), f"plot {name} is not a PNG")
    return data


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0


def _expect(condition: bool, why: str) -> None:
    if not condition:
        raise Refused(why)


def cluster_device(requested: str, gpus: float) -> str:
    """The device gradings ask for, from the cluster's GPUs (the driver may have none of its own)."""
    if requested not in ("auto", "cpu", "cuda"):
        raise BatchError(f"unknown device '{requested}' (auto, cpu or cuda)")
    if requested == "cuda" and not gpus:
        log.warning("--device cuda: the Ray cluster has no GPU now; the gradings wait for one (an autoscaler may add it)")
    return "cuda" if requested == "cuda" or (requested == "auto" and gpus) else "cpu"


@contextlib.contextmanager
def connected(address: str):
    """ray, connected to `address` until the block ends (`local`: a Ray started here, on 127.0.0.1 only)."""
    local = address == "local"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if local:
        # Ray's single-machine mode: every process binds to 127.0.0.1, not to the machine's address.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    python_path = os.environ.get("PYTHONPATH")
    with tempfile.TemporaryDirectory(prefix="graders-ray-") as stubs:
        lean = lean_python_path(Path(stubs), python_path or "")
        sys.path.insert(0, stubs)  # this process imports Ray (and jsonschema) lean too
        try:
            import ray
            import ray.exceptions  # noqa: F401  (ray.exceptions.RayError, in RayExecutor._collect)
        except ImportError:
            raise BatchError("--ray needs Ray: pip install '.[cluster]'") from None
        finally:
            sys.path.remove(stubs)
        options = dict(log_to_driver=False, logging_level=logging.WARNING)
        if local:
            ray._private.ray_constants.ENABLE_RAY_CLUSTER = False  # in case ray was imported before the variable was set
            options.update(num_cpus=available_cpus(), include_dashboard=False)
            os.environ["PYTHONPATH"] = lean  # for the processes of the Ray started here
        try:
            _init(ray, address, options, attempts=2 if local else 1)
            yield ray
        finally:
            ray.shutdown()
            if python_path is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = python_path


def _init(ray, address: str, options: dict, attempts: int) -> None:
    for attempt in range(1, attempts + 1):
        try:
            ray.init(address=address, **options)
            return
        except Exception as exc:  # Ray raises plain Exceptions too (a node whose agents did not start in time)
            if attempt == attempts:
                raise BatchError(f"cannot start or reach Ray at '{address}': {exc} (Ray's logs: "
                                 "/tmp/ray/session_latest/logs on the head node)") from None
            log.warning("starting Ray failed (%s); trying again", exc)
            ray.shutdown()


SLOW_UNNEEDED_MODULES = ("rfc3987_syntax",)


def lean_python_path(stubs: Path, python_path: str) -> str:
    """PYTHONPATH for Ray's processes, with stubs that make modules they never use fail to import.

    A Ray node starts five Python processes at once, and its raylet gives its agents 15 s
    to come up before it aborts. Each of them imports jsonschema, which imports
    rfc3987_syntax when it is installed (jupyter brings it), and that builds a parser at
    import: 3 CPU seconds per process, enough to miss the 15 s on a busy 2-core machine.
    jsonschema does without it (only its `iri` format checks go), as Ray does.
    """
    for name in SLOW_UNNEEDED_MODULES:
        (stubs / name).mkdir(exist_ok=True)
        (stubs / name / "__init__.py").write_text(f"raise ImportError('{name} is left out of Ray processes "
                                                   "(graders/batch/ray_executor.py: lean_python_path)')\n")
    return os.pathsep.join([str(stubs), *([python_path] if python_path else [])])


class RayExecutor:
    """The batch's gradings as Ray tasks: `run(pending)` as the local `Scheduler` does it."""

    def __init__(self, address: str, effective: Effective, config_text: str | None, device: str, students_dir: Path,
                 bar: Progress, on_record: Callable[[Record], None] | None, *, preload: list[str],
                 margin: float, jobs: int | None = None, gpu_jobs: int = 1):
        self.address, self.effective, self.config_text, self.requested = address, effective, config_text, device
        self.students_dir, self.bar, self.on_record, self.preload = students_dir, bar, on_record, preload
        self.margin, self.window, self.gpu_jobs = margin, jobs, max(1, gpu_jobs)
        self.device = "cpu"

    def run(self, pending: list[tuple[Submission, str]]) -> list[Record]:
        if not pending:
            return []
        with connected(self.address) as ray:
            self.device = cluster_device(self.requested, ray.cluster_resources().get("GPU", 0))
            threads = int(self.effective.settings["threads"])
            remote = ray.remote(_grade_task).options(
                num_cpus=threads, num_gpus=1 / self.gpu_jobs if self.device == "cuda" else 0,
                max_retries=RAY_RETRIES, retry_exceptions=False)
            log.info("Ray cluster at %s: %s; each grading asks for %d CPU%s", self.address,
                     ray.cluster_resources(), threads, f" and 1/{self.gpu_jobs} GPU" if self.device == "cuda" else "")
            return self._grade(ray, remote, pending)

    def _grade(self, ray, remote, pending: list[tuple[Submission, str]]) -> list[Record]:
        queue, inflight, done = list(pending), {}, []
        try:
            while queue or inflight:
                while queue and (self.window is None or len(inflight) < self.window):
                    s, sha = queue.pop(0)
                    task = self._task(s, sha)
                    if isinstance(task, Record):  # an unreadable submission: its row is written without a task
                        self._finished(task, done, len(inflight))
                    else:
                        inflight[remote.remote(task)] = (s, task, time.monotonic())
                if not inflight:
                    continue
                ready, _ = ray.wait(list(inflight), num_returns=1)
                for ref in ready:
                    s, task, began = inflight.pop(ref)
                    self._finished(self._collect(ray, ref, s, task, began), done, len(inflight))
        except BaseException:  # Ctrl-C (or a bug): stop the gradings in flight, record nothing for them
            for ref in inflight:
                ray.cancel(ref, force=True)
            raise
        return done

    def _finished(self, record: Record, done: list[Record], running: int) -> None:
        self.bar.update(record, running)
        if self.on_record:
            self.on_record(record)
        done.append(record)

    def _task(self, s: Submission, sha: str) -> dict | Record:
        """What travels to the node; or, for a submission the driver cannot read, that student's error row."""
        student_dir = self.students_dir / s.student
        student_dir.mkdir(exist_ok=True)
        submission = str(s.path.resolve())
        assignment = self.effective.name
        try:
            name, data = read_submission(s.path, assignment)
        except SubmissionFormatError as exc:  # the row a local grading writes when load() fails
            grading = Grading(assignment, submission, self.device, results=[
                CheckResult(c.name, 0.0, c.points, "error", str(exc), kind=c.kind) for c in self.effective.checks])
            record = Record(s.student, sha, student_status(grading), grading)
            self._write(student_dir, record, f"not sent to a node: {exc}\n", {})
            return record
        return {"assignment": assignment, "student": s.student, "submission": submission,
                "sha256": hashlib.sha256(data).hexdigest(), "file_name": name, "data": data,
                "config_text": self.config_text, "device": self.device, "preload": self.preload,
                "limit": self.effective.total_seconds(self.device) + self.margin, "code": code_fingerprint()}

    def _collect(self, ray, ref, s: Submission, task: dict, began: float) -> Record:
        """The student's row from the task's reply; written as a local grading writes it."""
        student_dir = self.students_dir / s.student
        try:
            reply = read_reply(ray.get(ref), task, self.effective.checks)
        except Refused as exc:
            log.error("%s: the reply from its Ray node was refused: %s", s.student, exc)
            return self._zero(s, task, "grader_error", f"the result sent back by its Ray node was refused ({exc})",
                              time.monotonic() - began, f"refused reply: {exc}\n")
        except ray.exceptions.RayError as exc:
            reason = f"its Ray task failed ({type(exc).__name__}, after at most {RAY_RETRIES} retries)"
            log.warning("%s: %s", s.student, reason)
            return self._zero(s, task, "crashed", reason, time.monotonic() - began, f"{exc}\n")
        header = f"graded on Ray node {reply.node}\n"
        if reply.record is None:
            log.warning("%s: %s (on Ray node %s; see %s/grading.log)", s.student, reply.reason, reply.node, student_dir)
            return self._zero(s, task, "crashed", reply.reason, reply.seconds, header + reply.log)
        self._write(student_dir, reply.record, header + reply.log, reply.artifacts)
        return reply.record

    def _zero(self, s: Submission, task: dict, status: str, reason: str, seconds: float, text: str) -> Record:
        """A row of zeros: `crashed` (the grading died, overran or was lost) or `grader_error` (a refused reply)."""
        record = crashed_record(s.student, task["sha256"], self.effective.checks, task["assignment"],
                                Path(task["submission"]), task["device"], reason, seconds)
        if status == "grader_error":
            record.status, record.grading.internal_error = status, reason
        self._write(self.students_dir / s.student, record, text, {})
        return record

    @staticmethod
    def _write(student_dir: Path, record: Record, text: str, artifacts: dict[str, bytes]) -> None:
        """The plots and the log, then the outputs with grading.json last (which marks the student done)."""
        shutil.rmtree(student_dir / "artifacts", ignore_errors=True)  # a regrade must not show the old plots
        if artifacts:
            (student_dir / "artifacts").mkdir()
            for name, data in artifacts.items():
                atomic_write(student_dir / "artifacts" / name, data)
        atomic_write(student_dir / "grading.log", text)
        write_outputs(student_dir, record)

