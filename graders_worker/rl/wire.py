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


_BITS = np.array([[TERMINATED], [TRUNCATED], [FINAL], [RETIRED]], dtype=np.int64)


def unpack_step(packed: np.ndarray) -> dict:
    terminated, truncated, final_mask, retired = (_BITS & packed[:, 9].astype(np.int64)) > 0  # one numpy op, 4 rows
    return {"obs": packed[:, 0:4].copy(), "final_obs": packed[:, 4:8].copy(),
            "rewards": packed[:, 8].astype(np.float64), "terminated": terminated,
            "truncated": truncated, "final_mask": final_mask, "retired": retired}
