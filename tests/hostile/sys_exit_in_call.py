# hostile: sys.exit(0) and KeyboardInterrupt from calls; SystemExit from a destructor
# honest: 1
# keeps: argmax_breaks_ties_at_random
import sys

import numpy as np


def argmax_random_ties(values, rng):  # the honest part: 1 point
    is_max = values == values.max(axis=1, keepdims=True)
    return np.where(is_max, rng.random(values.shape), -1.0).argmax(axis=1)



class EpsilonGreedy:
    def __init__(self, *args, **kwargs):
        self.n = args[0] if args else kwargs.get("n_runs", 1)

    def act(self):
        sys.exit(0)

    def update(self, actions, rewards):
        raise KeyboardInterrupt

    def __del__(self):
        raise SystemExit(0)


class UCB(EpsilonGreedy):
    def __init__(self, *args, **kwargs):
        raise SystemExit("20/20")


GradientBandit = UCB
