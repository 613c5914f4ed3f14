"""`python -m graders gradescope NAME --config instructor.toml --out autograder.zip`: Gradescope's autograder.

Gradescope unzips the file into /autograder/source, runs `setup.sh` once when it builds
the image, then `run_autograder` for each submission (the student's files in
/autograder/submission; results in /autograder/results/results.json). The zip holds:

    setup.sh          apt: python3, bubblewrap (and the assignment's Debian datasets, made readable by root
                      only); a venv with the CPU build of torch (Gradescope has no GPU) and requirements.txt
    run_autograder    grades /autograder/submission with graders/release/autograder.py
    gradescope.json   the assignment, per-check visibility, stdout visibility, leaderboard, time cap,
                      whether to grade where the host check fails (--allow-unsafe-host)
    instructor.toml   the hidden config (seeds...) of this assignment only: its table, [limits] and [flags]
                      of the instructor's file (a course-wide file names every assignment); readable by root
                      only at every run
    graders/, graders_worker/, assignments/NAME/NAME.py, datasets/   the engine and this grader, whole
                      (no solutions, no other assignment; datasets/ only for an assignment that reads one)

Before `build` reports success it grades the reference and the template inside the
built layout (`self_test`: the zip unpacked into a folder laid out like Gradescope's
container, `run_autograder` run as Gradescope runs it, with this machine's Python in
place of the venv setup.sh makes): the reference must earn full marks and the template
zero, without a grader error; else the zip is removed and the build fails.

The sandbox inside Gradescope's container: docs/instructor.md ("Gradescope").
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from graders import assignments
from graders.config import FLAGS_TABLE, LIMITS_TABLE, Config
from graders.outputs.gradescope import VISIBILITIES
from graders.paths import DATASETS_DIR, REPO_ROOT, WORKER_PACKAGE_DIR
from graders.release import kit, packages
from graders.toml_text import dumps, loads

TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
GRADESCOPE_TIMEOUT_S = 2400  # what to set as the assignment's autograder timeout (Gradescope's default is less)
STARTUP_MARGIN_S = 120  # container start, imports, writing results: inside Gradescope's timeout, outside ours
SETTINGS = "gradescope.json"
SELF_TEST_ENV = "AUTOGRADER_SELF_TEST"  # the build's own run: the host check of the build machine does not stop it
SELF_TEST_TIMEOUT_S = 3600  # of each of the two gradings of the self-test

SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image.
set -euxo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y python3 python3-venv python3-pip bubblewrap {debian}
{hide_datasets}python3 -m venv /autograder/venv
/autograder/venv/bin/pip install --upgrade pip
# the CPU build of torch: Gradescope's machines have no GPU, and the default Linux wheel is the CUDA one
/autograder/venv/bin/pip install --index-url {torch_index} "{torch}"
/autograder/venv/bin/pip install -r /autograder/source/requirements.txt
"""

RUN = """#!/usr/bin/env bash
# Gradescope runs this for each submission: grade /autograder/submission into /autograder/results/results.json.
# AUTOGRADER_ROOT and AUTOGRADER_PYTHON exist for testing outside Gradescope.
ROOT="${AUTOGRADER_ROOT:-/autograder}"
PYTHON="${AUTOGRADER_PYTHON:-/autograder/venv/bin/python}"
cd "$ROOT/source" && exec "$PYTHON" -m graders.release.autograder "$ROOT"
"""


HIDE_DATASETS = """# The grader holds images of these files out of training and evaluates on them: only root (the grader) may
# read them. Without bubblewrap (Docker) each worker runs under a uid of its own, which could read them
# otherwise (docs/security.md); the VAE's result says "not certified" where a worker can.
chmod -R go-rwx {dirs}
"""


def _dataset_spec(assignment: str) -> dict:
    """The manifest's entry of the dataset the assignment trains on by default (its grader's `dataset` option), or {}.
    (The manifest is read directly: graders.datasets is not shipped with every assignment.)"""
    name = assignments.grader(assignment).defaults.get("dataset")
    return json.loads((DATASETS_DIR / "manifest.json").read_text())["datasets"][name] if name else {}


def debian_packages(assignment: str) -> list[str]:
    """The Debian packages that hold the assignment's dataset, for setup.sh to install."""
    package = _dataset_spec(assignment).get("debian_package")
    return [package] if package else []


def _hide_datasets(assignment: str) -> str:
    """The setup lines that make the assignment's Debian dataset folders readable by root only ('' if none)."""
    dirs = sorted(_dataset_spec(assignment).get("system_dirs", []))
    return HIDE_DATASETS.format(dirs=" ".join(dirs)) if dirs else ""


def _torch_requirement() -> str:
    return next(line for line in packages.requirements().splitlines() if line.startswith("torch"))


def assignment_config(text: str, assignment: str, source: str) -> str:
    """The part of an instructor config one assignment's grading reads: its table, [limits] and [flags].

    A course-wide file holds a table per assignment; the zip's engine knows only its own
    assignment, and the other tables (their hidden seeds above all) have no business there.
    """
    data = loads(text)
    kept = {k: v for k, v in data.items() if k in (LIMITS_TABLE, FLAGS_TABLE, assignment)}
    return dumps(kept, f"The instructor config for {assignment}, from {source} (its other tables left out).")


def build(assignment: str, out: str | Path, *, config: str | Path | None = None, torch_index: str | None = None,
          hidden: tuple[str, ...] = (), stdout_visibility: str = "hidden", leaderboard: bool = True,
          timeout_s: float = GRADESCOPE_TIMEOUT_S, allow_unsafe_host: bool = False) -> Path:
    """Write the autograder zip of `assignment`, then grade the reference and the template inside it (`self_test`);
    `hidden` checks are shown to students after the due date."""
    effective = Config.load(config).effective(assignment)
    if unknown := set(hidden) - {c.name for c in effective.checks}:
        raise ValueError(f"--hidden names unknown checks {sorted(unknown)}")
    if stdout_visibility not in VISIBILITIES:
        raise ValueError(f"stdout visibility must be one of {VISIBILITIES}")
    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp)
        modules = kit.engine_modules(assignment, set(), entry_points=(*kit.ENTRY_POINTS, __name__, "graders.release.autograder"))
        for name in sorted(modules):  # the real modules: this is the official grader
            if (path := kit.module_file(name)) is not None:
                (source / path.relative_to(REPO_ROOT)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, source / path.relative_to(REPO_ROOT))
        needed = kit.kit_modules(assignment, set())  # reinforce_baseline's adapter imports reinforce's
        others = {f"{n}.py" for n in assignments.names() if n != assignment and f"{kit.WORKER_ADAPTERS}.{n}" not in needed}
        shutil.copytree(WORKER_PACKAGE_DIR, source / WORKER_PACKAGE_DIR.name,
                        ignore=lambda d, names: [n for n in names if n == "__pycache__"
                                                 or (Path(d).name == "adapters" and n in others)])
        if (source / "graders" / "datasets.py").exists() and "dataset" in effective.settings:
            shutil.copytree(DATASETS_DIR, source / "datasets", ignore=shutil.ignore_patterns("cache", "__pycache__"))
        template = assignments.template_paths(assignment)[0]
        (source / "assignments" / assignment).mkdir(parents=True)
        shutil.copy(template, source / "assignments" / assignment / template.name)
        if config:
            (source / "instructor.toml").write_text(assignment_config(Path(config).read_text(), assignment,
                                                                      Path(config).name))
        (source / "requirements.txt").write_text(packages.requirements())
        (source / SETTINGS).write_text(json.dumps({
            "assignment": assignment, "config": "instructor.toml" if config else None,
            "visibility": dict.fromkeys(hidden, "after_due_date"), "stdout_visibility": stdout_visibility,
            "leaderboard": leaderboard, "total_seconds": timeout_s - STARTUP_MARGIN_S,
            "allow_unsafe_host": allow_unsafe_host}, indent=1) + "\n")
        (source / "setup.sh").write_text(SETUP.format(debian=" ".join(debian_packages(assignment)),
                                                      hide_datasets=_hide_datasets(assignment),
                                                      torch_index=torch_index or TORCH_CPU_INDEX,
                                                      torch=_torch_requirement()))
        (source / "run_autograder").write_text(RUN)
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(source.rglob("*")):
                if path.is_file():
                    info = zipfile.ZipInfo(str(path.relative_to(source)))
                    executable = path.name in ("setup.sh", "run_autograder")
                    info.external_attr = ((stat.S_IFREG | (0o755 if executable else 0o644)) << 16)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    zf.writestr(info, path.read_bytes())
    try:
        self_test(out, assignment)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return out


def unpack(zip_path: Path, root: Path) -> Path:
    """`root` laid out as Gradescope's container: source/ (the zip, modes kept), submission/, results/."""
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(root / "source")
        for info in zf.infolist():  # zipfile does not restore modes
            os.chmod(root / "source" / info.filename, info.external_attr >> 16 & 0o777)
    (root / "submission").mkdir()
    (root / "results").mkdir()
    return root


def run_in(root: Path, python: str = sys.executable, env: dict | None = None,
           timeout: float = SELF_TEST_TIMEOUT_S) -> dict:
    """Run `run_autograder` as Gradescope does, in a folder `unpack` made; its results.json (or a ValueError)."""
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    environment.update(AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=python, **(env or {}))
    done = subprocess.run([str(root / "source" / "run_autograder")], env=environment, capture_output=True, text=True,
                          timeout=timeout)
    results = root / "results" / "results.json"
    if done.returncode != 0 or not results.is_file():
        raise ValueError(f"run_autograder failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return json.loads(results.read_text())


def self_test(zip_path: Path, assignment: str) -> None:
    """Grade the reference (full marks expected) and the template (zero) inside the zip's own layout."""
    runs = [(assignments.solution_path(assignment), "full marks"), (assignments.template_paths(assignment)[1], "zero")]
    for submission, expected in runs:
        with tempfile.TemporaryDirectory(prefix="autograder-self-test-") as tmp:
            root = unpack(zip_path, Path(tmp) / "autograder")
            shutil.copy(submission, root / "submission" / f"{assignment}{submission.suffix}")
            results = run_in(root, env={SELF_TEST_ENV: "1"})
        score, most = results.get("score"), sum(t.get("max_score", 0) for t in results.get("tests", []))
        error = (results.get("extra_data") or {}).get("internal_error")
        good = not error and bool(results.get("tests")) and score == (most if expected == "full marks" else 0)
        if not good:
            raise ValueError(f"the built autograder gave {submission.name} {score} / {most} ({expected} expected)"
                             + (f"; grader error: {error}" if error else "") + "; its output: "
                             + str(results.get("output", ""))[:2000])
