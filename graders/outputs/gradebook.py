"""nbgrader integration: the source notebook to release, and the batch's scores in gradebook.db.

The flow in a course folder (docs/instructor.md):

    python -m graders nbgrader-source bandits COURSE    # COURSE/source/bandits/bandits.ipynb
    nbgrader generate_assignment bandits                # release/, and the assignment in gradebook.db
    ... students submit; nbgrader collect ...           # COURSE/submitted/<student>/bandits/
    python -m graders batch bandits COURSE/submitted --out RESULTS   # grades, and writes the gradebook
    nbgrader export; nbgrader generate_feedback bandits

Our checks appear in the notebook as locked autograder-test cells, one per check,
named after it and worth its points. We never let nbgrader execute a submission
(it would run untrusted code outside our sandbox): the batch writes each check's
score as that cell's `auto_score` through `nbgrader.api.Gradebook`, and an
`autograded/` notebook (the student's cells, then the check cells with our messages
as their output) for `nbgrader generate_feedback`. A manual score an instructor
entered in formgrader is kept: nbgrader prefers it to the auto score.

One student never keeps another out: each is recorded on their own, and whatever goes
wrong with one (an unreadable timestamp, a notebook that cannot be copied, a database
error) is logged, flagged on that student (`SubmittedNotebook.flagged`, the flag
formgrader shows; also for `crashed` and `grader_error` rows and the rows given in
`review`) and returned, and the next student is recorded. The batch sets flags, never
clears them: a flag may be a grader's own.

The autograded notebook shows what was graded (the batch's copy), never executed, and
nothing of it can run in the instructor's browser: formgrader and generate_feedback
render notebooks with nbconvert's HTML exporter, which does not sanitize. So each
student cell is rebuilt from its source alone (capped): outputs, execution counts,
attachments and metadata are dropped (nbgrader's autograde clears outputs too), and
markdown is shown as text, in a fenced block (raw HTML in markdown would be rendered).
"""

from __future__ import annotations

import copy
import json
import logging
import re
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from graders import assignments, templates
from graders.batch.records import snapshot_file
from graders.batch.submissions import MAX_TIMESTAMP_BYTES, TIMESTAMP, read_file
from graders.files import atomic_write
from graders.outputs.table import printable
from graders.results import Record

log = logging.getLogger(__name__)


MAX_CELLS = 500  # student cells copied into the autograded notebook
MAX_CELL_CHARS = 50_000  # of each cell's source
MAX_MESSAGE_CHARS = 8_000  # of each check's message (and of what the code printed)
TIMESTAMP_YEARS = (2000, 2100)  # a timestamp outside is not a date nbgrader collected
REVIEW_STATUSES = ("crashed", "grader_error")


class GradebookError(RuntimeError):
    """The gradebook cannot take these grades (assignment not released, cells missing)."""


@dataclass
class GradebookReport:
    recorded: list[str] = field(default_factory=list)  # students whose scores are in the gradebook
    problems: dict[str, str] = field(default_factory=dict)  # student: what went wrong (logged, flagged)


# The locked cell before the graded ones. Their scores come from our grader only, so running
# them must never look like grading: `nbgrader autograde` stops with a message (its kernel
# exits: the submission fails to autograde, loudly, and nothing reaches the gradebook), and
# nbgrader's Validate fails while a function of the notebook still raises NotImplementedError
# (an untouched template). The kernel's stderr reaches the terminal of `nbgrader autograde`
# but not formgrader's Autograde button, which shows nbgrader's log: so the kernel first opens
# a comm named after the message (the kernel protocol's own way to address its client), which
# nbgrader's executor logs as a warning ("No handler found for comm target ..."), just above
# its "DeadKernelError: Kernel died".
AUTOGRADE_REFUSED = ("nbgrader autograde cannot grade this notebook: its check cells hold no tests (an untouched "
                     "template would get full marks). Grade it with the course grader: python -m graders batch "
                     "ASSIGNMENT COURSE/submitted --out RESULTS (it writes the scores into gradebook.db; see "
                     "docs/instructor.md)")
HELPER_CELL = '''# How the graded cells below behave: the course grader scores them, never this notebook.
def _graded_by_the_course_grader(check):
    import os
    import sys

    if os.environ.get("NBGRADER_EXECUTION") == "autograde":
        message = MESSAGE
        sys.__stderr__.write("\\nERROR: " + message + "\\n")
        sys.__stderr__.flush()
        try:  # nbgrader logs a comm it has no handler for: formgrader shows its log
            from comm import create_comm

            create_comm(target_name=message)
        except Exception:
            pass
        import time

        time.sleep(1)  # the comm's message leaves before the kernel does
        os._exit(3)
    todo = sorted(name for name, value in globals().items()
                  if not name.startswith("_") and getattr(value, "__module__", None) == "__main__"
                  and any("NotImplementedError" in f.__code__.co_names
                          for f in ([value] if hasattr(value, "__code__") else
                                    [v for v in vars(value).values() if hasattr(v, "__code__")]
                                    if isinstance(value, type) else [])))
    if todo:
        raise NotImplementedError(f"not done yet: {', '.join(todo)} still raise NotImplementedError")
    print(f"{check}: scored by the course grader with its own seeds; check your work with the last cell")
'''.replace("MESSAGE", repr(AUTOGRADE_REFUSED), 1)


def grade_cell_source(assignment: str, check) -> str:
    lines = [f"# Graded check `{check.name}` ({check.points:g} points), scored by the course grader,",
             "# not by running this cell.",
             f"# {check.doc}" if check.doc else "",
             "# Check your work: the last cell of this notebook, or",
             f"#     python -m graders grade {assignment} {assignment}.ipynb",
             f"_graded_by_the_course_grader({check.name!r})"]
    return "\n".join(line for line in lines if line)


def source_notebook(assignment: str) -> dict:
    """The nbgrader source notebook of an assignment, from its reference solution."""
    checks = assignments.grader(assignment).checks
    cells = [{"grade_id": c.name, "points": c.points, "source": grade_cell_source(assignment, c)} for c in checks]
    return templates.nbgrader_notebook(assignments.solution_path(assignment).read_text(), cells, prefix=assignment,
                                       helper=HELPER_CELL)


def write_source(assignment: str, course: str | Path) -> Path:
    path = Path(course) / "source" / assignment / f"{assignment}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(source_notebook(assignment), indent=1, ensure_ascii=False) + "\n")
    return path


def course_of(submissions: str | Path) -> Path | None:
    """The course folder of nbgrader's `COURSE/submitted`, else None."""
    submissions = Path(submissions).resolve()
    return submissions.parent if submissions.name == "submitted" else None


def default_gradebook(submissions: str | Path) -> str | None:
    """COURSE/gradebook.db of nbgrader's `COURSE/submitted` when it exists (nbgrader's default place)."""
    course = course_of(submissions)
    db = course / "gradebook.db" if course is not None else None
    return str(db) if db is not None and db.is_file() else None


def _db_url(db: str) -> str:
    return db if "://" in db else f"sqlite:///{Path(db).resolve()}"


def record(db: str, assignment: str, records: list[Record], *, results: Path, submitted: Path | None = None,
           course: Path | None = None, review: Collection[str] = ()) -> GradebookReport:
    """Write each student's check scores into the gradebook (and autograded notebooks under `course`).

    `results`: the batch's results folder (the copies graded); `submitted`: nbgrader's
    `submitted/` (for each `timestamp.txt`); `review`: students to flag.
    """
    from nbgrader.api import Gradebook, MissingEntry
    from sqlalchemy.exc import SAWarning

    report = GradebookReport()
    with Gradebook(_db_url(db)) as gb, warnings.catch_warnings():
        # nbgrader's own add_submission triggers these autoflush warnings; they are harmless.
        warnings.simplefilter("ignore", SAWarning)
        try:
            released = gb.find_assignment(assignment)
        except MissingEntry:
            raise GradebookError(f"assignment '{assignment}' is not in {db}; run `nbgrader generate_assignment "
                                 f"{assignment}` (after `python -m graders nbgrader-source`) first") from None
        checks = {r.name for rec in records for r in rec.grading.results}
        notebook = next((nb for nb in released.notebooks if checks <= {c.name for c in nb.grade_cells}), None)
        if notebook is None:
            raise GradebookError(f"no notebook of '{assignment}' in {db} has a grade cell for every check "
                                 f"({sorted(checks)}); release the notebook that nbgrader-source writes")
        solution_cells = {c.name for c in notebook.solution_cells}
        check_cells = _check_cells(assignment)
        for rec in records:
            problems = []
            stamp, why = _timestamp(submitted, rec.student, assignment)
            if why:
                problems.append(why)
            try:
                _write_scores(gb, assignment, notebook.name, rec, stamp)
                report.recorded.append(rec.student)
            except Exception as exc:  # this student's scores only; the next student is recorded
                gb.db.rollback()
                problems.append(f"its scores could not be written ({type(exc).__name__}: {exc})")
            if course is not None:
                try:
                    write_autograded(course / "autograded" / rec.student / assignment / f"{notebook.name}.ipynb",
                                     rec, snapshot_file(results / "students" / rec.student), solution_cells,
                                     check_cells, stamp)
                except Exception as exc:
                    problems.append(f"its autograded notebook could not be written ({type(exc).__name__}: {exc})")
            if problems or rec.status in REVIEW_STATUSES or rec.student in review or rec.grading.flags:
                try:
                    submitted_notebook = gb.find_submission_notebook(notebook.name, assignment, rec.student)
                    submitted_notebook.flagged = True
                    gb.db.commit()
                except Exception as exc:
                    gb.db.rollback()
                    problems.append(f"it could not be flagged ({type(exc).__name__}: {exc})")
            if problems:
                report.problems[rec.student] = printable("; ".join(problems))
                log.error("gradebook, student %s: %s", printable(rec.student), report.problems[rec.student])
    return report


def _write_scores(gb, assignment: str, notebook: str, rec: Record, stamp: datetime | None) -> None:
    from nbgrader.api import MissingEntry

    gb.update_or_create_student(rec.student)
    try:
        submission = gb.find_submission(assignment, rec.student)
        if stamp is not None:
            submission.timestamp = stamp  # a resubmission's
    except MissingEntry:
        submission = gb.add_submission(assignment, rec.student, **({"timestamp": stamp} if stamp else {}))
    for result in rec.grading.results:
        grade = gb.find_grade(result.name, notebook, assignment, rec.student)
        grade.auto_score = result.points
        grade.needs_manual_grade = False
    gb.db.commit()


def _timestamp(submitted: Path | None, student: str, assignment: str) -> tuple[datetime | None, str]:
    """(the UTC time nbgrader collected the submission, '') or (None, why not) from its timestamp.txt."""
    from nbgrader.utils import parse_utc

    if submitted is None:
        return None, ""
    try:
        text = read_file(submitted, (student, assignment, TIMESTAMP), MAX_TIMESTAMP_BYTES).decode("utf-8").strip()
    except FileNotFoundError:
        return None, ""
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{TIMESTAMP} was not read ({exc})"
    try:
        stamp = parse_utc(text)
        if not TIMESTAMP_YEARS[0] <= stamp.year <= TIMESTAMP_YEARS[1]:
            raise ValueError("out of range")
    except Exception:  # dateutil on untrusted text: any failure is the same answer
        return None, f"{TIMESTAMP} does not hold a date nbgrader can read ({text[:40]!r})"
    return stamp, ""


def _clean(text: str, limit: int) -> str:
    """Text as it may be written into a notebook: at most `limit` characters, UTF-8 encodable."""
    if len(text) > limit:
        text = text[:limit] + f"\n... ({len(text) - limit} more characters not shown)"
    return text.encode("utf-8", "replace").decode("utf-8")


def _source(cell: dict) -> str | None:
    source = cell.get("source", "")
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        source = "".join(source)
    return _clean(source, MAX_CELL_CHARS) if isinstance(source, str) else None


def _as_text(markdown: str) -> str:
    """Markdown shown as its text: a fenced block that no run of backticks in it can close."""
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall("`+", markdown)), default=0))
    return f"{fence}text\n{markdown}\n{fence}"


def _unreadable() -> list[dict]:
    return [{"cell_type": "markdown", "metadata": {},
             "source": "**The submission could not be read as a notebook**; see the messages below."}]


def _student_cells(file: Path | None, solution_cells: set[str]) -> list[dict]:
    """The student's cells, rebuilt from their sources; nbgrader metadata only on released solution cells."""
    if file is None:
        return _unreadable()
    try:
        text = file.read_text(encoding="utf-8", errors="replace")
        cells = json.loads(text)["cells"] if file.suffix == ".ipynb" else templates.to_notebook(text)["cells"]
        if not isinstance(cells, list):
            return _unreadable()
    except (OSError, ValueError, KeyError, TypeError, RecursionError):  # deep nesting: RecursionError
        return _unreadable()
    kept, used = [], set()
    for cell in cells[:MAX_CELLS]:
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown"):
            continue
        source = _source(cell)
        meta = cell.get("metadata")
        nbg = meta.get("nbgrader") if isinstance(meta, dict) else None
        nbg = nbg if isinstance(nbg, dict) else {}
        if source is None or (nbg.get("grade") and not nbg.get("solution")):
            continue  # the check cells come from the grader below, never from the student
        metadata = {}
        grade_id = nbg.get("grade_id")
        if nbg.get("solution") is True and isinstance(grade_id, str) and grade_id in solution_cells - used:
            used.add(grade_id)
            metadata = {"nbgrader": {"solution": True, "grade": False, "locked": False, "grade_id": grade_id,
                                     "schema_version": 3}}
        if cell["cell_type"] == "code":
            kept.append({"cell_type": "code", "metadata": metadata, "source": source, "outputs": [],
                         "execution_count": None})
        else:
            kept.append({"cell_type": "markdown", "metadata": metadata, "source": _as_text(source)})
    if len(cells) > MAX_CELLS:
        kept.append({"cell_type": "markdown", "metadata": {},
                     "source": f"*... {len(cells) - MAX_CELLS} more cells of the submission not shown*"})
    return kept


def _check_cells(assignment: str) -> dict[str, dict]:
    """The released check cells of an assignment, by check name."""
    return {c["metadata"]["nbgrader"]["grade_id"]: c for c in source_notebook(assignment)["cells"]
            if c["metadata"].get("nbgrader", {}).get("grade")}


def write_autograded(path: Path, rec: Record, file: Path | None, solution_cells: set[str],
                     check_cells: dict[str, dict], stamp: datetime | None) -> None:
    """The notebook `nbgrader generate_feedback` renders: the student's cells, then our checks with messages."""
    cells = _student_cells(file, solution_cells)
    cells.append({"cell_type": "markdown", "metadata": {},
                  "source": f"## Graded checks: {rec.grading.score:g} / {rec.grading.max_score:g} ({rec.status})"})
    for result in rec.grading.results:
        cell = copy.deepcopy(check_cells[result.name]) if result.name in check_cells else {
            "cell_type": "code", "metadata": {}, "source": f"# {result.name}"}
        text = f"{result.status}: {result.points:g} / {result.max_points:g}\n" + (result.message or "")[:MAX_MESSAGE_CHARS]
        if result.output and result.status != "passed":
            text += "\n\nYour code printed:\n" + result.output[-4000:]
        cell.update(execution_count=None,
                    outputs=[{"output_type": "stream", "name": "stdout", "text": _clean(text, 2 * MAX_MESSAGE_CHARS) + "\n"}])
        cells.append(cell)
    for index, cell in enumerate(cells):
        cell["id"] = f"cell-{index}"
    notebook = {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                            "name": "python3"}, "language_info": {"name": "python"}},
                "nbformat": 4, "nbformat_minor": 5}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    if stamp is not None:
        atomic_write(path.parent / TIMESTAMP, stamp.strftime("%Y-%m-%d %H:%M:%S.%f UTC") + "\n")
