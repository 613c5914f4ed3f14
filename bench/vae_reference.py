"""Measure the reference VAE as the grader measures it: held-out negative ELBO over seeds, and time per epoch.

The reference solution is trained in this process through the grader's own adapter
functions (the same code the worker runs, without the process boundary) on the
training split less a held-out part (`elbo.holdout`, drawn per seed as the grader
draws it from its hidden seed); the weights train() returns are loaded into a fresh
model (`load_model`), and the held-out NELBO and importance-weighted bound are
computed with graders/vae/elbo.py and the grader's noise, as the training check does. One JSON line per seed goes
to stdout (and to --out), then a summary with the threshold rule of docs/vae.md; each stamped with the commit and
settings (the summary also names its rows' commits).

    nice -n 10 .venv/bin/python bench/vae_reference.py --seeds 0-19 --epochs 3 --threads 2 \
        --out bench/results/vae_fashion_e3.jsonl

Run it niced on a shared machine; it takes about (seeds x epochs x seconds/epoch).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import provenance  # noqa: E402
from graders import datasets  # noqa: E402
from graders.vae import elbo  # noqa: E402
from graders_worker.adapters import vae as adapter  # noqa: E402


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location("submission", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["submission"] = module
    spec.loader.exec_module(module)
    return module


def seed_list(text: str) -> list[int]:
    seeds = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds += list(range(int(lo), int(hi or lo) + 1))
    return seeds


def measure(sub, images, seed: int, epochs: int, threads: int, device: str,
            iw_images: int, iw_samples: int, holdout_fraction: float) -> dict:
    train_idx, held_idx = elbo.holdout(len(images), np.random.default_rng([seed, 2]), holdout_fraction)
    test_x = datasets.to_unit_interval(images[held_idx])
    start = time.monotonic()
    info = adapter.train(sub, images[train_idx], seed, epochs, 1e9, device, threads)
    train_seconds = time.monotonic() - start
    latent_dim = info["latent_dim"]
    adapter.load_model(sub, latent_dim, info["hidden_dim"], info["weights"], device, threads)

    def enc(x):
        return adapter.encode(sub, x)

    def dec(z):
        return adapter.decode(sub, z)

    rng = np.random.default_rng([seed, 1])
    start = time.monotonic()
    mu, log_sigma = elbo.encode_all(test_x, enc, latent_dim)
    nelbo = elbo.test_negative_elbo(test_x, mu, log_sigma, dec, rng)
    iw = elbo.importance_weighted_bound(test_x[:iw_images], mu[:iw_images], log_sigma[:iw_images], dec, rng,
                                        iw_samples)
    eval_seconds = time.monotonic() - start
    return {
        "seed": seed,
        "epochs": epochs,
        "test_nelbo": float(nelbo.mean()),  # of the held-out training images
        "held_out": len(test_x),
        "test_nelbo_subset": float(nelbo[:iw_images].mean()),
        f"iw{iw_samples}_subset": float(iw.mean()),
        "train_seconds": round(train_seconds, 2),
        "seconds_per_epoch": round(train_seconds / epochs, 2),
        "eval_seconds": round(eval_seconds, 2),
        "threads": threads,
        "device": device,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--solution", type=Path, default=ROOT / "solutions/vae/vae.py", help="a submission file to measure")
    p.add_argument("--variant", help="a buggy variant of solutions/vae/variants.py instead of --solution")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--seeds", default="0-19", help="e.g. 0-19 or 0,5,7")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--iw-images", type=int, default=1000)
    p.add_argument("--iw-samples", type=int, default=32)
    p.add_argument("--holdout-fraction", type=float, default=1 / 6, help="the grader's holdout_fraction")
    p.add_argument("--out", type=Path)
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    solution = args.solution
    if args.variant:
        from graders import variants

        solution = Path(tempfile.mkdtemp()) / f"vae_{args.variant}.py"
        solution.write_text(variants.by_name("vae", args.variant).source())
    sub = load_module(solution)
    images = np.asarray(datasets.load(args.dataset, "train").images)
    rows = []
    stamp = provenance.stamp(args)
    out = args.out.open("a") if args.out else None
    for seed in seed_list(args.seeds):
        row = stamp | measure(sub, images, seed, args.epochs, args.threads, args.device,
                      args.iw_images, args.iw_samples, args.holdout_fraction)
        row["dataset"] = args.dataset
        row["submission"] = args.variant or str(args.solution.relative_to(ROOT) if args.solution.is_relative_to(ROOT)
                                                else args.solution)
        rows.append(row)
        line = json.dumps(row)
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()
    values = np.array([r["test_nelbo"] for r in rows])
    summary = {
        **stamp,
        "row_commits": provenance.commits(rows),
        "summary": True,
        "dataset": args.dataset,
        "epochs": args.epochs,
        "seeds": len(rows),
        "mean": round(float(values.mean()), 2),
        "std": round(float(values.std(ddof=1)), 2) if len(rows) > 1 else 0.0,
        "min": round(float(values.min()), 2),
        "max": round(float(values.max()), 2),
        "seconds_per_epoch_median": float(np.median([r["seconds_per_epoch"] for r in rows])),
    }
    print(json.dumps(summary), flush=True)
    if out:
        out.write(json.dumps(summary) + "\n")
        out.close()


if __name__ == "__main__":
    main()
