"""The power and the false-fail rate of NAS's sampling_follows_the_controller, over many grading seeds.

The check draws SAMPLING_DRAWS architectures from a grader controller over choices [3, 5, 3]
(45 sequences) and fails below p = 1e-6 of Pearson's chi-squared. A sampler at temperature T
draws from softmax(logits / T), the grader's controller with its heads divided by T. Per grading
seed (the check's own controller) and per number of draws N, this records:

- `analytic`: the test's power against temperature T, from the noncentral chi-squared with
  noncentrality N * sum (p_T - p)^2 / p (T = 1: the nominal false-fail rate, 1e-6);
- `simulated` (--reps R): the fraction of R multinomial samples of N draws from p_T that fail
  the grader's own test (T = 1: the false-fail rate; also the fractions below p = 1e-3 and 1e-4,
  which show whether the chi-squared tail is the right one);
- `graded` (--graded S, the first S seeds only): the check itself, in this process, on the
  reference's sample_architectures and on the reference with `logits / T` (torch's sampling).

    .venv/bin/python bench/nas_sampling_power.py --seeds 1000 --reps 200 --graded 100 \
        --out bench/results/nas_sampling_power.jsonl
    .venv/bin/python bench/nas_sampling_power.py --summarize bench/results/nas_sampling_power.jsonl

docs/nas.md ("The sampling check's sample size") records the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import provenance  # noqa: E402

from graders import assignments  # noqa: E402
from graders.checks import CheckFailed  # noqa: E402
from graders.contract import Context  # noqa: E402
from graders.nas import controller  # noqa: E402
from graders.nas import grader as nas  # noqa: E402
from graders_worker.adapters import nas as adapter  # noqa: E402

DRAWS = (20_000, 50_000, 100_000, 200_000)
TEMPERATURES = (1.0, 1.05, 1.1, 1 / 1.1, 1.2)
SAMPLE = "previous = torch.distributions.Categorical(logits=logits).sample()"


def tempered(weights: dict, temperature: float) -> dict:
    """The controller whose logits are the given one's divided by `temperature`."""
    out = dict(weights)
    for name in weights:
        if name.startswith("heads."):
            out[name] = (np.asarray(weights[name], dtype=np.float64) / temperature).astype(np.float32)
    return out


def context(seed: int) -> Context:
    return Context("nas", "cpu", {**nas.DEFAULTS, "seeds": [seed, seed + 1]}, None)


def submission(temperature: float) -> types.ModuleType:
    source = assignments.solution_path("nas").read_text()
    if temperature != 1.0:
        assert source.count(SAMPLE) == 1
        source = source.replace(SAMPLE, SAMPLE.replace("logits=logits", f"logits=logits / {temperature!r}"))
    module = types.ModuleType("submission")
    sys.modules["submission"] = module  # dataclasses look their module up
    exec(compile(source, "submission", "exec"), module.__dict__)  # noqa: S102 - the reference, edited here
    return module


class InProcessWorker:
    def __init__(self, module):
        self.module = module

    def call(self, name, *args, timeout=None, callbacks=None, clock=None):
        return getattr(adapter, name)(self.module, *args)


def measure(seed: int, reps: int, graded: bool, modules: dict) -> dict:
    ctx = context(seed)
    weights, _, p = nas.sampling_controller(ctx)
    critical = stats.chi2.isf(nas.FALSE_FAIL, len(p) - 1)
    rng = np.random.default_rng([seed, 2024])
    row = {"seed": seed, "min_probability": float(p.min()), "analytic": {}, "simulated": {}, "graded": {}}
    for t in TEMPERATURES:
        _, p_t = controller.sequence_distribution(tempered(weights, t), nas.SAMPLING_CHOICES)
        per_draw = float(np.sum((p_t - p) ** 2 / p))
        for n in DRAWS:
            key = f"T={t:.4g} N={n}"
            row["analytic"][key] = float(stats.ncx2.sf(critical, len(p) - 1, n * per_draw)) if t != 1.0 else \
                nas.FALSE_FAIL
            if reps:
                p_values = np.array([nas._pearson(c, p)[1] for c in rng.multinomial(n, p_t, size=reps)])
                row["simulated"][key] = {"fail": float(np.mean(p_values <= nas.FALSE_FAIL)),
                                         "below_1e-3": float(np.mean(p_values <= 1e-3)),
                                         "below_1e-4": float(np.mean(p_values <= 1e-4))}
    if graded:
        for t, module in modules.items():
            start = time.perf_counter()
            try:
                nas.sampling_follows_the_controller.__check__.fn(InProcessWorker(module), ctx)
                outcome = "passed"
            except CheckFailed as exc:
                outcome = "failed: " + str(exc).split(";")[0][-80:]
            row["graded"][f"T={t:.4g}"] = {"outcome": outcome, "seconds": round(time.perf_counter() - start, 2)}
    return row


def summarize(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    print(f"{len(rows)} seeds; commit {rows[0]['commit']}; draws in the grader {rows[0]['settings']['draws']}; "
          f"min probability of a sequence over seeds {min(r['min_probability'] for r in rows):.4f}")
    print(f"{'':18} {'analytic mean':>14} {'analytic min':>13} {'seeds < 0.99':>12} {'simulated':>10} "
          f"{'sim <=1e-3':>10} {'sim <=1e-4':>10}")
    for key in rows[0]["analytic"]:
        power = np.array([r["analytic"][key] for r in rows])
        sims = [r["simulated"][key] for r in rows if r["simulated"]]
        shown = [f"{np.mean([s[k] for s in sims]):.2e}" if sims else "-" for k in ("fail", "below_1e-3", "below_1e-4")]
        under = "-" if key.startswith("T=1 ") else f"{np.mean(power < 0.99):.4f}"
        print(f"{key:18} {power.mean():14.7f} {power.min():13.7f} {under:>12} {shown[0]:>10} {shown[1]:>10} "
              f"{shown[2]:>10}")
    graded = defaultdict(list)
    for r in rows:
        for t, g in r["graded"].items():
            graded[t].append(g)
    for t, outcomes in graded.items():
        failed = sum(not g["outcome"].startswith("passed") for g in outcomes)
        print(f"graded {t}: failed {failed} of {len(outcomes)}; median {np.median([g['seconds'] for g in outcomes]):.2f} s "
              "a check")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--reps", type=int, default=200, help="simulated tests per seed, temperature and N")
    parser.add_argument("--graded", type=int, default=0, help="run the check itself on the first S seeds")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--summarize", type=Path)
    args = parser.parse_args(argv)
    if args.summarize:
        summarize(args.summarize)
        return 0
    import torch

    torch.set_num_threads(1)
    modules = {t: submission(t) for t in (1.0, 1.1)} if args.graded else {}
    settings = {"draws": nas.SAMPLING_DRAWS, "false_fail": nas.FALSE_FAIL, "reps": args.reps}
    stamp = provenance.stamp({**vars(args), **settings})
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        row = {**stamp, **measure(seed, args.reps, seed - args.first_seed < args.graded, modules)}
        line = json.dumps(row)
        if args.out is None:
            print(line, flush=True)
        else:
            with args.out.open("a") as f:
                f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
