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

_state: dict = {"controller": None, "measuring": False, "updates": []}
WEIGHT_SCALE = 0.5  # std of the weights the controller check gives the student's own Controller


class NotYourController(RuntimeError):
    """The grader's controller, asked to stand in for the student's own while that one is checked."""


def _not_while_measuring() -> None:
    if _state["measuring"]:
        raise NotYourController("your Controller used the grader's controller (graders_worker.adapters.nas), which "
                                "the grader builds for its own checks; write your own LSTM controller")


def grader_controller(weights: dict):
    """The grader's controller with exactly the weights given: `choices`, `initial_state(n)`, `step(...)`."""
    import torch
    import torch.nn as nn

    _not_while_measuring()

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
            _not_while_measuring()
            zeros = torch.zeros(n, self.start.shape[0])
            return zeros, zeros.clone()

        def step(self, decision: int, previous, state):
            _not_while_measuring()
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
    """Run the submission's train() on the served search; keep the controller for greedy(), and a record of
    train()'s calls of reinforce_update for update_calls()."""
    _state["controller"], _state["updates"] = None, []
    update = getattr(submission, "reinforce_update", None)
    if callable(update):
        submission.reinforce_update = _recording(update)
    try:
        _state["controller"] = train_on_the_clock(submission, ServedSearchSpace(), seed, time_budget_s, device,
                                                  "controller")
    finally:
        if callable(update):
            submission.reinforce_update = update
    return {}


MAX_RECORDED = 10_000  # calls of reinforce_update recorded per train()


def _number_or_none(value):
    """A baseline as it travels: a float, None for None, or the name of its type when it is not a number."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        return type(value).__name__


def _gradients_clear(controller) -> bool | None:
    """Whether no parameter of `controller` holds a nonzero gradient (None: not a torch module)."""
    import torch

    if not isinstance(controller, torch.nn.Module):
        return None
    return all(p.grad is None or not bool(torch.any(p.grad != 0)) for p in controller.parameters())


def _recording(update):
    """`reinforce_update` as train() calls it: each call's baseline, what it returned, and whether the controller's
    gradients were clear when it was called (the template's order: controller, optimizer, tokens, rewards, baseline,
    decay). Evidence for update_uses_the_baseline_before_the_batch: how train() carries the baseline."""
    import functools
    import inspect

    try:
        names = list(inspect.signature(update).parameters)
    except (TypeError, ValueError):
        return update

    @functools.wraps(update)
    def recorded(*args, **kwargs):
        given = {**dict(zip(names, args)), **kwargs}
        controller = given.get(names[0]) if names else None
        baseline = given.get(names[4]) if len(names) > 4 else None
        clear = _gradients_clear(controller)
        returned = update(*args, **kwargs)
        if len(_state["updates"]) < MAX_RECORDED:
            _state["updates"].append({"baseline": _number_or_none(baseline), "returned": _number_or_none(returned),
                                      "clear": clear})
        return returned

    return recorded


def update_calls(submission) -> list[dict]:
    """The calls of reinforce_update the last train() made, in order (see _recording)."""
    return list(_state["updates"])


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


def update_steps(submission, batches: list, decay: float, lr: float) -> list[dict]:
    """reinforce_update on one grader controller and one plain-SGD optimizer, once per (weights, tokens, rewards,
    baseline) batch in turn, as a search calls it: before each call the controller's weights are set to the given
    ones in place (its gradients stay as the previous call left them); the weights each call leaves, and what it
    returned."""
    import torch

    net = grader_controller(batches[0][0])
    optimizer = _PlainSGD(net.parameters(), lr=lr)
    steps = []
    for weights, tokens, rewards, baseline in batches:
        with torch.no_grad():
            for name, p in net.named_parameters():
                p.copy_(torch.as_tensor(np.asarray(weights[name], dtype=np.float32)))
        returned = submission.reinforce_update(net, optimizer, torch.as_tensor(tokens, dtype=torch.int64),
                                               np.asarray(rewards, dtype=np.float64), baseline, decay)
        returned = _number_or_none(returned)
        steps.append({"weights": {k: to_numpy(v.clone()) for k, v in net.state_dict().items()},  # not views
                      "returned": returned if isinstance(returned, float) else None})
    return steps


def _leaves(state) -> list:
    """The tensors (and other values) of a recurrent state, in order: a tensor, or tuples, lists, dicts of them."""
    if isinstance(state, (tuple, list)):
        return [leaf for part in state for leaf in _leaves(part)]
    if isinstance(state, dict):
        return [leaf for key in sorted(state, key=str) for leaf in _leaves(state[key])]
    return [state]


def _same_state(first, second) -> bool:
    import torch

    a, b = _leaves(first), _leaves(second)
    return len(a) == len(b) and all(
        torch.equal(x, y) if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) else x is y or x == y
        for x, y in zip(a, b))


def _differ(a, b) -> bool:
    """Whether two logits tensors differ by more than rounding."""
    return bool((a - b).abs().max() > 1e-6 * (1.0 + a.abs().max()))


def controller_outputs(submission, choices: list[int], hidden: int, n: int, seed: int) -> dict:
    """The submission's own Controller, on its own parameters drawn at random (so that what is measured is the
    architecture, not its initialisation): logits' shapes; whether each decision depends on the previous token
    and, with that token the same, on the tokens before it (the recurrent state); whether initial_state(n) is the
    same twice; and samples of sample_architectures. The grader's controller cannot stand in for it."""
    import torch

    seed_everything(seed)
    _state["measuring"] = True
    try:
        net = submission.Controller(list(choices), hidden)
        if not isinstance(net, torch.nn.Module):
            raise TypeError(f"Controller(...) must be a torch.nn.Module (it is a {type(net).__name__})")
        n_params = sum(p.numel() for p in net.parameters())
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in net.parameters():
                if p.is_floating_point():
                    p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * WEIGHT_SCALE)
            repeatable = _same_state(net.initial_state(n), net.initial_state(n))
            tokens = torch.stack([torch.randint(0, k, (n,), generator=generator) for k in choices], dim=1)
            other_first = tokens.clone()
            other_first[:, 0] = (tokens[:, 0] + 1) % choices[0]
            shapes, depends, remembers = [], [], []
            state, other_state = net.initial_state(n), net.initial_state(n)
            for d in range(len(choices)):
                previous = None if d == 0 else tokens[:, d - 1]
                logits, next_state = net.step(d, previous, state)
                shapes.append(list(logits.shape))
                if d >= 1:  # another previous token, the same state
                    depends.append(_differ(net.step(d, (previous + 1) % choices[d - 1], state)[0], logits))
                if d >= 2:  # the same previous token, after another first token
                    remembers.append(_differ(net.step(d, previous, other_state)[0], logits))
                other_state = net.step(d, None if d == 0 else other_first[:, d - 1], other_state)[1]
                state = next_state
            sampled = to_numpy(submission.sample_architectures(net, n))
    finally:
        _state["measuring"] = False
    return {"parameters": int(n_params), "shapes": shapes, "depends": depends, "remembers": remembers,
            "repeatable": repeatable, "sampled": sampled}
