"""The wire format of one served vector step (both sides: the grader packs, the worker unpacks)."""

from __future__ import annotations

import numpy as np

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

