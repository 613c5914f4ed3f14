"""The reference's performance in the grader's own training check, over many seeds.

For each seed: the reference solution trains in a grading worker on CartPole-v1
served by the grader (`CartPoleServer`, with the assignment's episode budget), then
the grader's evaluation plays 100 episodes (`graders.rl.evaluation.evaluate`), exactly
as `graders/rl/training.py` does. One JSON line per seed: pass/fail, the
evaluation mean, wall time of training and of training + evaluation (the grader's
overhead included), CPU seconds (grader + worker), steps and episodes served, and the
figures the learning flags test (graders/rl/certify.py): the mean of the first
`start_episodes` served returns and the best mean of `learning_window` in a row; each line
stamped with the commit and settings (the summary names the commits of its lines).
`--episode-budget N` serves N training episodes instead of the grader's budget (a quick look).

    PYTHONPATH=. nice -n 10 .venv/bin/python bench/reinforce_reference.py reinforce --seeds 0-99 \
        --out bench/results/reinforce_reference.jsonl
    PYTHONPATH=. .venv/bin/python bench/reinforce_reference.py reinforce --summarize \
        bench/results/reinforce_reference.jsonl --figure docs/reinforce_reference.png

Seeds already in --out are skipped, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from served import served_train

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import provenance  # noqa: E402


def run_seed(assignment: str, seed: int, time_limit: float, budget: int | None = None) -> dict:
    from graders import assignments
    from graders.rl.evaluation import evaluate
    from graders.rl.server import CartPoleServer

    defaults = assignments.grader(assignment).defaults
    budget = budget or defaults.get("episode_budget")
    threshold = defaults["thresholds"]["mean_return"]
    source = assignments.solution_path(assignment).read_text()
    server = CartPoleServer(seed, episode_budget=budget)

    def evaluated(worker):
        start = time.perf_counter()
        return evaluate(worker, seed, int(defaults["eval_episodes"])), time.perf_counter() - start

    cost = served_train(assignment, source, server, seed, time_limit, after=evaluated)
    returns, eval_wall = cost["after"]
    train_wall, train_cpu, total_wall = cost["wall"], cost["cpu"], cost["wall"] + eval_wall
    mean = float(np.mean(returns))
    from graders.rl.certify import learning_figures

    start, best = learning_figures(server.episode_returns, start_episodes=int(defaults["start_episodes"]),
                                   window=int(defaults["learning_window"]))
    return {
        "assignment": assignment, "seed": seed, "passed": mean >= threshold, "eval_mean": mean,
        "eval_std": float(np.std(returns)), "train_wall_s": train_wall, "train_cpu_s": train_cpu,
        "total_wall_s": total_wall, "steps": server.steps, "episodes_started": server.started,
        "episodes_finished": len(server.episode_returns),
        "last100_train_mean": float(np.mean(server.episode_returns[-100:])) if server.episode_returns else 0.0,
        "load_average": float(os.getloadavg()[0]), "start_mean": start, "best_window_mean": best,
    }


def summarize(rows: list[dict], figure: str | None = None) -> dict:
    passed = np.array([r["passed"] for r in rows])
    summary = {"row_commits": provenance.commits(rows), "seeds": len(rows), "pass_rate": float(passed.mean()),
               "failed_seeds": [r["seed"] for r in rows if not r["passed"]]}
    for key in ("total_wall_s", "train_wall_s", "train_cpu_s", "steps", "episodes_started", "eval_mean"):
        values = np.array([r[key] for r in rows], dtype=float)
        summary[key] = {"median": float(np.median(values)), "p10": float(np.percentile(values, 10)),
                        "p90": float(np.percentile(values, 90)), "max": float(values.max())}
    if all("start_mean" in r for r in rows):  # the learning flags' figures (graders/rl/certify.py)
        summary["start_mean_max"] = max(r["start_mean"] for r in rows)
        summary["best_window_mean_min_of_passed"] = min((r["best_window_mean"] for r in rows if r["passed"]), default=None)
    summary["median_load_average"] = float(np.median([r.get("load_average", 0.0) for r in rows]))
    if figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
        axes[0].hist([r["eval_mean"] for r in rows], bins=30)
        axes[0].set(xlabel="evaluation mean return (100 episodes)", ylabel="seeds")
        axes[1].hist([r["train_cpu_s"] for r in rows], bins=30)
        axes[1].set(xlabel="training CPU seconds (grader + worker)")
        axes[2].hist([r["total_wall_s"] for r in rows], bins=30)
        axes[2].set(xlabel="wall seconds, training + evaluation")
        fig.suptitle(f"{rows[0]['assignment']}: {len(rows)} seeds, pass rate {passed.mean():.0%}")
        fig.tight_layout()
        fig.savefig(figure, dpi=90)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assignment", choices=["reinforce", "reinforce_baseline"])
    parser.add_argument("--seeds", default="0-99", help="a range a-b (inclusive) or a comma list")
    parser.add_argument("--time-limit", type=float, default=240.0, help="time budget told to train()")
    parser.add_argument("--episode-budget", type=int, default=None, help="instead of the grader's (a quick look)")
    parser.add_argument("--out", default=None, help="JSONL file; seeds already there are skipped")
    parser.add_argument("--summarize", default=None, help="only summarize this JSONL file")
    parser.add_argument("--figure", default=None, help="PNG of the distributions")
    args = parser.parse_args()
    if args.summarize:
        rows = [json.loads(line) for line in Path(args.summarize).read_text().splitlines() if line.strip()]
        chosen = [r for r in rows if r["assignment"] == args.assignment]
        print(json.dumps({**provenance.stamp(args), **summarize(chosen, args.figure)}, indent=1))
        return
    if "-" in args.seeds:
        first, last = map(int, args.seeds.split("-"))
        seeds = list(range(first, last + 1))
    else:
        seeds = [int(s) for s in args.seeds.split(",")]
    done = set()
    if args.out and Path(args.out).exists():
        done = {json.loads(line)["seed"] for line in Path(args.out).read_text().splitlines() if line.strip()}
    from graders import assignments

    budget = args.episode_budget or assignments.grader(args.assignment).defaults.get("episode_budget")
    stamp = provenance.stamp({**vars(args), "episode_budget": budget})
    rows = []
    for seed in seeds:
        if seed in done:
            continue
        row = {**stamp, **run_seed(args.assignment, seed, args.time_limit, budget)}
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
    if rows:
        print(json.dumps({**stamp, **summarize(rows, args.figure)}, indent=1))


if __name__ == "__main__":
    main()
