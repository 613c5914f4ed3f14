"""Which checks a grading runs: all of them (an official grade), or those a student picked.

`python -m graders grade NAME FILE --check CHECK` (repeatable) and `--unit` (every check
that does not train), and `check(NAME, "CHECK")` / `check(NAME, unit=True)` in a notebook,
grade a part of an assignment in seconds. A name is a check's row (`trained_policy_first_seed`)
or the check as declared (`trained_policy`: all its rows). The checks a picked check
`needs` are picked with it. The rows left out are `skipped` with NOT_SELECTED: a partial
grading is feedback, never an official grade (graders/outputs/gradescope.py refuses it).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from graders.checks import Check

NOT_SELECTED = "not graded in this run: only the checks asked for were graded (drop --check/--unit to grade all)"


class SelectionError(ValueError):
    """A name that is no check of the assignment."""


def select(checks: Sequence[Check], names: Iterable[str] = (), unit: bool = False) -> frozenset[str] | None:
    """The names of the rows to grade (with what they need), or None for all of them."""
    names = list(names)
    if not names and not unit:
        return None
    known = {c.name for c in checks} | {c.family for c in checks}
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            raise SelectionError(f"no check named {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                                 + f"; the checks: {', '.join(c.name for c in checks)}")
    picked = {c.name for c in checks if c.name in names or c.family in names or (unit and c.kind == "unit")}
    while True:  # what the picked checks need, and what that needs
        needed = {c.name for p in checks if p.name in picked for c in checks if c.family in p.needs} - picked
        if not needed:
            return frozenset(picked)
        picked |= needed
