# hostile: wrong shapes, ragged lists, scalars, empty arrays, strings where arrays are expected
# honest: 0
import numpy as np


def argmax_random_ties(values, rng):
    return [[0, 1], [2], "three"]


class EpsilonGreedy:
    def __init__(self, n_runs, k, *args, **kwargs):
        self.Q = np.zeros((k, n_runs, 1))
        self.N = []
        self.H = "H"
        self.t = [1, 2]
        self.n = n_runs

    def act(self):
        return np.zeros((self.n, 2), dtype=np.int64) if self.n % 2 else np.array([], dtype=np.int64)

    def policy(self):
        return 0.1

    def update(self, actions, rewards):
        pass


class UCB(EpsilonGreedy):
    def act(self):
        return np.arange(self.n + 1)


class GradientBandit(EpsilonGreedy):
    def act(self):
        return np.full(self.n, 10**12, dtype=np.int64)
