"""Worker-side glue of the REINFORCE grader (untrusted: the grader checks what comes back).

- `train` gives the submission's `train` the grader's environments (`ServedEnvs`:
  `make_envs(num_envs)` a vector environment, `make_envs.make_env()` one environment;
  the CartPoles live in the grader, graders/rl/server.py), tells the grader when the
  student's code starts (`clock_start`: imports before it are not the student's time),
  and keeps the trained policy in this process for the `act` calls of the grader's
  evaluation.
- `loss_gradient` and `sample_with_weights` run the submission's functions on the
  grader's own network, built from the weights the grader sent.
- Nothing counted here decides anything: the grader judges training from the episodes it
  served itself (graders/rl/certify.py).
"""

from __future__ import annotations

import numpy as np

from graders_worker.arrays import to_numpy
from graders_worker.rl.served_env import ServedEnvs
from graders_worker.torch_utils import gradients, scalar_loss, seed_everything, torch_mlp, train_on_the_clock

_state: dict = {"policy": None}


def train(submission, seed: int, time_budget_s: float, device: str) -> dict:
    """Run the submission's train() on served environments; keep the policy for act()."""
    _state["policy"] = None
    _state["policy"] = train_on_the_clock(submission, ServedEnvs(), seed, time_budget_s, device, "policy network")
    return {}


def act(submission, observations: np.ndarray):
    """The trained policy's actions for a batch of observations (the grader's evaluation)."""
    import torch

    if _state["policy"] is None:
        raise RuntimeError("there is no trained policy: train() did not finish")
    with torch.no_grad():
        actions = submission.act(_state["policy"], observations)
    return to_numpy(actions)


def loss_gradient(submission, weights: dict, obs: np.ndarray, actions: np.ndarray, returns: np.ndarray) -> dict:
    """reinforce_loss on the grader's network and batch: its value and d loss / d weights."""
    import torch

    net = torch_mlp(weights)
    logits = net(torch.as_tensor(obs, dtype=torch.float32))
    loss = scalar_loss(submission.reinforce_loss(logits, torch.as_tensor(actions, dtype=torch.int64),
                                                 torch.as_tensor(returns, dtype=torch.float32)),
                       "reinforce_loss")
    return {"loss": float(loss.detach()), "grads": gradients(loss, dict(net.named_parameters()))}


def sample_with_weights(submission, weights: dict, obs: np.ndarray, seed: int) -> np.ndarray:
    """sample_actions of the submission on the grader's network, for a batch of observations."""
    import torch

    seed_everything(seed)
    net = torch_mlp(weights)
    with torch.no_grad():
        actions = submission.sample_actions(net, torch.as_tensor(obs, dtype=torch.float32))
    return to_numpy(actions)
