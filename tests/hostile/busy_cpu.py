# hostile: burn CPU in Python and in native code, ignoring SIGXCPU
# honest: 1
# keeps: argmax_breaks_ties_at_random
import signal
import threading

import numpy as np


def argmax_random_ties(values, rng):  # the honest part: 1 point
    is_max = values == values.max(axis=1, keepdims=True)
    return np.where(is_max, rng.random(values.shape), -1.0).argmax(axis=1)


signal.signal(signal.SIGXCPU, signal.SIG_IGN)


def spin():
    x = 0
    while True:
        x += 1


class GradientBandit:  # the attack runs in one check only: gradient_bandit_policy
    def __init__(self, *args, **kwargs):
        pass

    def policy(self):
        threading.Thread(target=spin, daemon=True).start()
        big = np.ones((1000, 1000))
        while True:
            big = big @ big / 1000.0
