"""The grader's own exact answers on a finite MDP (trusted; float64 throughout).

Two independent witnesses for every gradient the student computes by hand:

- autograd: torch differentiates the exact objective J(theta) = sum_s h(s) v_pi(s),
  evaluated by backward induction (horizon H) or by a linear solve (certain termination);
- finite differences: central differences of J (and of v_pi) evaluated by a different
  route, the truncated series sum_t P_pi^t r_pi in numpy.

The visit counts come from autograd too, without any linear algebra of their own:
dJ/dR[t, s, a] = Pr(S_t = s, A_t = a), so eta is a derivative of J with respect to the
rewards. Conventions for the arrays are those of ``mdps.py``.
"""

from __future__ import annotations

import numpy as np
import torch

from graders.policy_gradient.mdps import MAX_EPISODE_STEPS

DTYPE = torch.float64


def _tensor(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=DTYPE)


def policy(theta: torch.Tensor, valid: np.ndarray) -> torch.Tensor:
    """Masked softmax; invalid actions get probability 0 and no gradient."""
    mask = torch.as_tensor(np.asarray(valid, dtype=bool))
    return torch.softmax(torch.where(mask, theta, torch.tensor(-torch.inf, dtype=DTYPE)), dim=1)


def values(mdp: dict, theta: torch.Tensor, rewards: torch.Tensor | None = None):
    """(v, q) of the softmax policy, differentiable in theta (and in ``rewards``).

    Horizon H: v[k, s], q[k, s, a] with k = steps to go (v[0] = q[0] = 0), and
    ``rewards[t, s, a]`` is the reward function at time t = H - k.
    Certain termination: v[s], q[s, a] by a linear solve; ``rewards[s, a]``.
    """
    P, H = _tensor(mdp["P"]), mdp["H"]
    S, A = mdp["R"].shape
    pi = policy(theta, mdp["valid"])
    if H is None:
        R = _tensor(mdp["R"]) if rewards is None else rewards
        P_pi = torch.einsum("sa,sax->sx", pi, P)
        r_pi = (pi * R).sum(1)
        v = torch.linalg.solve(torch.eye(S, dtype=DTYPE) - P_pi, r_pi)
        return v, R + P @ v
    R = _tensor(mdp["R"]).expand(H, S, A) if rewards is None else rewards
    v = [torch.zeros(S, dtype=DTYPE)]
    q = [torch.zeros(S, A, dtype=DTYPE)]
    for k in range(1, H + 1):
        q.append(R[H - k] + P @ v[-1])
        v.append((pi * q[-1]).sum(1))
    return torch.stack(v), torch.stack(q)


def start_values(mdp: dict, theta: torch.Tensor, rewards: torch.Tensor | None = None) -> torch.Tensor:
    """v_pi(s) for a whole episode from s: v[H] with a horizon, v without one."""
    v, _ = values(mdp, theta, rewards)
    return v[mdp["H"]] if mdp["H"] is not None else v


def objective(mdp: dict, theta: torch.Tensor, rewards: torch.Tensor | None = None) -> torch.Tensor:
    """J(theta) = sum_s h(s) v_pi(s)."""
    return _tensor(mdp["h"]) @ start_values(mdp, theta, rewards)


def exact_gradient(mdp: dict, theta: np.ndarray) -> np.ndarray:
    """grad J(theta) by autograd, shape [S, A]."""
    theta_t = _tensor(theta).requires_grad_(True)
    (grad,) = torch.autograd.grad(objective(mdp, theta_t), theta_t)
    return grad.numpy()


def value_jacobian(mdp: dict, theta: np.ndarray) -> np.ndarray:
    """d v_pi(s) / d theta[x, a] by autograd, shape [S, S, A] (start state first)."""
    jac = torch.autograd.functional.jacobian(lambda th: start_values(mdp, th), _tensor(theta))
    return jac.numpy()


def start_values_numpy(mdp: dict, theta: np.ndarray) -> np.ndarray:
    """v_pi(s) for every start s by the truncated series sum_t P_pi^t r_pi (independent of torch)."""
    valid = mdp["valid"]
    logits = np.where(valid, theta, -np.inf)
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    pi = weights / weights.sum(axis=1, keepdims=True)
    P_pi = np.einsum("sa,sax->sx", pi, mdp["P"])
    r_pi = (pi * mdp["R"]).sum(1)
    total, term = np.zeros_like(r_pi), r_pi
    for _ in range(mdp["H"] if mdp["H"] is not None else MAX_EPISODE_STEPS):
        total += term
        term = P_pi @ term
    return total


def objective_numpy(mdp: dict, theta: np.ndarray) -> float:
    """J(theta) = h . v_pi, by the series."""
    return float(np.asarray(mdp["h"], dtype=np.float64) @ start_values_numpy(mdp, theta))


def finite_differences(fn, theta: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Central differences of fn at theta, shape fn(theta).shape + theta.shape.

    Error O(eps^2) (truncation) + O(1e-16 / eps) (rounding): about 1e-10 here.
    """
    theta = np.asarray(theta, dtype=np.float64)
    columns = []
    for index in np.ndindex(theta.shape):
        step = np.zeros_like(theta)
        step[index] = eps
        columns.append((np.asarray(fn(theta + step)) - np.asarray(fn(theta - step))) / (2 * eps))
    stacked = np.stack(columns, axis=-1)
    return stacked.reshape(stacked.shape[:-1] + theta.shape)


def finite_difference_gradient(mdp: dict, theta: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """grad J by central differences of the series, shape [S, A]."""
    return finite_differences(lambda th: objective_numpy(mdp, th), theta, eps)


def finite_difference_value_jacobian(mdp: dict, theta: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """d v_pi(s) / d theta by central differences of the series, shape [S, S, A]."""
    return finite_differences(lambda th: start_values_numpy(mdp, th), theta, eps)


def exact_quantities(mdp: dict, theta: np.ndarray) -> dict:
    """Everything a unit check compares with: pi, v, q, eta, mu, grad J.

    eta is indexed like the template's visit counts: eta[t, s] = Pr(S_t = s) for
    t < H with a horizon, eta[s] = expected visits of s without one.
    """
    S, A = mdp["R"].shape
    H = mdp["H"]
    theta_t = _tensor(theta).requires_grad_(True)
    base = _tensor(mdp["R"])
    rewards = (base.expand(H, S, A).clone() if H is not None else base.clone()).requires_grad_(True)
    J = objective(mdp, theta_t, rewards)
    grad_theta, grad_rewards = torch.autograd.grad(J, (theta_t, rewards))
    with torch.no_grad():
        v, q = values(mdp, theta_t)
        pi = policy(theta_t, mdp["valid"])
    eta = grad_rewards.sum(-1).numpy()  # sum_a Pr(S_t = s, A_t = a)
    return {
        "pi": pi.numpy(),
        "v": v.numpy(),
        "q": q.numpy(),
        "eta": eta,
        "mu": eta / eta.sum(),
        "J": float(J.detach()),
        "grad": grad_theta.numpy(),
    }


def k_step_probabilities(mdp: dict, theta: np.ndarray, n_steps: int) -> np.ndarray:
    """M[k, s, x] = Pr(S_k = x | S_0 = s) for k < n_steps (matrix powers of P_pi)."""
    with torch.no_grad():
        pi = policy(_tensor(theta), mdp["valid"])
        P_pi = torch.einsum("sa,sax->sx", pi, _tensor(mdp["P"]))
        powers = [torch.eye(P_pi.shape[0], dtype=DTYPE)]
        for _ in range(1, n_steps):
            powers.append(powers[-1] @ P_pi)
    return torch.stack(powers).numpy()


def per_episode_estimates(episodes: dict, theta: np.ndarray, valid: np.ndarray, baseline: np.ndarray | None = None,
                          weights: str = "return_to_go") -> np.ndarray:
    """The grader's own REINFORCE estimate of every episode, [N, S, A].

    g_n = sum over the real steps t of (G_t - b_t(S_t)) (onehot(A_t) - pi(.|S_t)) in row S_t,
    with G_t = R_{t+1} + ... + R_T (a backward loop; the reference uses cumsum). `weights`
    names the wrong answers the grader recognises: "whole_return" weights every step by
    G_0, "first_baseline" subtracts the time-0 baseline b_0(S_t) at every step.
    """
    states, actions, rewards, lengths = (np.asarray(episodes[k]) for k in ("states", "actions", "rewards", "lengths"))
    N, T = states.shape
    S, A = np.shape(theta)
    logits = np.where(valid, theta, -np.inf)
    pi = np.exp(logits - logits.max(axis=1, keepdims=True))
    pi /= pi.sum(axis=1, keepdims=True)
    real = np.arange(T)[None, :] < lengths[:, None]
    to_go, running = np.zeros((N, T)), np.zeros(N)
    for t in reversed(range(T)):
        running = running + np.where(real[:, t], rewards[:, t], 0.0)
        to_go[:, t] = running
    weight = np.repeat(to_go[:, :1], T, axis=1) if weights == "whole_return" else to_go
    if baseline is not None:
        times = np.zeros(T, dtype=np.int64) if weights == "first_baseline" else np.arange(T)
        weight = weight - np.asarray(baseline)[times[None, :], states]
    weight = np.where(real, weight, 0.0)
    estimates = np.zeros((N, S, A))
    n = np.arange(N)
    for t in range(T):
        score = -pi[states[:, t]] * weight[:, t, None]
        score[n, actions[:, t]] += weight[:, t]
        np.add.at(estimates, (n, states[:, t]), score)
    return estimates
