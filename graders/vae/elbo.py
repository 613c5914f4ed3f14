"""The grader's own ELBO arithmetic, in float64 numpy (trusted; never imports student code).

Everything that decides a grade is computed here from plain arrays the worker
returned: the encoder's (mu, log_sigma) and the decoder's logits. The noise eps is
drawn by the caller (the grader), never by the worker.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

LOG_2PI = float(np.log(2.0 * np.pi))


def bernoulli_nll(logits: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Binary cross-entropy of grey levels x under Bernoulli(sigmoid(logits)), summed over the last axis.

    Stable form: max(l, 0) - l x + log(1 + exp(-|l|)).
    """
    logits = np.asarray(logits, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    return np.sum(np.maximum(logits, 0.0) - logits * x + np.log1p(np.exp(-np.abs(logits))), axis=-1)


def gaussian_kl(mu: np.ndarray, log_sigma: np.ndarray) -> np.ndarray:
    """KL(N(mu, sigma^2) || N(0, I)) summed over the last axis."""
    mu = np.asarray(mu, dtype=np.float64)
    log_sigma = np.asarray(log_sigma, dtype=np.float64)
    return np.sum(0.5 * (mu**2 + np.exp(2.0 * log_sigma) - 1.0) - log_sigma, axis=-1)


def gaussian_kl_monte_carlo(mu: np.ndarray, log_sigma: np.ndarray, eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Monte-Carlo KL and its standard error: log q(z) - log p(z) averaged over eps's first axis (S, ..., D)."""
    mu = np.asarray(mu, dtype=np.float64)
    log_sigma = np.asarray(log_sigma, dtype=np.float64)
    z = mu + np.exp(log_sigma) * eps
    log_ratio = np.sum(-0.5 * eps**2 - log_sigma + 0.5 * z**2, axis=-1)  # log q - log p; the 2 pi terms cancel
    return log_ratio.mean(axis=0), log_ratio.std(axis=0) / np.sqrt(len(eps))


def log_normal(z: np.ndarray, mu: np.ndarray, log_sigma: np.ndarray) -> np.ndarray:
    """log N(z; mu, diag(sigma^2)) summed over the last axis."""
    return np.sum(-0.5 * LOG_2PI - log_sigma - 0.5 * ((z - mu) * np.exp(-log_sigma)) ** 2, axis=-1)


def _finite(name: str, array: np.ndarray) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"the {name} contain nan or inf")
    return array


def encode_all(
    x: np.ndarray,
    encode: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    latent_dim: int,
    batch_size: int = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """(mu, log_sigma) of every image of x, each (N, latent_dim), from the worker's encoder in batches.

    Every image is encoded before anything is decoded, so the encoder's worker can be stopped
    (and seen gone) before the decoder's starts. The shapes are checked here (ValueError);
    messages hold no value the encoder chose, since it saw the images.
    """
    mus, log_sigmas = [], []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        out = encode(xb)
        if not isinstance(out, (list, tuple)) or len(out) != 2:
            raise ValueError("the encoder must give two arrays (mu, log_sigma)")
        mu, log_sigma = _finite("encoder's mu", out[0]), _finite("encoder's log_sigma", out[1])
        if mu.shape != (len(xb), latent_dim) or log_sigma.shape != (len(xb), latent_dim):
            raise ValueError(f"the encoder must give mu and log_sigma of shape {(len(xb), latent_dim)} each")
        mus.append(mu)
        log_sigmas.append(log_sigma)
    return np.concatenate(mus), np.concatenate(log_sigmas)


def _decoded(decode: Callable[[np.ndarray], np.ndarray], z: np.ndarray, shape: tuple) -> np.ndarray:
    logits = decode(z.astype(np.float32))
    if not isinstance(logits, np.ndarray) or logits.shape != shape:
        raise ValueError(f"the decoder must give logits of shape {shape}")
    return _finite("decoder's logits", logits)


def test_negative_elbo(
    x: np.ndarray,
    mu: np.ndarray,
    log_sigma: np.ndarray,
    decode: Callable[[np.ndarray], np.ndarray],
    rng: np.random.Generator,
    batch_size: int = 1000,
) -> np.ndarray:
    """Per-image one-sample negative ELBO (nats) of x encoded as (mu, log_sigma), with eps drawn from rng.

    decode is the worker's decoder seen as a plain-array map; a wrong shape raises ValueError.
    """
    out = []
    for start in range(0, len(x), batch_size):
        xb, mb, lb = (a[start : start + batch_size] for a in (x, mu, log_sigma))
        z = mb + np.exp(lb) * rng.standard_normal(mb.shape)
        logits = _decoded(decode, z, xb.shape)
        out.append(bernoulli_nll(logits, xb) + gaussian_kl(mb, lb))
    return np.concatenate(out)


def importance_weighted_bound(
    x: np.ndarray,
    mu: np.ndarray,
    log_sigma: np.ndarray,
    decode: Callable[[np.ndarray], np.ndarray],
    rng: np.random.Generator,
    samples: int,
    batch_size: int = 100,
) -> np.ndarray:
    """Per-image -log p(x) upper bound from k = `samples` importance samples (Burda et al., 2016).

    -log (1/k) sum_k p(x|z_k) p(z_k) / q(z_k|x), with z_k ~ q(z|x) = N(mu, sigma^2) drawn here.
    """
    out = []
    latent_dim = mu.shape[1]
    for start in range(0, len(x), batch_size):
        xb, mb, lb = (a[start : start + batch_size] for a in (x, mu, log_sigma))
        z = mb + np.exp(lb) * rng.standard_normal((samples, *mb.shape))  # (k, B, D)
        logits = _decoded(decode, z.reshape(-1, latent_dim), (samples * len(xb), xb.shape[1]))
        log_px_z = -bernoulli_nll(logits.reshape(samples, len(xb), -1), xb[None])
        log_pz = log_normal(z, 0.0, np.zeros_like(z))
        log_qz = log_normal(z, mb, lb)
        log_w = log_px_z + log_pz - log_qz  # (k, B)
        top = log_w.max(axis=0)
        out.append(-(top + np.log(np.mean(np.exp(log_w - top), axis=0))))
    return np.concatenate(out)


def expected_f_gradients(
    mu: np.ndarray, log_sigma: np.ndarray, eps: np.ndarray, f, h: float
) -> tuple[np.ndarray, np.ndarray]:
    """Central finite differences of F(mu, log_sigma) = mean_s f(mu + exp(log_sigma) eps_s).

    Common random numbers: the same eps (S, *mu.shape) at +h and -h, so the
    difference measures the pathwise gradient, not the sampling noise.
    f maps z (S, *mu.shape) to (S, *mu.shape) elementwise terms that are summed.
    """

    def objective(m: np.ndarray, ls: np.ndarray) -> np.ndarray:
        return f(m + np.exp(ls) * eps).mean(axis=0)  # elementwise, so each coordinate separates

    grad_mu = (objective(mu + h, log_sigma) - objective(mu - h, log_sigma)) / (2 * h)
    grad_ls = (objective(mu, log_sigma + h) - objective(mu, log_sigma - h)) / (2 * h)
    return grad_mu, grad_ls


def holdout(n: int, rng: np.random.Generator, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(indices to train on, indices held out) of n training images; the held-out ones are never sent."""
    order = rng.permutation(n)
    held = max(1, round(n * fraction))
    return np.sort(order[held:]), np.sort(order[:held])
