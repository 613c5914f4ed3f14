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
`--budgets 200,250,300` measures several budgets in one run per seed (forked at the point
where the runs part, see `run_seed`; `--check-forks` compares that with direct runs);
`--stop-after-failures K` stops a setting at its K-th failing seed.
Rows and summaries are stamped with the commit and settings; a summary names the commits
of its rows (`row_commits`: resumed rows may come from an earlier commit).
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
sys.path.insert(0, str(ROOT))

from bench import provenance  # noqa: E402


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


# With --budgets, the reference reads the budget from the environment at each use instead of
# once: the same value in a run of one budget, so the same run (see run_seed's fork).
DYNAMIC_BUDGET = [("    while seen < budget:", "    while seen < envs.episode_budget:"),
                  ("min(args.episodes_per_update, budget - seen)", "min(args.episodes_per_update, envs.episode_budget - seen)")]


def run_seed(assignment: str, source: str, seed: int, budget: int | None = None, forks: tuple = ()) -> dict | list:
    """One seed: train in process on the grader's server, evaluate as the grader does.

    With `forks` (budgets below `budget`), one run measures every budget: runs with budgets
    b < B are identical, step for step, until an episode ends while b episodes have started
    (the b-run retires that environment, the B-run resets it); before that, every
    sub-environment is live, at most `started - num_envs` episodes have finished, so with
    num_envs >= episodes_per_update the reference asks for the same batches. So at the
    first step after which `started` could pass b (started + num_envs > b) the process
    forks; the child lowers the server's and the environment's budget to b and finishes
    as a b-run (its row: that budget; CPU s = before the fork + the child's own), while
    the parent waits for it and goes on. `--check-forks` compares with direct runs.
    """
    import os
    import tempfile

    import torch

    from graders import assignments
    from graders.rl.evaluation import evaluate
    from graders.rl.server import CartPoleServer
    from graders_worker.rl.served_env import ServedVectorEnv

    torch.set_num_threads(1)
    defaults = assignments.grader(assignment).defaults
    server = CartPoleServer(seed, episode_budget=budget or defaults.get("episode_budget"))
    callbacks = server.callbacks()

    def in_process(name, *args):
        return callbacks[name](*args)
    module = types.ModuleType("reference")
    sys.modules["reference"] = module  # dataclasses look their module up
    if forks:
        for old, new in DYNAMIC_BUDGET:
            if source.count(old) != 1:
                raise SystemExit(f"--budgets needs the reference to read its budget as the reference does: {old!r}")
            source = source.replace(old, new)
    exec(compile(source, "reference.py", "exec"), module.__dict__)
    envs_made, pending, forked_rows, child = [], sorted(forks), [], {}
    real_step = callbacks["env_step"]

    def make_envs(n):
        envs_made.append(ServedVectorEnv(n, callback=in_process, call_array=lambda name, array: callbacks[name](array)))
        return envs_made[-1]

    def step(actions):
        while pending and server.started + len(actions) > pending[0]:
            lower = pending.pop(0)
            handle, path = tempfile.mkstemp(suffix=".json")
            os.close(handle)
            cpu_before = time.process_time() - start
            pid = os.fork()
            if pid == 0:  # the child: a run of the lower budget from here on
                server.episode_budget = envs_made[0].episode_budget = lower
                pending.clear()
                child.update(out=path, cpu_before=cpu_before)
                break
            _, status = os.waitpid(pid, 0)
            text = Path(path).read_text()
            os.unlink(path)
            if status != 0 or not text:
                raise RuntimeError(f"seed {seed}: the run forked for budget {lower} failed (status {status})")
            forked_rows.append(json.loads(text))
        return real_step(actions)

    callbacks["env_step"] = step
    try:
        start = time.process_time()
        # No time limit: the bench measures learning, and a loaded or suspended machine must not end a
        # run early (rows of runs cut short by the old 600 s wall-clock limit were dropped); each row's
        # cpu_s is compared with the grader's time limit instead.
        policy = module.train(make_envs, seed=seed, time_budget_s=float("inf"))
        if isinstance(policy, tuple):  # reinforce_baseline: (policy, value_net)
            policy = policy[0]
        cpu = time.process_time() - start if not child else child["cpu_before"] + time.process_time()

        class InProcess:  # evaluate() asks a worker for actions; here the reference answers directly
            def __init__(self, act):
                self.act = act

            def call(self, name, observations, timeout=None):
                with torch.no_grad():
                    return np.asarray(self.act(policy, observations))

        def sampled(policy, observations):  # the policy's own distribution instead of act()'s choice
            return module.sample_actions(policy, torch.as_tensor(observations, dtype=torch.float32)).numpy()

        threshold = defaults["thresholds"]["mean_return"]
        mean = float(np.mean(evaluate(InProcess(module.act), seed, int(defaults["eval_episodes"]))))
        # the same policy evaluated by sampling its actions (after act's evaluation: its numbers are unchanged)
        mean_sampled = float(np.mean(evaluate(InProcess(sampled), seed, int(defaults["eval_episodes"]))))
        row = {"seed": seed, "passed": mean >= threshold, "eval_mean": mean,
               "passed_sampled": mean_sampled >= threshold, "eval_mean_sampled": mean_sampled,
               "cpu_s": cpu, "steps": server.steps, "episodes": len(server.episode_returns),
               "episodes_started": server.started, "episode_budget": server.episode_budget,
               "last20_train_mean": float(np.mean(server.episode_returns[-20:])),
               "episode_returns": [int(r) for r in server.episode_returns]}
        if child:
            row["forked"] = True
            Path(child["out"]).write_text(json.dumps(row))
    finally:
        if child:  # never return into the caller (a pool worker) from a forked child; no row if it failed
            os._exit(0)
    return [*forked_rows, row] if forks else row


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
    parser.add_argument("--budgets", default=None,
                        help="comma list: one run per seed at the largest, forked for the others (see run_seed)")
    parser.add_argument("--check-forks", action="store_true",
                        help="with --budgets: also run every budget directly and compare (nothing is written)")
    parser.add_argument("--stop-after-failures", type=int, default=None,
                        help="stop once this many seeds have failed (a setting that cannot reach a target)")
    parser.add_argument("--label", default="", help="a name for this setting in --out and --rows")
    parser.add_argument("--out", default=None, help="append one JSON summary line per budget here")
    parser.add_argument("--rows", default=None, help="append one JSON line per seed (and budget) here (resumable)")
    args = parser.parse_args()
    source = patched_source(args.assignment, args.set, args.patch, args.idea)
    seeds = seed_list(args.seeds)
    from graders import assignments

    default = assignments.grader(args.assignment).defaults.get("episode_budget")
    budgets = sorted(int(b) for b in args.budgets.split(",")) if args.budgets else [args.episode_budget or default]
    setting = {"assignment": args.assignment, "label": args.label, "idea": args.idea, "set": args.set,
               "patch": args.patch}
    stamp = provenance.stamp({**vars(args), "budgets": budgets})
    if args.check_forks:
        check_forks(args.assignment, source, seeds, budgets)
        return
    rows = {b: [] for b in budgets}
    if args.rows and Path(args.rows).exists():
        for line in Path(args.rows).read_text().splitlines():
            row = json.loads(line) if line.strip() else {}
            if (row and all(row.get(k) == v for k, v in setting.items()) and row["seed"] in seeds
                    and row.get("episode_budget") in rows):
                rows[row["episode_budget"]].append(row)
    done = set.intersection(*({r["seed"] for r in rows[b]} for b in budgets))
    todo = [s for s in seeds if s not in done]
    n, forks = len(todo), tuple(budgets[:-1])
    failures = sum(not r["passed"] for r in rows[budgets[0]])
    with ProcessPoolExecutor(args.jobs) as pool:
        for result in pool.map(run_seed, [args.assignment] * n, [source] * n, todo, [budgets[-1]] * n, [forks] * n):
            for row in result if forks else [result]:
                row = {**stamp, **setting, **row}
                if row["seed"] in {r["seed"] for r in rows[row["episode_budget"]]}:
                    continue  # a resumed seed that had some of its budgets already
                rows[row["episode_budget"]].append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "episode_returns"}), flush=True)
                if args.rows:
                    with open(args.rows, "a") as f:
                        f.write(json.dumps(row) + "\n")
            failures += not (result[0] if forks else result)["passed"]
            if args.stop_after_failures and failures >= args.stop_after_failures:
                print(f"stopped: {failures} failures", flush=True)
                pool.shutdown(cancel_futures=True)
                break
    for b in budgets:
        ran = sorted(rows[b], key=lambda r: r["seed"])
        summary = {**stamp, **setting, "episode_budget": b, "seeds": args.seeds, "row_commits": provenance.commits(ran),
                   **summarize(ran)}
        if len(ran) < len(seeds):
            summary["stopped_early"] = f"{len(ran)} of {len(seeds)} seeds run"
        print(json.dumps(summary))
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(summary) + "\n")


def check_forks(assignment: str, source: str, seeds: list[int], budgets: list[int]) -> None:
    """The forked runs against direct runs of each budget: every number but the CPU time must agree."""
    for seed in seeds:
        forked = run_seed(assignment, source, seed, budgets[-1], tuple(budgets[:-1]))
        for row in forked:
            direct = run_seed(assignment, source, seed, row["episode_budget"])
            same = all(row[k] == direct[k] for k in direct if k != "cpu_s")
            print(json.dumps({"seed": seed, "episode_budget": row["episode_budget"], "identical": same,
                              "eval_mean": [row["eval_mean"], direct["eval_mean"]],
                              "cpu_s": [round(row["cpu_s"], 2), round(direct["cpu_s"], 2)]}), flush=True)
            if not same:
                raise SystemExit(f"seed {seed}, budget {row['episode_budget']}: the forked run differs")


if __name__ == "__main__":
    main()
