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
passed to `reset` is ignored. The observation space's bounds are the grader's too
(its CartPole may label the observation's components in another order).

The single `ServedEnv` accepts every call sequence `gym.make("CartPole-v1")` accepts,
stepping on after an episode's end included, and refuses what it refuses with
gymnasium's own exceptions and words (a step before the first reset, an action its
action space does not contain). When the grader retires an environment (the episode
budget is spent, or the student's own time is up), `retired` says so; the single
environment's step that retires it returns truncated=True.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from graders_worker.arrays import to_numpy
from graders_worker.fastpath import call_array
from graders_worker.main import callback
from graders_worker.rl.wire import NEXT_STEP, RETIRED, SAME_STEP, SINGLE, TERMINATED, TRUNCATED, unpack_step

_NO_ARGUMENT = np.zeros(0, dtype=np.uint8)


def _observation_space(high) -> gym.spaces.Box:
    """CartPole-v1's space with the bounds the grader sent (gymnasium's, in the grader's order of components)."""
    high = np.asarray(high, dtype=np.float32)
    return gym.spaces.Box(-high, high, dtype=np.float32)


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
        self.single_observation_space = _observation_space(info["high"])
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

    No autoreset: after `terminated or truncated`, call `reset()` to start the next episode.
    """

    metadata = {"render_modes": []}

    def __init__(self, *, callback=callback, call_array=call_array):
        self._call_array = call_array
        info = callback("env_make", 1, SINGLE)
        self.episode_budget = info["episode_budget"]
        self.observation_space = _observation_space(info["high"])
        self.action_space = gym.spaces.Discrete(2)
        self.spec = gym.spec("CartPole-v1")
        self.retired = False
        self._action = np.zeros(1, dtype=np.int64)
        self._has_reset = False
        self._terminated = self._warned = False

    def reset(self, *, seed=None, options=None):
        """Start the next episode; the grader seeds it (a `seed` given here is ignored)."""
        super().reset(seed=seed)
        obs = np.array(self._call_array("env_reset", _NO_ARGUMENT)[0])
        self._has_reset, self._terminated, self._warned = True, False, False
        return obs, {}

    def step(self, action):
        if not self._has_reset:  # gymnasium's OrderEnforcing
            raise gym.error.ResetNeeded("Cannot call env.step() before calling env.reset()")
        assert self.action_space.contains(action), f"{action!r} ({type(action)}) invalid"  # CartPoleEnv's words
        if self._terminated and not self._warned:
            gym.logger.warn("You are calling 'step()' even though this environment has already returned "
                            "terminated = True. You should always call 'reset()' once you receive 'terminated = True' "
                            "-- any further steps are undefined behavior.")
            self._warned = True
        self._action[0] = int(action)
        row = self._call_array("env_step", self._action)[0]
        flags = int(row[9])
        terminated, retired = bool(flags & TERMINATED), bool(flags & RETIRED)
        self._terminated |= terminated
        self.retired |= retired
        return row[:4].copy(), float(row[8]), terminated, bool(flags & TRUNCATED) or retired, {}


class ServedEnvs:
    """`make_envs` for a submission's `train()`: the grader's environments (one kind, once per run)."""

    def __call__(self, num_envs: int = 1, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP) -> ServedVectorEnv:
        return ServedVectorEnv(num_envs, autoreset_mode)

    def make_env(self) -> ServedEnv:
        return ServedEnv()
