"""Plain helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

from graders import assignments
from graders.paths import REPO_ROOT as ROOT

__all__ = ["NEEDS_BUBBLEWRAP", "NEEDS_FASHION_MNIST", "ROOT", "by_name", "edited", "failed", "solution_source"]

# Skip reasons: one line each, saying what to install (conftest.py counts the skips per reason).
NEEDS_BUBBLEWRAP = "needs bubblewrap: apt-get install bubblewrap"
NEEDS_FASHION_MNIST = ("needs Fashion-MNIST: apt-get install dataset-fashion-mnist "
                       "(or python -m graders.datasets fetch fashion-mnist)")


def by_name(grading) -> dict:
    return {r.name: r for r in grading.results}


def failed(grading) -> dict:
    """{check: message} of the checks that did not pass."""
    return {r.name: r.message for r in grading.results if r.status != "passed"}


def solution_source(assignment: str) -> str:
    return assignments.solution_path(assignment).read_text()


def edited(assignment: str, old: str, new: str) -> str:
    """The reference with one targeted change (the change must apply exactly once)."""
    source = solution_source(assignment)
    assert source.count(old) == 1, f"the change does not apply: {old!r}"
    return source.replace(old, new)
