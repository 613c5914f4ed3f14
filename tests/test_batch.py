"""Batch grading: layouts, outputs, isolation of bad submissions, resuming after kill -9.

Every test that grades runs in both isolation modes (the `fast_config` fixture sets
`[limits] isolation`, as tests/test_hostile.py does); hostile folders: test_batch_hostile.py.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import FAST_BANDITS, ROOT, solution_source

from graders import assignments, batch
from graders.batch import records, scheduler, submissions
from graders.cli import main
from graders.files import atomic_write
from graders.outputs import feedback
from graders.results import CheckResult, Grading, Record, student_status

# A small testbed and loose thresholds: these tests are about the batch, not the bandits.
FAST_CONFIG = FAST_BANDITS + """[limits]
import_seconds = 4
memory_mb = 2048
"""
MAX_SCORE = 20
MODES = ("bubblewrap", "process")


def config_in_mode(mode: str, text: str = FAST_CONFIG) -> str:
    """`text` with the worker's isolation forced to `mode` (skips the test where bubblewrap does not work)."""
    from graders.sandbox import isolation

    try:
        isolation.plan(mode)
    except isolation.IsolationUnavailable as exc:
        pytest.skip(f"bubblewrap does not work here: {exc}")
    return text.replace("[limits]\n", f'[limits]\nisolation = "{mode}"\n')


@pytest.fixture(params=MODES)
def fast_config(tmp_path, request) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(config_in_mode(request.param))
    return path


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "grades.csv", newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def test_discover_flat_layout(tmp_path):
    (tmp_path / "alice.py").write_text("")
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "bandits.ipynb").write_text("{}")
    (tmp_path / "notes.txt").write_text("not a submission")
    (tmp_path / ".DS_Store").write_text("")
    found = submissions.discover(tmp_path, "bandits")
    assert found.layout == "flat"
    assert [(s.student, s.path) for s in found.submissions] == [("alice", tmp_path / "alice.py"),
                                                               ("bob", tmp_path / "bob" / "bandits.ipynb")]
    assert [(n.entry, n.reason) for n in found.not_graded] == [("notes.txt", "not a .py or .ipynb file, nor a folder")]


def test_discover_nbgrader_layout(tmp_path):
    for name in ("course", "submitted"):
        folder = tmp_path / name
        for student in ("alice", "bob"):
            (folder / student / "bandits").mkdir(parents=True)
            (folder / student / "bandits" / "bandits.ipynb").write_text("{}")
        (folder / "carol" / "other_assignment").mkdir(parents=True)  # did not submit this one
    with pytest.raises(batch.BatchError, match="--layout"):  # carol's folder does not have the shape...
        submissions.discover(tmp_path / "course", "bandits")
    assert submissions.discover(tmp_path / "submitted", "bandits").layout == "nbgrader"  # ...unless named so
    for found in (submissions.discover(tmp_path / "course", "bandits", layout="nbgrader"),
                  submissions.discover(tmp_path / "submitted", "bandits")):
        root = found.submissions[0].root
        assert found.layout == "nbgrader"
        assert [(s.student, s.path) for s in found.submissions] == [
            ("alice", root / "alice" / "bandits" / "bandits.ipynb"), ("bob", root / "bob" / "bandits" / "bandits.ipynb")]
        assert [(n.entry, n.reason) for n in found.not_graded] == [
            ("carol", "has no bandits/ folder: did not submit bandits")]


def test_two_submissions_of_one_student_give_them_a_row_that_says_so(tmp_path):
    (tmp_path / "alice.py").write_text("")
    (tmp_path / "alice.ipynb").write_text("{}")
    (tmp_path / "bob.py").write_text("")
    found = submissions.discover(tmp_path, "bandits")
    assert [(s.student, s.problem) for s in found.submissions] == [
        ("alice", "two submissions for one student: alice.ipynb and alice.py"), ("bob", "")]
    assert [(n.entry, n.reason) for n in found.not_graded] == [("alice", found.submissions[0].problem)]


def test_batch_outputs_and_bad_submissions_stay_in_their_row(tmp_path, fast_config, capsys):
    subs = tmp_path / "submissions"
    subs.mkdir()
    (subs / "alice.py").write_text(solution_source("bandits"))
    (subs / "carol").mkdir()
    shutil.copy(ROOT / "assignments" / "bandits" / "bandits.ipynb", subs / "carol" / "bandits.ipynb")
    (subs / "dave.py").write_text("import os\nos._exit(3)\n")  # kills its worker at import
    (subs / "erin.py").write_text("while True:\n    pass\n")  # hangs at import
    (subs / "frank.py").write_text("hog = bytearray(8 << 30)\n")  # over the memory limit
    out = tmp_path / "out"

    code = main(["batch", "bandits", str(subs), "--out", str(out), "-j", "2", "--device", "cpu",
                 "--config", str(fast_config), "--allow-unsafe-host"])  # process mode fails the host check here
    assert code == 0
    rows = _rows(out)
    assert sorted(rows) == ["alice", "carol", "dave", "erin", "frank"]
    checks = [c.name for c in assignments.grader("bandits").checks]
    assert list(rows["alice"]) == ["student", *checks, "total", "max", "status", "seconds", "flags", "unsafe_host"]
    assert rows["alice"]["total"] == str(MAX_SCORE) and rows["alice"]["status"] == "passed"
    for student in ("carol", "dave", "erin", "frank"):
        assert rows[student]["total"] == "0" and rows[student]["status"] == "error", rows[student]
    assert "memory" in " ".join(
        t["output"] for t in json.loads((out / "students" / "frank" / "results.json").read_text())["tests"]).lower()

    results = json.loads((out / "students" / "alice" / "results.json").read_text())
    assert results["score"] == MAX_SCORE and len(results["tests"]) == len(checks)
    assert {"name", "score", "max_score", "status", "output"} <= set(results["tests"][0])
    page = (out / "students" / "dave" / "feedback.html").read_text()
    assert "Score: 0 / 20" in page and "dave" in page
    assert "alice" in (out / "index.html").read_text()
    assert (out / "summary.png").read_bytes().startswith(b"\x89PNG")
    summary = (out / "summary.txt").read_text()
    assert summary.startswith("5 students\n") and "testbed_ucb" in summary and "NOT GRADED" not in summary
    assert "graded 5, skipped 0" in capsys.readouterr().out


def test_rerun_skips_graded_students_regrades_changed_ones_and_regrade_forces(tmp_path, fast_config):
    subs = tmp_path / "submissions"
    subs.mkdir()
    for student in ("alice", "bob"):
        (subs / f"{student}.py").write_text(solution_source("bandits"))
    out = tmp_path / "out"
    first = batch.run_batch("bandits", subs, out, jobs=2, device="cpu", config_path=fast_config)
    assert sorted(first.graded) == ["alice", "bob"]
    stamp = (out / "students" / "alice" / "grading.json").stat().st_mtime_ns

    (subs / "bob.py").write_text(solution_source("bandits") + "\n# resubmitted\n")
    second = batch.run_batch("bandits", subs, out, jobs=2, device="cpu", config_path=fast_config)
    assert second.graded == ["bob"] and second.skipped == ["alice"]
    assert (out / "students" / "alice" / "grading.json").stat().st_mtime_ns == stamp

    third = batch.run_batch("bandits", subs, out, jobs=2, device="cpu", config_path=fast_config, regrade=True)
    assert sorted(third.graded) == ["alice", "bob"]
    assert [r.grading.score for r in third.records] == [MAX_SCORE, MAX_SCORE]


def test_batch_killed_with_sigkill_resumes_and_loses_nothing(tmp_path, fast_config):
    subs = tmp_path / "submissions"
    subs.mkdir()
    students = ["s1", "s2", "s3"]
    for student in students:
        (subs / f"{student}.py").write_text(solution_source("bandits"))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "graders", "batch", "bandits", str(subs), "--out", str(out), "-j", "1",
               "--device", "cpu", "--config", str(fast_config), "--allow-unsafe-host"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = lambda: [s for s in students if (out / "students" / s / "grading.json").exists()]  # noqa: E731
    deadline = time.monotonic() + 240
    while not done() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = done()
    assert finished, "the batch finished no student before the kill"
    stamps = {s: (out / "students" / s / "grading.json").stat().st_mtime_ns for s in finished}

    report = batch.run_batch("bandits", subs, out, jobs=2, device="cpu", config_path=fast_config)
    assert set(report.skipped) >= set(finished)
    assert sorted(report.graded + report.skipped) == students
    assert all((out / "students" / s / "grading.json").stat().st_mtime_ns == stamps[s] for s in finished)
    assert [r.grading.score for r in report.records] == [MAX_SCORE] * 3
    assert _rows(out).keys() == set(students)


def _scheduler(tmp_path, limit: float, config: str | None):
    """The batch's scheduler on one student, with a job the test controls."""
    checks = assignments.grader("bandits").checks
    submission = tmp_path / "alice.py"
    submission.write_text(solution_source("bandits"))
    student_dir = tmp_path / "alice"
    student_dir.mkdir()

    def job_for(s, sha, gpu):
        return scheduler.Job("bandits", s.student, str(s.path), str(student_dir), sha, "cpu", config, gpu)

    def crashed(s, sha, reason, seconds):
        record = records.crashed_record(s.student, sha, checks, "bandits", str(s.path), "cpu", reason, seconds)
        records.write_outputs(student_dir, record)
        return record

    runner = scheduler.Scheduler(job_for, limit, [None], crashed, scheduler.Progress(1), None, ["graders.batch"])
    return runner.run([(submissions.Submission("alice", tmp_path, ("alice.py",)), "sha")]), student_dir


def test_grading_process_that_dies_gets_a_crashed_row(tmp_path):
    (done, student_dir) = _scheduler(tmp_path, 60, config="[bandits\nbroken = ")
    assert done[0].status == "crashed" and done[0].grading.score == 0
    assert "exited with code 1" in done[0].grading.results[0].message
    assert "cannot read the instructor config" in (student_dir / "grading.log").read_text()
    assert records.read_record(student_dir).status == "crashed"


def test_grading_process_that_overruns_is_stopped(tmp_path):
    (done, _dir) = _scheduler(tmp_path, 1.0, config=None)
    assert done[0].status == "crashed"
    assert "longer than the batch limit" in done[0].grading.results[0].message


def test_feedback_page_embeds_plots_and_escapes_student_text(tmp_path):
    (tmp_path / "samples.png").write_bytes(feedback.histogram_png(assignments.grader("bandits").checks, []))
    grading = Grading("vae", "x.py", "cpu", artifacts=["samples.png"], results=[
        CheckResult("elbo", 0.0, 5, "failed", "expected <b>", output="<script>alert(1)</script>")])
    page = feedback.student_page(grading, "mallory", tmp_path)
    assert "data:image/png;base64," in page
    assert "<script>alert" not in page and "&lt;script&gt;" in page and "expected &lt;b&gt;" in page


def test_record_round_trips(tmp_path):
    grading = Grading("bandits", "a.py", "cpu", results=[CheckResult("c", 1.0, 2.0, "failed", "m")], seconds=1.5)
    record = Record("alice", "abc", student_status(grading), grading)
    atomic_write(tmp_path / "grading.json", json.dumps(record.to_dict()))
    again = records.read_record(tmp_path)
    assert again.grading == grading and again.status == "failed"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_gpu_slots_share_each_gpu_between_gpu_jobs(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert scheduler.gpu_slots("cuda", jobs=16, gpu_jobs=2) == [0, 0, 1, 1]
    assert scheduler.gpu_slots("cuda", jobs=1, gpu_jobs=2) == [0]
    assert scheduler.gpu_slots("cpu", jobs=3, gpu_jobs=2) == [None, None, None]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(batch.BatchError):
        scheduler.gpu_slots("cuda", jobs=4, gpu_jobs=1)


def test_ctrl_c_stops_the_batch_without_recording_the_gradings_in_flight(tmp_path, fast_config):
    subs = tmp_path / "submissions"
    subs.mkdir()
    students = ["s1", "s2", "s3", "s4"]
    for student in students:
        (subs / f"{student}.py").write_text(solution_source("bandits"))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "graders", "batch", "bandits", str(subs), "--out", str(out), "-j", "2",
               "--device", "cpu", "--config", str(fast_config), "--allow-unsafe-host"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while not list(out.glob("students/*/grading.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), output  # 0: it had just finished
    done = [records.read_record(p.parent) for p in out.glob("students/*/grading.json")]
    assert done and all(r.status == "passed" for r in done), "an interrupted grading was recorded"
    if proc.returncode == 130:
        assert "run the same command again" in output
    report = batch.run_batch("bandits", subs, out, jobs=2, device="cpu", config_path=fast_config)
    assert sorted(report.graded + report.skipped) == students


def test_a_flagged_row_waits_for_the_instructor_until_the_config_accepts_it(tmp_path, capsys):
    """A hand-written controller passes the evaluation but not the grader's view of its learning:
    the batch exits 3 and lists the flag; an accepted flag gives the withheld points."""
    from helpers import controller_source

    subs, out, config = tmp_path / "subs", tmp_path / "out", tmp_path / "config.toml"
    subs.mkdir()
    (subs / "bob.py").write_text(controller_source("reinforce", shown=30, precomputed=True))  # the public seeds
    (subs / "carol.py").write_text("")
    settings = "[reinforce]\neval_episodes = 10\n"
    config.write_text(settings)
    command = ["batch", "reinforce", str(subs), "--out", str(out), "--config", str(config), "--allow-unsafe-host"]
    assert main(command) == 3
    bob = _rows(out)["bob"]
    assert "trained_policy_first_seed" in bob["flags"] and bob["trained_policy_first_seed"] == "0"
    assert "FLAGGED" in (out / "summary.txt").read_text()

    config.write_text(settings + '[flags]\naccept = ["bob:trained_policy_first_seed"]\n')
    assert main(command) == 3
    bob = _rows(out)["bob"]
    assert float(bob["trained_policy_first_seed"]) > 0 and "trained_policy_second_seed" in bob["flags"]

    config.write_text(settings + '[flags]\naccept = ["bob"]\n')
    assert main(command) == 0
    assert _rows(out)["bob"]["flags"] == ""
    capsys.readouterr()
