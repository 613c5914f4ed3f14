"""The grader's side of a served CartPole environment: the callbacks and the records.

Both REINFORCE assignments train on environments that live in the grader's process:
the server steps `CartPole`s seeded from the grading seed, and counts and records
every step and episode itself. The worker only holds a proxy
(`graders_worker.rl.served_env`): a gymnasium `VectorEnv` whose `step` is one callback
per *vector* step, or a gymnasium `Env` whose `step` is one callback per step. The
step callback travels through the shared-memory fast path (graders/sandbox/fastpath.py)
when there is one: an array of actions in, one array `(n, 10)` out (graders_worker/rl/wire.py).

Modes (`make(num_envs, mode)`), as gymnasium 1.x defines them:
- `SameStep` (`SyncVectorEnv(autoreset_mode=SAME_STEP)`, the default): when a
  sub-environment's episode ends, `step` returns the first observation of its next
  episode and the last one in `infos["final_obs"]`;
- `NextStep` (gymnasium's default): the step after an episode's end ignores that
  sub-environment's action and returns the first observation of the next episode,
  reward 0, no termination;
- `single`: one environment without autoreset, `gym.make("CartPole-v1")`'s contract:
  after an episode's end the next call must be `reset`.
With an episode budget, a sub-environment whose next episode would be over the budget
is *retired* instead of reset: it keeps its last observation, ignores its actions and
returns reward 0 and no termination from then on (`envs.retired` says which). Once
every sub-environment is retired, stepping again is refused with a message that
names the budget; so is a reset over the budget.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from graders.rl.cartpole import CartPole, cos_sin, env_seeds
from graders.sandbox import CallbackRefused
from graders_worker.rl.wire import FINAL, MODES, RETIRED, SAME_STEP, SINGLE, TERMINATED, TRUNCATED, WIDTH

MAX_ENVS = 64
_ZERO4 = [0.0, 0.0, 0.0, 0.0]


class CartPoleServer:
    """The grader's side of a served environment: the callbacks and the records.

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
        self.mode: str | None = None
        self.envs: list[CartPole] = []
        self.started = 0  # episodes started (resets, automatic or not)
        self.steps = 0  # environment steps, summed over sub-environments
        self.vector_steps = 0  # step callbacks
        self.episode_returns: list[float] = []  # finished episodes, in the order they ended
        self.episode_lengths: list[int] = []
        self.episode_end_steps: list[int] = []  # value of `steps` when each episode ended
        self._returns: list[float] = []
        self._lengths: list[int] = []
        self._states: list[list[float]] = []  # each environment's last observation, in float64
        self._retired: list[bool] = []
        self._ended: list[bool] = []  # the episode ended and the environment waits for its reset
        self._reset_done = False

    def callbacks(self) -> dict:
        return {"env_make": self.make, "env_reset": self.reset, "env_step": self.step}

    @property
    def retired(self) -> np.ndarray:
        return np.array(self._retired, dtype=bool)

    # -- callbacks (arguments come from the untrusted worker: validate everything) ---------------
    def make(self, num_envs, mode=SAME_STEP) -> dict:
        if self.envs:
            raise CallbackRefused("make_envs() (or make_envs.make_env()) may be called once per training run; "
                                  "reuse the environment it gave")
        if type(num_envs) is not int or not 1 <= num_envs <= self.max_envs:
            raise CallbackRefused(f"make_envs(num_envs): num_envs must be an int from 1 to {self.max_envs}, "
                                  f"got {num_envs!r}")
        if mode not in MODES or (mode == SINGLE and num_envs != 1):
            raise CallbackRefused(f"the autoreset mode must be one of {MODES[:2]}, got {mode!r}")
        if self.episode_budget is not None and num_envs > self.episode_budget:
            raise CallbackRefused(f"num_envs={num_envs} is more than the budget of {self.episode_budget} episodes")
        n = num_envs
        self.mode, self.envs = mode, [CartPole() for _ in range(n)]
        self._returns, self._lengths, self._states = [0.0] * n, [0] * n, [list(_ZERO4) for _ in range(n)]
        self._retired, self._ended = [False] * n, [False] * n
        return {"num_envs": n, "episode_budget": self.episode_budget, "mode": mode}

    def _refuse_if_over_budget(self, new: int) -> None:
        if self.episode_budget is not None and self.started + new > self.episode_budget:
            raise CallbackRefused(
                f"the training budget is {self.episode_budget} episodes and all of them have been used: "
                f"episode {self.episode_budget + 1} refused. Stop training when the budget is spent "
                "(collect_episodes returns fewer episodes then; envs.retired tells which environments are done).")

    def reset(self, _unused=None) -> np.ndarray:
        """Start an episode in every environment (abandoning running ones); their first observations."""
        if not self.envs:
            raise CallbackRefused("reset() before make_envs()")
        n = len(self.envs)
        self._refuse_if_over_budget(n)
        seeds = env_seeds(self.seed, "train", n) if not self._reset_done else [None] * n
        self._states = [env.reset(s) for env, s in zip(self.envs, seeds, strict=True)]
        self.started += n
        self._returns, self._lengths, self._retired, self._ended = [0.0] * n, [0] * n, [False] * n, [False] * n
        self._reset_done = True
        return np.array(self._states, dtype=np.float32)

    def _check_actions(self, actions) -> list:
        n = len(self.envs)
        if not self._reset_done:
            raise CallbackRefused("step() before reset()")
        if not isinstance(actions, np.ndarray) or actions.shape != (n,) or actions.dtype.kind not in "iub":
            shape = getattr(actions, "shape", None)
            raise CallbackRefused(f"step(actions) needs {n} integer actions (one per environment), got "
                                  f"{type(actions).__name__} of shape {shape}")
        values = actions.tolist()
        if not set(values) <= {0, 1}:
            raise CallbackRefused(f"CartPole actions are 0 or 1, got {sorted(set(values))[:5]}")
        if self.mode == SINGLE and self._ended[0]:
            raise CallbackRefused("step() after the episode ended (terminated or truncated): call reset() first, "
                                  "as gymnasium requires")
        if all(self._retired):
            self._refuse_if_over_budget(1)
        return values

    def _record(self, i: int) -> None:
        """Environment i's episode ended: record it."""
        self.episode_returns.append(self._returns[i])
        self.episode_lengths.append(self._lengths[i])
        self.episode_end_steps.append(self.steps)
        self._returns[i], self._lengths[i] = 0.0, 0
        if self.on_episode is not None:
            self.on_episode(len(self.episode_returns), self.episode_returns[-1])

    def _next_episode(self, i: int) -> bool:
        """Reset environment i for its next episode, or retire it when the budget is spent; whether it reset."""
        if self.episode_budget is not None and self.started >= self.episode_budget:
            self._retired[i] = True
            return False
        self._states[i] = self.envs[i].reset()
        self.started += 1
        return True

    def step(self, actions) -> np.ndarray:
        """One step of every environment; the answer is wire.py's (n, 10) float32 array."""
        values = self._check_actions(actions)
        self.vector_steps += 1
        states, returns, lengths, retired, ended = self._states, self._returns, self._lengths, self._retired, self._ended
        same_step = self.mode == SAME_STEP
        angles = cos_sin(self.envs) if len(self.envs) > 2 else [None] * len(self.envs)
        out = []  # n rows of 10 numbers, flat
        for i, env in enumerate(self.envs):  # the hottest loop of a training run: plain Python
            if retired[i]:
                out += states[i] + _ZERO4 + [0.0, RETIRED]
                continue
            if ended[i]:  # next-step autoreset: this step starts the next episode
                ended[i] = False
                flags = 0 if self._next_episode(i) else RETIRED
                out += states[i] + _ZERO4 + [0.0, flags]
                continue
            terminated, truncated = env.step(values[i], angles[i])
            self.steps += 1
            returns[i] += 1.0
            lengths[i] += 1
            state = states[i] = [env.x, env.x_dot, env.theta, env.theta_dot]
            if terminated or truncated:
                self._record(i)
                flags = TERMINATED * terminated + TRUNCATED * truncated
                if same_step:
                    flags |= FINAL if self._next_episode(i) else FINAL | RETIRED
                    out += states[i] + state + [1.0, flags]
                    continue
                ended[i] = True
                out += state + _ZERO4 + [1.0, flags]
            else:
                out += state + _ZERO4 + [1.0, 0]
        return np.array(out, dtype=np.float32).reshape(-1, WIDTH)

    def summary(self) -> str:
        n = len(self.episode_returns)
        last = np.mean(self.episode_returns[-100:]) if n else float("nan")
        return (f"training as the grader saw it: {n} episodes finished, {self.started} started, {self.steps} steps "
                f"in {len(self.envs)} environment(s); mean return of the last {min(n, 100)}: {last:.1f}")
