"""Load a submission (.py file, .ipynb notebook, or a folder holding one) as source code.

Notebooks: only the code the template defines is graded. From the code cells we keep
imports (not those of the grader itself: the check cell's), function and class
definitions, and assignments to names that the template itself assigns at top level
(its hyperparameters); everything else (calls, loops, prints, plots,
`if __name__ == "__main__":` blocks, IPython magics) is dropped, so demo and training
cells never run at import. A `.py` file runs as it is: its demo code belongs under
`if __name__ == "__main__":`, as the template shows.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

MAX_BYTES = 5 << 20
KEPT_STATEMENTS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


class SubmissionFormatError(Exception):
    """The file is not a readable submission (missing, too large, not a notebook, ...)."""


def find_file(path: Path, assignment: str) -> Path:
    """The submission file itself; a folder must hold exactly one candidate."""
    if not path.exists():
        raise SubmissionFormatError(f"{path} does not exist")
    if path.is_file():
        return path
    preferred = [path / f"{assignment}.ipynb", path / f"{assignment}.py"]
    candidates = [p for p in preferred if p.is_file()] or sorted(
        p for p in path.iterdir() if p.suffix in (".py", ".ipynb") and p.is_file())
    if len(candidates) != 1:
        names = ", ".join(p.name for p in candidates) or "none"
        raise SubmissionFormatError(f"{path} should hold one {assignment}.py or {assignment}.ipynb (found: {names})")
    return candidates[0]


def _read_text(path: Path) -> str:
    if path.stat().st_size > MAX_BYTES:
        raise SubmissionFormatError(f"{path.name} is larger than {MAX_BYTES >> 20} MB")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SubmissionFormatError(f"{path.name} is not UTF-8 text") from None


def top_level_assigned_names(source: str) -> set[str]:
    """Names a module assigns at top level (its constants and hyperparameters)."""
    names = set()
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def _imports_the_grader(node: ast.stmt) -> bool:
    """`from graders.notebook import check` (the check cell): the worker cannot import the grader."""
    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
    return any(name.split(".")[0] == "graders" for name in names)


def _keep(node: ast.stmt, template_names: set[str]) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return not _imports_the_grader(node)
    if isinstance(node, KEPT_STATEMENTS):
        return True
    if isinstance(node, ast.Assign):
        return all(isinstance(t, ast.Name) and t.id in template_names for t in node.targets)
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and node.target.id in template_names
    return False


def _cell_source(cell: dict, index: int) -> str:
    source = cell.get("source", "")
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        source = "".join(source)
    if not isinstance(source, str):
        raise SubmissionFormatError(f"notebook cell {index} has a malformed source")
    if source.lstrip().startswith("%%"):  # a cell magic (%%bash, %%time, ...): not Python, not graded
        return ""
    # IPython line magics and shell escapes are not Python: blank them, keeping line numbers.
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def notebook_code(text: str, template_names: set[str]) -> str:
    """The graded code of a notebook (see the module docstring)."""
    try:
        notebook = json.loads(text)
    except ValueError as exc:
        raise SubmissionFormatError(f"the notebook is not valid JSON ({exc}); open it in Jupyter and save it again") from None
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        raise SubmissionFormatError("the notebook has no list of cells; is it a Jupyter notebook (nbformat 4)?")
    parts = []
    for index, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = _cell_source(cell, index)
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            raise SubmissionFormatError(f"notebook cell {index} has a syntax error, line {exc.lineno}: {exc.msg}") from None
        lines = source.splitlines()
        kept = []
        for node in tree.body:
            if _keep(node, template_names):
                first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
                kept.append("\n".join(lines[first - 1: node.end_lineno]))
        if kept:
            parts.append(f"# --- notebook cell {index} ---\n" + "\n".join(kept))
    return "\n\n".join(parts) + "\n"


def load(path: str | Path, assignment: str, template_names: set[str]) -> tuple[Path, str]:
    """(the file graded, its graded source code)."""
    file = find_file(Path(path), assignment)
    if file.suffix == ".ipynb":
        return file, notebook_code(_read_text(file), template_names)
    if file.suffix == ".py":
        return file, _read_text(file)
    raise SubmissionFormatError(f"{file.name}: submissions are .py or .ipynb files")
