# hostile: start 30 setsid children that burn CPU, to slow down the classmates graded beside it
# honest: 1
# (no "keeps": with a cgroup the thieves share the worker's CPU quota, so they slow down
# its own honest part and nobody else's; tests/test_cgroups.py measures that)
import os

import numpy as np


def argmax_random_ties(values, rng):  # the honest part: 1 point
    is_max = values == values.max(axis=1, keepdims=True)
    return np.where(is_max, rng.random(values.shape), -1.0).argmax(axis=1)


def start_thieves(n: int = 30) -> list:
    """Spinning children, each in a session of its own; their pids (as the worker sees them)."""
    pids = []
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            os.setsid()
            while True:
                pass
        pids.append(pid)
    return pids


THIEVES = start_thieves()  # at import: every start of the worker adds 30 more
