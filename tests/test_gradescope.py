"""Gradescope's autograder zip, run as Gradescope runs it: in a folder laid out like its container."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest
from helpers import FAST_BANDITS, ROOT, solution_source

from graders import assignments
from graders.cli import main
from graders.outputs.gradescope import gradescope
from graders.release.gradescope import unpack
from graders.results import CheckResult, Grading

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "gradescope_results.json").read_text())
FAST_CONFIG = "# the instructor's hidden config\n" + FAST_BANDITS.replace(
    "[bandits]\n", "[bandits]\nseeds = [8123456789012345]\n", 1)
# A course-wide config, as the README shows it: a table per assignment (issue 28: every submission scored 0 with
# "unknown tables" when the zip packed it whole).
COURSE_CONFIG = (FAST_CONFIG + "\n[limits]\nmemory_mb = 4096\n\n[reinforce]\nseeds = [5550001112223334, 5550001112223335]\n"
                 "\n[vae]\nseeds = [4440001112223334]\n[vae.thresholds]\ntest_nelbo = 260.0\n")


def _container(tmp_path: Path, zip_path: Path) -> Path:
    """/autograder as Gradescope lays it out: source/ (the zip), submission/, results/."""
    return unpack(zip_path, tmp_path / "autograder")


def _run(root: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=sys.executable)
    done = subprocess.run([str(root / "source" / "run_autograder")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(results, SCHEMA)
    return results


@pytest.fixture(scope="module")
def autograder_zip(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("gradescope")
    (folder / "instructor.toml").write_text(COURSE_CONFIG)
    out = folder / "autograder.zip"
    assert main(["gradescope", "bandits", "--config", str(folder / "instructor.toml"), "--out", str(out),
                 "--hidden", "testbed_ucb,ucb_selection"]) == 0
    return out


def test_zip_holds_the_scripts_and_the_hidden_config_but_no_solution(autograder_zip):
    with zipfile.ZipFile(autograder_zip) as zf:
        names = set(zf.namelist())
        assert {"setup.sh", "run_autograder", "instructor.toml", "gradescope.json", "requirements.txt",
                "graders/bandits/grader.py", "graders/release/autograder.py", "graders_worker/main.py",
                "assignments/bandits/bandits.py"} <= names
        assert not [n for n in names if n.startswith("solutions/") or "variants" in n or "policy_gradient" in n]
        assert zf.getinfo("run_autograder").external_attr >> 16 & 0o111
        setup = zf.read("setup.sh").decode()
        packed = zf.read("instructor.toml").decode()
        assert not [n for n in names if n.startswith("datasets/")]  # bandits reads no dataset
    # only what this assignment's grading reads: its table, [limits], [flags]; never another assignment's seeds
    assert "8123456789012345" in packed and "memory_mb = 4096" in packed
    assert "[reinforce]" not in packed and "5550001112223334" not in packed and "4440001112223334" not in packed
    assert "torch==" in setup and "/whl/cpu" in setup and "bubblewrap" in setup
    assert subprocess.run(["bash", "-n"], input=setup, text=True).returncode == 0


def test_setup_makes_the_held_out_images_readable_by_root_only(tmp_path, autograder_zip):
    """Issue 29, item 2: in Gradescope's container (no bubblewrap) each worker runs under a uid of its own,
    which read the VAE's held-out images from Debian's world-readable files; setup.sh now makes them
    root's alone (the VAE check reports "not certified" wherever a worker could read a copy)."""
    out = tmp_path / "vae.zip"
    assert main(["gradescope", "vae", "--out", str(out)]) == 0
    with zipfile.ZipFile(out) as zf:
        setup = zf.read("setup.sh").decode()
    assert setup.index("dataset-fashion-mnist") < setup.index("chmod -R go-rwx /usr/share/datasets/fashion-mnist")
    assert subprocess.run(["bash", "-n"], input=setup, text=True).returncode == 0
    with zipfile.ZipFile(autograder_zip) as zf:
        assert "chmod" not in zf.read("setup.sh").decode()  # bandits holds no dataset out


def test_run_autograder_grades_the_submission_into_a_valid_results_json(tmp_path, autograder_zip):
    root = _container(tmp_path, autograder_zip)
    (root / "submission" / "bandits.ipynb").write_text(json.dumps(
        {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                    "source": solution_source("bandits")}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    results = _run(root)
    assert results["score"] == 20 and len(results["tests"]) == len(assignments.grader("bandits").checks)
    visibility = {t["name"]: t["visibility"] for t in results["tests"]}
    assert visibility["testbed_ucb"] == visibility["ucb_selection"] == "after_due_date"
    assert visibility["sample_average_update"] == "visible" and results["stdout_visibility"] == "hidden"
    assert "8123456789012345" not in json.dumps(results)  # the hidden seed stays hidden
    assert not (root / "source" / "instructor.toml").stat().st_mode & 0o077  # readable by root only


def test_a_missing_or_broken_submission_still_gets_a_results_json(tmp_path, autograder_zip):
    root = _container(tmp_path, autograder_zip)
    results = _run(root)  # nothing submitted
    first, *rest = results["tests"]  # the reason once, in the first test; the others point at it
    assert results["score"] == 0 and "bandits.py or bandits.ipynb" in first["output"]
    assert rest and all(first["name"] in t["output"] for t in rest)
    (root / "source" / "gradescope.json").write_text("{")  # a broken autograder: the student is told
    results = _run(root)
    assert results["score"] == 0 and "not your fault" in results["output"]


def test_leaderboard_and_visibility_follow_the_spec():
    grading = Grading("vae", "s.py", "cpu", [CheckResult("elbo", 6, 6, "passed",
                                                         metrics={"test_nelbo": {"value": 251.5, "order": "asc"}})])
    data = gradescope(grading, visibility={"elbo": "after_due_date"}, stdout_visibility="visible", leaderboard=True)
    jsonschema.validate(data, SCHEMA)
    assert data["leaderboard"] == [{"name": "test_nelbo", "value": 251.5, "order": "asc"}]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**data, "max_score": 6}, SCHEMA)  # not a key of the spec


def test_cli_names_the_timeout_and_refuses_unknown_checks(tmp_path, capsys):
    assert main(["gradescope", "bandits", "--out", str(tmp_path / "a.zip"), "--hidden", "no_such_check"]) == 2
    assert "unknown checks" in capsys.readouterr().err
    assert main(["gradescope", "bandits", "--out", str(tmp_path / "a.zip")]) == 0
    assert "autograder timeout" in capsys.readouterr().out
    assert ROOT.exists()


def test_the_build_grades_the_reference_and_the_template_inside_the_zip_before_it_says_so(tmp_path, capsys):
    """A config under which the reference cannot earn full marks is caught at build time, not by students."""
    (tmp_path / "instructor.toml").write_text(FAST_CONFIG.replace("ucb_reward = 0.2", "ucb_reward = 5.0"))
    out = tmp_path / "autograder.zip"
    assert main(["gradescope", "bandits", "--config", str(tmp_path / "instructor.toml"), "--out", str(out)]) == 2
    assert "bandits.py" in capsys.readouterr().err and not out.exists()


def test_the_self_test_catches_a_zip_whose_config_its_engine_cannot_read(tmp_path, monkeypatch):
    """What went wrong before (the whole course-wide file packed): the self-test's grading reports it."""
    from graders.release import gradescope as autograder

    monkeypatch.setattr(autograder, "assignment_config", lambda text, assignment, source: text)
    (tmp_path / "instructor.toml").write_text(COURSE_CONFIG)
    with pytest.raises(ValueError, match="unknown tables"):
        autograder.build("bandits", tmp_path / "autograder.zip", config=tmp_path / "instructor.toml")
    assert not (tmp_path / "autograder.zip").exists()


@pytest.mark.parametrize("uploaded", [["notes.txt", "Bandits.pdf"], ["part1.py", "part2.py"]])
def test_a_wrongly_named_upload_is_told_what_to_upload_first_thing(tmp_path, autograder_zip, uploaded):
    root = _container(tmp_path, autograder_zip)
    for name in uploaded:
        (root / "submission" / name).write_text("x = 1\n")
    results = _run(root)
    assert results["score"] == 0 and results["output"].startswith("YOUR UPLOAD COULD NOT BE GRADED")
    assert all(name in results["output"] for name in uploaded) and "bandits.ipynb" in results["output"]


def test_run_autograder_checks_its_host_first(tmp_path, autograder_zip):
    """A container where no worker starts grades nothing and says why; built with --allow-unsafe-host it grades,
    and results.json records it."""
    root = _container(tmp_path, autograder_zip)
    (root / "submission" / "bandits.py").write_text(solution_source("bandits"))
    config = root / "source" / "instructor.toml"
    config.write_text(config.read_text().replace("memory_mb = 4096", "memory_mb = 40"))
    results = _run(root)
    assert results["score"] == 0 and results["tests"] == [] and "failed its host check" in results["output"]
    settings = root / "source" / "gradescope.json"
    settings.chmod(0o644)
    settings.write_text(json.dumps({**json.loads(settings.read_text()), "allow_unsafe_host": True}))
    results = _run(root)
    assert results["tests"] and "no bandits worker starts" in results["extra_data"]["unsafe_host"]
    assert all(t["score"] == 0 and "not your fault" in t["output"] for t in results["tests"])
