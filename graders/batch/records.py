"""A student's folder of results: its outputs, and grading.json last, which marks the student done."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from graders import outputs
from graders.checks import Check
from graders.files import atomic_write
from graders.results import CheckResult, Grading, Record

RECORD = "grading.json"


def read_record(student_dir: Path) -> Record | None:
    try:
        return Record.from_dict(json.loads((student_dir / RECORD).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_outputs(student_dir: Path, record: Record) -> None:
    """The student's outputs (results.json, feedback.html), then grading.json, which marks the student done."""
    outputs.write_student(record, student_dir)
    atomic_write(student_dir / RECORD, json.dumps(record.to_dict(), indent=1))


def crashed_record(student: str, sha: str, checks: Sequence[Check], assignment: str, submission: Path, device: str,
                   reason: str, seconds: float) -> Record:
    """The row of a student whose grading process died or overran: every check gets zero."""
    message = f"the grading of this submission was stopped: {reason}. Nothing was graded; tell your instructor."
    grading = Grading(assignment, str(submission), device, seconds=seconds,
                      results=[CheckResult(c.name, 0.0, c.points, "error", message, kind=c.kind) for c in checks])
    return Record(student, sha, "crashed", grading)
