"""The grader's side of a served CartPole vector environment: the callbacks and the records.

Both REINFORCE assignments train on environments that live in the grader's process:
the server steps `CartPoles` seeded from the grading seed, and counts and records
every step and episode itself. The worker only holds a proxy
(`graders_worker.rl.served_env.ServedVectorEnv`) whose `step` is one callback per
*vector* step.

Semantics are gymnasium 1.x `SyncVectorEnv` with `autoreset_mode=SAME_STEP`: when a
sub-environment's episode ends, `step` returns the first observation of its next
episode and the last one in `infos["final_obs"]` (mask `infos["_final_obs"]`). With
an episode budget, a sub-environment whose episode ends when the budget is spent is
*retired* instead of reset: it keeps its last observation, ignores its actions and
returns reward 0 and no termination from then on (`envs.retired` says which). Once
every sub-environment is retired, stepping again is refused with a message that
names the budget.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from graders.rl.cartpole import CartPoles, env_seeds
from graders.sandbox import CallbackRefused
from graders_worker.rl.wire import pack_step

MAX_ENVS = 64


class CartPoleServer:
    """The grader's side of a served vector environment: the callbacks and the records.

    One server per training run. Everything here is measured in the grader's process:
    the worker can only send actions.
    """

    def __init__(self, seed: int, episode_budget: int | None = None, max_envs: int = MAX_ENVS,
                 on_episode: Callable[[int, float], None] | None = None):
        """`on_episode(episodes finished, its return)`: told of each finished episode (a progress display)."""
        self.seed = seed
        self.on_episode = on_episode
        self.episode_budget = episode_budget
        self.max_envs = max_envs
        self.envs: CartPoles | None = None
        self.started = 0  # episodes started (resets, automatic or not)
        self.steps = 0  # environment steps, summed over sub-environments
        self.vector_steps = 0  # step callbacks
        self.episode_returns: list[float] = []  # finished episodes, in the order they ended
        self.episode_lengths: list[int] = []
        self.episode_end_steps: list[int] = []  # value of `steps` when each episode ended
        self._returns = np.zeros(0)
        self._lengths = np.zeros(0, dtype=np.int64)
        self._obs = np.zeros((0, 4), dtype=np.float32)
        self._retired = np.zeros(0, dtype=bool)
        self._reset_done = False

    def callbacks(self) -> dict:
        return {"env_make": self.make, "env_reset": self.reset, "env_step": self.step}

    # -- callbacks (arguments come from the untrusted worker: validate everything) ---------------
    def make(self, num_envs) -> dict:
        if self.envs is not None:
            raise CallbackRefused("make_envs() may be called once per training run; reuse the environments it gave")
        if type(num_envs) is not int or not 1 <= num_envs <= self.max_envs:
            raise CallbackRefused(f"make_envs(num_envs): num_envs must be an int from 1 to {self.max_envs}, "
                                  f"got {num_envs!r}")
        if self.episode_budget is not None and num_envs > self.episode_budget:
            raise CallbackRefused(f"num_envs={num_envs} is more than the budget of {self.episode_budget} episodes")
        self.envs = CartPoles(num_envs)
        n = num_envs
        self._returns, self._lengths = np.zeros(n), np.zeros(n, dtype=np.int64)
        self._obs, self._retired = np.zeros((n, 4), dtype=np.float32), np.zeros(n, dtype=bool)
        return {"num_envs": n, "episode_budget": self.episode_budget}

    def _refuse_if_over_budget(self, new: int) -> None:
        if self.episode_budget is not None and self.started + new > self.episode_budget:
            raise CallbackRefused(
                f"the training budget is {self.episode_budget} episodes and all of them have been used: "
                f"episode {self.episode_budget + 1} refused. Stop training when the budget is spent "
                "(collect_episodes returns fewer episodes then; envs.retired tells which environments are done).")

    def reset(self) -> np.ndarray:
        if self.envs is None:
            raise CallbackRefused("reset() before make_envs()")
        n = len(self._obs)
        self._refuse_if_over_budget(n)
        seeds = env_seeds(self.seed, "train", n) if not self._reset_done else [None] * n
        for i in range(n):
            self._obs[i] = self.envs.reset(i, seeds[i])
        self.started += n
        self._returns[:], self._lengths[:], self._retired[:] = 0.0, 0, False
        self._reset_done = True
        return self._obs.copy()

    def step(self, actions) -> np.ndarray:
        """One step of every sub-environment; the answer is `pack_step`'s array."""
        n = len(self._obs)
        if not self._reset_done:
            raise CallbackRefused("step() before reset()")
        if not isinstance(actions, np.ndarray) or actions.shape != (n,) or actions.dtype.kind not in "iub":
            shape = getattr(actions, "shape", None)
            raise CallbackRefused(f"step(actions) needs {n} integer actions (one per environment), got "
                                  f"{type(actions).__name__} of shape {shape}")
        if self._retired.all():
            self._refuse_if_over_budget(1)
        if actions.min() < 0 or actions.max() > 1:
            raise CallbackRefused(f"CartPole actions are 0 or 1, got {sorted(set(actions.tolist()))}")
        if self._retired.any():
            live = np.flatnonzero(~self._retired)
            obs, term, trunc = self.envs.step(actions[live], live)
            rewards, terminated, truncated = np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
            rewards[live], terminated[live], truncated[live] = 1.0, term, trunc
        else:  # the usual case, without fancy indexing
            live = slice(None)
            obs, terminated, truncated = self.envs.step(actions)
            rewards = np.ones(n)
        self.vector_steps += 1
        self.steps += len(obs)
        self._returns[live] += 1.0
        self._lengths[live] += 1
        self._obs[live] = obs
        final_obs, final_mask = np.zeros((n, 4), dtype=np.float32), terminated | truncated
        for i in np.flatnonzero(final_mask):  # episodes that ended: record, then reset or retire
            self.episode_returns.append(float(self._returns[i]))
            self.episode_lengths.append(int(self._lengths[i]))
            self.episode_end_steps.append(self.steps)
            if self.on_episode is not None:
                self.on_episode(len(self.episode_returns), self.episode_returns[-1])
            self._returns[i], self._lengths[i] = 0.0, 0
            final_obs[i] = self._obs[i]
            if self.episode_budget is None or self.started < self.episode_budget:
                self._obs[i] = self.envs.reset(i)
                self.started += 1
            else:
                self._retired[i] = True
        return pack_step(self._obs, final_obs, rewards, terminated, truncated, final_mask, self._retired)

    def summary(self) -> str:
        n = len(self.episode_returns)
        last = np.mean(self.episode_returns[-100:]) if n else float("nan")
        return (f"training as the grader saw it: {n} episodes finished, {self.started} started, {self.steps} steps "
                f"in {len(self._obs)} environments; mean return of the last {min(n, 100)}: {last:.1f}")

