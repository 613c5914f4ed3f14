"""The class's tables: grades.csv, summary.txt and the failures per check they share."""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Sequence

from graders.checks import Check
from graders.results import STATUSES, STUDENT_STATUSES, Record


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def grades_csv(checks: Sequence[Check], records: Sequence[Record]) -> str:
    names = [c.name for c in checks]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", *names, "total", "max", "status", "seconds", "flags"])
    for r in records:
        points = {c.name: c.points for c in r.grading.results}
        writer.writerow([r.student, *(_num(points.get(n, "")) for n in names), _num(r.grading.score),
                         _num(r.grading.max_score), r.status, f"{r.grading.seconds:.1f}", "; ".join(r.grading.flags)])
    return buffer.getvalue()


def failures_per_check(checks: Sequence[Check], records: Sequence[Record]) -> dict[str, dict[str, int]]:
    """{check: {status: number of students}} over the class."""
    table = {c.name: dict.fromkeys(STATUSES, 0) for c in checks}
    for r in records:
        for result in r.grading.results:
            if result.name in table and result.status in STATUSES:
                table[result.name][result.status] += 1
    return table


def summary_text(checks: Sequence[Check], records: Sequence[Record]) -> str:
    scores = sorted(r.grading.score for r in records)
    maximum = sum(c.points for c in checks)
    lines = [f"{len(records)} students graded"]
    if scores:
        lines.append(f"score: mean {statistics.mean(scores):.2f}, median {statistics.median(scores):g}, "
                     f"min {scores[0]:g}, max {scores[-1]:g} (of {maximum:g})")
    by_status = {s: sum(r.status == s for r in records) for s in STUDENT_STATUSES}
    lines.append("students by status: " + ", ".join(f"{s} {n}" for s, n in by_status.items() if n))
    lines += ["", f"{'check':40} {'points':>6} " + " ".join(f"{s:>8}" for s in STATUSES)]
    points = {c.name: c.points for c in checks}
    for name, counts in failures_per_check(checks, records).items():
        lines.append(f"{name:40} {points[name]:>6g} " + " ".join(f"{counts[s]:>8}" for s in STATUSES))
    flagged = [r for r in records if r.grading.flags]
    if flagged:
        lines += ["", f"FLAGGED for review ({len(flagged)}): points withheld until accepted "
                  "([flags] accept in the instructor config, docs/instructor.md)"]
        lines += [f"  {r.student}: {flag}" for r in flagged for flag in r.grading.flags]
    return "\n".join(lines) + "\n"
