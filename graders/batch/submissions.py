"""Finding a class's submissions: a flat folder (a file or folder per student) or nbgrader's submitted/.

The folder is read with the batch's rights (often root's), and nothing in it is trusted:

- links are never followed: entries are classified without following them, and a file
  is read by opening each step below the submissions folder with O_NOFOLLOW relative
  to the step above (`read_file`), so no path resolves outside the folder, whatever is
  swapped in meanwhile. A student whose file (or folder) is a link gets a row that says so;
- only regular files are read, at most `MAX_BYTES`; what is graded is a copy of the
  bytes read (graders.batch.records.write_snapshot), so it is what was hashed;
- a name that is not UTF-8, or holds control characters or bidi overrides, is not
  graded (it would reach terminals, CSV cells and file names);
- the layout is the instructor's choice (`--layout`), or recognised only when the
  whole folder agrees: one student's folder cannot switch the class to another layout.

Whatever is not graded is listed (`NotGraded`) with the reason.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from graders.files import Unreadable, open_dir, read_file, shown, unsafe_char, why_unreadable
from graders.results import NotGraded

SUBMISSION_SUFFIXES = (".py", ".ipynb")
LAYOUTS = ("auto", "flat", "nbgrader")
NBGRADER_FOLDER = "submitted"  # nbgrader's name for the folder of submissions
TIMESTAMP = "timestamp.txt"  # nbgrader's record of when a submission was collected
MAX_TIMESTAMP_BYTES = 256


class BatchError(ValueError):
    """The submissions folder or the options cannot be used."""


@dataclass(frozen=True)
class Submission:
    """One student: the file to grade (`parts` below the submissions folder), or why there is none."""

    student: str
    root: Path  # the submissions folder
    parts: tuple[str, ...]  # the path of the entry (problem) or of the file to grade, below root
    sha256: str = ""  # of the file's bytes, as read at discovery
    problem: str = ""  # why this student is not graded (their row says it); "" when there is a file to grade

    @property
    def path(self) -> Path:
        return self.root.joinpath(*self.parts)

    @property
    def shown(self) -> str:
        """The path below the submissions folder, printable."""
        return "/".join(shown(p) for p in self.parts)

    @property
    def suffix(self) -> str:
        return Path(self.parts[-1]).suffix


@dataclass
class Discovery:
    layout: str  # "flat" or "nbgrader"
    submissions: list[Submission] = field(default_factory=list)
    not_graded: list[NotGraded] = field(default_factory=list)


def name_problem(name: str) -> str:
    """Why a file name cannot name a student or be shown ('' when it can)."""
    try:
        os.fsencode(name).decode("utf-8")
    except UnicodeDecodeError:
        return "its name is not valid UTF-8; rename it"
    if any(unsafe_char(c) for c in name):
        return "its name holds control characters; rename it"
    return ""


def _kind(mode: int) -> str:
    return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "link" if stat.S_ISLNK(mode) else "other"


def _entries(folder: Path | int, hidden: bool = False) -> dict[str, str]:
    """{name: dir | file | link | other} of a folder's entries (not hidden ones unless asked), links not followed."""
    found = {}
    with os.scandir(folder) as it:
        for e in it:
            if hidden or not e.name.startswith((".", "_")):
                try:
                    found[e.name] = _kind(e.stat(follow_symlinks=False).st_mode)
                except FileNotFoundError:  # gone since it was listed
                    pass
    return found


def _kind_at(folder: Path, name: str) -> str | None:
    try:
        return _kind(os.stat(folder / name, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return None


def choose_layout(folder: Path, assignment: str, entries: dict[str, str]) -> str:
    """`auto`: nbgrader's layout only when the whole folder has its shape, flat when nothing has it; else ask.

    nbgrader when every entry is a folder and either the folder is nbgrader's `submitted/`
    or every one holds an ASSIGNMENT folder; flat when no entry holds one.
    """
    dirs = [n for n, kind in entries.items() if kind == "dir"]
    files = [n for n, kind in entries.items() if kind in ("file", "other")]
    shaped = [n for n in dirs if _kind_at(folder / n, assignment) == "dir"]
    named = folder.resolve().name == NBGRADER_FOLDER
    if not shaped and not (named and dirs and not files):
        return "flat"
    if dirs and not files and (named or len(shaped) == len(dirs)):
        return "nbgrader"
    others = [f"{shown(n)} (a file)" for n in files[:3]] + [
        f"{shown(n)}/ (no {assignment}/ inside)" for n in dirs if n not in shaped][:3]
    raise BatchError(f"cannot tell the layout of {folder}: {len(shaped)} of {len(dirs) + len(files)} entries look like "
                     f"nbgrader's submitted/<student>/{assignment}/ (e.g. {shown(shaped[0])}/{assignment}/) but others "
                     f"do not (e.g. {', '.join(others)}); say which with --layout flat or --layout nbgrader")


def discover(folder: str | Path, assignment: str, layout: str = "auto") -> Discovery:
    """The students of `folder`, sorted, and the entries not graded (docs/instructor.md).

    Flat layout: every `.py`/`.ipynb` file (student = its stem) or folder (student = its
    name) is one student. nbgrader layout (`folder` is nbgrader's `submitted/`): each
    `<student>/<assignment>/`; students without that folder are listed as not graded.
    Names starting with `.` or `_` are ignored.
    """
    folder = Path(folder)
    if layout not in LAYOUTS:
        raise BatchError(f"unknown layout '{layout}'; one of {', '.join(LAYOUTS)}")
    if not folder.is_dir():
        raise BatchError(f"{folder} is not a folder of submissions")
    found = Discovery("flat")
    entries = {}
    for name, kind in sorted(_entries(folder).items()):
        if why := name_problem(name):
            found.not_graded.append(NotGraded(shown(name), why))
        else:
            entries[name] = kind
    found.layout = choose_layout(folder, assignment, entries) if layout == "auto" else layout
    candidates = []
    for name, kind in entries.items():
        if found.layout == "nbgrader":
            candidate = _nbgrader_entry(folder, assignment, name, kind)
        else:
            candidate = _flat_entry(folder, assignment, name, kind)
        if isinstance(candidate, NotGraded):
            found.not_graded.append(candidate)
        else:
            candidates.append(candidate)
    by_student: dict[str, list[Submission]] = {}
    for s in candidates:
        by_student.setdefault(s.student, []).append(s)
    for student, subs in sorted(by_student.items()):
        if len(subs) > 1:
            names = " and ".join(s.shown for s in subs)
            subs = [Submission(student, folder, subs[0].parts, problem=f"two submissions for one student: {names}")]
        found.submissions.append(_hashed(subs[0]))
    for s in found.submissions:
        if s.problem:
            found.not_graded.append(NotGraded(s.student, s.problem))
    found.not_graded.sort(key=lambda n: n.entry)
    return found


def _hashed(s: Submission) -> Submission:
    if s.problem:
        return s
    try:
        return Submission(s.student, s.root, s.parts, hashlib.sha256(read_file(s.root, s.parts)).hexdigest())
    except OSError as exc:  # Unreadable, or gone since it was listed
        return Submission(s.student, s.root, s.parts, problem=str(exc) if isinstance(exc, Unreadable) else
                          f"{s.shown}: {exc.strerror}")


def _link(folder: Path, student: str, parts: tuple[str, ...]) -> Submission:
    where = "/".join(shown(p) for p in parts)
    return Submission(student, folder, parts, problem=f"{where} is a symbolic link; links are not followed")


def _flat_entry(folder: Path, assignment: str, name: str, kind: str) -> Submission | NotGraded:
    suffix = Path(name).suffix
    student = Path(name).stem if suffix in SUBMISSION_SUFFIXES else name
    if kind == "link" and (suffix in SUBMISSION_SUFFIXES or not suffix):
        return _link(folder, student, (name,))
    if kind == "dir":
        return _in_folder(folder, assignment, name, (name,))
    if suffix in SUBMISSION_SUFFIXES:
        problem = "" if kind == "file" else f"{shown(name)} is not a regular file"
        return Submission(student, folder, (name,), problem=problem)
    return NotGraded(shown(name), "not a .py or .ipynb file, nor a folder")


def _nbgrader_entry(folder: Path, assignment: str, name: str, kind: str) -> Submission | NotGraded:
    if kind == "link":
        return _link(folder, name, (name,))
    if kind != "dir":
        return NotGraded(shown(name), "not a student's folder (nbgrader layout)")
    inner = _kind_at(folder / name, assignment)
    if inner is None:
        return NotGraded(shown(name), f"has no {assignment}/ folder: did not submit {assignment}")
    if inner == "link":
        return _link(folder, name, (name, assignment))
    if inner != "dir":
        return Submission(name, folder, (name, assignment), problem=f"{shown(name)}/{assignment} is not a folder")
    return _in_folder(folder, assignment, name, (name, assignment))


def _in_folder(folder: Path, assignment: str, student: str, parts: tuple[str, ...]) -> Submission:
    """The one submission file in a student's folder (as graders.submission.find_file picks it), links refused."""
    try:
        fd = open_dir(folder, parts)
        try:
            inside = _entries(fd, hidden=True)
        finally:
            os.close(fd)
    except OSError as exc:
        return Submission(student, folder, parts, problem=f"{'/'.join(map(shown, parts))}: {why_unreadable(exc)}")
    preferred = [n for n in (f"{assignment}.ipynb", f"{assignment}.py") if n in inside]
    names = preferred or sorted(n for n in inside if Path(n).suffix in SUBMISSION_SUFFIXES)
    for n in names:
        if inside[n] == "link":
            return _link(folder, student, (*parts, n))
    if len(names) != 1 or inside[names[0]] != "file":
        listed = ", ".join(shown(n) for n in names) or "none"
        return Submission(student, folder, parts, problem=f"{'/'.join(map(shown, parts))} should hold one "
                          f"{assignment}.py or {assignment}.ipynb (found: {listed})")
    return Submission(student, folder, (*parts, names[0]))
