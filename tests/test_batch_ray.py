"""Batch grading on Ray: what a node sends back is checked, faults become rows, and a real two-node cluster
(on 127.0.0.1) grades a class exactly as the local batch does, even when a node dies mid-batch."""

from __future__ import annotations

import base64
import contextlib
import csv
import dataclasses
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

from graders import assignments
from graders.batch import ray_executor, ray_reply
from graders.batch.records import crashed_record, read_record, write_outputs
from graders.batch.scheduler import Job, Progress
from graders.batch.submissions import Submission
from graders.results import CheckResult, Grading, Record

CHECKS = assignments.grader("bandits").checks
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


def _job(tmp_path: Path, source: str, config: str | None = FAST_CONFIG, student: str = "alice") -> tuple[Job, dict]:
    """(the Job the batch makes for a student, the task sent for it), as graders.batch.run_batch makes them."""
    data = source.encode()
    student_dir = tmp_path / "students" / student
    job = Job("bandits", student, str(student_dir / "submission" / "bandits.py"), str(student_dir),
              hashlib.sha256(data).hexdigest(), "cpu", config, None, f"{student}.py")
    return job, ray_executor.make_task(job, data, 120.0, ["graders.batch", "graders.runner"])


@pytest.fixture(scope="module")
def genuine(tmp_path_factory):
    """(job, reply bytes) of a real grading of the reference, run as a Ray node runs it (without Ray)."""
    job, task = _job(tmp_path_factory.mktemp("genuine"), solution_source("bandits"))
    return job, ray_executor.grade_on_node(task, node="node-a")


def _forged(reply: bytes, edit) -> bytes:
    data = json.loads(reply)
    edit(data)
    return json.dumps(data).encode()


def test_the_reply_checks_know_every_field_of_a_record():
    """A field added to the results must be checked (and kept) by read_reply, or Ray rows would lose it."""
    assert ray_reply.RESULT_KEYS == {f.name for f in dataclasses.fields(CheckResult)}
    assert ray_reply.GRADING_KEYS == set(Grading("a", "b", "cpu").to_dict())
    assert ray_reply.RECORD_KEYS == set(Record("s", "", "passed", Grading("a", "b", "cpu")).to_dict())


def test_a_genuine_reply_is_accepted_as_the_record_of_a_local_grading(genuine):
    job, reply = genuine
    got = ray_reply.read_reply(reply, job, CHECKS)
    assert got.record.status == "passed" and got.record.grading.score == MAX_SCORE and got.node == "node-a"
    assert got.record.sha256 == job.sha256 and got.record.grading.submission == "alice.py"
    assert got.record.to_dict() == json.loads(reply)["record"]  # nothing lost on the way
    assert "testbed_ucb" in got.log


def _result(data, name):
    return next(r for r in data["record"]["grading"]["results"] if r["name"] == name)


def _flag(data, name="testbed_ucb"):
    """The edit a grading that flagged `name` would have made (graders.runner)."""
    r = _result(data, name)
    r.update(status="flagged", points=0, flag="learning not seen", withheld=r["max_points"],
             message="FLAG for the instructor: learning not seen")
    g = data["record"]["grading"]
    g["score"] -= r["max_points"]
    g["flags"] = [f"{name}: learning not seen"]
    data["record"]["status"] = "flagged"


FORGERIES = {
    "score above the maximum": lambda d: _result(d, "testbed_ucb").update(points=100),
    "points for a failed check": lambda d: _result(d, "testbed_ucb").update(status="failed"),
    "a check worth more": lambda d: _result(d, "testbed_ucb").update(points=50, max_points=50),
    "an unknown check": lambda d: d["record"]["grading"]["results"].append(
        dict(d["record"]["grading"]["results"][0], name="bonus")),
    "a missing check": lambda d: d["record"]["grading"]["results"].pop(),
    "another student": lambda d: d["record"].update(student="mallory"),
    "another file": lambda d: d["record"].update(sha256="0" * 64),
    "another submission": lambda d: d["record"]["grading"].update(submission="mallory.py"),
    "a status that does not follow": lambda d: d["record"].update(status="failed"),
    "a score that does not follow": lambda d: d["record"]["grading"].update(score=1000),
    "an extra field": lambda d: d["record"]["grading"].update(bonus=5),
    "a plot that is not a PNG": lambda d: (d["record"]["grading"]["artifacts"].append("curve.png"),
                                           d["artifacts"].update({"curve.png": base64.b64encode(b"<svg>").decode()})),
    "a plot it did not list": lambda d: d["artifacts"].update({"curve.png": base64.b64encode(PNG).decode()}),
    "a plot named with a path": lambda d: (d["record"]["grading"]["artifacts"].append("../grading.json"),),
    "a number that is not": lambda d: d["record"]["grading"]["results"][0].update(seconds=float("nan")),
    "a flag it accepted itself": lambda d: (_flag(d), _result(d, "testbed_ucb").update(accepted=True)),
    "a flag on a passed check": lambda d: _result(d, "testbed_ucb").update(flag="review me"),
    "withheld points of no flag": lambda d: _result(d, "testbed_ucb").update(withheld=5),
    "a metric that is not a number": lambda d: _result(d, "testbed_ucb").update(
        metrics={"reward": {"value": "high", "order": "desc"}}),
}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_forged_reply_is_refused(genuine, forgery):
    job, reply = genuine
    with pytest.raises(ray_reply.Refused):
        ray_reply.read_reply(_forged(reply, FORGERIES[forgery]), job, CHECKS)


def test_refused_garbage(genuine):
    job, _ = genuine
    for raw in (b"not json", b"[]", "a str", json.dumps({"record": None}).encode()):
        with pytest.raises(ray_reply.Refused):
            ray_reply.read_reply(raw, job, CHECKS)


def test_plots_flags_and_metrics_come_back_as_a_local_grading_wrote_them(genuine):
    job, reply = genuine

    def edit(d):
        d["record"]["grading"]["artifacts"].append("learning_curve_seed1.png")
        d["artifacts"]["learning_curve_seed1.png"] = base64.b64encode(PNG).decode()
        _flag(d)
        _result(d, "testbed_epsilon_greedy").update(metrics={"mean_reward": {"value": -1.5, "order": "desc"}})

    got = ray_reply.read_reply(_forged(reply, edit), job, CHECKS)
    assert got.artifacts == {"learning_curve_seed1.png": PNG}
    assert got.record.status == "flagged" and got.record.grading.flags == ["testbed_ucb: learning not seen"]
    assert got.record.grading.results[[c.name for c in CHECKS].index("testbed_epsilon_greedy")].metrics == {
        "mean_reward": {"value": -1.5, "order": "desc"}}


def _executor(tmp_path: Path, replies: dict) -> ray_executor.RayExecutor:
    """A RayExecutor whose `ray` hands back the given replies (or raises what they are); crashed rows as the batch's."""

    def get(ref):
        if isinstance(replies[ref], Exception):
            raise replies[ref]
        return replies[ref]

    def crashed(s: Submission, sha: str, reason: str, seconds: float) -> Record:
        record = crashed_record(s.student, sha, CHECKS, "bandits", s.shown, "cpu", reason, seconds)
        write_outputs(tmp_path / "students" / s.student, record)
        return record

    ray = SimpleNamespace(get=get, exceptions=SimpleNamespace(RayError=RuntimeError), cluster_resources=dict,
                          remote=lambda fn: SimpleNamespace(options=lambda **_: None))
    return ray_executor.RayExecutor(ray, None, 120.0, crashed, Progress(1), None, [], CHECKS, device="cpu")


def _collect(tmp_path, job, raw):
    Path(job.student_dir).mkdir(parents=True, exist_ok=True)
    s = Submission(job.student, tmp_path, (job.source,), job.sha256)
    record = _executor(tmp_path, {"ref": raw})._collect("ref", s, job.sha256, job, time.monotonic())
    assert read_record(Path(job.student_dir)) == record  # written, grading.json last
    return record


def test_a_refused_reply_is_a_crashed_row_with_no_points(tmp_path, genuine):
    job, reply = genuine
    job = dataclasses.replace(job, student_dir=str(tmp_path / "students" / job.student))
    record = _collect(tmp_path, job, _forged(reply, FORGERIES["score above the maximum"]))
    assert record.status == "crashed" and record.grading.score == 0  # graded again on the next run
    assert "refused" in record.grading.results[0].message


def test_a_genuine_reply_is_written_as_a_local_grading_writes_it(tmp_path, genuine):
    job, reply = genuine
    job = dataclasses.replace(job, student_dir=str(tmp_path / "students" / job.student))
    record = _collect(tmp_path, job, reply)
    assert record.status == "passed" and record.grading.score == MAX_SCORE
    student = Path(job.student_dir)
    assert {p.name for p in student.iterdir()} >= {"grading.json", "results.json", "feedback.html", "grading.log"}
    assert "graded on Ray node node-a" in (student / "grading.log").read_text()


def test_a_task_that_failed_for_good_is_a_crashed_row(tmp_path, genuine):
    job, _ = genuine
    job = dataclasses.replace(job, student_dir=str(tmp_path / "students" / job.student))
    record = _collect(tmp_path, job, RuntimeError("node died"))
    assert record.status == "crashed" and record.grading.score == 0
    assert "Ray task failed" in record.grading.results[0].message


def test_a_file_gone_since_discovery_is_a_crashed_row_as_in_the_local_batch(tmp_path):
    executor = _executor(tmp_path, {})

    def job_for(s, sha, gpu):
        raise FileNotFoundError(2, "No such file or directory")  # what run_batch's job_for raises then

    executor.job_for = job_for
    (tmp_path / "students" / "bob").mkdir(parents=True)
    s = Submission("bob", tmp_path, ("bob.py",), "0" * 64)
    [record] = executor.run([(s, s.sha256)])
    assert record.status == "crashed" and "could not run it (FileNotFoundError" in record.grading.results[0].message
    assert read_record(tmp_path / "students" / "bob") == record


def test_a_grading_process_that_dies_on_its_node_is_a_crashed_row(tmp_path):
    job, task = _job(tmp_path, solution_source("bandits"), config="[bandits\nbroken = ")
    raw = ray_executor.grade_on_node(task)
    reply = ray_reply.read_reply(raw, job, CHECKS)
    assert reply.record is None and "exited with code 1" in reply.reason
    assert "cannot read the instructor config" in reply.log
    record = _collect(tmp_path, job, raw)
    assert record.status == "crashed" and "exited with code 1" in record.grading.results[0].message
    assert "cannot read the instructor config" in (Path(job.student_dir) / "grading.log").read_text()


def test_a_node_with_other_grader_code_grades_nothing(tmp_path):
    job, task = _job(tmp_path, solution_source("bandits"))
    task["code"] = "0" * 64
    reply = ray_reply.read_reply(ray_executor.grade_on_node(task), job, CHECKS)
    assert reply.record is None and "other grader code" in reply.reason


def test_the_device_follows_the_cluster():
    assert ray_executor.cluster_device("auto", 0) == "cpu"
    assert ray_executor.cluster_device("auto", 2) == "cuda"
    assert ray_executor.cluster_device("cpu", 2) == "cpu"
    assert ray_executor.cluster_device("cuda", 0) == "cuda"  # an autoscaler may add one: the tasks wait


# ---------------------------------------------------------------- a real cluster on this machine


def _rows(out: Path) -> dict[str, dict]:
    """grades.csv by student, timing aside, and the host check's record (only a local batch checks its host)."""
    with open(out / "grades.csv", newline="") as f:
        return {row["student"]: {k: v for k, v in row.items() if k not in ("seconds", "unsafe_host")}
                for row in csv.DictReader(f)}


def _summary(out: Path) -> str:
    """summary.txt without its UNSAFE HOST block (only a local batch checks its host)."""
    blocks = (out / "summary.txt").read_text().split("\n\n")
    return "\n\n".join(b for b in blocks if not b.startswith("UNSAFE HOST"))


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
    """{pid: student} of the grading processes among `pids`: a grading process's stdout is its grading.log,
    in students/<student>/ of the node's temporary folder."""
    found = {}
    for pid in pids:
        try:
            log = Path(os.readlink(f"/proc/{pid}/fd/1"))
        except OSError:
            continue
        if log.name == "grading.log" and log.parent.parent.name == "students":
            found[pid] = log.parent.name
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
    os.makedirs("/tmp/ray", exist_ok=True)  # Ray writes its ray_current_cluster file there, and may not make it first
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
    (subs / "eve.py").symlink_to(subs / "s1.py")  # not graded: a row that says why, and NOT GRADED
    config = tmp_path / "config.toml"
    config.write_text(FAST_CONFIG)

    def command(out: Path, *options: str) -> list[str]:
        return [sys.executable, "-m", "graders", "batch", "bandits", str(subs), "--out", str(out), "--device", "cpu",
                "--config", str(config), "--allow-unsafe-host", *options]

    local = subprocess.run(command(tmp_path / "local", "-j", "2"), cwd=ROOT, capture_output=True, text=True,
                           timeout=400)
    assert local.returncode == 3 and "graded 5, skipped 0" in local.stdout, local.stdout + local.stderr

    out = tmp_path / "ray"
    driver = subprocess.Popen(command(out, "--ray", cluster.address), cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
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
    assert driver.returncode == local.returncode, output  # 3: eve is NOT GRADED, for the instructor to review
    assert "graded 5, skipped 0" in output
    assert _rows(out) == _rows(tmp_path / "local")  # same points per check, total, status and flags; timing aside
    assert _summary(out) == _summary(tmp_path / "local")
    for name in ("report/diagnoses.csv", "report/points.csv", "report/students.csv", "similarity/pairs.csv"):
        assert (out / name).read_text() == (tmp_path / "local" / name).read_text(), name  # the class report too
    for student in [*students, "eve"]:
        assert _checks(out, student) == _checks(tmp_path / "local", student), student
        assert read_record(out / "students" / student).grading.submission == f"{student}.py"
    for student in students:  # the copy graded, as the local batch keeps it
        assert (out / "students" / student / "submission" / "bandits.py").read_bytes() == \
            (subs / f"{student}.py").read_bytes()
    for student in killed.values():  # the grading lost with the node was run again, on the head
        log = (out / "students" / student / "grading.log").read_text()
        assert log.startswith(f"graded on Ray node {cluster.head_node.node_id}"), log[:200]

    again = subprocess.run(command(out, "--ray", cluster.address), cwd=ROOT, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 3 and "graded 0, skipped 5" in again.stdout  # resumes as the local batch does
