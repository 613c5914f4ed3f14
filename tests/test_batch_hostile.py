"""One student cannot hurt the class, the gradebook or the host: hostile submissions folders (issue #13).

Each test reproduces an attack that worked on the batch before: links followed as
root, a file name that killed every run, a folder that switched the class's layout,
formulas in grades.csv, escape sequences on the instructor's terminal, a write error
that escaped its student. The tests that grade run in both isolation modes.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shutil
from pathlib import Path

import pytest
from helpers import ROOT, solution_source
from test_batch import FAST_CONFIG, MAX_SCORE, config_in_mode

from graders import assignments, batch, outputs
from graders.batch import records, scheduler, submissions
from graders.cli import main
from graders.config import Config
from graders.outputs import report
from graders.outputs.table import printable, table
from graders.results import CheckResult, Grading, NotGraded, Record

TEMPLATE = ROOT / "assignments" / "bandits" / "bandits.py"
SECRET = "TOPSECRET-41c9e"  # only a root-only file outside the submissions folder holds it


@pytest.fixture(params=("bubblewrap", "process"))
def config(tmp_path, request) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(config_in_mode(request.param))
    return path


@pytest.fixture
def secret(tmp_path) -> Path:
    path = tmp_path / "private" / "instructor-only.py"
    path.parent.mkdir()
    path.write_text(f"{SECRET} = 1 +\n")  # graded as Python, its first line would be in the syntax error
    path.chmod(0o600)
    return path


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def _messages(out: Path, student: str) -> str:
    return " ".join(t["output"] for t in json.loads((out / "students" / student / "results.json").read_text())["tests"])


def _everything(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def test_discovery_never_follows_links(tmp_path, secret):
    subs = tmp_path / "subs"
    (subs / "alice").mkdir(parents=True)
    (subs / "alice" / "bandits.py").symlink_to(ROOT / "solutions" / "bandits" / "bandits.py")
    (subs / "carol.py").write_text(solution_source("bandits"))
    (subs / "bob").mkdir()
    (subs / "bob" / "bandits.py").symlink_to("../carol.py")  # a classmate's file
    (subs / "mallory.py").symlink_to(secret)
    (subs / "trudy").symlink_to(secret.parent)  # a whole folder
    (subs / "walter").mkdir()
    (subs / "walter" / "mine.py").symlink_to(secret)  # the only candidate of a folder
    (subs / "victor").mkdir()
    (subs / "victor" / "bandits.ipynb").write_text("{}")
    (subs / "victor" / "helper.py").symlink_to(secret)  # not the graded file: harmless
    os.mkfifo(subs / "fifo.py")  # opening it would block the batch
    (subs / "notes.txt").symlink_to(secret)

    found = submissions.discover(subs, "bandits")
    problems = {s.student: s.problem for s in found.submissions}
    assert problems == {
        "alice": "alice/bandits.py is a symbolic link; links are not followed",
        "bob": "bob/bandits.py is a symbolic link; links are not followed",
        "carol": "",
        "fifo": "fifo.py is not a regular file",
        "mallory": "mallory.py is a symbolic link; links are not followed",
        "trudy": "trudy is a symbolic link; links are not followed",
        "victor": "",
        "walter": "walter/mine.py is a symbolic link; links are not followed"}
    assert {n.entry for n in found.not_graded} == {*(s for s, problem in problems.items() if problem), "notes.txt"}
    # reading goes step by step without following links, whatever the path looks like
    (subs / "dirlink").symlink_to(subs / "victor")
    for parts in [("dirlink", "bandits.ipynb"), ("mallory.py",), ("fifo.py",), ("..", "private", secret.name)]:
        with pytest.raises(submissions.Unreadable):
            submissions.read_file(subs, parts)
    assert submissions.read_file(subs, ("victor", "bandits.ipynb")) == b"{}"


def test_names_that_are_not_printable_utf8_are_not_graded(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    os.close(os.open(os.fsencode(subs) + b"/b\xe9atrice.py", os.O_CREAT | os.O_WRONLY))  # Latin-1, not UTF-8
    (subs / "\x1b[31mred.py").write_text("")
    (subs / "rtl\u202egnp.py").write_text("")
    (subs / "zoë.py").write_text("")
    found = submissions.discover(subs, "bandits")
    assert [s.student for s in found.submissions] == ["zoë"]
    assert sorted((n.entry, n.reason) for n in found.not_graded) == [
        ("\\x1b[31mred.py", "its name holds control characters; rename it"),
        ("b\\xe9atrice.py", "its name is not valid UTF-8; rename it"),
        ("rtl\\u202egnp.py", "its name holds control characters; rename it")]


def test_layout_is_chosen_only_when_the_whole_folder_agrees(tmp_path, capsys):
    subs = tmp_path / "subs"
    for student in ("alice", "bob"):
        (subs / student).mkdir(parents=True)
        (subs / student / "bandits.py").write_text("")
    (subs / "carol.py").write_text("")
    (subs / "mallory" / "bandits").mkdir(parents=True)  # one student's folder in nbgrader's shape
    (subs / "mallory" / "bandits" / "bandits.py").write_text("")
    out = tmp_path / "out"
    assert main(["batch", "bandits", str(subs), "--out", str(out), "--device", "cpu", "--allow-unsafe-host"]) == 2
    assert "--layout flat or --layout nbgrader" in capsys.readouterr().err
    assert not (out / "students").exists()  # nothing was graded

    flat = submissions.discover(subs, "bandits", layout="flat")
    assert [(s.student, bool(s.problem)) for s in flat.submissions] == [
        ("alice", False), ("bob", False), ("carol", False), ("mallory", True)]
    nbgrader = submissions.discover(subs, "bandits", layout="nbgrader")
    assert [s.student for s in nbgrader.submissions] == ["mallory"]
    assert sorted(n.entry for n in nbgrader.not_graded) == ["alice", "bob", "carol.py"]
    shutil.rmtree(subs / "mallory")
    assert submissions.discover(subs, "bandits").layout == "flat"
    with pytest.raises(batch.BatchError, match="unknown layout"):
        submissions.discover(subs, "bandits", layout="nbgrade")


def test_hostile_folder_is_graded_student_by_student(tmp_path, config, secret, capsys):
    """Links to the reference, to a classmate and to a root-only file; bad names; a layout trap; a formula."""
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "carol.py").write_text(solution_source("bandits"))
    (subs / "alice").mkdir()
    (subs / "alice" / "bandits.py").symlink_to(ROOT / "solutions" / "bandits" / "bandits.py")
    (subs / "bob").mkdir()
    (subs / "bob" / "bandits.py").symlink_to("../carol.py")
    (subs / "mallory.py").symlink_to(secret)
    (subs / "eve" / "bandits").mkdir(parents=True)
    (subs / "eve" / "bandits" / "bandits.py").write_text(solution_source("bandits"))
    shutil.copy(TEMPLATE, subs / "=HYPERLINK(1).py")
    shutil.copy(TEMPLATE, subs / "\x1b]0;owned\x07\x1b[2J.py")
    with open(os.fsencode(subs) + b"/b\xe9atrice.py", "wb") as f:
        f.write(solution_source("bandits").encode())
    (subs / "notes.txt").write_text("not a submission")
    out = tmp_path / "out"
    command = ["batch", "bandits", str(subs), "--out", str(out), "-j", "2", "--device", "cpu", "--config", str(config),
               "--allow-unsafe-host"]

    assert main(command) == 2  # eve's folder makes the layout ambiguous: ask, grade nothing
    assert not (out / "students").exists()
    capsys.readouterr()
    assert main([*command, "--layout", "flat"]) == 3  # graded, but some entries were not
    printed = capsys.readouterr()
    assert "\x1b" not in printed.out + printed.err and "\x07" not in printed.out + printed.err

    rows = _rows(out)
    assert sorted(rows) == ["'=HYPERLINK(1)", "alice", "bob", "carol", "eve", "mallory"]
    assert rows["carol"]["total"] == str(MAX_SCORE)
    assert rows["'=HYPERLINK(1)"]["total"] == "0" and rows["'=HYPERLINK(1)"]["status"] == "error"
    for student in ("alice", "bob", "mallory"):
        assert rows[student]["total"] == "0" and rows[student]["status"] == "error"
        assert "symbolic link; links are not followed" in _messages(out, student)
    assert "not graded: eve should hold one bandits.py or bandits.ipynb (found: none)" in _messages(out, "eve")
    assert SECRET.encode() not in _everything(out)
    assert (out / "students" / "carol" / "submission" / "bandits.py").read_text() == solution_source("bandits")
    assert not (out / "students" / "alice" / "submission").exists()

    summary = (out / "summary.txt").read_text()
    for entry in ("alice", "bob", "mallory", "eve", "notes.txt",
                  "b\\xe9atrice.py", "\\x1b]0;owned\\x07\\x1b[2J.py"):
        assert f"\n  {entry}: " in summary, entry
    assert "\x1b" not in summary and "6 students; 7 entries NOT GRADED" in summary
    page = (out / "index.html").read_text()
    assert "Not graded: 7 entries" in page and "b\\xe9atrice.py" in page
    assert "\x1b" not in (out / "grades.csv").read_text()
    assert sorted(os.listdir(out / "students")) == ["=HYPERLINK(1)", "alice", "bob", "carol", "eve", "mallory"]


def test_a_students_write_error_stays_in_their_row(tmp_path, config):
    subs = tmp_path / "subs"
    subs.mkdir()
    for student in ("alice", "bob"):
        shutil.copy(TEMPLATE, subs / f"{student}.py")
    out = tmp_path / "out"
    (out / "students").mkdir(parents=True)
    (out / "students" / "bob").write_text("a file where bob's folder of results should be")
    result = batch.run_batch("bandits", subs, out, jobs=2, device="cpu", config_path=config)
    by_student = {r.student: r for r in result.records}
    assert by_student["alice"].status == "error" and records.read_record(out / "students" / "alice").status == "error"
    bob = by_student["bob"]
    assert bob.status == "crashed" and bob.grading.score == 0
    assert "the batch could not run it" in bob.grading.results[0].message
    assert "its results could not be written" in bob.grading.results[0].message
    rows = _rows(out)
    assert rows["alice"]["status"] == "error" and rows["bob"]["status"] == "crashed"


def test_student_outputs_survive_text_that_is_not_encodable(tmp_path):
    """A lone surrogate (valid in JSON from a worker) in a message or printed output."""
    grading = Grading("bandits", "a.py", "cpu", results=[CheckResult("c", 0.0, 1.0, "failed", "bad \udc80", output="\ud800")])
    record = Record("alice", "sha", "failed", grading)
    records.write_outputs(tmp_path, record)
    assert "bad \ufffd" in (tmp_path / "feedback.html").read_text(encoding="utf-8") or \
        "bad ?" in (tmp_path / "feedback.html").read_text(encoding="utf-8")
    assert records.read_record(tmp_path).grading.results[0].message == "bad \udc80"
    outputs.write_class(assignments.grader("bandits").checks, [record], tmp_path, [NotGraded("x\udc80", "why")])
    assert (tmp_path / "summary.txt").read_text(encoding="utf-8")


def test_crashed_rows_are_graded_again_on_resume(tmp_path, config):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(TEMPLATE, subs / "alice.py")
    found = submissions.discover(subs, "bandits")
    checks = assignments.grader("bandits").checks
    crashed = records.crashed_record("alice", found.submissions[0].sha256, checks, "bandits", "alice.py", "cpu",
                                     "it ran longer than the batch limit", 1.0)
    records.write_outputs(tmp_path / "out" / "students" / "alice", crashed)
    result = batch.run_batch("bandits", subs, tmp_path / "out", device="cpu", config_path=config)
    assert result.graded == ["alice"] and result.skipped == []
    assert records.read_record(tmp_path / "out" / "students" / "alice").status == "error"
    again = batch.run_batch("bandits", subs, tmp_path / "out", device="cpu", config_path=config)
    assert again.graded == [] and again.skipped == ["alice"]
    shutil.rmtree(tmp_path / "out" / "students" / "alice" / "submission")  # results of a version without the copy
    assert batch.run_batch("bandits", subs, tmp_path / "out", device="cpu", config_path=config).graded == ["alice"]


@pytest.mark.parametrize("bad", ["[bandit]\nseeds = [1]\n", "[bandits.checks.testbed_ucbb]\npoints = 1\n",
                                 "[limits]\nmemory = 1\n", "[bandits\n"])
def test_a_bad_config_is_a_usage_error_before_any_grading(tmp_path, bad, capsys):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(TEMPLATE, subs / "alice.py")
    (tmp_path / "config.toml").write_text(bad)
    out = tmp_path / "out"
    assert main(["batch", "bandits", str(subs), "--out", str(out), "--config", str(tmp_path / "config.toml")]) == 2
    assert "error:" in capsys.readouterr().err
    assert not out.exists()


def test_grade_and_batch_share_the_effective_checks_and_checks_are_immutable(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(FAST_CONFIG + "[bandits.checks.testbed_ucb]\npoints = 3\n")
    declared = next(c for c in assignments.grader("bandits").checks if c.name == "testbed_ucb")
    assert declared.points == 1
    effective = Config.load(config).effective("bandits")
    assert next(c for c in effective.checks if c.name == "testbed_ucb").points == 3
    assert effective.max_score == MAX_SCORE + 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        declared.points = 3
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "alice.py").symlink_to(TEMPLATE)  # a row without a grading: the batch's own checks
    result = batch.run_batch("bandits", subs, tmp_path / "out", device="cpu", config_path=config)
    assert result.refused == ["alice"] and result.records[0].grading.max_score == MAX_SCORE + 2
    assert declared.points == 1


def test_grades_csv_cells_never_run_as_formulas():
    checks = assignments.grader("bandits").checks
    names = ["=cmd|' /C calc'!A0", "+1", "-2", "@SUM(1)", "\tx", "plain", "a=b"]
    rows = [Record(n, "", "failed", Grading("bandits", "x.py", "cpu", results=[
        CheckResult(checks[0].name, 0.0, 1.0, "failed")])) for n in names]
    with io.StringIO(report.grades_csv(checks, rows)) as f:
        students = [row["student"] for row in csv.DictReader(f)]
    assert students == ["'=cmd|' /C calc'!A0", "'+1", "'-2", "'@SUM(1)", "'\tx", "plain", "a=b"]


def test_terminal_text_is_printable():
    hostile = "\x1b]0;owned\x07\x1b[2J\rdone\x9b31m \u202eevil \udc80"
    assert printable(hostile) == "\\x1b]0;owned\\x07\\x1b[2J\\rdone\\x9b31m \\u202eevil \\udc80"
    assert printable("line\n\ttab\r\n") == "line\n\ttab\n"
    grading = Grading("bandits", hostile, "cpu", results=[
        CheckResult("c", 0.0, 1.0, "failed", hostile, output=hostile)], internal_error=hostile)
    text = table(grading)
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text and "\u202e" not in text
    text.encode("utf-8")  # no lone surrogate left
    stream = io.StringIO()
    progress = scheduler.Progress(1, stream)
    progress.update(Record("\x1b[2Jmallory", "", "failed", grading), running=0)
    assert "\x1b" not in stream.getvalue() and "\\x1b[2Jmallory" in stream.getvalue()
