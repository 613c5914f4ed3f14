"""The terminal table of one grading, and `printable`: whatever reaches the instructor's terminal passes it."""

from __future__ import annotations

import re

from graders.release.replay import in_kit
from graders.results import SKIPPED, Grading
from graders.selection import NOT_SELECTED

MESSAGE_WIDTH = 60

# C0/C1 controls but newline and tab (ANSI escape sequences start with ESC or CSI; a carriage
# return overwrites the line), Unicode bidi overrides (which reorder what is shown), lone surrogates.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def printable(text: str) -> str:
    """`text` as a terminal may show it: each control character becomes its visible escape (`\\x1b`)."""
    return _UNPRINTABLE.sub(lambda m: ascii(m.group())[1:-1], text.replace("\r\n", "\n"))


def _cell(text: str, width: int) -> str:
    text = text.splitlines()[0] if text else ""
    return text if len(text) <= width else text[: width - 1] + "…"


# The loggers whose warnings describe a laptop's confinement: quiet in a student's run (the kit's CLI, the notebook's
# check cell), where isolation_note says it plainly under the table instead.
ISOLATION_LOGGERS = ("graders.sandbox.isolation",)


def isolation_note(grading: Grading) -> str | None:
    """One plain line, for a student, when their code ran without bubblewrap (a laptop): expected, not a warning."""
    if not grading.isolation or grading.isolation.startswith("bubblewrap"):
        return None
    return ("Your code ran in a separate process under limits, without bubblewrap's sandbox (not installed here): "
            "expected on a laptop, and fine for checking your own work.")


def table(grading: Grading, *, details: bool = True, for_student: bool | None = None) -> str:
    """A plain-text report: one row per check, then every message the row could not show whole; `for_student`
    (default: in a student kit) adds how the code was confined, plainly."""
    width = max([40] + [len(r.name) for r in grading.results])
    rows = [f"{grading.assignment}: {grading.submission} (device {grading.device})",
            f"{'check':{width}} {'status':8} {'points':>11} {'seconds':>8}  message"]
    for r in grading.results:
        rows.append(f"{r.name:{width}} {r.status:8} {r.points:>5g} / {r.max_points:<4g}"
                    f"{r.seconds:>8.1f}  {_cell(printable(r.message), MESSAGE_WIDTH)}")
    rows.append(f"{'total':{width}} {'':8} {grading.score:>5g} / {grading.max_score:<4g}{grading.seconds:>8.1f}")
    if details:
        for r in grading.results:
            cut = "\n" in r.message.strip() or len(r.message) > MESSAGE_WIDTH
            if r.message and r.message != NOT_SELECTED and (r.status not in ("passed", SKIPPED) or cut):
                rows += ["", f"--- {r.name} ({r.status})", r.message.rstrip()]
            if r.output and r.status != "passed":
                rows += ["  your code printed:", r.output.rstrip()[-2000:]]
    if grading.internal_error:
        rows += ["", f"INTERNAL GRADER ERROR: {grading.internal_error}"]
    if grading.partial:
        rows += ["", f"Only {len(grading.selection)} of {len(grading.results)} checks were graded (the total counts "
                     "those); the skipped ones are not zeros: grade the whole file to see them."]
    if (in_kit() if for_student is None else for_student) and (note := isolation_note(grading)):
        rows += ["", note]
    if grading.unsafe_host:
        rows += ["", f"GRADED ON AN UNSAFE HOST (--allow-unsafe-host): {grading.unsafe_host}"]
    if in_kit():
        skipped = sum(r.status == SKIPPED for r in grading.results)
        rows += ["", "This is the student kit's check with the public seeds, not your grade: the official grading "
                     "uses the instructor's seeds" + (f" and also runs the {skipped} skipped check(s)." if skipped
                                                       else ".")]
    return printable("\n".join(rows))
