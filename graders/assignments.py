"""Where each assignment's parts live: solutions/NAME, assignments/NAME, graders/NAME, graders_worker/adapters."""

from __future__ import annotations

import functools
from pathlib import Path

from graders import contract
from graders.paths import GRADERS_DIR, SOLUTIONS_DIR, TEMPLATES_DIR


def names() -> list[str]:
    return sorted(p.parent.name for p in GRADERS_DIR.glob("*/grader.py"))


@functools.cache
def grader(name: str) -> contract.Grader:
    """The assignment's grader module, checked against the contract (graders/contract.py)."""
    if name not in names():
        raise KeyError(f"unknown assignment '{name}'; known: {', '.join(names())}")
    return contract.load(name)


def solution_path(name: str) -> Path:
    return SOLUTIONS_DIR / name / f"{name}.py"


def template_paths(name: str) -> list[Path]:
    folder = TEMPLATES_DIR / name
    return [folder / f"{name}.py", folder / f"{name}.ipynb"]

