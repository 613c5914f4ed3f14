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
  `reset` starts an episode; a `step` after the episode's end (terminated or truncated)
  goes on as gymnasium's goes on (the physics continues, truncated stays true past 500
  steps, reward 0 once the pole has fallen, with gymnasium's warning in the worker).
  Such steps belong to no episode: the episode was recorded when it ended, and they
  count neither as an episode nor towards its return (`steps_past_end` counts them).
With an episode budget, a sub-environment whose next episode would be over the budget
is *retired* instead of reset: it keeps its last observation, ignores its actions and
returns reward 0 and no termination from then on (`envs.retired` says which). Once
every sub-environment is retired, stepping again is refused with a message that
names the budget; so is a reset over the budget. When the student's own time is up
(`time_up`, the training's StudentClock), every sub-environment retires the same way,
the episodes then running are cut (not recorded), and a template's loop, which stops
when its environments are retired, returns what it trained: no student code reads a clock.

Every observation is served relabelled and every action read relabelled
(`cartpole.Relabelling`, a secret of the grading seed) when the server is given one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from graders.rl.cartpole import CartPole, Relabelling, cos_sin, env_seeds
from graders.sandbox import CallbackRefused
from graders.served import ServedTask
from graders_worker.rl.wire import FINAL, MODES, RETIRED, SAME_STEP, SINGLE, TERMINATED, TRUNCATED, WIDTH

MAX_ENVS = 64
STOP_AT_THE_BUDGET = ("Stop training when the budget is spent (collect_episodes returns fewer episodes then; "
                      "envs.retired tells which environments are done).")
_ZERO4 = [0.0, 0.0, 0.0, 0.0]
# gymnasium's words for a step before the first reset (OrderEnforcing's ResetNeeded)
STEP_BEFORE_RESET = "Cannot call env.step() before calling env.reset()"


@functools.cache
def gymnasium_high() -> tuple[float, ...]:
    """CartPole-v1's observation bounds as the installed gymnasium defines them (they changed between versions)."""
    from gymnasium.envs.classic_control.cartpole import CartPoleEnv

    return tuple(float(h) for h in CartPoleEnv().observation_space.high)


class CartPoleServer(ServedTask):
    """The grader's side of a served environment: the callbacks and the records (graders/served.py's contract:
    opened by make_envs, episodes started counted against the budget).

    One server per training run. Everything here is measured in the grader's process:
    the worker can only send actions.
    """

    unit, counted, budget_name = "episodes", "started", "training budget"
    what = "make_envs() (or make_envs.make_env())"

    def __init__(self, seed: int, episode_budget: int | None = None, max_envs: int = MAX_ENVS,
                 on_episode: Callable[[int, float], None] | None = None, relabelling: Relabelling | None = None,
                 time_up: Callable[[], bool] | None = None, record_states: bool = False):
        """`on_episode(episodes finished, its return)`: told of each finished episode (a progress display).
        `relabelling`: the grading's secret labels (None: gymnasium's). `time_up()`: whether the student's own
        time is up (asked every graders.served.TIME_CHECK_S of a training's steps). `record_states`: keep every finished
        episode's observations, as served (`episode_states`)."""
        super().__init__(episode_budget, time_up)
        self.seed = seed
        self.on_episode = on_episode
        self.max_envs = max_envs
        self.relabelling = relabelling
        self.cut = 0  # episodes running when the time ran out (never recorded)
        self.steps_past_end = 0  # single environment: steps after an episode's end, as gym.make allows
        self.mode: str | None = None
        self.envs: list[CartPole] = []
        self.steps = 0  # environment steps, summed over sub-environments
        self.vector_steps = 0  # step callbacks
        self.episode_returns: list[float] = []  # finished episodes, in the order they ended
        self.episode_lengths: list[int] = []
        self.episode_end_steps: list[int] = []  # value of `steps` when each episode ended
        self.record_states = record_states
        self.episode_states: list[np.ndarray] = []  # with record_states: each finished episode's (T, 4) observations
        self._visited: list[list[list[float]]] = []  # with record_states: the running episodes' states so far
        self._returns: list[float] = []
        self._lengths: list[int] = []
        self._states: list[list[float]] = []  # each environment's last observation, in float64
        self._retired: list[bool] = []
        self._ended: list[bool] = []  # the episode ended and the environment waits for its reset
        self._fell = False  # single environment: the pole fell in this episode (gymnasium's steps_beyond_terminated)
        self._reset_done = False

    def callbacks(self) -> dict:
        return {"env_make": self.make, "env_reset": self.reset, "env_step": self.step}

    @property
    def episode_budget(self) -> int | None:
        return self.budget

    @episode_budget.setter
    def episode_budget(self, value: int | None) -> None:
        self.budget = value

    @property
    def started(self) -> int:
        """Episodes started (resets, automatic or not): what the budget counts."""
        return self.used

    @property
    def retired(self) -> np.ndarray:
        return np.array(self._retired, dtype=bool)

    # -- callbacks (arguments come from the untrusted worker: validate everything) ---------------
    def make(self, num_envs, mode=SAME_STEP) -> dict:
        if self.opened:
            self._open()  # refused: once per run
        if type(num_envs) is not int or not 1 <= num_envs <= self.max_envs:
            raise CallbackRefused(f"make_envs(num_envs): num_envs must be an int from 1 to {self.max_envs}, "
                                  f"got {num_envs!r}")
        if mode not in MODES or (mode == SINGLE and num_envs != 1):
            raise CallbackRefused(f"the autoreset mode must be one of {MODES[:2]}, got {mode!r}")
        if self.episode_budget is not None and num_envs > self.episode_budget:
            raise CallbackRefused(f"num_envs={num_envs} is more than the budget of {self.episode_budget} episodes")
        n = num_envs
        self._open()
        self.mode, self.envs = mode, [CartPole() for _ in range(n)]
        self._returns, self._lengths, self._states = [0.0] * n, [0] * n, [list(_ZERO4) for _ in range(n)]
        self._retired, self._ended = [False] * n, [False] * n
        self._visited = [[] for _ in range(n)]
        high = np.array(gymnasium_high())
        if self.relabelling is not None:
            high = self.relabelling.bounds(high)
        return {"num_envs": n, "episode_budget": self.episode_budget, "mode": mode, "high": high.tolist()}

    def _check_time(self) -> None:
        """When the student's own time is up, retire every environment (the episodes running are cut)."""
        if not self.out_of_time and self._time_is_up():
            self.cut = sum(1 for i, r in enumerate(self._retired) if not r and not self._ended[i] and self._lengths[i])
            self._retired = [True] * len(self.envs)

    def _refuse_past_the_budget(self) -> None:
        """Every environment is retired: a further episode is refused, by the time or by the budget."""
        self._refuse_if_out_of_time()
        if self.budget is None:
            raise CallbackRefused("every environment is retired")
        self._charge(self.budget + 1 - self.used, f"episode {self.budget + 1}", STOP_AT_THE_BUDGET)

    def reset(self, _unused=None) -> np.ndarray:
        """Start an episode in every environment (abandoning running ones); their first observations."""
        self._require_open("reset()")
        n = len(self.envs)
        self._check_time()
        self._charge(n, f"episode {(self.budget or 0) + 1}", STOP_AT_THE_BUDGET)
        seeds = env_seeds(self.seed, "train", n) if not self._reset_done else [None] * n
        self._states = [env.reset(s) for env, s in zip(self.envs, seeds, strict=True)]
        self._returns, self._lengths, self._retired, self._ended = [0.0] * n, [0] * n, [False] * n, [False] * n
        self._visited = [[] for _ in range(n)]
        self._fell = False
        self._reset_done = True
        return self._served(np.array(self._states, dtype=np.float32))

    def _served(self, rows: np.ndarray) -> np.ndarray:
        """Observations (n, 4) or wire rows (n, WIDTH) as the worker sees them: relabelled."""
        if self.relabelling is not None:
            rows[:, 0:4] = self.relabelling.observations(rows[:, 0:4])
            if rows.shape[1] == WIDTH:
                rows[:, 4:8] = self.relabelling.observations(rows[:, 4:8])
        return rows

    def _check_actions(self, actions) -> list:
        n = len(self.envs)
        if not self._reset_done:  # (make_envs() not called either: no environment has been reset)
            raise CallbackRefused(STEP_BEFORE_RESET)
        if not isinstance(actions, np.ndarray) or actions.shape != (n,) or actions.dtype.kind not in "iub":
            shape = getattr(actions, "shape", None)
            raise CallbackRefused(f"step(actions) needs {n} integer actions (one per environment), got "
                                  f"{type(actions).__name__} of shape {shape}")
        values = actions.tolist()
        if not set(values) <= {0, 1}:
            raise CallbackRefused(f"CartPole actions are 0 or 1, got {sorted(set(values))[:5]}")
        if all(self._retired):
            self._refuse_past_the_budget()
        if self.relabelling is not None and self.relabelling.swap:
            values = [1 - v for v in values]
        return values

    def _record(self, i: int) -> None:
        """Environment i's episode ended: record it."""
        self.episode_returns.append(self._returns[i])
        self.episode_lengths.append(self._lengths[i])
        self.episode_end_steps.append(self.steps)
        self._returns[i], self._lengths[i] = 0.0, 0
        if self.record_states:
            self.episode_states.append(self._served(np.array(self._visited[i], dtype=np.float32)))
            self._visited[i] = []
        if self.on_episode is not None:
            self.on_episode(len(self.episode_returns), self.episode_returns[-1])

    def _next_episode(self, i: int) -> bool:
        """Reset environment i for its next episode, or retire it when the budget is spent; whether it reset."""
        if self.budget is not None and self.used >= self.budget:
            self._retired[i] = True
            return False
        self._states[i] = self.envs[i].reset()
        self.used += 1
        return True

    def _step_past_end(self, action: int) -> np.ndarray:
        """The single environment, stepped after its episode's end: gymnasium's CartPole goes on (its physics, its
        reward rule, TimeLimit's truncation); the step belongs to no episode."""
        env = self.envs[0]
        terminated, truncated = env.step(action)
        self.steps_past_end += 1
        reward = 1.0 if not terminated or not self._fell else 0.0  # gymnasium: 1 until the step the pole falls
        self._fell |= terminated
        state = self._states[0] = env.state()
        return self._served(np.array([state + _ZERO4 + [reward, TERMINATED * terminated + TRUNCATED * truncated]],
                                     dtype=np.float32))

    def step(self, actions) -> np.ndarray:
        """One step of every environment; the answer is wire.py's (n, 10) float32 array."""
        values = self._check_actions(actions)  # refused when every environment retired before this step
        self._check_time()  # the step that finds the time up answers "retired" for every environment
        if self.mode == SINGLE and self._ended[0] and not self._retired[0]:
            return self._step_past_end(values[0])
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
            if self.record_states:
                self._visited[i].append(states[i])
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
                self._fell = bool(terminated)
                out += state + _ZERO4 + [1.0, flags]
            else:
                out += state + _ZERO4 + [1.0, 0]
        return self._served(np.array(out, dtype=np.float32).reshape(-1, WIDTH))

    def summary(self) -> str:
        n = len(self.episode_returns)
        last = np.mean(self.episode_returns[-100:]) if n else float("nan")
        text = (f"training as the grader saw it: {n} episodes finished, {self.started} started, {self.steps} steps "
                f"in {len(self.envs)} environment(s); mean return of the last {min(n, 100)}: {last:.1f}")
        if self.steps_past_end:
            text += (f"; {self.steps_past_end} steps after an episode's end (gym.make allows them; they belong to no "
                     "episode)")
        if self.out_of_time:
            text += f"; your time ran out: the environments retired ({self.cut} running episode(s) cut)"
        return text
