"""What a grading writes, as declared lists of outputs with one interface (like nbgrader's preprocessors).

A student's outputs render from their record (and the folder of the plots the grader
drew); the class's outputs render from the checks, every record and the entries not graded.
Each output is written atomically by `write_student` / `write_class`; a new output is one
more entry. Text is written as UTF-8, with anything that is not encodable (a lone
surrogate from a student's output, say) replaced: one student's text never stops a write.
The nbgrader gradebook (`outputs.gradebook`) is not a file: `graders batch` records
into it after the class outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from graders.checks import Check
from graders.files import atomic_write
from graders.outputs import feedback, gradescope, report
from graders.results import NotGraded, Record


@dataclass(frozen=True)
class StudentOutput:
    filename: str
    render: Callable[[Record, Path], str | bytes]  # (the record, the folder of its plots) -> the file


@dataclass(frozen=True)
class ClassOutput:
    filename: str
    render: Callable[[Sequence[Check], Sequence[Record], Sequence[NotGraded]], str | bytes]


STUDENT_OUTPUTS = (
    StudentOutput("results.json", lambda record, plots: gradescope.render(record.grading)),
    StudentOutput("feedback.html", lambda record, plots: feedback.student_page(record.grading, record.student, plots)),
)
CLASS_OUTPUTS = (
    ClassOutput("grades.csv", report.grades_csv),
    ClassOutput("summary.txt", report.summary_text),
    ClassOutput("summary.png", lambda checks, records, not_graded: feedback.histogram_png(checks, records)),
    ClassOutput("index.html", feedback.summary_page),
)


def _encoded(data: str | bytes) -> bytes:
    return data.encode("utf-8", "replace") if isinstance(data, str) else data


def write_student(record: Record, folder: Path, plots: Path | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for output in STUDENT_OUTPUTS:
        atomic_write(folder / output.filename, _encoded(output.render(record, plots or folder / "artifacts")))


def write_class(checks: Sequence[Check], records: Sequence[Record], folder: Path,
                not_graded: Sequence[NotGraded] = ()) -> None:
    for output in CLASS_OUTPUTS:
        atomic_write(folder / output.filename, _encoded(output.render(checks, records, not_graded)))
