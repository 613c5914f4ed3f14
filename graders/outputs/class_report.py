"""Item analysis of a class (an instructor-only output): where the class struggled, and why.

Written by `graders batch` after the class's outputs, and again from a results folder by
`python -m graders report RESULTS`; it reads only the records (grading.json) and the list of
entries not graded. Into RESULTS/report/:

    index.html       the page: the plots below, the tables, links to students' pages
    checks.csv       per check: points, students, pass rate, students per status and per points
                     (full, partial, zero), mean points, seconds (median, 90th percentile, max)
    points.csv       per check, each points value earned and how many students earned it
    diagnoses.csv    per check, the failure messages grouped (numbers normalised away), counted
    scores.csv       the distribution of total scores (a row per score)
    students.csv     the students who need a look: flagged, crashed, grader errors, not graded
    slowest.csv      the slowest gradings, with their slowest check
    checks.png       per check: share of students per status, and per points (full, partial, zero)
    seconds.png      per check: the spread of its seconds over the class
    scores.png       histogram of total scores

A failure message is grouped by its first line (the hint is the same for everyone) with
every number replaced by `#` and runs of numbers (a list of values) by one, so "the sign
of the loss is reversed (cosine -0.998)" and "(cosine -0.971)" are one diagnosis, counted.
Everything a student's code could write (names, messages, printed text) is escaped in the
page and made safe for spreadsheets in the tables, like grades.csv.
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from graders.checks import Check
from graders.files import atomic_write
from graders.outputs.feedback import STYLE, histogram_png
from graders.outputs.report import csv_text
from graders.outputs.table import printable
from graders.plotting import figure, save_png
from graders.results import STATUSES, NotGraded, Record

log = logging.getLogger(__name__)

FOLDER = "report"
NOT_GRADED_JSON = "not_graded.json"  # the batch's list of entries not graded, kept to regenerate the report
SLOWEST = 10  # gradings listed as the slowest
DIAGNOSES_SHOWN = 8  # per check on the page (the CSV has them all)
MAX_DIAGNOSIS_CHARS = 240
REVIEW_STATUSES = ("crashed", "grader_error")

_NUMBER = re.compile(r"(?<![\w.-])[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?(?![\w])|\b(?:nan|inf)\b")
_NUMBERS = re.compile(r"#(?:[\s,;x×]+#)+")
STATUS_COLOURS = {"passed": "#4c9a52", "failed": "#e0a030", "flagged": "#8c6bb1", "error": "#c0392b",
                  "timeout": "#7f8c8d"}
POINTS_COLOURS = {"full": "#4c9a52", "partial": "#e0c030", "zero": "#c0392b"}


def diagnosis(message: str) -> str:
    """The group of a failure message: its first line, numbers normalised away (see the module docstring)."""
    first = next((line.strip() for line in message.split("\n") if line.strip()), "")
    if first.startswith("Hint:"):
        first = ""
    text = _NUMBERS.sub("#", _NUMBER.sub("#", first))
    text = " ".join(printable(text).split())
    return text if len(text) <= MAX_DIAGNOSIS_CHARS else text[: MAX_DIAGNOSIS_CHARS - 1] + "…"


@dataclass
class CheckStats:
    check: Check
    statuses: Counter  # status -> students
    points: Counter  # points earned -> students
    seconds: list[float]
    diagnoses: Counter  # diagnosis -> students (those who did not pass)
    examples: dict  # diagnosis -> a student who got it

    @property
    def students(self) -> int:
        return sum(self.statuses.values())

    @property
    def pass_rate(self) -> float:
        return self.statuses["passed"] / self.students if self.students else 0.0

    def shares(self) -> dict[str, int]:
        """Students with full, partial and zero points."""
        full = sum(n for p, n in self.points.items() if p >= self.check.points > 0)
        zero = sum(n for p, n in self.points.items() if p <= 0 and not p >= self.check.points > 0)
        return {"full": full, "partial": self.students - full - zero, "zero": zero}


def check_stats(checks: Sequence[Check], records: Sequence[Record]) -> list[CheckStats]:
    table = {c.name: CheckStats(c, Counter(), Counter(), [], Counter(), {}) for c in checks}
    for r in records:
        for result in r.grading.results:
            stats = table.get(result.name)
            if stats is None:
                continue
            stats.statuses[result.status] += 1
            stats.points[round(float(result.points), 6)] += 1
            stats.seconds.append(float(result.seconds))
            if result.status != "passed":
                key = diagnosis(result.flag if result.status == "flagged" and result.flag else result.message)
                key = key or f"({result.status}, no message)"
                stats.diagnoses[key] += 1
                stats.examples.setdefault(key, r.student)
    return list(table.values())


def _quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _csv(rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow([csv_text(c) if isinstance(c, str) else (f"{c:g}" if isinstance(c, float) else c) for c in row])
    return buffer.getvalue()


def checks_csv(stats: Sequence[CheckStats]) -> str:
    rows = [["check", "kind", "points", "students", "pass_rate", *STATUSES, "full_points", "partial_points",
             "zero_points", "mean_points", "median_seconds", "p90_seconds", "max_seconds"]]
    for s in stats:
        shares = s.shares()
        mean = sum(p * n for p, n in s.points.items()) / s.students if s.students else 0.0
        rows.append([s.check.name, s.check.kind, float(s.check.points), s.students, round(s.pass_rate, 4),
                     *(s.statuses[st] for st in STATUSES), shares["full"], shares["partial"], shares["zero"],
                     round(mean, 4), round(statistics.median(s.seconds), 3) if s.seconds else 0.0,
                     round(_quantile(s.seconds, 0.9), 3), round(max(s.seconds, default=0.0), 3)])
    return _csv(rows)


def points_csv(stats: Sequence[CheckStats]) -> str:
    rows = [["check", "points", "max_points", "students"]]
    rows += [[s.check.name, float(p), float(s.check.points), n] for s in stats for p, n in sorted(s.points.items())]
    return _csv(rows)


def diagnoses_csv(stats: Sequence[CheckStats]) -> str:
    rows = [["check", "diagnosis", "students", "example_student"]]
    rows += [[s.check.name, d, n, s.examples[d]] for s in stats for d, n in s.diagnoses.most_common()]
    return _csv(rows)


def scores_csv(records: Sequence[Record]) -> str:
    counts = Counter(round(r.grading.score, 6) for r in records)
    return _csv([["score", "students"], *([float(score), n] for score, n in sorted(counts.items()))])


def needing_review(records: Sequence[Record], not_graded: Sequence[NotGraded]) -> list[tuple[str, str, str]]:
    """(student or entry, why, detail) of everyone the instructor should look at."""
    rows = [(r.student, "flagged", flag) for r in records for flag in r.grading.flags]
    rows += [(r.student, r.status, r.grading.internal_error or next((x.message for x in r.grading.results), ""))
             for r in records if r.status in REVIEW_STATUSES]
    rows += [(n.entry, "not graded", n.reason) for n in not_graded]
    return rows


def students_csv(records: Sequence[Record], not_graded: Sequence[NotGraded]) -> str:
    return _csv([["student", "why", "detail"], *(list(row) for row in needing_review(records, not_graded))])


def slowest(records: Sequence[Record]) -> list[Record]:
    return sorted(records, key=lambda r: -r.grading.seconds)[:SLOWEST]


def _slowest_check(record: Record) -> tuple[str, float]:
    worst = max(record.grading.results, key=lambda r: r.seconds, default=None)
    return (worst.name, worst.seconds) if worst else ("", 0.0)


def slowest_csv(records: Sequence[Record]) -> str:
    rows = [["student", "seconds", "status", "slowest_check", "its_seconds"]]
    rows += [[r.student, round(r.grading.seconds, 2), r.status, *_slowest_check(r)] for r in slowest(records)]
    return _csv(rows)


# ----------------------------------------------------------------------------- plots


def checks_png(stats: Sequence[CheckStats]) -> bytes:
    """Per check, two bars of shares of the class: by status, and by points (full, partial, zero)."""
    names = [s.check.name for s in stats]
    fig = figure(10, 0.9 + 0.32 * max(1, len(stats)), dpi=90)
    status_axes, points_axes = fig.subplots(1, 2, sharey=True)
    for axes, groups, colours, title in ((status_axes, STATUSES, STATUS_COLOURS, "status"),
                                         (points_axes, tuple(POINTS_COLOURS), POINTS_COLOURS, "points")):
        left = [0.0] * len(stats)
        for group in groups:
            counts = [(s.statuses[group] if title == "status" else s.shares()[group]) / max(1, s.students)
                      for s in stats]
            if any(counts):
                axes.barh(range(len(stats)), counts, left=left, color=colours[group], label=group, height=0.75)
            left = [a + b for a, b in zip(left, counts)]
        axes.set_xlim(0, 1)
        axes.set_title(f"share of students by {title}", fontsize=10)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=7, loc="lower right", framealpha=0.8)
    status_axes.set_yticks(range(len(stats)), [n if len(n) <= 34 else n[:33] + "…" for n in names], fontsize=8)
    status_axes.invert_yaxis()
    return save_png(fig)


def seconds_png(stats: Sequence[CheckStats]) -> bytes:
    """Per check, a box of its seconds over the class (log scale: unit checks take milliseconds, training minutes)."""
    fig = figure(10, 0.9 + 0.32 * max(1, len(stats)), dpi=90)
    axes = fig.subplots()
    data = [[max(x, 1e-3) for x in s.seconds] or [1e-3] for s in stats]
    try:
        axes.boxplot(data, orientation="horizontal", widths=0.6, flierprops={"markersize": 3})
    except TypeError:  # matplotlib before 3.10
        axes.boxplot(data, vert=False, widths=0.6, flierprops={"markersize": 3})
    axes.set_xscale("log")
    axes.set_yticks(range(1, len(stats) + 1), [s.check.name if len(s.check.name) <= 34 else s.check.name[:33] + "…"
                                                for s in stats], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("seconds per student (log scale)")
    return save_png(fig)


# ----------------------------------------------------------------------------- the page


def _table(header: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    e = html.escape
    head = "".join(f'<th class="num">{e(h)}</th>' if i in numeric else f"<th>{e(h)}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _student_link(student: str) -> str:
    return f'<a href="../students/{html.escape(quote(student))}/feedback.html">{html.escape(student)}</a>'


def page(checks: Sequence[Check], records: Sequence[Record], not_graded: Sequence[NotGraded],
         similarity_summary: str = "") -> str:
    e = html.escape
    stats = check_stats(checks, records)
    assignment = records[0].grading.assignment if records else ""
    scores = [r.grading.score for r in records]
    maximum = sum(c.points for c in checks)
    body = [f"<h1>{e(assignment)}: item analysis of {len(records)} students</h1>",
            '<p>Instructor only. Tables: <a href="checks.csv">checks.csv</a>, <a href="points.csv">points.csv</a>, '
            '<a href="diagnoses.csv">diagnoses.csv</a>, <a href="scores.csv">scores.csv</a>, '
            '<a href="students.csv">students.csv</a>, <a href="slowest.csv">slowest.csv</a>. '
            '<a href="../index.html">Class page</a>.</p>']
    if similarity_summary:
        body.append(similarity_summary)
    if scores:
        body.append(f"<h2>Total scores</h2><p>mean {statistics.mean(scores):.2f}, median "
                    f"{statistics.median(scores):g}, of {maximum:g}</p>"
                    '<img alt="histogram of total scores" src="scores.png">')
    rows = []
    for s in stats:
        shares = s.shares()
        rows.append([e(s.check.name), f"{s.check.points:g}", f"{s.pass_rate:.0%}",
                     *(str(s.statuses[st]) for st in STATUSES),
                     f"{shares['full']} / {shares['partial']} / {shares['zero']}",
                     f"{statistics.median(s.seconds):.2f}" if s.seconds else "", f"{max(s.seconds, default=0):.2f}"])
    body += ["<h2>Checks</h2>", '<img alt="share of students per status and per points, by check" src="checks.png">',
             _table(["check", "points", "pass rate", *STATUSES, "full / partial / zero", "median s", "max s"], rows,
                    set(range(1, 11)))]
    body.append("<h2>Why checks failed</h2><p>Failure messages grouped by their first line, numbers replaced by "
                "<code>#</code>; the count is of students. All groups: diagnoses.csv.</p>")
    for s in stats:
        if not s.diagnoses:
            continue
        shown = s.diagnoses.most_common(DIAGNOSES_SHOWN)
        rest = sum(s.diagnoses.values()) - sum(n for _, n in shown)
        rows = [[str(n), e(d), _student_link(s.examples[d])] for d, n in shown]
        if rest:
            rows.append([str(rest), f"<i>{len(s.diagnoses) - len(shown)} other messages</i>", ""])
        body += [f"<h3>{e(s.check.name)} <small>({s.students - s.statuses['passed']} of {s.students} "
                 "did not pass)</small></h3>", _table(["students", "diagnosis", "e.g."], rows, {0})]
    review = needing_review(records, not_graded)
    body.append(f"<h2>Students to look at ({len(review)})</h2>")
    if review:
        known = {r.student for r in records}
        body.append(_table(["student", "why", "detail"], [
            [_student_link(who) if who in known else e(who), e(why), e(detail.split("\n")[0][:300])]
            for who, why, detail in review]))
    else:
        body.append("<p>None: nobody flagged, crashed or not graded.</p>")
    body += ["<h2>Time per check</h2>", '<img alt="seconds per check" src="seconds.png">',
             f"<h2>The {min(SLOWEST, len(records))} slowest gradings</h2>",
             _table(["student", "seconds", "status", "slowest check", "its seconds"], [
                 [_student_link(r.student), f"{r.grading.seconds:.1f}", e(r.status), e(name), f"{sec:.1f}"]
                 for r in slowest(records) for name, sec in [_slowest_check(r)]], {1, 4})]
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{e(assignment)}: item analysis"
            f"</title><style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write(checks: Sequence[Check], records: Sequence[Record], out: Path, not_graded: Sequence[NotGraded] = (),
          similarity_summary: str = "") -> Path:
    """Write RESULTS/report/ (see the module docstring); returns its folder."""
    folder = Path(out) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    stats = check_stats(checks, records)
    files = {
        "checks.csv": checks_csv(stats), "points.csv": points_csv(stats), "diagnoses.csv": diagnoses_csv(stats),
        "scores.csv": scores_csv(records), "students.csv": students_csv(records, not_graded),
        "slowest.csv": slowest_csv(records), "checks.png": checks_png(stats), "seconds.png": seconds_png(stats),
        "scores.png": histogram_png(checks, records),
        NOT_GRADED_JSON: json.dumps([{"entry": n.entry, "reason": n.reason} for n in not_graded], indent=1),
        "index.html": page(checks, records, not_graded, similarity_summary),
    }
    for name, data in files.items():
        atomic_write(folder / name, data.encode("utf-8", "replace") if isinstance(data, str) else data)
    return folder


def read_not_graded(out: Path) -> list[NotGraded]:
    """The entries not graded that the last batch recorded (none when it recorded nothing readable)."""
    try:
        rows = json.loads((Path(out) / FOLDER / NOT_GRADED_JSON).read_text())
        return [NotGraded(str(row["entry"]), str(row["reason"])) for row in rows]
    except (OSError, ValueError, KeyError, TypeError):
        return []


@dataclass
class Written:
    """What writing the instructor's class outputs said: notes to print, and errors (a bug or the host's fault)."""

    notes: list[str]
    errors: list[str]


def write_all(checks: Sequence[Check], records: Sequence[Record], out: Path, not_graded: Sequence[NotGraded] = (),
              *, compare_code: bool = True, templates: Sequence[Path] | None = None,
              threshold: float | None = None) -> Written:
    """The item analysis and the code similarity of a class; a failure of either is reported, never raised (the
    grades are written by then, and stay)."""
    from graders import similarity
    from graders.outputs import similarity_report

    written = Written([], [])
    summary = ""
    if compare_code and records:
        try:
            result = similarity_report.write(Path(out), records[0].grading.assignment, records, templates,
                                             similarity.THRESHOLD if threshold is None else threshold)
            summary = similarity_report.summary_html(result).replace("{prefix}", "../")
            written.notes.append(f"code similarity: {len(result.flagged())} pairs flagged, "
                                 f"{len(result.not_compared)} students not compared: "
                                 f"{Path(out) / similarity_report.FOLDER / 'index.html'}")
        except similarity.SimilarityUnavailable as exc:
            written.notes.append(f"code similarity not computed: {exc}")
        except Exception as exc:  # a bug: say it loudly, keep the rest
            log.exception("code similarity failed")
            written.errors.append(f"code similarity could not be written: {type(exc).__name__}: {exc}")
    try:
        folder = write(checks, records, out, not_graded, summary)
        written.notes.append(f"item analysis: {folder / 'index.html'}")
    except Exception as exc:
        log.exception("item analysis failed")
        written.errors.append(f"the item analysis could not be written: {type(exc).__name__}: {exc}")
    return written
