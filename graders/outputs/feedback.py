"""HTML pages and plots of a batch: one self-contained page per student, one for the class.

A student's page embeds the grader's plots (base64 PNG), so it can be mailed or
uploaded alone. Everything shown is escaped: messages and printed output come
from the student's code.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from urllib.parse import quote

from graders.outputs.report import failures_per_check
from graders.plotting import figure, save_png
from graders.results import STATUSES, Grading

MAX_OUTPUT_CHARS = 8000
STYLE = """
body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left}
td.num,th.num{text-align:right}pre{background:#f6f6f6;padding:.6em;overflow-x:auto;white-space:pre-wrap}
.passed{color:#17702a}.failed,.flagged{color:#b35c00}.error,.timeout,.crashed,.grader_error{color:#b00020}
img{max-width:100%;border:1px solid #ddd}
"""


def _page(title: str, body: list[str]) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _png_tag(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">' \
           f"<figcaption>{html.escape(path.name)}</figcaption></figure>"


def student_page(grading: Grading, student: str, artifacts_dir: Path | None = None) -> str:
    """The feedback page of one student: score, a row per check, messages, output, plots."""
    e = html.escape
    body = [f"<h1>{e(grading.assignment)}: {e(student)}</h1>",
            f"<p><b>Score: {grading.score:g} / {grading.max_score:g}</b> &middot; graded on {e(grading.device)} "
            f"in {grading.seconds:.1f} s</p>",
            '<table><tr><th>check</th><th>status</th><th class="num">points</th><th class="num">seconds</th></tr>']
    for r in grading.results:
        body.append(f'<tr><td><a href="#{e(r.name)}">{e(r.name)}</a></td><td class="{e(r.status)}">{e(r.status)}</td>'
                    f'<td class="num">{r.points:g} / {r.max_points:g}</td><td class="num">{r.seconds:.1f}</td></tr>')
    body.append("</table>")
    if grading.internal_error:
        body.append(f'<p class="error">Internal grader error (not your fault): {e(grading.internal_error)}</p>')
    for r in grading.results:
        if not r.message and not r.output:
            continue
        body.append(f'<h3 id="{e(r.name)}">{e(r.name)} <span class="{e(r.status)}">({e(r.status)})</span></h3>')
        if r.message:
            body.append(f"<pre>{e(r.message)}</pre>")
        if r.output and r.status != "passed":
            output = r.output if len(r.output) <= MAX_OUTPUT_CHARS else r.output[-MAX_OUTPUT_CHARS:]
            body.append(f"<p>Your code printed:</p><pre>{e(output)}</pre>")
    pngs = [artifacts_dir / name for name in grading.artifacts] if artifacts_dir else []
    pngs = [p for p in pngs if p.suffix.lower() == ".png" and p.is_file()]
    if pngs:
        body.append("<h2>Plots</h2>")
        body += [_png_tag(p) for p in pngs]
    return _page(f"{grading.assignment}: {student}", body)


def histogram_png(checks, records) -> bytes:
    """A histogram of the class's total scores."""
    from matplotlib.ticker import MaxNLocator

    scores, maximum = [r.grading.score for r in records], sum(c.points for c in checks)
    fig = figure(6, 3.5, dpi=100)
    axes = fig.subplots()
    bins = min(20, max(1, int(maximum) or 1))
    axes.hist(scores, bins=bins, range=(0, max(maximum, 1e-9)), color="#4c72b0", edgecolor="white")
    axes.set_xlabel(f"total score (of {maximum:g})")
    axes.set_ylabel("students")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(f"{len(scores)} students")
    return save_png(fig)


def summary_page(checks, records, not_graded=()) -> str:
    """The class page: what was not graded, histogram, failures per check, a row per student linking to their page."""
    e = html.escape
    assignment = records[0].grading.assignment if records else ""
    body = [f"<h1>{e(assignment)}: {len(records)} students</h1>"]
    if not_graded:
        body += [f'<h2 class="error">Not graded: {len(not_graded)} entries</h2>',
                 "<p>These entries of the submissions folder were not graded; fix them and run the batch again.</p>",
                 "<table><tr><th>entry</th><th>why</th></tr>"]
        body += [f"<tr><td>{e(n.entry)}</td><td>{e(n.reason)}</td></tr>" for n in not_graded]
        body.append("</table>")
    body += ['<p>Instructor only: <a href="report/index.html">item analysis</a> (pass rates, points, why checks '
             'failed, time, students to look at) &middot; <a href="similarity/index.html">code similarity</a></p>',
             '<img alt="score histogram" src="summary.png">',
             '<img alt="share of students per status and per points, by check" src="report/checks.png">',
             "<h2>Failures per check</h2>", "<table><tr><th>check</th><th class=\"num\">points</th>"
            + "".join(f'<th class="num">{s}</th>' for s in STATUSES) + "</tr>"]
    points = {c.name: c.points for c in checks}
    for name, counts in failures_per_check(checks, records).items():
        body.append(f"<tr><td>{e(name)}</td><td class=\"num\">{points[name]:g}</td>"
                    + "".join(f'<td class="num">{counts[s]}</td>' for s in STATUSES) + "</tr>")
    body += ["</table>", "<h2>Students</h2>",
             '<table><tr><th>student</th><th class="num">score</th><th>status</th><th class="num">seconds</th>'
             '<th>flags</th></tr>']
    for r in records:
        link = e(f"students/{quote(r.student)}/feedback.html")
        body.append(f'<tr><td><a href="{link}">{e(r.student)}</a></td>'
                    f'<td class="num">{r.grading.score:g} / {r.grading.max_score:g}</td>'
                    f'<td class="{e(r.status)}">{e(r.status)}</td><td class="num">{r.grading.seconds:.1f}</td>'
                    f'<td>{e("; ".join(r.grading.flags))}</td></tr>')
    body.append("</table>")
    return _page(f"{assignment}: class summary", body)
