"""Batch grading on Ray: what a node sends back is checked, faults become rows, and a real two-node cluster
(on 127.0.0.1) grades a class exactly as the local batch does, even when a node dies mid-batch."""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import ROOT, solution_source
from test_batch import FAST_CONFIG, MAX_SCORE

from graders import assignments, batch
from graders.batch import ray_executor
from graders.batch.records import read_record
from graders.batch.scheduler import Progress
from graders.batch.submissions import Submission
from graders.config import Config
from graders.submission import MAX_BYTES, SubmissionFormatError

CHECKS = assignments.grader("bandits").checks
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


def _task(tmp_path: Path, source: str, config: str | None = FAST_CONFIG, student: str = "alice") -> dict:
    data = source.encode()
    return {"assignment": "bandits", "student": student, "submission": str(tmp_path / f"{student}.py"),
            "sha256": hashlib.sha256(data).hexdigest(), "file_name": f"{student}.py", "data": data,
            "config_text": config, "device": "cpu", "preload": ["graders.batch", "graders.runner"],
            "limit": 120.0, "code": ray_executor.code_fingerprint()}


@pytest.fixture(scope="module")
def genuine(tmp_path_factory):
    """(task, reply bytes) of a real grading of the reference, run as a Ray node runs it (without Ray)."""
    task = _task(tmp_path_factory.mktemp("genuine"), solution_source("bandits"))
    return task, ray_executor.grade_on_node(task, node="node-a")


def _forged(reply: bytes, edit) -> bytes:
    data = json.loads(reply)
    edit(data)
    return json.dumps(data).encode()


def test_a_genuine_reply_is_accepted_as_the_record_of_a_local_grading(genuine):
    task, reply = genuine
    got = ray_executor.read_reply(reply, task, CHECKS)
    assert got.record.status == "passed" and got.record.grading.score == MAX_SCORE and got.node == "node-a"
    assert got.record.sha256 == task["sha256"] and got.record.grading.submission == task["submission"]
    assert "testbed_ucb" in got.log


def _set_points(data, name, points):
    next(r for r in data["record"]["grading"]["results"] if r["name"] == name)["points"] = points


FORGERIES = {
    "score above the maximum": lambda d: _set_points(d, "testbed_ucb", 100),
    "points for a failed check": lambda d: next(r for r in d["record"]["grading"]["results"]
                                                if r["name"] == "testbed_ucb").update(status="failed"),
    "a check worth more": lambda d: next(r for r in d["record"]["grading"]["results"]
                                         if r["name"] == "testbed_ucb").update(points=50, max_points=50),
    "an unknown check": lambda d: d["record"]["grading"]["results"].append(
        dict(d["record"]["grading"]["results"][0], name="bonus")),
    "a missing check": lambda d: d["record"]["grading"]["results"].pop(),
    "another student": lambda d: d["record"].update(student="mallory"),
    "another file": lambda d: d["record"].update(sha256="0" * 64),
    "a status that does not follow": lambda d: d["record"].update(status="failed"),
    "an extra field": lambda d: d["record"]["grading"].update(bonus=5),
    "a plot that is not a PNG": lambda d: (d["record"]["grading"]["artifacts"].append("curve.png"),
                                           d["artifacts"].update({"curve.png": base64.b64encode(b"<svg>").decode()})),
    "a plot it did not list": lambda d: d["artifacts"].update({"curve.png": base64.b64encode(PNG).decode()}),
    "a plot named with a path": lambda d: (d["record"]["grading"]["artifacts"].append("../grading.json"),),
    "a number that is not": lambda d: d["record"]["grading"]["results"][0].update(seconds=float("nan")),
}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_forged_reply_is_refused(genuine, forgery):
    task, reply = genuine
    with pytest.raises(ray_executor.Refused):
        ray_executor.read_reply(_forged(reply, FORGERIES[forgery]), task, CHECKS)


def test_refused_garbage(genuine):
    task, _ = genuine
    for raw in (b"not json", b"[]", "a str", json.dumps({"record": None}).encode()):
        with pytest.raises(ray_executor.Refused):
            ray_executor.read_reply(raw, task, CHECKS)


def test_plots_come_back_as_checked_bytes(genuine):
    task, reply = genuine

    def add_plot(d):
        d["record"]["grading"]["artifacts"].append("learning_curve_seed1.png")
        d["artifacts"]["learning_curve_seed1.png"] = base64.b64encode(PNG).decode()

    got = ray_executor.read_reply(_forged(reply, add_plot), task, CHECKS)
    assert got.artifacts == {"learning_curve_seed1.png": PNG}


def _executor(tmp_path: Path, replies: dict) -> tuple[ray_executor.RayExecutor, SimpleNamespace]:
    """A RayExecutor whose `ray` hands back the given replies (or raises what they are)."""
    (tmp_path / "students").mkdir(exist_ok=True)
    executor = ray_executor.RayExecutor("local", Config.parse(FAST_CONFIG).effective("bandits"), FAST_CONFIG, "cpu",
                                        tmp_path / "students", Progress(1), None, preload=[], margin=60)

    def get(ref):
        if isinstance(replies[ref], Exception):
            raise replies[ref]
        return replies[ref]

    return executor, SimpleNamespace(get=get, exceptions=SimpleNamespace(RayError=RuntimeError))


def _collect(tmp_path, task, raw):
    executor, ray = _executor(tmp_path, {"ref": raw})
    (tmp_path / "students" / task["student"]).mkdir(parents=True, exist_ok=True)
    record = executor._collect(ray, "ref", Submission(task["student"], Path(task["submission"])), task, time.monotonic())
    assert read_record(tmp_path / "students" / task["student"]) == record  # written, grading.json last
    return record


def test_a_refused_reply_is_a_grader_error_row_with_no_points(tmp_path, genuine):
    task, reply = genuine
    record = _collect(tmp_path, task, _forged(reply, FORGERIES["score above the maximum"]))
    assert record.status == "grader_error" and record.grading.score == 0 and record.grading.internal_error
    assert "refused" in record.grading.results[0].message


def test_a_genuine_reply_is_written_as_a_local_grading_writes_it(tmp_path, genuine):
    task, reply = genuine
    record = _collect(tmp_path, task, reply)
    assert record.status == "passed" and record.grading.score == MAX_SCORE
    student = tmp_path / "students" / "alice"
    assert {p.name for p in student.iterdir()} >= {"grading.json", "results.json", "feedback.html", "grading.log"}
    assert "graded on Ray node node-a" in (student / "grading.log").read_text()


def test_a_task_that_failed_for_good_is_a_crashed_row(tmp_path, genuine):
    task, _ = genuine
    record = _collect(tmp_path, task, RuntimeError("node died"))
    assert record.status == "crashed" and record.grading.score == 0
    assert "Ray task failed" in record.grading.results[0].message


def test_a_grading_process_that_dies_on_its_node_is_a_crashed_row(tmp_path):
    task = _task(tmp_path, solution_source("bandits"), config="[bandits\nbroken = ")
    raw = ray_executor.grade_on_node(task)
    reply = ray_executor.read_reply(raw, task, CHECKS)
    assert reply.record is None and "exited with code 1" in reply.reason
    assert "cannot read the instructor config" in reply.log
    record = _collect(tmp_path, task, raw)
    assert record.status == "crashed" and "exited with code 1" in record.grading.results[0].message


def test_a_node_with_other_grader_code_grades_nothing(tmp_path):
    task = dict(_task(tmp_path, solution_source("bandits")), code="0" * 64)
    reply = ray_executor.read_reply(ray_executor.grade_on_node(task), task, CHECKS)
    assert reply.record is None and "other grader code" in reply.reason


def test_the_driver_reads_the_file_itself_never_a_link(tmp_path):
    (tmp_path / "alice.py").write_text("x = 1\n")
    assert ray_executor.read_submission(tmp_path / "alice.py", "bandits") == ("alice.py", b"x = 1\n")
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "bandits.py").symlink_to(tmp_path / "alice.py")
    (tmp_path / "carol.py").symlink_to(tmp_path / "alice.py")
    (tmp_path / "dave.py").write_bytes(b"#" * (MAX_BYTES + 1))
    for name, message in [("bob", "symbolic link"), ("carol.py", "symbolic link"), ("dave.py", "larger than")]:
        with pytest.raises(SubmissionFormatError, match=message):
            ray_executor.read_submission(tmp_path / name, "bandits")


def test_the_device_follows_the_cluster():
    assert ray_executor.cluster_device("auto", 0) == "cpu"
    assert ray_executor.cluster_device("auto", 2) == "cuda"
    assert ray_executor.cluster_device("cpu", 2) == "cpu"
    assert ray_executor.cluster_device("cuda", 0) == "cuda"  # an autoscaler may add one: the tasks wait


# ---------------------------------------------------------------- a real cluster on this machine


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "grades.csv", newline="") as f:
        return {row["student"]: {k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)}


def _checks(out: Path, student: str) -> list[tuple]:
    record = read_record(out / "students" / student)
    return [(r.name, r.points, r.max_points, r.status, r.message) for r in record.grading.results]


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        children.setdefault(int(stat[stat.rindex(")") + 2:].split()[1]), []).append(int(entry))
    return children


def _descendants(pid: int) -> list[int]:
    children, found, frontier = _children(), [], [pid]
    while frontier:
        frontier = [c for p in frontier for c in children.get(p, [])]
        found += frontier
    return found


def _gradings(pids: list[int]) -> dict[int, str]:
    """{pid: student} of the grading processes among `pids` (a grading process's stdout is its grading.log)."""
    found = {}
    for pid in pids:
        try:
            log = os.readlink(f"/proc/{pid}/fd/1")
            if log.endswith("/out/grading.log"):
                found[pid] = Path(os.listdir(Path(log).parent.parent / "submission")[0]).stem
        except OSError:
            continue
    return found


@pytest.fixture
def ray_cluster(monkeypatch):
    """A head (1 CPU) and a second node (1 CPU) on 127.0.0.1, with a token of their own; stopped whatever happens.

    Ray's own `ray start` turns 127.0.0.1 into the machine's address and refuses a second
    node in its loopback-only mode; ray.cluster_utils.Cluster (Ray's multi-node-on-one-machine
    harness) starts the same processes (GCS, raylets, agents) on 127.0.0.1.
    """
    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed (pip install '.[cluster]')")
    stubs = Path(tempfile.mkdtemp(prefix="stubs"))
    python_path = ray_executor.lean_python_path(stubs, os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    for name, value in {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                        "RAY_raylet_start_wait_time_s": "120",
                        "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
                        "PYTHONPATH": python_path}.items():
        monkeypatch.setenv(name, value)
    import ray._private.ray_constants  # after the variables: Ray reads some (the token's) when imported
    from ray.cluster_utils import Cluster

    monkeypatch.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", False)
    cluster, temp_dirs = None, []
    try:
        for attempt in range(3):
            temp_dirs.append(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths live there
            cluster = Cluster()
            try:
                cluster.add_node(num_cpus=1, include_dashboard=False, include_log_monitor=False, no_monitor=True,
                                 temp_dir=temp_dirs[-1])
                second = cluster.add_node(num_cpus=1)
                break
            except Exception:  # a node whose agents missed Ray's 15 s start-up window: a busy machine
                cluster.shutdown()
                _kill_children_using(temp_dirs[-1])
                if attempt == 2:
                    raise
        yield cluster, second
    finally:
        if cluster is not None:
            cluster.shutdown()
        for path in [*temp_dirs, stubs]:
            shutil.rmtree(path, ignore_errors=True)


def _kill_children_using(path: str) -> None:
    """Kill this process's children whose command line names `path` (a Ray node that failed to start)."""
    for pid in _children().get(os.getpid(), []):
        with contextlib.suppress(OSError):
            if path.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


def test_a_ray_cluster_that_loses_a_node_mid_batch_grades_like_the_local_batch(tmp_path, ray_cluster):
    cluster, second = ray_cluster
    subs = tmp_path / "submissions"
    subs.mkdir()
    students = ["s1", "s2", "s3", "s4", "dave"]
    for student in students[:-1]:
        (subs / f"{student}.py").write_text(solution_source("bandits"))
    (subs / "dave.py").write_text("import os\nos._exit(3)\n")  # kills its worker at import: an error row
    config = tmp_path / "config.toml"
    config.write_text(FAST_CONFIG)
    local = batch.run_batch("bandits", subs, tmp_path / "local", jobs=2, device="cpu", config_path=config)
    assert sorted(local.graded) == sorted(students)

    out = tmp_path / "ray"
    command = [sys.executable, "-m", "graders", "batch", "bandits", str(subs), "--out", str(out), "--device", "cpu",
               "--config", str(config), "--ray", cluster.address]
    driver = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        raylet = second.all_processes["raylet"][0].process.pid
        deadline, killed, node = time.monotonic() + 400, {}, []
        while not killed and driver.poll() is None and time.monotonic() < deadline:
            node = _descendants(raylet)
            killed = _gradings(node)
            time.sleep(0.02)
        assert killed, "no grading ran on the second node"
        # The node is lost: its raylet, and its Ray workers with the gradings they run (a Ray worker
        # whose raylet alone dies finishes its task and returns it: nothing would be lost).
        for pid in [raylet, *node]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        output, _ = driver.communicate(timeout=400)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, output
    assert "graded 5, skipped 0" in output
    assert _rows(out) == _rows(tmp_path / "local")  # same points per check, total and status; timing aside
    for student in students:
        assert _checks(out, student) == _checks(tmp_path / "local", student), student
    for student in killed.values():  # the grading lost with the node was run again, on the head
        log = (out / "students" / student / "grading.log").read_text()
        assert log.startswith(f"graded on Ray node {cluster.head_node.node_id}"), log[:200]

    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "graded 0, skipped 5" in again.stdout  # resumes as the local batch does
