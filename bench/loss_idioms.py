"""How the loss checks of the REINFORCE graders treat real students' idioms, correct and buggy.

Each idiom is a `reinforce_loss` (reinforce) or a `losses` (reinforce_baseline) written
the way public solutions write it. The grader's own check functions run in process on
the worker's adapter (no sandbox: the numbers are the same), over many grading seeds,
and this records, per idiom: how often each check passes, the notes and failure
messages it got, and the largest relative residual |g - c g*| / |c g*| of the gradient
fit (graders/rl/gradients.py) over the passing seeds. The report starts with the stamp
(commit, settings: the arguments and the fit's tolerance).

    .venv/bin/python bench/loss_idioms.py --seeds 200 > bench/results/loss_idioms.json

docs/reinforce.md and docs/reinforce_baseline.md record the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import provenance  # noqa: E402
from graders import assignments  # noqa: E402
from graders.checks import CheckFailed  # noqa: E402
from graders.contract import Context  # noqa: E402
from graders.rl import gradients  # noqa: E402

HEADER = "import torch\nimport torch.nn.functional as F\nfrom torch.distributions import Categorical\n"
LOG_PROBS = "lp = torch.log_softmax(logits, 1).gather(1, actions.long().unsqueeze(1)).squeeze(1)"

REINFORCE = {  # name -> (correct?, body of reinforce_loss(logits, actions, returns))
    "reference": (True, f"{LOG_PROBS}\nreturn -(returns * lp).mean()"),
    "categorical_log_prob": (True, "return -(Categorical(logits=logits).log_prob(actions) * returns).mean()"),
    "cross_entropy": (True, "return (F.cross_entropy(logits, actions, reduction='none') * returns).mean()"),
    "log_of_softmax": (True, "p = F.softmax(logits, dim=-1)\n"
                       "return -(torch.log(p[torch.arange(len(actions)), actions]) * returns).mean()"),
    "sum_over_batch": (True, f"{LOG_PROBS}\nreturn -(returns * lp).sum()"),
    "torch_stack_sum (pytorch example)": (True, f"{LOG_PROBS}\nreturn torch.stack([-r * l for r, l in zip(returns, lp)]).sum()"),
    "half_mean": (True, f"{LOG_PROBS}\nreturn -0.5 * (returns * lp).mean()"),
    "float64": (True, f"{LOG_PROBS}\nreturn -(returns.double() * lp.double()).mean()"),
    "sign_flipped": (False, f"{LOG_PROBS}\nreturn (returns * lp).mean()"),
    "other_action": (False, "lp = torch.log_softmax(logits, 1).gather(1, (1 - actions.long()).unsqueeze(1)).squeeze(1)\n"
                     "return -(returns * lp).mean()"),
    "normalizes_returns": (False, f"{LOG_PROBS}\nr = (returns - returns.mean()) / (returns.std() + 1e-9)\n"
                           "return -(r * lp).mean()"),
    "divides_by_std_only": (False, f"{LOG_PROBS}\nreturn -(returns / returns.std() * lp).mean()"),
    "divides_by_sum": (False, f"{LOG_PROBS}\nreturn -(returns * lp).sum() / returns.sum()"),
    "softmax_twice": (False, "lp = torch.log_softmax(F.softmax(logits, 1), 1).gather(1, actions.long().unsqueeze(1))"
                      ".squeeze(1)\nreturn -(returns * lp).mean()"),
    "entropy_bonus": (False, f"{LOG_PROBS}\nent = Categorical(logits=logits).entropy().mean()\n"
                      "return -(returns * lp).mean() - 0.01 * ent"),
    "mean_times_mean": (False, f"{LOG_PROBS}\nreturn -returns.mean() * lp.mean()"),
    "all_actions": (False, "return -(torch.log_softmax(logits, 1).sum(1) * returns).mean()"),
}

BASELINE_HEAD = "values = value_net(obs).squeeze(-1)\nadv = returns - values.detach()\n"
POLICY = "lp = torch.log_softmax(policy(obs), 1).gather(1, actions.long().unsqueeze(1)).squeeze(1)\n"
NORMALIZE = "if normalize_advantages:\n    adv = (adv - adv.mean()) / (adv.std() + 1e-8)\n"
BASELINE = {  # name -> (correct?, body of losses(policy, value_net, obs, actions, returns, normalize_advantages))
    "reference": (True, BASELINE_HEAD + NORMALIZE + POLICY + "return -(adv * lp).mean(), ((values - returns) ** 2).mean()"),
    "mse_loss": (True, BASELINE_HEAD + NORMALIZE + POLICY + "return -(adv * lp).mean(), F.mse_loss(values, returns)"),
    "half_mse": (True, BASELINE_HEAD + NORMALIZE + POLICY + "return -(adv * lp).mean(), 0.5 * F.mse_loss(values, returns)"),
    "sums": (True, BASELINE_HEAD + NORMALIZE + POLICY
             + "return -(adv * lp).sum(), F.mse_loss(values, returns, reduction='sum')"),
    "population_std": (True, BASELINE_HEAD + "if normalize_advantages:\n    adv = (adv - adv.mean()) / "
                       "(adv.std(unbiased=False) + 1e-8)\n" + POLICY
                       + "return -(adv * lp).mean(), ((values - returns) ** 2).mean()"),
    "categorical": (True, BASELINE_HEAD + NORMALIZE
                    + "lp = Categorical(logits=policy(obs)).log_prob(actions)\n"
                    "return -(adv * lp).mean(), ((values - returns) ** 2).mean()"),
    "normalizes_by_variance": (False, BASELINE_HEAD + "if normalize_advantages:\n    adv = (adv - adv.mean()) / "
                               "(adv.var() + 1e-8)\n" + POLICY
                               + "return -(adv * lp).mean(), ((values - returns) ** 2).mean()"),
    "ignores_the_flag": (False, BASELINE_HEAD + POLICY + "return -(adv * lp).mean(), ((values - returns) ** 2).mean()"),
    "always_normalizes": (False, BASELINE_HEAD + "adv = (adv - adv.mean()) / (adv.std() + 1e-8)\n" + POLICY
                          + "return -(adv * lp).mean(), ((values - returns) ** 2).mean()"),
    "entropy_bonus": (False, BASELINE_HEAD + NORMALIZE + POLICY
                      + "ent = Categorical(logits=policy(obs)).entropy().mean()\n"
                      "return -(adv * lp).mean() - 0.01 * ent, ((values - returns) ** 2).mean()"),
    "returns_not_advantages": (False, BASELINE_HEAD + NORMALIZE + POLICY
                               + "return -(returns * lp).mean(), ((values - returns) ** 2).mean()"),
    "huber_value_loss": (False, BASELINE_HEAD + NORMALIZE + POLICY
                         + "return -(adv * lp).mean(), F.smooth_l1_loss(values, returns)"),
    "rmse_value_loss": (False, BASELINE_HEAD + NORMALIZE + POLICY
                        + "return -(adv * lp).mean(), ((values - returns) ** 2).mean().sqrt()"),
}


def submission(assignment: str, body: str) -> types.ModuleType:
    module = types.ModuleType("submission")
    indented = "\n".join("    " + line for line in body.splitlines())
    if assignment == "reinforce":
        source = HEADER + f"def reinforce_loss(logits, actions, returns):\n{indented}\n"
    else:
        source = HEADER + ("def losses(policy, value_net, obs, actions, returns, normalize_advantages=False):\n"
                           f"{indented}\n")
    exec(compile(source, "submission", "exec"), module.__dict__)  # noqa: S102 - the bench's own idioms
    return module


class InProcessWorker:
    def __init__(self, adapter, module):
        self.adapter, self.module = adapter, module

    def call(self, name, *args, **kwargs):
        return getattr(self.adapter, name)(self.module, *args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--assignment", choices=["reinforce", "reinforce_baseline", "both"], default="both")
    args = parser.parse_args(argv)
    import importlib

    import torch

    torch.set_num_threads(1)
    residuals: list[float] = []
    real_fit = gradients.fit

    def recording_fit(got, want):
        c, residual = real_fit(got, want)
        residuals.append(residual)
        return c, residual

    gradients.fit = recording_fit
    report = provenance.stamp({**vars(args), "tolerance": gradients.TOLERANCE})
    chosen = ["reinforce", "reinforce_baseline"] if args.assignment == "both" else [args.assignment]
    for assignment in chosen:
        grader = assignments.grader(assignment)
        adapter = importlib.import_module(f"graders_worker.adapters.{assignment}")
        unit = [c for c in grader.checks if c.kind == "unit" and "loss" in c.name or "normaliz" in c.name]
        idioms = REINFORCE if assignment == "reinforce" else BASELINE
        for name, (correct, body) in idioms.items():
            worker = InProcessWorker(adapter, submission(assignment, body))
            row = {"correct": correct, "checks": {}}
            for c in unit:
                outcomes, worst = Counter(), 0.0
                messages = defaultdict(int)
                for seed in range(args.seeds):
                    ctx = Context(assignment, "cpu", {**grader.defaults, "seeds": [seed]}, None)
                    del residuals[:]
                    try:
                        c.fn(worker, ctx)
                        outcomes["passed"] += 1
                        worst = max([worst, *[r for r in residuals if r <= gradients.TOLERANCE]])
                        for note in ctx.notes:
                            messages[note.split(". ")[0][:160]] += 1
                    except CheckFailed as exc:
                        outcomes["failed"] += 1
                        messages[str(exc).split("\n")[0][:160]] += 1
                row["checks"][c.name] = {"outcomes": dict(outcomes), "max_passing_residual": worst,
                                         "messages": dict(messages)}
            report[f"{assignment}/{name}"] = row
            print(json.dumps({f"{assignment}/{name}": row}), file=sys.stderr)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
