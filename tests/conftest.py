"""Shared fixtures: grading a submission given as source text, and the repo's paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from graders import assignments
from graders.config import Config
from graders.runner import grade

ROOT = assignments.REPO_ROOT


def by_name(grading) -> dict:
    return {r.name: r for r in grading.results}


@pytest.fixture
def grade_source(tmp_path):
    """grade_source(assignment, source, suffix=".py", config_toml="") -> Grading, on the CPU."""

    def run(assignment: str, source: str, suffix: str = ".py", config_toml: str = "", **kwargs):
        path = tmp_path / f"{assignment}{suffix}"
        path.write_text(source)
        config = None
        if config_toml:
            (tmp_path / "config.toml").write_text(config_toml)
            config = Config.load(tmp_path / "config.toml")
        return grade(assignment, path, device="cpu", config=config, **kwargs)

    return run


def solution_source(assignment: str) -> str:
    return assignments.solution_path(assignment).read_text()


def variant(assignment: str, old: str, new: str) -> str:
    """The reference with one targeted change (the change must apply exactly once)."""
    source = solution_source(assignment)
    assert source.count(old) == 1, f"variant does not apply: {old!r}"
    return source.replace(old, new)


__all__ = ["ROOT", "Path", "by_name", "solution_source", "variant"]
