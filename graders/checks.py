"""What a grader module is written with: the `check` decorator and expectations.

A grader reads like a pytest module: functions decorated with `@check`, whose
parameters are fixtures injected by name (`graders.contract.FIXTURES`), that pass by
returning and fail by raising `CheckFailed` (or AssertionError).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

KINDS = ("unit", "training")


class CheckFailed(AssertionError):
    """The submission's answer is wrong; the message says expected vs got and a hint."""


class SetupError(Exception):
    """The grader's machine lacks something a check needs (a dataset): not the student's doing; the message
    says how to fix it. The check's row is an error and the grading has an internal error (validate fails)."""


class CheckSkipped(Exception):  # noqa: N818 - a condition, not a bug
    """The check cannot run here (a student kit lacks the instructor's grader code): zero points, status skipped,
    never a failure; an official grading never raises it."""


class CheckFlagged(Exception):
    """The check's test passed, but the grader did not see the work it certifies: the points are
    withheld and the row is flagged for the instructor (who may accept it, graders/config.py)."""

    def __init__(self, flag: str, message: str = ""):
        super().__init__(message or flag)
        self.flag = flag


ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")


@dataclass(frozen=True)
class Check:
    """A check as declared; an instructor's overrides make a new one (`dataclasses.replace`).

    `needs`: the checks whose results this one reads (`ctx.result`): they run before it, a selection that
    holds it holds them too, and its message can name them when they failed (graders/contract.py).
    `per_seed`: one row per configured grading seed (`rows`), each with its `seed_index`.
    `fresh_ahead`: None, or the check's first `fresh_worker()` is started ahead, when the grading starts, beside the
    other checks' workers, and imports these modules after the submission (graders/runner.py).
    """

    name: str
    fn: Callable
    points: float
    timeout: float | Mapping[str, float]
    kind: str
    doc: str
    needs: tuple[str, ...] = ()
    per_seed: bool = False
    fresh_ahead: tuple[str, ...] | None = None
    seed_index: int | None = None  # a per-seed check's row: the index of its seed in the grading's seeds
    declared: str = ""  # a per-seed row: the name of the check it was declared as

    @property
    def family(self) -> str:
        """The name this check was declared as (a per-seed row's declaration, else its own name)."""
        return self.declared or self.name

    def rows(self, seeds: int) -> tuple[Check, ...]:
        """The rows of this check for a grading with `seeds` seeds: itself, or one per seed (NAME_first_seed, ...)."""
        if not self.per_seed:
            return (self,)
        return tuple(dataclasses.replace(self, name=f"{self.name}_{seed_name(i)}", seed_index=i, declared=self.name,
                                         doc=self.doc if i == 0 else f"The same on seed #{i + 1}.")
                     for i in range(seeds))

    def __post_init__(self):
        if isinstance(self.timeout, Mapping):
            object.__setattr__(self, "timeout", MappingProxyType(dict(self.timeout)))

    def timeout_for(self, device: str) -> float:
        if isinstance(self.timeout, Mapping):
            return float(self.timeout.get(device, self.timeout.get("cpu")))
        return float(self.timeout)


def seed_name(index: int) -> str:
    """How a per-seed row names its seed: first_seed, second_seed, ..., seed_11."""
    return f"{ORDINALS[index]}_seed" if index < len(ORDINALS) else f"seed_{index + 1}"


def check(*, points: float, timeout: float | dict[str, float] = 10, kind: str = "unit", needs: tuple[str, ...] = (),
          per_seed: bool = False, fresh_ahead: tuple[str, ...] | None = None):
    """Declare a graded check: points, a time limit (seconds, or per device), its kind; the checks whose results
    it reads (`needs`); `per_seed`: one row per grading seed, the function taking the fixture `seed_index`;
    `fresh_ahead`: start its first fresh worker ahead (Check)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")

    def mark(fn: Callable) -> Callable:
        doc = (fn.__doc__ or "").strip().splitlines()
        fn.__check__ = Check(fn.__name__, fn, points, timeout, kind, doc[0] if doc else "", tuple(needs), per_seed,
                              None if fresh_ahead is None else tuple(fresh_ahead))
        return fn

    return mark


def _summary(value) -> str:
    text = np.array2string(np.asarray(value), precision=6, threshold=20) if not isinstance(value, str) else value
    return text if len(text) < 400 else text[:400] + "..."


MAX_ELEMENTS = 1 << 24  # of an array whose shape the check leaves open (16M: 128 MB as float64)


def as_array(got, what: str, shape: tuple | None = None, dtype=np.float64, hint: str = "") -> np.ndarray:
    """The student's value as a finite numeric array of the expected shape, or CheckFailed.

    The shape (or, when open, the size) is checked before the conversion: a reply is
    bounded in bytes, not in what converting it costs (bool to float64 is 8x).
    """
    try:
        array = got if isinstance(got, np.ndarray) else np.asarray(got)  # lists: bounded by the JSON cap
    except (TypeError, ValueError):
        array = None
    if array is None or array.dtype.kind not in "biuf":
        raise CheckFailed(_with_hint(f"{what}: expected numbers, got {_summary(repr(got)[:1000])}", hint))
    if shape is not None and array.shape != tuple(shape):
        raise CheckFailed(_with_hint(f"{what}: expected shape {tuple(shape)}, got shape {array.shape}", hint))
    if shape is None and array.size > MAX_ELEMENTS:
        raise CheckFailed(_with_hint(f"{what}: expected at most {MAX_ELEMENTS} numbers, got {array.size}", hint))
    if np.dtype(dtype).kind in "iu" and array.dtype.kind == "f":  # whole numbers only: 2.9 is not token 2
        whole = np.isfinite(array) & (array == np.round(array)) & (np.abs(array) < 2.0**62)
        if not np.all(whole):
            raise CheckFailed(_with_hint(f"{what}: expected whole numbers, got {_summary(array)}", hint))
    try:
        array = array.astype(dtype, copy=False)
    except (TypeError, ValueError, OverflowError):
        raise CheckFailed(_with_hint(f"{what}: expected numbers convertible to {np.dtype(dtype)}", hint)) from None
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise CheckFailed(_with_hint(f"{what}: got NaN or inf: {_summary(array)}", hint))
    return array


def as_dict(got, what: str, keys=(), hint: str = "") -> dict:
    """The student's reply as a dict holding `keys`, or CheckFailed (a worker's reply is untrusted)."""
    if not isinstance(got, dict):
        raise CheckFailed(_with_hint(f"{what}: expected a dict, got {type(got).__name__}", hint))
    if missing := [k for k in keys if k not in got]:
        raise CheckFailed(_with_hint(f"{what}: the reply lacks {', '.join(map(str, missing))}", hint))
    return got


def _with_hint(message: str, hint: str) -> str:
    return message + (f"\nHint: {hint}" if hint else "")


def expect_close(got, want, what: str, *, rtol: float = 1e-6, atol: float = 1e-8, hint: str = "",
                 shown_tolerance: str | None = None) -> np.ndarray:
    """Compare numerically (shape first); raise CheckFailed with expected vs got and a hint.

    `shown_tolerance`: the tolerance as the message may show it (one an instructor set is not shown)."""
    want = np.asarray(want, dtype=np.float64)
    array = as_array(got, what, want.shape, hint=hint)
    if not np.allclose(array, want, rtol=rtol, atol=atol):
        excess = np.abs(array - want) - (atol + rtol * np.abs(want))  # > 0 where out of tolerance
        worst = np.unravel_index(int(np.argmax(excess)), want.shape) if want.ndim else ()
        where = f" at index {tuple(int(i) for i in worst)}" if want.size > 1 else ""
        raise CheckFailed(_with_hint(
            f"{what}: expected {_summary(want)}, got {_summary(array)}; largest difference "
            f"{abs(float(array[worst]) - float(want[worst])):.3g}{where} (expected {float(want[worst]):.10g}, got "
            f"{float(array[worst]):.10g}; tolerance {shown_tolerance or f'{atol:g} + {rtol:g} x |expected|'})", hint))
    return array


def expect(condition: bool, message: str, hint: str = "") -> None:
    """A readable assert that also carries a hint."""
    if not condition:
        raise CheckFailed(_with_hint(message, hint))
