"""Any grading host grades the same (issue 28): the worker imports what the grader's environment has.

Each test builds a small Python environment of a kind instructors have (a venv reached
through a link, a project folder reached through a link, packages added by .pth files
and an editable install, a conda-like prefix with its own interpreter), starts a grader
with that environment's python, and asks a worker, in each isolation mode, to import
what the grader can import. The environments reuse the test venv's packages (links,
.pth lines, hard links), so building one takes a fraction of a second.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from helpers import FAST_BANDITS, NEEDS_BUBBLEWRAP, solution_source

from graders.outputs.table import table
from graders.paths import REPO_ROOT
from graders.results import student_status
from graders.sandbox import isolation

MODES = ("bubblewrap", "process")
SITE = sysconfig.get_paths()["purelib"]  # the test venv's site-packages: numpy, torch, gymnasium
IMPORTED = ["numpy"]  # imported for real in the worker (its shared libraries load)
FOUND = ["torch", "gymnasium"]  # found by the import system (importing them costs seconds)

# Run by the environment's own python: a grader that starts a worker and asks it what it imports.
GRADER = """
import importlib.util, json, sys
from graders.sandbox import Limits, Worker

mode, imported, found = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
PROBE = '''
def probe(imported, found):
    import importlib, importlib.util, sys
    failed = []
    for name in imported:
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    failed += [f"{name}: not found" for name in found if importlib.util.find_spec(name) is None]
    return {"failed": failed, "prefix": sys.prefix}
'''
grader_failed = [n for n in imported + found if importlib.util.find_spec(n) is None]
with Worker("bandits", PROBE, limits=Limits(isolation=mode)) as worker:
    try:
        reply = worker.call("probe", imported, found, timeout=120)
    except Exception as exc:
        reply = {"failed": [f"the worker: {exc}", worker.output[-3000:]], "prefix": None}
print(json.dumps({"grader_failed": grader_failed, "grader_prefix": sys.prefix, **reply}))
"""


def _mode(mode: str) -> None:
    try:
        isolation.plan(mode)
    except isolation.IsolationUnavailable as exc:
        pytest.skip(NEEDS_BUBBLEWRAP if "not installed" in str(exc) else f"bubblewrap does not work here: {exc}")


def _grade_with(python: Path | str, mode: str, tmp_path: Path, imported=(), found=(), env: dict | None = None) -> dict:
    script = tmp_path / "grader_probe.py"
    script.write_text(GRADER)
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    environment.update(env or {})
    done = subprocess.run([str(python), str(script), mode, ",".join([*IMPORTED, *imported]), ",".join([*FOUND, *found])],
                          cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _venv_python() -> Path:
    """The test venv's interpreter as a path inside its prefix (skip where the tests do not run in a venv)."""
    if sys.prefix == sys.base_prefix or not Path(sys.executable).is_relative_to(sys.prefix):
        pytest.skip("needs the tests to run in a venv (make test makes .venv)")
    return Path(sys.executable).relative_to(sys.prefix)


@pytest.mark.parametrize("mode", MODES)
def test_a_venv_reached_through_a_link(tmp_path, mode):
    _mode(mode)
    link = tmp_path / "venv"
    link.symlink_to(os.path.realpath(sys.prefix), target_is_directory=True)
    result = _grade_with(link / _venv_python(), mode, tmp_path)
    assert result["grader_failed"] == [] and result["failed"] == [], result
    assert result["prefix"] == result["grader_prefix"] == str(link)  # the worker's interpreter found its pyvenv.cfg


@pytest.mark.parametrize("mode", MODES)
def test_a_project_folder_reached_through_a_link(tmp_path, mode):
    _mode(mode)
    python = _venv_python()
    if not Path(sys.prefix).resolve().is_relative_to(REPO_ROOT):
        pytest.skip("needs the venv inside the project folder (make test makes .venv there)")
    link = tmp_path / "course"
    link.symlink_to(REPO_ROOT, target_is_directory=True)
    inside = link / Path(sys.prefix).resolve().relative_to(REPO_ROOT)
    result = _grade_with(inside / python, mode, tmp_path)
    assert result["grader_failed"] == [] and result["failed"] == [], result
    assert result["prefix"] == result["grader_prefix"] == str(inside)


def _pth_venv(tmp_path: Path) -> Path:
    """A venv without packages of its own: a .pth line adds the test venv's site-packages, another a folder with a
    module, and an editable install (setuptools' shape: a finder with a MAPPING, installed by a .pth import line)
    a package that lives elsewhere."""
    venv = tmp_path / "thin-venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "host_probe_extra.py").write_text("VALUE = 1\n")
    source = tmp_path / "src" / "host_probe_editable"
    source.mkdir(parents=True)
    (source / "__init__.py").write_text("VALUE = 2\n")
    (site / "course-deps.pth").write_text(f"{SITE}\n")
    (site / "extra.pth").write_text(f"# a comment\n{extra}\n")
    (site / "__editable___host_probe_finder.py").write_text(f"""
import sys
from importlib.machinery import PathFinder
MAPPING = {{"host_probe_editable": {str(source)!r}}}

class _Finder:
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname in MAPPING:
            return PathFinder.find_spec(fullname, [str(__import__("pathlib").Path(MAPPING[fullname]).parent)])
        return None

def install():
    if _Finder not in sys.meta_path:
        sys.meta_path.append(_Finder)
""")
    (site / "__editable__.host_probe-1.0.pth").write_text(
        "import __editable___host_probe_finder; __editable___host_probe_finder.install()\n")
    return venv / "bin" / "python"


@pytest.mark.parametrize("mode", MODES)
def test_packages_added_by_pth_files_and_editable_installs(tmp_path, mode):
    _mode(mode)
    python = _pth_venv(tmp_path)
    # the grader runs from the checkout (PYTHONPATH): that folder is never the worker's
    result = _grade_with(python, mode, tmp_path, imported=["host_probe_extra", "host_probe_editable"],
                         env={"PYTHONPATH": str(REPO_ROOT)})
    assert result["grader_failed"] == [] and result["failed"] == [], result


def _conda_like(tmp_path: Path) -> Path:
    """A prefix with its own interpreter and standard library (hard links of the running one's) and site-packages
    (a .pth line to the test venv's packages): no pyvenv.cfg, as in a conda environment."""
    prefix = tmp_path / "conda" / "envs" / "course"
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    (prefix / "bin").mkdir(parents=True)
    _link_or_copy(os.path.realpath(sys.executable), str(prefix / "bin" / "python"))
    skipped = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "__pycache__"}
    shutil.copytree(stdlib, prefix / "lib" / version, copy_function=_link_or_copy, symlinks=True,
                    ignore=lambda folder, names: [n for n in names if n in skipped])
    site = prefix / "lib" / version / "site-packages"
    site.mkdir()
    (site / "course-deps.pth").write_text(f"{SITE}\n")
    return prefix / "bin" / "python"


@pytest.mark.parametrize("mode", MODES)
def test_a_conda_like_prefix_with_its_own_python(tmp_path, mode):
    _mode(mode)
    python = _conda_like(tmp_path)
    result = _grade_with(python, mode, tmp_path, env={"PYTHONPATH": str(REPO_ROOT)})
    assert result["grader_prefix"] == str(python.parent.parent), result  # not a venv of the test interpreter
    assert result["grader_failed"] == [] and result["failed"] == [], result


# ----------------------------------------------------------------------------- a host failure is never the student's

HOST_FAILED = "the grading machine could not run your code (not your fault"


def _limits(mode: str, extra: str = "") -> str:
    _mode(mode)
    return f'[limits]\nisolation = "{mode}"\n{extra}'


@pytest.mark.parametrize("mode", MODES)
def test_a_sandbox_that_cannot_start_a_worker_is_a_grader_error(grade_source, mode):
    """A memory limit too small for Python and numpy: no worker starts, whatever the student wrote."""
    grading = grade_source("bandits", solution_source("bandits"), config_toml=_limits(mode, "memory_mb = 40\n"))
    assert student_status(grading) == "grader_error", table(grading)
    assert grading.internal_error.startswith("the grading host failed: a worker without student code")
    assert all(r.status == "error" and HOST_FAILED in r.message for r in grading.results)
    assert not any("your code raised" in r.message or "your submission" in r.message.split("\n")[0]
                   for r in grading.results)


@pytest.mark.parametrize("mode", MODES)
def test_a_worker_that_cannot_import_what_the_grader_has_is_a_grader_error(grade_source, mode):
    """300 MB: numpy loads, torch does not. A submission that imports torch is not to blame; one that does not is
    graded as usual."""
    config = _limits(mode, "memory_mb = 300\n")
    plain = grade_source("bandits", solution_source("bandits"), config_toml=config + FAST_BANDITS)
    assert plain.score == plain.max_score and not plain.internal_error, table(plain)
    with_torch = grade_source("bandits", "import torch\n" + solution_source("bandits"), config_toml=config + FAST_BANDITS)
    assert student_status(with_torch) == "grader_error", table(with_torch)
    assert "importing torch" in with_torch.internal_error and "libtorch" in with_torch.internal_error
    assert all(HOST_FAILED in r.message for r in with_torch.results)


HOSTILE_LOAD_FAILURES = {
    # each fails while importing, as a broken host would: the probe starts, so the student's code is to blame
    "forged_missing_numpy": 'raise ModuleNotFoundError("No module named \'numpy\'", name="numpy")\n',
    "exits_at_import": "import os\nos._exit(1)\n",
    "imports_torch_then_dies": "import torch\nimport os\nos.kill(os.getpid(), 9)\n",
    "module_the_grader_lacks": "import tensorflow_is_not_installed_here\n",
    "grader_package": "from graders.bandits import grader\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_LOAD_FAILURES))
def test_a_submission_that_fails_like_a_broken_host_is_still_the_students(grade_source, name):
    grading = grade_source("bandits", HOSTILE_LOAD_FAILURES[name] + solution_source("bandits"))
    assert grading.score == 0 and not grading.internal_error, table(grading)
    assert student_status(grading) == "error"
    assert HOST_FAILED not in grading.results[0].message
