# %% [markdown]
# # Neural architecture search with a REINFORCE controller
#
# You will search a space of small convolutional networks for Fashion-MNIST the way
# Zoph & Le (2017) did: a recurrent *controller* emits an architecture token by token,
# each token from its own softmax; the sampled network is evaluated; and the controller
# is trained with REINFORCE, with an exponential moving average of past rewards as the
# baseline. The reward is MnasNet's and EfficientNet's (Tan et al., 2019; Tan & Le, 2019):
# the accuracy times a FLOPs factor, $R = \mathrm{acc} \cdot (\mathrm{FLOPs}/T)^{w}$ with
# $w = \alpha$ when $\mathrm{FLOPs} \le T$ and $w = \beta$ above the target $T$.
#
# **The search space.** Three blocks; each block chooses an operation (a plain
# convolution, or a depthwise-separable one), a kernel size (3 or 5) and a width (4, 8 or
# 16 channels): 9 decisions, $12^3 = 1728$ architectures. Every architecture was trained
# once beforehand on Fashion-MNIST, so evaluating one costs a table look-up instead of a
# training run; the budget of evaluations is what stands in for GPU days.
#
# The whole algorithm is in this file, top to bottom. The cells marked `YOUR CODE HERE`
# are yours; everything else is given.
#
# **How it is graded.** The grader runs your code in a separate process.
# - Unit checks, on a controller of the grader's own (an LSTM whose weights it chose):
#   `sequence_log_prob` and its gradient; `sample_architectures` must follow the
#   controller's distribution (a chi-squared test on many draws); `greedy_architecture`;
#   `reinforce_loss` must have the REINFORCE gradient with the baseline;
#   `reinforce_update` must take one REINFORCE step per call, with the baseline from
#   *before* the batch and its own batch's gradient only, and `train` must pass each update
#   the baseline the last one returned (read on a short search). Also `efficientnet_reward`
#   and `update_baseline` on scripted numbers, and your own `Controller`, on weights the
#   grader draws (one softmax per decision, each conditioned on the tokens before it through
#   the recurrent state). A loss that sums over the batch instead of averaging keeps its
#   points (the same algorithm under Adam).
# - The search, twice: the grader calls `train(search, seed, time_budget_s, device)`.
#   `search.evaluate(tokens)` is answered by the grader, which counts the evaluations
#   against `search.budget` and refuses the ones past it. The grader relabels the
#   choices of each decision for every search (token 0 of a decision may mean any of its
#   choices), so only what your controller learns from the answers helps. Then the
#   grader asks `greedy_architecture(controller)` for the controller's most probable
#   architecture: it must be in the top few percent of the space, and the architectures
#   your search evaluated in the second half of its budget must beat random search's.
#   A search earns its points only if the pieces it is made of (`sample_architectures`,
#   `sequence_log_prob`, `reinforce_loss`) pass their own checks; otherwise its points
#   are withheld and the row is flagged for your instructor.
#   `time_budget_s` counts your own code's time only, not the grader's answers.
#
# [py] Run this file (`python nas.py`) to search locally, on the same table, with the
# [py] choices unpermuted.
# [ipynb] To search locally, on the same table with the choices unpermuted, set `TRY_IT = True`
# [ipynb] in the last code cell before "Check your work" and run that cell.

# %%
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

# %% [markdown]
# ## Hyperparameters


# %%
@dataclass
class Args:
    hidden_size: int = 32
    """width of the controller's LSTM (and of its token embeddings)"""
    batch_size: int = 16
    """architectures sampled and evaluated per controller update"""
    learning_rate: float = 0.01
    """Adam step size of the controller"""
    baseline_decay: float = 0.9
    """the baseline is an exponential moving average of the batches' mean rewards with this decay"""


# %% [markdown]
# ## The controller
# An LSTM cell that runs once per decision. At decision $d$ its input is the embedding of
# the token chosen at decision $d-1$ (a learned `start` vector at $d = 0$), and a linear
# head of its own maps the hidden state to the logits of decision $d$'s choices.
#
# The grader calls the functions below with controllers of its own, so they must use
# only this interface: `controller.choices` (the number of choices of each decision),
# `controller.initial_state(n)` (the recurrent state of n sequences) and
# `controller.step(d, previous, state)` -> `(logits of shape (n, choices[d]), new state)`,
# where `previous` is the (n,) LongTensor of tokens chosen at decision d - 1, or None at d = 0.


# %%
class Controller(nn.Module):
    def __init__(self, choices: list[int], hidden_size: int = 32):
        super().__init__()
        self.choices = list(choices)
        ### BEGIN SOLUTION
        self.start = nn.Parameter(torch.zeros(hidden_size))
        self.embed = nn.ModuleList([nn.Embedding(k, hidden_size) for k in self.choices[:-1]])
        self.cell = nn.LSTMCell(hidden_size, hidden_size)
        self.heads = nn.ModuleList([nn.Linear(hidden_size, k) for k in self.choices])
        ### END SOLUTION

    def initial_state(self, n: int):
        """The recurrent state before the first decision, for n sequences."""
        ### BEGIN SOLUTION
        zeros = torch.zeros(n, self.start.shape[0], device=self.start.device)
        return zeros, zeros.clone()
        ### END SOLUTION

    def step(self, decision: int, previous: torch.Tensor | None, state):
        """Logits (n, choices[decision]) of this decision and the new state."""
        ### BEGIN SOLUTION
        h, c = state
        x = self.start.expand(len(h), -1) if previous is None else self.embed[decision - 1](previous)
        h, c = self.cell(x, (h, c))
        return self.heads[decision](h), (h, c)
        ### END SOLUTION


# %% [markdown]
# ## Sampling, greedy decoding and the log-probability of an architecture
# A sampled architecture is a sequence $a_{1:D}$ of tokens, and its probability is the
# product of the softmax probabilities of its tokens, each given the tokens before it:
# $\log p_\theta(a_{1:D}) = \sum_{d=1}^{D} \log \pi_\theta(a_d \mid a_{1:d-1})$.
#
# - `sample_architectures` draws each token from its softmax and feeds it to the next step.
# - `greedy_architecture` takes each step's most probable token instead: the usual
#   approximation of the controller's most probable architecture, which the grader asks
#   for after your search.
# - `sequence_log_prob` runs the controller on *given* tokens (teacher forcing) and sums
#   the log-probabilities of every decision, with gradients.


# %%
def sample_architectures(controller, n: int) -> torch.Tensor:
    """n architectures drawn from the controller: a LongTensor (n, D)."""
    ### BEGIN SOLUTION
    state, previous, tokens = controller.initial_state(n), None, []
    for d in range(len(controller.choices)):
        logits, state = controller.step(d, previous, state)
        previous = torch.distributions.Categorical(logits=logits).sample()
        tokens.append(previous)
    return torch.stack(tokens, dim=1)
    ### END SOLUTION


def greedy_architecture(controller) -> torch.Tensor:
    """The controller's greedy architecture: a LongTensor (D,) of each step's argmax."""
    ### BEGIN SOLUTION
    state, previous, tokens = controller.initial_state(1), None, []
    for d in range(len(controller.choices)):
        logits, state = controller.step(d, previous, state)
        previous = logits.argmax(dim=1)
        tokens.append(previous)
    return torch.cat(tokens)
    ### END SOLUTION


def sequence_log_prob(controller, tokens: torch.Tensor) -> torch.Tensor:
    """log p(architecture) for each row of tokens (n, D): a tensor (n,) with gradients."""
    ### BEGIN SOLUTION
    state, previous, total = controller.initial_state(len(tokens)), None, 0.0
    for d in range(len(controller.choices)):
        logits, state = controller.step(d, previous, state)
        total = total + torch.log_softmax(logits, dim=1).gather(1, tokens[:, d:d + 1]).squeeze(1)
        previous = tokens[:, d]
    return total
    ### END SOLUTION


# %% [markdown]
# ## The reward
# MnasNet's soft constraint with EfficientNet's FLOPs target:
# $R = \mathrm{acc} \cdot (\mathrm{FLOPs}/T)^{w}$, $w = \alpha$ if $\mathrm{FLOPs} \le T$
# else $\beta$. With $\alpha = 0.07$, $\beta = -0.07$ (the grader's default) the factor is 1
# at the target and falls on both sides: a network 10 times cheaper or 10 times dearer
# than $T$ loses 15% of its accuracy. ($\alpha = \beta = -0.07$ is MnasNet's soft
# constraint; $\alpha = 0, \beta = -1$ its hard one.)


# %%
def efficientnet_reward(accuracy: np.ndarray, flops: np.ndarray, target_flops: float, alpha: float,
                        beta: float) -> np.ndarray:
    """accuracy * (flops / target_flops) ** w, w = alpha where flops <= target_flops, else beta."""
    ### BEGIN SOLUTION
    ratio = np.asarray(flops, dtype=np.float64) / target_flops
    return np.asarray(accuracy, dtype=np.float64) * ratio ** np.where(ratio <= 1.0, alpha, beta)
    ### END SOLUTION


# %% [markdown]
# ## REINFORCE with a moving-average baseline
# For a batch of $m$ sampled architectures with rewards $R_k$, REINFORCE estimates the
# gradient of the expected reward by
# $\hat g = \frac{1}{m} \sum_{k=1}^{m} (R_k - b) \nabla_\theta \log p_\theta(a^{(k)}_{1:D})$,
# where the baseline $b$, an exponential moving average of the previous rewards, leaves
# the estimate unbiased and lowers its variance (Zoph & Le, 2017, section 3.2).
#
# - `update_baseline`: $b \leftarrow \text{decay} \cdot b + (1 - \text{decay}) \cdot \bar R$,
#   with $\bar R$ the batch's mean reward; when there is no baseline yet (None), $b = \bar R$.
# - `reinforce_loss`: a loss whose gradient is $-\hat g$: the mean of $-(R_k - b) \log p(a^{(k)})$,
#   with the rewards and the baseline treated as constants.
# - `reinforce_update`: one controller update. Subtract the baseline from *before* the batch
#   (on the first batch, when it is None, the batch's mean), as Zoph & Le do, then update it;
#   return the updated baseline. (ENAS updates it with the batch first: in expectation that
#   only scales the gradient by $1 - (1 - \text{decay})/m$, and the grader accepts it.)


# %%
def update_baseline(baseline: float | None, rewards: np.ndarray, decay: float) -> float:
    """The moving average after one more batch of rewards."""
    ### BEGIN SOLUTION
    mean = float(np.mean(rewards))
    return mean if baseline is None else decay * baseline + (1.0 - decay) * mean
    ### END SOLUTION


def reinforce_loss(log_probs: torch.Tensor, rewards: torch.Tensor, baseline: float) -> torch.Tensor:
    """Scalar loss: mean over the batch of -(reward - baseline) * log p(architecture)."""
    ### BEGIN SOLUTION
    return -((rewards.detach() - baseline) * log_probs).mean()
    ### END SOLUTION


def reinforce_update(controller, optimizer, tokens: torch.Tensor, rewards: np.ndarray, baseline: float | None,
                     decay: float) -> float:
    """One REINFORCE step on a batch of evaluated architectures; returns the updated baseline.

    Uses sequence_log_prob, reinforce_loss and update_baseline; optimizer has zero_grad() and step().
    """
    ### BEGIN SOLUTION
    if baseline is None:
        baseline = float(np.mean(rewards))
    rewards_t = torch.as_tensor(rewards, dtype=torch.float32, device=tokens.device)
    loss = reinforce_loss(sequence_log_prob(controller, tokens), rewards_t, baseline)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return update_baseline(baseline, rewards, decay)
    ### END SOLUTION


# %% [markdown]
# ## The search
# `search` is the space to search (the grader's, or `LocalSearchSpace` below):
# `search.choices`, `search.budget` and `search.remaining` (evaluations in all and left),
# `search.target_flops`, `search.alpha`, `search.beta`, and
# `search.evaluate(tokens)` -> `(accuracy, flops)` for an int array of architectures
# (m, D). Sample, evaluate, reward, update, while `search.remaining > 0` (the last batch may
# be smaller); return the controller. You never need a clock: when your `time_budget_s`
# (your own code's time, counted by the grader) is up, the search's answer says
# `remaining` is 0, and your loop ends with what it trained.


# %%
def train(search, seed: int, time_budget_s: float, device: str = "cpu", args: Args | None = None) -> Controller:
    """REINFORCE on the architectures of `search`; returns the trained controller."""
    args = args or Args()
    ### BEGIN SOLUTION
    torch.manual_seed(seed)
    controller = Controller(search.choices, args.hidden_size).to(device)
    optimizer = torch.optim.Adam(controller.parameters(), lr=args.learning_rate)
    baseline = None
    while search.remaining > 0:
        with torch.no_grad():
            tokens = sample_architectures(controller, min(args.batch_size, search.remaining))
        accuracy, flops = search.evaluate(tokens.cpu().numpy())
        rewards = efficientnet_reward(accuracy, flops, search.target_flops, search.alpha, search.beta)
        baseline = reinforce_update(controller, optimizer, tokens, rewards, baseline, args.baseline_decay)
    return controller
    ### END SOLUTION


# %% [markdown]
# ## Try it locally
# `LocalSearchSpace` answers from the grader's table in this process (it needs the
# course's `graders` package: your kit has it), with every choice keeping its own label;
# the grader's budget and reward settings are its defaults, and like the grader's search
# its `remaining` is 0 once `time_budget_s` seconds (here: of the wall clock) have passed.
# It is for trying only: when your code is graded, `graders` cannot be imported, and
# `train` gets the grader's served search instead.


# %%
class LocalSearchSpace:
    def __init__(self, budget: int | None = None, time_budget_s: float = 60.0):
        from graders.nas import grader, space, table

        settings = grader.DEFAULTS
        self._space, self._table = space, table.load()
        self.choices = space.CHOICES
        self.budget = self._left = budget or settings["evaluation_budget"]
        self._ends = time.monotonic() + time_budget_s
        self.target_flops, self.alpha, self.beta = settings["target_flops"], settings["alpha"], settings["beta"]
        self.evaluated: list[int] = []

    @property
    def remaining(self) -> int:
        return 0 if time.monotonic() >= self._ends else self._left

    def evaluate(self, tokens) -> tuple[np.ndarray, np.ndarray]:
        rows = [self._space.index_of(t) for t in np.asarray(tokens).reshape(-1, len(self.choices))]
        if len(rows) > self._left:
            raise RuntimeError(f"the evaluation budget is {self.budget}: only {self._left} left")
        self._left -= len(rows)
        self.evaluated += rows
        return self._table.accuracy[rows], self._table.flops[rows].astype(np.float64)

    def report(self, tokens) -> str:
        from graders.nas.table import ranks

        rewards = self._table.rewards(self.target_flops, self.alpha, self.beta)
        row = self._space.index_of(tokens)
        return (f"{self._space.describe(self._space.tokens_of(row))}: accuracy {self._table.accuracy[row]:.4f}, "
                f"{self._table.flops[row] / 1000:.0f}k FLOPs, reward {rewards[row]:.4f}, "
                f"rank {ranks(rewards)[row]} of {len(rewards)}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    search = LocalSearchSpace(time_budget_s=60)
    t0 = time.monotonic()
    trained = train(search, seed=0, time_budget_s=60)
    print(f"searched {len(search.evaluated)} architectures in {time.monotonic() - t0:.1f} s")
    with torch.no_grad():
        print("most probable architecture:", search.report(greedy_architecture(trained).tolist()))
