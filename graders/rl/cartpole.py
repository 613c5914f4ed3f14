"""CartPole-v1's dynamics, vectorised: gymnasium's arithmetic, bit for bit (grader side).

`CartPoles` steps n environments with numpy in the same float64 operations, in the
same order, as gymnasium's `CartPoleEnv.step` (float32 observations), with its
`TimeLimit` of 500 steps and one random generator per environment seeded as
gymnasium seeds it; tests/test_rl.py compares them step by step. gymnasium's own
`CartPoleVectorEnv` is not used: it draws every sub-environment's start from one
shared generator (so its episodes are not those of `gym.make` seeded per episode,
which students reproduce locally), it resets on the next step rather than the same
one, and it has no notion of an episode budget.
"""

from __future__ import annotations

import math

import numpy as np

MAX_EPISODE_STEPS = 500


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

