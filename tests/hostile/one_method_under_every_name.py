# hostile: one correct UCB class submitted under every class name, to take the epsilon-greedy, optimistic and gradient testbeds too
# honest: 8
# keeps: argmax_breaks_ties_at_random sample_average_update greedy_ties_are_uniform ucb_tries_every_arm_first ucb_selection testbed_ucb
import numpy as np


def argmax_random_ties(values, rng):
    is_max = values == values.max(axis=1, keepdims=True)
    return np.where(is_max, rng.random(values.shape), -1.0).argmax(axis=1)


class UCB:
    def __init__(self, n_runs, k, c=2.0, seed=0, **kwargs):
        self.c = c
        self.rng = np.random.default_rng(seed)
        self.Q = np.zeros((n_runs, k))
        self.N = np.zeros((n_runs, k), dtype=np.int64)
        self.t = 0

    def act(self):
        self.t += 1
        with np.errstate(divide="ignore", invalid="ignore"):
            bonus = self.c * np.sqrt(np.log(self.t) / self.N)
        return argmax_random_ties(np.where(self.N == 0, np.inf, self.Q + bonus), self.rng)

    def update(self, actions, rewards):
        runs = np.arange(len(actions))
        self.N[runs, actions] += 1
        self.Q[runs, actions] += (rewards - self.Q[runs, actions]) / self.N[runs, actions]


EpsilonGreedy = GradientBandit = UCB
