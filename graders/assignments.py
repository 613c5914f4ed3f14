"""Where each assignment's parts live; an assignment is a package graders/NAME with a grader.py."""

from __future__ import annotations

import importlib
from pathlib import Path

from graders.submission import top_level_assigned_names

REPO_ROOT = Path(__file__).resolve().parent.parent
GRADERS_DIR = REPO_ROOT / "graders"


def names() -> list[str]:
    return sorted(p.parent.name for p in GRADERS_DIR.glob("*/grader.py"))


def grader_module(name: str):
    if name not in names():
        raise KeyError(f"unknown assignment '{name}'; known: {', '.join(names())}")
    return importlib.import_module(f"graders.{name}.grader")


def solution_path(name: str) -> Path:
    return REPO_ROOT / "solutions" / name / f"{name}.py"


def template_paths(name: str) -> list[Path]:
    folder = REPO_ROOT / "assignments" / name
    return [folder / f"{name}.py", folder / f"{name}.ipynb"]


def template_names(name: str) -> set[str]:
    """Top-level names the template assigns; a notebook keeps assignments to these."""
    return top_level_assigned_names(template_paths(name)[0].read_text())
