"""Check your work from inside the notebook: the last cell of every template.

    from graders.notebook import check
    check("bandits")

grades the notebook *as last saved* (save first: Ctrl-S) with the public checks and
shows the table inline (HTML in Jupyter, text elsewhere); `check("bandits",
"ucb_selection")` grades one check (and the checks it needs), `check("bandits",
unit=True)` every check that does not train. It is the same grading as
`python -m graders grade NAME NAME.ipynb`, in the repository or in a student kit,
and it is not the official grading: the instructor grades with their own seeds.

The notebook's own file is found from what Jupyter tells its kernel (the
`JPY_SESSION_NAME` variable, `__session__`, VS Code's `__vsc_ipynb_file__`), else
`NAME.ipynb` in the working folder; `check(NAME, path=...)` names it outright.
Without bubblewrap (macOS, WSL without it) the grader confines the code by process
limits only, which is fine for checking your own work.
"""

from __future__ import annotations

import html
import os
import sys
import time
from pathlib import Path

from graders.outputs.table import table
from graders.results import Grading

NOT_OFFICIAL = ("Not the official grading: this runs the public checks with the public seeds; "
                "your instructor grades with their own.")


def _ipython():
    shell = sys.modules.get("IPython")
    return shell.get_ipython() if shell is not None and hasattr(shell, "get_ipython") else None


def notebook_path(assignment: str) -> Path:
    """The file of the running notebook, or NAME.ipynb in the working folder."""
    candidates = [os.environ.get("JPY_SESSION_NAME", "")]
    shell = _ipython()
    if shell is not None:
        candidates += [str(shell.user_ns.get(name, "")) for name in ("__session__", "__vsc_ipynb_file__")]
    for value in filter(None, candidates):
        path = Path(value)
        for found in (path, Path.cwd() / path.name):
            if found.suffix == ".ipynb" and found.is_file():
                return found
    fallback = Path.cwd() / f"{assignment}.ipynb"
    if fallback.is_file():
        return fallback
    raise FileNotFoundError(f"cannot tell which notebook this is; save it and call check({assignment!r}, "
                            f"path='path/to/{assignment}.ipynb')")


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
    return (f"<p><b>{e(grading.assignment)}: {grading.score:g} / {grading.max_score:g}</b> "
            f"({e(Path(grading.submission).name)}{', ' + e(saved) if saved else ''}; {grading.seconds:.0f} s)</p>"
            "<table><tr><th>check</th><th>status</th><th>points</th><th>seconds</th><th>message</th></tr>"
            + "".join(rows) + f"</table><p><i>{e(NOT_OFFICIAL)}</i></p>")


def check(assignment: str, *checks: str, unit: bool = False, path: str | Path | None = None,
          device: str = "auto") -> None:
    """Grade the saved notebook (or `path`) with the public checks and show the result here.

    `check("vae", "gaussian_kl")` grades that check alone (and what it needs), `check("vae", unit=True)` every
    check that does not train: seconds instead of minutes. The others show as skipped, not as zeros.
    """
    from graders.runner import grade

    if misplaced := [c for c in checks if c.endswith((".ipynb", ".py"))]:
        raise TypeError(f"check({assignment!r}, ...) takes check names; give the notebook as path={misplaced[0]!r}")
    if os.environ.get("NBGRADER_EXECUTION"):  # nbgrader's Validate or autograde runs every cell: not here
        print("check() does nothing under nbgrader; run this cell in Jupyter to check your work")
        return
    file = Path(path) if path is not None else notebook_path(assignment)
    saved = f"as saved at {time.strftime('%H:%M:%S', time.localtime(file.stat().st_mtime))}"
    print(f"Grading {file.name} {saved} (save first to grade your latest changes); this can take minutes...",
          flush=True)
    grading = grade(assignment, file, device=device, checks=checks, unit=unit)
    shell = _ipython()
    if shell is not None:
        from IPython.display import HTML, display

        display(HTML(html_table(grading, saved)))
    else:
        print(table(grading))
        print(NOT_OFFICIAL)
