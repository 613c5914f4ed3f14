"""The grader's own controller: weights, and the exact quantities the checks compare with.

The unit checks send these weights to the worker, where the adapter loads them into
torch's `nn.LSTMCell`, `nn.Embedding` and `nn.Linear` (graders_worker/adapters/nas.py,
`GraderController`) and runs the submission's functions on that controller. Here,
in the grader's process, the same controller is written out gate by gate in float64
(no torch module shared with the worker side), and torch's autograd gives the exact
gradients of the sequence log-probabilities.

The controller emits one token per decision d = 0..D-1:
    x_0 = start,  x_d = embed_{d-1}[token_{d-1}]
    (h_d, c_d) = LSTMCell(x_d, (h_{d-1}, c_{d-1})),  h_{-1} = c_{-1} = 0
    logits_d = heads_d(h_d),  token_d ~ softmax(logits_d)
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def param_names(choices) -> list[str]:
    names = ["start"] + [f"embed.{d}.weight" for d in range(len(choices) - 1)]
    names += ["cell.weight_ih", "cell.weight_hh", "cell.bias_ih", "cell.bias_hh"]
    return names + [f"heads.{d}.{p}" for d in range(len(choices)) for p in ("weight", "bias")]


def random_controller(rng: np.random.Generator, choices, hidden: int, scale: float = 1.0) -> dict:
    """Weights (float32, as they travel) with logits spread enough that every decision matters."""
    h = hidden
    w = {"start": rng.normal(size=h)}
    for d, k in enumerate(choices[:-1]):
        w[f"embed.{d}.weight"] = rng.normal(size=(k, h))
    w["cell.weight_ih"] = rng.normal(size=(4 * h, h)) / math.sqrt(h)
    w["cell.weight_hh"] = rng.normal(size=(4 * h, h)) / math.sqrt(h)
    w["cell.bias_ih"], w["cell.bias_hh"] = rng.normal(size=4 * h) * 0.1, rng.normal(size=4 * h) * 0.1
    for d, k in enumerate(choices):
        w[f"heads.{d}.weight"] = rng.normal(size=(k, h)) * scale * 2.0 / math.sqrt(h)
        w[f"heads.{d}.bias"] = rng.normal(size=k) * 0.3
    return {name: w[name].astype(np.float32) for name in param_names(choices)}


def _torch_weights(weights: dict):
    import torch

    return {k: torch.tensor(np.asarray(v, dtype=np.float64), requires_grad=True) for k, v in weights.items()}


def _logits(w: dict, choices, tokens, greedy: bool = False):
    """Teacher-forced logits of every decision (list of (n, K_d) float64 tensors); with greedy=True
    the tokens fed back are each step's argmax and `tokens` only gives the batch size."""
    import torch

    n, hidden = len(tokens), w["start"].shape[0]
    h = c = torch.zeros(n, hidden, dtype=torch.float64)
    x = w["start"].expand(n, hidden)
    out, fed = [], []
    for d in range(len(choices)):
        gates = x @ w["cell.weight_ih"].T + w["cell.bias_ih"] + h @ w["cell.weight_hh"].T + w["cell.bias_hh"]
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        logits = h @ w[f"heads.{d}.weight"].T + w[f"heads.{d}.bias"]
        out.append(logits)
        token = logits.argmax(dim=1) if greedy else torch.as_tensor(np.asarray(tokens)[:, d], dtype=torch.int64)
        fed.append(token)
        if d + 1 < len(choices):
            x = w[f"embed.{d}.weight"][token]
    return out, torch.stack(fed, dim=1)


def decision_log_probs(weights: dict, choices, tokens: np.ndarray) -> np.ndarray:
    """log pi(token_d | tokens before d) for each row and decision: (n, D) float64."""
    import torch

    w = _torch_weights(weights)
    with torch.no_grad():
        logits, _ = _logits(w, choices, tokens)
        t = torch.as_tensor(np.asarray(tokens), dtype=torch.int64)
        return torch.stack([torch.log_softmax(lg, dim=1).gather(1, t[:, d:d + 1])[:, 0]
                            for d, lg in enumerate(logits)], dim=1).numpy()


def log_probs(weights: dict, choices, tokens: np.ndarray) -> np.ndarray:
    """log p(tokens_i) for each row, float64."""
    return decision_log_probs(weights, choices, tokens).sum(axis=1)


def weighted_log_prob_gradient(weights: dict, choices, tokens: np.ndarray, coefficients: np.ndarray) -> dict:
    """Gradient of sum_i coefficients_i log p(tokens_i) w.r.t. every weight, float64 numpy."""
    import torch

    w = _torch_weights(weights)
    logits, _ = _logits(w, choices, tokens)
    t = torch.as_tensor(np.asarray(tokens), dtype=torch.int64)
    total = sum(torch.log_softmax(lg, dim=1).gather(1, t[:, d:d + 1])[:, 0] for d, lg in enumerate(logits))
    objective = (torch.as_tensor(np.asarray(coefficients, dtype=np.float64)) * total).sum()
    grads = torch.autograd.grad(objective, [w[k] for k in param_names(choices)], allow_unused=True)
    return {k: (np.zeros(np.shape(weights[k])) if g is None else g.numpy())
            for k, g in zip(param_names(choices), grads)}


def greedy(weights: dict, choices) -> np.ndarray:
    """The tokens of greedy decoding: each decision's argmax fed to the next."""
    import torch

    with torch.no_grad():
        _, tokens = _logits(_torch_weights(weights), choices, np.zeros((1, len(choices)), dtype=np.int64), greedy=True)
    return tokens[0].numpy()


def sequence_distribution(weights: dict, choices) -> tuple[np.ndarray, np.ndarray]:
    """Every token sequence (row-major) and its exact probability."""
    sequences = np.array(list(itertools.product(*[range(k) for k in choices])), dtype=np.int64)
    return sequences, np.exp(log_probs(weights, choices, sequences))
