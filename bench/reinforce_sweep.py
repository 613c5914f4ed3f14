"""Quick hyperparameter sweeps of a REINFORCE reference, in process, over many seeds.

The reference's `train()` runs on the grader's own served environment (`CartPoleServer`,
the assignment's episode budget, same-step autoreset) but without a worker process: the
`ServedVectorEnv` callbacks go straight to the server. Then the grader's `evaluate` plays
the assignment's evaluation episodes with the reference's `act`. Same semantics and
numbers as grading, without the per-step round trip, so a sweep of many seeds is cheap;
the chosen setting is then confirmed through the grader's path by
bench/reinforce_reference.py.

    PYTHONPATH=. .venv/bin/python bench/reinforce_sweep.py reinforce_baseline --seeds 0-39 \
        --set policy_learning_rate=0.02 --set num_envs=4 --jobs 2 --out bench/results/sweep.jsonl

`--set name=value` overrides a field of the reference's `Args` (its default line in the
source); `--patch OLD=>NEW` replaces other text of the source (each must occur once);
`--idea NAME` applies a named set of patches from bench/reinforce_baseline_ideas.py first.
`--rows FILE` appends one JSON line per seed as it finishes (pass/fail, evaluation mean,
CPU s, steps and the grader-recorded return of every training episode,
`server.episode_returns`); seeds already there under the same label and budget are
skipped, so an interrupted run resumes, and the summary covers all of them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import types
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def patched_source(assignment: str, settings: list[str], patches: list[str], idea: str | None = None) -> str:
    from graders import assignments

    source = assignments.solution_path(assignment).read_text()
    if idea:
        sys.path.insert(0, str(ROOT / "bench"))
        from reinforce_baseline_ideas import apply_idea

        source = apply_idea(source, idea)
    for setting in settings:
        name, value = setting.split("=", 1)
        pattern = re.compile(rf"^(    {name}: \w+ = ).*$", re.M)
        if len(pattern.findall(source)) != 1:
            raise SystemExit(f"--set {name}: no single Args field of that name")
        source = pattern.sub(lambda m, value=value: m.group(1) + value, source)
    for patch in patches:
        old, new = patch.split("=>", 1)
        old, new = old.encode().decode("unicode_escape"), new.encode().decode("unicode_escape")
        if source.count(old) != 1:
            raise SystemExit(f"--patch: {old!r} occurs {source.count(old)} times")
        source = source.replace(old, new)
    return source


def run_seed(assignment: str, source: str, seed: int, budget: int | None = None) -> dict:
    import torch

    import graders.worker
    from graders import assignments
    from graders.cartpole import CartPoleServer, ServedVectorEnv, evaluate

    torch.set_num_threads(1)
    defaults = assignments.grader_module(assignment).DEFAULTS
    server = CartPoleServer(seed, episode_budget=budget or defaults.get("episode_budget"))
    callbacks = server.callbacks()
    graders.worker.callback = lambda name, *args: callbacks[name](*args)
    module = types.ModuleType("reference")
    sys.modules["reference"] = module  # dataclasses look their module up
    exec(compile(source, "reference.py", "exec"), module.__dict__)
    start = time.process_time()
    policy = module.train(lambda n: ServedVectorEnv(n), seed=seed, time_budget_s=600)
    cpu = time.process_time() - start

    class InProcess:  # evaluate() asks a worker for actions; here the reference answers directly
        @staticmethod
        def call(name, observations, timeout=None):
            with torch.no_grad():
                return np.asarray(module.act(policy, observations))

    returns = evaluate(InProcess(), seed, int(defaults["eval_episodes"]))
    mean = float(np.mean(returns))
    return {"seed": seed, "passed": mean >= defaults["thresholds"]["mean_return"], "eval_mean": mean,
            "cpu_s": cpu, "steps": server.steps, "episodes": len(server.episode_returns),
            "episodes_started": server.started, "episode_budget": server.episode_budget,
            "last20_train_mean": float(np.mean(server.episode_returns[-20:])),
            "episode_returns": [int(r) for r in server.episode_returns]}


def seed_list(text: str) -> list[int]:
    """'a-b' (inclusive) or a comma list."""
    if "-" in text:
        first, last = map(int, text.split("-"))
        return list(range(first, last + 1))
    return [int(s) for s in text.split(",")]


def summarize(rows: list[dict]) -> dict:
    passed = [r for r in rows if r["passed"]]
    return {
        "pass_rate": len(passed) / len(rows), "n": len(rows),
        "failed_seeds": [r["seed"] for r in rows if not r["passed"]],
        "eval_means_of_failures": [round(r["eval_mean"]) for r in rows if not r["passed"]],
        "median_cpu_s": float(np.median([r["cpu_s"] for r in rows])),
        "median_steps": float(np.median([r["steps"] for r in rows])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assignment", choices=["reinforce", "reinforce_baseline"])
    parser.add_argument("--seeds", default="0-39", help="a range a-b (inclusive) or a comma list")
    parser.add_argument("--set", action="append", default=[], help="Args field override, name=value")
    parser.add_argument("--patch", action="append", default=[], help="source replacement OLD=>NEW")
    parser.add_argument("--idea", default=None, help="a named patch set of bench/reinforce_baseline_ideas.py")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--episode-budget", type=int, default=None, help="instead of the grader's default")
    parser.add_argument("--label", default="", help="a name for this setting in --out and --rows")
    parser.add_argument("--out", default=None, help="append one JSON summary line here")
    parser.add_argument("--rows", default=None, help="append one JSON line per seed here (resumable)")
    args = parser.parse_args()
    source = patched_source(args.assignment, args.set, args.patch, args.idea)
    seeds = seed_list(args.seeds)
    from graders import assignments

    budget = args.episode_budget or assignments.grader_module(args.assignment).DEFAULTS.get("episode_budget")
    setting = {"assignment": args.assignment, "label": args.label, "idea": args.idea, "set": args.set,
               "patch": args.patch, "episode_budget": budget}
    rows = []
    if args.rows and Path(args.rows).exists():
        for line in Path(args.rows).read_text().splitlines():
            row = json.loads(line) if line.strip() else {}
            if row and all(row.get(k) == v for k, v in setting.items()) and row["seed"] in seeds:
                rows.append(row)
    todo = [s for s in seeds if s not in {r["seed"] for r in rows}]
    n = len(todo)
    with ProcessPoolExecutor(args.jobs) as pool:
        for row in pool.map(run_seed, [args.assignment] * n, [source] * n, todo, [args.episode_budget] * n):
            row = {**setting, **row}
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "episode_returns"}), flush=True)
            if args.rows:
                with open(args.rows, "a") as f:
                    f.write(json.dumps(row) + "\n")
    rows.sort(key=lambda r: r["seed"])
    summary = {**setting, "seeds": args.seeds, **summarize(rows)}
    print(json.dumps(summary))
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
