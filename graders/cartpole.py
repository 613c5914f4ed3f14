"""CartPole-v1 served by the grader, and the grader's own evaluation of a policy.

Both REINFORCE assignments train on environments that live in the grader's process:
the grader steps CartPole-v1 environments (`CartPoles`: gymnasium's dynamics,
vectorised, bit for bit the same), seeded from the grading seed, and counts and
records every step and episode itself. The worker only holds a proxy
(`ServedVectorEnv`) whose `step` is one callback per *vector* step: a round trip
costs about as much as stepping several gymnasium CartPoles, so serving N
environments in lockstep keeps the overhead small (bench/reinforce_env_overhead.py
measures it).

Two halves, one per side of the boundary:
- grader side (trusted): `CartPoleServer` (the callbacks), `evaluate` (the grader's
  100 evaluation episodes, asking the worker only for actions), `plot_learning_curve`;
- worker side (untrusted, imported by the adapters): `ServedVectorEnv`.

Semantics of the served vector environment are gymnasium 1.x `SyncVectorEnv` with
`autoreset_mode=SAME_STEP`: when a sub-environment's episode ends, `step` returns the
first observation of its next episode and the last one in `infos["final_obs"]`
(mask `infos["_final_obs"]`). With an episode budget, a sub-environment whose episode
ends when the budget is spent is *retired* instead of reset: it keeps its last
observation, ignores its actions and returns reward 0 and no termination from then on
(`envs.retired` says which). Once every sub-environment is retired, stepping again is
refused with a message that names the budget.
"""

from __future__ import annotations

import logging
import math

import numpy as np

log = logging.getLogger(__name__)

ENV_ID = "CartPole-v1"
MAX_ENVS = 64
MAX_EPISODE_STEPS = 500


# --- grader side --------------------------------------------------------------------------------


class CartPoles:
    """n CartPole-v1 environments stepped together with numpy: gymnasium's dynamics, vectorised.

    The same arithmetic in the same order as gymnasium's `CartPoleEnv.step` (float64
    state, float32 observations), its `TimeLimit` of 500 steps, and one random generator
    per environment seeded as gymnasium seeds one (`reset(i, seed)`; later resets without
    a seed continue that generator), so every observation, reward and flag is bit for bit
    what `gym.make("CartPole-v1")` gives (tests/test_reinforce.py compares them step by
    step). Stepping 8 of them costs a few numpy operations instead of 8 wrapped
    environments: the served environment's step is the hottest call of a training run.
    """

    GRAVITY, MASSCART, MASSPOLE, LENGTH, FORCE_MAG, TAU = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    TOTAL_MASS = MASSPOLE + MASSCART
    POLEMASS_LENGTH = MASSPOLE * LENGTH
    THETA_THRESHOLD = 12 * 2 * math.pi / 360
    X_THRESHOLD = 2.4

    def __init__(self, n: int):
        self.state = np.zeros((4, n))  # rows x, x_dot, theta, theta_dot: each a contiguous array
        self.elapsed = np.zeros(n, dtype=np.int64)
        self.rngs: list[np.random.Generator | None] = [None] * n

    def reset(self, i: int, seed: int | None = None) -> np.ndarray:
        """Start a new episode in environment i; its first observation."""
        if seed is not None or self.rngs[i] is None:
            self.rngs[i] = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
        self.state[:, i] = self.rngs[i].uniform(low=-0.05, high=0.05, size=(4,))
        self.elapsed[i] = 0
        return self.state[:, i].astype(np.float32)

    def step(self, actions: np.ndarray, index=slice(None)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Step the environments `index` (all by default) with `actions` (0 or 1, one each).

        Returns their observations (float32, shape (len, 4)), terminated and truncated.
        """
        x, x_dot, theta, theta_dot = self.state[:, index]
        force = self.FORCE_MAG * (2.0 * actions - 1.0)  # exactly +-10.0
        costheta, sintheta = np.cos(theta), np.sin(theta)
        temp = (force + self.POLEMASS_LENGTH * np.square(theta_dot) * sintheta) / self.TOTAL_MASS
        thetaacc = (self.GRAVITY * sintheta - costheta * temp) / (
            self.LENGTH * (4.0 / 3.0 - self.MASSPOLE * np.square(costheta) / self.TOTAL_MASS))
        xacc = temp - self.POLEMASS_LENGTH * thetaacc * costheta / self.TOTAL_MASS
        x, theta = x + self.TAU * x_dot, theta + self.TAU * theta_dot
        state = np.stack([x, x_dot + self.TAU * xacc, theta, theta_dot + self.TAU * thetaacc])
        self.state[:, index] = state
        self.elapsed[index] += 1
        # gymnasium: x < -2.4 or x > 2.4 or theta < -0.2094 or theta > 0.2094; abs() is exact
        terminated = (np.abs(x) > self.X_THRESHOLD) | (np.abs(theta) > self.THETA_THRESHOLD)
        return state.T.astype(np.float32), terminated, self.elapsed[index] >= MAX_EPISODE_STEPS


def env_seeds(seed: int, purpose: str, n: int) -> list[int]:
    """n reset seeds for sub-environments, derived from a grading seed and a purpose."""
    stream = {"train": 1, "evaluate": 2}[purpose]
    rng = np.random.default_rng([int(seed), stream])
    return [int(s) for s in rng.integers(0, 2**31 - 1, size=n)]


# One vector step crosses the boundary as a single float32 array of shape (num_envs, 10):
# observation (4), final observation (4), reward (1), flags (1). Every array of a
# message costs a few system calls and some JSON on both sides, and a step is the
# hottest call of a training run. Rewards (0 or 1) and flags (< 16) are exact in float32.
TERMINATED, TRUNCATED, FINAL, RETIRED = 1, 2, 4, 8


def pack_step(obs, final_obs, rewards, terminated, truncated, final_mask, retired) -> np.ndarray:
    flags = (terminated * TERMINATED + truncated * TRUNCATED + final_mask * FINAL + retired * RETIRED)
    return np.concatenate([obs, final_obs, rewards[:, None], flags[:, None]], axis=1, dtype=np.float32)


def unpack_step(packed: np.ndarray) -> dict:
    flags = packed[:, 9].astype(np.int64)
    return {"obs": packed[:, 0:4].copy(), "final_obs": packed[:, 4:8].copy(),
            "rewards": packed[:, 8].astype(np.float64), "terminated": (flags & TERMINATED) > 0,
            "truncated": (flags & TRUNCATED) > 0, "final_mask": (flags & FINAL) > 0, "retired": (flags & RETIRED) > 0}


class CartPoleServer:
    """The grader's side of a served vector environment: the callbacks and the records.

    One server per training run. Everything here is measured in the grader's process:
    the worker can only send actions.
    """

    def __init__(self, seed: int, episode_budget: int | None = None, max_envs: int = MAX_ENVS):
        self.seed = seed
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
        from graders.sandbox import CallbackRefused

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
        from graders.sandbox import CallbackRefused

        if self.episode_budget is not None and self.started + new > self.episode_budget:
            raise CallbackRefused(
                f"the training budget is {self.episode_budget} episodes and all of them have been used: "
                f"episode {self.episode_budget + 1} refused. Stop training when the budget is spent "
                "(collect_episodes returns fewer episodes then; envs.retired tells which environments are done).")

    def reset(self) -> np.ndarray:
        from graders.sandbox import CallbackRefused

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
        from graders.sandbox import CallbackRefused

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


def evaluate(worker, seed: int, episodes: int = 100, timeout: float | None = None) -> np.ndarray:
    """The returns of `episodes` CartPole-v1 episodes played by the worker's policy.

    The environments are the grader's, seeded from the grading seed; all episodes run
    in lockstep and each step asks the worker for the actions of the episodes still
    running (one `act(observations)` call per step).
    """
    import time

    from graders.checks import CheckFailed, as_array

    deadline = None if timeout is None else time.monotonic() + timeout
    envs = CartPoles(episodes)
    obs = np.stack([envs.reset(i, s) for i, s in enumerate(env_seeds(seed, "evaluate", episodes))])
    returns, running = np.zeros(episodes), np.ones(episodes, dtype=bool)
    while running.any():
        index = np.flatnonzero(running)
        left = None if deadline is None else max(deadline - time.monotonic(), 0.1)
        got = worker.call("act", obs[index], timeout=left)
        actions = as_array(got, f"act() on {len(index)} observations", (len(index),))
        if not np.all((actions == 0) | (actions == 1)):
            raise CheckFailed(f"act() must return actions 0 or 1, got {sorted(set(actions.tolist()))[:5]}")
        obs[index], terminated, truncated = envs.step(actions, index)
        returns[index] += 1.0
        running[index] = ~(terminated | truncated)
    return returns


def plot_learning_curve(path, server: CartPoleServer, threshold: float, title: str, eval_returns=None) -> None:
    """The training episode returns the grader recorded, with a 20-episode moving mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    returns = np.asarray(server.episode_returns)
    fig, ax = plt.subplots(figsize=(7, 4))
    if len(returns):
        episodes = np.arange(1, len(returns) + 1)
        ax.plot(episodes, returns, ".", ms=2, alpha=0.4, label="training episode return")
        window = min(20, len(returns))
        moving = np.convolve(returns, np.ones(window) / window, mode="valid")
        ax.plot(episodes[window - 1:], moving, lw=2, label=f"mean of last {window}")
    ax.axhline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:g}")
    if eval_returns is not None and len(returns):
        ax.errorbar([len(returns)], [np.mean(eval_returns)], yerr=[np.std(eval_returns)], fmt="o", color="C3",
                    label="grader's evaluation (mean +- std)")
    ax.set(xlabel="training episode (as counted by the grader)", ylabel="return", ylim=(0, 520), title=title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --- worker side ------------------------------------------------------------------------------


class ServedVectorEnv:
    """A gymnasium-like vector environment whose sub-environments live in the grader.

    Runs in the worker. `step` is one callback to the grader, which steps the real
    environments and keeps the count; this object only forwards actions and hands
    back what the grader answered.
    """

    metadata = {"autoreset_mode": "SameStep"}

    def __init__(self, num_envs: int):
        import gymnasium as gym

        from graders.worker import callback

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
        if hasattr(actions, "detach"):  # a torch tensor, maybe on the GPU
            actions = actions.detach().cpu().numpy()
        actions = np.asarray(actions)
        if actions.dtype.kind == "f" and np.all(actions == np.round(actions)):
            actions = actions.astype(np.int64)
        reply = unpack_step(self._callback("env_step", actions.reshape(-1) if actions.ndim > 1 else actions))
        self.retired = reply["retired"]
        infos = {"final_obs": reply["final_obs"], "_final_obs": reply["final_mask"]}
        return reply["obs"], reply["rewards"], reply["terminated"], reply["truncated"], infos

    def close(self) -> None:
        pass
