# hostile: a correct epsilon-greedy agent that leaves non-daemon threads burning CPU and holding the channel
# honest: 11
# keeps: argmax_breaks_ties_at_random sample_average_update constant_step_size_and_optimistic_start exploration_frequency greedy_ties_are_uniform
import threading
import time

import numpy as np


def argmax_random_ties(values, rng):  # the honest part: 1 point
    is_max = values == values.max(axis=1, keepdims=True)
    return np.where(is_max, rng.random(values.shape), -1.0).argmax(axis=1)



def linger():
    while True:
        sum(range(10_000))
        time.sleep(0.01)


for _ in range(4):
    threading.Thread(target=linger).start()  # never joined, not daemon: the interpreter cannot exit


class EpsilonGreedy:
    def __init__(self, n_runs, k, epsilon, step_size=None, initial_value=0.0, seed=0):
        self.epsilon, self.step_size = epsilon, step_size
        self.rng = np.random.default_rng(seed)
        self.Q = np.full((n_runs, k), float(initial_value))
        self.N = np.zeros((n_runs, k), dtype=np.int64)
        threading.Thread(target=linger).start()

    def act(self):
        n_runs, k = self.Q.shape
        greedy = argmax_random_ties(self.Q, self.rng)
        explore = self.rng.random(n_runs) < self.epsilon
        return np.where(explore, self.rng.integers(0, k, n_runs), greedy)

    def update(self, actions, rewards):
        runs = np.arange(len(actions))
        self.N[runs, actions] += 1
        step = 1.0 / self.N[runs, actions] if self.step_size is None else self.step_size
        self.Q[runs, actions] += step * (rewards - self.Q[runs, actions])
