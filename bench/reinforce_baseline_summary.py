"""Pass rates per seed and per grading from bench/reinforce_sweep.py's per-seed rows.

A grading trains on two seeds and gives full training marks only when both pass. Two
estimates of the per-grading pass rate: consecutive seeds as the two seeds of one
grading (1000+1001, 1002+1003, ...: n/2 gradings), and p_seed^2 (the seeds are
independent). With --ideas, a table of every setting (label) in the rows, and with
--write, the summary of one setting and budget as the reference's record, stamped with the
commit and settings of this summary and naming the commits of its rows (`row_commits`; the
tables start with them, as one JSON line).

    PYTHONPATH=. .venv/bin/python bench/reinforce_baseline_summary.py \\
        bench/results/reinforce_baseline_confirmation.jsonl --label reference --budget 300 \\
        --write bench/results/reinforce_baseline_reference_summary.json
    PYTHONPATH=. .venv/bin/python bench/reinforce_baseline_summary.py bench/results/reinforce_baseline_ideas.jsonl --ideas
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import provenance  # noqa: E402


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a binomial proportion k/n."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(rows: list[dict]) -> dict:
    rows = sorted(rows, key=lambda r: r["seed"])
    passed = {r["seed"]: bool(r["passed"]) for r in rows}
    seeds = sorted(passed)
    k, n = sum(passed.values()), len(seeds)
    pairs = [(s, s + 1) for s in seeds if s % 2 == seeds[0] % 2 and s + 1 in passed]
    pair_passes = sum(passed[a] and passed[b] for a, b in pairs)
    low, high = wilson(k, n)
    cpu = np.array([r["cpu_s"] for r in rows])
    steps = np.array([r["steps"] for r in rows])
    return {
        "seeds": n,
        "seed_range": f"{seeds[0]}-{seeds[-1]}",
        "episode_budget": rows[0]["episode_budget"],
        "pass_rate_per_seed": k / n,
        "pass_rate_per_seed_95ci": [low, high],
        "pass_rate_per_grading": pair_passes / len(pairs) if pairs else None,
        "gradings_as_seed_pairs": len(pairs),
        "failed_gradings": [list(p) for p in pairs if not (passed[p[0]] and passed[p[1]])],
        "pass_rate_per_grading_p_seed_squared": (k / n) ** 2,
        "pass_rate_per_grading_95ci_from_p_seed": [low**2, high**2],
        "failed_seeds": [r["seed"] for r in rows if not r["passed"]],
        "eval_means_of_failures": [round(r["eval_mean"], 1) for r in rows if not r["passed"]],
        "eval_mean": {"median": float(np.median([r["eval_mean"] for r in rows])),
                      "min": float(min(r["eval_mean"] for r in rows))},
        "train_cpu_s": {"median": float(np.median(cpu)), "p90": float(np.percentile(cpu, 90)), "max": float(cpu.max())},
        "steps": {"median": float(np.median(steps)), "p90": float(np.percentile(steps, 90)), "max": float(steps.max())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", help="JSONL of bench/reinforce_sweep.py --rows")
    parser.add_argument("--label", default=None)
    parser.add_argument("--budget", type=int, default=None)
    parser.add_argument("--seeds", default=None, help="a range a-b (inclusive) to keep")
    parser.add_argument("--ideas", action="store_true", help="a markdown table of every label and budget")
    parser.add_argument("--curve", action="store_true", help="a markdown table of every budget of --label")
    parser.add_argument("--write", default=None, help="write the summary of --label/--budget here (JSON)")
    parser.add_argument("--note", action="append", default=[], help="key=value added to the written summary")
    parser.add_argument("--sampled", action="store_true",
                        help="the evaluation that samples the policy's actions (rows with eval_mean_sampled)")
    args = parser.parse_args()
    rows = [json.loads(line) for line in Path(args.rows).read_text().splitlines() if line.strip()]
    if args.sampled:
        rows = [{**r, "passed": r["passed_sampled"], "eval_mean": r["eval_mean_sampled"]} for r in rows]
    if args.seeds:
        first, last = map(int, args.seeds.split("-"))
        rows = [r for r in rows if first <= r["seed"] <= last]
    if args.ideas or args.curve:
        groups: dict[tuple, list] = {}
        for r in rows:
            if args.label is None or r["label"] == args.label:
                groups.setdefault((r["label"], r["episode_budget"]), []).append(r)
        chosen = [r for group in groups.values() for r in group]
        print(json.dumps({**provenance.stamp(args), "row_commits": provenance.commits(chosen)}))
        print("| setting | budget | seeds | pass per seed | 95% interval | per grading (pairs / p^2) | failed seeds "
              "(eval mean) | median CPU s |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for (label, budget), group in groups.items():
            s = summarize(group)
            failed = ", ".join(f"{a} ({b:.0f})" for a, b in zip(s["failed_seeds"], s["eval_means_of_failures"]))
            grading = (f"{s['pass_rate_per_grading']:.1%} / {s['pass_rate_per_grading_p_seed_squared']:.1%}"
                       if s["pass_rate_per_grading"] is not None else "")
            print(f"| {label} | {budget} | {s['seed_range']} ({s['seeds']}) | {s['pass_rate_per_seed']:.1%} | "
                  f"{s['pass_rate_per_seed_95ci'][0]:.1%}-{s['pass_rate_per_seed_95ci'][1]:.1%} | {grading} | "
                  f"{failed or '-'} | {s['train_cpu_s']['median']:.1f} |")
        return
    chosen = [r for r in rows if (args.label is None or r["label"] == args.label)
              and (args.budget is None or r["episode_budget"] == args.budget)]
    if len({(r["label"], r["episode_budget"]) for r in chosen}) != 1:
        raise SystemExit("the rows hold several settings or budgets: choose one with --label and --budget")
    summary = {**provenance.stamp(args), "assignment": chosen[0]["assignment"], "label": chosen[0]["label"],
               **summarize(chosen), "rows": args.rows, "row_commits": provenance.commits(chosen),
               **dict(note.split("=", 1) for note in args.note)}
    text = json.dumps(summary, indent=1)
    print(text)
    if args.write:
        Path(args.write).write_text(text + "\n")


if __name__ == "__main__":
    main()
