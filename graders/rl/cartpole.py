"""CartPole-v1's dynamics: gymnasium's arithmetic, bit for bit (grader side).

`CartPole` steps one environment in the same float64 operations, in the same order,
as gymnasium's `CartPoleEnv.step` (float32 observations), with its `TimeLimit` of 500
steps and a random generator seeded as gymnasium seeds one; tests/test_reinforce.py
compares them step by step. The state is four Python floats and only the cosine and
sine go through numpy (`np.cos`, as gymnasium calls it, so that the last bit agrees on
every platform; `cos_sin` computes them for many environments in one call): a step
costs about 2.5 us, where a numpy step of n environments costs 30-50 us whatever n up
to 32, and a served step of one environment is the hottest call of a training run.
gymnasium's own `CartPoleVectorEnv` is not used: it draws every sub-environment's
start from one shared generator (so its episodes are not those of `gym.make` seeded
per episode, which students reproduce locally).
"""

from __future__ import annotations

import math

import numpy as np

MAX_EPISODE_STEPS = 500
GRAVITY, MASSCART, MASSPOLE, LENGTH, FORCE_MAG, TAU = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
TOTAL_MASS = MASSPOLE + MASSCART
POLEMASS_LENGTH = MASSPOLE * LENGTH
THETA_THRESHOLD = 12 * 2 * math.pi / 360
X_THRESHOLD = 2.4
_cos, _sin = np.cos, np.sin


class CartPole:
    """One CartPole-v1 environment: gymnasium's `CartPoleEnv` in `TimeLimit(500)`, bit for bit.

    `reset(seed)` seeds the generator as gymnasium does; a later `reset()` without a
    seed continues it, so a sequence of episodes is what `gym.make("CartPole-v1")` gives
    after `reset(seed=s)`, `reset()`, `reset()`, ...
    """

    __slots__ = ("elapsed", "rng", "theta", "theta_dot", "x", "x_dot")

    def __init__(self):
        self.rng: np.random.Generator | None = None
        self.x = self.x_dot = self.theta = self.theta_dot = 0.0
        self.elapsed = 0

    def reset(self, seed: int | None = None) -> list[float]:
        """Start a new episode; its first state (float64; the observation is its float32 rounding)."""
        if seed is not None or self.rng is None:
            self.rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
        state = self.rng.uniform(low=-0.05, high=0.05, size=(4,)).tolist()
        self.x, self.x_dot, self.theta, self.theta_dot = state
        self.elapsed = 0
        return state

    def state(self) -> list[float]:
        return [self.x, self.x_dot, self.theta, self.theta_dot]

    def step(self, action: int, cos_sin: tuple[float, float] | None = None) -> tuple[bool, bool]:
        """One step with action 0 (push left) or 1 (push right); (terminated, truncated).

        `cos_sin`: the cosine and sine of the current angle, when the caller computed
        them for many environments at once (`cos_sin`).
        """
        x, x_dot, theta, theta_dot = self.x, self.x_dot, self.theta, self.theta_dot
        force = FORCE_MAG if action == 1 else -FORCE_MAG
        costheta, sintheta = cos_sin or (_cos(theta).item(), _sin(theta).item())
        temp = (force + POLEMASS_LENGTH * (theta_dot * theta_dot) * sintheta) / TOTAL_MASS
        thetaacc = (GRAVITY * sintheta - costheta * temp) / (
            LENGTH * (4.0 / 3.0 - MASSPOLE * (costheta * costheta) / TOTAL_MASS))
        xacc = temp - POLEMASS_LENGTH * thetaacc * costheta / TOTAL_MASS
        self.x = x = x + TAU * x_dot
        self.x_dot = x_dot + TAU * xacc
        self.theta = theta = theta + TAU * theta_dot
        self.theta_dot = theta_dot + TAU * thetaacc
        self.elapsed += 1
        terminated = x < -X_THRESHOLD or x > X_THRESHOLD or theta < -THETA_THRESHOLD or theta > THETA_THRESHOLD
        return terminated, self.elapsed >= MAX_EPISODE_STEPS


def cos_sin(envs: list[CartPole]) -> list[tuple[float, float]]:
    """The cosine and sine of every environment's angle, in two numpy calls instead of two per environment.

    numpy computes an array's cosines with the same loop as one scalar's (gymnasium's
    `np.cos(theta)`), so the values are the same, bit for bit.
    """
    thetas = [env.theta for env in envs]
    return list(zip(_cos(thetas).tolist(), _sin(thetas).tolist(), strict=True))


def env_seeds(seed: int, purpose: str, n: int) -> list[int]:
    """n reset seeds for sub-environments, derived from a grading seed and a purpose."""
    stream = {"train": 1, "evaluate": 2}[purpose]
    rng = np.random.default_rng([int(seed), stream])
    return [int(s) for s in rng.integers(0, 2**31 - 1, size=n)]


class Relabelling:
    """A grading seed's secret relabelling of CartPole: the observation's components permuted and their signs
    flipped, and the two actions maybe swapped.

    Training, the evaluation and the value check all serve the same relabelled CartPole,
    a CartPole as good as gymnasium's for a learner (whose networks start symmetric in
    their inputs and outputs), and useless to a controller written for gymnasium's
    labels or trained on gymnasium's environment: it would have to find the relabelling
    from the episodes it is served first (docs/security.md). The observation space is
    relabelled too (its bounds permuted), as an environment of these labels would say.
    """

    def __init__(self, seed: int):
        rng = np.random.default_rng([int(seed), 3])
        while True:  # never gymnasium's own labels, nor their mirror image (CartPole's own symmetry)
            self.order = rng.permutation(4)  # served component i is the state's component order[i]
            self.signs = rng.choice([-1.0, 1.0], size=4)
            self.swap = int(rng.integers(2))  # served action a pushes as action a ^ swap
            mirror = self.order.tolist() == [0, 1, 2, 3] and abs(self.signs.sum()) == 4
            if not (mirror and (self.signs[0] > 0) == (self.swap == 0)):
                break
        self._index = [int(i) for i in self.order]
        self._signs = self.signs.tolist()

    def observation(self, state: list[float]) -> list[float]:
        """One state (gymnasium's order) as served."""
        return [state[i] * s for i, s in zip(self._index, self._signs, strict=True)]

    def observations(self, states: np.ndarray) -> np.ndarray:
        """States (n, 4), gymnasium's order, as served (same dtype)."""
        return (states[:, self.order] * self.signs).astype(states.dtype, copy=False)

    def action(self, served: int) -> int:
        """The push (gymnasium's action) a served action means."""
        return served ^ self.swap

    def bounds(self, high: np.ndarray) -> np.ndarray:
        """gymnasium's observation bounds (symmetric) in the served order."""
        return np.asarray(high)[self.order]
