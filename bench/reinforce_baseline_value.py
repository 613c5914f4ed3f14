"""The value-network check of reinforce_baseline: correct ways of learning a value network against ones that never
learn, over many seeds (in process, as bench/reinforce_sweep.py runs the reference).

For each (variant, seed) the reference with the variant's edits trains on the grader's `CartPoleServer` (episode
budget, relabelling and seeds as the grader's) recording every training episode's observations; then the grader's
evaluation plays its 100 episodes with the returned policy. The value network's predictions (x Args.return_scale)
are compared with the grader's discounted returns (Args.gamma) on two sets of states:
- `final`: 20 episodes of the grader's own, played by the returned policy (the check before issue 27);
- `train_K`: the last K training episodes as the grader served them (K = 20, 50, 100).
For each: the mean squared error over the returns' variance (the best constant's error) and over their mean
square (the zero predictor's error), the correlation, and the mean prediction and return. One JSON line per
(variant, seed), stamped with the commit and settings; a re-run skips the rows already in --out.

    PYTHONPATH=. .venv/bin/python bench/reinforce_baseline_value.py --seeds 2000-2009 --jobs 1 \\
        --out bench/results/reinforce_baseline_value_variants.jsonl
    PYTHONPATH=. .venv/bin/python bench/reinforce_baseline_value.py --table \\
        --out bench/results/reinforce_baseline_value_variants.jsonl

docs/reinforce_baseline.md records the distributions and the threshold chosen.
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

from bench import provenance  # noqa: E402
from bench.reinforce_sweep import patched_source, seed_list  # noqa: E402

ENTROPY = ("            (p_loss + v_loss).backward()",
           "            entropy = torch.distributions.Categorical(logits=policy(obs)).entropy().mean()\n"
           "            (p_loss - 0.01 * entropy + v_loss).backward()")
# name -> (correct?, --set overrides of Args, --patch edits of the reference)
VARIANTS = {
    "reference": (True, [], []),
    "value_steps_1": (True, ["value_epochs=1"], []),
    "value_lr_1e-3": (True, ["value_learning_rate=1e-3"], []),
    "batches_of_5_one_step": (True, ["num_envs=5", "episodes_per_update=5", "policy_steps=1", "value_epochs=1"], []),
    "entropy_bonus": (True, [], ["=>".join(ENTROPY)]),
    "undiscounted": (True, ["gamma=1.0", "return_scale=500.0"], []),
    "policy_lr_2e-2": (True, ["policy_learning_rate=2e-2"], []),
    "value_never_steps": (False, [], ["                value_optimizer.step()=>                pass"]),
    "value_lr_zero": (False, ["value_learning_rate=0.0"], []),
    "fresh_value_net": (False, [], ["    return policy, value_net\n=>"
                                    "    return policy, ValueNetwork(obs_dim, args.hidden_size).to(device)\n"]),
}
FINAL_EPISODES = 20
WINDOWS = (20, 50, 100)
ARRAYS = ""  # --arrays DIR: one .npz per row with the training states and the value network's predictions
BUDGET = None  # --episode-budget: instead of the grader's (a quick look)
ARGUMENTS: dict = {}  # the command line's arguments, for the rows' settings


def play(worker, rng: np.random.Generator, episodes: int, relabelling) -> tuple[np.ndarray, list[int]]:
    """The check before issue 27: `episodes` episodes of the grader's own, played by the returned policy; (their
    states (n, 4) as served, each episode's length)."""
    from graders.rl.cartpole import CartPole

    envs = [CartPole() for _ in range(episodes)]
    obs = np.array([env.reset(int(s)) for env, s in zip(envs, rng.integers(0, 2**31 - 1, episodes), strict=True)])
    states: list[list[np.ndarray]] = [[] for _ in range(episodes)]
    running = np.ones(episodes, dtype=bool)
    while running.any():
        index = np.flatnonzero(running)
        served = relabelling.observations(obs[index].astype(np.float32))
        actions = np.asarray(worker.call("act", served)) ^ relabelling.swap
        for j, row, action in zip(index.tolist(), served, actions.tolist(), strict=True):
            states[j].append(row)
            terminated, truncated = envs[j].step(int(action))
            obs[j] = envs[j].state()
            running[j] = not (terminated or truncated)
    return np.concatenate([np.stack(s) for s in states]), [len(s) for s in states]


def stats(predictions: np.ndarray, returns: np.ndarray) -> dict:
    error = float(np.mean((predictions - returns) ** 2))
    spread = float(np.var(returns))
    corr = float(np.corrcoef(predictions, returns)[0, 1]) if np.std(predictions) > 0 and spread > 0 else 0.0
    return {"over_var": error / spread if spread > 0 else float("inf"), "over_meansq": error / float(np.mean(returns**2)),
            "corr": corr, "mean_prediction": float(predictions.mean()), "mean_return": float(returns.mean()),
            "states": len(returns)}


def run(variant: str, seed: int) -> dict:
    import torch

    from graders import assignments
    from graders.reinforce_baseline import value_check
    from graders.rl.cartpole import Relabelling
    from graders.rl.evaluation import evaluate
    from graders.rl.server import CartPoleServer
    from graders_worker.rl.served_env import ServedVectorEnv

    torch.set_num_threads(1)
    _correct, sets, patches = VARIANTS[variant]
    source = patched_source("reinforce_baseline", sets, patches)
    defaults = assignments.grader("reinforce_baseline").defaults
    relabelling = Relabelling(seed)
    budget = BUDGET or defaults["episode_budget"]
    server = CartPoleServer(seed, episode_budget=budget, relabelling=relabelling,
                            record_states=True)
    callbacks = server.callbacks()
    module = types.ModuleType("reference")
    sys.modules["reference"] = module
    exec(compile(source, "reference.py", "exec"), module.__dict__)  # noqa: S102 - the reference, edited

    def serve(name, *args):
        return callbacks[name](*args)

    policy, value_net = module.train(lambda n: ServedVectorEnv(n, callback=serve, call_array=serve),
                                     seed=seed, time_budget_s=float("inf"))
    args = module.Args()

    def predict(states: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return value_net(torch.as_tensor(states)).squeeze(-1).numpy().astype(np.float64) * args.return_scale

    class InProcess:
        @staticmethod
        def call(name, observations=None, timeout=None):
            with torch.no_grad():
                return np.asarray(module.act(policy, observations))

    eval_mean = float(np.mean(evaluate(InProcess(), seed, int(defaults["eval_episodes"]), relabelling=relabelling)))
    row = {**provenance.stamp({**ARGUMENTS, "sets": sets, "patches": patches, "budget": budget}),
           "variant": variant, "correct": VARIANTS[variant][0], "seed": seed, "eval_mean": eval_mean,
           "passed": eval_mean >= defaults["thresholds"]["mean_return"],
           "train_lengths_last20": [int(n) for n in server.episode_lengths[-20:]]}
    states_final, lengths_final = play(InProcess(), np.random.default_rng([seed, 99]), FINAL_EPISODES, relabelling)
    row["final"] = stats(predict(states_final),
                         np.concatenate([value_check.discounted(n, args.gamma) for n in lengths_final]))
    for k in WINDOWS:
        episodes = server.episode_states[-k:]
        returns = np.concatenate([value_check.discounted(len(e), args.gamma) for e in episodes])
        row[f"train_{k}"] = stats(predict(np.concatenate(episodes)), returns)
    if ARRAYS:  # every training state and what the value network says of it, for metrics thought of later
        states = np.concatenate(server.episode_states)
        np.savez_compressed(Path(ARRAYS) / f"{variant}_{seed}.npz", states=states, predictions=predict(states),
                            lengths=np.array(server.episode_lengths), gamma=args.gamma,
                            final_states=states_final, final_predictions=predict(states_final),
                            final_lengths=np.array(lengths_final))
    return row


def table(rows: list[dict], threshold: float) -> str:
    """The markdown table of docs/reinforce_baseline.md: per variant, the check's figure (last 20 training episodes)
    and the old one (the grader's own final-policy episodes), and how many runs each threshold passes."""
    lines = ["| variant | correct | seeds | policy passed | last 20 training episodes: min / median / max | passes "
             f"<= {threshold:g} | final policy's episodes (before): min / median / max | passes <= {threshold:g} |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant]
        cells = []
        for key in ("train_20", "final"):
            x = np.array([r[key]["over_var"] for r in mine])
            cells += [f"{x.min():.2f} / {np.median(x):.2f} / {x.max():.2f}", f"{int((x <= threshold).sum())}"]
        lines.append(f"| {variant} | {'yes' if mine[0]['correct'] else 'no'} | {len(mine)} | "
                     f"{sum(r['passed'] for r in mine)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="2000-2009")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", default=None, help="append one JSON line per (variant, seed); resumes")
    parser.add_argument("--arrays", default="", help="a folder for one .npz of states and predictions per row")
    parser.add_argument("--episode-budget", type=int, default=None, help="instead of the grader's (a quick look)")
    parser.add_argument("--table", action="store_true", help="print the markdown table of --out's rows instead")
    args = parser.parse_args()
    if args.table:
        from graders import assignments

        threshold = assignments.grader("reinforce_baseline").defaults["thresholds"]["max_value_error_ratio"]
        rows = [json.loads(line) for line in Path(args.out).read_text().splitlines()]
        print(json.dumps({**provenance.stamp(args), "row_commits": provenance.commits(rows)}))
        print(table(rows, threshold))
        return 0
    global ARRAYS, BUDGET, ARGUMENTS
    ARRAYS, BUDGET, ARGUMENTS = args.arrays, args.episode_budget, vars(args)
    done = set()
    if args.out and Path(args.out).exists():
        done = {(r["variant"], r["seed"]) for r in map(json.loads, Path(args.out).read_text().splitlines())}
    jobs = [(v, s) for s in seed_list(args.seeds) for v in args.variants.split(",") if (v, s) not in done]
    if not jobs:
        return 0
    with ProcessPoolExecutor(args.jobs) as pool:
        for row in pool.map(run, *zip(*jobs)):
            line = json.dumps(row)
            print(json.dumps({k: row[k] for k in ("variant", "seed", "eval_mean")} | {
                w: round(row[w]["over_var"], 2) for w in ("final", "train_20", "train_100")}), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
