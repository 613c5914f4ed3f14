"""Glue the VAE grader calls inside the (untrusted) worker process.

Every function is called as ``fn(submission_module, *plain_args)`` and returns plain
data (numpy arrays, numbers). ``train`` returns the trained model's weights as arrays;
the grader loads them (``load_model``) into two fresh workers, one that only encodes the
held-out images and one that only decodes the grader's z, so nothing but z passes from
the code that sees an image to the code that reconstructs it. Nothing returned here is
trusted by the grader: it only uses encoder and decoder outputs and recomputes every
number that decides a grade itself.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from graders_worker.arrays import to_numpy

_STATE: dict = {}
_EVAL_BATCH = 2000


def _tensor(array, dtype=torch.float64) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array), dtype=dtype)


def _grad(tensor: torch.Tensor) -> np.ndarray:
    return np.zeros(tuple(tensor.shape)) if tensor.grad is None else to_numpy(tensor.grad)


# ----------------------------------------------------------------------------- unit checks


def reparameterize(sub, mu, log_sigma, eps):
    """The student's z for the grader's (mu, log_sigma, eps), in float64."""
    with torch.no_grad():
        return to_numpy(sub.reparameterize(_tensor(mu), _tensor(log_sigma), _tensor(eps)))


def reparameterize_linear_gradients(sub, mu, log_sigma, eps, weights):
    """Gradients of sum(weights * z) with respect to mu and log_sigma."""
    mu_t = _tensor(mu).requires_grad_(True)
    ls_t = _tensor(log_sigma).requires_grad_(True)
    z = sub.reparameterize(mu_t, ls_t, _tensor(eps))
    (z * _tensor(weights)).sum().backward()
    return {"z": to_numpy(z), "grad_mu": _grad(mu_t), "grad_log_sigma": _grad(ls_t)}


def reparameterize_expectation_gradients(sub, mu, log_sigma, eps, a, b, c):
    """Autograd gradients of F = mean_s sum_j f_j(z_sj), z = reparameterize(mu, log_sigma, eps_s).

    f_j(z) = a_j sin(b_j z) + c_j z^2, coefficients chosen by the grader; eps has
    shape (S, *mu.shape) and is broadcast by the student's function.
    """
    mu_t = _tensor(mu).requires_grad_(True)
    ls_t = _tensor(log_sigma).requires_grad_(True)
    eps_t = _tensor(eps)
    z = sub.reparameterize(mu_t.expand_as(eps_t), ls_t.expand_as(eps_t), eps_t)
    a_t, b_t, c_t = _tensor(a), _tensor(b), _tensor(c)
    objective = (a_t * torch.sin(b_t * z) + c_t * z**2).mean(dim=0).sum()
    objective.backward()
    return {"grad_mu": _grad(mu_t), "grad_log_sigma": _grad(ls_t)}


def gaussian_kl(sub, mu, log_sigma, dtype="float64"):
    with torch.no_grad():
        dt = getattr(torch, dtype)
        return to_numpy(sub.gaussian_kl(_tensor(mu, dt), _tensor(log_sigma, dt)))


def bernoulli_nll(sub, logits, x, dtype="float64"):
    with torch.no_grad():
        dt = getattr(torch, dtype)
        return to_numpy(sub.bernoulli_nll(_tensor(logits, dt), _tensor(x, dt)))


def model_outputs(sub, seed, x, eps, latent_dim, hidden_dim, with_loss=True):
    """A freshly initialised model's outputs on the grader's x and eps, with dtypes as the student made them.

    ``logits`` decodes z = mu + exp(log_sigma) * eps computed here (not by the
    student's reparameterize), so the grader can recompute the loss of the same
    weights from these outputs and compare it with the student's negative_elbo (left out
    with `with_loss=False`).
    """
    torch.manual_seed(int(seed))
    model = sub.VAE(latent_dim=int(latent_dim), hidden_dim=int(hidden_dim))
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    et = torch.as_tensor(np.asarray(eps, dtype=np.float32))
    with torch.no_grad():
        mu, log_sigma = model.encode(xt)
        logits = model.decode(mu + torch.exp(log_sigma) * et)
        out = {"mu": to_numpy(mu), "log_sigma": to_numpy(log_sigma), "logits": to_numpy(logits)}
        if with_loss:
            out["negative_elbo"] = to_numpy(sub.negative_elbo(model, xt, et))
    return out


# ----------------------------------------------------------------------------- training


def train(sub, images, seed, epochs, time_budget_s, device, threads):
    """Train the student's VAE on the grader's training images (uint8 (N, 28, 28)).

    Returns the weights (the state dict as arrays), the sizes to rebuild the model with,
    and the seconds train() took (the grader only shows them).
    """
    torch.set_num_threads(int(threads))
    x = np.asarray(images, dtype=np.float32).reshape(len(images), -1) / np.float32(255.0)
    args = sub.Args(seed=int(seed), epochs=int(epochs), time_budget_s=float(time_budget_s),
                    device=str(device), threads=int(threads))
    start = time.monotonic()
    model = sub.train(args, x)
    seconds = time.monotonic() - start
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"train() must return the trained VAE (a torch.nn.Module), not {type(model).__name__}")
    weights = {name: to_numpy(value.detach().cpu()) for name, value in model.state_dict().items()}
    return {"seconds": seconds, "latent_dim": int(getattr(model, "latent_dim", args.latent_dim)),
            "hidden_dim": int(getattr(model, "hidden_dim", args.hidden_dim)), "weights": weights}


def load_model(sub, latent_dim, hidden_dim, weights, device, threads):
    """A fresh VAE(latent_dim, hidden_dim) of the submission with the trained weights, kept here."""
    torch.set_num_threads(int(threads))
    model = sub.VAE(latent_dim=int(latent_dim), hidden_dim=int(hidden_dim))
    model.load_state_dict({name: torch.as_tensor(np.asarray(value)) for name, value in weights.items()}, strict=True)
    model.to(str(device)).eval()
    _STATE["model"] = model
    _STATE["device"] = torch.device(str(device))
    return True


def _model():
    if "model" not in _STATE:
        raise RuntimeError("no trained model in this worker (train() failed or the worker restarted)")
    return _STATE["model"], _STATE["device"]


def _batched(fn, array: np.ndarray):
    model, device = _model()
    outs = []
    with torch.no_grad():
        for start in range(0, len(array), _EVAL_BATCH):
            chunk = torch.as_tensor(np.asarray(array[start : start + _EVAL_BATCH], dtype=np.float32), device=device)
            outs.append(fn(model, chunk))
    return outs


def encode(sub, x):
    """The trained encoder's (mu, log_sigma) for images x (B, 784) float32."""
    outs = _batched(lambda m, xb: m.encode(xb), x)
    return [np.concatenate([to_numpy(o[i]) for o in outs]).astype(np.float32) for i in (0, 1)]


def decode(sub, z):
    """The trained decoder's logits for latents z (B, latent_dim)."""
    return np.concatenate([to_numpy(o) for o in _batched(lambda m, zb: m.decode(zb), z)]).astype(np.float32)
