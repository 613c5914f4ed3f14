# %% [markdown]
# # Multi-armed bandits
#
# Sutton & Barto, chapter 2. You implement four action-selection methods, each as a
# class that plays **many independent bandit problems at once** (`n_runs` rows), so
# that the 10-armed testbed (2000 runs x 1000 steps) takes a second, not minutes.
# Write every method with numpy operations over all runs; no Python loop over runs.
#
# Every agent has the same small contract, which the grader uses:
# - `act() -> actions`: an int array of shape `(n_runs,)`, one arm per run;
# - `update(actions, rewards)`: learn from the rewards (float array `(n_runs,)`).
#
# The grader owns the testbed (the true values q*(a) and the rewards) and measures
# the average reward and the % optimal action itself. Check your work with
# `python -m graders grade bandits bandits.py` (or the notebook).

# %%
import numpy as np

# %% [markdown]
# ## Greedy choice with random tie-breaking
# `np.argmax` always returns the *first* maximum. With all estimates equal at the
# start, that would always pick arm 0: break ties uniformly at random instead.


# %%
def argmax_random_ties(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row-wise argmax of `values` (n_runs, k), ties broken uniformly at random. Returns (n_runs,) ints."""
    ### BEGIN SOLUTION
    is_max = values == values.max(axis=1, keepdims=True)
    # A random key per arm, kept only where the arm is a maximum: the largest key wins.
    keys = np.where(is_max, rng.random(values.shape), -1.0)
    return keys.argmax(axis=1)
    ### END SOLUTION


# %% [markdown]
# ## Epsilon-greedy action-value methods (sections 2.2-2.6)
# With probability `epsilon` a run explores (an arm chosen uniformly among all k,
# the greedy one included); otherwise it is greedy (random ties).
# Estimates: the sample average `Q += (R - Q) / N` when `step_size` is None (N counts
# the selections of that arm, *including* this one), else the constant step size
# `Q += step_size * (R - Q)`. `initial_value` sets Q_1 for every arm (5.0 gives the
# optimistic initial values of section 2.6).


# %%
class EpsilonGreedy:
    def __init__(self, n_runs: int, k: int, epsilon: float, step_size: float | None = None,
                 initial_value: float = 0.0, seed: int = 0):
        self.epsilon = epsilon
        self.step_size = step_size
        self.rng = np.random.default_rng(seed)
        self.Q = np.full((n_runs, k), float(initial_value))  # action-value estimates
        self.N = np.zeros((n_runs, k), dtype=np.int64)  # times each arm was chosen

    def act(self) -> np.ndarray:
        ### BEGIN SOLUTION
        n_runs, k = self.Q.shape
        greedy = argmax_random_ties(self.Q, self.rng)
        explore = self.rng.random(n_runs) < self.epsilon
        return np.where(explore, self.rng.integers(0, k, n_runs), greedy)
        ### END SOLUTION

    def update(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        ### BEGIN SOLUTION
        runs = np.arange(len(actions))
        self.N[runs, actions] += 1
        step = 1.0 / self.N[runs, actions] if self.step_size is None else self.step_size
        self.Q[runs, actions] += step * (rewards - self.Q[runs, actions])
        ### END SOLUTION


# %% [markdown]
# ## Upper-confidence-bound action selection (section 2.7)
# `A_t = argmax_a [Q_t(a) + c * sqrt(ln t / N_t(a))]`, where t = 1, 2, ... is the
# number of the step being chosen (count it in `self.t`). An arm with N_t(a) = 0 is
# a maximising arm: untried arms are chosen first (random ties among them).
# Estimates are sample averages.


# %%
class UCB:
    def __init__(self, n_runs: int, k: int, c: float, seed: int = 0):
        self.c = c
        self.rng = np.random.default_rng(seed)
        self.Q = np.zeros((n_runs, k))
        self.N = np.zeros((n_runs, k), dtype=np.int64)
        self.t = 0  # steps chosen so far

    def act(self) -> np.ndarray:
        ### BEGIN SOLUTION
        self.t += 1
        with np.errstate(divide="ignore", invalid="ignore"):
            bonus = self.c * np.sqrt(np.log(self.t) / self.N)
        scores = np.where(self.N == 0, np.inf, self.Q + bonus)
        return argmax_random_ties(scores, self.rng)
        ### END SOLUTION

    def update(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        ### BEGIN SOLUTION
        runs = np.arange(len(actions))
        self.N[runs, actions] += 1
        self.Q[runs, actions] += (rewards - self.Q[runs, actions]) / self.N[runs, actions]
        ### END SOLUTION


# %% [markdown]
# ## Gradient bandit (section 2.8)
# Preferences H (start at 0), policy pi = softmax(H) per run (subtract the row
# maximum before exp, so large preferences do not overflow). After reward R_t for
# action A_t, first update the baseline, the average of all rewards up to and
# including R_t, then **every** arm's preference:
# `H(a) += step_size * (R_t - baseline) * (1{a == A_t} - pi(a))`.
# With `baseline=False` the baseline stays 0.


# %%
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
        ### BEGIN SOLUTION
        z = np.exp(self.H - self.H.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)
        ### END SOLUTION

    def act(self) -> np.ndarray:
        ### BEGIN SOLUTION
        cumulative = self.policy().cumsum(axis=1)
        u = self.rng.random((len(cumulative), 1))
        return np.minimum((u > cumulative).sum(axis=1), cumulative.shape[1] - 1)
        ### END SOLUTION

    def update(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        ### BEGIN SOLUTION
        pi = self.policy()
        self.t += 1
        if self.use_baseline:
            self.baseline += (rewards - self.baseline) / self.t
        one_hot = np.zeros_like(pi)
        one_hot[np.arange(len(actions)), actions] = 1.0
        self.H += self.step_size * (rewards - self.baseline)[:, None] * (one_hot - pi)
        ### END SOLUTION


# %% [markdown]
# ## Try it
# A small local testbed, for your own curiosity; the grader uses its own.

# %%
if __name__ == "__main__":
    rng = np.random.default_rng(0)
    q_star = rng.normal(size=(2000, 10))
    agent = EpsilonGreedy(2000, 10, epsilon=0.1)
    for _ in range(1000):
        a = agent.act()
        r = rng.normal(q_star[np.arange(2000), a], 1.0)
        agent.update(a, r)
    print("average reward at step 1000:", r.mean())
