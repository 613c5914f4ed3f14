"""Load a submission (.py file, .ipynb notebook, or a folder holding one) as source code.

A `.py` file runs as it is: its demo code belongs under `if __name__ == "__main__":`,
as the template shows. A notebook is graded as the code of its cells, in order, minus
what only makes sense in Jupyter or would run demos and training at import. The rule
(NOTEBOOK_RULE, also written into every template notebook and the README):

- kept: imports; function and class definitions; assignments whose value is a plain
  value: literals, names, attribute lookups, indexing, arithmetic, comparisons,
  conditional expressions, containers and comprehensions, lambdas, and calls of only
  these (ALLOWED_CALLS): Python's type constructors and pure builtins, `math`,
  numpy's array constructors and `np.random.default_rng`, torch's tensor
  constructors, `torch.device`, `torch.cuda.is_available`, `torch.nn` layers and
  losses, `collections`, `functools.partial`, `dataclasses.field`, and the notebook's
  own dataclasses (`args = Args(lr=1e-3)`); an `if` or `try` made only of such
  statements;
- dropped: any other statement: calls (`train(...)`, `plt.plot(...)`), assignments
  from other calls (`policy = train(...)`, `env = gym.make(...)`), loops, `with`
  blocks, `if __name__ == "__main__":` blocks, and an assignment that uses a name
  the kept code does not define;
- IPython syntax: line magics (`%matplotlib`), shell escapes (`!pip`), `x = !ls`
  and help (`obj?`) lines become `pass`; the body of a Python cell magic (`%%time`,
  `%%timeit`, `%%capture`, `%%prun`) is kept under the same rule (the magic line
  is blanked); other cell magics (`%%bash`, `%%writefile`, `%%html`, ...) are not
  Python and are dropped whole;
- the check cell's import of the course grader (`from graders.notebook import check`) is
  dropped: the worker cannot import the grader.

The graded code keeps a map from each of its lines to the notebook cell and line (or
the .py line) the student wrote: `Submission.explain` rewrites the worker's
"submission.py, line N" into that place, and when the graded code misses a name that
a dropped statement defines, says which cell and why it was not graded.
"""

from __future__ import annotations

import ast
import builtins
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from graders.files import MAX_SUBMISSION_BYTES, Unreadable, read_file

MAX_BYTES = MAX_SUBMISSION_BYTES
GRADED_FILE = "submission.py"  # the worker's name for the graded code (graders_worker/main.py)

NOTEBOOK_RULE = (
    "How a notebook is graded: the grader runs the code cells in order, keeping imports, functions, classes, "
    "and assignments of plain values (numbers, strings, lists, dicts, arithmetic, `np.array(...)`, "
    "`torch.tensor(...)`, `torch.device(...)`, `nn.MSELoss()`, `Args(...)`, ...). Every other statement is "
    "skipped: calls such as `train(...)` or `plt.plot(...)`, assignments from them (`policy = train(...)`), "
    "loops, `with` blocks and `if __name__ == \"__main__\":` blocks, so demo and training cells never run during "
    "grading. Magics and shell escapes (`%matplotlib`, `!pip`) are skipped; the code under `%%time`, "
    "`%%timeit`, `%%capture` and `%%prun` is graded like any other cell. Keep what your functions need in "
    "functions, classes or plain assignments."
)

PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun"})

# Calls an assignment may make and still count as a plain value (module paths after import aliases).
ALLOWED_CALLS = frozenset({
    *(f"builtins.{n}" for n in (
        "int", "float", "complex", "str", "bool", "bytes", "tuple", "list", "dict", "set", "frozenset", "range",
        "len", "min", "max", "abs", "round", "sum", "sorted", "reversed", "zip", "enumerate", "slice", "divmod",
        "pow", "hash", "repr", "chr", "ord", "object")),
    *(f"numpy.{n}" for n in (
        "array", "asarray", "zeros", "ones", "full", "empty", "eye", "identity", "arange", "linspace", "logspace",
        "float16", "float32", "float64", "int32", "int64", "bool_", "dtype", "sqrt", "log", "exp", "log1p",
        "expm1", "abs", "sin", "cos", "tanh", "prod", "finfo", "iinfo")),
    "numpy.random.default_rng", "numpy.random.Generator", "numpy.random.PCG64", "numpy.random.SeedSequence",
    *(f"torch.{n}" for n in (
        "tensor", "as_tensor", "zeros", "ones", "full", "empty", "eye", "arange", "linspace", "device", "finfo",
        "iinfo", "get_default_dtype")),
    "torch.cuda.is_available", "torch.cuda.device_count", "torch.backends.mps.is_available",
    "functools.partial", "dataclasses.field", "typing.TypeVar", "typing.NamedTuple", "typing.cast",
    *(f"collections.{n}" for n in ("namedtuple", "deque", "defaultdict", "OrderedDict", "Counter")),
    "pathlib.Path",
})
ALLOWED_CALL_MODULES = ("math.", "cmath.", "torch.nn.", "operator.")  # any callable there (pure, or a layer)
KNOWN_NAMES = frozenset(dir(builtins)) | {"__name__", "__doc__", "__file__", "__builtins__", "__spec__"}
_GRADED_LINE = re.compile(r'File "submission\.py", line (\d{1,9})')
_MISSING_NAME = re.compile(
    r"name '([A-Za-z_]\w{0,99})' is not defined|module 'submission' has no attribute '([A-Za-z_]\w{0,99})'"
    r"|does not define '([A-Za-z_]\w{0,99})'|cannot import name '([A-Za-z_]\w{0,99})'")
_IPYTHON_LINE = re.compile(r"^\s*(?:[%!?]|[\w.]+\?{1,2}\s*$|[\w.,\s*]+=\s*[%!])")


class SubmissionFormatError(Exception):
    """The file is not a readable submission (missing, too large, not a notebook, ...)."""


@dataclass(frozen=True)
class Origin:
    """Where a line of the graded code comes from: a notebook cell's line, or a .py line (cell None)."""

    cell: int | None
    line: int


@dataclass(frozen=True)
class Dropped:
    """A top-level statement of a notebook that is not graded, and the names it would have defined."""

    cell: int
    line: int
    text: str  # its first line
    reason: str
    names: frozenset[str]


@dataclass
class Submission:
    file: Path
    code: str
    origins: list[Origin | None] = field(default_factory=list)  # per line of `code`; None: a line we added
    cell_heads: dict[int, str] = field(default_factory=dict)  # cell number -> its first non-blank line
    dropped: list[Dropped] = field(default_factory=list)

    @property
    def is_notebook(self) -> bool:
        return self.file.suffix == ".ipynb"

    def place(self, graded_line: int) -> str:
        """'reinforce.ipynb, cell 7 (`def f(x):`), line 3' or 'reinforce.py, line 47' for a graded line."""
        origin = self.origins[graded_line - 1] if 0 < graded_line <= len(self.origins) else None
        if origin is None:
            return f"{self.file.name}, line {graded_line} of the graded code"
        if origin.cell is None:
            return f"{self.file.name}, line {origin.line}"
        return f"{self.file.name}, {cell_label(origin.cell, self.cell_heads.get(origin.cell, ''))}, line {origin.line}"

    def explain(self, message: str) -> str:
        """The worker's message with each graded line mapped to the student's own, and a note when
        the graded code misses a name that a dropped notebook statement defines."""
        text = _GRADED_LINE.sub(lambda m: f'File "{self.place(int(m.group(1)))}"', message)
        notes, noted = [], set()
        for match in _MISSING_NAME.finditer(message):
            name = next(g for g in match.groups() if g)
            for d in self.dropped:
                if name in d.names and name not in noted:
                    noted.add(name)
                    notes.append(f"Note: `{name}` is defined in notebook {cell_label(d.cell, d.text)}, line {d.line}, which is "
                                 f"not graded: {d.reason}. Graded notebooks keep imports, functions, classes and "
                                 "assignments of plain values; put what your functions need there (see the "
                                 "notebook's first cell).")
        return "\n".join([text, *notes])


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


# ----------------------------------------------------------------------------- what is a plain value


class _Names:
    """Import aliases (name -> module path), the notebook's dataclasses, and the names kept code defines."""

    def __init__(self):
        self.modules: dict[str, str] = {}
        self.dataclasses: set[str] = set()
        self.own: set[str] = set()
        self.star_import = False

    def copy(self) -> _Names:
        other = _Names()
        other.modules, other.dataclasses, other.own = dict(self.modules), set(self.dataclasses), set(self.own)
        other.star_import = self.star_import
        return other

    def known(self, name: str) -> bool:
        return self.star_import or name in self.own or name in KNOWN_NAMES

    def dotted(self, node: ast.expr) -> str | None:
        """'numpy.array' for `np.array` after `import numpy as np`; None when not a dotted name."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        if node.id in self.modules:
            root = self.modules[node.id]
        else:
            root = f"builtins.{node.id}" if node.id in KNOWN_NAMES and node.id not in self.own else node.id
        return ".".join([root, *reversed(parts)])

    def allowed_call(self, call: ast.Call) -> bool:
        if isinstance(call.func, ast.Name) and call.func.id in self.dataclasses:
            return True
        name = self.dotted(call.func)
        return name is not None and (name in ALLOWED_CALLS or (name.startswith(ALLOWED_CALL_MODULES) and "._" not in name))


def _walk_now(node: ast.AST):
    """The nodes of an expression that are evaluated now: lambda bodies run later, when called."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        if isinstance(current, ast.Lambda):
            stack.append(current.args)
        else:
            stack.extend(ast.iter_child_nodes(current))


def _first_call(node: ast.AST, names: _Names) -> str | None:
    """The first call in an expression that is not a plain value's ('train()'), or None."""
    for sub in _walk_now(node):
        if isinstance(sub, ast.Call) and not names.allowed_call(sub):
            return f"{ast.unparse(sub.func)[:60]}()"
        if isinstance(sub, (ast.Await, ast.Yield, ast.YieldFrom)):
            return "await/yield"
    return None


def _bound_inside(node: ast.AST) -> set[str]:
    """Names an expression binds for itself (comprehension targets, lambda arguments, walrus targets)."""
    bound = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.comprehension):
            bound |= {n.id for n in ast.walk(sub.target) if isinstance(n, ast.Name)}
        elif isinstance(sub, ast.Lambda):
            bound |= {a.arg for a in ast.walk(sub.args) if isinstance(a, ast.arg)}
    return bound


def _used_now(node: ast.AST) -> set[str]:
    """Names an expression reads when it is evaluated."""
    used = {n.id for n in _walk_now(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return used - _bound_inside(node)


def _target_names(targets: list[ast.expr]) -> set[str]:
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _defined_names(node: ast.stmt) -> set[str]:
    """Every name a (dropped) statement would bind at top level, nested blocks included."""
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(sub.name)
        elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
            names.add(sub.id)
        elif isinstance(sub, ast.alias):
            names.add((sub.asname or sub.name).split(".")[0])
    return names


def _imports_the_grader(node: ast.stmt) -> bool:
    """`from graders.notebook import check` (the check cell): the worker cannot import the grader."""
    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
    return any(name.split(".")[0] == "graders" for name in names)


def _is_main_guard(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators))


def _assignment_parts(node: ast.stmt) -> tuple[list[ast.expr], ast.expr | None] | None:
    if isinstance(node, ast.Assign):
        return node.targets, node.value
    if isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        return [node.target], node.value
    return None


def _missing(expressions: list[ast.expr], names: _Names) -> str | None:
    """Why these expressions cannot be evaluated in the graded code, or None."""
    for expression in expressions:
        if (call := _first_call(expression, names)) is not None:
            return f"it calls {call}, which runs only in the notebook"
    reads = set().union(*(_used_now(e) for e in expressions))
    if missing := sorted(n for n in reads if not names.known(n)):
        return f"it uses `{missing[0]}`, which the graded code does not define"
    return None


def _why_dropped(node: ast.stmt, names: _Names) -> str | None:
    """None when the statement is graded (and `names` learns what it defines), else why not, in words."""
    if isinstance(node, (ast.Import, ast.ImportFrom)) and _imports_the_grader(node):
        return "the course grader's check cell runs only in the notebook"
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        for alias in node.names:
            if alias.name == "*":
                names.star_import = True
                continue
            bound = (alias.asname or alias.name).split(".")[0]
            if isinstance(node, ast.Import):
                names.modules[bound] = alias.name if alias.asname else bound
            else:
                names.modules[bound] = f"{node.module or ''}.{alias.name}".lstrip(".")
            names.own.add(bound)
        return None
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        names.own.add(node.name)
        decorators = [names.dotted(d.func if isinstance(d, ast.Call) else d) or "" for d in node.decorator_list]
        if isinstance(node, ast.ClassDef) and any(d.endswith("dataclass") for d in decorators):
            names.dataclasses.add(node.name)
        return None
    if isinstance(node, ast.Pass) or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
        return None
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        expressions = [e for e in [getattr(node, "value", None), getattr(node, "annotation", None), *targets] if e]
        if isinstance(node, ast.AugAssign):  # x += 1 reads x
            expressions.append(ast.Name(node.target.id, ast.Load()) if isinstance(node.target, ast.Name) else node.target)
        if (reason := _missing(expressions, names)) is not None:
            return reason
        names.own |= _target_names(targets)
        return None
    if isinstance(node, ast.If) and _is_main_guard(node):
        return 'an `if __name__ == "__main__":` block runs only when the file is run as a script'
    if isinstance(node, (ast.If, ast.Try)):
        tests = [node.test] if isinstance(node, ast.If) else [h.type for h in node.handlers if h.type is not None]
        if (reason := _missing(tests, names)) is not None:
            return reason.replace("it ", "its condition ", 1)
        trial = names.copy()
        body = [*node.body, *node.orelse] if isinstance(node, ast.If) else [
            *node.body, *[s for h in node.handlers for s in h.body], *node.orelse, *node.finalbody]
        for statement in body:
            if (reason := _why_dropped(statement, trial)) is not None:
                return f"line {statement.lineno} inside it is not graded ({reason})"
        if isinstance(node, ast.Try):
            trial.own |= {h.name for h in node.handlers if h.name}
        names.__dict__.update(trial.__dict__)
        return None
    kind = {ast.For: "a loop", ast.AsyncFor: "a loop", ast.While: "a loop", ast.With: "a `with` block",
            ast.AsyncWith: "a `with` block", ast.Expr: "an expression statement (a call, a print, a plot)"}
    return kind.get(type(node), f"a `{type(node).__name__.lower()}` statement") + " runs only in the notebook"


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
    try:
        return compile(source, where, "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except SyntaxError as exc:
        line = (exc.text or "").strip()
        raise SubmissionFormatError(
            f"{where} has a syntax error at line {exc.lineno}: {exc.msg}" + (f"\n    {line}" if line else "")) from None
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


def _segment(lines: list[str], node: ast.stmt) -> list[tuple[int, str]]:
    """(line number, text) of a statement, cut at its columns (`a = 1; train()` keeps `a = 1`)."""
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    rows = [lines[n - 1].encode() for n in range(first, node.end_lineno + 1)]
    rows[-1] = rows[-1][: node.end_col_offset]
    if first == node.lineno:
        rows[0] = rows[0][node.col_offset:]
    return [(first + i, row.decode(errors="replace")) for i, row in enumerate(rows)]


def load_notebook(text: str, file: Path) -> Submission:
    """The graded code of a notebook (see the module docstring)."""
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
    names = _Names()
    submission = Submission(file, "")
    futures: list[tuple[Origin, str]] = []
    body: list[tuple[Origin | None, str]] = []
    for index, cell in enumerate(cells, start=1):
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
        tree = _parse(source, f"notebook {cell_label(index, head)}")
        kept = []
        for node in tree.body:
            try:
                reason = _why_dropped(node, names)
            except RecursionError:
                raise SubmissionFormatError(f"notebook {cell_label(index, head)}, line {node.lineno}: an expression nested "
                                            "too deeply to read; split it into smaller statements") from None
            if reason is not None:
                submission.dropped.append(Dropped(index, node.lineno, lines[node.lineno - 1].strip(), reason,
                                                  frozenset(_defined_names(node))))
                continue
            segment = [(Origin(index, n), t) for n, t in _segment(lines, node)]
            (futures if isinstance(node, ast.ImportFrom) and node.module == "__future__" else kept).extend(segment)
        if kept:
            body += [(None, f"# --- notebook cell {index} ---"), *kept, (None, "")]
    graded = futures + body
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
