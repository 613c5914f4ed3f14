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
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from pathlib import Path

from graders import assignments, templates
from graders.batch.submissions import is_nbgrader_layout
from graders.files import atomic_write
from graders.results import Record
from graders.submission import SubmissionFormatError, find_file

log = logging.getLogger(__name__)


class GradebookError(RuntimeError):
    """The gradebook cannot take these grades (assignment not released, cells missing)."""


# The locked cell before the graded ones. Their scores come from our grader only, so running
# them must never look like grading: `nbgrader autograde` stops with a message (its kernel
# exits: the submission fails to autograde, loudly), and nbgrader's Validate fails while a
# function of the notebook still raises NotImplementedError (an untouched template).
HELPER_CELL = '''# How the graded cells below behave: the course grader scores them, never this notebook.
def _graded_by_the_course_grader(check):
    import os
    import sys

    if os.environ.get("NBGRADER_EXECUTION") == "autograde":
        sys.__stderr__.write(
            "\\nERROR: nbgrader autograde cannot grade this notebook: its check cells hold no tests (an untouched "
            "template would get full marks). Grade with the course grader instead:\\n"
            "    python -m graders batch ASSIGNMENT COURSE/submitted --out RESULTS\\n"
            "(it writes the scores into gradebook.db; see docs/instructor.md)\\n")
        sys.__stderr__.flush()
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
'''


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


def default_gradebook(submissions: str | Path, assignment: str) -> str | None:
    """COURSE/gradebook.db for nbgrader's layout when it exists (nbgrader's default place)."""
    course = course_of(submissions)
    if course is None or not is_nbgrader_layout(Path(submissions), assignment):
        return None
    db = course / "gradebook.db"
    return str(db) if db.is_file() else None


def _db_url(db: str) -> str:
    return db if "://" in db else f"sqlite:///{Path(db).resolve()}"


def record(db: str, assignment: str, records: list[Record], *, course: Path | None = None) -> int:
    """Write every student's check scores into the gradebook (and autograded notebooks under `course`)."""
    from nbgrader.api import Gradebook, MissingEntry
    from sqlalchemy.exc import SAWarning

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
        for rec in records:
            gb.update_or_create_student(rec.student)
            submitted = Path(rec.grading.submission)
            try:
                submission = gb.find_submission(assignment, rec.student)
            except MissingEntry:
                submission = gb.add_submission(assignment, rec.student, **_timestamp(submitted))
            for result in rec.grading.results:
                grade = gb.find_grade(result.name, notebook.name, assignment, rec.student)
                grade.auto_score = result.points
                grade.needs_manual_grade = False
            submission.flagged = rec.status in ("crashed", "grader_error")
            gb.db.commit()
            if course is not None:
                solution_cells = {c.name for c in notebook.solution_cells}
                write_autograded(course / "autograded" / rec.student / assignment / f"{notebook.name}.ipynb",
                                 rec, submitted, solution_cells)
    return len(records)


def _timestamp(submitted: Path) -> dict:
    stamp = submitted / "timestamp.txt"
    return {"timestamp": stamp.read_text().strip()} if stamp.is_file() else {}


def _student_cells(submitted: Path, assignment: str, solution_cells: set[str]) -> list[dict]:
    """The student's notebook cells, keeping nbgrader metadata only on known solution cells."""
    try:
        file = find_file(submitted, assignment)
        if file.suffix == ".ipynb":
            cells = json.loads(file.read_text(encoding="utf-8"))["cells"]
        else:
            cells = templates.to_notebook(file.read_text(encoding="utf-8"))["cells"]
        cells = [c for c in cells if isinstance(c, dict) and c.get("cell_type") in ("code", "markdown")]
    except (SubmissionFormatError, OSError, ValueError, KeyError, TypeError):
        return [{"cell_type": "markdown", "metadata": {},
                 "source": "**The submission could not be read as a notebook**; see the messages below."}]
    kept = []
    for cell in cells:
        cell = copy.deepcopy(cell)
        meta = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        nbg = meta.get("nbgrader")
        if isinstance(nbg, dict) and nbg.get("grade") and not nbg.get("solution"):
            continue  # the check cells come from the grader below, never from the student
        if not (isinstance(nbg, dict) and nbg.get("solution") and nbg.get("grade_id") in solution_cells):
            meta.pop("nbgrader", None)
        cell["metadata"] = meta
        if cell["cell_type"] == "code":
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)
        kept.append(cell)
    return kept


def write_autograded(path: Path, rec: Record, submitted: Path, solution_cells: set[str]) -> None:
    """The notebook `nbgrader generate_feedback` renders: the student's cells, then our checks with messages."""
    source = {c["metadata"]["nbgrader"]["grade_id"]: c for c in source_notebook(rec.grading.assignment)["cells"]
              if c["metadata"].get("nbgrader", {}).get("grade")}
    cells = _student_cells(submitted, rec.grading.assignment, solution_cells)
    cells.append({"cell_type": "markdown", "metadata": {},
                  "source": f"## Graded checks: {rec.grading.score:g} / {rec.grading.max_score:g} ({rec.status})"})
    for result in rec.grading.results:
        cell = copy.deepcopy(source[result.name]) if result.name in source else {
            "cell_type": "code", "metadata": {}, "source": f"# {result.name}"}
        text = f"{result.status}: {result.points:g} / {result.max_points:g}\n" + (result.message or "")
        if result.output and result.status != "passed":
            text += "\n\nYour code printed:\n" + result.output[-4000:]
        cell.update(execution_count=None, outputs=[{"output_type": "stream", "name": "stdout", "text": text + "\n"}])
        cells.append(cell)
    for index, cell in enumerate(cells):
        cell["id"] = f"cell-{index}"
    notebook = {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                            "name": "python3"}, "language_info": {"name": "python"}},
                "nbformat": 4, "nbformat_minor": 5}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    stamp = submitted / "timestamp.txt"
    if stamp.is_file():
        atomic_write(path.parent / "timestamp.txt", stamp.read_text())
