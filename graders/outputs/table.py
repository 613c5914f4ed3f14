"""The terminal table of one grading, and `printable`: whatever reaches the instructor's terminal passes it."""

from __future__ import annotations

import re

from graders.results import Grading

# C0/C1 controls but newline and tab (ANSI escape sequences start with ESC or CSI; a carriage
# return overwrites the line), Unicode bidi overrides (which reorder what is shown), lone surrogates.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def printable(text: str) -> str:
    """`text` as a terminal may show it: each control character becomes its visible escape (`\\x1b`)."""
    return _UNPRINTABLE.sub(lambda m: ascii(m.group())[1:-1], text.replace("\r\n", "\n"))


def _cell(text: str, width: int) -> str:
    text = text.splitlines()[0] if text else ""
    return text if len(text) <= width else text[: width - 1] + "…"


def table(grading: Grading, *, details: bool = True) -> str:
    """A plain-text report: one row per check, then the messages of those that lost points."""
    rows = [f"{grading.assignment}: {grading.submission} (device {grading.device})",
            f"{'check':40} {'status':8} {'points':>11} {'seconds':>8}  message"]
    for r in grading.results:
        rows.append(f"{r.name:40} {r.status:8} {r.points:>5g} / {r.max_points:<4g}"
                    f"{r.seconds:>8.1f}  {_cell(printable(r.message), 60)}")
    rows.append(f"{'total':40} {'':8} {grading.score:>5g} / {grading.max_score:<4g}{grading.seconds:>8.1f}")
    if details:
        for r in grading.results:
            if r.message and (r.status != "passed" or "\n" in r.message):
                rows += ["", f"--- {r.name} ({r.status})", r.message.rstrip()]
            if r.output and r.status != "passed":
                rows += ["  your code printed:", r.output.rstrip()[-2000:]]
    if grading.internal_error:
        rows += ["", f"INTERNAL GRADER ERROR: {grading.internal_error}"]
    return printable("\n".join(rows))
