"""The value-network check of reinforce_baseline: the reference against value networks that never
learn, over many seeds (in process, as bench/reinforce_sweep.py runs the reference).

For each seed the reference (or a variant) trains on the grader's `CartPoleServer` with its
episode budget (the grader's default); then `graders.reinforce_baseline.value_check.measure` plays 20 episodes
of the grader's own with the trained policy and compares the value network's predictions
(x Args.return_scale) with the grader's discounted returns: their mean squared error over
the returns' variance (the best constant's error). One JSON line per (variant, seed): the
evaluation mean of the policy and that ratio.

    PYTHONPATH=. .venv/bin/python bench/reinforce_baseline_value.py --seeds 0-49 --jobs 2 \
        --out bench/results/reinforce_baseline_value.jsonl

docs/reinforce_baseline.md records the distribution and the threshold chosen.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.reinforce_sweep import patched_source  # noqa: E402

VARIANTS = {  # name -> source patches of the reference
    "reference": [],
    "value_never_steps": ["                value_optimizer.step()=>                pass"],
    "value_lr_zero": ["value_learning_rate: float = 1e-2=>value_learning_rate: float = 0.0"],
}
EPISODES = 20  # the grader's value_episodes


def run(variant: str, seed: int) -> dict:
    import torch

    from graders import assignments
    from graders.reinforce_baseline import value_check
    from graders.rl.evaluation import evaluate
    from graders.rl.server import CartPoleServer
    from graders_worker.rl.served_env import ServedVectorEnv

    torch.set_num_threads(1)
    source = patched_source("reinforce_baseline", [], VARIANTS[variant])
    defaults = assignments.grader("reinforce_baseline").defaults
    server = CartPoleServer(seed, episode_budget=defaults["episode_budget"])
    callbacks = server.callbacks()
    module = types.ModuleType("reference")
    sys.modules["reference"] = module
    exec(compile(source, "reference.py", "exec"), module.__dict__)  # noqa: S102 - the reference
    def serve(name, *args):
        return callbacks[name](*args)

    policy, value_net = module.train(lambda n: ServedVectorEnv(n, callback=serve, call_array=serve),
                                     seed=seed, time_budget_s=float("inf"))

    class InProcess:
        @staticmethod
        def call(name, observations=None, timeout=None):
            with torch.no_grad():
                if name == "act":
                    return np.asarray(module.act(policy, observations))
                if name == "value_units":
                    args = module.Args()
                    return {"return_scale": args.return_scale, "gamma": args.gamma}
                return value_net(torch.as_tensor(observations)).squeeze(-1).numpy()

    eval_mean = float(np.mean(evaluate(InProcess(), seed, int(defaults["eval_episodes"]))))
    row = {"variant": variant, "seed": seed, "eval_mean": eval_mean,
           "passed": eval_mean >= defaults["thresholds"]["mean_return"]}
    row.update(value_check.measure(InProcess(), np.random.default_rng([seed, 99]), EPISODES))
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-19")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    first, last = map(int, args.seeds.split("-"))
    jobs = [(v, s) for s in range(first, last + 1) for v in args.variants.split(",")]
    with ProcessPoolExecutor(args.jobs) as pool:
        for row in pool.map(run, *zip(*jobs)):
            line = json.dumps(row)
            print(line, flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
