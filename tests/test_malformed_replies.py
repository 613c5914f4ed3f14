"""Whatever plain data the worker sends back, a check fails cleanly: never an internal grader error.

A worker is untrusted: a reply may lack the keys a check expects, have another type, or
hold junk where numbers should be. Every grader is run here against a fake worker that
answers every call with one malformed value, and must turn each into a failed (or
errored) check of the student's, not into "internal grader error".
"""

from __future__ import annotations

import numpy as np
import pytest

from graders import assignments, runner
from graders.sandbox import Worker


class AnyKey(dict):
    """A dict reply that has every key a check asks for, each holding the same junk."""

    def __init__(self, junk):
        super().__init__()
        self.junk = junk

    def __missing__(self, key):
        return self.junk

    def __contains__(self, key):
        return True

    def get(self, key, default=None):
        return self.junk


MALFORMED = {
    "none": None,
    "text": "forty-two",
    "empty list": [],
    "empty dict": {},
    "nested junk": [[1, 2], [3]],
    "huge int": 10**400,
    "nan": float("nan"),
    "bool array": np.ones(7, dtype=bool),
    "keys of none": AnyKey(None),
    "keys of text": AnyKey("x"),
    "keys of empty dicts": AnyKey({}),
    "keys of ragged lists": AnyKey([[1.0], []]),
    "keys of keys": AnyKey(AnyKey(None)),
}


@pytest.mark.parametrize("reply", MALFORMED, ids=list(MALFORMED))
@pytest.mark.parametrize("assignment", assignments.names())
def test_malformed_replies_are_the_students_error(assignment, reply, monkeypatch):
    class Answering(Worker):
        def call(self, name, *args, **kwargs):
            return MALFORMED[reply]

    monkeypatch.setattr(runner, "Worker", Answering)
    grading = runner.grade(assignment, assignments.solution_path(assignment), device="cpu")
    report = "\n".join(f"{r.name}: {r.status} {r.message[-600:]}" for r in grading.results if r.points == 0)
    assert grading.internal_error is None, report
    assert grading.score == 0 or all(r.kind == "training" or r.points == 0 for r in grading.results), report
