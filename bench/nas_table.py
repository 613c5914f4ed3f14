"""Measure the validation accuracy of every architecture of the NAS space: the grader's table.

Each architecture of `graders.nas.space` is trained once per seed with the protocol
of `graders.nas.measure` (one CPU thread, deterministic), in a fixed shuffled order
so that a partial run is a uniform sample of the space. One JSON line per
(architecture, seed), stamped with the commit and settings, goes to --runs; architectures
already there are skipped, so an interrupted run resumes (`--index`: measure only these).
`--write` turns complete runs into graders/nas/table.json (its protocol names the commits
of the runs) and prints the sha256 that graders/nas/table.py checks.

    PYTHONPATH=. nohup nice -n 15 .venv/bin/python bench/nas_table.py --seeds 0 \
        --runs bench/results/nas_table_runs.jsonl > /tmp/nas_table.log 2>&1 &
    PYTHONPATH=. .venv/bin/python bench/nas_table.py --seeds 0 --runs bench/results/nas_table_runs.jsonl --write
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import provenance  # noqa: E402

ORDER_SEED = 1


def done(path: Path) -> set[tuple[int, int]]:
    if not path.exists():
        return set()
    return {(r["index"], r["seed"]) for r in map(json.loads, path.read_text().splitlines()) if r}


def measure_all(seeds: list[int], runs: Path, limit: int | None, indices: list[int] | None = None) -> None:
    import torch

    from graders.nas import measure, space

    torch.set_num_threads(1)
    measure.data()
    seen = done(runs)
    order = np.random.default_rng(ORDER_SEED).permutation(space.SIZE) if indices is None else indices
    stamp = provenance.stamp({"seeds": seeds, "runs": runs, "limit": limit, "index": indices, "order_seed": ORDER_SEED,
                              "dataset": measure.DATASET, "split_seed": measure.SPLIT_SEED,
                              "train_images": measure.TRAIN_IMAGES, "validation_images": measure.VALIDATION_IMAGES,
                              "epochs": measure.EPOCHS, "batch": measure.BATCH, "learning_rate": measure.LEARNING_RATE,
                              "threads": 1})
    count = 0
    with runs.open("a") as out:
        for seed in seeds:
            for index in order:
                if (int(index), seed) in seen:
                    continue
                tokens = space.tokens_of(index)
                start = time.perf_counter()
                accuracy = measure.accuracy(tokens, seed)
                record = {**stamp, "index": int(index), "tokens": list(tokens), "seed": seed, "accuracy": accuracy,
                          "seconds": round(time.perf_counter() - start, 3)}
                out.write(json.dumps(record) + "\n")
                out.flush()
                count += 1
                if limit is not None and count >= limit:
                    return


def write_table(seeds: list[int], runs: Path, table: Path) -> None:
    import torch

    from graders.nas import measure, space

    records = [json.loads(line) for line in runs.read_text().splitlines() if line]
    used = [r for r in records if r["seed"] in seeds]
    accuracy = np.full((space.SIZE, len(seeds)), np.nan)
    seconds = np.zeros(space.SIZE)
    for r in records:
        if r["seed"] in seeds:
            accuracy[r["index"], seeds.index(r["seed"])] = r["accuracy"]
            seconds[r["index"]] += r["seconds"]
    missing = int(np.isnan(accuracy).any(axis=1).sum())
    if missing:
        raise SystemExit(f"{missing} architectures lack a measurement for seeds {seeds}; run without --write first")
    content = {
        "comment": "Validation accuracy of every architecture of graders/nas/space.py, measured by bench/nas_table.py "
                   "with the protocol of graders/nas/measure.py; row i is space.tokens_of(i). See docs/nas.md.",
        "protocol": {"dataset": measure.DATASET, "split_seed": measure.SPLIT_SEED, "train_images": measure.TRAIN_IMAGES,
                     "validation_images": measure.VALIDATION_IMAGES, "epochs": measure.EPOCHS, "batch": measure.BATCH,
                     "learning_rate": measure.LEARNING_RATE, "seeds": seeds, "torch": torch.__version__,
                     "machine": platform.machine(), "cpu_seconds_total": round(float(seconds.sum())),
                     "row_commits": provenance.commits(used)},
        "choices": list(space.CHOICES),
        "accuracy": [[round(a, 5) for a in row] for row in accuracy.tolist()],
    }
    text = json.dumps(content, indent=None, separators=(",", ":")) + "\n"
    table.write_text(text)
    print(f"wrote {table}: {space.SIZE} architectures x {len(seeds)} seeds, "
          f"{seconds.sum() / 3600:.2f} h of training; sha256 {hashlib.sha256(text.encode()).hexdigest()}")


def figure(path: Path) -> None:
    """Accuracy against FLOPs of every architecture, the reward's top 5% under the default settings marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from graders.nas import grader, table

    t = table.load()
    d = grader.DEFAULTS
    rewards = t.rewards(d["target_flops"], d["alpha"], d["beta"])
    top = table.ranks(rewards) <= d["thresholds"]["top_fraction"] * len(rewards)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter(t.flops[~top], t.accuracy[~top], s=4, c="C7", alpha=0.5, label="architecture")
    ax.scatter(t.flops[top], t.accuracy[top], s=6, c="C3",
               label=f"top {d['thresholds']['top_fraction']:.0%} by reward (T = {d['target_flops'] / 1000:g}k)")
    ax.axvline(d["target_flops"], color="k", ls="--", lw=1)
    ax.set(xscale="log", xlabel="FLOPs (multiply-adds per image)", ylabel="validation accuracy",
           title=f"The NAS table: {len(rewards)} architectures")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "bench" / "results" / "nas_table_runs.jsonl")
    parser.add_argument("--limit", type=int, default=None, help="stop after this many new measurements")
    parser.add_argument("--index", type=int, nargs="+", default=None, help="measure only these architectures")
    parser.add_argument("--write", action="store_true", help="write graders/nas/table.json from the runs")
    parser.add_argument("--table", type=Path, default=ROOT / "graders" / "nas" / "table.json")
    parser.add_argument("--figure", type=Path, default=None, help="plot the shipped table (docs/nas_table.png)")
    args = parser.parse_args()
    if args.figure:
        figure(args.figure)
    elif args.write:
        write_table(args.seeds, args.runs, args.table)
    else:
        measure_all(args.seeds, args.runs, args.limit, args.index)


if __name__ == "__main__":
    main()
