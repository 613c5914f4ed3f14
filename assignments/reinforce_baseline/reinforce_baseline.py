# %% [markdown]
# # REINFORCE with a learned baseline, in 400 episodes
#
# In the REINFORCE assignment the return $G_t$ weighted every log-probability. Here a
# second network, the *value network* $\hat v_w(s)$, learns the expected return from
# each state, and the policy gradient uses the *advantage* $A_t = G_t - \hat v_w(s_t)$
# instead (Sutton & Barto, section 13.4):
# $\hat g = \frac{1}{B}\sum_t A_t \nabla_\theta \log \pi_\theta(a_t|s_t)$.
# A baseline that depends on the state only leaves the estimator unbiased and can
# shrink its variance a lot, which is what makes learning in a small budget possible.
#
# **The budget.** Your training may use at most 400 episodes of CartPole-v1, counted
# by the grader (an episode counts when it starts). When the budget is spent, the
# grader's environments stop resetting (`envs.retired`), `EpisodeCollector.collect`
# returns fewer episodes (then none), and a 401st episode is refused. The grader then
# evaluates your policy on 100 episodes of its own; a seed passes at a mean return of
# 475.
#
# **How it is graded.** Unit checks: the advantages on a scripted batch; the policy
# loss sends no gradient into the value network, the value loss none into the policy;
# the value loss is the mean squared error to the returns; with the grader's
# baseline, your policy-gradient estimator has a lower variance than without it.
# Training: `train(make_envs, seed, time_budget_s, device)` on two seeds, on
# environments served by the grader as in the REINFORCE assignment (`make_envs(n)` a
# vector environment, `make_envs.make_env()` one environment for a classic loop; their
# labels may be permuted, a network learns from any alike); it returns the pair
# `(policy, value_net)`. You need no clock: when `time_budget_s` seconds of your own
# code's time have passed, the grader retires the environments as it does when the
# budget is spent. The grader evaluates the policy, and checks that the value network
# learned: on the states of your last 20 training episodes (as it served them), its
# predictions x `Args.return_scale` must come about as close to the discounted returns
# (discounted by `Args.gamma`) as the best constant does, at most 3 times its squared
# error (a network that never trained misses their level by far). So keep
# `Args.gamma` and `Args.return_scale`: the grader reads them. Decision rule: a seed
# that fails is replaced by a spare seed, two spares at most (two of up to four pass).
#
# Run this file (`python reinforce_baseline.py`) to train and evaluate locally.
# %%
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
# %% [markdown]
# ## Hyperparameters

# %%
@dataclass
class Args:
    episode_budget: int = 400
    """training episodes allowed (the grader enforces its own count)"""
    num_envs: int = 4
    """CartPoles stepped in lockstep"""
    episodes_per_update: int = 4
    """whole episodes in each policy-gradient batch"""
    policy_learning_rate: float = 1e-2
    """Adam step size of the policy network"""
    policy_steps: int = 2
    """gradient steps of the policy network on each batch (after the first, slightly off-policy)"""
    value_learning_rate: float = 1e-2
    """Adam step size of the value network"""
    value_epochs: int = 5
    """gradient steps of the value network on each batch"""
    gamma: float = 0.99
    """discount factor of the returns (the grader reads it: your value network predicts returns discounted by it)"""
    hidden_size: int = 32
    """width of the two hidden layers of both networks"""
    return_scale: float = 100.0
    """returns are divided by this before the losses, so the value network regresses numbers near 1 (the grader
    reads it: your value network predicts G_t / return_scale)"""
    normalize_advantages: bool = True
    """standardize the advantages of each batch before the policy loss"""

# %% [markdown]
# ## Given: returns and actions, as in the REINFORCE assignment

# %%
def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """G_t for every step t of one episode (a float array of the same length as rewards)."""
    returns = np.zeros(len(rewards), dtype=np.float64)
    running = 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns


def sample_actions(policy: nn.Module, obs: torch.Tensor) -> torch.Tensor:
    """One action per observation, drawn from softmax(policy(obs)); a LongTensor of shape (batch,)."""
    logits = policy(obs)
    return torch.distributions.Categorical(logits=logits, validate_args=False).sample()


def act(policy: nn.Module, observations: np.ndarray) -> np.ndarray:
    """Actions for the grader's evaluation: observations (batch, 4) -> int array (batch,)."""
    device = next(policy.parameters()).device
    with torch.no_grad():
        logits = policy(torch.as_tensor(observations, dtype=torch.float32, device=device))
    return logits.argmax(dim=1).cpu().numpy()

# %% [markdown]
# ## The two networks
# The policy maps an observation to one logit per action, as before. The value network
# maps an observation to one number, $\hat v_w(s)$: output shape (batch, 1).

# %%
class Policy(nn.Module):
    def __init__(self, obs_dim: int, n_actions: int, hidden_size: int):
        super().__init__()
        # YOUR CODE HERE
        raise NotImplementedError()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits (batch, n_actions)."""
        # YOUR CODE HERE
        raise NotImplementedError()


class ValueNetwork(nn.Module):
    def __init__(self, obs_dim: int, hidden_size: int):
        super().__init__()
        # YOUR CODE HERE
        raise NotImplementedError()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Values (batch, 1)."""
        # YOUR CODE HERE
        raise NotImplementedError()

# %% [markdown]
# ## Advantages and the two losses
# - `compute_advantages`: $A_t = G_t - \hat v_w(s_t)$. The baseline is a constant for the
#   policy's update: no gradient may flow from the advantages into the value network.
# - `policy_loss`: the mean over the batch of $-A_t \log \pi_\theta(a_t|s_t)$.
# - `value_loss`: the mean squared error $\frac{1}{B}\sum_t (\hat v_w(s_t) - G_t)^2$.
# - `losses` puts them together for one batch. The baseline sees the state only (never
#   the action).
#
# `returns` are the returns **already scaled by the caller** (`train()` divides them by
# `Args.return_scale`): use them exactly as given. Do not rescale or normalize inside
# these functions, except that `losses(..., normalize_advantages=True)` standardizes
# the advantages, `(A - A.mean()) / (A.std() + 1e-8)`. Nothing else goes into the
# losses: a regulariser (an entropy bonus) belongs in `train()`. A loss that sums over
# the batch instead of averaging, or a value loss with a factor 1/2, is the same
# algorithm under Adam and keeps its points (the grader notes the factor).

# %%
def compute_advantages(returns: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """A_t = G_t - v(s_t) for a batch; returns (B,), values (B,) -> (B,), carrying no gradient."""
    # YOUR CODE HERE
    raise NotImplementedError()


def policy_loss(logits: torch.Tensor, actions: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """Scalar: mean of -A_t log pi(a_t|s_t); logits (B, n_actions), actions (B,), advantages (B,) used as given."""
    # YOUR CODE HERE
    raise NotImplementedError()


def value_loss(values: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
    """Scalar: mean of (v(s_t) - G_t)^2; values (B,), returns (B,) already scaled by the caller."""
    # YOUR CODE HERE
    raise NotImplementedError()


def losses(policy: nn.Module, value_net: nn.Module, obs: torch.Tensor, actions: torch.Tensor,
           returns: torch.Tensor, normalize_advantages: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(policy loss, value loss) of one batch: obs (B, 4), actions (B,), returns (B,) already scaled by the caller.

    Standardize the advantages only when normalize_advantages=True. The grader calls this
    with networks of its own (value_net(obs) has shape (B, 1)).
    """
    # YOUR CODE HERE
    raise NotImplementedError()

# %% [markdown]
# ## Collecting episodes (given)

# %%
class EpisodeCollector:
    def __init__(self, envs, device: str = "cpu"):
        self.envs, self.device = envs, device
        self.obs, _ = envs.reset()
        self.running = [self._empty() for _ in range(envs.num_envs)]

    @staticmethod
    def _empty() -> dict:
        return {"obs": [], "actions": [], "rewards": []}

    def collect(self, policy: nn.Module, n_episodes: int) -> list[dict]:
        """At least n_episodes finished episodes: dicts of arrays obs (T, 4), actions (T,), rewards (T,).

        Fewer (maybe none) when the environment has an episode budget and it is spent.
        """
        finished = []
        while len(finished) < n_episodes:
            retired = np.array(getattr(self.envs, "retired", np.zeros(self.envs.num_envs, dtype=bool)))
            if retired.all():
                break
            with torch.no_grad():
                obs = torch.as_tensor(self.obs, dtype=torch.float32, device=self.device)
                actions = sample_actions(policy, obs).cpu().numpy()
            next_obs, rewards, terminated, truncated, _ = self.envs.step(actions)
            for i, episode in enumerate(self.running):
                if retired[i]:
                    continue
                episode["obs"].append(self.obs[i])
                episode["actions"].append(actions[i])
                episode["rewards"].append(rewards[i])
                if terminated[i] or truncated[i]:
                    finished.append({key: np.array(value) for key, value in episode.items()})
                    self.running[i] = self._empty()
            self.obs = next_obs
        return finished

# %% [markdown]
# ## Training
# Collect batches of whole episodes until the environments retire (`collect` returns an
# empty list: the budget is spent, or your time is up); after each batch, one policy step and
# `value_epochs` value steps. Return the pair `(policy, value_net)`: the reference
# returns the policy that played the best batch (a policy-gradient step can undo a good
# policy, and the grader evaluates only what you return) and the value network as
# trained; the grader checks on its own states that the value network learned.

# %%
def train(make_envs, seed: int, time_budget_s: float, device: str = "cpu",
          args: Args | None = None) -> tuple[nn.Module, nn.Module]:
    """REINFORCE with a learned baseline; returns (the trained policy network, the value network)."""
    args = args or Args()
    # YOUR CODE HERE
    raise NotImplementedError()

# %% [markdown]
# ## Try it locally
# gymnasium's own vector environment stands in for the grader's; `train` stops by
# itself after `Args.episode_budget` finished episodes, or when the environments retire
# after `LOCAL_TIME_LIMIT_S` seconds of the wall clock (as the grader's do after your
# time budget).

# %%
LOCAL_TIME_LIMIT_S = 270.0


class RetireWhenTimeIsUp(gym.vector.VectorWrapper):
    """What the grader's environments do when your time is up: every one of them retires."""

    def __init__(self, envs, seconds: float):
        super().__init__(envs)
        self.deadline = time.monotonic() + seconds
        self.retired = np.zeros(envs.num_envs, dtype=bool)

    def step(self, actions):
        result = self.env.step(actions)
        self.retired[:] = time.monotonic() > self.deadline
        return result


def make_gymnasium_envs(num_envs: int, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP):
    return RetireWhenTimeIsUp(gym.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode="sync",
                                           vector_kwargs={"autoreset_mode": autoreset_mode}), LOCAL_TIME_LIMIT_S)


make_gymnasium_envs.make_env = lambda: gym.make("CartPole-v1")  # one environment, as make_envs.make_env()


def evaluate_locally(policy: nn.Module, episodes: int = 100, seed: int = 12345) -> np.ndarray:
    """What the grader does: `episodes` episodes in lockstep, actions from `act`."""
    envs = [gym.make("CartPole-v1") for _ in range(episodes)]
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
    returns, running = np.zeros(episodes), np.ones(episodes, dtype=bool)
    while running.any():
        index = np.flatnonzero(running)
        for j, a in zip(index, act(policy, obs[index]), strict=True):
            obs[j], reward, terminated, truncated, _ = envs[j].step(int(a))
            returns[j] += reward
            running[j] = not (terminated or truncated)
    return returns


if __name__ == "__main__":
    torch.set_num_threads(1)
    t0 = time.monotonic()
    trained, _value_net = train(make_gymnasium_envs, seed=0, time_budget_s=LOCAL_TIME_LIMIT_S)
    print(f"trained in {time.monotonic() - t0:.1f} s")
    scores = evaluate_locally(trained)
    print(f"evaluation: mean return {scores.mean():.1f} +- {scores.std():.1f} (pass: >= 475)")
