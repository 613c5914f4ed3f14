"""Torch helpers adapters share: the grader's MLP from its weights, gradients as numpy, scalar losses, seeding,
and the submission's train() on the student's clock."""

from __future__ import annotations

import random

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


def seed_everything(seed: int) -> None:
    """Python's, numpy's and torch's global generators, for the submission's code."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train_on_the_clock(submission, served, seed: int, time_budget_s: float, device: str, what: str):
    """The submission's `train(served, ...)`, its clock started just before (imports and set-up are not its time).

    Returns what train() returned (a torch module is put in eval mode); None is an error naming `what`.
    """
    import torch
    import torch._dynamo  # noqa: F401 - the first torch optimizer imports it (1-7 s): not the submission's time

    from graders_worker.main import callback

    seed_everything(seed)
    callback("clock_start")  # the grader's clock of the student's time starts now
    trained = submission.train(served, seed=seed, time_budget_s=time_budget_s, device=device)
    if trained is None:
        raise ValueError(f"train() must return the trained {what} (it returned None)")
    if isinstance(trained, torch.nn.Module):
        trained.eval()
    return trained
