"""Measure the reference bandit agents on the grader's testbed over many seeds.

Prints, per testbed check, the mean, std, min and the threshold mean - 4 std that
graders/bandits/grader.py uses, plus Sutton & Barto's qualitative comparisons
(figures 2.2-2.5). Run: .venv/bin/python bench/bandits_thresholds.py [--seeds 100]
The output is copied into docs/bandits.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np

from graders.bandits.grader import DEFAULTS, K
from graders.bandits.testbed import Testbed

ROOT = Path(__file__).resolve().parent.parent
RUNS, STEPS, LATE = DEFAULTS["testbed_runs"], DEFAULTS["testbed_steps"], DEFAULTS["late_steps"]

# (threshold name, agent class, agent arguments, q* mean, metric)
MEASURED = [
    ("epsilon_greedy_reward", "EpsilonGreedy", {"epsilon": 0.1}, 0.0, "reward"),
    ("epsilon_greedy_optimal", "EpsilonGreedy", {"epsilon": 0.1}, 0.0, "optimal"),
    ("optimistic_optimal", "EpsilonGreedy", {"epsilon": 0.0, "step_size": 0.1, "initial_value": 5.0}, 0.0, "optimal"),
    ("ucb_reward", "UCB", {"c": 2.0}, 0.0, "reward"),
    ("gradient_baseline_optimal", "GradientBandit", {"step_size": 0.1, "baseline": True}, 4.0, "optimal"),
    ("gradient_no_baseline_optimal", "GradientBandit", {"step_size": 0.1, "baseline": False}, 4.0, "optimal"),
]
# Comparisons of figures 2.2-2.5 (not graded; the reference must show them).
EXTRA = {
    "epsilon_0.01_reward": ("EpsilonGreedy", {"epsilon": 0.01}, 0.0, "reward"),
    "realistic_optimal": ("EpsilonGreedy", {"epsilon": 0.1, "step_size": 0.1}, 0.0, "optimal"),
    "epsilon_greedy_reward": ("EpsilonGreedy", {"epsilon": 0.1}, 0.0, "reward"),
}


def load_reference():
    spec = importlib.util.spec_from_file_location("reference", ROOT / "solutions/bandits/bandits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def play(reference, class_name: str, kwargs: dict, mean: float, seed: int, metric: str) -> float:
    testbed = Testbed(RUNS, K, STEPS, np.random.default_rng(seed), mean=mean)
    agent = getattr(reference, class_name)(n_runs=RUNS, k=K, seed=seed + 1, **kwargs)
    for _ in range(STEPS):
        actions = agent.act()
        agent.update(actions, testbed.pull(actions))
    return testbed.late_average_reward(LATE) if metric == "reward" else testbed.late_optimal_fraction(LATE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=100)
    args = parser.parse_args()
    reference, seeds = load_reference(), range(args.seeds)
    start = time.perf_counter()
    print(f"reference over {args.seeds} seeds x {RUNS} runs x {STEPS} steps; metrics over the last {LATE} steps")
    print(f"{'threshold':30} {'mean':>7} {'std':>7} {'min':>7} {'mean-4std':>10} {'grader':>7}")
    for name, class_name, kwargs, mean, metric in MEASURED:
        values = np.array([play(reference, class_name, kwargs, mean, s, metric) for s in seeds])
        print(f"{name:30} {values.mean():7.3f} {values.std():7.3f} {values.min():7.3f} "
              f"{values.mean() - 4 * values.std():10.3f} {DEFAULTS['thresholds'][name]:7.3f}")
    print("\nSutton & Barto comparisons (mean over the first 10 seeds):")
    for name, (class_name, kwargs, mean, metric) in EXTRA.items():
        values = [play(reference, class_name, kwargs, mean, s, metric) for s in range(10)]
        print(f"{name:30} {np.mean(values):7.3f}")
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
