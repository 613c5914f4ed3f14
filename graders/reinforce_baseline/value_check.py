"""Did the value network learn? Measured by the grader on states of its own (grader side, trusted).

After training, the grader plays episodes of its own (its CartPoles, reset seeds drawn
from the grading seed) with the trained policy's actions and computes each step's
discounted return G_t itself. The worker is then asked for the value network's
predictions on those states only: it never sees a return. The predictions are read in
the units the template fixes: value_net(s) predicts G_t / Args.return_scale, with G
discounted by Args.gamma (the adapter reports those two settings of the submission;
they only set units). The figure is the mean squared error of the predictions over
the variance of the returns, i.e. over the error of the best constant predictor.

Measured (docs/reinforce_baseline.md, bench/reinforce_baseline_value.py): the reference's
value network predicts the level of the returns (ratio about 1: as good as the best
constant; on the greedy policy's states most of the returns' variation is the time left
to the 500-step limit, which no function of the state can see), while a value network
that never trained misses it by the whole mean return (ratio 5 to 12).
"""

from __future__ import annotations

import math
import time

import numpy as np

from graders.checks import CheckFailed, as_array, expect
from graders.rl.cartpole import CartPole, Relabelling, cos_sin


def play(worker, rng: np.random.Generator, episodes: int, timeout: float | None = None,
         relabelling: Relabelling | None = None) -> tuple[np.ndarray, list[int]]:
    """(the states of `episodes` episodes of the trained policy (n, 4) float32, as served with `relabelling`; each
    episode's length)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    envs = [CartPole() for _ in range(episodes)]
    obs = np.array([env.reset(int(s)) for env, s in zip(envs, rng.integers(0, 2**31 - 1, episodes), strict=True)],
                   dtype=np.float32)
    running = np.ones(episodes, dtype=bool)
    states: list[list[np.ndarray]] = [[] for _ in range(episodes)]
    while running.any():
        index = np.flatnonzero(running)
        left = None if deadline is None else max(deadline - time.monotonic(), 0.1)
        served = obs[index] if relabelling is None else relabelling.observations(obs[index])
        actions = as_array(worker.call("act", served, timeout=left), f"act() on {len(index)} observations",
                           (len(index),))
        if not np.all((actions == 0) | (actions == 1)):
            raise CheckFailed(f"act() must return actions 0 or 1, got {sorted(set(actions.tolist()))[:5]}")
        if relabelling is not None and relabelling.swap:
            actions = 1 - actions
        running_envs = [envs[j] for j in index.tolist()]
        for j, env, action, angle in zip(index.tolist(), running_envs, actions.tolist(), cos_sin(running_envs),
                                         strict=True):
            states[j].append(obs[j].copy() if relabelling is None else relabelling.observations(obs[j][None])[0])
            terminated, truncated = env.step(int(action), angle)
            obs[j] = env.state()
            running[j] = not (terminated or truncated)
    return np.concatenate([np.stack(s) for s in states]), [len(s) for s in states]


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


def measure(worker, rng: np.random.Generator, episodes: int, timeout: float | None = None,
            relabelling: Relabelling | None = None) -> dict:
    """The value network's error on the grader's states against the best constant's: mse / var (and the parts)."""
    scale, gamma = _units(worker.call("value_units", timeout=timeout))
    states, lengths = play(worker, rng, episodes, timeout, relabelling)
    returns = np.concatenate([discounted(n, gamma) for n in lengths])
    got = worker.call("values", states, timeout=None if timeout is None else max(timeout, 1.0))
    predictions = as_array(got, f"the value network's predictions on {len(states)} states", (len(states),)) * scale
    variance = float(np.var(returns))
    mse = float(np.mean((predictions - returns) ** 2))
    return {"ratio": mse / variance if variance > 0 else math.inf, "states": len(states), "scale": scale,
            "gamma": gamma, "mean_prediction": float(predictions.mean()), "mean_return": float(returns.mean())}


def expect_value_network_learned(worker, ctx, label: str, relabelling: Relabelling | None = None) -> None:
    """The training check's second half: the returned value network predicts the grader's returns."""
    threshold = float(ctx.threshold("max_value_error_ratio"))
    m = measure(worker, ctx.rng(f"value states {label}"), int(ctx.option("value_episodes")),
                timeout=max(ctx.time_left(), 1.0), relabelling=relabelling)
    ctx.note(f"{label}: the value network (x Args.return_scale = {m['scale']:g}) on {m['states']} states of the "
             f"grader's own episodes: mean squared error {m['ratio']:.2f} x that of the best constant (threshold "
             f"{threshold:g}); mean prediction {m['mean_prediction']:.1f}, mean return {m['mean_return']:.1f} "
             f"(gamma {m['gamma']:g})")
    expect(m["ratio"] <= threshold,
           f"{label}: the value network has not learned the returns: on the grader's states it predicts "
           f"{m['mean_prediction'] / m['scale']:.3g} on average (x Args.return_scale = {m['mean_prediction']:.1f}) "
           f"where the returns average {m['mean_return']:.1f}; its squared error is {m['ratio']:.2f} x the best "
           f"constant's (threshold {threshold:g})",
           hint="step the value optimizer on the value loss after every batch, and return (policy, value_net) from "
                "train(); value_net(obs) predicts the returns as train() passes them to losses(), i.e. G_t / "
                "Args.return_scale (do not standardize the returns for the value loss)")
