"""What a grader module is written with: the `check` decorator and expectations.

A grader reads like a pytest module: functions decorated with `@check`, whose
parameters are fixtures injected by name (`worker`, `ctx`), that pass by returning
and fail by raising `CheckFailed` (or AssertionError).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

KINDS = ("unit", "training")


class CheckFailed(AssertionError):
    """The submission's answer is wrong; the message says expected vs got and a hint."""


@dataclass
class Check:
    name: str
    fn: Callable
    points: float
    timeout: float | dict[str, float]
    kind: str
    doc: str

    def timeout_for(self, device: str) -> float:
        if isinstance(self.timeout, dict):
            return float(self.timeout.get(device, self.timeout.get("cpu")))
        return float(self.timeout)


def check(*, points: float, timeout: float | dict[str, float] = 10, kind: str = "unit"):
    """Declare a graded check: points, a time limit (seconds, or per device), its kind."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")

    def mark(fn: Callable) -> Callable:
        doc = (fn.__doc__ or "").strip().splitlines()
        fn.__check__ = Check(fn.__name__, fn, points, timeout, kind, doc[0] if doc else "")
        return fn

    return mark


def collect(module) -> list[Check]:
    """The checks of a grader module: unit checks in file order, then training checks."""
    found = [v.__check__ for v in vars(module).values() if hasattr(v, "__check__")]
    found.sort(key=lambda c: (KINDS.index(c.kind), c.fn.__code__.co_firstlineno))
    return found


def _summary(value) -> str:
    text = np.array2string(np.asarray(value), precision=6, threshold=20) if not isinstance(value, str) else value
    return text if len(text) < 400 else text[:400] + "..."


def as_array(got, what: str, shape: tuple | None = None, dtype=np.float64) -> np.ndarray:
    """The student's value as a finite numeric array of the expected shape, or CheckFailed."""
    try:
        array = np.asarray(got, dtype=dtype)
    except (TypeError, ValueError):
        raise CheckFailed(f"{what}: expected numbers, got {_summary(repr(got))}") from None
    if shape is not None and array.shape != tuple(shape):
        raise CheckFailed(f"{what}: expected shape {tuple(shape)}, got shape {array.shape}")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise CheckFailed(f"{what}: got NaN or inf: {_summary(array)}")
    return array


def expect_close(got, want, what: str, *, rtol: float = 1e-6, atol: float = 1e-8, hint: str = "") -> np.ndarray:
    """Compare numerically (shape first); raise CheckFailed with expected vs got and a hint."""
    want = np.asarray(want, dtype=np.float64)
    array = as_array(got, what, want.shape)
    if not np.allclose(array, want, rtol=rtol, atol=atol):
        message = f"{what}: expected {_summary(want)}, got {_summary(array)}"
        raise CheckFailed(message + (f"\nHint: {hint}" if hint else ""))
    return array


def expect(condition: bool, message: str, hint: str = "") -> None:
    """A readable assert that also carries a hint."""
    if not condition:
        raise CheckFailed(message + (f"\nHint: {hint}" if hint else ""))
