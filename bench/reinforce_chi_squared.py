"""Calibration and power of the chi-squared test of `sample_actions` (REINFORCE grader).

The check draws 2500 actions at each of 8 states whose probabilities of action 1 are
spread over [0.1, 0.9], and fails when the p-value of Pearson's statistic (exact
chi-squared survival function, 8 degrees of freedom) is below 1e-6. This script
simulates correct samplers (binomial counts with the true probabilities) to measure
how often the test rejects at several levels (the false-fail rate, which should match
the level), and samplers that are slightly wrong (softmax at another temperature) to
measure the power. The result is stamped with the commit and settings.

    PYTHONPATH=. .venv/bin/python bench/reinforce_chi_squared.py --trials 2000000
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import provenance  # noqa: E402
from graders.rl.stats import chi_squared_sf_even  # noqa: E402

DRAWS, STATES = 2500, 8
CHUNK = 200_000  # correct samplers simulated at once


def p_values(rng: np.random.Generator, trials: int, true_p: np.ndarray, tested_p: np.ndarray) -> np.ndarray:
    counts = rng.binomial(DRAWS, true_p, size=(trials, STATES))
    expected = DRAWS * tested_p
    statistic = ((counts - expected) ** 2 / (expected * (1 - tested_p))).sum(axis=1)
    half = statistic / 2  # exact survival function for 8 degrees of freedom, vectorized
    return np.exp(-half) * (1 + half + half**2 / 2 + half**3 / 6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--power-trials", type=int, default=20_000, help="per wrong sampler")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    assert abs(chi_squared_sf_even(20.09, 8) - 0.01) < 1e-4  # the table value
    probabilities = np.linspace(0.1, 0.9, STATES)
    chunks = [CHUNK] * (args.trials // CHUNK) + [args.trials % CHUNK] * (args.trials % CHUNK > 0)
    result = {**provenance.stamp({**vars(args), "draws": DRAWS, "states": STATES}), "trials": args.trials,
              "rejection_rate_of_a_correct_sampler": {}}
    p = np.concatenate([p_values(rng, n, probabilities, probabilities) for n in chunks])
    for level in (1e-2, 1e-3, 1e-4, 1e-5, 1e-6):
        result["rejection_rate_of_a_correct_sampler"][f"{level:g}"] = float((p < level).mean())
    logits = np.log(probabilities / (1 - probabilities))
    result["power_at_1e-6"] = {}
    for temperature in (0.8, 0.9, 0.95, 1.05, 1.1, 1.25, 0.0):
        wrong = (logits > 0).astype(float) if temperature == 0 else 1 / (1 + np.exp(-logits / temperature))
        wrong = np.clip(wrong, 0, 1)
        result["power_at_1e-6"][f"temperature {temperature:g}" if temperature else "greedy"] = float(
            (p_values(rng, args.power_trials, wrong, probabilities) < 1e-6).mean())
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
