"""A student's folder of results: the copy graded, its outputs, and grading.json last, which marks the student done."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from graders import outputs
from graders.checks import Check
from graders.files import atomic_write
from graders.results import CheckResult, Grading, Record

RECORD = "grading.json"
SNAPSHOT = "submission"  # the folder holding the copy of the file graded, named ASSIGNMENT.py or .ipynb


def read_record(student_dir: Path) -> Record | None:
    try:
        return Record.from_dict(json.loads((student_dir / RECORD).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_outputs(student_dir: Path, record: Record) -> None:
    """The student's outputs (results.json, feedback.html), then grading.json, which marks the student done."""
    outputs.write_student(record, student_dir)
    atomic_write(student_dir / RECORD, json.dumps(record.to_dict(), indent=1))


def write_snapshot(student_dir: Path, assignment: str, suffix: str, data: bytes) -> tuple[Path, str]:
    """Keep the bytes to grade as `submission/ASSIGNMENT<suffix>`: (that file, their sha256)."""
    folder = student_dir / SNAPSHOT
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    path = folder / f"{assignment}{suffix}"
    atomic_write(path, data)
    return path, hashlib.sha256(data).hexdigest()


def snapshot_file(student_dir: Path) -> Path | None:
    """The copy of the file graded for this student, if any."""
    folder = student_dir / SNAPSHOT
    files = [p for p in folder.iterdir() if not p.name.startswith(".")] if folder.is_dir() else []
    return files[0] if len(files) == 1 else None


def unscored_record(student: str, sha: str, checks: Sequence[Check], assignment: str, submission: str, device: str,
                    status: str, message: str, seconds: float = 0.0) -> Record:
    """The row of a student who was not graded, with `message` on every check, all zero."""
    grading = Grading(assignment, submission, device, seconds=seconds,
                      results=[CheckResult(c.name, 0.0, c.points, "error", message, kind=c.kind) for c in checks])
    return Record(student, sha, status, grading)


def crashed_record(student: str, sha: str, checks: Sequence[Check], assignment: str, submission: str, device: str,
                   reason: str, seconds: float) -> Record:
    """The row of a student whose grading process died or overran: every check gets zero."""
    message = f"the grading of this submission was stopped: {reason}. Nothing was graded; tell your instructor."
    return unscored_record(student, sha, checks, assignment, submission, device, "crashed", message, seconds)


def refused_record(student: str, checks: Sequence[Check], assignment: str, submission: str, device: str,
                   reason: str) -> Record:
    """The row of a student whose submission is not graded (a link, not one file, ...): every check gets zero."""
    message = f"not graded: {reason}. Fix this and ask your instructor to grade it again."
    return unscored_record(student, "", checks, assignment, submission, device, "error", message)
