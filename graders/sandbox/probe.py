"""Whose failure is it: a worker with no student code, started as the failed one was.

A worker that dies, hangs or fails while importing a submission is the student's doing,
unless the host is at fault: the sandbox cannot start here, or the worker cannot import
its own package or what the grader's environment has (torch in a venv the sandbox did
not mount, issue 28). The failed worker cannot tell: the student controls its output.
So the grader starts a probe: the same sandbox, interpreter, device and limits, with a
file of its own that imports only the modules the student's file imports and the
grader's environment has. If the probe fails too, the host is at fault (`HostError`,
with the probe's output as its cause); if it starts, the failure was the student's.
`python -m graders doctor` starts probes too.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib.util
import logging
import os
import re

from graders.sandbox import pythonenv
from graders.sandbox.errors import WorkerError
from graders.sandbox.limits import Limits
from graders.sandbox.worker import Worker

log = logging.getLogger(__name__)

GRADER_PACKAGE = "graders"  # never importable in a worker, by design: not the host's failure
OUTPUT_CHARS = 1500  # of the probe's output kept in the cause


class ProbeWorker(Worker):
    """A worker whose own failure is the answer: it starts no probe of its own."""

    probes_host = False


def modules_imported(code: str) -> list[str]:
    """The top-level modules the import statements of `code` name (anywhere in it), in order; [] when it does not
    parse."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module.split(".")[0])
    return list(dict.fromkeys(n for n in names if n.isidentifier()))


def environment_has(name: str) -> bool:
    """Whether the grader's environment (graders/sandbox/pythonenv.py) provides top-level module `name`: found
    without importing it, inside the environment's folders (not in the grader's checkout or current folder)."""
    if name == GRADER_PACKAGE or not name.isidentifier():
        return False
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    if spec.origin in ("built-in", "frozen"):
        return True
    places = list(spec.submodule_search_locations or []) or [spec.origin or ""]
    folders = [os.path.realpath(f) for f in pythonenv.current().folders()]
    return all(any(os.path.realpath(p).startswith(f.rstrip("/") + "/") for f in folders) for p in places if p)


def failure(assignment: str, *, device: str = "cpu", limits: Limits | None = None, readable: tuple[str, ...] = (),
            modules: tuple[str, ...] = ()) -> str:
    """'' when a worker without student code starts here and imports `modules`; else why not (the host's cause)."""
    limits = limits or Limits()
    return _failure(assignment, device, dataclasses.astuple(limits), tuple(readable), tuple(modules))


@functools.cache
def _failure(assignment: str, device: str, limits: tuple, readable: tuple[str, ...], modules: tuple[str, ...]) -> str:
    code = "".join(f"import {m}\n" for m in modules if m.isidentifier())
    probe = ProbeWorker(assignment, code, device=device, limits=Limits(*limits), readable=list(readable))
    try:
        probe.start()
    except WorkerError as exc:
        output = probe.output.strip()
        text = re.sub(r"\byour (submission|code)\b", "the probe", str(exc))
        cause = f"a worker without student code (importing {', '.join(modules) or 'nothing'}) failed too: {text}"
        if output:  # its last lines: where Python and bubblewrap say what failed
            tail = output[-OUTPUT_CHARS:]
            cause += "\nits output:\n" + (tail.split("\n", 1)[-1] if len(output) > OUTPUT_CHARS else tail)
        log.error("the grading host cannot run a worker: %s", cause)
        return cause
    finally:
        probe.close()
    return ""
