"""Check your work from inside the notebook: the last cell of every template.

    from graders.notebook import check
    check("bandits")

grades the notebook with the public checks and shows the table inline (HTML in Jupyter,
text elsewhere); `check("bandits", "ucb_selection")` grades one check (and the checks it
needs), `check("bandits", unit=True)` every check that does not train. It is the same
grading as `python -m graders grade NAME NAME.ipynb`, in the repository or in a student
kit, and it is not the official grading: the instructor grades with their own seeds.

The grader reads the notebook's file, so it grades what was last saved. A kernel cannot
save its notebook (classic Jupyter's `IPython.notebook.save_checkpoint()` Javascript does
nothing in JupyterLab, Notebook 7 or VS Code, which need an extension for it), but it
knows what it ran: IPython keeps every cell's text in its history. So the check cell
compares the cells run since the last save with the saved file and refuses, in one line,
when a cell that defines graded code (a function, a class, an import, a plain
assignment) was run but is not in the file as it was run: the student edited it and ran
it without saving, or deleted it. Which file is the notebook comes from what Jupyter tells
its kernel (the `JPY_SESSION_NAME` variable, `__session__`, VS Code's `__vsc_ipynb_file__`),
else `NAME.ipynb` in the working folder; `check(NAME, path=...)` names it outright (and is
compared too when it is the kernel's own notebook).

Without bubblewrap (macOS, WSL without it) the grader confines the code by process
limits only, which is fine for checking your own work: that is said in one plain line
under the table, not as a warning.
"""

from __future__ import annotations

import html
import json
import logging
import os
import sys
import time
from pathlib import Path

from graders.outputs.table import ISOLATION_LOGGERS, isolation_note, table
from graders.results import Grading
from graders.submission import SubmissionFormatError, load_notebook

NOT_OFFICIAL = ("Not the official grading: this runs the public checks with the public seeds; "
                "your instructor grades with their own.")


def _ipython():
    shell = sys.modules.get("IPython")
    return shell.get_ipython() if shell is not None and hasattr(shell, "get_ipython") else None


def _session_notebook() -> Path | None:
    """The notebook the kernel runs, as Jupyter or VS Code tell it, when that file exists."""
    candidates = [os.environ.get("JPY_SESSION_NAME", "")]
    shell = _ipython()
    if shell is not None:
        candidates += [str(shell.user_ns.get(name, "")) for name in ("__session__", "__vsc_ipynb_file__")]
    for value in filter(None, candidates):
        path = Path(value)
        for found in (path, Path.cwd() / path.name):
            if found.suffix == ".ipynb" and found.is_file():
                return found
    return None


def notebook_path(assignment: str) -> Path:
    """The file of the running notebook, or NAME.ipynb in the working folder."""
    if (found := _session_notebook()) is not None:
        return found
    fallback = Path.cwd() / f"{assignment}.ipynb"
    if fallback.is_file():
        return fallback
    raise FileNotFoundError(f"cannot tell which notebook this is; save it and call check({assignment!r}, "
                            f"path='path/to/{assignment}.ipynb')")


def _normal(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n")).strip()


def unsaved_cell(saved_text: str, history: list[str]) -> str | None:
    """The first line of a cell run since the notebook was last saved that the saved file does not hold and that
    defines graded code, or None when the file holds everything run since.

    `history`: the kernel's cells as run (IPython's raw input history: entry n is the cell run as In [n]; the
    last is the check cell itself). The last save came after In [n] when the file holds a cell with execution
    count n and In [n]'s text; the runs after the latest such n are compared by their text.
    """
    try:
        cells = [c for c in json.loads(saved_text)["cells"] if isinstance(c, dict) and c.get("cell_type") == "code"]
        saved = [(c.get("execution_count"), _normal("".join(c["source"]) if isinstance(c["source"], list)
                                                    else c["source"])) for c in cells]
    except (ValueError, KeyError, TypeError):
        return None  # not a notebook the grader can read: the grading says why
    texts = {text for _, text in saved}
    current = len(history) - 1
    since = max([n for n, text in saved if isinstance(n, int) and 0 < n < current and _normal(history[n]) == text],
                default=0)
    for ran in history[since + 1 : current]:
        if _normal(ran) and _normal(ran) not in texts and _defines_graded_code(cells, ran):
            return _normal(ran).split("\n")[0]
    return None


def _defines_graded_code(cells: list[dict], ran: str) -> bool:
    """Whether `ran`, as one more cell of the saved notebook, would be graded (a demo or a print would not)."""
    notebook = {"cells": [*cells, {"cell_type": "code", "source": ran, "metadata": {}}]}
    try:
        graded = load_notebook(json.dumps(notebook), Path("unsaved.ipynb"))
    except SubmissionFormatError:
        return False
    lines = graded.code.split("\n")
    return any(origin is not None and origin.cell == len(notebook["cells"]) and lines[i].strip() not in ("", "pass")
               for i, origin in enumerate(graded.origins))  # (a magic line is graded as `pass`)


def html_table(grading: Grading, saved: str = "") -> str:
    """The result as an HTML table for Jupyter: every message whole, the code's output escaped."""
    e = html.escape
    colour = {"passed": "#17702a", "failed": "#b35c00", "skipped": "#666"}
    rows = []
    for r in grading.results:
        message = f"<pre style='white-space:pre-wrap;margin:0'>{e(r.message)}</pre>" if r.message else ""
        rows.append(f"<tr><td><code>{e(r.name)}</code></td>"
                    f"<td style='color:{colour.get(r.status, '#b00020')}'>{e(r.status)}</td>"
                    f"<td style='text-align:right'>{r.points:g} / {r.max_points:g}</td>"
                    f"<td style='text-align:right'>{r.seconds:.1f}</td><td style='text-align:left'>{message}</td></tr>")
    notes = "".join(f"<p><i>{e(note)}</i></p>" for note in (isolation_note(grading), NOT_OFFICIAL) if note)
    return (f"<p><b>{e(grading.assignment)}: {grading.score:g} / {grading.max_score:g}</b> "
            f"({e(Path(grading.submission).name)}{', ' + e(saved) if saved else ''}; {grading.seconds:.0f} s)</p>"
            "<table><tr><th>check</th><th>status</th><th>points</th><th>seconds</th><th>message</th></tr>"
            + "".join(rows) + f"</table>{notes}")


def check(assignment: str, *checks: str, unit: bool = False, path: str | Path | None = None,
          device: str = "auto") -> None:
    """Grade this notebook (or `path`) with the public checks and show the result here.

    `check("vae", "kl_matches_closed_form_and_monte_carlo")` grades that check alone (and what it needs),
    `check("vae", unit=True)` every check that does not train: seconds instead of minutes. The others show as
    skipped, not as zeros. Refuses, in one line, when a cell run since the last save is not in the saved notebook
    (module docstring).
    """
    from graders.release.replay import skipped_in_kit
    from graders.runner import grade

    if misplaced := [c for c in checks if c.endswith((".ipynb", ".py"))]:
        raise TypeError(f"check({assignment!r}, ...) takes check names; give the notebook as path={misplaced[0]!r}")
    if os.environ.get("NBGRADER_EXECUTION"):  # nbgrader's Validate or autograde runs every cell: not here
        print("check() does nothing under nbgrader; run this cell in Jupyter to check your work")
        return
    file = Path(path) if path is not None else notebook_path(assignment)
    shell = _ipython()
    own = _session_notebook()
    saved = f"as saved at {time.strftime('%H:%M:%S', time.localtime(file.stat().st_mtime))}"
    if shell is not None and file.suffix == ".ipynb" and own is not None and own.samefile(file):
        history = list(getattr(shell.history_manager, "input_hist_raw", []))
        if (line := unsaved_cell(file.read_text(encoding="utf-8", errors="replace"), history)) is not None:
            print(f"Not graded: {file.name} on disk does not hold the cell you ran starting `{line[:60]}` (not saved, "
                  "or changed or deleted since): save the notebook (Ctrl-S), re-run that cell if you changed it, and "
                  "run this cell again.")
            return
        print(f"Grading {file.name} (saved: it holds every cell you ran) with the public checks...", flush=True)
    else:
        print(f"Grading {file.name} {saved} (save first to grade your latest changes) with the public checks...",
              flush=True)
    quiet = [logging.getLogger(name) for name in ISOLATION_LOGGERS]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        grading = grade(assignment, file, device=device, checks=checks, unit=unit, unavailable=skipped_in_kit())
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
    if shell is not None:
        from IPython.display import HTML, display

        display(HTML(html_table(grading, saved)))
    else:
        print(table(grading, for_student=True))
        print(NOT_OFFICIAL)
