# hostile: int/float/str/np.float64 subclasses with lying __eq__, and an item() that returns an object
# honest: 0
import numpy as np


class Int(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


class Str(str):
    def __eq__(self, other):
        return True

    __hash__ = str.__hash__


class F64(np.float64):
    def item(self):
        return Int(1)


def argmax_random_ties(values, rng):
    return [Int(0)] * len(values)


class EpsilonGreedy:
    def __init__(self, n_runs, k, *args, **kwargs):
        self.n, self.k = n_runs, k
        self.Q = [[F64(0.0)] * k] * n_runs
        self.N = Str("all equal")
        self.t = F64(1.0)

    def act(self):
        return [Int(0)] * self.n

    def update(self, actions, rewards):
        pass


UCB = GradientBandit = EpsilonGreedy
