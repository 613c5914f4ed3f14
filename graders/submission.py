"""Load a submission (.py file, .ipynb notebook, or a folder holding one) as source code.

A `.py` file runs as it is: its demo code belongs under `if __name__ == "__main__":`,
as the template shows. A notebook is graded as the code of its cells, in order, minus
what only makes sense in Jupyter or would run demos and training at import: the rule of
graders/notebook_rule.py (NOTEBOOK_RULE, also written into every template notebook and
the README). Besides that rule:

- IPython syntax: line magics (`%matplotlib`), shell escapes (`!pip`), `x = !ls`
  and help (`obj?`) lines become `pass`; the body of a Python cell magic (`%%time`,
  `%%timeit`, `%%capture`, `%%prun`) is kept under the same rule (the magic line
  is blanked); other cell magics (`%%bash`, `%%writefile`, `%%html`, ...) are not
  Python and are dropped whole;
- one broken cell costs only what needs it, as in Jupyter and nbgrader: a cell with a
  syntax error is not graded (the others are), and the worker runs the graded cells one
  by one (graders_worker/cells.py), so a cell that raises while loading stops only itself.

The graded code keeps a map from each of its lines to the notebook cell and line (or
the .py line) the student wrote: `Submission.explain` rewrites the worker's
"submission.py, line N" into that place, and when the graded code misses a name, says
which cell defines it and why that cell did not define it (not graded by the rule, a
syntax error, or an exception while loading).
"""

from __future__ import annotations

import ast
import json
import keyword
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from graders.files import MAX_SUBMISSION_BYTES, Unreadable, read_file
from graders.notebook_rule import NOTEBOOK_RULE, Names, defined_names, why_dropped
from graders_worker.cells import HEADER

__all__ = ["NOTEBOOK_RULE", "Dropped", "Origin", "Submission", "SubmissionFormatError", "find_file", "load",
           "load_notebook"]

MAX_BYTES = MAX_SUBMISSION_BYTES
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun"})
_GRADED_LINE = re.compile(r'File "submission\.py", line (\d{1,9})')
_MISSING_NAME = re.compile(
    r"name '([A-Za-z_]\w{0,99})' is not defined|module 'submission' has no attribute '([A-Za-z_]\w{0,99})'"
    r"|does not define '([A-Za-z_]\w{0,99})'|cannot import name '([A-Za-z_]\w{0,99})'")
_IPYTHON_LINE = re.compile(r"^\s*(?:[%!?]|[\w.]+\?{1,2}\s*$|[\w.,\s*]+=\s*[%!])")
# What a line of a cell that does not parse would define, at its start: `def f`, `class C`, `x =`, `a, b =`, imports.
_DEFINES = re.compile(r"(?:async\s+)?def\s+(\w+)|class\s+(\w+)|([\w\s,]+?)\s*(?::[^=]*)?=(?!=)"
                      r"|import\s+(.+)|from\s+\S+\s+import\s+(.+)")


class SubmissionFormatError(Exception):
    """The file is not a readable submission (missing, too large, not a notebook, ...)."""


@dataclass(frozen=True)
class Origin:
    """Where a line of the graded code comes from: a notebook cell's line, or a .py line (cell None)."""

    cell: int | None
    line: int


@dataclass(frozen=True)
class Dropped:
    """A top-level statement of a notebook that is not graded (or a whole cell that does not parse), and the
    names it would have defined."""

    cell: int
    line: int
    text: str  # its first line
    reason: str
    names: frozenset[str]
    syntax_error: bool = False  # the whole cell: Python cannot read it


@dataclass
class Submission:
    file: Path
    code: str
    origins: list[Origin | None] = field(default_factory=list)  # per line of `code`; None: a line we added
    cell_heads: dict[int, str] = field(default_factory=dict)  # cell number -> its first non-blank line
    dropped: list[Dropped] = field(default_factory=list)
    defined_in: dict[str, list[int]] = field(default_factory=dict)  # name -> the graded cells that bind it

    @property
    def is_notebook(self) -> bool:
        return self.file.suffix == ".ipynb"

    def place(self, graded_line: int) -> str:
        """'reinforce.ipynb, cell 7 (`def f(x):`), line 3' or 'reinforce.py, line 47' for a graded line."""
        origin = self._origin(graded_line)
        if origin is None:
            return f"{self.file.name}, line {graded_line} of the graded code"
        if origin.cell is None:
            return f"{self.file.name}, line {origin.line}"
        return f"{self.file.name}, {self._label(origin.cell)}, line {origin.line}"

    def explain(self, message: str, load_failures: list[str] = ()) -> str:
        """The worker's message with each graded line mapped to the student's own, and a note when the graded
        code misses a name that a cell defines: a statement the rule drops, a cell with a syntax error, or a cell
        that raised while loading (`load_failures`: the worker's tracebacks of those, graders_worker/cells.py)."""
        text = _GRADED_LINE.sub(lambda m: f'File "{self.place(int(m.group(1)))}"', message)
        raised = self._cells_that_raised(load_failures)
        notes, noted = [], set()
        for match in _MISSING_NAME.finditer(message):
            name = next(g for g in match.groups() if g)
            if name in noted:
                continue
            noted.add(name)
            if note := self._why_missing(name, raised):
                notes.append(note)
        return "\n".join([text, *notes])

    def _why_missing(self, name: str, raised: dict[int, tuple[int, str]]) -> str | None:
        for cell in reversed(self.defined_in.get(name, [])):
            if cell in raised:
                line, error = raised[cell]
                return (f"Note: `{name}` is defined in notebook {self._label(cell)}, which raised {error} at line "
                        f"{line} while loading: the rest of that cell did not run (the other cells did). Run the "
                        "cell in Jupyter to see why.")
        for d in self.dropped:
            if name in d.names and d.syntax_error:
                return (f"Note: `{name}` is defined in notebook {cell_label(d.cell, d.text)}, which is not graded: "
                        f"{d.reason}. The other cells are graded; fix that one (run it in Jupyter to see).")
            if name in d.names:
                return (f"Note: `{name}` is defined in notebook {cell_label(d.cell, d.text)}, line {d.line}, which is "
                        f"not graded: {d.reason}. Graded notebooks keep imports, functions, classes and "
                        "assignments of plain values; put what your functions need there (see the "
                        "notebook's first cell).")
        return None

    def _cells_that_raised(self, load_failures: list[str]) -> dict[int, tuple[int, str]]:
        """cell -> (its line, the exception) for each traceback of the worker that starts in a notebook cell."""
        raised = {}
        for failure in load_failures:
            where = _GRADED_LINE.search(failure)
            origin = self._origin(int(where.group(1))) if where else None
            last = failure.strip().rsplit("\n", 1)[-1].strip()
            if origin is not None and origin.cell is not None and origin.cell not in raised:
                raised[origin.cell] = (origin.line, last if len(last) <= 200 else last[:199] + "…")
        return raised

    def _origin(self, graded_line: int) -> Origin | None:
        return self.origins[graded_line - 1] if 0 < graded_line <= len(self.origins) else None

    def _label(self, cell: int) -> str:
        return cell_label(cell, self.cell_heads.get(cell, ""))


def cell_label(cell: int, head: str) -> str:
    head = head.strip()
    return f"cell {cell} (`{head if len(head) <= 60 else head[:59] + '…'}`)" if head else f"cell {cell}"


LINK_REFUSED = ("{name} is a symbolic link; links are not followed (the grader would read its target with its own "
                "rights): give the file itself")


def _kind(path: Path) -> str:
    """'file', 'dir', 'link', 'other' or 'missing', without following a link."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "missing"
    return "link" if stat.S_ISLNK(mode) else "file" if stat.S_ISREG(mode) else "dir" if stat.S_ISDIR(mode) else "other"


def find_file(path: Path, assignment: str) -> Path:
    """The submission file itself; a folder must hold exactly one candidate.

    The path given is the caller's (links on the way to it, or to the folder, are theirs to choose), but the
    file graded is never a link, nor is anything in the folder: as in a batch (graders/batch/submissions.py),
    a link would have the grader (root on Gradescope) read whatever it points to and show it in the results.
    """
    kind = "dir" if path.is_dir() else _kind(path)  # a folder given is the caller's, as a batch's folder is
    if kind == "missing":
        raise SubmissionFormatError(f"{path} does not exist")
    if kind == "link":
        raise SubmissionFormatError(LINK_REFUSED.format(name=path.name))
    if kind != "dir":
        return path
    entries = {p.name: _kind(p) for p in path.iterdir()}
    preferred = [f"{assignment}.ipynb", f"{assignment}.py"]
    if links := [n for n in preferred if entries.get(n) == "link"]:
        raise SubmissionFormatError(LINK_REFUSED.format(name=links[0]))
    candidates = [n for n in preferred if entries.get(n) == "file"] or sorted(
        n for n, k in entries.items() if Path(n).suffix in (".py", ".ipynb") and k in ("file", "link"))
    if len(candidates) != 1:
        names = ", ".join(candidates) or "none"
        raise SubmissionFormatError(f"{path} should hold one {assignment}.py or {assignment}.ipynb (found: {names})")
    if entries[candidates[0]] == "link":
        raise SubmissionFormatError(LINK_REFUSED.format(name=candidates[0]))
    return path / candidates[0]


def _read_text(path: Path) -> str:
    """The file's text, read without following a link (graders.files.read_file)."""
    try:
        data = read_file(path.parent, (path.name,), MAX_BYTES)
    except Unreadable as exc:
        raise SubmissionFormatError(str(exc)) from None
    try:
        return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # universal newlines, as open()
    except UnicodeDecodeError:
        raise SubmissionFormatError(f"{path.name} is not UTF-8 text") from None


# ----------------------------------------------------------------------------- notebooks


def _cell_text(cell: dict, index: int) -> str:
    source = cell.get("source", "")
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        source = "".join(source)
    if not isinstance(source, str):
        raise SubmissionFormatError(f"notebook cell {index} has a malformed source")
    try:
        source.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SubmissionFormatError(
            f"notebook cell {index} holds a character that is not valid Unicode ({source[exc.start]!r}, "
            "a lone surrogate): delete it, or copy the cell's text into a fresh cell") from None
    return source.replace("\r\n", "\n").replace("\r", "\n")


def _python_source(source: str) -> tuple[str, str | None]:
    """(the cell as Python, its cell magic or None). See the module docstring."""
    magic = None
    lines = source.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None and lines[first].lstrip().startswith("%%"):
        magic = lines[first].lstrip()[2:].split(maxsplit=1)[0] if lines[first].strip() != "%%" else ""
        if magic not in PYTHON_CELL_MAGICS:
            return "", magic
        lines[first] = ""
    text = "\n".join(lines)
    if _parses(text):
        return text, magic
    return "\n".join(line[: len(line) - len(line.lstrip())] + "pass" if _IPYTHON_LINE.search(line) else line
                     for line in lines), magic


def _parse(source: str, where: str) -> ast.Module:
    """The cell's syntax tree; SyntaxError as Python raises it (the cell alone is not graded); a cell Python
    cannot read at all (nested too deeply, null bytes: not a typo) makes the notebook unreadable."""
    try:
        return compile(source, where, "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except SyntaxError:
        raise
    except (RecursionError, MemoryError):
        raise SubmissionFormatError(f"{where} holds an expression nested too deeply (or too long) for Python to "
                                    "read; split it into smaller statements") from None
    except ValueError as exc:  # e.g. null bytes
        raise SubmissionFormatError(f"{where} cannot be read as Python: {exc}") from None


def _parses(source: str) -> bool:
    try:
        compile(source, "<cell>", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False


def _names_of_unparsed(source: str) -> frozenset[str]:
    """The names a cell that does not parse would define at top level: each unindented block that parses on its
    own says exactly, the others by their first line (`def f(:` defines f)."""
    names: set[str] = set()
    lines = source.split("\n")
    starts = [i for i, line in enumerate(lines) if line[:1] not in ("", " ", "\t", "#", ")", "]", "}")] + [len(lines)]
    for begin, end in zip(starts, starts[1:]):
        block = "\n".join(lines[begin:end])
        if _parses(block):
            names |= {n for node in ast.parse(block).body for n in defined_names(node)}
        elif match := _DEFINES.match(lines[begin]):
            found = next(g for g in match.groups() if g)
            parts = found.split(",") if match.group(4) is None and match.group(5) is None else [
                part.split(" as ")[-1].split(".")[0] for part in found.strip("() ").split(",")]
            names |= {p.strip() for p in parts if p.strip().isidentifier() and not keyword.iskeyword(p.strip())}
    return frozenset(names)


def _segment(lines: list[str], node: ast.stmt) -> list[tuple[int, str]]:
    """(line number, text) of a statement, cut at its columns (`a = 1; train()` keeps `a = 1`)."""
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    rows = [lines[n - 1].encode() for n in range(first, node.end_lineno + 1)]
    rows[-1] = rows[-1][: node.end_col_offset]
    if first == node.lineno:
        rows[0] = rows[0][node.col_offset:]
    return [(first + i, row.decode(errors="replace")) for i, row in enumerate(rows)]


def _cells(text: str) -> list:
    try:
        notebook = json.loads(text)
    except RecursionError:
        raise SubmissionFormatError("the notebook's JSON is nested too deeply to be a Jupyter notebook; "
                                    "open it in Jupyter and save it again") from None
    except ValueError as exc:
        raise SubmissionFormatError(f"the notebook is not valid JSON ({exc}); open it in Jupyter and save it again") from None
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        raise SubmissionFormatError("the notebook has no list of cells; is it a Jupyter notebook (nbformat 4)?")
    return cells


def load_notebook(text: str, file: Path) -> Submission:
    """The graded code of a notebook (see the module docstring): HEADER and the cells' first lines, the hoisted
    `from __future__` imports, then each cell's graded statements under a `# --- notebook cell N ---` line."""
    names = Names()
    submission = Submission(file, "")
    futures: list[tuple[Origin, str]] = []
    cells: list[list[tuple[Origin | None, str]]] = []
    for index, cell in enumerate(_cells(text), start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        raw = _cell_text(cell, index)
        head = next((line for line in raw.split("\n") if line.strip()), "")
        submission.cell_heads[index] = head
        source, magic = _python_source(raw)
        if magic is not None and magic not in PYTHON_CELL_MAGICS:
            submission.dropped.append(Dropped(index, 1, head, f"a %%{magic} cell is not Python", frozenset()))
            continue
        lines = source.split("\n")
        try:
            tree = _parse(source, f"notebook {cell_label(index, head)}")
        except SyntaxError as exc:
            reason = f"it has a syntax error at line {exc.lineno}: {exc.msg}"
            submission.dropped.append(Dropped(index, exc.lineno or 1, head, reason, _names_of_unparsed(source), True))
            continue
        kept = []
        for node in tree.body:
            try:
                reason = why_dropped(node, names)
            except RecursionError:
                raise SubmissionFormatError(f"notebook {cell_label(index, head)}, line {node.lineno}: an expression nested "
                                            "too deeply to read; split it into smaller statements") from None
            if reason is not None:
                submission.dropped.append(Dropped(index, node.lineno, lines[node.lineno - 1].strip(), reason,
                                                  frozenset(defined_names(node))))
                continue
            for name in defined_names(node):
                submission.defined_in.setdefault(name, []).append(index)
            segment = [(Origin(index, n), t) for n, t in _segment(lines, node)]
            (futures if isinstance(node, ast.ImportFrom) and node.module == "__future__" else kept).extend(segment)
        if kept:
            cells.append([(None, f"# --- notebook cell {index} ---"), *kept, (None, "")])
    starts = []
    graded: list[tuple[Origin | None, str]] = [(None, ""), *futures]  # the header's line, written below
    for cell in cells:
        starts.append(len(graded) + 1)
        graded += cell
    graded[0] = (None, f"{HEADER} {' '.join(map(str, starts))}")
    submission.code = "\n".join(text for _, text in graded) + "\n"
    submission.origins = [origin for origin, _ in graded]
    return submission


def load(path: str | Path, assignment: str) -> Submission:
    """The file graded, its graded source code and the map back to what the student wrote."""
    file = find_file(Path(path), assignment)
    if file.suffix == ".ipynb":
        return load_notebook(_read_text(file), file)
    if file.suffix == ".py":
        code = _read_text(file)
        return Submission(file, code, [Origin(None, n) for n in range(1, code.count("\n") + 2)])
    raise SubmissionFormatError(f"{file.name}: submissions are .py or .ipynb files")
