"""How the VAE's KL and reconstruction checks treat real students' idioms, correct and buggy.

Each idiom is a `gaussian_kl` or a `bernoulli_nll` written the way public VAEs write it.
The grader's own check functions run in process on the worker's adapter over many
grading seeds; every comparison they make (`expect_close`) is recorded, so this prints,
per idiom and check: the pass count, and the largest absolute and relative deviation
from the grader's float64 value (over all seeds and comparisons). The report starts with
the stamp (commit, settings: the arguments and the checks' tolerances).

    .venv/bin/python bench/vae_idioms.py --seeds 200 > bench/results/vae_idioms.json

docs/vae.md records the figures and the tolerances chosen from them.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import provenance  # noqa: E402
from graders.checks import CheckFailed  # noqa: E402
from graders.contract import Context  # noqa: E402
from graders.vae import grader  # noqa: E402
from graders_worker.adapters import vae as adapter  # noqa: E402

HEADER = "import torch\nimport torch.nn.functional as F\nfrom torch.distributions import Normal, kl_divergence\n"
KL = {  # name -> (correct?, body of gaussian_kl(mu, log_sigma))
    "reference": (True, "return torch.sum(0.5 * (mu**2 + torch.exp(2.0 * log_sigma) - 1.0) - log_sigma, dim=-1)"),
    "two_log_sigma": (True, "return -0.5 * torch.sum(1 + 2 * log_sigma - mu.pow(2) - (2 * log_sigma).exp(), dim=-1)"),
    "log_var_eps_1e-8": (True, "sigma = torch.exp(log_sigma)\n"
                         "return -0.5 * torch.sum(1 + torch.log(sigma**2 + 1e-8) - mu**2 - sigma**2, dim=-1)"),
    "log_var_eps_1e-6": (True, "sigma = torch.exp(log_sigma)\n"
                         "return -0.5 * torch.sum(1 + torch.log(sigma**2 + 1e-6) - mu**2 - sigma**2, dim=-1)"),
    "log_sigma_eps_1e-8": (True, "sigma = torch.exp(log_sigma)\n"
                           "return torch.sum(0.5 * (mu**2 + sigma**2 - 1) - torch.log(sigma + 1e-8), dim=-1)"),
    "distributions": (True, "return kl_divergence(Normal(mu, log_sigma.exp()), Normal(torch.zeros_like(mu), "
                      "torch.ones_like(mu))).sum(-1)"),
    "float32": (True, "m, s = mu.float(), log_sigma.float()\n"
                "return torch.sum(0.5 * (m**2 + torch.exp(2.0 * s) - 1.0) - s, dim=-1)"),
    "log_var_eps_1e-8_float32": (True, "sigma = torch.exp(log_sigma.float())\n"
                                 "return -0.5 * torch.sum(1 + torch.log(sigma**2 + 1e-8) - mu.float()**2 - sigma**2, "
                                 "dim=-1)"),
    "mean_over_dims": (False, "return torch.mean(0.5 * (mu**2 + torch.exp(2.0 * log_sigma) - 1.0) - log_sigma, dim=-1)"),
    "log_sigma_as_log_var": (False, "return -0.5 * torch.sum(1 + log_sigma - mu**2 - log_sigma.exp(), dim=-1)"),
    "no_minus_one": (False, "return torch.sum(0.5 * (mu**2 + torch.exp(2.0 * log_sigma)) - log_sigma, dim=-1)"),
}
BCE = {  # name -> (correct?, body of bernoulli_nll(logits, x))
    "reference": (True, "return F.binary_cross_entropy_with_logits(logits, x, reduction='none').sum(dim=-1)"),
    "softplus": (True, "return (F.softplus(logits) - x * logits).sum(-1)"),
    "logsigmoid": (True, "return -(x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)).sum(-1)"),
    "manual_stable": (True, "return (logits.clamp(min=0) - logits * x + torch.log1p(torch.exp(-logits.abs()))).sum(-1)"),
    "bce_on_sigmoid": (True, "return F.binary_cross_entropy(torch.sigmoid(logits), x, reduction='none').sum(-1)"),
    "manual_eps_1e-8": (True, "p = torch.sigmoid(logits)\n"
                        "return -(x * torch.log(p + 1e-8) + (1 - x) * torch.log(1 - p + 1e-8)).sum(-1)"),
    "mean_over_pixels": (False, "return F.binary_cross_entropy_with_logits(logits, x, reduction='none').mean(dim=-1)"),
    "no_one_minus_x": (False, "return -(x * F.logsigmoid(logits)).sum(-1)"),
    "logits_as_probabilities": (False, "return F.binary_cross_entropy(logits.clamp(0, 1), x, reduction='none').sum(-1)"),
}


def submission(kind: str, body: str) -> types.ModuleType:
    module = types.ModuleType("submission")
    signature = "def gaussian_kl(mu, log_sigma):" if kind == "kl" else "def bernoulli_nll(logits, x):"
    indented = "\n".join("    " + line for line in body.splitlines())
    exec(compile(f"{HEADER}{signature}\n{indented}\n", "submission", "exec"), module.__dict__)  # noqa: S102
    return module


class InProcessWorker:
    def __init__(self, module):
        self.module = module

    def call(self, name, *args, **kwargs):
        return getattr(adapter, name)(self.module, *args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    args = parser.parse_args(argv)
    deviations: list[tuple[str, float, float]] = []
    real = grader.expect_close

    def recording(got, want, what, **kwargs):
        g, w = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
        if g.shape == w.shape:
            deviations.append((what, float(np.max(np.abs(g - w))), float(np.max(np.abs(g - w) / np.abs(w)))))
        return real(got, want, what, **kwargs)

    grader.expect_close = recording
    checks = {"kl": [grader.kl_matches_closed_form_and_monte_carlo],
              "bce": [grader.bernoulli_nll_from_logits, grader.bernoulli_nll_is_stable_at_large_logits]}
    report = provenance.stamp({**vars(args), "kl_rtol": grader.KL_RTOL, "kl_atol": grader.KL_ATOL,
                               "bce_rtol": grader.BCE_RTOL, "bce_atol": grader.BCE_ATOL})
    for kind, idioms in (("kl", KL), ("bce", BCE)):
        for name, (correct, body) in idioms.items():
            worker = InProcessWorker(submission(kind, body))
            for check in checks[kind]:
                passed, abs_dev, rel_dev, messages = 0, 0.0, 0.0, {}
                for seed in range(args.seeds):
                    ctx = Context("vae", "cpu", {**grader.DEFAULTS, "seeds": [seed], "threads": 1}, None)
                    del deviations[:]
                    try:
                        check(worker, ctx)
                        passed += 1
                    except (CheckFailed, RuntimeError, ValueError) as exc:
                        first = str(exc).split("\n")[0]
                        messages[first[:120]] = messages.get(first[:120], 0) + 1
                    for _, a, r in deviations:
                        abs_dev, rel_dev = max(abs_dev, a), max(rel_dev, r)
                row = {"correct": correct, "passed": passed, "seeds": args.seeds, "max_abs_deviation": abs_dev,
                       "max_rel_deviation": rel_dev, "messages": dict(list(messages.items())[:3])}
                report[f"{check.__name__}/{name}"] = row
                print(f"{check.__name__:45} {name:28} {passed:4}/{args.seeds}  abs {abs_dev:9.2e}  rel {rel_dev:9.2e}",
                      file=sys.stderr)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
