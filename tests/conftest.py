"""Fixtures: grading a submission given as source text."""

from __future__ import annotations

import pytest

from graders.config import Config
from graders.runner import grade


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
