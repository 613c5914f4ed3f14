"""Fixtures: grading a submission given as source text."""

from __future__ import annotations

from collections import Counter

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


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def pytest_terminal_summary(terminalreporter):
    """One line per reason for the skipped tests, saying what to install to run them (CI installs it all)."""
    reasons = Counter(_skip_reason(r) for r in terminalreporter.stats.get("skipped", []))
    if reasons:
        terminalreporter.section("skipped: what to install to run them")
        for reason, count in reasons.most_common():
            terminalreporter.write_line(f"{count:4d} skipped, {reason}")
