"""Grading a class on a Ray cluster: each grading a Ray task, on whichever node has room.

    python -m graders batch ASSIGNMENT SUBMISSIONS --out RESULTS --ray ADDRESS

Everything but where the grading runs is the local batch's (graders.batch): discovery,
the copy of the bytes hashed (`job_for`, which writes `submission/` in the results
folder), the `Job`, crashed rows, the class's outputs. The executor sends the Job with
the copy's bytes (and the instructor's config text, inside the Job) to a Ray task that
asks for the grading's resources: `threads` CPUs, and 1/`gpu_jobs` of a GPU when the
device is CUDA. No shared filesystem is assumed. On its node the task writes the bytes
into a private temporary folder and runs `scheduler.grade_one` there, in a process of
its own under the same wall-clock limit as a local grading (`scheduler.supervise`), and
returns plain JSON: the record, the grading's log, the plots.

The driver trusts that reply no more than a local grading's record: `read_reply` checks
it against the Job and the driver's own effective checks (student, digest, check names,
kinds and points, statuses, flags, scores within bounds, PNG plots of bounded size); a
reply that fails is refused and the student gets a `crashed` row (graded again on the
next run), never its numbers. The driver then writes the student's files as a local
grading process does, `grading.json` last, so resuming, `--regrade`, the class's
outputs, the gradebook and the exit code are those of a local batch.

Faults: a node lost mid-batch costs only the gradings in flight on it, which Ray runs
again elsewhere (at most `RAY_RETRIES` more times); a grading process that dies or
overruns on its node is a `crashed` row, as locally, and so is a task that failed for good.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import math
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from graders.batch.records import SNAPSHOT, write_outputs
from graders.batch.scheduler import Job, Progress, available_cpus, could_not_run, grade_one, supervise
from graders.batch.submissions import BatchError, Submission
from graders.checks import Check
from graders.files import atomic_write
from graders.results import METRIC_ORDERS, STATUSES, CheckResult, Grading, Record, student_status

log = logging.getLogger(__name__)

RAY_RETRIES = 2  # runs of a grading after the first, when its node or worker process is lost
MAX_LOG_CHARS = 1 << 20  # the end of a node's grading.log that comes back
MAX_ARTIFACTS = 16
MAX_ARTIFACT_BYTES = 8 << 20
MAX_METRICS = 64
MAX_REPLY_BYTES = 4 * MAX_ARTIFACTS * MAX_ARTIFACT_BYTES
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ARTIFACT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.png")
# The fields of a reply, a record (Record.to_dict), a grading (Grading.to_dict) and a check's result
# (CheckResult): each is checked by name below; tests/test_batch_ray.py fails when the dataclasses grow.
REPLY_KEYS = {"record", "reason", "log", "artifacts", "node", "seconds"}
RECORD_KEYS = {"student", "sha256", "status", "graded_at", "grading"}
GRADING_KEYS = {"assignment", "submission", "device", "results", "seconds", "isolation", "artifacts",
                "internal_error", "unsafe_host", "score", "max_score", "flags"}
RESULT_KEYS = {"name", "points", "max_points", "status", "message", "seconds", "output", "kind", "flag", "withheld",
               "accepted", "metrics"}


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

    gpus = ray.get_gpu_ids() if task["job"]["device"] == "cuda" else []
    return grade_on_node(task, ray.get_runtime_context().get_node_id(), gpus[0] if gpus else None)


def make_task(job: Job, data: bytes, limit: float, preload: Sequence[str]) -> dict:
    """What travels to a node: the Job (its config text inside), the bytes of the copy to grade, the limit."""
    return {"job": dataclasses.asdict(job), "data": data, "limit": limit, "preload": list(preload),
            "code": code_fingerprint()}


def grade_on_node(task: dict, node: str = "", gpu: int | str | None = None) -> bytes:
    """Grade one submission as a local batch does, in a private temporary folder; the reply as JSON bytes.

    The folder mirrors the results folder: students/<student>/ with the copy in submission/.
    """
    began = time.monotonic()
    if task["code"] != code_fingerprint():
        return _reply(None, "this Ray node runs other grader code than the batch's driver "
                      "(install the same version on every node)", "", {}, node, began)
    sent = Job(**task["job"])
    with tempfile.TemporaryDirectory(prefix="grading-") as tmp:
        out = Path(tmp, "students", sent.student)
        file = out / SNAPSHOT / Path(sent.submission).name  # ASSIGNMENT.py or .ipynb, as the driver named it
        file.parent.mkdir(parents=True)
        file.write_bytes(task["data"])
        # grade_one sets CUDA_VISIBLE_DEVICES from job.gpu: the forkserver keeps the environment it started with
        job = dataclasses.replace(sent, submission=str(file), student_dir=str(out), gpu=gpu)
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



# ---------------------------------------------------------------- on the driver


def read_reply(raw: object, job: Job, checks: Sequence[Check]) -> Reply:
    """A node's reply, checked against the Job sent and the driver's own checks; Refused when it does not hold."""
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
    record = _record(data["record"], job, checks)
    _expect(set(artifacts) <= set(record.grading.artifacts), "a plot the grading did not list")
    return Reply(record, "", text[-MAX_LOG_CHARS:], artifacts, node[:100], data["seconds"])


def _record(data: object, job: Job, checks: Sequence[Check]) -> Record:
    """The record, rebuilt field by field: only what a local grading of this Job could have written."""
    _expect(isinstance(data, dict) and set(data) == RECORD_KEYS, "the record has other fields")
    _expect(data["student"] == job.student and data["sha256"] == job.sha256,
            "the record is for another student or another file")
    _expect(_number(data["graded_at"]), "graded_at must be a number")
    g = data["grading"]
    _expect(isinstance(g, dict) and set(g) == GRADING_KEYS, "the grading has other fields")
    _expect(g["assignment"] == job.assignment and g["device"] == job.device and g["submission"] == job.source,
            "another assignment, device or submission")
    _expect(isinstance(g["isolation"], str), "isolation is text")
    _expect(g["internal_error"] is None or isinstance(g["internal_error"], str), "internal_error is text or null")
    _expect(g["unsafe_host"] == job.unsafe_host, "unsafe_host is not the driver's")
    _expect(_number(g["seconds"]), "the grading's seconds must be a number")
    _expect(isinstance(g["artifacts"], list) and len(g["artifacts"]) <= MAX_ARTIFACTS
            and all(isinstance(a, str) and ARTIFACT_NAME.fullmatch(a) for a in g["artifacts"]), "bad plot names")
    results = g["results"]
    _expect(isinstance(results, list) and [r.get("name") if isinstance(r, dict) else None for r in results]
            == [c.name for c in checks], "the checks are not this assignment's checks, in its order")
    grading = Grading(job.assignment, job.source, job.device, seconds=g["seconds"],
                      isolation=g["isolation"], artifacts=list(g["artifacts"]), internal_error=g["internal_error"],
                      unsafe_host=job.unsafe_host, results=[_result(r, c) for r, c in zip(results, checks)])
    _expect(g["score"] == grading.score and g["max_score"] == grading.max_score and g["flags"] == grading.flags,
            "score, max_score or flags do not follow from the checks")
    _expect(data["status"] == student_status(grading), "the status does not follow from the checks")
    return Record(job.student, job.sha256, data["status"], grading, data["graded_at"])


def _result(r: dict, check: Check) -> CheckResult:
    _expect(set(r) == RESULT_KEYS, f"check {check.name}: other fields")
    _expect(r["kind"] == check.kind and r["max_points"] == check.points and _number(r["max_points"]),
            f"check {check.name}: its kind or points are not the driver's")
    _expect(r["status"] in STATUSES, f"check {check.name}: unknown status")
    _expect(_number(r["points"]) and r["points"] == (check.points if r["status"] == "passed" else 0),
            f"check {check.name}: {r['points']!r} points for a {r['status']!r} check worth {check.points}")
    # A flag withholds the check's points until the instructor accepts it, which only the driver does.
    flagged = r["status"] == "flagged"
    _expect(r["accepted"] is False and isinstance(r["flag"], str) and bool(r["flag"]) == flagged
            and _number(r["withheld"]) and r["withheld"] == (check.points if flagged else 0),
            f"check {check.name}: a flag that a grading does not raise")
    _expect(_number(r["seconds"]) and isinstance(r["message"], str) and isinstance(r["output"], str),
            f"check {check.name}: seconds, message or output of the wrong type")
    return CheckResult(check.name, r["points"], check.points, r["status"], r["message"], r["seconds"], r["output"],
                       check.kind, r["flag"], r["withheld"], False, _metrics(r["metrics"], check))


def _metrics(metrics: object, check: Check) -> dict:
    """{name: {"value": number, "order": "asc" | "desc"}}, as graders.contract's `metric` publishes them."""
    _expect(isinstance(metrics, dict) and len(metrics) <= MAX_METRICS, f"check {check.name}: bad metrics")
    for name, m in metrics.items():
        _expect(len(name) <= 100 and isinstance(m, dict) and set(m) == {"value", "order"}
                and isinstance(m["value"], (int, float)) and not isinstance(m["value"], bool)
                and m["order"] in METRIC_ORDERS, f"check {check.name}: bad metric {name[:100]!r}")
    return {name: {"value": float(m["value"]), "order": m["order"]} for name, m in metrics.items()}

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
    """The batch's gradings as Ray tasks: `run(pending)` as the local `Scheduler` does it.

    `job_for` and `crashed` are the batch's own (graders.batch.run_batch), as for the
    Scheduler: the copy graded and its Job, and a row of zeros. `ray` is connected
    (`connected`); `window` (-j) bounds the gradings in flight, None: all queued.
    """

    def __init__(self, ray, job_for: Callable[[Submission, str, int | None], Job], limit: float,
                 crashed: Callable[[Submission, str, str, float], Record], bar: Progress,
                 on_record: Callable[[Record], None] | None, preload: list[str], checks: Sequence[Check], *,
                 device: str, threads: int = 1, gpu_jobs: int = 1, window: int | None = None):
        self.ray, self.job_for, self.limit, self.crashed, self.bar = ray, job_for, limit, crashed, bar
        self.on_record, self.preload, self.checks, self.window = on_record, preload, checks, window
        gpu = 1 / max(1, gpu_jobs) if device == "cuda" else 0
        self.remote = ray.remote(_grade_task).options(num_cpus=threads, num_gpus=gpu, max_retries=RAY_RETRIES,
                                                      retry_exceptions=False)
        resources = ray.cluster_resources()
        self.room = max(1, int(resources.get("CPU", 0) // threads))  # gradings at once, now (for the progress line)
        log.info("Ray cluster: %s; each grading asks for %d CPU%s", resources, threads, f" and {gpu:g} GPU" if gpu else "")

    def run(self, pending: list[tuple[Submission, str]]) -> list[Record]:
        self.bar.begin(min(len(pending), self.window or self.room))
        try:
            return self._grade(pending)
        finally:
            self.bar.end()

    def _grade(self, pending: list[tuple[Submission, str]]) -> list[Record]:
        queue, inflight, done = list(pending), {}, []
        try:
            while queue or inflight:
                while queue and (self.window is None or len(inflight) < self.window):
                    s, sha = queue.pop(0)
                    began = time.monotonic()
                    try:
                        job = self.job_for(s, sha, None)  # the GPU is the one Ray gives the task
                        data = Path(job.submission).read_bytes()  # the copy job_for wrote: the bytes hashed
                        ref = self.remote.remote(make_task(job, data, self.limit, self.preload))
                    except Exception as exc:  # as in the Scheduler: this student's row says why, the rest go on
                        self._finished(self.crashed(s, sha, could_not_run(s, exc), time.monotonic() - began), done,
                                       len(inflight))
                        continue
                    inflight[ref] = (s, sha, job, began)
                if not inflight:
                    continue
                ready, _ = self.ray.wait(list(inflight), num_returns=1)
                for ref in ready:
                    s, sha, job, began = inflight.pop(ref)
                    self._finished(self._collect(ref, s, sha, job, began), done, len(inflight))
        except BaseException:  # Ctrl-C (or a bug): stop the gradings in flight, record nothing for them
            for ref in inflight:
                with contextlib.suppress(Exception):
                    self.ray.cancel(ref, force=True)
            raise
        return done

    def _finished(self, record: Record, done: list[Record], running: int) -> None:
        self.bar.update(record, running)
        if self.on_record:
            self.on_record(record)
        done.append(record)

    def _collect(self, ref, s: Submission, sha: str, job: Job, began: float) -> Record:
        """The student's row from the task's reply, written as a local grading process writes it."""
        try:
            reply = read_reply(self.ray.get(ref), job, self.checks)
        except Refused as exc:
            log.error("%s: the reply from its Ray node was refused: %s", s.student, exc)
            return self._crashed(s, sha, job, f"the result sent back by its Ray node was refused ({exc})",
                                 time.monotonic() - began, f"refused reply: {exc}\n")
        except self.ray.exceptions.RayError as exc:
            reason = f"its Ray task failed ({type(exc).__name__}, after at most {RAY_RETRIES} retries)"
            log.warning("%s: %s", s.student, reason)
            return self._crashed(s, sha, job, reason, time.monotonic() - began, f"{exc}\n")
        text = f"graded on Ray node {reply.node}\n{reply.log}"
        if reply.record is None:
            log.warning("%s: %s (on Ray node %s; see %s/grading.log)", s.student, reply.reason, reply.node,
                        job.student_dir)
            return self._crashed(s, sha, job, reply.reason, reply.seconds, text)
        try:
            write_student(Path(job.student_dir), reply.record, text, reply.artifacts)
        except Exception as exc:  # as when a local grading process cannot write its outputs
            return self.crashed(s, sha, could_not_run(s, exc), reply.seconds)
        return reply.record

    def _crashed(self, s: Submission, sha: str, job: Job, reason: str, seconds: float, text: str) -> Record:
        """The batch's `crashed` row, with the node's log (a local grading process leaves its own)."""
        with contextlib.suppress(OSError):
            write_student(Path(job.student_dir), None, text, {})
        return self.crashed(s, sha, reason, seconds)


def write_student(student_dir: Path, record: Record | None, text: str, artifacts: dict[str, bytes]) -> None:
    """What a grading process leaves in a student's folder: the plots, the log, then the outputs
    with grading.json last (which marks the student done; none when `record` is None)."""
    shutil.rmtree(student_dir / "artifacts", ignore_errors=True)  # a regrade must not show the old plots
    if artifacts:
        (student_dir / "artifacts").mkdir()
        for name, data in artifacts.items():
            atomic_write(student_dir / "artifacts" / name, data)
    atomic_write(student_dir / "grading.log", text)
    if record is not None:
        write_outputs(student_dir, record)
