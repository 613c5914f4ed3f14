"""What a student kit (graders/release/kit.py) and Gradescope's image (graders/release/gradescope.py) pip install.

A kit's requirements are the distributions its code imports (the standard library and the
project's own packages aside), pinned as pyproject.toml pins the project's dependencies, and
the notebook app. torch is the CPU build unless asked otherwise: PyPI's Linux wheel of a
release is the CUDA build (with a few GB of CUDA packages), its macOS and Windows wheels are
CPU builds, and PyTorch's CPU index holds the Linux CPU build as `X+cpu`.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from graders.paths import REPO_ROOT

PACKAGES = ("graders", "graders_worker")  # the project's own: they travel as files
NOT_FOR_STUDENTS = ("nbgrader", "pytest", "pytest-timeout", "jupyter")  # requirements of the instructor's side only
NOTEBOOK_APP = "jupyterlab"  # opens the template notebook (its kernel is also what VS Code needs)
FROM_THE_NOTEBOOK_APP = ("IPython",)  # graders/notebook.py shows its table with IPython's display, in Jupyter
# The engine handles torch values (a recording's tensors, the worker's torch helpers) only for an assignment whose
# own code uses torch: a kit requires torch when its grader, adapter or template imports it.
ONLY_FOR_ITS_USERS = ("torch",)
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"  # its Linux wheels are tagged +cpu; PyPI's are CUDA builds


class PackagesError(RuntimeError):
    """A dependency the requirements cannot name as they must (torch not pinned exactly, an unlisted import)."""


def _pins() -> dict[str, str]:
    """{distribution: its requirement line} as pyproject.toml pins the project's dependencies."""
    import tomllib

    deps = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {re.match(r"[A-Za-z0-9_.-]+", d).group(0).lower(): d for d in deps}


def requirements(packages: list[str] | None = None, gpu: bool = False) -> str:
    """requirements.txt for these distributions (default: every dependency but the instructor's side): torch
    is the CPU build (PyTorch's CPU index on Linux, PyPI elsewhere, where it has no CUDA) unless `gpu` (PyPI's
    build: CUDA on Linux)."""
    pins = _pins()
    names = packages if packages is not None else [n for n in pins if n not in NOT_FOR_STUDENTS]
    lines = []
    for name in names:
        pin = pins.get(name, name)
        if name != "torch" or gpu:
            lines.append(pin)
            continue
        version = re.fullmatch(r"torch==([\w.]+)", pin.replace(" ", ""))
        if version is None:
            raise PackagesError(f"pyproject.toml must pin torch exactly (torch==X.Y.Z), not {pin!r}: a kit names "
                               "the CPU build of that release")
        lines = [f"--extra-index-url {TORCH_CPU_INDEX}", f"torch=={version[1]}+cpu; sys_platform == 'linux'",
                 f"torch=={version[1]}; sys_platform != 'linux'", *lines]
    return "\n".join(lines) + "\n"


def kit_packages(assignment: str, folder: Path) -> list[str]:
    """The distributions a kit's code imports (stdlib and the kit's own packages aside; an import guarded by
    `except ImportError` is optional), with the notebook app; PackagesError for one pyproject.toml does not list."""
    pins = _pins()
    own = [folder / "graders" / assignment, folder / "graders_worker" / "adapters" / f"{assignment}.py",
           folder / f"{assignment}.py"]
    found, by_the_assignment = set(), set()
    for path in sorted(folder.rglob("*.py")):
        names = _third_party(path)
        found |= names
        if any(path == o or o in path.parents for o in own):
            by_the_assignment |= names
    found -= {n for n in ONLY_FOR_ITS_USERS if n not in by_the_assignment}
    found -= set(FROM_THE_NOTEBOOK_APP)
    if unknown := sorted(n for n in found if n.lower() not in pins):
        raise PackagesError(f"the kit's code imports {unknown}, which pyproject.toml does not list as dependencies")
    return [*sorted(n.lower() for n in found), NOTEBOOK_APP]


def _third_party(path: Path) -> set[str]:
    """The top-level names of the packages a file imports that are neither the standard library nor ours."""
    tree = ast.parse(path.read_text())
    optional = set()
    for node in ast.walk(tree):
        caught = [h.type for h in getattr(node, "handlers", []) if h.type is not None]
        if isinstance(node, ast.Try) and any(n.id in ("ImportError", "ModuleNotFoundError") for t in caught
                                             for n in ast.walk(t) if isinstance(n, ast.Name)):
            optional |= {id(sub) for statement in node.body for sub in ast.walk(statement)}
    names = set()
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in PACKAGES}
