"""Grader of the VAE assignment (Kingma & Welling, 2014) on MNIST-like images.

Unit checks send the grader's own inputs and compare with the grader's float64
arithmetic (graders/vae/elbo.py). The training check holds back a part of the
training split (chosen by the hidden seed) and sends the worker the rest; train()
returns the weights; the worker that trained is stopped; a fresh worker loads them and
encodes every held-out image, and is stopped, with all it started and left
(graders/sandbox/teardown.py), before another fresh worker decodes the grader's z
(drawn with the grader's own eps): no image can reach the code that reconstructs it
but through z, and nothing those workers print or raise reaches the student. The
grader computes the negative ELBO of the held-out images itself. The threshold comes
from the reference's distribution over 20 seeds (bench/vae_reference.py, docs/vae.md).
"""

from __future__ import annotations

import time

import numpy as np

from graders import datasets
from graders.checks import CheckFailed, SetupError, as_array, as_dict, check, expect, expect_close
from graders.plotting import figure, save_png
from graders.sandbox.errors import StudentError
from graders.vae import elbo

TITLE = "Variational autoencoder: reparametrisation, KL, Bernoulli decoder, test-set ELBO"
GPU = True  # training runs on ctx.device
IMAGE_DIM = 784
DEFAULTS = {
    "seeds": [0],
    "dataset": "fashion-mnist",
    "epochs": 3,
    "train_seconds": {"cpu": 300, "cuda": 120},  # the time train() may take (Args.time_budget_s); no clock needed
    "eval_batch": 1000,
    "iw_samples": 32,
    "iw_images": 1000,
    "holdout_fraction": 1 / 6,  # of the training split, never sent: the images the ELBO is measured on
    # None: take the measured threshold for (dataset, epochs) from MEASURED_THRESHOLDS.
    "thresholds": {"test_nelbo": None},
}
# What each setting means (python -m graders settings NAME)
HELP = {
    "dataset": "what the VAE trains on and is evaluated on (fashion-mnist, or the mnist-tiny fixture)",
    "epochs": "epochs of training the grader asks for",
    "train_seconds": "the time train() may take",
    "eval_batch": "images per encoder/decoder call of the evaluation",
    "iw_samples": "samples of the importance-weighted bound shown in the feedback",
    "iw_images": "held-out images the importance-weighted bound is computed on",
    "holdout_fraction": "of the training split, never sent to the student: the images the ELBO is measured on",
    "thresholds.test_nelbo": "held-out negative ELBO (nats/image), at most; none: the measured one for the dataset",
}
# Reference max over 20 seeds + margin (bench/vae_reference.py; docs/vae.md). Keyed by (dataset, epochs).
MAX_WEIGHTS_MB = 256  # of the state dict train() returns
# Where Fashion-MNIST is not installed (a bare machine: pip only), the default setting grades on the real-MNIST
# fixture shipped with the repository, at its own measured setting; the notes say so.
FALLBACK = ("mnist-tiny", 30)
MEASURED_THRESHOLDS = {
    ("fashion-mnist", 3): 255.0,
    ("mnist-tiny", 30): 175.0,
}
TRAIN_TIMEOUT = {"cpu": 600, "cuda": 300}

# Finite-difference step and tolerances of the reparametrised-gradient check (docs/vae.md).
FD_STEP = 1e-5
FD_RTOL, FD_ATOL = 1e-6, 1e-6
# Closed-form KL and moderate-logit BCE: a margin above what correct idioms give (bench/vae_idioms.py, docs/vae.md).
KL_RTOL, KL_ATOL = 1e-5, 1e-4
BCE_RTOL, BCE_ATOL = 1e-4, 1e-6


def _fields(out, *keys: str) -> dict:
    """A dict reply of the adapter with these keys, or CheckFailed (the worker is untrusted)."""
    return as_dict(out, "the worker's reply", keys)


def _mu_log_sigma(rng: np.random.Generator, shape: tuple) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(0.0, 1.0, shape), rng.uniform(-1.5, 0.7, shape)


# ----------------------------------------------------------------------------- unit checks


@check(points=1, timeout=30)
def model_shapes_and_dtypes(worker, ctx):
    """VAE.encode gives (mu, log_sigma) of shape (B, latent_dim), decode gives (B, 784) logits, all float32."""
    rng = ctx.rng("model_shapes_and_dtypes")
    batch, latent, hidden = 5, 7, 32
    x = rng.uniform(0, 1, (batch, IMAGE_DIM)).astype(np.float32)
    eps = rng.standard_normal((batch, latent)).astype(np.float32)
    # the model alone: a missing or broken negative_elbo is its own check's (issue 26 item 5)
    out = _fields(worker.call("model_outputs", 0, x, eps, latent, hidden, False), "mu", "log_sigma", "logits")
    for name, shape in [("mu", (batch, latent)), ("log_sigma", (batch, latent)), ("logits", (batch, IMAGE_DIM))]:
        got = out[name]
        where = {"mu": "VAE(latent_dim=7, hidden_dim=32).encode(x)[0]",
                 "log_sigma": "VAE(latent_dim=7, hidden_dim=32).encode(x)[1]",
                 "logits": "VAE(...).decode(z)"}[name]
        expect(isinstance(got, np.ndarray), f"{where}: expected a tensor, got {type(got).__name__}")
        expect(got.shape == shape, f"{where}: expected shape {shape}, got {got.shape}",
               "use the latent_dim and hidden_dim arguments")
        expect(got.dtype == np.float32, f"{where}: expected dtype float32, got {got.dtype}",
               "keep the model in float32 (torch's default)")
        expect(bool(np.all(np.isfinite(got))), f"{where}: got NaN or inf")


@check(points=1)
def reparameterize_draws_the_sample(worker, ctx):
    """reparameterize(mu, log_sigma, eps) = mu + exp(log_sigma) * eps."""
    rng = ctx.rng("reparameterize_draws_the_sample")
    mu, log_sigma = _mu_log_sigma(rng, (6, 4))
    eps = rng.standard_normal((6, 4))
    got = worker.call("reparameterize", mu, log_sigma, eps)
    got = as_array(got, "reparameterize(mu, log_sigma, eps)", mu.shape)
    expect(not np.allclose(got, mu), "reparameterize returned mu itself: the sample has no noise",
           "z = mu + sigma * eps, with sigma = exp(log_sigma)")
    expect_close(got, mu + np.exp(log_sigma) * eps, "reparameterize(mu, log_sigma, eps)", rtol=1e-9, atol=1e-9,
                 hint="z = mu + exp(log_sigma) * eps; log_sigma is the log of the standard deviation")


@check(points=1)
def gradients_reach_mu_and_sigma(worker, ctx):
    """d sum(w * z) / d mu = w and / d log_sigma = w * sigma * eps: gradients flow through the sample."""
    rng = ctx.rng("gradients_reach_mu_and_sigma")
    mu, log_sigma = _mu_log_sigma(rng, (5, 3))
    eps = rng.standard_normal((5, 3))
    weights = rng.normal(size=(5, 3))
    out = _fields(worker.call("reparameterize_linear_gradients", mu, log_sigma, eps, weights),
                  "grad_mu", "grad_log_sigma")
    grad_mu = as_array(out["grad_mu"], "gradient with respect to mu", mu.shape)
    grad_ls = as_array(out["grad_log_sigma"], "gradient with respect to log_sigma", mu.shape)
    expect(np.any(grad_ls != 0), "no gradient reaches log_sigma through z",
           "z must depend on sigma (z = mu + sigma * eps), computed with torch operations (no .detach(), no numpy)")
    expect(np.any(grad_mu != 0), "no gradient reaches mu through z", "compute z from mu with torch operations")
    expect_close(grad_mu, weights, "d sum(w * z) / d mu", rtol=1e-9, atol=1e-9, hint="dz/dmu is 1")
    expect_close(grad_ls, weights * np.exp(log_sigma) * eps, "d sum(w * z) / d log_sigma", rtol=1e-9, atol=1e-9,
                 hint="dz/dlog_sigma = sigma * eps when z = mu + exp(log_sigma) * eps")


@check(points=2, timeout=20)
def reparameterized_gradients_match_finite_differences(worker, ctx):
    """Autograd through reparameterize vs central finite differences of E_eps[f(z)] with common random numbers."""
    rng = ctx.rng("reparameterized_gradients_match_finite_differences")
    mu, log_sigma = _mu_log_sigma(rng, (4, 3))
    eps = rng.standard_normal((256, 4, 3))
    a, b, c = rng.uniform(0.5, 2.0, 3), rng.uniform(0.5, 2.0, 3), rng.uniform(-0.5, 0.5, 3)

    def f(z):
        return a * np.sin(b * z) + c * z**2

    want_mu, want_ls = elbo.expected_f_gradients(mu, log_sigma, eps, f, FD_STEP)
    out = _fields(worker.call("reparameterize_expectation_gradients", mu, log_sigma, eps, a, b, c),
                  "grad_mu", "grad_log_sigma")
    hint = ("the estimate mean_s f(mu + exp(log_sigma) * eps_s) must be differentiated through the sample; "
            "check that z uses exp(log_sigma), not log_sigma, as the standard deviation")
    expect_close(out["grad_mu"], want_mu, "d E[f(z)] / d mu", rtol=FD_RTOL, atol=FD_ATOL, hint=hint)
    expect_close(out["grad_log_sigma"], want_ls, "d E[f(z)] / d log_sigma", rtol=FD_RTOL, atol=FD_ATOL, hint=hint)


@check(points=2, timeout=30)
def kl_matches_closed_form_and_monte_carlo(worker, ctx):
    """gaussian_kl equals the closed form and a Monte-Carlo estimate of KL(N(mu, sigma^2) || N(0, I))."""
    rng = ctx.rng("kl_matches_closed_form_and_monte_carlo")
    mu, log_sigma = _mu_log_sigma(rng, (6, 5))
    got = as_array(worker.call("gaussian_kl", mu, log_sigma), "gaussian_kl(mu, log_sigma) of a (6, 5) batch", (6,))
    samples = 200_000
    mc, stderr = elbo.gaussian_kl_monte_carlo(mu, log_sigma, rng.standard_normal((samples, *mu.shape)))
    closed = elbo.gaussian_kl(mu, log_sigma)
    expect(bool(np.all(np.abs(got - mc) < 6 * stderr + 1e-9)),
           f"gaussian_kl: got {np.round(got, 4).tolist()}, but a Monte-Carlo estimate of E_q[log q(z) - log p(z)] "
           f"with {samples} samples is {np.round(mc, 4).tolist()} (+- {np.round(stderr, 4).tolist()})",
           "per dimension: 0.5 * (mu^2 + sigma^2 - 1) - log sigma, summed (not averaged) over dimensions; "
           "the KL is never negative")
    expect_close(got, closed, "gaussian_kl(mu, log_sigma)", rtol=KL_RTOL, atol=KL_ATOL,
                 hint="0.5 * (mu^2 + exp(2 log_sigma) - 1) - log_sigma, summed over the last dimension")
    one = worker.call("gaussian_kl", mu[:1, :1], log_sigma[:1, :1])
    expect_close(one, elbo.gaussian_kl(mu[:1, :1], log_sigma[:1, :1]), "gaussian_kl of a (1, 1) batch",
                 rtol=KL_RTOL, atol=KL_ATOL)


BCE_HINT = ("the decoder gives logits, not probabilities: BCE = max(l, 0) - l x + log(1 + exp(-|l|)) "
            "(torch: F.binary_cross_entropy_with_logits(logits, x, reduction='none')), summed over the 784 pixels "
            "of each image")


@check(points=1)
def bernoulli_nll_from_logits(worker, ctx):
    """bernoulli_nll(logits, x): binary cross-entropy from logits, summed over pixels (moderate logits, float64)."""
    rng = ctx.rng("bernoulli_nll_from_logits")
    logits = rng.normal(0.0, 3.0, (4, IMAGE_DIM))
    x = rng.uniform(0, 1, (4, IMAGE_DIM))
    x[:, :100] = 0.0
    x[:, 100:200] = 1.0
    got = worker.call("bernoulli_nll", logits, x)
    expect_close(got, elbo.bernoulli_nll(logits, x), "bernoulli_nll(logits, x) on logits ~ N(0, 3^2)",
                 rtol=BCE_RTOL, atol=BCE_ATOL, hint=BCE_HINT)


@check(points=1)
def bernoulli_nll_is_stable_at_large_logits(worker, ctx):
    """bernoulli_nll stays exact in float32 at logits of +-40 and +-120 (computed from logits, not probabilities)."""
    large = np.tile(np.array([-120.0, -40.0, 40.0, 120.0]), (2, IMAGE_DIM // 4))
    x = np.tile(np.array([1.0, 0.3, 0.0, 0.5]), (2, IMAGE_DIM // 4))
    got = worker.call("bernoulli_nll", large, x, "float32")
    expect_close(got, elbo.bernoulli_nll(large, x), "bernoulli_nll in float32 with logits of +-40 and +-120",
                 rtol=1e-5, atol=1e-3,
                 hint="in float32, sigmoid(-120) is 0 and sigmoid(40) is 1, so a BCE on probabilities "
                      "(F.binary_cross_entropy(torch.sigmoid(l), x)) takes log(0), which torch clamps at -100; "
                      "compute it from the logits: F.binary_cross_entropy_with_logits or log-sigmoid")


# what negative_elbo is made of, as the template builds it: a failure there is named first
ELBO_PIECES = ("model_shapes_and_dtypes", "reparameterize_draws_the_sample", "kl_matches_closed_form_and_monte_carlo",
               "bernoulli_nll_from_logits")


@check(points=1, timeout=30, needs=ELBO_PIECES)
def negative_elbo_is_reconstruction_plus_kl(worker, ctx):
    """negative_elbo(model, x, eps) = BCE(x, decode(mu + sigma * eps)) + KL, per image, on the grader's eps."""
    rng = ctx.rng("negative_elbo_is_reconstruction_plus_kl")
    batch, latent, hidden = 8, 6, 64
    x = rng.uniform(0, 1, (batch, IMAGE_DIM)).astype(np.float32)
    eps = rng.standard_normal((batch, latent)).astype(np.float32)
    out = _fields(worker.call("model_outputs", 1, x, eps, latent, hidden), "mu", "log_sigma", "logits", "negative_elbo")
    mu = as_array(out["mu"], "encode(x)[0]", (batch, latent))
    log_sigma = as_array(out["log_sigma"], "encode(x)[1]", (batch, latent))
    logits = as_array(out["logits"], "decode(z)", (batch, IMAGE_DIM))
    want = elbo.bernoulli_nll(logits, x) + elbo.gaussian_kl(mu, log_sigma)
    as_array(out["negative_elbo"], "negative_elbo(model, x, eps)", (batch,),
             hint="one value per image: the sum over pixels and latent dimensions, no mean over the batch")
    expect_close(out["negative_elbo"], want, "negative_elbo(model, x, eps) per image", rtol=2e-5, atol=1e-3,
                 hint="encode, z = reparameterize(mu, log_sigma, eps) with the given eps, decode to logits, "
                      "then bernoulli_nll(logits, x) + gaussian_kl(mu, log_sigma): one value per image, no mean")


# ----------------------------------------------------------------------------- training


def _threshold(ctx, dataset: str, epochs: int) -> float:
    value = ctx.threshold("test_nelbo")
    if value is not None:
        return float(value)
    if (dataset, epochs) not in MEASURED_THRESHOLDS:
        raise RuntimeError(
            f"no measured test_nelbo threshold for dataset {dataset!r} at {epochs} epochs: measure one with "
            f"bench/vae_reference.py --dataset {dataset} --epochs {epochs} and set [vae.thresholds] test_nelbo"
        )
    return MEASURED_THRESHOLDS[(dataset, epochs)]


def _grid(images: np.ndarray, columns: int) -> np.ndarray:
    rows = -(-len(images) // columns)
    canvas = np.ones((rows * 29 + 1, columns * 29 + 1))
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        canvas[1 + r * 29 : 1 + r * 29 + 28, 1 + c * 29 : 1 + c * 29 + 28] = image.reshape(28, 28)
    return canvas


def _feedback_png(path, prior_means: np.ndarray, originals: np.ndarray, reconstructions: np.ndarray,
                  title: str) -> None:
    fig = figure(10, 5.4, dpi=80)
    axes = fig.subplots(1, 2)
    axes[0].imshow(_grid(prior_means, 8), cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("decoder means of 64 samples z ~ N(0, I)")
    pairs = np.concatenate([np.concatenate([originals[i : i + 8], reconstructions[i : i + 8]])
                            for i in range(0, 32, 8)])
    axes[1].imshow(_grid(pairs, 8), cmap="gray", vmin=0, vmax=1)
    axes[1].set_title("held-out images (odd rows) and reconstructions at z = mu")
    for ax in axes:
        ax.axis("off")
    fig.suptitle(title)
    save_png(fig, path)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(logits, dtype=np.float64)))


def _training_images(dataset: str) -> np.ndarray:
    """The training split's images, or SetupError saying how to get them (the machine's, not the student's)."""
    try:
        return np.asarray(datasets.load(dataset, "train", download=False).images)
    except (datasets.DatasetNotFound, datasets.ChecksumMismatch) as exc:
        raise SetupError(str(exc)) from None


def _weights(value) -> dict:
    weights = as_dict(value, "train()'s weights")
    expect(0 < len(weights) <= 1000 and all(isinstance(k, str) and len(k) <= 200 for k in weights),
           f"train(): the model's state dict has {len(weights)} entries")
    arrays = {k: as_array(v, f"weight {k}") for k, v in weights.items()}
    size = sum(a.nbytes for a in arrays.values())
    expect(size <= MAX_WEIGHTS_MB << 20, f"train(): the model's weights take {size >> 20} MB (at most {MAX_WEIGHTS_MB})")
    return arrays


# Why the evaluation workers' output and messages are not shown (the images must not reach the student).
ENCODER_WITHHELD = ("encode() was given held-out images, so what your code prints or raises from now on is not "
                    "shown (run your file locally to see it)")
DECODER_WITHHELD = ("decode() was given the codes z of held-out images, so what your code prints or raises from "
                    "now on is not shown (run your file locally to see it)")


def _load_trained(evaluator, latent_dim: int, hidden_dim: int, weights: dict, ctx) -> None:
    """The trained weights into a fresh VAE of the submission, in an evaluation worker (errors shown in full:
    the worker has seen nothing yet)."""
    try:
        evaluator.call("load_model", latent_dim, hidden_dim, weights, ctx.device, ctx.threads)
    except StudentError as exc:
        expect(False, f"the trained weights do not load into a fresh VAE(latent_dim={latent_dim}, "
               f"hidden_dim={hidden_dim}): {str(exc)[:500]}",
               "train() must return the VAE it trained, built as VAE(latent_dim, hidden_dim): the grader "
               "evaluates a fresh VAE with its state dict")


def _not_certified(trainer, encoder, copies: list) -> str:
    """Why, on this machine, a submission might have reached the held-out images other than through z ('' if
    it cannot): a copy a worker can read, or a worker that may have left something for the decoder."""
    reasons = []
    if readable := trainer.can_read(copies):
        reasons.append(f"a worker here can read {readable[0]}, which holds the held-out images (make it readable "
                       "by root only, as the Gradescope setup.sh does)")
    reasons += [r for r in (trainer.residue(), encoder.residue()) if r]
    return "; ".join(dict.fromkeys(reasons))


def _training_hint(train_seconds: float, budget: float, epochs: int) -> str:
    if train_seconds >= budget:
        return (f"train() ran for {train_seconds:.0f} s, its whole time budget of {budget:.0f} s, so it may have "
                f"stopped before its {epochs} epochs: the loss may well be right; make training faster (a smaller "
                "hidden_dim, no per-step .item() or print, the batch size the template uses) and check the time "
                "per epoch it prints when you run it locally")
    return ("check the loss: BCE summed over pixels + KL summed over latent dimensions, averaged over the batch; "
            "train with fresh noise eps each step; the decoder must output logits")


@check(points=6, timeout=TRAIN_TIMEOUT, kind="training", needs=("negative_elbo_is_reconstruction_plus_kl",))
def test_set_negative_elbo(worker, fresh_worker, ctx):
    """Train on the training split but a hidden held-out part; the grader's negative ELBO of the held-out
    images must beat the reference's threshold. They are encoded in a fresh worker, which is stopped (with
    everything it started and left) before another fresh worker decodes the grader's z: only z passes."""
    dataset, epochs = ctx.option("dataset"), int(ctx.option("epochs"))
    try:
        images = _training_images(dataset)
    except SetupError:
        if (dataset, epochs) != (DEFAULTS["dataset"], DEFAULTS["epochs"]):
            raise
        dataset, epochs = FALLBACK
        ctx.note(f"{DEFAULTS['dataset']} is not installed on this machine: graded on {dataset} (real MNIST digits "
                 f"shipped with the grader) at {epochs} epochs, with its own measured threshold (for the full data: "
                 f"sudo apt-get install dataset-fashion-mnist, or python -m graders.datasets fetch fashion-mnist)")
        images = _training_images(dataset)
    threshold = _threshold(ctx, dataset, epochs)
    shown = ctx.shown_threshold("test_nelbo", ".2f", threshold)
    train_idx, held_idx = elbo.holdout(len(images), ctx.rng("holdout"), float(ctx.option("holdout_fraction")))
    held_x = datasets.to_unit_interval(images[held_idx])
    budget = ctx.option("train_seconds")
    budget = float(budget.get(ctx.device, budget.get("cpu")) if isinstance(budget, dict) else budget)

    started = time.monotonic()
    info = _fields(worker.call("train", images[train_idx], ctx.worker_seed("train"), epochs, budget, ctx.device,
                               ctx.threads), "latent_dim", "hidden_dim", "weights")
    train_seconds = time.monotonic() - started
    latent_dim, hidden_dim = info["latent_dim"], info["hidden_dim"]
    expect(type(latent_dim) is int and 0 < latent_dim <= 1024, f"train: bad latent_dim {latent_dim!r}")
    expect(type(hidden_dim) is int and 0 < hidden_dim <= 1 << 16, f"train: bad hidden_dim {hidden_dim!r}")
    weights = _weights(info["weights"])
    worker.close()  # nothing that ran before may still run while held-out images are out, to relay them later

    encoder = fresh_worker()
    _load_trained(encoder, latent_dim, hidden_dim, weights, ctx)
    encoder.withhold_output(ENCODER_WITHHELD)
    try:
        mu, log_sigma = elbo.encode_all(held_x, lambda x: encoder.call("encode", x), latent_dim,
                                        int(ctx.option("eval_batch")))
    except ValueError as exc:
        raise CheckFailed(f"the trained model's outputs cannot be evaluated: {exc}") from None
    encoder.close()  # gone, with all it started and left, before the decoder starts
    uncertified = _not_certified(worker, encoder, datasets.copies(dataset, "train"))

    decoder = fresh_worker()
    _load_trained(decoder, latent_dim, hidden_dim, weights, ctx)
    decoder.withhold_output(DECODER_WITHHELD)

    def decode(z):
        return decoder.call("decode", z)

    rng = ctx.rng("test elbo")
    n_iw = min(int(ctx.option("iw_images")), len(held_x))
    try:
        nelbo = elbo.test_negative_elbo(held_x, mu, log_sigma, decode, rng, int(ctx.option("eval_batch")))
        iw = elbo.importance_weighted_bound(held_x[:n_iw], mu[:n_iw], log_sigma[:n_iw], decode, rng,
                                            int(ctx.option("iw_samples")))
    except ValueError as exc:
        raise CheckFailed(f"the trained model's outputs cannot be evaluated: {exc}") from None
    value = float(nelbo.mean())
    stderr = float(nelbo.std(ddof=1) / np.sqrt(len(nelbo)))
    ctx.metric("held-out negative ELBO", value, order="asc")  # Gradescope's leaderboard
    ctx.note(f"negative ELBO of {len(held_x)} held-out {dataset} training images (never sent to your code; "
             f"trained on the other {len(train_idx)}, {epochs} epochs, one eps per image): "
             f"{value:.2f} +- {stderr:.2f} nats/image (threshold {shown})")
    ctx.note(f"importance-weighted bound, k = {int(ctx.option('iw_samples'))}, first {n_iw} held-out images: "
             f"-log p(x) <= {float(iw.mean()):.2f} nats/image (negative ELBO on the same images: "
             f"{float(nelbo[:n_iw].mean()):.2f})")
    ctx.note(f"train() took {train_seconds:.1f} s as the grader measured it (budget {budget:.0f} s)")
    if uncertified:
        ctx.note(f"NOT CERTIFIED on this machine: {uncertified}; the score stands, but here a submission could "
                 "have reached the held-out images other than through z (docs/security.md)")

    path = ctx.artifact("vae_samples.png")
    if path is not None:
        z = ctx.rng("prior samples").standard_normal((64, latent_dim)).astype(np.float32)
        prior = _sigmoid(decode(z))
        recon = _sigmoid(decode(mu[:32].astype(np.float32)))
        _feedback_png(path, prior, held_x[:32], recon, f"{dataset}: held-out -ELBO {value:.1f} nats/image")
        ctx.note(f"feedback picture: {path.name}")

    expect(value <= threshold, f"held-out negative ELBO {value:.2f} nats/image is above the threshold {shown}",
           _training_hint(train_seconds, budget, epochs))
