"""Measure the reference bandit agents on the grader's testbed over many seeds.

Prints, per testbed check, the mean, std, min and the threshold mean - 4 std that
graders/bandits/grader.py uses, plus Sutton & Barto's qualitative comparisons
(figures 2.2-2.5). Run: .venv/bin/python bench/bandits_thresholds.py [--seeds 100]
The output (its first line: the provenance stamp, commit and settings) is copied into
docs/bandits.md. --runs/--steps shrink the testbed (a smoke run; not the grader's figures).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import provenance  # noqa: E402
from graders.bandits.grader import DEFAULTS, K  # noqa: E402
from graders.bandits.testbed import Testbed  # noqa: E402

LATE = DEFAULTS["late_steps"]

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


def play(reference, class_name: str, kwargs: dict, mean: float, seed: int, metric: str, runs: int, steps: int) -> float:
    testbed = Testbed(runs, K, steps, np.random.default_rng(seed), mean=mean)
    agent = getattr(reference, class_name)(n_runs=runs, k=K, seed=seed + 1, **kwargs)
    for _ in range(steps):
        actions = agent.act()
        agent.update(actions, testbed.pull(actions))
    return testbed.late_average_reward(LATE) if metric == "reward" else testbed.late_optimal_fraction(LATE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--runs", type=int, default=DEFAULTS["testbed_runs"], help="runs per testbed (the grader's)")
    parser.add_argument("--steps", type=int, default=DEFAULTS["testbed_steps"], help="steps per run (the grader's)")
    args = parser.parse_args()
    print(json.dumps(provenance.stamp({**vars(args), "late_steps": LATE})))
    reference, seeds, size = load_reference(), range(args.seeds), (args.runs, args.steps)
    start = time.perf_counter()
    print(f"reference over {args.seeds} seeds x {args.runs} runs x {args.steps} steps; "
          f"metrics over the last {LATE} steps")
    print(f"{'threshold':30} {'mean':>7} {'std':>7} {'min':>7} {'mean-4std':>10} {'grader':>7}")
    for name, class_name, kwargs, mean, metric in MEASURED:
        values = np.array([play(reference, class_name, kwargs, mean, s, metric, *size) for s in seeds])
        print(f"{name:30} {values.mean():7.3f} {values.std():7.3f} {values.min():7.3f} "
              f"{values.mean() - 4 * values.std():10.3f} {DEFAULTS['thresholds'][name]:7.3f}")
    print(f"\nSutton & Barto comparisons (mean over the first {min(10, args.seeds)} seeds):")
    for name, (class_name, kwargs, mean, metric) in EXTRA.items():
        values = [play(reference, class_name, kwargs, mean, s, metric, *size) for s in range(min(10, args.seeds))]
        print(f"{name:30} {np.mean(values):7.3f}")
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
