"""The worker loop: imports the submission and serves the grader's calls.

Started by `graders.sandbox.Worker` as
    python -I -B -c "<bootstrap>" PACKAGE_ROOT ASSIGNMENT SUBMISSION_FILE REQUEST_FD REPLY_FD
(PACKAGE_ROOT holds this package and nothing else) in a scratch directory with a
scrubbed environment and resource limits. Everything here runs next to student code
and is trusted by nobody: the grader only reads the plain-data messages this process
writes (see `graders_worker.protocol`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import os
import sys
import traceback

import numpy as np

from graders_worker import cells, protocol

GRADER_PACKAGE = "graders"

_channel: tuple[protocol.Reader, int] | None = None  # (requests, reply fd)
_max_json = protocol.MAX_JSON_BYTES  # the grader's cap on the JSON part of what this process sends


def callback(name: str, *args):
    """Ask the grader's process to run its callback `name` and return its answer.

    Used by adapters, e.g. to step an environment that lives in the grader.
    """
    if _channel is None:
        raise RuntimeError("graders_worker.main.callback is only available inside a grading worker")
    requests, reply_fd = _channel
    data = protocol.encode({"op": "callback", "name": name, "args": list(args)})
    protocol.check_json_size(data, _max_json)
    protocol.write(reply_fd, data)
    answer = requests.receive()
    if answer.get("op") != "answer":
        raise RuntimeError("the grader did not answer the callback")
    if "refused" in answer:
        raise RuntimeError(answer["refused"])
    return answer.get("value")


def _student_traceback(exc: BaseException, submission_file: str) -> str:
    """'your code raised X: msg' and the traceback from the first frame of the submission on."""
    frames = traceback.extract_tb(exc.__traceback__)
    start = next((i for i, f in enumerate(frames) if f.filename == submission_file), len(frames))
    only = traceback.format_exception_only(type(exc), exc)
    text = f"your code raised {only[-1].strip()}\n"
    if start < len(frames):
        text += "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames[start:]))
    text += "".join(only)
    return text.replace(submission_file, "submission.py")


def _compact(value):
    """`value` with its lists (and tuples) of numbers as numpy arrays; other values as they are."""
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and value:
        try:
            array = np.asarray(value)
        except (ValueError, TypeError, OverflowError):  # ragged, or not numbers
            array = None
        if array is not None and array.dtype.kind in "biuf":
            return array
        return [_compact(v) for v in value]
    return value


def _load_submission(path: str):
    """The submission's module, and the exceptions of the notebook cells that raised (graders_worker/cells.py)."""
    spec = importlib.util.spec_from_file_location("submission", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["submission"] = module
    with open(path, encoding="utf-8") as f:
        source = f.read()
    if (starts := cells.cell_starts(source)) is None:
        spec.loader.exec_module(module)
        return module, []
    return module, cells.run(source, starts, path, module.__dict__)


def _resolve(name: str, submission, adapter):
    if adapter is not None and not name.startswith("_") and callable(getattr(adapter, name, None)):
        fn = getattr(adapter, name)
        return lambda *args: fn(submission, *args)
    fn = getattr(submission, name, None)
    if fn is None:
        raise AttributeError(f"your submission does not define '{name}'")
    if not callable(fn):
        raise TypeError(f"'{name}' in your submission is not a function")
    return fn


class _NoGraderModules(importlib.abc.MetaPathFinder):
    """Grader-side modules are not importable here, even where an installed copy is on the path.

    Under bubblewrap their files are not mounted at all; this keeps the process-limits
    mode (which cannot hide files, see docs/security.md) from importing them by default.
    """

    def find_spec(self, name, path=None, target=None):
        if name == GRADER_PACKAGE or name.startswith(GRADER_PACKAGE + "."):
            raise ModuleNotFoundError(f"No module named {name!r}: grader-side code is not available to submissions",
                                      name=name)
        return None


def _adapter(assignment: str):
    name = f"graders_worker.adapters.{assignment}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


def _shortened(message: str, parts: int = 1) -> str:
    """A message whose JSON fits the grader's cap, with `parts` such messages in one reply (the grader also cuts
    each, to its output cap, on receipt)."""
    keep = _max_json // (16 * max(parts, 1))  # JSON may spend 12 bytes on a character
    return message if len(message) <= keep else message[:keep] + f"\n[... {len(message) - keep} more characters]"


def _libc():
    try:
        import ctypes

        return ctypes.CDLL(None)
    except OSError:
        return None


_c = _libc()


def _flush() -> None:
    """Flush what the submission printed, Python's buffers and C's (printf from native code), before a reply: the
    grader stops a worker at once, so what is not written by then is lost."""
    sys.stdout.flush()
    sys.stderr.flush()
    if _c is not None:
        _c.fflush(None)


def _warm(modules: str) -> None:
    """Import `modules` (comma-separated) after the submission: what the calls this worker will serve import
    anyway (a worker started ahead of its check: graders/runner.py); a failure is left to the call that imports
    the module, where it is reported."""
    for name in filter(None, modules.split(",")):
        try:
            importlib.import_module(name)
        except BaseException:  # noqa: BLE001 - reported by the call that needs it
            pass


def serve(assignment: str, submission_file: str, request_fd: int, reply_fd: int) -> None:
    global _channel, _max_json
    requests = protocol.Reader(request_fd, protocol.GRADER_MESSAGE_BYTES, protocol.GRADER_MESSAGE_BYTES)
    _channel = (requests, reply_fd)
    _max_json = int(os.environ.get(protocol.MAX_JSON_ENV, _max_json))
    adapter = _adapter(assignment)
    warm = os.environ.pop(protocol.WARM_ENV, "")  # (the submission need not know whether it was started ahead)
    try:
        submission, failed = _load_submission(submission_file)
    except BaseException as exc:  # noqa: BLE001 - everything the import does is reported
        protocol.send(reply_fd, {"op": "load_error", "message": _shortened(_student_traceback(exc, submission_file))})
        return
    failed = failed[: cells.MAX_FAILED_CELLS]
    _warm(warm)
    protocol.send(reply_fd, {"op": "ready", "cells_failed": [
        _shortened(_student_traceback(exc, submission_file), len(failed)) for exc in failed]})
    while True:
        request = requests.receive()
        if request.get("op") != "call":
            return
        try:
            fn = _resolve(request["name"], submission, adapter)
            value = fn(*request.get("args", []))
            data = protocol.encode({"op": "result", "value": value})
            try:
                protocol.check_json_size(data, _max_json)
            except protocol.MessageTooLarge:  # numbers in Python lists: send them as arrays, the compact form
                data = protocol.encode({"op": "result", "value": _compact(value)})
                protocol.check_json_size(data, _max_json)
        except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt too
            kind = type(exc).__name__[:200]
            if isinstance(exc, SystemExit):
                message = f"your code called sys.exit({exc.code!r}) during the call"
            elif isinstance(exc, protocol.MessageTooLarge):
                message = f"the value your code returned is too large to send to the grader: {exc}"
            else:
                message = _student_traceback(exc, submission_file)
            data = protocol.encode({"op": "error", "type": kind, "message": _shortened(message)})
        _flush()
        protocol.write(reply_fd, data)


def main(argv: list[str]) -> None:
    assignment, submission_file, request_fd, reply_fd = argv
    sys.meta_path.insert(0, _NoGraderModules())
    serve(assignment, submission_file, int(request_fd), int(reply_fd))
