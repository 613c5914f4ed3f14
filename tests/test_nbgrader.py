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

from graders import templates
from graders.cli import main
from graders.outputs import gradebook
from tests.test_batch import FAST_CONFIG


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
def test_nbgrader_course_end_to_end(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    (course / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.course_id = 'rl'\nc.CourseDirectory.root = {str(course)!r}\n")
    assert main(["nbgrader-source", "bandits", str(course)]) == 0
    _nbgrader(course, "generate_assignment", "bandits", "--force")
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

    config = tmp_path / "config.toml"
    config.write_text(FAST_CONFIG)
    out = tmp_path / "results"
    assert main(["batch", "bandits", str(course / "submitted"), "--out", str(out), "-j", "2", "--device", "cpu",
                 "--config", str(config)]) == 0
    with open(out / "grades.csv", newline="") as f:
        ours = {row["student"]: row for row in csv.DictReader(f)}
    assert ours["alice"]["total"] == "20" and ours["bob"]["total"] == "0" and ours["bob"]["status"] == "error"

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


def _course(tmp_path: Path) -> Path:
    course = tmp_path / "course"
    course.mkdir()
    (course / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.course_id = 'rl'\nc.CourseDirectory.root = {str(course)!r}\n")
    assert main(["nbgrader-source", "bandits", str(course)]) == 0
    _nbgrader(course, "generate_assignment", "bandits", "--force")
    return course


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
