"""Torch helpers adapters share: the grader's MLP from its weights, gradients as numpy, scalar losses."""

from __future__ import annotations

import numpy as np

PARAM_NAMES = ("0.weight", "0.bias", "2.weight", "2.bias")  # keys of nn.Sequential(Linear, Tanh, Linear)

def torch_mlp(weights: dict):
    """The grader's MLP as a torch module with exactly the weights given (float32)."""
    import torch
    import torch.nn as nn

    n_in, hidden, n_out = weights["0.weight"].shape[1], weights["0.weight"].shape[0], weights["2.weight"].shape[0]
    net = nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, n_out))
    net.load_state_dict({k: torch.as_tensor(np.asarray(weights[k], dtype=np.float32)) for k in PARAM_NAMES})
    return net


def gradients(loss, params: dict) -> dict:
    """d loss / d params as numpy arrays; zeros where the loss does not depend on a parameter."""
    import torch

    names = list(params)
    if not getattr(loss, "requires_grad", False):
        return {n: np.zeros(tuple(params[n].shape), dtype=np.float32) for n in names}
    grads = torch.autograd.grad(loss, [params[n] for n in names], retain_graph=True, allow_unused=True)
    return {n: (np.zeros(tuple(params[n].shape), dtype=np.float32) if g is None else g.detach().cpu().numpy())
            for n, g in zip(names, grads, strict=True)}


def scalar_loss(value, what: str):
    """The student's loss as a 0-d torch tensor, or a clear error."""
    import torch

    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{what} must return a torch tensor (it returned {type(value).__name__})")
    if value.numel() != 1:
        raise ValueError(f"{what} must return a scalar (one number), it returned shape {tuple(value.shape)}")
    return value.reshape(())
