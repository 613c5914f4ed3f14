"""The class's tables: grades.csv, summary.txt and the failures per check they share.

Both are opened by people with tools that interpret text: a spreadsheet runs a cell
that starts with `= + - @` (or a tab or carriage return) as a formula, and a terminal
runs escape sequences. So every text cell that is not a number we wrote is prefixed
with `'` when it starts like a formula (OWASP's advice for CSV injection), and every
text passes `printable`.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Sequence

from graders.checks import Check
from graders.outputs.table import printable
from graders.results import STATUSES, STUDENT_STATUSES, NotGraded, Record

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_text(text: str) -> str:
    """A text cell a spreadsheet shows as text, never runs as a formula."""
    return "'" + printable(text) if text.startswith(FORMULA_STARTS) else printable(text)


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def grades_csv(checks: Sequence[Check], records: Sequence[Record], not_graded: Sequence[NotGraded] = ()) -> str:
    names = [c.name for c in checks]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", *names, "total", "max", "status", "seconds", "flags", "unsafe_host"])
    for r in records:
        points = {c.name: c.points for c in r.grading.results}
        writer.writerow([csv_text(r.student), *(_num(points.get(n, "")) for n in names), _num(r.grading.score),
                         _num(r.grading.max_score), csv_text(r.status), f"{r.grading.seconds:.1f}",
                         csv_text("; ".join(r.grading.flags)), csv_text(r.grading.unsafe_host)])
    return buffer.getvalue()


def failures_per_check(checks: Sequence[Check], records: Sequence[Record]) -> dict[str, dict[str, int]]:
    """{check: {status: number of students}} over the class."""
    table = {c.name: dict.fromkeys(STATUSES, 0) for c in checks}
    for r in records:
        for result in r.grading.results:
            if result.name in table and result.status in STATUSES:
                table[result.name][result.status] += 1
    return table


def _cause(record: Record) -> str:
    errors = [r.message for r in record.grading.results if r.status == "error"]
    return record.grading.internal_error or (errors[0] if errors else record.status)


def _first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[:limit] + "..."


def summary_text(checks: Sequence[Check], records: Sequence[Record], not_graded: Sequence[NotGraded] = ()) -> str:
    scores = sorted(r.grading.score for r in records)
    maximum = sum(c.points for c in checks)
    lines = [f"{len(records)} students" + (f"; {len(not_graded)} entries NOT GRADED (listed below)" if not_graded else "")]
    if scores:
        lines.append(f"score: mean {statistics.mean(scores):.2f}, median {statistics.median(scores):g}, "
                     f"min {scores[0]:g}, max {scores[-1]:g} (of {maximum:g})")
    by_status = {s: sum(r.status == s for r in records) for s in STUDENT_STATUSES}
    lines.append("students by status: " + ", ".join(f"{s} {n}" for s, n in by_status.items() if n))
    lines += ["", f"{'check':40} {'points':>6} " + " ".join(f"{s:>8}" for s in STATUSES)]
    points = {c.name: c.points for c in checks}
    for name, counts in failures_per_check(checks, records).items():
        lines.append(f"{name:40} {points[name]:>6g} " + " ".join(f"{counts[s]:>8}" for s in STATUSES))
    failed = [r for r in records if r.status in ("crashed", "grader_error")]
    if failed:
        lines += ["", f"GRADER ERRORS ({len(failed)}): not the students' doing; fix the cause (python -m graders doctor) "
                  "and run the batch again: these rows are graded again"]
        lines += [f"  {r.student}: {r.status}: {_first_line(_cause(r))}" for r in failed]
    unsafe = sorted({r.grading.unsafe_host for r in records if r.grading.unsafe_host})
    if unsafe:
        lines += ["", f"UNSAFE HOST: {sum(bool(r.grading.unsafe_host) for r in records)} rows were graded with "
                  "--allow-unsafe-host on a host that failed its check (python -m graders doctor):"]
        lines += [f"  {reason}" for reason in unsafe]
    flagged = [r for r in records if r.grading.flags]
    if flagged:
        lines += ["", f"FLAGGED for review ({len(flagged)}): points withheld until accepted "
                  "([flags] accept in the instructor config, docs/instructor.md)"]
        lines += [f"  {r.student}: {flag}" for r in flagged for flag in r.grading.flags]
    if not_graded:
        lines += ["", f"NOT GRADED: {len(not_graded)} entries of the submissions folder (fix them and run again):"]
        lines += [f"  {n.entry}: {n.reason}" for n in not_graded]
    return printable("\n".join(lines) + "\n")
