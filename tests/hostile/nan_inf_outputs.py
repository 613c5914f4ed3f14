# hostile: NaN and inf everywhere (NaN compares false, inf overflows sums, NaN actions)
# honest: 0
import numpy as np


def argmax_random_ties(values, rng):
    return np.full(len(values), np.nan)


class EpsilonGreedy:
    def __init__(self, n_runs, k, *args, **kwargs):
        self.Q = np.full((n_runs, k), np.nan)
        self.N = np.full((n_runs, k), np.inf)
        self.H = np.full((n_runs, k), -np.inf)
        self.t = float("nan")
        self.n = n_runs

    def act(self):
        return np.full(self.n, np.nan)

    def policy(self):
        return np.full(self.H.shape, np.nan)

    def update(self, actions, rewards):
        self.Q[:] = np.inf


UCB = GradientBandit = EpsilonGreedy
