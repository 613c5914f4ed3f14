"""Generate the student templates from the reference solutions.

A solution is a Python file in the percent format: `# %%` starts a code cell and
`# %% [markdown]` a text cell; either header may end with a JSON object that becomes
the cell's metadata (e.g. nbgrader's). Student work lies between
`### BEGIN SOLUTION` and `### END SOLUTION` (nbgrader's markers); in the template
that region becomes `# YOUR CODE HERE` + `raise NotImplementedError()` at the
same indentation (`YOUR ANSWER HERE` in text cells). Each solution yields the
template as `.py` (same cells) and as `.ipynb`.

Some text is for one format only: a line starting `# [py] ` is kept (without the
marker) in the .py file only, and `# [ipynb] ` in the notebook only ("run this file"
vs "run the Try it cell"). In the notebook, the demo guard `if __name__ == "__main__":`
(true in Jupyter too) becomes `TRY_IT = False` / `if TRY_IT:`, so that "Run All" never
trains for minutes; and a last cell checks the saved notebook (graders/notebook.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from graders import assignments
from graders.notebook_rule import NOTEBOOK_RULE

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CELL_HEADER = re.compile(r"^# %%(?P<markdown> \[markdown\])?\s*(?P<metadata>\{.*\})?\s*$")
FORMAT_MARKER = re.compile(r"^(?P<prefix># ?)\[(?P<format>py|ipynb)\] ")
DEMO_GUARD = 'if __name__ == "__main__":'
NOTEBOOK_GUARD = ("TRY_IT = False  # set it to True and run this cell to try it here (it may train for minutes)",
                  "if TRY_IT:")


def for_format(source: str, fmt: str) -> str:
    """The source as the .py file ("py") or the notebook ("ipynb") shows it (see the module docstring)."""
    out = []
    for line in source.splitlines():
        if marker := FORMAT_MARKER.match(line):
            if marker["format"] == fmt:
                out.append(marker["prefix"] + line[marker.end():])
        elif fmt == "ipynb" and line.rstrip() == DEMO_GUARD:
            out += NOTEBOOK_GUARD
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def check_cells(assignment: str) -> list[dict]:
    """The notebook's last cells: check the saved notebook from inside it."""
    return [{"cell_type": "markdown", "metadata": {}, "source": [
                "## Check your work\n",
                "Save the notebook first (Ctrl-S): the cell below grades the saved file with the public checks ",
                "and shows the result here. It is not the official grading: your instructor grades with their own seeds."]},
            {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": [
                "from graders.notebook import check\n", "\n", f"check({assignment!r})"]}]


def strip_solutions(source: str, markdown: bool = False) -> str:
    """Replace every solution region by the placeholder students fill in."""
    out, inside = [], False
    for number, line in enumerate(source.splitlines(), start=1):
        marker = re.sub(r"^# ?", "", line.strip()).strip() if markdown else line.strip()
        if marker == BEGIN:
            if inside:
                raise ValueError(f"line {number}: nested {BEGIN}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out += [f"{indent}# YOUR ANSWER HERE"] if markdown else [f"{indent}# YOUR CODE HERE",
                                                                      f"{indent}raise NotImplementedError()"]
        elif marker == END:
            if not inside:
                raise ValueError(f"line {number}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN} without {END}")
    return "\n".join(out) + "\n"


def split_cells(source: str) -> list[dict]:
    """Percent-format source -> [{'cell_type', 'source', 'metadata'}] (headers removed)."""
    cells: list[dict] = []
    current = None
    for line in source.splitlines():
        header = CELL_HEADER.match(line)
        if header:
            metadata = json.loads(header["metadata"]) if header["metadata"] else {}
            current = {"cell_type": "markdown" if header["markdown"] else "code", "lines": [], "metadata": metadata}
            cells.append(current)
            continue
        if current is None:  # text before the first header is a code cell
            current = {"cell_type": "code", "lines": [], "metadata": {}}
            cells.append(current)
        current["lines"].append(line)
    result = []
    for cell in cells:
        lines = cell["lines"]
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if cell["cell_type"] == "markdown":
            lines = [re.sub(r"^# ?", "", line) for line in lines]
        result.append({"cell_type": cell["cell_type"], "source": "\n".join(lines), "metadata": cell["metadata"]})
    return result


def to_notebook(source: str, check: str | None = None) -> dict:
    """A percent-format source as an nbformat 4.5 notebook with stable cell ids; with `check` (an
    assignment's name), ending with the cells that check the saved notebook."""
    cells = []
    for index, cell in enumerate(split_cells(source)):
        lines = cell["source"].splitlines(keepends=True)
        nb_cell = {"cell_type": cell["cell_type"], "id": f"cell-{index}", "metadata": cell["metadata"], "source": lines}
        if cell["cell_type"] == "code":
            nb_cell.update(execution_count=None, outputs=[])
        cells.append(nb_cell)
    for cell in check_cells(check) if check else []:
        cells.append({**cell, "id": f"cell-{len(cells)}"})
    return {
        "cells": cells,
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }


def template_source(solution: str) -> str:
    """The .py template: markdown cells keep their `# ` prefix, so strip those regions as text."""
    parts, chunk, markdown = [], [], False
    for line in solution.splitlines():
        header = CELL_HEADER.match(line)
        if header:
            if chunk:
                parts.append(strip_solutions("\n".join(chunk), markdown))
            chunk, markdown = [], bool(header["markdown"])
        chunk.append(line)
    if chunk:
        parts.append(strip_solutions("\n".join(chunk), markdown))
    return "".join(parts)


def with_notebook_rule(notebook: dict) -> dict:
    """The notebook with the rule of what the grader keeps (graders/submission.py) ending its first text cell."""
    first = next((c for c in notebook["cells"] if c["cell_type"] == "markdown"), None)
    if first is not None:
        first["source"] = [*first["source"][:-1], first["source"][-1].rstrip("\n") + "\n", "\n", NOTEBOOK_RULE]
    return notebook


def render(name: str) -> dict[Path, str]:
    """The template files of one assignment and their exact contents."""
    template = template_source(assignments.solution_path(name).read_text())
    py_path, nb_path = assignments.template_paths(name)
    notebook = with_notebook_rule(to_notebook(for_format(template, "ipynb"), check=name))
    return {py_path: for_format(template, "py"), nb_path: json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"}


def write(name: str) -> list[Path]:
    files = render(name)
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(files)


def nbgrader_notebook(solution: str, grade_cells: list[dict], *, prefix: str, helper: str = "") -> dict:
    """nbgrader's *source* notebook of a solution, for `nbgrader generate_assignment`.

    Every cell holding a solution region becomes an nbgrader solution cell (a markdown
    one a manually graded answer, as nbgrader requires); cells whose `# %%` header
    already carries `nbgrader` metadata keep it. Then come `helper` (a locked code cell
    the grade cells call) and `grade_cells` ({grade_id, points, source}): locked
    autograder-test cells whose scores our grader writes into the gradebook. Their
    source is never run for grading. Last, the cells that check the saved notebook.
    """
    notebook = to_notebook(for_format(solution, "ipynb"))
    for index, cell in enumerate(notebook["cells"]):
        text = "".join(cell["source"])
        if "nbgrader" in cell["metadata"] or BEGIN not in text:
            continue
        markdown = cell["cell_type"] == "markdown"
        cell["metadata"]["nbgrader"] = {"solution": True, "grade": markdown, "locked": False,
                                        "grade_id": f"{prefix}-solution-{index}", "schema_version": 3,
                                        **({"points": 0} if markdown else {})}
    cells = notebook["cells"]
    cells.append({"cell_type": "markdown", "id": f"cell-{len(cells)}", "metadata": {},
                  "source": ["## Graded checks\n", "The course grader scores the cells below."]})
    if helper:
        cells.append({"cell_type": "code", "id": f"cell-{len(cells)}", "execution_count": None, "outputs": [],
                      "source": helper.splitlines(keepends=True),
                      "metadata": {"nbgrader": {"solution": False, "grade": False, "locked": True,
                                                "grade_id": f"{prefix}-graded-by-the-course-grader",
                                                "schema_version": 3}}})
    for grade in grade_cells:
        cells.append({
            "cell_type": "code", "id": f"cell-{len(cells)}", "execution_count": None, "outputs": [],
            "source": grade["source"].splitlines(keepends=True),
            "metadata": {"nbgrader": {"solution": False, "grade": True, "locked": True, "grade_id": grade["grade_id"],
                                      "points": grade["points"], "schema_version": 3}},
        })
    for cell in check_cells(prefix):
        cells.append({**cell, "id": f"cell-{len(cells)}"})
    return notebook
