"""Did the value network learn? Measured by the grader on the states it served (grader side, trusted).

The grader records every training episode's observations as it served them. After
training (and the policy's evaluation), the worker is asked for the value network's
predictions on the states of the last `value_episodes` training episodes: it never sees a
return. The grader computes each step's discounted return G_t itself, and reads the
predictions in the units the template fixes: value_net(s) predicts G_t /
Args.return_scale, with G discounted by Args.gamma (the adapter reports those two fields
of the submission's Args; a missing one is a clear failure, never an assumption). The
figure is the mean squared error of the predictions over the variance of the returns,
i.e. over the error of the best constant predictor on the same states.

Why the last training episodes (issue 27): they are what the value network was trained
on last. On the final policy's own episodes (the check before) a value network that
learned, but lags a policy that improved fast at the end, predicts the returns of the
episodes before the jump and missed by 5-7 x the best constant, like one that never
learned. On its own recent training data it fits them. A network that never trained
misses their level by the whole mean return. Measured: docs/reinforce_baseline.md,
bench/reinforce_baseline_value.py.
"""

from __future__ import annotations

import math

import numpy as np

from graders.checks import as_array, expect
from graders.rl.server import CartPoleServer


def discounted(length: int, gamma: float) -> np.ndarray:
    """G_t of an episode of `length` rewards of 1."""
    steps_left = length - np.arange(length)
    return steps_left.astype(np.float64) if gamma == 1.0 else (1.0 - gamma**steps_left) / (1.0 - gamma)


UNITS_HINT = ("keep both fields of the template's Args: the grader computes the returns your value network "
              "predicts with them (gamma = 1.0 for undiscounted returns, return_scale = 1.0 for unscaled ones)")


def _units(reply) -> tuple[float, float]:
    """(return_scale, gamma) as the submission declares them; CheckFailed when they are not numbers that make sense."""
    expect(isinstance(reply, dict), "Args.return_scale and Args.gamma could not be read", hint=UNITS_HINT)
    for name in ("return_scale", "gamma"):
        value = reply.get(name)
        expect(isinstance(value, (int, float)) and not isinstance(value, bool),
               f"Args.{name} is {'missing' if value is None else repr(value)[:60]}: the value network's predictions "
               f"are read as G_t / Args.return_scale with G_t discounted by Args.gamma, and the grader assumes neither",
               hint=UNITS_HINT)
    scale, gamma = float(reply["return_scale"]), float(reply["gamma"])
    expect(math.isfinite(scale) and scale > 0 and 0 < gamma <= 1,
           f"Args.return_scale = {scale:g} and Args.gamma = {gamma:g}: the scale must be positive and gamma in (0, 1]")
    return scale, gamma


def measure(worker, server: CartPoleServer, episodes: int, timeout: float | None = None) -> dict:
    """The value network's error on the states of the last `episodes` training episodes against the best constant's:
    mse / var (and the parts)."""
    scale, gamma = _units(worker.call("value_units", timeout=timeout))
    recent = server.episode_states[-episodes:]
    expect(len(recent) > 0, "the value network cannot be checked: training finished no episode")
    states = np.concatenate(recent)
    returns = np.concatenate([discounted(len(e), gamma) for e in recent])
    got = worker.call("values", states, timeout=None if timeout is None else max(timeout, 1.0))
    predictions = as_array(got, f"the value network's predictions on {len(states)} states", (len(states),)) * scale
    variance = float(np.var(returns))
    mse = float(np.mean((predictions - returns) ** 2))
    return {"ratio": mse / variance if variance > 0 else math.inf, "states": len(states), "episodes": len(recent),
            "scale": scale, "gamma": gamma, "mean_prediction": float(predictions.mean()),
            "mean_return": float(returns.mean())}


def expect_value_network_learned(worker, ctx, label: str, server: CartPoleServer) -> None:
    """The training check's second half: the returned value network predicts the returns it was trained on last."""
    threshold = float(ctx.threshold("max_value_error_ratio"))
    shown = ctx.shown_threshold("max_value_error_ratio")
    m = measure(worker, server, int(ctx.option("value_episodes")), timeout=max(ctx.time_left(), 1.0))
    ctx.metric(f"value network's error over the best constant's, {label}", m["ratio"], order="asc")
    ctx.note(f"{label}: the value network (x Args.return_scale = {m['scale']:g}) on the {m['states']} states of "
             f"your last {m['episodes']} training episodes: mean squared error {m['ratio']:.2f} x that of the best "
             f"constant (threshold {shown}); mean prediction {m['mean_prediction']:.1f}, mean discounted return "
             f"{m['mean_return']:.1f} (gamma {m['gamma']:g})")
    expect(m["ratio"] <= threshold,
           f"{label}: the value network has not learned the returns: on the states of your last {m['episodes']} "
           f"training episodes it predicts {m['mean_prediction'] / m['scale']:.3g} on average (x Args.return_scale "
           f"= {m['mean_prediction']:.1f}) where their discounted returns average {m['mean_return']:.1f}; its "
           f"squared error is {m['ratio']:.2f} x the best constant's (threshold {shown})",
           hint="step the value optimizer on the value loss after every batch, and return (policy, value_net) from "
                "train(); value_net(obs) predicts the returns as train() passes them to losses(), i.e. G_t / "
                "Args.return_scale, discounted by Args.gamma (do not standardize the returns for the value loss)")
