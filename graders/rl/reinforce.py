"""The REINFORCE maths every policy-gradient grader shares (grader side, numpy, float64).

The grader chooses network weights and a batch, sends them as numpy arrays, and the
adapter builds the *grader's* architecture from them in the worker
(`graders_worker.torch_utils.torch_mlp`), so the student's loss is differentiated
through known weights. The grader computes the expected gradients here, without
torch, so the two sides share no code that could be patched.

Network: logits (or value) = tanh(obs @ W1.T + b1) @ W2.T + b2, torch's Linear layout.
"""

from __future__ import annotations

import math

import numpy as np

from graders_worker.torch_utils import PARAM_NAMES

__all__ = ["PARAM_NAMES", "binomial_chi_squared", "chi_squared_sf_even", "entropy_gradient", "mlp_forward",
           "mse_gradient", "output_gradient", "random_mlp", "reinforce_estimator", "softmax",
           "softmax_twice_estimator", "standardized"]


def random_mlp(rng: np.random.Generator, n_in: int, hidden: int, n_out: int, scale: float = 1.0) -> dict:
    """Weights for the grader's MLP (float32, as they travel), drawn from the grading seed."""
    return {
        "0.weight": (rng.normal(size=(hidden, n_in)) * scale / math.sqrt(n_in)).astype(np.float32),
        "0.bias": (rng.normal(size=hidden) * 0.1).astype(np.float32),
        "2.weight": (rng.normal(size=(n_out, hidden)) * scale / math.sqrt(hidden)).astype(np.float32),
        "2.bias": (rng.normal(size=n_out) * 0.1).astype(np.float32),
    }


def mlp_forward(weights: dict, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hidden activations, outputs) of the grader's MLP, in float64."""
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    hidden = np.tanh(np.asarray(obs, dtype=np.float64) @ w["0.weight"].T + w["0.bias"])
    return hidden, hidden @ w["2.weight"].T + w["2.bias"]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def output_gradient(weights: dict, obs: np.ndarray, d_out: np.ndarray) -> dict:
    """Gradient w.r.t. the weights of sum_i d_out[i] . output_i (backpropagation by hand)."""
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    obs = np.asarray(obs, dtype=np.float64)
    hidden, _ = mlp_forward(weights, obs)
    d_pre = (d_out @ w["2.weight"]) * (1.0 - hidden**2)
    return {"0.weight": d_pre.T @ obs, "0.bias": d_pre.sum(0), "2.weight": d_out.T @ hidden, "2.bias": d_out.sum(0)}


def reinforce_estimator(weights: dict, obs: np.ndarray, actions: np.ndarray, weights_per_step: np.ndarray) -> dict:
    """(1/B) sum_t w_t grad log pi(a_t|s_t): REINFORCE with w_t = G_t (or an advantage)."""
    _, logits = mlp_forward(weights, obs)
    one_hot = np.eye(logits.shape[1])[np.asarray(actions, dtype=np.int64)]
    d_logits = (one_hot - softmax(logits)) * np.asarray(weights_per_step, dtype=np.float64)[:, None]
    return output_gradient(weights, obs, d_logits / len(obs))


def softmax_twice_estimator(weights: dict, obs: np.ndarray, actions: np.ndarray, weights_per_step: np.ndarray) -> dict:
    """The estimator a loss gets from log_softmax(softmax(logits)): softmax applied to probabilities.

    With p = softmax(l) and q = softmax(p): d log q_a / d p = e_a - q, and the softmax's
    Jacobian diag(p) - p p^T (symmetric) carries it back to the logits.
    """
    _, logits = mlp_forward(weights, obs)
    p = softmax(logits)
    one_hot = np.eye(logits.shape[1])[np.asarray(actions, dtype=np.int64)]
    d_p = one_hot - softmax(p)
    d_logits = (p * d_p - p * np.sum(p * d_p, axis=1, keepdims=True)) * np.asarray(weights_per_step, np.float64)[:, None]
    return output_gradient(weights, obs, d_logits / len(obs))


def entropy_gradient(weights: dict, obs: np.ndarray) -> dict:
    """Gradient of the mean policy entropy (1/B) sum_t H(pi(.|s_t)): an entropy bonus's term."""
    _, logits = mlp_forward(weights, obs)
    p = softmax(logits)
    log_p = np.log(p)
    entropy = -np.sum(p * log_p, axis=1, keepdims=True)
    return output_gradient(weights, obs, -p * (log_p + entropy) / len(obs))


def standardized(values: np.ndarray, ddof: int = 0) -> np.ndarray:
    """(x - mean) / std: the per-batch normalisation of returns or advantages."""
    values = np.asarray(values, dtype=np.float64)
    return (values - values.mean()) / values.std(ddof=ddof)


def mse_gradient(weights: dict, obs: np.ndarray, returns: np.ndarray) -> tuple[float, dict]:
    """(loss, gradient) of mean((V(s) - G)^2) for the grader's value MLP (one output)."""
    _, values = mlp_forward(weights, obs)
    error = values[:, 0] - np.asarray(returns, dtype=np.float64)
    return float(np.mean(error**2)), output_gradient(weights, obs, (2.0 * error / len(error))[:, None])


def chi_squared_sf_even(statistic: float, dof: int) -> float:
    """P(X >= statistic) for X ~ chi-squared with an even number of degrees of freedom (exact)."""
    assert dof % 2 == 0 and dof > 0
    half = statistic / 2.0
    term, total = 1.0, 1.0
    for i in range(1, dof // 2):
        term *= half / i
        total += term
    return math.exp(-half) * total


def binomial_chi_squared(counts: np.ndarray, trials: int, probabilities: np.ndarray) -> tuple[float, float]:
    """Pearson's statistic of k independent binomial counts against their probabilities, and its p-value.

    Each count contributes (x - n p)^2 / (n p (1 - p)), a chi-squared with 1 degree of
    freedom; k must be even (the exact survival function above).
    """
    expected = trials * probabilities
    statistic = float(np.sum((counts - expected) ** 2 / (expected * (1 - probabilities))))
    return statistic, chi_squared_sf_even(statistic, len(counts))
