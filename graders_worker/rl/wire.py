"""The wire format of the served CartPole (both sides: the grader packs, the worker unpacks).

One step of n environments crosses the boundary as a single float32 array of shape
(n, 10): observation (4), final observation (4), reward (1), flags (1). One array is
one slot of the shared-memory fast path (graders_worker/fastpath.py), or one message
part over the pipes. Rewards (0 or 1) and flags (< 16) are exact in float32.
"""

from __future__ import annotations

import numpy as np

TERMINATED, TRUNCATED, FINAL, RETIRED = 1, 2, 4, 8
WIDTH = 10

# how make_envs asks for its environments: gymnasium's AutoresetMode values, and one Env without autoreset
SAME_STEP, NEXT_STEP, SINGLE = "SameStep", "NextStep", "single"
MODES = (SAME_STEP, NEXT_STEP, SINGLE)


def unpack_step(packed: np.ndarray) -> dict:
    flags = packed[:, 9].astype(np.int64)
    return {"obs": packed[:, 0:4].copy(), "final_obs": packed[:, 4:8].copy(),
            "rewards": packed[:, 8].astype(np.float64), "terminated": (flags & TERMINATED) > 0,
            "truncated": (flags & TRUNCATED) > 0, "final_mask": (flags & FINAL) > 0, "retired": (flags & RETIRED) > 0}
