"""Student values as numpy arrays: the one conversion every adapter uses."""

from __future__ import annotations

import numpy as np


def to_numpy(value) -> np.ndarray:
    """A torch tensor (on any device, with or without grad) or anything array-like, as an ndarray."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)
