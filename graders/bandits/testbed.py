"""The 10-armed testbed, owned by the grader (Sutton & Barto, section 2.3), and the methods it holds players to.

q*(a) ~ N(mean, 1) per run and arm; a pull of arm a gives R ~ N(q*(a), 1). The testbed
records, step by step, the average reward and the fraction of runs that chose an optimal
arm: the numbers the grade is computed from.

It also follows the method the check names (`Rule`): from the actions it was sent and the
rewards it gave, the grader keeps that method's own estimates (Q and N, or H and the
baseline), exactly as the method defines them, and tests every step's actions against
what the method may do with them. A player credited for "UCB" must choose as UCB does
given what it has seen; another method under that name, or an agent that knows the
testbed some other way, is not the method the check names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from graders.sandbox import CallbackRefused

TIE_TOLERANCE = 1e-9  # relative: estimates computed in another (equivalent) order may differ in the last bits


def _maximal(scores: np.ndarray) -> np.ndarray:
    """The arms whose score is maximal, within a relative tolerance (inf counts as maximal)."""
    top = scores.max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        return (scores >= top - TIE_TOLERANCE * (1.0 + np.abs(top))) | (scores == top)


@dataclass
class Rule:
    """A method as the grader follows it. `kind`: epsilon_greedy, ucb or gradient."""

    kind: str
    epsilon: float = 0.0
    step_size: float | None = None  # None: sample averages
    initial_value: float = 0.0
    c: float = 2.0
    baseline: bool = True
    # accumulated over the run
    mismatches: int = 0  # actions the method could not have taken
    explored: float = 0.0  # non-greedy actions (epsilon-greedy)
    explored_expected: float = 0.0
    explored_variance: float = 0.0
    chi_squared: float = 0.0  # sum over steps of Pearson's statistic of the random choices
    chi_squared_dof: int = 0
    state: dict = field(default_factory=dict)

    def start(self, n_runs: int, k: int) -> None:
        if self.kind == "gradient":
            self.state = {"H": np.zeros((n_runs, k)), "mean": np.zeros(n_runs), "t": 0}
        else:
            self.state = {"Q": np.full((n_runs, k), float(self.initial_value)), "N": np.zeros((n_runs, k)), "t": 0}

    def observe(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Test one step's actions against the method, then update its estimates with the rewards."""
        runs = np.arange(len(actions))
        k = (self.state["H"] if self.kind == "gradient" else self.state["Q"]).shape[1]
        self.state["t"] += 1
        if self.kind == "gradient":
            H = self.state["H"]
            z = np.exp(H - H.max(axis=1, keepdims=True))
            pi = z / z.sum(axis=1, keepdims=True)
            self._pearson(np.bincount(actions, minlength=k), pi.sum(axis=0))
            if self.baseline:
                self.state["mean"] += (rewards - self.state["mean"]) / self.state["t"]
            one_hot = np.zeros_like(pi)
            one_hot[runs, actions] = 1.0
            H += self.step_size * (rewards - self.state["mean"])[:, None] * (one_hot - pi)
            return
        Q, N = self.state["Q"], self.state["N"]
        if self.kind == "ucb":
            with np.errstate(divide="ignore", invalid="ignore"):
                scores = np.where(N == 0, np.inf, Q + self.c * np.sqrt(math.log(self.state["t"]) / N))
            self.mismatches += int(np.sum(~_maximal(scores)[runs, actions]))
        else:
            greedy = _maximal(Q)
            away = ~greedy[runs, actions]
            if self.epsilon == 0.0:
                self.mismatches += int(np.sum(away))
            else:
                p = self.epsilon * (k - greedy.sum(axis=1)) / k  # chance of a non-greedy action in each run
                self.explored += float(np.sum(away))
                self.explored_expected += float(p.sum())
                self.explored_variance += float(np.sum(p * (1 - p)))
                # the non-greedy choices, arm by arm, against exploring uniformly over all k arms
                expected = (self.epsilon / k) * (~greedy).sum(axis=0)
                self._pearson(np.bincount(actions[away], minlength=k), expected)
        N[runs, actions] += 1
        step = 1.0 / N[runs, actions] if self.step_size is None else self.step_size
        Q[runs, actions] += step * (rewards - Q[runs, actions])

    def _pearson(self, observed: np.ndarray, expected: np.ndarray) -> None:
        used = expected > 0
        if np.any(observed[~used] > 0):
            self.mismatches += int(observed[~used].sum())
        self.chi_squared += float(np.sum((observed[used] - expected[used]) ** 2 / expected[used]))
        self.chi_squared_dof += int(used.sum())

    def verdict(self, false_fail: float) -> str | None:
        """None when the actions follow the method; else what does not."""
        if self.mismatches:
            return f"{self.mismatches} actions that {self.describe()} could not have chosen"
        if self.kind == "epsilon_greedy" and self.epsilon > 0 and self.explored_variance > 0:
            z = (self.explored - self.explored_expected) / math.sqrt(self.explored_variance)
            if abs(z) > stats.norm.isf(false_fail / 2):
                return (f"{self.explored:.0f} non-greedy actions where epsilon = {self.epsilon:g} explains "
                        f"{self.explored_expected:.0f} +- {math.sqrt(self.explored_variance):.0f}")
        if self.chi_squared_dof and stats.chi2.sf(self.chi_squared, self.chi_squared_dof) < false_fail:
            what = "the arms chosen when exploring" if self.kind == "epsilon_greedy" else "the arms chosen"
            return (f"{what} do not follow {self.describe()}'s probabilities (chi-squared {self.chi_squared:.0f} "
                    f"with {self.chi_squared_dof} degrees of freedom)")
        return None

    def describe(self) -> str:
        if self.kind == "ucb":
            return f"UCB (c = {self.c:g}, sample averages)"
        if self.kind == "gradient":
            return f"the gradient bandit (alpha = {self.step_size:g}, {'with' if self.baseline else 'without'} baseline)"
        estimates = "sample averages" if self.step_size is None else f"step size {self.step_size:g}"
        return f"epsilon-greedy (epsilon = {self.epsilon:g}, {estimates}, Q1 = {self.initial_value:g})"


class Testbed:
    def __init__(self, n_runs: int, k: int, steps: int, rng: np.random.Generator, mean: float = 0.0,
                 rule: Rule | None = None):
        self.rng = rng
        self.q_star = self.rng.normal(mean, 1.0, (n_runs, k))
        self.optimal = self.q_star == self.q_star.max(axis=1, keepdims=True)
        self.steps = steps
        self.rule = rule
        if rule is not None:
            rule.start(n_runs, k)
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
        actions = actions.astype(np.int64)
        runs = np.arange(n_runs)
        rewards = self.rng.normal(self.q_star[runs, actions], 1.0)
        self.average_reward.append(float(rewards.mean()))
        self.optimal_fraction.append(float(self.optimal[runs, actions].mean()))
        if self.rule is not None:
            self.rule.observe(actions, rewards)
        return rewards

    def finished(self) -> bool:
        return len(self.average_reward) == self.steps

    def late_average_reward(self, last: int) -> float:
        return float(np.mean(self.average_reward[-last:]))

    def late_optimal_fraction(self, last: int) -> float:
        return float(np.mean(self.optimal_fraction[-last:]))
