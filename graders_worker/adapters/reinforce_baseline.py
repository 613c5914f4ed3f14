"""Worker-side glue of the REINFORCE-with-baseline grader (untrusted: the grader checks all).

`train` and `act` are the REINFORCE assignment's (the environments are served by the
grader, which also counts the episode budget). The unit checks run the submission's
functions on the grader's own networks, built from the weights the grader sent; the
value network is wrapped so the grader learns what the baseline was computed from.
"""

from __future__ import annotations

import numpy as np

from graders_worker.adapters.reinforce import act, train  # noqa: F401 - called by name by the grader
from graders_worker.arrays import to_numpy
from graders_worker.torch_utils import gradients, scalar_loss, torch_mlp


def _value_net(weights: dict, seen: list):
    """The grader's value network; records its inputs and refuses anything but states."""
    import torch.nn as nn

    net = torch_mlp(weights)
    n_in = weights["0.weight"].shape[1]

    class RecordingValue(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            seen.append(to_numpy(x).copy())
            if x.ndim != 2 or x.shape[1] != n_in:
                raise ValueError(f"the value network was called on an input of shape {tuple(x.shape)}; a baseline "
                                 f"must be a function of the state only: value_net(obs) with obs of shape (B, {n_in})")
            return self.net(x)

    return RecordingValue()


def advantages(submission, returns: np.ndarray, values: np.ndarray) -> dict:
    import torch

    values_t = torch.as_tensor(values, dtype=torch.float32).requires_grad_(True)
    got = submission.compute_advantages(torch.as_tensor(returns, dtype=torch.float32), values_t * 1.0)
    if not isinstance(got, torch.Tensor):
        raise TypeError(f"compute_advantages must return a torch tensor (it returned {type(got).__name__})")
    return {"advantages": to_numpy(got), "requires_grad": bool(got.requires_grad)}


def _loss_pair(submission, policy, value_net, obs, actions, returns, *flag):
    import torch

    pair = submission.losses(policy, value_net, torch.as_tensor(obs, dtype=torch.float32),
                             torch.as_tensor(actions, dtype=torch.int64), torch.as_tensor(returns, dtype=torch.float32),
                             *(bool(f) for f in flag[:1]))
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise TypeError("losses(...) must return a pair (policy loss, value loss)")
    return scalar_loss(pair[0], "the policy loss of losses()"), scalar_loss(pair[1], "the value loss of losses()")


def loss_terms(submission, policy_weights: dict, value_weights: dict, obs, actions, returns, *flag) -> dict:
    """Both losses of one batch and the gradient of each w.r.t. both networks; `flag`: normalize_advantages
    when given (passed positionally, the template's sixth argument)."""
    seen: list = []
    policy, value_net = torch_mlp(policy_weights), _value_net(value_weights, seen)
    p_loss, v_loss = _loss_pair(submission, policy, value_net, obs, actions, returns, *flag)
    policy_params = dict(policy.named_parameters())
    value_params = {k.removeprefix("net."): v for k, v in value_net.named_parameters()}
    return {
        "policy_loss": float(p_loss.detach()), "value_loss": float(v_loss.detach()),
        "policy_loss_policy_grads": gradients(p_loss, policy_params),
        "policy_loss_value_grads": gradients(p_loss, value_params),
        "value_loss_policy_grads": gradients(v_loss, policy_params),
        "value_loss_value_grads": gradients(v_loss, value_params),
        "value_inputs": seen,
    }


def policy_gradients(submission, policy_weights: dict, value_weights: dict, obs, actions, returns) -> np.ndarray:
    """Flattened gradient of the policy loss for each of K batches: obs (K, B, 4) -> (K, n_params)."""
    rows = []
    for k in range(len(obs)):
        policy, value_net = torch_mlp(policy_weights), _value_net(value_weights, [])
        p_loss, _ = _loss_pair(submission, policy, value_net, obs[k], actions[k], returns[k])
        grads = gradients(p_loss, dict(policy.named_parameters()))
        rows.append(np.concatenate([g.ravel() for g in grads.values()]))
    return np.stack(rows)
