r"""Measure the Monte-Carlo checks of the policy-gradient grader.

For many fresh seeds (standing in for hidden grading seeds) it draws the grader's
Monte-Carlo cases, samples episodes exactly as the grader does, and runs the
reference estimator with and without the value baseline through the grader's
unbiasedness test, and the buggy action-dependent baseline for power. It prints:

- the false-fail rate of the reference per test and per grading, with an exact
  (Clopper-Pearson) 95% upper bound, and the calibration of the test at looser
  levels (observed fraction of Bonferroni p-values below 0.1 / 0.01 / 0.001);
- the detection rate of the action-dependent baseline (power);
- the distribution of the variance ratio (value baseline / none).

The runs recorded in docs/policy_gradient.md (one JSON line per seed: the commit, the
settings, the seed and its cases; lines written before issue 31 are the bare list of
cases; about 0.3 s of CPU per seed). The summary names the commits of its lines.

    PYTHONPATH=. nice -n 10 .venv/bin/python bench/policy_gradient_stats.py --seeds 4000 \
        --power-seeds 400 --jobs 2 --out bench/results/policy_gradient_stats.jsonl
    PYTHONPATH=. nice -n 10 .venv/bin/python bench/policy_gradient_stats.py --seeds 2000 \
        --first-seed 300000 --power-seeds 0 --jobs 2 --out bench/results/policy_gradient_stats.jsonl
    PYTHONPATH=. nice -n 10 .venv/bin/python bench/policy_gradient_stats.py --seeds 400 \
        --first-seed 200000 --power-seeds 400 --jobs 2 --out bench/results/policy_gradient_power.jsonl
    PYTHONPATH=. .venv/bin/python bench/policy_gradient_stats.py \
        --summarize bench/results/policy_gradient_stats.jsonl
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import multiprocessing
import sys
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import provenance  # noqa: E402
from graders.policy_gradient import mdps, stats  # noqa: E402
from graders.policy_gradient.grader import DEFAULTS, MC_CASES, _exact, value_baseline  # noqa: E402


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_source(source: str, name: str):
    module = types.ModuleType(name)
    exec(compile(source, name, "exec"), module.__dict__)
    return module


def clopper_pearson_upper(failures: int, trials: int, confidence: float = 0.95) -> float:
    """Exact one-sided upper bound on a rate, by bisection on the binomial tail."""
    from math import comb

    def tail(p: float) -> float:  # Pr(X <= failures)
        return sum(comb(trials, k) * p**k * (1 - p) ** (trials - k) for k in range(failures + 1))

    lo, hi = failures / trials, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if tail(mid) > 1 - confidence else (lo, mid)
    return hi


@functools.cache
def _modules():
    """The reference and the action-dependent-baseline variant, loaded once per process."""
    from graders import variants

    ref = load(ROOT / "solutions/policy_gradient/policy_gradient.py", "reference")
    return ref, load_source(variants.by_name("policy_gradient", "action_dependent_baseline").source(), "buggy")


def run_seed(seed: int, n_episodes: int, alpha: float, with_bug: bool) -> list[dict]:
    """The grader's Monte-Carlo tests for one seed, on the reference (and the bug)."""
    ref, bug = _modules()
    rows = []
    for case in mdps.cases_for_seed(seed, MC_CASES):
        start = time.perf_counter()
        rng = np.random.default_rng([seed, mdps.CASES.index(case.spec), 1])
        episodes = mdps.sample_episodes(case, n_episodes, rng)
        grad = _exact(seed, case.spec.name)["grad"]  # autograd of J, as the grader does
        baseline = value_baseline(case, episodes["states"].shape[1])
        valid = case.mdp["valid"]
        plain = ref.reinforce_gradients(episodes, case.theta, valid, None)
        based = ref.reinforce_gradients(episodes, case.theta, valid, baseline)
        row = {
            "case": case.spec.name,
            "seconds": time.perf_counter() - start,
            "p_none": stats.bonferroni_p_value(stats.unbiasedness_test(plain, grad, alpha)),
            "p_value": stats.bonferroni_p_value(stats.unbiasedness_test(based, grad, alpha)),
            "ratio": stats.total_variance(based) / stats.total_variance(plain),
        }
        if with_bug:
            buggy = bug.reinforce_gradients(episodes, case.theta, valid, baseline)
            row["p_bug"] = stats.bonferroni_p_value(stats.unbiasedness_test(buggy, grad, alpha))
        rows.append(row)
    return rows


def cases(line: dict | list) -> list[dict]:
    """The cases of one seed's line: {"cases": [...], ...} since issue 31, the bare list before."""
    return line["cases"] if isinstance(line, dict) else line


def summarize(lines: list[dict | list], alpha: float, episodes: int, power_seeds: int, stamp: dict) -> None:
    """Print the measurements (see the module docstring) from per-seed lines, after the stamp and their commits."""
    print(json.dumps({**stamp, "row_commits": provenance.commits(lines)}))
    per_seed = [cases(line) for line in lines]
    rows = [row for seed_rows in per_seed for row in seed_rows]
    for row in rows:  # power at this alpha; a verdict stored without its p-value is dropped
        if "p_bug" in row:
            row["detected"] = row["p_bug"] < alpha
        else:
            row.pop("detected", None)
    seeds_per_grading = len(DEFAULTS["seeds"])
    tests_per_grading = 2 * len(MC_CASES) * seeds_per_grading
    all_p = np.array([row[key] for row in rows for key in ("p_none", "p_value")])
    fails = int((all_p < alpha).sum())
    seed_min_p = np.array([min(min(r["p_none"], r["p_value"]) for r in seed_rows) for seed_rows in per_seed])
    n_gradings = len(seed_min_p) // seeds_per_grading
    grading_fails = int((seed_min_p[: n_gradings * seeds_per_grading].reshape(n_gradings, -1) < alpha)
                        .any(axis=1).sum())
    print(f"episodes per test {episodes}, alpha per test {alpha:g}, seeds {len(per_seed)}, cases {MC_CASES}")
    print(f"reference tests: {len(all_p)}; false fails {fails} (rate {fails / len(all_p):.2e}, "
          f"95% upper bound {clopper_pearson_upper(fails, len(all_p)):.2e})")
    print(f"gradings ({tests_per_grading} tests each): {n_gradings}; failed {grading_fails} "
          f"(95% upper bound {clopper_pearson_upper(grading_fails, n_gradings):.2e}; "
          f"nominal <= {tests_per_grading * alpha:.0e})")
    for level in (0.1, 0.01, 0.001, 1e-4):
        print(f"calibration: fraction of Bonferroni p-values below {level:g}: {(all_p < level).mean():.4f} "
              f"({int((all_p < level).sum())} of {len(all_p)}; nominal <= {level:g})")
    for name in MC_CASES:
        case_rows = [r for r in rows if r["case"] == name]
        detected = [r["detected"] for r in case_rows if "detected" in r]
        ratios = np.array([r["ratio"] for r in case_rows])
        seconds = np.array([r["seconds"] for r in case_rows])
        power = f"{np.mean(detected):.3f}" if detected else "(not run)"
        print(f"{name}: action-dependent baseline detected in {power} of {len(detected)}; "
              f"variance ratio value/none min {ratios.min():.3f} median {np.median(ratios):.3f} "
              f"max {ratios.max():.3f}; seconds per case mean {seconds.mean():.3f}")
    with_bug = [seed_rows for seed_rows in per_seed if "detected" in seed_rows[0]][:power_seeds]
    detected_any = [any(r["detected"] for r in seed_rows) for seed_rows in with_bug]
    if detected_any:
        print(f"seeds on which some case detects the action-dependent baseline: "
              f"{np.mean(detected_any):.3f} of {len(detected_any)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=500, help="number of fresh seeds (a grading uses 2)")
    parser.add_argument("--first-seed", type=int, default=100_000)
    parser.add_argument("--power-seeds", type=int, default=200, help="seeds on which the buggy variant also runs")
    parser.add_argument("--episodes", type=int, default=DEFAULTS["episodes"])
    parser.add_argument("--alpha", type=float, default=DEFAULTS["thresholds"]["unbiased_alpha"])
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--out", type=Path, help="append one JSON line per seed here as it completes")
    parser.add_argument("--summarize", type=Path, metavar="JSONL", help="only summarise the lines of an earlier --out")
    args = parser.parse_args()

    if args.summarize:
        lines = [json.loads(line) for line in args.summarize.read_text().splitlines() if line.strip()]
        summarize(lines, args.alpha, args.episodes, args.power_seeds, provenance.stamp(args))
        return
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    jobs = [(seed, args.episodes, args.alpha, i < args.power_seeds) for i, seed in enumerate(seeds)]
    stamp = provenance.stamp({**vars(args), "mc_cases": MC_CASES})
    out = args.out.open("a") if args.out else None
    lines = []
    with multiprocessing.Pool(args.jobs) as pool:
        for (seed, *_), seed_rows in zip(jobs, pool.imap(_run_job, jobs, chunksize=4)):
            lines.append({**stamp, "seed": seed, "cases": seed_rows})
            if out:
                out.write(json.dumps(lines[-1]) + "\n")
                out.flush()
    summarize(lines, args.alpha, args.episodes, args.power_seeds, stamp)


def _run_job(job: tuple) -> list[dict]:
    return run_seed(*job)


if __name__ == "__main__":
    main()
