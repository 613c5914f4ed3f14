"""Worker-side glue of the REINFORCE-with-baseline grader (untrusted: the grader checks all).

`train` and `act` are the REINFORCE assignment's (the environments are served by the
grader, which also counts the episode budget); here the submission's `train` returns
`(policy, value_net)`: the policy goes to the REINFORCE adapter, the value network is
kept for `values`, which the grader calls on states of its own. The unit checks run the
submission's functions on the grader's own networks, built from the weights the grader
sent; the value network is wrapped so the grader learns what the baseline was computed from.
"""

from __future__ import annotations

import numpy as np

from graders_worker.adapters import reinforce
from graders_worker.adapters.reinforce import act  # noqa: F401 - called by name by the grader
from graders_worker.arrays import to_numpy
from graders_worker.torch_utils import gradients, scalar_loss, torch_mlp

_trained: dict = {"value_net": None, "returned": ""}


class _PolicyOfPair:
    """The submission as the REINFORCE adapter sees it: its train() gives the policy of the pair."""

    def __init__(self, submission):
        self._submission = submission

    def __getattr__(self, name):
        return getattr(self._submission, name)

    def train(self, *args, **kwargs):
        result = self._submission.train(*args, **kwargs)
        if isinstance(result, (tuple, list)) and len(result) == 2:
            _trained["value_net"] = result[1]
            return result[0]
        _trained["returned"] = type(result).__name__
        return result


def train(submission, *args) -> dict:
    """The REINFORCE adapter's train, on a submission whose train() returns (policy, value_net)."""
    _trained.update(value_net=None, returned="")
    return reinforce.train(_PolicyOfPair(submission), *args)


def value_units(submission) -> dict:
    """The units of the value network's predictions: G_t (discounted by Args.gamma) / Args.return_scale; a field the
    submission's Args lacks is None (the grader says so; it assumes nothing)."""
    args = submission.Args()
    return {name: getattr(args, name, None) for name in ("return_scale", "gamma")}


def values(submission, observations: np.ndarray) -> np.ndarray:
    """The trained value network's predictions for the grader's states: (B, 4) -> (B,)."""
    import torch

    net = _trained["value_net"]
    if net is None:
        raise TypeError("train() must return the pair (policy, value_net) so the grader can check that the value "
                        f"network learned (it returned a {_trained['returned'] or 'nothing usable'})")
    if isinstance(net, torch.nn.Module):
        net.eval()
        device = next(net.parameters()).device
    else:
        device = "cpu"
    with torch.no_grad():
        out = net(torch.as_tensor(observations, dtype=torch.float32, device=device))
    out = to_numpy(out)
    return out.reshape(len(observations)) if out.size == len(observations) else out


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
