"""The chi-squared tail the sampling checks share (grader side).

Not an answer to any check, so not instructor-only: a student kit ships it and runs the
sampling checks on any submission (graders/rl/reinforce.py, which computes answers, is
a stand-in there).
"""

from __future__ import annotations

import math


def chi_squared_sf_even(statistic: float, dof: int) -> float:
    """P(X >= statistic) for X ~ chi-squared with an even number of degrees of freedom (exact)."""
    assert dof % 2 == 0 and dof > 0
    half = statistic / 2.0
    term, total = 1.0, 1.0
    for i in range(1, dof // 2):
        term *= half / i
        total += term
    return math.exp(-half) * total
