# %% [markdown]
# # REINFORCE on CartPole-v1
#
# You will train a policy network with REINFORCE (Williams, 1992; Sutton & Barto,
# section 13.3) to balance the pole of gymnasium's CartPole-v1 for the full 500 steps.
#
# The whole algorithm is in this file, top to bottom: hyperparameters, the discounted
# returns, the policy network, action sampling, the loss, and the training loop. The
# cells marked `YOUR CODE HERE` are yours; everything else is given.
#
# **How it is graded.** The grader runs your code in a separate process.
# - Unit checks: `discounted_returns` on scripted rewards; the gradient of
#   `reinforce_loss` on a batch and network weights the grader chose, compared with the
#   REINFORCE estimator the grader computes itself; `sample_actions` must draw actions
#   with the policy's probabilities (a chi-squared test on many draws).
# - Training: the grader calls `train(make_envs, seed, time_budget_s, device)` on two
#   seeds. `make_envs(num_envs)` gives you a gymnasium vector environment that behaves
#   like `SyncVectorEnv` with same-step autoreset (`make_envs(n, autoreset_mode=
#   gym.vector.AutoresetMode.NEXT_STEP)` for gymnasium's default), and
#   `make_envs.make_env()` one `gymnasium.Env` like `gym.make("CartPole-v1")`, for a
#   classic one-episode-at-a-time loop; either one, once. Their CartPoles live in the
#   grader: it counts your steps and records your training returns (the learning curve
#   in your feedback is what the grader saw). Do not build environments of your own.
#   You need no clock: `time_budget_s` seconds of your code's own time (the grader's
#   serving is not counted) after `train()` starts, the grader *retires* your
#   environments (`envs.retired` all True, and `EpisodeCollector.collect` returns no
#   episode), and your loop returns what it trained. The grader's CartPole may label
#   the observation's four numbers in another order and sign, and the two actions the
#   other way round: a network learns from any labels alike.
# - Evaluation: the grader plays 100 episodes in its own environments, from its own
#   seeds, asking `act(policy, observations)` for the actions; you pass a seed when the
#   mean return is at least 490.
#
# Run this file (`python reinforce.py`) to train and evaluate locally on gymnasium.
# %%
from __future__ import annotations

import copy
import time
from collections import deque
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
# %% [markdown]
# ## Hyperparameters
# Every knob of the algorithm, in one place. The defaults solve CartPole in a few
# seconds of CPU time on most seeds; you may change them.

# %%
@dataclass
class Args:
    num_envs: int = 32
    """CartPoles stepped in lockstep: one batched forward pass (and one grader round trip) per step"""
    episodes_per_update: int = 32
    """whole episodes in each policy-gradient batch"""
    learning_rate: float = 1e-2
    """Adam step size of the policy network"""
    gamma: float = 0.99
    """discount factor of the returns"""
    hidden_size: int = 64
    """width of the two hidden layers of the policy network"""
    normalize_returns: bool = True
    """standardize the returns of each batch (zero mean, unit variance) before the loss"""
    target_return: float = 495.0
    """stop training once the training episodes average this much ..."""
    target_window: int = 100
    """... over this many most recent episodes ..."""
    perfect_streak: int = 20
    """... and the last this-many episodes all lasted the full 500 steps (a greedy policy is then reliable)"""

# %% [markdown]
# ## Discounted returns
# For one episode with rewards $r_0, \dots, r_{T-1}$, the return from step $t$ is
# $G_t = r_t + \gamma r_{t+1} + \gamma^2 r_{t+2} + \dots = r_t + \gamma G_{t+1}$, with
# $G_T = 0$. Compute it backwards from the end of the episode.

# %%
def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """G_t for every step t of one episode (a float array of the same length as rewards)."""
    # YOUR CODE HERE
    raise NotImplementedError()

# %% [markdown]
# ## The policy network
# A small MLP from an observation (4 numbers) to one logit per action (2 actions):
# $\pi(a|s) = \mathrm{softmax}(f_\theta(s))_a$.

# %%
class Policy(nn.Module):
    def __init__(self, obs_dim: int, n_actions: int, hidden_size: int):
        super().__init__()
        # YOUR CODE HERE
        raise NotImplementedError()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, n_actions) for observations of shape (batch, obs_dim)."""
        # YOUR CODE HERE
        raise NotImplementedError()

# %% [markdown]
# ## Acting
# During training, actions are *sampled* from $\pi(\cdot|s)$: REINFORCE's gradient is an
# expectation over the policy's own actions. In the grader's evaluation, `act` may
# take the most probable action instead.
#
# `sample_actions` receives any module that maps observations to logits (the grader
# calls it with a network of its own).

# %%
def sample_actions(policy: nn.Module, obs: torch.Tensor) -> torch.Tensor:
    """One action per observation, drawn from softmax(policy(obs)); a LongTensor of shape (batch,)."""
    # YOUR CODE HERE
    raise NotImplementedError()


def act(policy: nn.Module, observations: np.ndarray) -> np.ndarray:
    """Actions for the grader's evaluation: observations (batch, 4) -> int array (batch,)."""
    # YOUR CODE HERE
    raise NotImplementedError()

# %% [markdown]
# ## The REINFORCE loss
# The REINFORCE estimator of the policy gradient on a batch of $B$ steps is
# $\hat g = \frac{1}{B}\sum_t G_t \nabla_\theta \log \pi_\theta(a_t|s_t)$.
# Write a loss whose gradient is $-\hat g$ (an optimizer *minimizes* it): the mean over
# the batch of $-G_t \log \pi_\theta(a_t|s_t)$. Use the log-probability of the action
# that was actually taken, and treat the returns as constants.
#
# `returns` are the returns **already scaled by the caller**: `train()` standardizes
# them when `Args.normalize_returns` is on. Use them exactly as given: no normalizing
# or rescaling inside the loss, and nothing else in it (a regulariser such as an entropy
# bonus belongs in `train()`). A loss that sums over the batch instead of averaging is
# the same algorithm under Adam and keeps its points (the grader notes the factor).

# %%
def reinforce_loss(logits: torch.Tensor, actions: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
    """Scalar loss; logits (B, n_actions), actions (B,) long, returns (B,) float, already scaled by the caller."""
    # YOUR CODE HERE
    raise NotImplementedError()

# %% [markdown]
# ## Collecting episodes (given)
# `EpisodeCollector` plays your policy in the vector environment and hands back whole
# episodes. Episodes still running when a batch is complete are continued in the next
# call, so no step is wasted (their first steps come from a slightly older policy).

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
# `make_envs(num_envs)` returns the vector environment (call it once). Train until the
# recent training returns reach `args.target_return`, or until the environments are
# retired (`collect` returns no episode: your time is up), and return the trained policy
# network. The grader then calls `act(policy, observations)` with it.

# %%
def train(make_envs, seed: int, time_budget_s: float, device: str = "cpu", args: Args | None = None) -> nn.Module:
    """REINFORCE; returns the trained policy network."""
    args = args or Args()
    # YOUR CODE HERE
    raise NotImplementedError()

# %% [markdown]
# ## Try it locally
# The grader serves the environments itself; locally, gymnasium's own vector
# environment with the same semantics stands in for it, retired after
# `LOCAL_TIME_LIMIT_S` seconds of the wall clock as the grader's are after your time budget.

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
    trained = train(make_gymnasium_envs, seed=0, time_budget_s=LOCAL_TIME_LIMIT_S)
    print(f"trained in {time.monotonic() - t0:.1f} s")
    scores = evaluate_locally(trained)
    print(f"evaluation: mean return {scores.mean():.1f} +- {scores.std():.1f} (pass: >= 490)")
