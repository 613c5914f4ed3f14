"""The grader's own evaluation of a trained policy: its environments, its seeds, the worker's actions only."""

from __future__ import annotations

import time

import numpy as np

from graders.checks import CheckFailed, as_array
from graders.rl.cartpole import CartPole, Relabelling, cos_sin, env_seeds


def evaluate(worker, seed: int, episodes: int = 100, timeout: float | None = None,
             relabelling: Relabelling | None = None) -> np.ndarray:
    """The returns of `episodes` CartPole-v1 episodes played by the worker's policy.

    The environments are the grader's, seeded from the grading seed, with the labels the
    policy was trained with (`relabelling`); all episodes run in lockstep and each step asks
    the worker for the actions of the episodes still running (one `act(observations)` call
    per step).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    envs = [CartPole() for _ in range(episodes)]
    obs = np.array([env.reset(s) for env, s in zip(envs, env_seeds(seed, "evaluate", episodes), strict=True)],
                   dtype=np.float32)
    returns, running = np.zeros(episodes), np.ones(episodes, dtype=bool)
    while running.any():
        index = np.flatnonzero(running)
        left = None if deadline is None else max(deadline - time.monotonic(), 0.1)
        served = obs[index] if relabelling is None else relabelling.observations(obs[index])
        got = worker.call("act", served, timeout=left)
        actions = as_array(got, f"act() on {len(index)} observations", (len(index),))
        if not np.all((actions == 0) | (actions == 1)):
            raise CheckFailed(f"act() must return actions 0 or 1, got {sorted(set(actions.tolist()))[:5]}")
        if relabelling is not None and relabelling.swap:
            actions = 1 - actions
        running_envs = [envs[i] for i in index.tolist()]
        for i, env, action, angle in zip(index.tolist(), running_envs, actions.tolist(), cos_sin(running_envs),
                                         strict=True):
            terminated, truncated = env.step(int(action), angle)
            obs[i] = envs[i].state()
            returns[i] += 1.0
            running[i] = not (terminated or truncated)
    return returns

