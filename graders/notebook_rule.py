"""Which top-level statements of a notebook are graded: the rule every template notebook states.

A notebook is graded as the code of its cells minus what only makes sense in Jupyter or
would run demos and training at import (graders/submission.py reads the cells and
builds the graded code). NOTEBOOK_RULE says it in the students' words:

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
- the check cell's import of the course grader (`from graders.notebook import check`) is
  dropped: the worker cannot import the grader.
"""

from __future__ import annotations

import ast
import builtins

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


class Names:
    """Import aliases (name -> module path), the notebook's dataclasses, and the names kept code defines."""

    def __init__(self):
        self.modules: dict[str, str] = {}
        self.dataclasses: set[str] = set()
        self.own: set[str] = set()
        self.star_import = False

    def copy(self) -> Names:
        other = Names()
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


def _first_call(node: ast.AST, names: Names) -> str | None:
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


def defined_names(node: ast.stmt) -> set[str]:
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


def _missing(expressions: list[ast.expr], names: Names) -> str | None:
    """Why these expressions cannot be evaluated in the graded code, or None."""
    for expression in expressions:
        if (call := _first_call(expression, names)) is not None:
            return f"it calls {call}, which runs only in the notebook"
    reads = set().union(*(_used_now(e) for e in expressions))
    if missing := sorted(n for n in reads if not names.known(n)):
        return f"it uses `{missing[0]}`, which the graded code does not define"
    return None


def why_dropped(node: ast.stmt, names: Names) -> str | None:
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
            if (reason := why_dropped(statement, trial)) is not None:
                return f"line {statement.lineno} inside it is not graded ({reason})"
        if isinstance(node, ast.Try):
            trial.own |= {h.name for h in node.handlers if h.name}
        names.__dict__.update(trial.__dict__)
        return None
    kind = {ast.For: "a loop", ast.AsyncFor: "a loop", ast.While: "a loop", ast.With: "a `with` block",
            ast.AsyncWith: "a `with` block", ast.Expr: "an expression statement (a call, a print, a plot)"}
    return kind.get(type(node), f"a `{type(node).__name__.lower()}` statement") + " runs only in the notebook"
