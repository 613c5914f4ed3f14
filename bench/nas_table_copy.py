"""What a submission that carries its own copy of the public NAS table can do against the served search.

The attack (docs/nas.md, "What the checks certify"): evaluate a few probe architectures,
find each answer's row in the copy by its (accuracy, FLOPs), which tells what the probe's
tokens mean under this search's relabelling; once every decision is decoded, propose the
copy's best architecture for the rest of the budget and answer it. Run in-process on the
grader's own `SearchServer`, with the relabelling of each seed as a grading draws it, and
judged with the search check's two criteria at the default thresholds. One JSON line per
seed: the probes spent, whether the relabelling was decoded, the answer's rank, the
second half's mean reward and whether both criteria pass, stamped with the commit and settings.
The grader's search check then withholds the points with a FLAG unless the submission's
sampler, log-probability and loss pass their own checks (graders/nas/grader.py
SEARCH_PIECES; tests/test_nas.py runs this attack as a submission).

    PYTHONPATH=. .venv/bin/python bench/nas_table_copy.py --seeds 0-999 --out bench/results/nas_table_copy.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from nas_reference import context, parse_seeds, server_for  # bench/ is on sys.path when run as a script

from bench import provenance  # nas_reference put the repository on sys.path


def probes(choices) -> list[list[int]]:
    """Token sequences that together use every token of every decision: all 0, all 1, then 2 where allowed."""
    top = max(choices)
    return [[min(t, k - 1) for k in choices] for t in range(top)]


def attack(seed: int) -> dict:
    from graders.nas import grader, space, table

    copy = table.load()  # the public table, as the student kit ships it
    ctx = context(seed, None)
    server = server_for(ctx)
    server.open()
    meaning: list[dict[int, int]] = [{} for _ in space.CHOICES]  # token -> choice, per decision
    spent = 0
    for tokens in probes(space.CHOICES):
        reply = server.evaluate(np.array([tokens], dtype=np.int64))
        spent += 1
        rows = np.flatnonzero((copy.accuracy == reply["accuracy"][0]) & (copy.flops == reply["flops"][0]))
        if len(rows) != 1:
            continue  # ambiguous in the copy: this probe decodes nothing
        for d, choice in enumerate(space.tokens_of(int(rows[0]))):
            meaning[d][tokens[d]] = choice
    for d, k in enumerate(space.CHOICES):  # one missing token of a decision is the choice left over
        if len(meaning[d]) == k - 1:
            meaning[d][next(t for t in range(k) if t not in meaning[d])] = next(
                c for c in range(k) if c not in meaning[d].values())
    decoded = all(len(m) == k for m, k in zip(meaning, space.CHOICES))
    d = grader.DEFAULTS
    rewards = copy.rewards(d["target_flops"], d["alpha"], d["beta"])
    best = space.tokens_of(int(np.argmax(rewards)))
    inverse = [{c: t for t, c in m.items()} for m in meaning]
    answer = [inv.get(c, 0) for inv, c in zip(inverse, best)]
    server.evaluate(np.array([answer] * (server.budget - spent), dtype=np.int64))
    row = server.decode(answer)
    late = float(server.rewards[len(server.rewards) // 2:].mean())
    top_rank = int(np.floor(d["thresholds"]["top_fraction"] * space.SIZE))
    late_threshold = float(np.quantile(server.space_rewards, d["thresholds"]["late_mean_quantile"]))
    rank = int(server.space_ranks[row])
    return {"seed": seed, "probes": spent, "decoded": decoded, "rank": rank, "late_mean": late,
            "passes": bool(rank <= top_rank and late >= late_threshold)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0-99")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from graders.nas import grader

    stamp = provenance.stamp({**vars(args), "thresholds": grader.DEFAULTS["thresholds"]})
    rows = [{**stamp, **attack(seed)} for seed in parse_seeds(args.seeds)]
    if args.out:
        with args.out.open("a") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    from graders.nas import table

    copy = table.load()
    _, counts = np.unique(np.stack([copy.accuracy, copy.flops], axis=1), axis=0, return_counts=True)
    print(json.dumps({**stamp, "seeds": len(rows), "decoded": sum(r["decoded"] for r in rows),
                      "passes": sum(r["passes"] for r in rows), "probes_max": max(r["probes"] for r in rows),
                      "rows_singled_out_by_accuracy_and_flops": int(np.sum(counts == 1))}))


if __name__ == "__main__":
    main()
