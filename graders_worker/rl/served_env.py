"""The worker side of a served vector environment: forwards actions, hands back what the grader answered."""

from __future__ import annotations

import numpy as np

from graders_worker.arrays import to_numpy
from graders_worker.main import callback
from graders_worker.rl.wire import unpack_step


class ServedVectorEnv:
    """A gymnasium-like vector environment whose sub-environments live in the grader.

    Runs in the worker. `step` is one callback to the grader, which steps the real
    environments and keeps the count; this object only forwards actions and hands
    back what the grader answered.
    """

    metadata = {"autoreset_mode": "SameStep"}

    def __init__(self, num_envs: int, callback=callback):
        """`callback(name, *args)` reaches the grader (another one serves the env in process, for benchmarks)."""
        import gymnasium as gym

        self._callback = callback
        info = callback("env_make", int(num_envs))
        self.num_envs = int(info["num_envs"])
        self.episode_budget = info["episode_budget"]
        high = np.array([4.8, np.finfo(np.float32).max, 0.41887903, np.finfo(np.float32).max], dtype=np.float32)
        self.single_observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.single_action_space = gym.spaces.Discrete(2)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.retired = np.zeros(self.num_envs, dtype=bool)

    def reset(self, seed=None, options=None):
        """Reset every sub-environment; the grader seeds them (a `seed` given here is ignored)."""
        obs = self._callback("env_reset")
        self.retired = np.zeros(self.num_envs, dtype=bool)
        return obs, {}

    def step(self, actions):
        actions = to_numpy(actions)  # a torch tensor maybe, on the GPU maybe
        if actions.dtype.kind == "f" and np.all(actions == np.round(actions)):
            actions = actions.astype(np.int64)
        reply = unpack_step(self._callback("env_step", actions.reshape(-1) if actions.ndim > 1 else actions))
        self.retired = reply["retired"]
        infos = {"final_obs": reply["final_obs"], "_final_obs": reply["final_mask"]}
        return reply["obs"], reply["rewards"], reply["terminated"], reply["truncated"], infos

    def close(self) -> None:
        pass
