"""Worker-side glue of the NAS grader (untrusted: the grader checks everything that comes back).

It imports nothing of the grader's side (`graders/`), as no module of this package may:
the worker never sees the grader's table, its controller's expected numbers, the
relabelling of the choices, or a seed.

- `GraderController` is the grader's controller architecture (torch's LSTMCell,
  Embedding and Linear), loaded with weights the grader sent; the unit checks run
  the submission's functions on it. The grader computes the expected values itself
  (graders/nas/controller.py), gate by gate, in its own process.
- `ServedSearchSpace` is what the submission's `train` searches: each `evaluate` is
  one callback, answered by the grader from its table (graders/nas/search.py), which
  counts the evaluations. Nothing here can see the table or the rewards' settings
  beyond what the grader sends.
- `train` tells the grader when the student's code starts (`clock_start`: the imports
  before it are not the student's time) and keeps the trained controller in this
  process for the `greedy` call.
"""

from __future__ import annotations

import numpy as np

from graders_worker.arrays import to_numpy
from graders_worker.main import callback
from graders_worker.torch_utils import gradients, scalar_loss, seed_everything, train_on_the_clock

_state: dict = {"controller": None}


def grader_controller(weights: dict):
    """The grader's controller with exactly the weights given: `choices`, `initial_state(n)`, `step(...)`."""
    import torch
    import torch.nn as nn

    class GraderController(nn.Module):
        def __init__(self):
            super().__init__()
            heads = sorted({int(k.split(".")[1]) for k in weights if k.startswith("heads.")})
            self.choices = [int(np.shape(weights[f"heads.{d}.bias"])[0]) for d in heads]
            hidden = int(np.shape(weights["start"])[0])
            self.start = nn.Parameter(torch.zeros(hidden))
            self.embed = nn.ModuleList([nn.Embedding(k, hidden) for k in self.choices[:-1]])
            self.cell = nn.LSTMCell(hidden, hidden)
            self.heads = nn.ModuleList([nn.Linear(hidden, k) for k in self.choices])

        def initial_state(self, n: int):
            zeros = torch.zeros(n, self.start.shape[0])
            return zeros, zeros.clone()

        def step(self, decision: int, previous, state):
            n = len(state[0])
            inputs = self.start.expand(n, -1) if previous is None else self.embed[decision - 1](previous)
            state = self.cell(inputs, state)  # (hidden, cell)
            return self.heads[decision](state[0]), state

    net = GraderController()
    net.load_state_dict({k: torch.as_tensor(np.asarray(v, dtype=np.float32)) for k, v in weights.items()})
    return net


class ServedSearchSpace:
    """The search space as the submission sees it; its architectures are evaluated by the grader.

    `choices[d]`: number of choices of decision d; `budget`: evaluations allowed in all;
    `remaining`: how many are left; `target_flops`, `alpha`, `beta`: the reward's settings.
    `evaluate(tokens)` takes an int array (m, D), one architecture per row, and returns
    (accuracy, flops), two arrays of length m.
    """

    def __init__(self):
        info = callback("nas_open")
        self.choices = tuple(int(k) for k in info["choices"])
        self.budget = self.remaining = int(info["budget"])
        self.target_flops, self.alpha, self.beta = float(info["target_flops"]), float(info["alpha"]), float(info["beta"])

    def evaluate(self, tokens) -> tuple[np.ndarray, np.ndarray]:
        tokens = to_numpy(tokens)
        if tokens.ndim == 1:
            tokens = tokens[None, :]
        if tokens.dtype.kind == "f" and np.all(tokens == np.round(tokens)):
            tokens = tokens.astype(np.int64)
        reply = callback("nas_evaluate", tokens)
        self.remaining = int(reply["remaining"])
        return np.asarray(reply["accuracy"], dtype=np.float64), np.asarray(reply["flops"], dtype=np.float64)


# --- the training check --------------------------------------------------------------------------


def train(submission, seed: int, time_budget_s: float, device: str) -> dict:
    """Run the submission's train() on the served search; keep the controller for greedy()."""
    _state["controller"] = None
    _state["controller"] = train_on_the_clock(submission, ServedSearchSpace(), seed, time_budget_s, device, "controller")
    return {}


def greedy(submission) -> np.ndarray:
    """The trained controller's most probable architecture (greedy decoding), as tokens."""
    import torch

    if _state["controller"] is None:
        raise RuntimeError("there is no trained controller: train() did not finish")
    with torch.no_grad():
        return to_numpy(submission.greedy_architecture(_state["controller"])).reshape(-1)


# --- unit checks on the grader's controller ------------------------------------------------------


def log_prob_and_gradient(submission, weights: dict, tokens: np.ndarray, coefficients: np.ndarray) -> dict:
    """sequence_log_prob on the grader's controller, and d(sum_i c_i log p_i)/d weights."""
    import torch

    net = grader_controller(weights)
    got = submission.sequence_log_prob(net, torch.as_tensor(tokens, dtype=torch.int64))
    if not isinstance(got, torch.Tensor):
        raise TypeError(f"sequence_log_prob must return a torch tensor (it returned {type(got).__name__})")
    objective = (got.reshape(-1) * torch.as_tensor(coefficients, dtype=got.dtype)).sum() if got.numel() == len(
        tokens) else got.sum()
    return {"log_probs": to_numpy(got), "grads": gradients(objective, dict(net.named_parameters()))}


def sample_with_weights(submission, weights: dict, n: int, seed: int) -> np.ndarray:
    import torch

    seed_everything(seed)
    with torch.no_grad():
        return to_numpy(submission.sample_architectures(grader_controller(weights), n))


def greedy_with_weights(submission, weights: dict) -> np.ndarray:
    import torch

    with torch.no_grad():
        return to_numpy(submission.greedy_architecture(grader_controller(weights)))


def loss_gradient(submission, log_probs: np.ndarray, rewards: np.ndarray, baseline: float) -> np.ndarray:
    """The gradient of reinforce_loss with respect to given log-probabilities (a leaf tensor)."""
    import torch

    leaf = torch.tensor(np.asarray(log_probs, dtype=np.float32), requires_grad=True)
    loss = scalar_loss(submission.reinforce_loss(leaf, torch.as_tensor(rewards, dtype=torch.float32),
                                                 float(baseline)), "reinforce_loss")
    return gradients(loss, {"log_probs": leaf})["log_probs"]


class _PlainSGD:
    """An optimizer with torch's interface (zero_grad, step) without importing torch.optim (about 1 s)."""

    def __init__(self, params, lr: float):
        self.params, self.lr = list(params), lr

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        import torch

        with torch.no_grad():
            for p in self.params:
                if p.grad is not None:
                    p -= self.lr * p.grad


def update_step(submission, weights: dict, tokens: np.ndarray, rewards: np.ndarray, baseline, decay: float,
                lr: float) -> dict:
    """reinforce_update on the grader's controller with plain SGD: the weights it leaves, and what it returned."""
    import torch

    net = grader_controller(weights)
    returned = submission.reinforce_update(net, _PlainSGD(net.parameters(), lr=lr),
                                           torch.as_tensor(tokens, dtype=torch.int64),
                                           np.asarray(rewards, dtype=np.float64), baseline, decay)
    try:
        returned = float(returned)
    except (TypeError, ValueError, RuntimeError):
        returned = None  # the grader says what came back instead of a number
    return {"weights": {k: to_numpy(v) for k, v in net.state_dict().items()}, "returned": returned}


def controller_outputs(submission, choices: list[int], hidden: int, n: int, seed: int) -> dict:
    """The submission's own Controller: logits' shapes, and whether a decision depends on the previous token."""
    import torch

    seed_everything(seed)
    net = submission.Controller(list(choices), hidden)
    n_params = sum(p.numel() for p in net.parameters())
    shapes, depends = [], []
    with torch.no_grad():
        state, previous = net.initial_state(n), None
        for d in range(len(choices)):
            logits, state_next = net.step(d, previous, state)
            shapes.append(list(logits.shape))
            if previous is not None:
                other, _ = net.step(d, (previous + 1) % choices[d - 1], state)
                depends.append(bool((other - logits).abs().max() > 0))
            previous, state = torch.randint(0, choices[d], (n,)), state_next
        sampled = to_numpy(submission.sample_architectures(net, n))
    return {"parameters": int(n_params), "shapes": shapes, "depends": depends, "sampled": sampled}
