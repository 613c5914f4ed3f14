"""A submission's loss gradient against the expected one: equal up to a positive factor, or a named mistake.

The grader's networks have 58 parameters and its batches fewer steps than that, so the
per-step gradients are linearly independent: a gradient c g* (c > 0) weights every step
exactly as the expected loss does, times one factor. Adam's steps do not change when the
gradient is multiplied by a constant, so a loss that sums over the batch (c = batch
size) or carries a 1/2 (c = 0.5) is the same algorithm: it keeps its points, with a note
naming the factor. Each check uses two batches of different sizes, so a factor that
depends on the batch in any other way (a division by the returns' spread) is told apart
from a constant or a sum, and a factor that is positive on one batch by coincidence
(a division by the returns' sum) turns negative on the other. A negative factor and any
other direction fail, naming the mistake when the gradient is that of a known one.
Measured residuals: docs/reinforce.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graders.checks import CheckFailed, as_array
from graders.rl import reinforce as common
from graders.rl.reinforce import PARAM_NAMES

TOLERANCE = 1e-3  # of the relative residual |g - c g*| / |c g*| (float32 losses: below 3e-6, docs/reinforce.md)
SCALE_RTOL = 1e-3  # two factors are equal within this
MIN_FACTOR, MAX_FACTOR = 1e-3, 1e3  # a constant factor beyond these changes what Adam does (its eps, its steps)


@dataclass(frozen=True)
class Mistake:
    """The gradient a known mistake gives (up to a positive factor), and its one-line diagnosis.

    With `extra`, the mistake is an added term: the gradient is c * (gradient + ratio * extra)
    with ratio != 0; `message` may use {ratio}, e.g. an entropy bonus's coefficient.
    """

    gradient: dict
    message: str
    extra: dict | None = None


def flat(grads: dict) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(grads[k], dtype=np.float64)) for k in PARAM_NAMES])


def read(got, want: dict, what: str, hint: str = "") -> dict:
    """The worker's gradients as finite float arrays of the expected shapes, or CheckFailed."""
    if not isinstance(got, dict) or not set(PARAM_NAMES) <= set(got):
        raise CheckFailed(f"{what} could not be read back")
    return {k: as_array(got[k], f"{what}, parameter {k}", np.shape(want[k]), hint=hint) for k in PARAM_NAMES}


def fit(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    """(c, relative residual) of the least-squares fit got ~ c * want."""
    norm = float(want @ want)
    if norm == 0.0:
        return 0.0, float("inf")
    c = float(got @ want) / norm
    scale = abs(c) * np.sqrt(norm)
    return c, float(np.linalg.norm(got - c * want) / scale) if scale > 0 else float("inf")


def _fit_two(got: np.ndarray, first: np.ndarray, second: np.ndarray) -> tuple[float, float, float]:
    """(c, d, relative residual) of got ~ c * first + d * second."""
    basis = np.stack([first, second], axis=1)
    (c, d), *_ = np.linalg.lstsq(basis, got, rcond=None)
    fitted = basis @ np.array([c, d])
    norm = float(np.linalg.norm(fitted))
    return float(c), float(d), float(np.linalg.norm(got - fitted) / norm) if norm > 0 else float("inf")


def match(got: dict, want: dict, mistakes: list[Mistake], what: str, hint: str) -> float:
    """The factor c > 0 with got = c * want, or CheckFailed with the mistake's diagnosis (or the residual)."""
    g, w = flat(got), flat(want)
    c, residual = fit(g, w)
    if c > 0 and residual <= TOLERANCE:
        return c
    for mistake in mistakes:
        m = flat(mistake.gradient)
        if mistake.extra is None:
            c_m, r_m = fit(g, m)
            if c_m > 0 and r_m <= TOLERANCE:
                raise CheckFailed(f"{what}: {mistake.message}\nHint: {hint}")
        else:
            c_m, d_m, r_m = _fit_two(g, m, flat(mistake.extra))
            if c_m > 0 and r_m <= TOLERANCE:
                raise CheckFailed(f"{what}: {mistake.message.format(ratio=d_m / c_m)}\nHint: {hint}")
    cosine = float(g @ w / max(np.linalg.norm(g) * np.linalg.norm(w), 1e-300))
    off = residual if c > 0 else 1.0
    raise CheckFailed(
        f"{what} does not match the expected gradient: its direction differs (cosine {cosine:.3f}; even at the best "
        f"positive factor, {min(off, 9.99):.0%} of its length is off, the tolerance is {TOLERANCE:.1%}); e.g. d / d 2.bias: "
        f"expected {np.round(want['2.bias'], 5).tolist()}, got {np.round(np.asarray(got['2.bias'], float), 5).tolist()}"
        f"\nHint: {hint}")


def factor_note(scales: list[tuple[int, float]], what: str, hint: str) -> str:
    """A note naming the factor when it is a constant or the batch size times one; '' when it is 1.

    `scales`: (batch size, c) of each batch checked. CheckFailed for a factor that changes
    with the batch otherwise, or a constant too far from 1 to be the same algorithm.
    """
    def same(values):
        return all(abs(v / values[0] - 1.0) <= SCALE_RTOL for v in values)

    factors = [c for _, c in scales]
    per_step = [c / size for size, c in scales]
    if same(factors):
        k, summed = factors[0], False
    elif same(per_step):
        k, summed = per_step[0], True
    else:
        shown = ", ".join(f"{c:.3g} x on a batch of {size}" for size, c in scales)
        raise CheckFailed(f"{what} is a multiple of the expected gradient, but by a factor that changes with the batch "
                          f"({shown}), neither a constant nor the batch size: with it the steps of training depend on "
                          f"the batch's numbers\nHint: {hint}")
    if not MIN_FACTOR <= k <= MAX_FACTOR:
        raise CheckFailed(f"{what} is {k:.3g} x the expected gradient{' per step (a sum)' if summed else ''}: too far "
                          f"from 1 to be the same algorithm under Adam\nHint: {hint}")
    if summed:
        size, c = scales[0]
        times = "" if abs(k - 1.0) <= SCALE_RTOL else f"{k:.3g} x "
        return (f"Note: {what} sums over the batch instead of averaging: {times}the sum, {c:.3g} x the mean on a batch "
                f"of {size}. The same algorithm under Adam (its steps do not change when the loss is multiplied by a "
                "constant), so the points are awarded; the mean keeps the loss's size independent of the batch size.")
    if abs(k - 1.0) <= SCALE_RTOL:
        return ""
    return (f"Note: {what} is {k:.3g} x the expected one (a constant factor, e.g. 1/2 on a squared error). The same "
            "algorithm under Adam (its steps do not change when the loss is multiplied by a constant), so the points "
            "are awarded.")


# A gradient this small is zero: the zero batch's advantages are 0 only to float32 rounding (the student's value
# network in float32), so a correct loss that sums over the batch reached 1.05e-5 on 1 seed in 200 with a limit of
# 1e-6 (bench/loss_idioms.py); the mistakes it names give 1e-3 and more.
ZERO_ATOL = 1e-4


def expect_zero(got: dict, mistakes: list[Mistake], what: str, hint: str) -> None:
    """On a batch whose steps all weigh 0 the loss's gradient is 0; else name the mistake whose gradient
    it is (up to a positive factor, {ratio} in its message), or say that some term ignores the weights."""
    g = flat(got)
    if np.max(np.abs(g)) <= ZERO_ATOL:
        return
    for mistake in mistakes:
        ratio, residual = fit(g, flat(mistake.gradient))
        if ratio > 0 and residual <= TOLERANCE:
            raise CheckFailed(f"{what}: {mistake.message.format(ratio=ratio)}\nHint: {hint}")
    raise CheckFailed(f"{what} is not zero (largest entry {np.max(np.abs(g)):.3g}) although every step of the batch "
                      f"weighs 0: the loss has a term that does not depend on them\nHint: {hint}")


def negated(grads: dict) -> dict:
    return {k: -np.asarray(v, dtype=np.float64) for k, v in grads.items()}


def policy_loss_mistakes(weights: dict, obs: np.ndarray, actions: np.ndarray, weights_per_step: np.ndarray, *,
                         normalized: str) -> list[Mistake]:
    """The known mistakes of a loss whose gradient should be -(1/B) sum_t w_t grad log pi(a_t|s_t).

    `normalized`: the diagnosis of a loss that standardizes the w_t itself (the
    assignments say which convention applies)."""
    def loss_gradient(w, a=actions):
        return negated(common.reinforce_estimator(weights, obs, a, w))

    return [
        Mistake(common.reinforce_estimator(weights, obs, actions, weights_per_step),
                "the gradient is +g, the policy-gradient estimator itself (the loss's sign is flipped): minimizing "
                "this loss would make the better actions *less* likely"),
        Mistake(loss_gradient(weights_per_step, 1 - actions), "the loss uses the log-probability of the action *not* "
                "taken: gather log_softmax(logits) at the actions themselves"),
        Mistake(loss_gradient(common.standardized(weights_per_step)), normalized),
        Mistake(negated(common.softmax_twice_estimator(weights, obs, actions, weights_per_step)),
                "the loss applies softmax to probabilities (log_softmax(softmax(logits)), or softmax twice): the "
                "policy network outputs logits; take log_softmax(logits) once"),
        Mistake(loss_gradient(weights_per_step), "the loss adds another term, an entropy bonus with coefficient "
                "{ratio:.3g}: keep this loss the policy-gradient term alone and add regularisers in train()",
                extra=negated(common.entropy_gradient(weights, obs))),  # loss - beta H: gradient g* - beta dH
    ]
