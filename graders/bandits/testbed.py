"""The 10-armed testbed, owned by the grader (Sutton & Barto, section 2.3).

q*(a) ~ N(mean, 1) per run and arm; a pull of arm a gives R ~ N(q*(a), 1). The
testbed records, step by step, the average reward and the fraction of runs that
chose an optimal arm: the numbers the grade is computed from.
"""

from __future__ import annotations

import numpy as np

from graders.sandbox import CallbackRefused


class Testbed:
    def __init__(self, n_runs: int, k: int, steps: int, rng: np.random.Generator, mean: float = 0.0):
        self.rng = rng
        self.q_star = self.rng.normal(mean, 1.0, (n_runs, k))
        self.optimal = self.q_star == self.q_star.max(axis=1, keepdims=True)
        self.steps = steps
        self.average_reward: list[float] = []
        self.optimal_fraction: list[float] = []

    def pull(self, actions) -> np.ndarray:
        """The callback the worker calls once per step with its actions (n_runs,)."""
        n_runs, k = self.q_star.shape
        if len(self.average_reward) >= self.steps:
            raise CallbackRefused(f"the testbed runs {self.steps} steps; no more pulls")
        actions = np.asarray(actions)
        if actions.shape != (n_runs,) or actions.dtype.kind not in "iu":
            raise CallbackRefused(f"act() must return {n_runs} integer actions, got {actions.dtype} {actions.shape}")
        if actions.min() < 0 or actions.max() >= k:
            raise CallbackRefused(f"actions must lie in 0..{k - 1}")
        runs = np.arange(n_runs)
        rewards = self.rng.normal(self.q_star[runs, actions], 1.0)
        self.average_reward.append(float(rewards.mean()))
        self.optimal_fraction.append(float(self.optimal[runs, actions].mean()))
        return rewards

    def finished(self) -> bool:
        return len(self.average_reward) == self.steps

    def late_average_reward(self, last: int) -> float:
        return float(np.mean(self.average_reward[-last:]))

    def late_optimal_fraction(self, last: int) -> float:
        return float(np.mean(self.optimal_fraction[-last:]))
