"""Known buggy variants of the bandits reference (graders/variants.py explains the format)."""

from graders.variants import Variant

VARIANTS = [
    Variant(
        "incremental_mean_off_by_one",
        "the sample average divides by N + 1",
        edits=[("step = 1.0 / self.N[runs, actions] if", "step = 1.0 / (self.N[runs, actions] + 1) if")],
        loses=("sample_average_update",),
        messages={"sample_average_update": "expected"},
    ),
    Variant(
        "epsilon_inverted",
        "explores with probability 1 - epsilon",
        edits=[("explore = self.rng.random(n_runs) < self.epsilon", "explore = self.rng.random(n_runs) > self.epsilon")],
        loses=("exploration_frequency",),
    ),
    Variant(
        "explores_only_non_greedy_arms",
        "exploration never picks the greedy arm",
        edits=[
            (
                "return np.where(explore, self.rng.integers(0, k, n_runs), greedy)",
                "return np.where(explore, (greedy + self.rng.integers(1, k, n_runs)) % k, greedy)",
            )
        ],
        loses=("exploration_frequency",),
    ),
    Variant(
        "argmax_ties_always_first_arm",
        "ties go to the first maximal arm (np.argmax)",
        edits=[("return keys.argmax(axis=1)", "return values.argmax(axis=1)")],
        loses=("greedy_ties_are_uniform", "argmax_breaks_ties_at_random"),
        messages={"argmax_breaks_ties_at_random": "not uniform"},
    ),
    Variant(
        "ucb_without_untried_arm_rule",
        "untried arms are not preferred (N clipped to 1 in the bonus)",
        edits=[
            (
                "scores = np.where(self.N == 0, np.inf, self.Q + bonus)",
                "scores = self.Q + self.c * np.sqrt(np.log(self.t) / np.maximum(self.N, 1))",
            )
        ],
        loses=("ucb_tries_every_arm_first",),
    ),
    Variant(
        "ucb_log_of_previous_step",
        "the bonus uses ln of the previous step's t",
        edits=[("self.t += 1\n        with np.errstate", "with np.errstate")],
        loses=("ucb_selection", "ucb_tries_every_arm_first"),
    ),
    Variant(
        "gradient_updates_only_chosen_arm",
        "the gradient bandit moves only the chosen arm's preference",
        edits=[("(one_hot - pi)", "(one_hot * (1 - pi))")],
        loses=("gradient_bandit_update_without_baseline", "gradient_bandit_update_with_baseline"),
    ),
    Variant(
        "softmax_without_max_shift",
        "softmax without subtracting the maximum: overflows for large preferences",
        edits=[("z = np.exp(self.H - self.H.max(axis=1, keepdims=True))", "z = np.exp(self.H)")],
        loses=("gradient_bandit_policy",),
    ),
    Variant(
        "ucb_counts_steps_in_update_too",
        "UCB advances t in update() as well as in act()",
        edits=[
            (
                "        self.N[runs, actions] += 1\n        self.Q[runs, actions] += (rewards - self.Q[runs, actions]) / self.N[runs, actions]\n",
                "        self.t += 1\n        self.N[runs, actions] += 1\n        self.Q[runs, actions] += (rewards - self.Q[runs, actions]) / self.N[runs, actions]\n",
            )
        ],
        loses=("ucb_tries_every_arm_first",),
    ),
    Variant(
        "ucb_log_of_next_step",
        "UCB uses ln(t + 1) after incrementing t",
        edits=[("np.sqrt(np.log(self.t) / self.N)", "np.sqrt(np.log(self.t + 1) / self.N)")],
        loses=("ucb_selection",),
    ),
    Variant(
        "exploration_same_arm_for_all_runs",
        "all exploring runs of a step take the same random arm",
        edits=[
            (
                "return np.where(explore, self.rng.integers(0, k, n_runs), greedy)",
                "return np.where(explore, self.rng.integers(0, k), greedy)",
            )
        ],
        loses=("exploration_frequency",),
        messages={"exploration_frequency": "are not uniform over the arms"},
    ),
    Variant(
        "exploration_never_the_last_arm",
        "exploration draws from the first k - 1 arms only",
        edits=[
            (
                "return np.where(explore, self.rng.integers(0, k, n_runs), greedy)",
                "return np.where(explore, self.rng.integers(0, k - 1, n_runs), greedy)",
            )
        ],
        loses=("exploration_frequency",),
    ),
]
