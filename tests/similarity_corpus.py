"""Independent implementations of an assignment and disguised copies of them (for the code-similarity tests and
bench/similarity_threshold.py).

tests/fixtures/similarity/ASSIGNMENT/NN.txt holds one independent implementation, written for this suite (no
student's code): the body of each `# YOUR CODE HERE` place of the template, in order, each after a line
`# ---- NAME`, written without indentation. `implementation` puts them into the template, so the files stay
submissions of the current template.

The disguises are what a student who copies does to hide it: rename the variables, reorder the functions and
methods, change the comments and the spacing, or all of it, or hand in the copy as a notebook.
"""

from __future__ import annotations

import ast
import io
import json
import keyword
import random
import re
import tokenize
from pathlib import Path

from graders import assignments
from graders.paths import REPO_ROOT

CORPUS = REPO_ROOT / "tests" / "fixtures" / "similarity"
PLACE = re.compile(r"^( *)# YOUR CODE HERE\n\1raise NotImplementedError\(\)\n", re.M)


def names(assignment: str) -> list[str]:
    return sorted(p.stem for p in (CORPUS / assignment).glob("*.txt"))


def template(assignment: str) -> str:
    return (REPO_ROOT / "assignments" / assignment / f"{assignment}.py").read_text()


def bodies(assignment: str, name: str) -> list[str]:
    """The bodies implementation `name` writes into the template's places, in order (unindented)."""
    text = (CORPUS / assignment / f"{name}.txt").read_text()
    return [b.split("\n", 1)[1] if "\n" in b else "" for b in re.split(r"^# ---- ", text, flags=re.M)[1:]]


def fill(assignment: str, written: list[str | None]) -> str:
    """The template with these bodies in its places (None: the place left as it is)."""
    base = template(assignment)
    places = list(PLACE.finditer(base))
    assert len(places) == len(written), f"{assignment}: {len(written)} bodies for {len(places)} places"
    out, end = [], 0
    for match, body in zip(places, written):
        indent = match.group(1)
        out.append(base[end:match.start()])
        out.append(match.group(0) if body is None else "".join(
            indent + line if line.strip() else line for line in body.rstrip("\n").splitlines(True)) + "\n")
        end = match.end()
    source = "".join(out) + base[end:]
    ast.parse(source)
    return source


def implementation(assignment: str, name: str) -> str:
    """The template with the bodies of implementation `name` in its places."""
    return fill(assignment, bodies(assignment, name))


def all_implementations(assignment: str) -> dict[str, str]:
    return {name: implementation(assignment, name) for name in names(assignment)}


# ----------------------------------------------------------------------------- disguises


def _given_names(assignment: str) -> set[str]:
    """Names the template defines or uses (the grader calls them: a copier keeps them)."""
    return {node.id for node in ast.walk(ast.parse(template(assignment))) if isinstance(node, ast.Name)} | {
        node.name for node in ast.walk(ast.parse(template(assignment)))
        if isinstance(node, (ast.FunctionDef, ast.ClassDef))} | {
        node.attr for node in ast.walk(ast.parse(template(assignment))) if isinstance(node, ast.Attribute)} | {
        a.arg for node in ast.walk(ast.parse(template(assignment))) if isinstance(node, ast.arg) for a in [node]}


def rename(source: str, assignment: str, seed: int = 0) -> str:
    """Every name the student introduced (locals, their own attributes and helpers) renamed, everything else kept."""
    rng = random.Random(seed)
    keep = _given_names(assignment) | set(dir(__builtins__) if isinstance(__builtins__, dict) else dir(__builtins__))
    tree = ast.parse(source)
    mine = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    mine |= {n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)}
    mine |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    mine -= keep
    words = ["val", "tmp", "item", "res", "data", "thing", "aux", "acc", "cur", "buf", "x", "z", "w"]
    table = {name: f"{rng.choice(words)}_{i}" for i, name in enumerate(sorted(mine))}
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME and tok.string in table and not keyword.iskeyword(tok.string):
            tok = tok._replace(string=table[tok.string])
        out.append(tok)
    return tokenize.untokenize(out)


def _blocks(body: list[ast.stmt], lines: list[str]) -> list[tuple[int, int]]:
    """(first, last) line numbers (1-based) of each statement, decorators and comments above it included."""
    spans, previous_end = [], 0
    for node in body:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        while first - 1 > previous_end and lines[first - 2].strip().startswith("#"):
            first -= 1
        spans.append((first, node.end_lineno))
        previous_end = node.end_lineno
    return spans


def reorder(source: str, seed: int = 0) -> str:
    """The module's functions and classes in another order (imports and other statements first), and each class's
    methods shuffled (its __init__ first)."""
    rng = random.Random(seed)
    lines = source.splitlines(True)
    tree = ast.parse(source)

    def text(span):
        return "".join(lines[span[0] - 1: span[1]])

    def shuffled_class(node: ast.ClassDef, span) -> str:
        methods = [(n, s) for n, s in zip(node.body, _blocks(node.body, lines))]
        head_end = methods[0][1][0] - 1
        head = "".join(lines[span[0] - 1: head_end])
        init = [text(s) for n, s in methods if getattr(n, "name", "") == "__init__"]
        rest = [text(s) for n, s in methods if getattr(n, "name", "") != "__init__"]
        rng.shuffle(rest)
        return head + "".join(part if part.endswith("\n\n") else part + "\n" for part in init + rest)

    spans = _blocks(tree.body, lines)
    fixed, movable = [], []
    for node, span in zip(tree.body, spans):
        if isinstance(node, ast.ClassDef):
            movable.append(shuffled_class(node, span))
        elif isinstance(node, ast.FunctionDef):
            movable.append(text(span))
        else:
            fixed.append(text(span))
    rng.shuffle(movable)
    return "".join(fixed) + "\n\n" + "\n\n".join(movable)


def recomment(source: str, seed: int = 0) -> str:
    """Every comment removed, and comments of the copier's own added above some lines."""
    rng = random.Random(seed)
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type != tokenize.COMMENT:
            out.append(tok)
    bare = tokenize.untokenize(out)
    said = ["# compute the update", "# my approach", "# vectorised over runs", "# see lecture notes", "# helper",
            "# TODO: double-check", "# this part was tricky"]
    lines = []
    for line in bare.splitlines(True):
        if line.strip() and rng.random() < 0.25:
            lines.append(line[: len(line) - len(line.lstrip())] + rng.choice(said) + "\n")
        lines.append(line)
    return "".join(lines)


def respace(source: str, seed: int = 0) -> str:
    """Other spacing: blank lines added and removed, spaces around operators and after commas changed."""
    rng = random.Random(seed)
    out = []
    for line in source.splitlines(True):
        if not line.strip():
            if rng.random() < 0.5:
                continue
            out.append(line)
            continue
        body = line.rstrip("\n")
        if "#" not in body and '"' not in body and "'" not in body:
            indent = body[: len(body) - len(body.lstrip())]
            body = indent + re.sub(r"\s*([=+*/<>-]=?|,)\s*", lambda m: m.group(1).strip() + " "
                                   if m.group(1) == "," else m.group(1).strip(), body.lstrip())
        out.append(body + "\n")
        if rng.random() < 0.15:
            out.append("\n")
    return "".join(out)


def everything(source: str, assignment: str, seed: int = 0) -> str:
    return respace(recomment(reorder(rename(source, assignment, seed), seed), seed), seed)


DISGUISES = {
    "renamed": lambda s, a, seed: rename(s, a, seed),
    "reordered": lambda s, a, seed: reorder(s, seed),
    "recommented": lambda s, a, seed: recomment(s, seed),
    "respaced": lambda s, a, seed: respace(s, seed),
    "all of them": everything,
}


def as_notebook(source: str) -> str:
    """The code as a notebook: a code cell per top-level statement group (split at blank lines before a def/class)."""
    cells = re.split(r"\n(?=(?:def |class |@))", source)
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                     "source": cell.splitlines(True)} for cell in cells if cell.strip()],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(nb, indent=1)


def known_assignments() -> list[str]:
    return [a for a in assignments.names() if (CORPUS / a).is_dir()]


def write_file(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path
