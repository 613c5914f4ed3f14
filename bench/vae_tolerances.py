"""Measure the tolerances of the VAE unit checks: how far the reference's float64 autograd
gradients lie from the grader's central finite differences, and the float32 error of
negative_elbo, over many grading seeds; and how far the buggy variants lie.

    .venv/bin/python bench/vae_tolerances.py --seeds 200

Prints one JSON object, stamped with the commit and settings; docs/vae.md records the figures
and the tolerances chosen.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import provenance  # noqa: E402
from bench.vae_reference import load_module  # noqa: E402
from graders import variants  # noqa: E402
from graders.vae import elbo, grader  # noqa: E402
from graders_worker.adapters import vae as adapter  # noqa: E402


def fd_errors(sub, seed: int) -> tuple[float, float]:
    """Max |autograd - finite difference| and the max of that over (|fd| + 1), as the check draws them."""
    rng = np.random.default_rng([seed, 4])
    mu, log_sigma = rng.normal(0.0, 1.0, (4, 3)), rng.uniform(-1.5, 0.7, (4, 3))
    eps = rng.standard_normal((256, 4, 3))
    a, b, c = rng.uniform(0.5, 2.0, 3), rng.uniform(0.5, 2.0, 3), rng.uniform(-0.5, 0.5, 3)

    def f(z):
        return a * np.sin(b * z) + c * z**2

    want_mu, want_ls = elbo.expected_f_gradients(mu, log_sigma, eps, f, grader.FD_STEP)
    out = adapter.reparameterize_expectation_gradients(sub, mu, log_sigma, eps, a, b, c)
    err = np.concatenate([np.abs(out["grad_mu"] - want_mu).ravel(), np.abs(out["grad_log_sigma"] - want_ls).ravel()])
    scale = np.concatenate([np.abs(want_mu).ravel(), np.abs(want_ls).ravel()]) + 1.0
    return float(err.max()), float((err / scale).max())


def nelbo_error(sub, seed: int) -> float:
    """Max relative float32 error of negative_elbo against the grader's float64 recomputation."""
    rng = np.random.default_rng([seed, 7])
    x = rng.uniform(0, 1, (8, 784)).astype(np.float32)
    eps = rng.standard_normal((8, 6)).astype(np.float32)
    out = adapter.model_outputs(sub, 1, x, eps, 6, 64)
    want = elbo.bernoulli_nll(out["logits"], x) + elbo.gaussian_kl(out["mu"], out["log_sigma"])
    return float(np.max(np.abs(out["negative_elbo"] - want) / np.abs(want)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=200)
    args = p.parse_args()
    ref = load_module(ROOT / "solutions/vae/vae.py")
    fd = np.array([fd_errors(ref, s) for s in range(args.seeds)])
    nelbo = np.array([nelbo_error(ref, s) for s in range(min(args.seeds, 50))])
    report = {
        **provenance.stamp({**vars(args), "fd_step": grader.FD_STEP}),
        "seeds": args.seeds,
        "fd_step": grader.FD_STEP,
        "reference_fd_max_abs_error": float(fd[:, 0].max()),
        "reference_fd_max_scaled_error": float(fd[:, 1].max()),
        "reference_negative_elbo_max_rel_error_float32": float(nelbo.max()),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("sigma_as_log_sigma", "z_equals_mu"):
            path = Path(tmp) / f"vae_variant_{name}.py"
            path.write_text(variants.by_name("vae", name).source())
            sub = load_module(path)
            report[f"{name}_fd_min_abs_error"] = float(min(fd_errors(sub, s)[0] for s in range(min(args.seeds, 50))))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
