"""nbgrader integration: a real course folder, from `generate_assignment` to `export` and `generate_feedback`."""

from __future__ import annotations

import copy
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import solution_source

from graders import assignments, templates
from graders.batch import records
from graders.cli import main
from graders.outputs import gradebook
from graders.results import CheckResult, Grading, Record
from tests.test_batch import MODES, config_in_mode


@pytest.fixture
def secret_file(tmp_path) -> Path:
    path = tmp_path / "private" / "instructor-only.txt"
    path.parent.mkdir()
    path.write_text("TOPSECRET-41c9e\n")
    path.chmod(0o600)
    return path


def _nbgrader(course: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def _solved(release: dict, source: dict) -> dict:
    """The released notebook with every solution cell filled in from the source (a student who did it all)."""
    notebook = copy.deepcopy(release)
    for cell, original in zip(notebook["cells"], source["cells"], strict=True):
        if cell["metadata"].get("nbgrader", {}).get("solution"):
            cell["source"] = [line for line in original["source"] if "### " not in line or "SOLUTION" not in line]
    return notebook


def test_source_notebook_has_nbgrader_metadata():
    notebook = gradebook.source_notebook("bandits")
    cells = [c["metadata"]["nbgrader"] for c in notebook["cells"] if "nbgrader" in c["metadata"]]
    solutions = [m for m in cells if m["solution"]]
    grades = [m for m in cells if m["grade"]]
    assert solutions and all(m == {"solution": True, "grade": False, "locked": False, "schema_version": 3,
                                   "grade_id": m["grade_id"]} for m in solutions)
    assert sum(m["points"] for m in grades) == 20 and all(m["locked"] and not m["solution"] for m in grades)
    assert len({m["grade_id"] for m in cells}) == len(cells)
    # the notebook's own cells are the solution's, as to_notebook makes them
    plain = templates.to_notebook(templates.for_format(solution_source("bandits"), "ipynb"))["cells"]
    assert [c["source"] for c in notebook["cells"][: len(plain)]] == [c["source"] for c in plain]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", MODES)
def test_nbgrader_course_end_to_end(tmp_path, mode):
    course = _course(tmp_path)
    release = json.loads((course / "release" / "bandits" / "bandits.ipynb").read_text())
    source = json.loads((course / "source" / "bandits" / "bandits.ipynb").read_text())
    assert "raise NotImplementedError()" in json.dumps(release)

    alice = course / "submitted" / "alice" / "bandits"
    bob = course / "submitted" / "bob" / "bandits"
    alice.mkdir(parents=True)
    bob.mkdir(parents=True)
    (alice / "bandits.ipynb").write_text(json.dumps(_solved(release, source)))
    (alice / "timestamp.txt").write_text("2026-01-15 10:00:00.000000 UTC\n")
    (bob / "bandits.ipynb").write_text('{"cells": [')  # broken: truncated JSON
    (course / "submitted" / "carol" / "other_assignment").mkdir(parents=True)  # did not submit this one

    config = tmp_path / "config.toml"
    config.write_text(config_in_mode(mode))
    out = tmp_path / "results"
    assert main(["batch", "bandits", str(course / "submitted"), "--out", str(out), "-j", "2", "--device", "cpu",
                 "--config", str(config), "--allow-unsafe-host"]) == 3  # graded; carol is listed as not graded
    assert "  carol: has no bandits/ folder: did not submit bandits\n" in (out / "summary.txt").read_text()
    with open(out / "grades.csv", newline="") as f:
        ours = {row["student"]: row for row in csv.DictReader(f)}
    assert ours["alice"]["total"] == "20" and ours["bob"]["total"] == "0" and ours["bob"]["status"] == "error"
    assert "carol" in (out / "report" / "students.csv").read_text()  # the class report, from the nbgrader course
    assert "not a notebook" in (out / "similarity" / "index.html").read_text()  # bob's truncated JSON

    _nbgrader(course, "export")
    with open(course / "grades.csv", newline="") as f:
        exported = {row["student_id"]: row for row in csv.DictReader(f)}
    assert float(exported["alice"]["score"]) == 20 and float(exported["alice"]["max_score"]) == 20
    assert float(exported["bob"]["score"]) == 0

    _nbgrader(course, "generate_feedback", "bandits")
    page = (course / "feedback" / "alice" / "bandits" / "bandits.html").read_text()
    assert "20.0 / 20.0" in page and "testbed_ucb" in page
    broken = (course / "feedback" / "bob" / "bandits" / "bandits.html").read_text()
    assert "0.0 / 20.0" in broken and "not valid JSON" in broken


# ---- one student cannot keep the class out of the gradebook (issue #13) ----

def _released_gradebook(db: Path) -> None:
    """gradebook.db as `nbgrader generate_assignment bandits` leaves it, made through nbgrader's API."""
    from nbgrader.api import Gradebook

    notebook = gradebook.source_notebook("bandits")
    with Gradebook(f"sqlite:///{db}") as gb:
        gb.add_assignment("bandits")
        gb.add_notebook("bandits", "bandits")
        for cell in notebook["cells"]:
            meta = cell["metadata"].get("nbgrader", {})
            if meta.get("grade"):
                gb.add_grade_cell(meta["grade_id"], "bandits", "bandits", max_score=meta["points"], cell_type="code")
            elif meta.get("solution"):
                gb.add_solution_cell(meta["grade_id"], "bandits", "bandits")


def _record(student: str, status: str = "failed", points: float = 1.0) -> Record:
    results = [CheckResult(c.name, min(points, c.points), c.points, "passed" if status == "passed" else "failed",
                           "<script>alert('message')</script>", output="\x1b[31mprinted")
               for c in assignments.grader("bandits").checks]
    return Record(student, "sha", status, Grading("bandits", f"{student}/bandits", "cpu", results=results))


def _hostile_notebook() -> str:
    """A notebook with stored outputs that would run in formgrader, attachments and markdown HTML."""
    notebook = gradebook.source_notebook("bandits")
    cells = notebook["cells"]
    code = next(c for c in cells if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "display_data", "metadata": {},
                        "data": {"text/html": "<script>alert('output')</script>", "text/plain": "x"}}]
    code["execution_count"] = 7
    cells.insert(0, {"cell_type": "markdown", "id": "md", "metadata": {"deep": [[[[]]]]},
                     "source": "<img src=x onerror=alert('markdown')> [x](javascript:alert('link')) ``` <b>",
                     "attachments": {"a.svg": {"image/svg+xml": "<svg onload=alert('attachment')/>"}}})
    cells.append({"cell_type": "code", "id": "lone", "metadata": {}, "outputs": [], "execution_count": None,
                  "source": "s = 'PLACEHOLDER'"})
    return json.dumps(notebook).replace("PLACEHOLDER", "\\udc80")  # a lone surrogate: valid JSON, not UTF-8


def test_gradebook_records_every_student_whatever_one_holds(tmp_path, secret_file, monkeypatch):
    from nbconvert.exporters import HTMLExporter
    from nbgrader.api import Gradebook

    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")  # alembic

    course, results = tmp_path / "course", tmp_path / "results"
    submitted = course / "submitted"
    db = course / "gradebook.db"
    course.mkdir()
    _released_gradebook(db)
    notebooks = {
        "alice": _hostile_notebook(),
        "bob": '{"cells": ' + "[" * 100_000 + "]" * 100_000 + "}",  # deeper than any parser's recursion
        "carol": json.dumps(gradebook.source_notebook("bandits")),
        "dave": json.dumps(gradebook.source_notebook("bandits")),
        "erin": json.dumps(gradebook.source_notebook("bandits")),
        "frank": json.dumps(gradebook.source_notebook("bandits")),
    }
    stamps = {"alice": "2026-01-15 10:00:00.000000 UTC", "carol": "the day before the deadline, honest",
              "erin": "2026-01-15 11:00:00.000000 UTC"}
    for student, text in notebooks.items():
        folder = submitted / student / "bandits"
        folder.mkdir(parents=True)
        (folder / "bandits.ipynb").write_text(text)
        if student in stamps:
            (folder / "timestamp.txt").write_text(stamps[student])
        records.write_snapshot(results / "students" / student, "bandits", ".ipynb", text.encode())
    (submitted / "frank" / "bandits" / "timestamp.txt").symlink_to(secret_file)
    recs = [_record("alice"), _record("bob", "error", 0), _record("carol"), _record("dave", "crashed", 0),
            _record("erin", "passed", 99), _record("frank")]

    for _ in range(2):  # and so on every re-run
        report = gradebook.record(str(db), "bandits", recs, results=results, submitted=submitted, course=course)
        assert report.recorded == ["alice", "bob", "carol", "dave", "erin", "frank"]
        assert sorted(report.problems) == ["carol", "frank"]
        assert "timestamp.txt does not hold a date" in report.problems["carol"]
        assert "symbolic link" in report.problems["frank"] and "TOPSECRET" not in report.problems["frank"]

    one_each = len(assignments.grader("bandits").checks)  # _record's default: 1 point per check
    with Gradebook(f"sqlite:///{db}") as gb:
        assert {s.student.id: s.score for s in gb.find_assignment("bandits").submissions} == {
            "alice": one_each, "bob": 0, "carol": one_each, "dave": 0, "erin": 20, "frank": one_each}
        flagged = {s: gb.find_submission_notebook("bandits", "bandits", s).flagged for s in notebooks}
        assert flagged == {"alice": False, "bob": False, "carol": True, "dave": True, "erin": False, "frank": True}
        assert str(gb.find_submission("bandits", "erin").timestamp) == "2026-01-15 11:00:00"
        assert gb.find_submission("bandits", "carol").timestamp is None

    (submitted / "erin" / "bandits" / "timestamp.txt").write_text("2026-01-16 09:30:00.000000 UTC")  # resubmitted
    gradebook.record(str(db), "bandits", recs, results=results, submitted=submitted, course=course)
    with Gradebook(f"sqlite:///{db}") as gb:
        assert str(gb.find_submission("bandits", "erin").timestamp) == "2026-01-16 09:30:00"

    autograded = course / "autograded"
    alice = json.loads((autograded / "alice" / "bandits" / "bandits.ipynb").read_text(encoding="utf-8"))
    assert all(c.get("execution_count") is None and "attachments" not in c for c in alice["cells"])
    assert all(c["metadata"]["nbgrader"]["grade"] for c in alice["cells"] if c.get("outputs"))  # only our checks'
    assert any(c["source"] == "s = '?'" for c in alice["cells"])  # the lone surrogate, replaced
    html, _ = HTMLExporter().from_filename(str(autograded / "alice" / "bandits" / "bandits.ipynb"))  # as formgrader
    for attack in ("<script>alert", "<img src=x onerror", 'href="javascript:', "<svg onload"):
        assert attack not in html, attack
    assert "&lt;script&gt;alert(&#39;message&#39;)" in html or "&lt;script&gt;alert('message')" in html
    assert (autograded / "alice" / "bandits" / "timestamp.txt").read_text() == "2026-01-15 10:00:00.000000 UTC\n"
    assert "could not be read" in (autograded / "bob" / "bandits" / "bandits.ipynb").read_text()
    assert not (autograded / "carol" / "bandits" / "timestamp.txt").exists()


def _course(tmp_path: Path) -> Path:
    course = tmp_path / "course"
    course.mkdir()
    (course / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.course_id = 'rl'\nc.CourseDirectory.root = {str(course)!r}\n")
    assert main(["nbgrader-source", "bandits", str(course)]) == 0
    _nbgrader(course, "generate_assignment", "bandits", "--force")
    return course


# What formgrader's Autograde button runs (nbgrader.server_extensions.formgrader's API handler), and shows.
FORMGRADER_AUTOGRADE = """
import json, sys
from nbgrader.apps import NbGraderAPI
from traitlets.config import Config
config = Config()
config.CourseDirectory.root = sys.argv[1]
config.CourseDirectory.course_id = "rl"
result = NbGraderAPI(config=config).autograde("bandits", "alice")
print(json.dumps({"success": result["success"], "log": result.get("log", ""), "error": result.get("error", "")}))
"""


def _nbgrader_may_fail(course: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.timeout(600)
def test_nbgrader_autograde_fails_loudly_and_validate_never_passes_an_empty_template(tmp_path):
    course = _course(tmp_path)
    release = course / "release" / "bandits" / "bandits.ipynb"
    source = json.loads((course / "source" / "bandits" / "bandits.ipynb").read_text())

    empty = _nbgrader_may_fail(course, "validate", str(release))
    assert "Success" not in empty.stdout and "VALIDATION FAILED" in empty.stdout, empty.stdout[-2000:]
    assert "not done yet" in empty.stdout
    solved = tmp_path / "solved" / "bandits.ipynb"
    solved.parent.mkdir()
    solved.write_text(json.dumps(_solved(json.loads(release.read_text()), source)))
    done = _nbgrader_may_fail(course, "validate", str(solved))
    assert "Success" in done.stdout, done.stdout[-2000:]

    student = course / "submitted" / "alice" / "bandits"
    student.mkdir(parents=True)
    (student / "bandits.ipynb").write_text(release.read_text())  # an untouched template
    autograde = _nbgrader_may_fail(course, "autograde", "bandits", "--force")
    output = autograde.stdout + autograde.stderr
    assert autograde.returncode != 0 and "python -m graders batch" in output, output[-3000:]

    # formgrader's Autograde button: NbGraderAPI.autograde, which shows nbgrader's log, not the kernel's stderr
    button = subprocess.run([sys.executable, "-c", FORMGRADER_AUTOGRADE, str(course)], cwd=course,
                            capture_output=True, text=True, timeout=300)
    shown = json.loads(button.stdout.strip().splitlines()[-1])
    assert shown["success"] is False, shown
    assert "nbgrader autograde cannot grade this notebook" in shown["log"], shown["log"][-3000:]
    assert "python -m graders batch" in shown["log"] and "DeadKernelError" in shown["log"] + shown["error"]
