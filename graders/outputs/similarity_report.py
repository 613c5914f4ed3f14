"""The code-similarity pages of a class (an instructor-only output), from graders/similarity.py.

Into RESULTS/similarity/:

    index.html      the flagged pairs (score, each side's share, shared characters), the closest pairs below
                    the threshold, the students not compared and why, the histogram of all pairs' scores
    pairs.csv       every pair sharing code beyond the template, highest score first
    pair-N.html     a flagged pair side by side: each student's own code (template lines left out), the
                    shared runs highlighted
    scores.png      histogram of the pairs' scores, with the threshold

It compares the copies the batch graded (students/<student>/submission/), never the
submissions folder. A flagged pair is a reason to look, not a verdict: the page says so.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from graders import assignments, similarity
from graders.batch.records import snapshot_file
from graders.files import atomic_write
from graders.outputs.feedback import STYLE
from graders.outputs.report import csv_text
from graders.plotting import figure, save_png
from graders.results import Record

FOLDER = "similarity"
CLOSEST_SHOWN = 15  # pairs below the threshold listed on the page
PAIR_STYLE = """
.pair{display:grid;grid-template-columns:1fr 1fr;gap:1em}.pair pre{font-size:12px;margin:0;max-height:none}
mark{background:#ffd54f}body{max-width:1400px}
"""


def codes_of(out: Path, records: Sequence[Record]) -> dict[str, similarity.Code]:
    """Each student's code, read from the copy the batch graded."""
    return {r.student: similarity.read_code(r.student, snapshot_file(Path(out) / "students" / r.student))
            for r in records}


def default_templates(assignment: str) -> list[Path]:
    return list(assignments.template_paths(assignment))


def _page(title: str, body: list[str], extra_style: str = "") -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}{extra_style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _link(student: str) -> str:
    return f'<a href="../students/{html.escape(quote(student))}/feedback.html">{html.escape(student)}</a>'


def pairs_csv(result: similarity.Similarity) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student_a", "student_b", "score", "share_a", "share_b", "shared_chars", "flagged"])
    for p in result.pairs:
        writer.writerow([csv_text(p.a), csv_text(p.b), f"{p.score:.4f}", f"{p.share_a:.4f}", f"{p.share_b:.4f}",
                         p.overlap, "yes" if similarity.flags(p, result.threshold, result.min_overlap) else ""])
    return buffer.getvalue()


def scores_png(result: similarity.Similarity, students: int) -> bytes:
    """Histogram of the scores of the pairs compared in full; the others share too little to be compared."""
    from matplotlib.ticker import MaxNLocator

    fig = figure(6, 3.2, dpi=90)
    axes = fig.subplots()
    axes.hist([p.score for p in result.pairs], bins=40, range=(0, 1), color="#4c72b0")
    axes.axvline(result.threshold, color="#c0392b", linestyle="--", label=f"threshold {result.threshold:g}")
    rest = students * (students - 1) // 2 - len(result.pairs)
    axes.set_title(f"{len(result.pairs)} pairs compared in full; {rest} share too little to compare", fontsize=9)
    axes.set_xlabel("pair score: share of one student's own code found in the other's")
    axes.set_ylabel("pairs")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(fontsize=8)
    return save_png(fig)


def pair_page(index: int, pair: similarity.Pair, result: similarity.Similarity, assignment: str) -> str:
    e = html.escape
    a, b = result.codes[pair.a], result.codes[pair.b]
    body = [f"<h1>{e(assignment)}: pair {index}</h1>",
            f"<p>{_link(pair.a)} and {_link(pair.b)}: {pair.share_a:.0%} of {e(pair.a)}'s own code is found in "
            f"{e(pair.b)}'s, {pair.share_b:.0%} of {e(pair.b)}'s in {e(pair.a)}'s ({pair.overlap} characters of "
            "code shared, after names, strings, comments and spacing are set aside). Highlighted: the shared runs. "
            f"Template lines are left out (<code>{e(similarity.TEMPLATE_MARK)}</code>). A reason to look, not a verdict.</p>",
            '<p><a href="index.html">All pairs</a></p>', '<div class="pair">']
    for student, code, slices in ((pair.a, a, pair.slices_a), (pair.b, b, pair.slices_b)):
        note = f" <small>({e(code.note)})</small>" if code.note else ""
        body.append(f"<div><h2>{e(student)}{note}</h2><pre>{similarity.highlighted(code.text, slices)}</pre></div>")
    body.append("</div>")
    return _page(f"{assignment}: pair {index}", body, PAIR_STYLE)


def index_page(result: similarity.Similarity, assignment: str, templates: Sequence[Path], students: int) -> str:
    e = html.escape
    flagged = result.flagged()
    body = [f"<h1>{e(assignment)}: code similarity of {students} students</h1>",
            f"<p>Instructor only. {len(flagged)} pairs flagged: at least {result.threshold:.0%} of one student's own "
            f"code (beyond the template) found in the other's, and at least {result.min_overlap} characters of "
            "code shared. Names, strings, comments and spacing do not count, and reordered functions still match "
            "(copydetect's fingerprints). A flagged pair is a reason to look, not a verdict. Template: "
            + (", ".join(e(p.name) for p in templates) or "none") + '. All pairs: <a href="pairs.csv">pairs.csv</a>. '
            '<a href="../index.html">Class page</a>.</p>']
    rows = [f'<tr><td><a href="pair-{i}.html">{i}</a></td><td>{_link(p.a)}</td><td>{_link(p.b)}</td>'
            f'<td class="num">{p.score:.0%}</td><td class="num">{p.share_a:.0%} / {p.share_b:.0%}</td>'
            f'<td class="num">{p.overlap}</td></tr>' for i, p in enumerate(flagged, start=1)]
    header = ('<table><tr><th>pair</th><th>student</th><th>student</th><th class="num">score</th>'
              '<th class="num">shares</th><th class="num">shared chars</th></tr>')
    body += ["<h2>Flagged pairs</h2>", header + "".join(rows) + "</table>" if rows else "<p>None.</p>"]
    closest = [p for p in result.pairs if not similarity.flags(p, result.threshold, result.min_overlap)][:CLOSEST_SHOWN]
    if closest:
        body += [f"<h2>The closest pairs below the threshold ({len(closest)})</h2>", header.replace("<th>pair</th>", "<th></th>")
                 + "".join(f'<tr><td></td><td>{_link(p.a)}</td><td>{_link(p.b)}</td><td class="num">{p.score:.0%}</td>'
                           f'<td class="num">{p.share_a:.0%} / {p.share_b:.0%}</td><td class="num">{p.overlap}</td></tr>'
                           for p in closest) + "</table>"]
    body += ['<img alt="histogram of the pairs\' scores" src="scores.png">']
    skipped = result.not_compared
    noted = [c for c in result.codes.values() if c.note and not c.problem]
    if skipped or noted:
        body += [f"<h2>Not compared ({len(skipped)}) or cut ({len(noted)})</h2><table><tr><th>student</th><th>why</th></tr>"]
        body += [f"<tr><td>{_link(c.student)}</td><td>{e(c.problem or c.note)}</td></tr>" for c in skipped + noted]
        body.append("</table>")
    return _page(f"{assignment}: code similarity", body)


def summary_html(result: similarity.Similarity) -> str:
    """A paragraph for the class pages: how many pairs are flagged, with a link."""
    flagged = result.flagged()
    names = ", ".join(f"{html.escape(p.a)} &amp; {html.escape(p.b)}" for p in flagged[:5])
    more = f" and {len(flagged) - 5} more" if len(flagged) > 5 else ""
    return (f'<p><b>Code similarity</b>: <a href="{{prefix}}similarity/index.html">{len(flagged)} pairs flagged</a>'
            + (f" ({names}{more})" if flagged else "") + f"; {len(result.not_compared)} students not compared.</p>")


def write(out: Path, assignment: str, records: Sequence[Record], templates: Sequence[Path] | None = None,
          threshold: float = similarity.THRESHOLD) -> similarity.Similarity:
    """Compare the class's code and write RESULTS/similarity/ (SimilarityUnavailable without copydetect)."""
    templates = default_templates(assignment) if templates is None else list(templates)
    result = similarity.compare(codes_of(out, records), similarity.template_texts(templates), threshold)
    folder = Path(out) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("pair-*.html"):
        old.unlink()
    for i, pair in enumerate(result.flagged(), start=1):
        atomic_write(folder / f"pair-{i}.html", pair_page(i, pair, result, assignment).encode("utf-8", "replace"))
    atomic_write(folder / "pairs.csv", pairs_csv(result).encode("utf-8", "replace"))
    atomic_write(folder / "scores.png", scores_png(result, len(records)))
    atomic_write(folder / "index.html", index_page(result, assignment, templates, len(records)).encode("utf-8", "replace"))
    return result
