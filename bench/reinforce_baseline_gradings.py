"""The reference of reinforce_baseline graded whole, through the grader, on seeds it was never tuned on: how often a
correct solution gets full training marks under the decision rule (issue 27).

Each grading is `python -m graders grade reinforce_baseline <reference> --config <seeds> --json -` in a process of its
own (the worker in the isolation the machine offers, bubblewrap here), with the two grading seeds
[BASE + 2g, BASE + 2g + 1] for grading g. One JSON line per grading (stamped with the commit and settings): the
score, each check's status, each training run's evaluation mean and value-network figure as the grader published
them (the spare seed's too, when the rule trained it), and the grading's CPU and wall seconds (the process and every
worker it reaped). A re-run skips the gradings already in --rows. `--summarize` writes the summary
(bench/results/reinforce_baseline_reference_summary.json), stamped and naming its rows' commits: seed runs, the
pass rate per seed run, the rate of gradings with full training marks under the rule (and without it), the CPU per
grading. `--episode-budget N` grades with N training episodes instead of the grader's (a quick look).

    PYTHONPATH=. .venv/bin/python bench/reinforce_baseline_gradings.py --gradings 0-99 \\
        --rows bench/results/reinforce_baseline_gradings.jsonl
    PYTHONPATH=. .venv/bin/python bench/reinforce_baseline_gradings.py --summarize \\
        --rows bench/results/reinforce_baseline_gradings.jsonl --out bench/results/reinforce_baseline_reference_summary.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import provenance  # noqa: E402
from bench.reinforce_sweep import seed_list  # noqa: E402

NAME = "reinforce_baseline"
BASE = 5000  # seeds never used for tuning (the sweeps used 0-299, the confirmations 1000-1199, the value bench 2000-)
LABELS = ("seed #1", "seed #2", "the spare seed", "spare seed #2")
DECISION_RULE = ("two training checks, one per grading seed; a seed whose training check fails (policy below 475 over "
                 "100 greedy evaluation episodes, or the value network's error on its last 20 training episodes "
                 "above 3x the best constant's) is replaced by a spare seed derived from the grading's seeds, trained "
                 "in a fresh worker, at most two spare seeds per grading: full training marks when two of up to "
                 "four seeds pass (rows graded before the second spare existed used one spare: two of three)")


def grade(g: int, source: Path, config_text: str = "") -> dict:
    seeds = [BASE + 2 * g, BASE + 2 * g + 1]
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text(f"[{NAME}]\nseeds = {seeds}\n{config_text}")
        began = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "graders", "grade", NAME, str(source), "--config", str(config),
                                 "--json", "-", "--device", "cpu"], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - began
    results = json.loads(out)
    tests = {t["name"]: t for t in results["tests"]}
    metrics = {}
    for t in results["tests"]:
        metrics.update({k: v["value"] for k, v in t["extra_data"].get("metrics", {}).items()})
    training = [n for n in tests if n.startswith("trained_policy")]
    return {"grading": g, "seeds": seeds, "score": results["score"], "max_score": results["extra_data"]["max_score"],
            "exit": os.waitstatus_to_exitcode(status), "statuses": {n: t["extra_data"]["status"] for n, t in tests.items()},
            "spare_used": any("spare seed is trained" in tests[n]["output"] for n in training),
            "runs": {label: {"mean_return": metrics.get(f"mean return, {label}"),
                             "value_ratio": metrics.get(f"value network's error over the best constant's, {label}")}
                     for label in LABELS if f"mean return, {label}" in metrics},
            "cpu_s": usage.ru_utime + usage.ru_stime, "wall_s": wall}


def run_passed(run: dict, thresholds: dict) -> bool:
    return (run["mean_return"] is not None and run["mean_return"] >= thresholds["mean_return"]
            and run["value_ratio"] is not None and run["value_ratio"] <= thresholds["max_value_error_ratio"])


def summarize(rows: list[dict], command: str, stamp: dict) -> dict:
    import numpy as np

    from graders import assignments

    thresholds = assignments.grader(NAME).defaults["thresholds"]
    runs = [run_passed(run, thresholds) for r in rows for run in r["runs"].values()]
    own = [all(run_passed(r["runs"][label], thresholds) for label in LABELS[:2] if label in r["runs"])
           and all(label in r["runs"] for label in LABELS[:2]) for r in rows]
    full = [all(s == "passed" for n, s in r["statuses"].items() if n.startswith("trained_policy")) for r in rows]
    cpu = [r["cpu_s"] for r in rows]
    p = float(np.mean(runs))
    return {**stamp, "assignment": NAME, "row_commits": provenance.commits(rows), "command": command,
            "decision_rule": DECISION_RULE, "gradings": len(rows), "seeds": len(runs),
            "pass_rate_per_seed": p, "pass_rate_per_grading": float(np.mean(full)),
            "pass_rate_per_grading_without_the_rule": float(np.mean(own)),
            "pass_rate_per_grading_expected_from_seeds": 1 - (1 - p) ** 4 - 4 * p * (1 - p) ** 3,
            "pass_rate_per_grading_expected_with_one_spare": p * p * (3 - 2 * p),
            "full_marks": float(np.mean([r["score"] == r["max_score"] for r in rows])),
            "failed_gradings": [r["seeds"] for r, ok in zip(rows, full) if not ok],
            "spare_used": sum(r["spare_used"] for r in rows),
            "cpu_s_per_grading": {"median": float(np.median(cpu)), "p90": float(np.quantile(cpu, 0.9)),
                                  "max": float(max(cpu))},
            "wall_s_per_grading_median": float(np.median([r["wall_s"] for r in rows]))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gradings", default="0-99", help="grading indices a-b: seeds BASE + 2g, BASE + 2g + 1")
    parser.add_argument("--source", type=Path, default=ROOT / "solutions" / NAME / f"{NAME}.py")
    parser.add_argument("--rows", required=True, help="one JSON line per grading (resumes)")
    parser.add_argument("--summarize", action="store_true", help="write the summary of --rows instead")
    parser.add_argument("--out", default=None, help="with --summarize: the summary's file")
    parser.add_argument("--episode-budget", type=int, default=None, help="instead of the grader's (a quick look)")
    args = parser.parse_args()
    rows = [json.loads(line) for line in Path(args.rows).read_text().splitlines()] if Path(args.rows).exists() else []
    if args.summarize:
        summary = summarize(rows, " ".join(["bench/reinforce_baseline_gradings.py", *sys.argv[1:]]), provenance.stamp(args))
        text = json.dumps(summary, indent=2)
        print(text)
        if args.out:
            Path(args.out).write_text(text + "\n")
        return 0
    done = {r["grading"] for r in rows}
    config_text = f"episode_budget = {args.episode_budget}\n" if args.episode_budget else ""
    stamp = provenance.stamp({**vars(args), "base": BASE, "config_text": config_text})
    for g in seed_list(args.gradings):
        if g in done:
            continue
        row = {**stamp, **grade(g, args.source, config_text)}
        print(json.dumps({k: row[k] for k in ("grading", "score", "spare_used", "runs", "cpu_s")}), flush=True)
        with open(args.rows, "a") as f:
            f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
