# hostile: ignore every catchable signal at import, then stop itself with SIGSTOP in a call
# honest: 1
# keeps: argmax_breaks_ties_at_random
import os
import signal

import numpy as np


def argmax_random_ties(values, rng):  # the honest part: 1 point
    is_max = values == values.max(axis=1, keepdims=True)
    return np.where(is_max, rng.random(values.shape), -1.0).argmax(axis=1)


for sig in signal.valid_signals():
    try:
        signal.signal(sig, signal.SIG_IGN)
    except (OSError, ValueError, RuntimeError):
        pass


class GradientBandit:  # the attack runs in one check only: gradient_bandit_policy
    def __init__(self, *args, **kwargs):
        pass

    def policy(self):
        os.kill(os.getpid(), signal.SIGSTOP)
