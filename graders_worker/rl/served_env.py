"""The worker side of a served CartPole: gymnasium environments whose dynamics live in the grader.

`ServedEnvs` is the `make_envs` a submission's `train()` receives:
- `make_envs(num_envs, autoreset_mode=SAME_STEP)` -> `ServedVectorEnv`, a real
  `gymnasium.vector.VectorEnv` (spaces, `metadata["autoreset_mode"]`, same-step or
  next-step autoreset), so gymnasium's vector wrappers work on it as on `SyncVectorEnv`;
- `make_envs.make_env()` -> `ServedEnv`, a `gymnasium.Env` like `gym.make("CartPole-v1")`,
  for the classic one-episode-at-a-time loop.
Either is made once per training run. Each `step` is one callback to the grader
(graders/rl/server.py), through the shared-memory fast path when there is one, which
steps the real environments, counts and records; these objects only forward actions
and hand back what the grader answered. Reset seeds come from the grader: a `seed`
passed to `reset` is ignored.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from graders_worker.arrays import to_numpy
from graders_worker.fastpath import call_array
from graders_worker.main import callback
from graders_worker.rl.wire import NEXT_STEP, SAME_STEP, SINGLE, TERMINATED, TRUNCATED, unpack_step

_NO_ARGUMENT = np.zeros(0, dtype=np.uint8)


def _observation_space() -> gym.spaces.Box:
    """CartPole-v1's, as the installed gymnasium defines it (its bounds changed between versions)."""
    from gymnasium.envs.classic_control.cartpole import CartPoleEnv

    return CartPoleEnv().observation_space


def _autoreset_value(mode) -> str:
    value = getattr(mode, "value", mode)
    if value not in (SAME_STEP, NEXT_STEP):
        raise ValueError(f"autoreset_mode must be gymnasium.vector.AutoresetMode.SAME_STEP or NEXT_STEP, got {mode!r}")
    return value


class ServedVectorEnv(gym.vector.VectorEnv):
    """A gymnasium vector environment whose sub-environments live in the grader.

    `retired[i]` is True once sub-environment i's episodes are over because the
    episode budget is spent (it then ignores its actions and returns reward 0).
    """

    def __init__(self, num_envs: int, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP, *,
                 callback=callback, call_array=call_array):
        """`callback(name, *args)`, `call_array(name, array)` reach the grader (a test or a bench may serve in process)."""
        mode = _autoreset_value(autoreset_mode)
        self._call_array = call_array
        info = callback("env_make", int(num_envs), mode)
        self.num_envs = int(info["num_envs"])
        self.episode_budget = info["episode_budget"]
        self.metadata = {"autoreset_mode": gym.vector.AutoresetMode(mode), "render_modes": []}
        self.single_observation_space = _observation_space()
        self.single_action_space = gym.spaces.Discrete(2)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.retired = np.zeros(self.num_envs, dtype=bool)

    def reset(self, *, seed=None, options=None):
        """Reset every sub-environment; the grader seeds them (a `seed` given here is ignored)."""
        obs = np.array(self._call_array("env_reset", _NO_ARGUMENT))
        self.retired = np.zeros(self.num_envs, dtype=bool)
        return obs, {}

    def step(self, actions):
        if type(actions) is not np.ndarray:
            actions = np.asarray(to_numpy(actions))  # a torch tensor maybe, on the GPU maybe; or a list
        if actions.dtype.kind == "f" and np.all(actions == np.round(actions)):
            actions = actions.astype(np.int64)
        reply = unpack_step(self._call_array("env_step", actions.reshape(-1) if actions.ndim > 1 else actions))
        self.retired = reply["retired"]
        infos = {}
        mask = reply["final_mask"]
        if mask.any():  # as SyncVectorEnv(autoreset_mode=SAME_STEP) reports them
            final_obs = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(mask):
                final_obs[i] = reply["final_obs"][i]
            infos = {"final_obs": final_obs, "_final_obs": mask, "final_info": {}, "_final_info": mask.copy()}
        return reply["obs"], reply["rewards"], reply["terminated"], reply["truncated"], infos


class ServedEnv(gym.Env):
    """A gymnasium environment like `gym.make("CartPole-v1")`, whose dynamics live in the grader.

    No autoreset: after `terminated or truncated`, call `reset()` before stepping again.
    """

    metadata = {"render_modes": []}

    def __init__(self, *, callback=callback, call_array=call_array):
        self._call_array = call_array
        info = callback("env_make", 1, SINGLE)
        self.episode_budget = info["episode_budget"]
        self.observation_space = _observation_space()
        self.action_space = gym.spaces.Discrete(2)
        self.spec = gym.spec("CartPole-v1")
        self._action = np.zeros(1, dtype=np.int64)

    def reset(self, *, seed=None, options=None):
        """Start the next episode; the grader seeds it (a `seed` given here is ignored)."""
        super().reset(seed=seed)
        return np.array(self._call_array("env_reset", _NO_ARGUMENT)[0]), {}

    def step(self, action):
        if type(action) is int:
            self._action[0] = action
        else:
            value = np.asarray(to_numpy(action)).reshape(-1)
            if value.shape != (1,) or value.dtype.kind not in "iub":
                raise ValueError(f"CartPole's action is one integer, 0 or 1; got {action!r}")
            self._action[0] = value[0]
        row = self._call_array("env_step", self._action)[0]
        flags = int(row[9])
        return row[:4].copy(), float(row[8]), bool(flags & TERMINATED), bool(flags & TRUNCATED), {}


class ServedEnvs:
    """`make_envs` for a submission's `train()`: the grader's environments (one kind, once per run)."""

    def __call__(self, num_envs: int = 1, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP) -> ServedVectorEnv:
        return ServedVectorEnv(num_envs, autoreset_mode)

    def make_env(self) -> ServedEnv:
        return ServedEnv()
