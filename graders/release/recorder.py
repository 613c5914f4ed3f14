"""Build time: grade the reference with the public seeds and record what the instructor-only modules answered.

Every function of every module the grader declares INSTRUCTOR_ONLY is wrapped; each
call the grader makes (not the module's calls to itself) is stored under the key of
its arguments (graders/release/codec.py) with its return value, how it left the
arguments it changed (a Generator's state, an array written in place) and, when a
tensor argument requires grad, the Jacobian of the result, so that autograd through
the replay gives the same gradients. A check that made a call that cannot be keyed or
stored (a closure over the worker, say) is listed as skipped in the kit.

Run in a fresh interpreter (`python -m graders.release.recorder NAME DIR`), so that no
cache of an earlier grading in the same process hides a call.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import sys
import threading
from pathlib import Path

import numpy as np

from graders import assignments
from graders.progress import Listener
from graders.release import codec

RECORDING_JSON, RECORDING_NPZ, SKIPPED_JSON = "recording.json", "recording.npz", "skipped.json"


def module_functions(module) -> list[str]:
    """The functions a module defines itself (not those it imports)."""
    return sorted(name for name, value in vars(module).items()
                  if inspect.isfunction(value) and value.__module__ == module.__name__)


class Recorder(Listener):
    def __init__(self):
        self.calls: dict[str, dict[str, dict]] = {}
        self.store = codec.Store()
        self.unrecordable: dict[str, str] = {}
        self.check = ""
        self.local = threading.local()

    def check_started(self, check, limit_s: float) -> None:
        self.check = check.name

    def wrap(self, qualified: str, fn):
        @functools.wraps(fn)
        def recorded(*args, **kwargs):
            if getattr(self.local, "depth", 0):  # the module calling itself: not one of the grader's calls
                return fn(*args, **kwargs)
            self.local.depth = 1
            try:
                return self._record(qualified, fn, args, kwargs)
            finally:
                self.local.depth = 0

        return recorded

    def _record(self, qualified: str, fn, args: tuple, kwargs: dict):
        try:
            key = codec.key(qualified, args, kwargs)
        except codec.Unrecordable as exc:
            key, why = None, f"{qualified} was called with {exc}"
        before = _mutable_snapshot(args, kwargs)
        value = fn(*args, **kwargs)
        if key is not None:
            try:
                entry = {"value": self.store.encode(value), "after": self._changes(before, args, kwargs)}
                if jacobians := self._jacobians(fn, value, args, kwargs):
                    entry["jacobians"] = jacobians
                self.calls.setdefault(qualified, {})[key] = entry
            except codec.Unrecordable as exc:
                key, why = None, f"{qualified} returned {exc}"
        if key is None:
            self.unrecordable.setdefault(self.check, why)
        return value

    def _changes(self, before: dict, args: tuple, kwargs: dict) -> dict:
        changes = {}
        for where, old in before.items():
            now = _argument(args, kwargs, where)
            if isinstance(now, np.random.Generator):
                if now.bit_generator.state != old:
                    changes[where] = {"kind": "generator", "value": self.store.encode(now.bit_generator.state)}
            elif not np.array_equal(now, old, equal_nan=now.dtype.kind == "f"):
                changes[where] = {"kind": "array", "value": self.store.encode(now)}
        return changes

    def _jacobians(self, fn, value, args: tuple, kwargs: dict) -> dict:
        torch = sys.modules.get("torch")
        if torch is None or not isinstance(value, torch.Tensor):
            return {}
        wheres = [w for w in _positions(args, kwargs)
                  if isinstance(t := _argument(args, kwargs, w), torch.Tensor) and t.requires_grad]
        if not wheres:
            return {}

        def of(*tensors):
            new_args, new_kwargs = list(args), dict(kwargs)
            for where, t in zip(wheres, tensors):
                if where.startswith("k:"):
                    new_kwargs[where[2:]] = t
                else:
                    new_args[int(where)] = t
            return fn(*new_args, **new_kwargs)

        inputs = tuple(_argument(args, kwargs, w).detach() for w in wheres)
        found = torch.autograd.functional.jacobian(of, inputs)
        return {w: self.store.encode(j) for w, j in zip(wheres, found)}


def _positions(args: tuple, kwargs: dict) -> list[str]:
    return [str(i) for i in range(len(args))] + [f"k:{k}" for k in kwargs]


def _argument(args: tuple, kwargs: dict, where: str):
    return kwargs[where[2:]] if where.startswith("k:") else args[int(where)]


def _mutable_snapshot(args: tuple, kwargs: dict) -> dict:
    snapshot = {}
    for where in _positions(args, kwargs):
        value = _argument(args, kwargs, where)
        if isinstance(value, np.random.Generator):
            snapshot[where] = value.bit_generator.state
        elif isinstance(value, np.ndarray) and value.flags.writeable:
            snapshot[where] = value.copy()
    return snapshot


def record(name: str, out_dir: Path) -> dict:
    """Grade the reference of `name` with the public seeds, recording; write the recording into out_dir."""
    from graders.runner import grade

    grader = assignments.grader(name)
    recorder = Recorder()
    originals = []
    for module_name in grader.instructor_only:
        module = importlib.import_module(module_name)
        for fn_name in module_functions(module):
            fn = getattr(module, fn_name)
            originals.append((module, fn_name, fn))
            setattr(module, fn_name, recorder.wrap(f"{module_name}.{fn_name}", fn))
    try:
        grading = grade(name, assignments.solution_path(name), device="cpu", listener=recorder)
    finally:
        for module, fn_name, fn in originals:
            setattr(module, fn_name, fn)
    lost = {r.name: r.message for r in grading.results if r.status != "passed"}
    if lost or grading.internal_error:
        raise RuntimeError(f"the reference of {name} must earn full marks to be recorded; it lost {lost} "
                           f"{grading.internal_error or ''}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / RECORDING_JSON).write_text(json.dumps(recorder.calls, sort_keys=True))
    np.savez_compressed(out_dir / RECORDING_NPZ, **recorder.store.arrays)
    (out_dir / SKIPPED_JSON).write_text(json.dumps(recorder.unrecordable, sort_keys=True, indent=1))
    return recorder.unrecordable


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m graders.release.recorder ASSIGNMENT OUT_DIR")
    record(sys.argv[1], Path(sys.argv[2]))
