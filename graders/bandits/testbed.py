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

# How far below the best score (relative to 1 + |best|) a chosen arm may lie and still count as maximal. Correct
# code reaches other numbers than the grader's float64 arithmetic: float32 estimates, a small stabiliser in a
# denominator or a log (Sutton & Barto's UCB adds 1e-5 to N), ties taken with np.isclose (rtol 1e-5). Measured with
# bench/bandits_idioms.py (docs/bandits.md, "Numerical conventions").
TIE_TOLERANCE = 1e-4
GAP_EDGES = (1e-12, 1e-9, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)  # a histogram of the chosen arms' gaps (bench, messages)


def _gaps(scores: np.ndarray) -> np.ndarray:
    """How far each arm's score lies below its run's best, relative to 1 + |best|."""
    top = scores.max(axis=1, keepdims=True)
    return (top - scores) / (1.0 + np.abs(top))


def maximal(scores: np.ndarray) -> np.ndarray:
    """The arms whose (finite) score is maximal, within TIE_TOLERANCE."""
    return _gaps(scores) <= TIE_TOLERANCE


@dataclass
class Rule:
    """A method as the grader follows it. `kind`: epsilon_greedy, ucb or gradient."""

    kind: str
    epsilon: float = 0.0
    step_size: float | None = None  # None: sample averages
    initial_value: float = 0.0
    c: float = 2.0
    baseline: bool = True
    # the baseline of step t: the mean of R_1..R_t (False) or of R_1..R_(t-1), with R_1 at t = 1 (True);
    # Sutton & Barto's text reads both ways, and both are taught
    preceding_baseline: bool = False
    # accumulated over the run
    mismatches: int = 0  # actions the method could not have taken
    first_mismatch: str = ""  # where the first was, and by how much (for the message)
    # the methods without chance (UCB, greedy): how far the chosen arms lay below the best score (_gaps)
    worst_gap: float = 0.0
    gap_counts: list = field(default_factory=lambda: [0] * len(GAP_EDGES))  # chosen arms with a gap above each edge
    explored: float = 0.0  # non-greedy actions (epsilon-greedy)
    explored_expected: float = 0.0
    explored_variance: float = 0.0
    chi_squared: float = 0.0  # sum over steps of Pearson's statistic of the random choices
    chi_squared_dof: int = 0
    # the gradient bandit: the log-probability of each action taken, against its expectation
    log_likelihood: float = 0.0
    log_likelihood_expected: float = 0.0
    log_likelihood_variance: float = 0.0
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
            shifted = H - H.max(axis=1, keepdims=True)
            log_pi = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            pi = np.exp(log_pi)
            # Each step's log pi(action) minus its mean under pi is a martingale difference, so
            # their sum over steps and runs, divided by the summed variances, is about N(0, 1)
            # when the actions are drawn from pi; a method that picks the likely arms more (or
            # less) often than pi does moves it by thousands of standard deviations.
            mean = np.sum(pi * log_pi, axis=1)
            self.log_likelihood += float(log_pi[runs, actions].sum())
            self.log_likelihood_expected += float(mean.sum())
            self.log_likelihood_variance += float(np.sum(np.sum(pi * log_pi**2, axis=1) - mean**2))
            baseline = _baseline(self.state, rewards, self.baseline, self.preceding_baseline)
            one_hot = np.zeros_like(pi)
            one_hot[runs, actions] = 1.0
            H += self.step_size * (rewards - baseline)[:, None] * (one_hot - pi)
            return
        Q, N = self.state["Q"], self.state["N"]
        if self.kind == "ucb":  # untried arms are maximising; else argmax Q + c sqrt(ln t / N)
            scores = Q + self.c * np.sqrt(math.log(self.state["t"]) / np.maximum(N, 1))
            untried = N == 0
            gaps = np.where(untried.any(axis=1, keepdims=True), np.where(untried, 0.0, np.inf), _gaps(scores))
            self._deterministic(gaps, scores, actions)
        elif self.epsilon == 0.0:
            self._deterministic(_gaps(Q), Q, actions)
        else:
            greedy = maximal(Q)
            away = ~greedy[runs, actions]
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

    def _deterministic(self, gaps: np.ndarray, scores: np.ndarray, actions: np.ndarray) -> None:
        """Count the chosen arms further than TIE_TOLERANCE below the best score (`gaps`: of every arm)."""
        chosen = gaps[np.arange(len(actions)), actions]
        finite = chosen[np.isfinite(chosen)]
        if len(finite):
            self.worst_gap = max(self.worst_gap, float(finite.max()))
        for i, edge in enumerate(GAP_EDGES):
            self.gap_counts[i] += int(np.sum(chosen > edge))
        wrong = np.flatnonzero(chosen > TIE_TOLERANCE)
        if len(wrong) and not self.first_mismatch:
            run, best = int(wrong[0]), int(np.argmin(gaps[wrong[0]]))
            where = f"the first at step {self.state['t']}, run {run}: arm {int(actions[run])}"
            self.first_mismatch = (f"{where} while arm {best} was untried" if np.isinf(chosen[run]) else
                                   f"{where} scored {scores[run, actions[run]]:.7g}, arm {best} {scores[run, best]:.7g}")
        self.mismatches += len(wrong)

    def _pearson(self, observed: np.ndarray, expected: np.ndarray) -> None:
        used = expected > 0
        if np.any(observed[~used] > 0):
            self.mismatches += int(observed[~used].sum())
        self.chi_squared += float(np.sum((observed[used] - expected[used]) ** 2 / expected[used]))
        self.chi_squared_dof += int(used.sum())

    def verdict(self, false_fail: float) -> str | None:
        """None when the actions follow the method; else what does not."""
        if self.mismatches:
            where = f" ({self.first_mismatch})" if self.first_mismatch else ""
            return f"{self.mismatches} actions that {self.describe()} could not have chosen{where}"
        if self.kind == "epsilon_greedy" and self.epsilon > 0 and self.explored_variance > 0:
            z = (self.explored - self.explored_expected) / math.sqrt(self.explored_variance)
            if abs(z) > stats.norm.isf(false_fail / 2):
                return (f"{self.explored:.0f} non-greedy actions where epsilon = {self.epsilon:g} explains "
                        f"{self.explored_expected:.0f} +- {math.sqrt(self.explored_variance):.0f}")
        if self.log_likelihood_variance > 0:
            z = (self.log_likelihood - self.log_likelihood_expected) / math.sqrt(self.log_likelihood_variance)
            if abs(z) > stats.norm.isf(false_fail / 2):
                return (f"the arms chosen do not follow {self.describe()}'s probabilities: their log-probabilities "
                        f"sum to {self.log_likelihood:.0f}, where drawing from those probabilities gives "
                        f"{self.log_likelihood_expected:.0f} +- {math.sqrt(self.log_likelihood_variance):.0f}")
        if self.chi_squared_dof and stats.chi2.sf(self.chi_squared, self.chi_squared_dof) < false_fail:
            return (f"the arms chosen when exploring do not follow {self.describe()}'s probabilities "
                    f"(chi-squared {self.chi_squared:.0f} with {self.chi_squared_dof} degrees of freedom)")
        return None

    def describe(self) -> str:
        if self.kind == "gradient" and self.baseline:
            which = "preceding rewards" if self.preceding_baseline else "rewards so far"
            return f"the gradient bandit (alpha = {self.step_size:g}, baseline: the mean of the {which})"
        if self.kind == "ucb":
            return f"UCB (c = {self.c:g}, sample averages)"
        if self.kind == "gradient":
            return f"the gradient bandit (alpha = {self.step_size:g}, {'with' if self.baseline else 'without'} baseline)"
        estimates = "sample averages" if self.step_size is None else f"step size {self.step_size:g}"
        return f"epsilon-greedy (epsilon = {self.epsilon:g}, {estimates}, Q1 = {self.initial_value:g})"


def _baseline(state: dict, rewards: np.ndarray, baseline: bool, preceding: bool) -> np.ndarray | float:
    """This step's baseline, updating the running mean of the rewards in `state` (with `t` this step's number)."""
    if not baseline:
        return 0.0
    before = state["mean"] if state["t"] > 1 else rewards
    state["mean"] = state["mean"] + (rewards - state["mean"]) / state["t"]
    return before.copy() if preceding else state["mean"]


@dataclass
class AnyRule:
    """Conventions: actions follow the method when they follow any one of these rules."""

    rules: tuple[Rule, ...]

    def start(self, n_runs: int, k: int) -> None:
        for rule in self.rules:
            rule.start(n_runs, k)

    def observe(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        for rule in self.rules:
            rule.observe(actions, rewards)

    def verdict(self, false_fail: float) -> str | None:
        verdicts = [rule.verdict(false_fail) for rule in self.rules]
        return None if None in verdicts else verdicts[0]

    def describe(self) -> str:
        return " or ".join(rule.describe() for rule in self.rules)


class Testbed:
    def __init__(self, n_runs: int, k: int, steps: int, rng: np.random.Generator, mean: float = 0.0,
                 rule: Rule | AnyRule | None = None):
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


def gradient_states(actions, rewards, k: int, step_size: float, baseline: bool, preceding: bool) -> list[dict]:
    """The gradient bandit's preferences H after each scripted step (actions, rewards: (steps, n_runs))."""
    state = {"H": np.zeros((len(actions[0]), k)), "mean": np.zeros(len(actions[0])), "t": 0}
    expected = []
    for a, r in zip(actions, rewards):
        state["t"] += 1
        H = state["H"]
        z = np.exp(H - H.max(axis=1, keepdims=True))
        pi = z / z.sum(axis=1, keepdims=True)
        b = _baseline(state, np.asarray(r, dtype=np.float64), baseline, preceding)
        H += step_size * (r - b)[:, None] * (np.eye(k)[a] - pi)
        expected.append({"H": H.copy()})
    return expected
