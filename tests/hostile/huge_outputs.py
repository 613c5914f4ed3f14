# hostile: huge results: a 200 MB array, a giant string, deeply nested lists
# honest: 1
# keeps: argmax_breaks_ties_at_random
import numpy as np


def argmax_random_ties(values, rng):  # the honest part: 1 point
    is_max = values == values.max(axis=1, keepdims=True)
    return np.where(is_max, rng.random(values.shape), -1.0).argmax(axis=1)



class EpsilonGreedy:
    def __init__(self, n_runs, k, *args, **kwargs):
        self.Q = np.zeros((6_000, 1000))  # 48 MB of state
        self.N = "N" * (20 << 20)
        self.n = n_runs

    def act(self):
        nested = 0
        for _ in range(100_000):
            nested = [nested]
        return nested

    def update(self, actions, rewards):
        pass


class UCB(EpsilonGreedy):
    def act(self):
        return np.zeros(40_000_000, dtype=np.int64)  # 320 MB: over the message limit


GradientBandit = EpsilonGreedy
