"""A notebook's graded code runs cell by cell, as in Jupyter and nbgrader: a cell that raises
stops itself, not the cells after it.

The grader writes a notebook's graded code with HEADER on its first line, followed by
the lines where its cells start (graders/submission.py); the `from __future__` imports
it hoists come before the first cell. A file without that header (a .py submission)
runs as one module, as Python runs it. Each cell is compiled on its own, padded so that
its line numbers are those of the whole file (the grader maps them back to the cell).
"""

from __future__ import annotations

HEADER = "# notebook cells start at lines:"
MAX_CELLS = 10_000
MAX_FAILED_CELLS = 20  # the cells that raised, reported to the grader in the order they ran


def cell_starts(source: str) -> list[int] | None:
    """The first line of each cell, or None when the code is not a notebook's."""
    first, _, _ = source.partition("\n")
    if not first.startswith(HEADER):
        return None
    try:
        starts = [int(n) for n in first[len(HEADER):].split()[:MAX_CELLS]]
    except ValueError:
        return None
    return starts if starts == sorted(set(starts)) and all(n > 1 for n in starts) else None


def run(source: str, starts: list[int], filename: str, namespace: dict) -> list[BaseException]:
    """Execute the code's prologue, then each cell, into `namespace`; the exceptions of the cells that raised."""
    lines = source.split("\n")
    prologue = "\n".join(lines[: starts[0] - 1] if starts else lines)
    exec(compile(prologue, filename, "exec", dont_inherit=True), namespace)  # noqa: S102 - the student's own code
    failures = []
    for begin, end in zip(starts, [*starts[1:], len(lines) + 1]):
        padding = "\n" * (begin - 1 - prologue.count("\n") - 1)
        text = prologue + "\n" + padding + "\n".join(lines[begin - 1 : end - 1])  # the prologue's futures apply
        try:
            exec(compile(text, filename, "exec", dont_inherit=True), namespace)  # noqa: S102
        except BaseException as exc:  # noqa: BLE001 - as a notebook does: report the cell, run the next
            failures.append(exc)
    return failures
