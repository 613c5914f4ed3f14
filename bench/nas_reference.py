"""The NAS reference's outcome distribution over many seeds, next to random search and a non-learner.

Two modes:

- `--graded`: the grader's own search check (`graders.nas.grader._search`) per seed, in
  a grading worker running the reference, with the served search, the relabelling
  and the budget of a real grading; the figures that set the thresholds.
- default (in-process): the reference's `train` called directly on the grader's
  `SearchServer` (no worker), much faster; for sweeping hyperparameters
  (`--set learning_rate=0.03 batch_size=8`) and the budget (`--budget`).

Either way, for every seed the same relabelling and budget also feed random search
(uniform architectures; its answer is the best it evaluated) and a controller that
does not learn (its greedy architecture is a uniformly random one). One JSON line per
(seed, searcher): the rank and reward of the answer, the mean reward of the second
half of the evaluations, distinct architectures evaluated, seconds; each stamped with the
commit and the settings (the arguments, the Args overrides and the budget in effect).
`--summarize` names the commits of the rows it summarises.

    PYTHONPATH=. nice -n 15 .venv/bin/python bench/nas_reference.py --graded --seeds 0-299 \
        --out bench/results/nas_reference.jsonl
    PYTHONPATH=. .venv/bin/python bench/nas_reference.py --summarize bench/results/nas_reference.jsonl \
        --figure docs/nas_reference.png
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import provenance  # noqa: E402


def parse_seeds(text: str) -> list[int]:
    seeds = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds += list(range(int(low), int(high or low) + 1))
    return seeds


@functools.lru_cache(maxsize=1)
def load_solution():
    spec = importlib.util.spec_from_file_location("nas_solution", ROOT / "solutions" / "nas" / "nas.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["nas_solution"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def context(seed: int, budget: int | None):
    from graders.contract import Context
    from graders.nas import grader

    settings = {**grader.DEFAULTS, "seeds": [seed], "threads": 1, "checks": {}}
    settings["thresholds"] = dict(grader.DEFAULTS["thresholds"])
    if budget is not None:
        settings["evaluation_budget"] = budget
    return Context("nas", "cpu", settings)


def server_for(ctx):
    from graders.nas import table
    from graders.nas.search import SearchServer, draw_permutations

    return SearchServer(table.load(), draw_permutations(ctx.rng("relabelling", 0)), int(ctx.option("evaluation_budget")),
                        ctx.option("target_flops"), ctx.option("alpha"), ctx.option("beta"))


def record(server, row: int, searcher: str, seed: int, seconds: float, **extra) -> dict:
    rewards = server.rewards
    late = float(rewards[len(rewards) // 2:].mean()) if len(rewards) >= 2 else float("nan")
    return {"seed": seed, "searcher": searcher, "rank": int(server.space_ranks[row]),
            "reward": float(server.space_rewards[row]), "late_mean": late, "evaluations": len(rewards),
            "distinct": len(set(server.proposals)), "seconds": round(seconds, 3), **extra}


def baselines(seed: int, budget: int | None) -> list[dict]:
    """Random search and a non-learning controller on the seed's relabelled space."""
    from graders.nas import space

    ctx = context(seed, budget)
    server = server_for(ctx)
    server.open()
    rng = np.random.default_rng([seed, 7])
    tokens = np.stack([rng.integers(0, k, server.budget) for k in space.CHOICES], axis=1)
    for start in range(0, len(tokens), 256):  # batches within the server's MAX_BATCH
        server.evaluate(tokens[start:start + 256])
    best = server.proposals[int(np.argmax(server.rewards))]
    random_search = record(server, best, "random_search", seed, 0.0)
    non_learner = record(server, int(rng.integers(space.SIZE)), "no_learning", seed, 0.0)
    return [random_search, non_learner]


class InProcessSearch:
    """What the adapter's ServedSearchSpace gives train(), without a worker in between."""

    def __init__(self, server):
        self.server = server
        info = server.open()
        self.choices = tuple(info["choices"])
        self.budget = self.remaining = info["budget"]
        self.target_flops, self.alpha, self.beta = info["target_flops"], info["alpha"], info["beta"]

    def evaluate(self, tokens):
        reply = self.server.evaluate(np.asarray(tokens, dtype=np.int64))
        self.remaining = reply["remaining"]
        return reply["accuracy"], reply["flops"].astype(np.float64)


def run_in_process(seed: int, budget: int | None, overrides: dict) -> dict:
    import torch

    solution = load_solution()
    ctx = context(seed, budget)
    server = server_for(ctx)
    args = solution.Args(**overrides)
    start = time.perf_counter()
    controller = solution.train(InProcessSearch(server), seed=ctx.worker_seed("train"), time_budget_s=60.0,
                                args=args)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        row = server.decode(solution.greedy_architecture(controller).tolist())
    return record(server, row, "reference", seed, seconds, args=overrides)


def run_graded(seed: int, budget: int | None, worker) -> dict:
    from graders.checks import CheckFailed
    from graders.contract import CheckWorker
    from graders.nas import grader
    from graders.nas import search as search_module
    from graders.sandbox import WorkerError

    ctx = context(seed, budget)
    ctx.deadline = time.monotonic() + grader.SEARCH_TIMEOUT["cpu"]
    servers = []
    original = search_module.SearchServer

    class Recording(original):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            servers.append(self)

    grader.SearchServer = Recording
    start = time.perf_counter()
    try:
        grader._search(CheckWorker(worker, ctx), ctx, 0)
        passed, message = True, ""
    except CheckFailed as exc:
        passed, message = False, str(exc).splitlines()[0]
    except WorkerError as exc:  # what the runner records as the check's timeout or error: a failed grading here
        passed, message = False, f"{type(exc).__name__}: {exc}"
    finally:
        grader.SearchServer = original
    seconds = time.perf_counter() - start
    server = servers[0]
    if server.answer is None:  # no answer: the rank of the worst architecture, so that the row counts as failed
        server.answer = int(np.argmin(server.space_rewards))
    out = record(server, server.answer, "reference", seed, seconds, passed=passed)
    if message:
        out["message"] = message
    return out


def summarize(path: Path, figure: Path | None, stamp: dict) -> None:
    from graders.nas import grader, space

    rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    top = grader.DEFAULTS["thresholds"]["top_fraction"]
    print(json.dumps({**stamp, "row_commits": provenance.commits(rows)}))
    print(f"{path}: {len(rows)} lines; current top_fraction {top}")
    by = {}
    for r in rows:
        by.setdefault(r["searcher"], []).append(r)
    for name, rs in by.items():
        rank = np.array([r["rank"] for r in rs])
        late = np.array([r["late_mean"] for r in rs])
        reward = np.array([r["reward"] for r in rs])
        print(f"{name:14} n={len(rs):4} rank median {np.median(rank):6.1f} p90 {np.quantile(rank, .9):6.1f} "
              f"p99 {np.quantile(rank, .99):6.1f} max {rank.max():5}  in top {top:.0%}: "
              f"{np.mean(rank <= top * space.SIZE):.3f}  reward mean {reward.mean():.4f}  "
              f"late mean median {np.median(late):.4f} min {late.min():.4f}"
              + (f"  seconds median {np.median([r['seconds'] for r in rs]):.2f}" if name == "reference" else ""))
    if figure is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        bins = np.unique(np.round(np.logspace(0, np.log10(space.SIZE), 40)))
        for name, rs in by.items():
            axes[0].hist([r["rank"] for r in rs], bins=bins, histtype="step", lw=2, label=name)
            axes[1].hist([r["late_mean"] for r in rs], bins=40, histtype="step", lw=2, label=name)
        axes[0].axvline(top * space.SIZE, color="k", ls="--", lw=1, label=f"top {top:.0%}")
        axes[0].set(xscale="log", xlabel="rank of the answer (1 = best of 1728)", ylabel="seeds")
        axes[1].set(xlabel="mean reward of the second half of the evaluations", ylabel="seeds")
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(figure, dpi=90)
        print(f"wrote {figure}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0-49")
    parser.add_argument("--budget", type=int, default=None)
    parser.add_argument("--set", nargs="*", default=[], help="Args overrides, name=value (in-process mode)")
    parser.add_argument("--graded", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--summarize", type=Path, default=None)
    parser.add_argument("--figure", type=Path, default=None)
    args = parser.parse_args()
    if args.summarize:
        summarize(args.summarize, args.figure, provenance.stamp(args))
        return
    import torch

    torch.set_num_threads(1)
    overrides = {k: (float(v) if "." in v or "e" in v else int(v)) for k, v in (s.split("=") for s in args.set)}
    from graders.nas import grader

    budget = args.budget if args.budget is not None else grader.DEFAULTS["evaluation_budget"]
    stamp = provenance.stamp({**vars(args), "set": overrides, "evaluation_budget": budget, "threads": 1})
    out = args.out.open("a") if args.out else None
    worker = None
    from graders.sandbox import Worker

    if args.graded:
        worker = Worker("nas", (ROOT / "solutions" / "nas" / "nas.py").read_text(), threads=1).__enter__()
    try:
        for seed in parse_seeds(args.seeds):
            lines = [run_graded(seed, args.budget, worker) if args.graded else run_in_process(seed, args.budget,
                                                                                             overrides)]
            lines += baselines(seed, args.budget)
            for i, line in enumerate(lines):
                if args.budget is not None:
                    line["budget"] = args.budget
                lines[i] = line = {**stamp, **line}
                text = json.dumps(line)
                if out:
                    out.write(text + "\n")
                    out.flush()
            print(json.dumps(lines[0]), flush=True)
            if args.graded and lines[0].get("message", "").startswith(("Worker", "Student")):
                worker.__exit__(None, None, None)  # a stopped worker: the next seed gets a fresh one, as a grading would
                worker = Worker("nas", (ROOT / "solutions" / "nas" / "nas.py").read_text(), threads=1).__enter__()
    finally:
        if worker is not None:
            worker.__exit__(None, None, None)
        if out:
            out.close()


if __name__ == "__main__":
    main()
