"""Inside a student kit: the stand-ins of instructor-only modules, and which checks the kit skips.

A kit (`python -m graders release`) replaces each module its grader declares
INSTRUCTOR_ONLY by a stand-in whose functions replay what the real ones returned
while the reference was graded with the public seeds (graders/release/recorder.py).
A call the recording does not hold (arguments that depend on the student's code, or
settings changed since the kit was built) raises `NeedsInstructorGrader`, and the
runner records that check as skipped: zero points, not an error. Checks that could
not be recorded at all are skipped before they run (kit.json).

Outside a kit (the repository, Gradescope) there is no kit.json: nothing is skipped.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from graders.checks import CheckSkipped
from graders.release import codec

HERE = Path(__file__).resolve().parent
KIT_FILE = HERE / "kit.json"
RECORDING_JSON = HERE / "recording.json"
RECORDING_NPZ = HERE / "recording.npz"


class NeedsInstructorGrader(CheckSkipped):
    """A check needs grader code a student kit does not hold: skipped there, graded officially."""

    @staticmethod
    def for_check() -> str:
        return ("skipped in this kit: this check needs the instructor's grader (it computes its answers "
                "from your code's outputs, or trains for minutes); the official grading runs it")


@functools.cache
def kit() -> dict | None:
    """The kit's description, or None outside a kit."""
    return json.loads(KIT_FILE.read_text()) if KIT_FILE.is_file() else None


def in_kit() -> bool:
    return kit() is not None


def skipped_in_kit() -> dict[str, str]:
    """{check: why} of the checks this kit cannot run; empty outside a kit."""
    return {name: NeedsInstructorGrader.for_check() for name in (kit() or {}).get("skipped_checks", {})}


@functools.cache
def _recording() -> tuple[dict, codec.Store]:
    calls = json.loads(RECORDING_JSON.read_text()) if RECORDING_JSON.is_file() else {}
    arrays = {}
    if RECORDING_NPZ.is_file():
        with np.load(RECORDING_NPZ, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    return calls, codec.Store(arrays)


def _argument(args: tuple, kwargs: dict, where: str):
    return kwargs[where[2:]] if where.startswith("k:") else args[int(where)]


def _restore(args: tuple, kwargs: dict, changes: dict, store: codec.Store) -> None:
    """Leave the arguments as the real function left them (a Generator's state, an array written in place)."""
    for where, change in changes.items():
        target, value = _argument(args, kwargs, where), store.decode(change["value"])
        if change["kind"] == "generator":
            target.bit_generator.state = value
        else:
            target[...] = value


def _differentiable(value, args: tuple, kwargs: dict, jacobians: dict, store: codec.Store):
    """The recorded tensor, with the recorded Jacobians as its gradient with respect to tensor arguments."""
    import torch

    pairs = [(_argument(args, kwargs, where), store.decode(j)) for where, j in jacobians.items()]
    pairs = [(t, j) for t, j in pairs if isinstance(t, torch.Tensor) and t.requires_grad]
    if not pairs:
        return value

    class Replayed(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *inputs):
            return value.clone()

        @staticmethod
        def backward(ctx, grad):
            return tuple(torch.tensordot(grad, j.to(grad.dtype), dims=grad.dim()) for _, j in pairs)

    return Replayed.apply(*(t for t, _ in pairs))


def stand_in(module: str, names: list[str]) -> dict:
    """The replaying functions of an instructor-only module, for its stand-in file in a kit."""

    def replaying(name: str):
        qualified = f"{module}.{name}"

        def replay(*args, **kwargs):
            calls, store = _recording()
            try:
                entry = calls.get(qualified, {}).get(codec.key(qualified, args, kwargs))
            except codec.Unrecordable:
                entry = None
            if entry is None:
                raise NeedsInstructorGrader(
                    f"skipped in this kit: this check needs the instructor's grader ({qualified} is not in the kit; "
                    "the kit holds its answers for the public seeds and the reference's outputs only); "
                    "the official grading runs it")
            value = store.decode(entry["value"])
            _restore(args, kwargs, entry.get("after", {}), store)
            if entry.get("jacobians"):
                value = _differentiable(value, args, kwargs, entry["jacobians"], store)
            return value

        replay.__name__ = replay.__qualname__ = name
        replay.__doc__ = f"Replays {qualified} for the calls recorded when the kit was built."
        return replay

    return {name: replaying(name) for name in names}
