"""Finding a class's submissions: a flat folder (a file or folder per student) or nbgrader's submitted/."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from graders.submission import SubmissionFormatError, find_file

SUBMISSION_SUFFIXES = (".py", ".ipynb")


class BatchError(ValueError):
    """The submissions folder or the options cannot be used."""


@dataclass(frozen=True)
class Submission:
    student: str
    path: Path  # the file or the folder find_file() resolves


def is_nbgrader_layout(folder: Path, assignment: str) -> bool:
    """nbgrader's `submitted/<student>/<assignment>/`: some student folder holds the assignment folder."""
    return any((child / assignment).is_dir() for child in folder.iterdir() if child.is_dir())


def discover(folder: str | Path, assignment: str) -> list[Submission]:
    """The submissions in `folder`, sorted by student.

    Flat layout: every `.py`/`.ipynb` file (student = its stem) or folder (student = its
    name) is one student. nbgrader layout (`folder` is nbgrader's `submitted/`): each
    `<student>/<assignment>/`; students without that folder have not submitted it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BatchError(f"{folder} is not a folder of submissions")
    visible = sorted(p for p in folder.iterdir() if not p.name.startswith((".", "_")))
    if is_nbgrader_layout(folder, assignment):
        found = [Submission(p.name, p / assignment) for p in visible if (p / assignment).is_dir()]
    else:
        found = [Submission(p.stem if p.is_file() else p.name, p) for p in visible
                 if p.is_dir() or p.suffix in SUBMISSION_SUFFIXES]
    seen: dict[str, Path] = {}
    for s in found:
        if s.student in seen:
            raise BatchError(f"two submissions for student '{s.student}': {seen[s.student].name} and {s.path.name}")
        seen[s.student] = s.path
    return found


def digest(submission: Path, assignment: str) -> str:
    """sha256 of the file that will be graded ('' when there is none: that error is graded too)."""
    try:
        return hashlib.sha256(find_file(submission, assignment).read_bytes()).hexdigest()
    except (SubmissionFormatError, OSError):
        return ""
