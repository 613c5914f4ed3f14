"""How an untrained policy starts: the first training-episode returns of fresh policies.

For each seed: the reference's `Policy` (and `ValueNetwork`, built in the same order as
the reference's `train()` so the sampling stream is the same) with PyTorch's default
initialisation after `torch.manual_seed(seed)`, the template's shapes (4 -> hidden ->
2, `Args.hidden_size`, `Args.num_envs` environments), samples actions with the given
`sample_actions` through the given `EpisodeCollector` on the grader's served CartPole
(`CartPoleServer(seed, episode_budget)`, the assignment's budget), without any update,
until `--episodes` episodes have finished. The returns are the grader's own record
(`server.episode_returns`, in the order the episodes ended); the first `num_envs` of
them are also the first ones of the reference's real training run on that seed. Rows and
summary are stamped with the commit and settings.

    PYTHONPATH=. nice -n 15 .venv/bin/python bench/reinforce_baseline_untrained.py --seeds 0-499 \\
        --out bench/results/reinforce_baseline_untrained_returns.jsonl \\
        --summary bench/results/reinforce_baseline_untrained_summary.json
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import provenance  # noqa: E402

ASSIGNMENT = "reinforce_baseline"


def load_reference():
    from graders import assignments

    module = types.ModuleType("reference")
    sys.modules["reference"] = module  # dataclasses look their module up
    exec(compile(assignments.solution_path(ASSIGNMENT).read_text(), "reference.py", "exec"), module.__dict__)
    return module


def first_returns(module, seed: int, episodes: int) -> list[int]:
    import torch

    from graders import assignments
    from graders.rl.server import CartPoleServer
    from graders_worker.rl.served_env import ServedVectorEnv

    budget = assignments.grader(ASSIGNMENT).defaults["episode_budget"]
    server = CartPoleServer(seed, episode_budget=budget)
    callbacks = server.callbacks()
    args = module.Args()
    torch.manual_seed(seed)
    envs = ServedVectorEnv(args.num_envs, callback=lambda name, *a: callbacks[name](*a),
                           call_array=lambda name, array: callbacks[name](array))
    obs_dim = envs.single_observation_space.shape[0]
    policy = module.Policy(obs_dim, envs.single_action_space.n, args.hidden_size)
    module.ValueNetwork(obs_dim, args.hidden_size)  # as train() does, so the sampling stream is the same
    collector = module.EpisodeCollector(envs)
    while len(server.episode_returns) < episodes:
        collector.collect(policy, 1)
    return [int(r) for r in server.episode_returns[:episodes]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-499", help="a range a-b (inclusive)")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--out", default=None, help="JSONL, one line per seed")
    parser.add_argument("--summary", default=None, help="JSON summary of the distribution")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from graders import assignments

    module = load_reference()
    stamp = provenance.stamp({**vars(args), "episode_budget": assignments.grader(ASSIGNMENT).defaults["episode_budget"],
                              "hidden_size": module.Args().hidden_size, "num_envs": module.Args().num_envs})
    first, last = map(int, args.seeds.split("-"))
    rows = [{**stamp, "seed": s, "returns": first_returns(module, s, args.episodes)} for s in range(first, last + 1)]
    if args.out:
        Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    returns = np.array([r["returns"] for r in rows], dtype=float)
    means, maxima = returns.mean(axis=1), returns.max(axis=1)
    percentiles = [0, 1, 5, 10, 25, 50, 75, 90, 95, 99, 100]

    def pct(values):
        return {f"p{p}": float(np.percentile(values, p)) for p in percentiles}

    summary = {
        **stamp, "row_commits": provenance.commits(rows),
        "assignment": ASSIGNMENT, "seeds": len(rows), "seed_range": args.seeds, "episodes_per_seed": args.episodes,
        "hidden_size": module.Args().hidden_size, "num_envs": module.Args().num_envs,
        "all_returns": {"mean": float(returns.mean()), "std": float(returns.std()), **pct(returns)},
        "mean_of_first_episodes_per_seed": {"mean": float(means.mean()), **pct(means)},
        "max_of_first_episodes_per_seed": pct(maxima),
        "episode_return_counts": {f"{lo}-{hi}": int(((returns >= lo) & (returns <= hi)).sum())
                                  for lo, hi in [(0, 9), (10, 14), (15, 19), (20, 29), (30, 49), (50, 99),
                                                 (100, 199), (200, 499), (500, 500)]},
    }
    text = json.dumps(summary, indent=1)
    print(text)
    if args.summary:
        Path(args.summary).write_text(text + "\n")


if __name__ == "__main__":
    main()
