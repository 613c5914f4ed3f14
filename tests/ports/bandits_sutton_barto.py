# Sutton & Barto's chapter 2 bandit code (ShangtongZhang/reinforcement-learning-an-introduction,
# chapter02/ten_armed_testbed.py, class Bandit) ported into the bandits template the way a student
# would: their formulas and their conventions kept, only vectorised over the runs the template asks
# for. Written for tests/test_bandits.py and bench/bandits_idioms.py; not their file.
#
# What is theirs, kept here:
# - ties: np.random.choice(np.where(q == q_best)[0]) (exact equality, a uniform pick);
# - UCB: q + c * sqrt(log(time + 1) / (count + 1e-5)), with `time` counted in step() (here update());
#   no special case for untried arms: the 1e-5 gives them a huge bonus;
# - the gradient bandit: exp(q) / sum(exp(q)) without subtracting the maximum, the probabilities
#   kept from act() for the update, the average reward (this one included) as the baseline.
import numpy as np


def argmax_random_ties(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row-wise argmax of `values` (n_runs, k), ties broken uniformly at random. Returns (n_runs,) ints."""
    is_best = values == values.max(axis=1, keepdims=True)
    pick = rng.integers(0, is_best.sum(axis=1))  # which of the tied arms, as np.random.choice does
    return (np.cumsum(is_best, axis=1) > pick[:, None]).argmax(axis=1)


class EpsilonGreedy:
    def __init__(self, n_runs: int, k: int, epsilon: float, step_size: float | None = None,
                 initial_value: float = 0.0, seed: int = 0):
        self.epsilon = epsilon
        self.step_size = step_size
        self.rng = np.random.default_rng(seed)
        self.Q = np.full((n_runs, k), float(initial_value))  # action-value estimates
        self.N = np.zeros((n_runs, k), dtype=np.int64)  # times each arm was chosen

    def act(self) -> np.ndarray:
        n_runs, k = self.Q.shape
        explore = self.rng.random(n_runs) < self.epsilon
        return np.where(explore, self.rng.integers(0, k, n_runs), argmax_random_ties(self.Q, self.rng))

    def update(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        runs = np.arange(len(actions))
        self.N[runs, actions] += 1
        if self.step_size is None:  # sample averages
            self.Q[runs, actions] += (rewards - self.Q[runs, actions]) / self.N[runs, actions]
        else:
            self.Q[runs, actions] += self.step_size * (rewards - self.Q[runs, actions])


class UCB:
    def __init__(self, n_runs: int, k: int, c: float, seed: int = 0):
        self.c = c
        self.rng = np.random.default_rng(seed)
        self.Q = np.zeros((n_runs, k))
        self.N = np.zeros((n_runs, k), dtype=np.int64)
        self.t = 0  # steps chosen so far

    def act(self) -> np.ndarray:
        ucb_estimation = self.Q + self.c * np.sqrt(np.log(self.t + 1) / (self.N + 1e-5))
        return argmax_random_ties(ucb_estimation, self.rng)

    def update(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        runs = np.arange(len(actions))
        self.t += 1
        self.N[runs, actions] += 1
        self.Q[runs, actions] += (rewards - self.Q[runs, actions]) / self.N[runs, actions]


class GradientBandit:
    def __init__(self, n_runs: int, k: int, step_size: float, baseline: bool = True, seed: int = 0):
        self.step_size = step_size
        self.use_baseline = baseline
        self.rng = np.random.default_rng(seed)
        self.H = np.zeros((n_runs, k))  # preferences
        self.baseline = np.zeros(n_runs)  # average reward so far (0 when baseline=False)
        self.t = 0  # rewards seen so far

    def policy(self) -> np.ndarray:
        """pi(a) for every run and arm, shape (n_runs, k)."""
        exp_est = np.exp(self.H)
        return exp_est / exp_est.sum(axis=1, keepdims=True)

    def act(self) -> np.ndarray:
        self.action_prob = self.policy()
        u = self.rng.random((len(self.H), 1))  # np.random.choice(indices, p=action_prob), every run at once
        return np.minimum((np.cumsum(self.action_prob, axis=1) < u).sum(axis=1), self.H.shape[1] - 1)

    def update(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        self.t += 1
        self.baseline += (rewards - self.baseline) / self.t
        one_hot = np.zeros_like(self.H)
        one_hot[np.arange(len(actions)), actions] = 1
        baseline = self.baseline if self.use_baseline else 0
        self.H += self.step_size * (rewards - baseline)[:, None] * (one_hot - self.action_prob)
