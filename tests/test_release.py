"""Student kits (python -m graders release): no solution, no instructor-only code, and they grade on their own."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import NEEDS_FASHION_MNIST, ROOT, solution_source

from graders import assignments, datasets
from graders.cli import main
from graders.release import kit as kits
from graders.release import packages

FAST_BANDITS = "[bandits]\ntestbed_runs = 100\ntestbed_steps = 150\n[bandits.thresholds]\n" + "".join(
    f"{t} = 0.05\n" for t in ("epsilon_greedy_reward", "epsilon_greedy_optimal", "optimistic_optimal", "ucb_reward",
                              "gradient_baseline_optimal", "gradient_no_baseline_optimal"))
# Runs a command of the kit with only the kit and its requirements: the repository (where the
# grader, its instructor-only modules and the solutions live), the instructor-side packages and
# the project's dependencies the kit's requirements.txt does not list cannot be imported, and
# every module the grading loaded must come from the kit.
IN_KIT = """
import importlib.abc, re, sys
REPO, KIT = sys.argv[1], sys.argv[2]
listed = {re.match("[A-Za-z0-9_.-]*", line).group(0).lower() for line in open("requirements.txt")}
blocked = {"nbgrader", "pytest", "_pytest", "solutions", "ray"} | (
    {"torch", "gymnasium", "scipy", "matplotlib", "tqdm"} - listed)
class NotInTheKit(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(name + " is not in the kit's requirements")
sys.meta_path.insert(0, NotInTheKit())
def in_repo(path):  # the repository's code; a virtual environment inside it (.venv) is the kit's packages
    return path.startswith(REPO) and not path.startswith(sys.prefix)
sys.path[:] = [KIT] + [p for p in sys.path if p not in ("", ".") and not in_repo(p)]
from graders.cli import main
code = main(sys.argv[3:])
stray = [m.__file__ for m in list(sys.modules.values()) if in_repo(getattr(m, "__file__", None) or "")]
assert not stray, stray
sys.exit(code)
"""


def in_kit(kit: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", IN_KIT, str(ROOT), str(kit), *args], cwd=kit, capture_output=True,
                          text=True, timeout=900, env=env)


@pytest.fixture(scope="module")
def bandits_kit(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kits") / "bandits"
    assert main(["release", "bandits", "--out", str(out)]) == 0
    (out / "fast.toml").write_text(FAST_BANDITS)
    return out


@pytest.fixture(scope="module")
def policy_gradient_kit(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kits") / "policy_gradient"
    assert main(["release", "policy_gradient", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def nas_kit(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kits") / "nas"
    assert main(["release", "nas", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def vae_kit(tmp_path_factory) -> Path:
    if not datasets.available("fashion-mnist"):
        pytest.skip(NEEDS_FASHION_MNIST)
    out = tmp_path_factory.mktemp("kits") / "vae"
    assert main(["release", "vae", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("name", assignments.names())
def test_the_leak_guard_finds_a_solution_and_passes_a_template(name, tmp_path):
    """The guard the release runs on every kit: a copy of the reference is a leak, the template is not."""
    shutil.copy(assignments.solution_path(name), tmp_path / "copied.py")
    assert "copied.py" in kits.leaked_lines(tmp_path, name)
    (tmp_path / "copied.py").unlink()
    for template in assignments.template_paths(name):
        shutil.copy(template, tmp_path / template.name)
    assert kits.leaked_lines(tmp_path, name) == {}


@pytest.mark.parametrize("fixture", ["bandits_kit", "policy_gradient_kit", "nas_kit"])
def test_kit_holds_the_template_and_no_solution_nor_instructor_code(fixture, request):
    kit = request.getfixturevalue(fixture)
    name = kit.name
    files = {p.relative_to(kit).as_posix(): p for p in kit.rglob("*") if p.is_file()}
    assert {f"{name}.ipynb", f"{name}.py", f"assignments/{name}/{name}.py", "requirements.txt", "README.md",
            f"graders/{name}/grader.py", "graders_worker/main.py"} <= set(files)
    assert not [f for f in files if f.startswith("solutions/") or f.endswith("variants.py")]
    assert not [f for f in files if any(f.startswith(f"graders/{o}/") for o in assignments.names() if o != name)]
    text = {f: p.read_text(errors="replace") for f, p in files.items() if p.suffix not in (".npz", ".gz")}
    assert kits.leaked_lines(kit, name) == {}
    for module in assignments.grader(name).instructor_only:  # a stand-in, not the real code
        stand_in = text[module.replace(".", "/") + ".py"]
        assert "Stand-in for the instructor's" in stand_in and "def " not in stand_in
    instructor_side = [f for f in files for m in kits.INSTRUCTOR_SIDE
                       if f == m.replace(".", "/") + ".py" or f.startswith(m.replace(".", "/") + "/")]
    assert not instructor_side and "graders/batch/ray_executor.py" not in files
    if name == "bandits":  # the worker's modules are crawled too: no served environment for a bandit
        assert not [f for f in files if f.startswith(("graders_worker/rl/", "graders/rl/"))]
    requirements = (kit / "requirements.txt").read_text()
    for instructor_package in ("nbgrader", "pytest", "ray", "jupyter\n", "ruff"):
        assert instructor_package not in requirements
    assert "jupyterlab" in requirements and "numpy>=" in requirements
    if name == "bandits":  # no torch nor gymnasium in the bandits kit: nothing of it imports them
        assert "torch" not in requirements and "gymnasium" not in requirements and "scipy>=" in requirements
        assert not (kit / "requirements-gpu.txt").exists()
    else:
        assert_cpu_torch(requirements, (kit / "requirements-gpu.txt").read_text())


def assert_cpu_torch(requirements: str, gpu: str) -> None:
    """CPU torch everywhere: PyTorch's CPU index and its +cpu build on Linux (PyPI's Linux wheel is the CUDA
    build), PyPI's elsewhere (CPU builds); the GPU file takes PyPI's."""
    version = re.search(r'"torch==([\d.]+)"', (ROOT / "pyproject.toml").read_text())[1]
    lines = requirements.splitlines()
    assert f"--extra-index-url {packages.TORCH_CPU_INDEX}" in lines and packages.TORCH_CPU_INDEX.endswith("/whl/cpu")
    assert f"torch=={version}+cpu; sys_platform == 'linux'" in lines
    assert f"torch=={version}; sys_platform != 'linux'" in lines
    assert [line for line in lines if line.startswith("torch")] == [
        f"torch=={version}+cpu; sys_platform == 'linux'", f"torch=={version}; sys_platform != 'linux'"]
    assert "requirements-gpu.txt" in requirements.splitlines()[1]  # what a GPU user runs instead, in one line
    gpu_lines = gpu.splitlines()
    assert f"torch=={version}" in gpu_lines and "whl/cpu" not in gpu
    assert [line for line in gpu_lines if not line.startswith(("#", "torch"))] == [
        line for line in lines if not line.startswith(("#", "torch", "--"))]


def test_the_kits_install_command_resolves_torch_to_the_cpu_build_here(policy_gradient_kit, tmp_path):
    """What `pip install -r requirements.txt` would install, resolved without installing: on this machine pip
    finds torch's +cpu wheel on local disk (PyTorch's index is not reachable: --retries 0 keeps that short); no
    CUDA package."""
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                           "--report", str(report), "-r", "requirements.txt", "--retries", "0", "--timeout", "10"],
                          cwd=policy_gradient_kit, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    installed = {item["metadata"]["name"].lower(): item["metadata"]["version"]
                 for item in json.loads(report.read_text())["install"]}
    version = re.search(r'"torch==([\d.]+)"', (ROOT / "pyproject.toml").read_text())[1]
    assert installed["torch"] == f"{version}+cpu"
    assert not [n for n in installed if n.startswith(("nvidia", "triton", "cuda"))], sorted(installed)
    assert not {"nbgrader", "ray", "pytest", "gymnasium", "scipy"} & set(installed)


def test_bandits_kit_grades_the_template_zero_and_the_reference_full(bandits_kit, tmp_path):
    template = in_kit(bandits_kit, "grade", "bandits", "bandits.ipynb", "--config", "fast.toml", "--device", "cpu")
    assert template.returncode == 0, template.stderr[-3000:]
    assert "total" in template.stdout and " 0 / 20" in template.stdout and "not your grade" in template.stdout
    (tmp_path / "bandits.py").write_text(solution_source("bandits"))
    reference = in_kit(bandits_kit, "grade", "bandits", str(tmp_path / "bandits.py"), "--config", "fast.toml",
                       "--device", "cpu", "--json", "-")
    assert reference.returncode == 0, reference.stderr[-3000:]
    assert json.loads(reference.stdout)["score"] == 20


def test_policy_gradient_kit_replays_the_exact_answers_for_the_public_seeds(policy_gradient_kit, tmp_path):
    kit = policy_gradient_kit
    assert not json.loads((kit / "graders" / "release" / "kit.json").read_text())["skipped_checks"]
    (tmp_path / "policy_gradient.py").write_text(solution_source("policy_gradient"))
    reference = in_kit(kit, "grade", "policy_gradient", str(tmp_path / "policy_gradient.py"), "--json", "-",
                       "--device", "cpu")
    assert reference.returncode == 0, reference.stderr[-3000:]
    results = json.loads(reference.stdout)
    assert results["score"] == results["extra_data"]["max_score"] == 28, results
    template = in_kit(kit, "grade", "policy_gradient", "policy_gradient.ipynb", "--json", "-", "--device", "cpu")
    assert json.loads(template.stdout)["score"] == 0


def test_nas_kit_grades_with_its_table_and_searches_locally(nas_kit, tmp_path):
    """The NAS kit ships the measured table (LocalSearchSpace and the search checks read it) and the grader's
    controller as a stand-in: the reference earns full marks with the public seeds, the template zero, and the
    reference's `python nas.py` searches the kit's table."""
    assert (nas_kit / "graders" / "nas" / "table.json").read_bytes() == (ROOT / "graders" / "nas" / "table.json").read_bytes()
    (tmp_path / "nas.py").write_text(solution_source("nas"))
    reference = in_kit(nas_kit, "grade", "nas", str(tmp_path / "nas.py"), "--json", "-", "--device", "cpu")
    assert reference.returncode == 0, reference.stderr[-3000:]
    assert json.loads(reference.stdout)["score"] == 20, reference.stdout[-3000:]
    template = in_kit(nas_kit, "grade", "nas", "nas.ipynb", "--json", "-", "--device", "cpu")
    assert json.loads(template.stdout)["score"] == 0
    local = subprocess.run([sys.executable, "-c", IN_KIT.split("from graders.cli")[0] + "import runpy\n"
                            "runpy.run_path(sys.argv[3], run_name='__main__')", str(ROOT), str(nas_kit),
                            str(tmp_path / "nas.py")], cwd=nas_kit, capture_output=True, text=True, timeout=600)
    assert local.returncode == 0, local.stderr[-3000:]
    budget = assignments.grader("nas").defaults["evaluation_budget"]
    assert f"searched {budget} architectures" in local.stdout and "most probable architecture" in local.stdout


def test_checks_the_kit_has_no_answers_for_are_skipped_not_failed(policy_gradient_kit, tmp_path):
    (tmp_path / "other_seeds.toml").write_text("[policy_gradient]\nseeds = [5, 6]\n")
    (tmp_path / "policy_gradient.py").write_text(solution_source("policy_gradient"))
    done = in_kit(policy_gradient_kit, "grade", "policy_gradient", str(tmp_path / "policy_gradient.py"),
                  "--config", str(tmp_path / "other_seeds.toml"), "--device", "cpu")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {line.split()[0]: line.split()[1] for line in done.stdout.splitlines()[2:] if line[:1].isalpha()}
    assert rows["softmax_jacobian"] == "skipped" and "needs the instructor's grader" in done.stdout
    assert "internal grader error" not in done.stdout.lower()
    assert "not your grade" in done.stdout and "skipped check(s)" in done.stdout


def test_kit_offers_only_the_student_commands(bandits_kit):
    listed = in_kit(bandits_kit, "--help")
    assert listed.returncode == 0 and "grade" in listed.stdout and "{list,grade}" in listed.stdout
    for instructor in ("batch", "validate", "templates", "release", "gradescope", "nbgrader"):
        assert instructor not in listed.stdout, listed.stdout
    assert in_kit(bandits_kit, "--version").stdout.strip().startswith("python -m graders")


def test_a_kit_grades_on_a_laptop_without_a_warning(bandits_kit, tmp_path):
    """Without bubblewrap (not on PATH here), as a laptop: nothing on stderr, one plain line that it is expected."""
    done = in_kit(bandits_kit, "grade", "bandits", "bandits.ipynb", "--check", "argmax_breaks_ties_at_random",
                  "--device", "cpu", env={**os.environ, "PATH": str(tmp_path)})
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "without bubblewrap's sandbox (not installed here): expected on a laptop" in done.stdout


def test_the_kit_takes_every_module_its_worker_imports_and_nothing_of_the_instructors_side(monkeypatch):
    """reinforce_baseline's adapter imports reinforce's; RL kits take the served environment, bandits not; a shipped
    module that imports an instructor-side module when imported stops the build (the kit could not import it)."""
    modules = kits.kit_modules("reinforce_baseline", kits.instructor_only_everywhere())
    assert {"graders_worker.adapters.reinforce", "graders_worker.rl.served_env", "graders.rl.server"} <= modules
    assert "graders.rl.reinforce" in modules  # the instructor-only module: a stand-in in the kit
    assert not [m for m in kits.kit_modules("bandits", set()) if m.startswith(("graders_worker.rl", "graders.rl"))]
    monkeypatch.setattr(kits, "INSTRUCTOR_SIDE", (*kits.INSTRUCTOR_SIDE, "graders.selection"))
    with pytest.raises(kits.ReleaseError, match="imports \\['graders.selection'\\] when it is imported"):
        kits.kit_modules("bandits", set())


def test_the_check_cell_grades_the_saved_notebook_in_the_kit(bandits_kit):
    script = ("import sys; sys.path.insert(0, '.'); from graders.notebook import check; "
              "check('bandits', path='bandits.ipynb', device='cpu')")
    done = subprocess.run([sys.executable, "-c", script], cwd=bandits_kit, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Grading bandits.ipynb as saved at" in done.stdout and "Not the official grading" in done.stdout
    assert "total" in done.stdout


def test_a_kit_refuses_to_leak_a_solution_line(tmp_path, monkeypatch):
    # pretend a line the template holds were the solution's
    monkeypatch.setattr(kits, "solution_regions", lambda name: [{"raise NotImplementedError()", "import numpy as np"}])
    with pytest.raises(kits.ReleaseError, match="solution lines"):
        kits.build("bandits", tmp_path / "kit")
    assert not (tmp_path / "kit").exists()


def test_the_vae_kit_ships_the_official_data_with_its_licence(vae_kit):
    """The kit trains and thresholds the official task (Fashion-MNIST, its epochs and threshold), not the fixture:
    the data travels in the kit's data cache (searched first), verified, with its MIT licence."""
    spec = datasets.spec("fashion-mnist")
    folder = vae_kit / "datasets" / "cache" / "fashion-mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted([*spec["files"], "LICENCE"])
    for name, file_spec in spec["files"].items():
        datasets.verify_bytes((folder / name).read_bytes(), file_spec, name)  # raises on a wrong file
    licence = (folder / "LICENCE").read_text()
    assert "Copyright (c) 2017 Zalando SE" in licence and "Permission is hereby granted" in licence
    found = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, '.'); from graders import datasets; "
                            "print(datasets.locate('fashion-mnist', 'train-images-idx3-ubyte.gz')[0])"],
                           cwd=vae_kit, capture_output=True, text=True, timeout=300)
    assert found.returncode == 0 and Path(found.stdout.strip()) == folder / "train-images-idx3-ubyte.gz", found
    assert "datasets/cache/fashion-mnist/" in (vae_kit / "README.md").read_text()
    assert_cpu_torch((vae_kit / "requirements.txt").read_text(), (vae_kit / "requirements-gpu.txt").read_text())


@pytest.mark.slow
def test_the_vae_kit_grades_the_official_training_check(vae_kit, tmp_path):
    (tmp_path / "vae.py").write_text(solution_source("vae"))
    done = in_kit(vae_kit, "grade", "vae", str(tmp_path / "vae.py"), "--check", "test_set_negative_elbo",
                  "--device", "cpu")
    assert done.returncode == 0, done.stderr[-3000:]
    row = next(line for line in done.stdout.splitlines() if line.startswith("test_set_negative_elbo"))
    assert row.split()[1] == "passed", done.stdout
    threshold = assignments.grader("vae").module.MEASURED_THRESHOLDS[("fashion-mnist", 3)]
    assert "held-out fashion-mnist training images" in done.stdout and f"threshold {threshold:.2f}" in done.stdout
    assert "is not installed on this machine" not in done.stdout
