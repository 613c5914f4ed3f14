"""The bandits assignment: reference full marks, templates zero, buggy variants lose
the check that targets them, and the reference reproduces Sutton & Barto's figures."""

from __future__ import annotations

import pytest
from conftest import by_name, solution_source, variant

from graders import assignments
from graders.runner import grade


def test_reference_earns_full_marks(grade_source):
    grading = grade_source("bandits", solution_source("bandits"))
    failed = {r.name: r.message for r in grading.results if r.status != "passed"}
    assert not failed
    assert grading.score == grading.max_score == 20


@pytest.mark.parametrize("template", assignments.template_paths("bandits"), ids=lambda p: p.suffix)
def test_template_earns_zero_without_crashing(template):
    grading = grade("bandits", template, device="cpu")
    assert grading.score == 0 and not grading.internal_error
    assert all(r.status == "error" and "NotImplementedError" in r.message for r in grading.results)


# name: (original line, buggy line, the check that must fail)
VARIANTS = {
    "incremental_mean_off_by_one": (
        "step = 1.0 / self.N[runs, actions] if", "step = 1.0 / (self.N[runs, actions] + 1) if",
        "sample_average_update"),
    "epsilon_inverted": (
        "explore = self.rng.random(n_runs) < self.epsilon", "explore = self.rng.random(n_runs) > self.epsilon",
        "exploration_frequency"),
    "explores_only_non_greedy_arms": (
        "return np.where(explore, self.rng.integers(0, k, n_runs), greedy)",
        "return np.where(explore, (greedy + self.rng.integers(1, k, n_runs)) % k, greedy)",
        "exploration_frequency"),
    "argmax_ties_always_first_arm": (
        "return keys.argmax(axis=1)", "return values.argmax(axis=1)", "greedy_ties_are_uniform"),
    "ucb_without_untried_arm_rule": (
        "scores = np.where(self.N == 0, np.inf, self.Q + bonus)",
        "scores = self.Q + self.c * np.sqrt(np.log(self.t) / np.maximum(self.N, 1))",
        "ucb_tries_every_arm_first"),
    "ucb_log_of_previous_step": (
        "self.t += 1\n        with np.errstate", "with np.errstate", "ucb_selection"),
    "gradient_updates_only_chosen_arm": (
        "(one_hot - pi)", "(one_hot * (1 - pi))", "gradient_bandit_update"),
    "softmax_without_max_shift": (
        "z = np.exp(self.H - self.H.max(axis=1, keepdims=True))", "z = np.exp(self.H)", "gradient_bandit_policy"),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_buggy_variant_loses_the_targeted_check(grade_source, name):
    old, new, target = VARIANTS[name]
    grading = grade_source("bandits", variant("bandits", old, new))
    result = by_name(grading)[target]
    assert result.status in ("failed", "error") and result.points == 0, result.message
    assert grading.score < grading.max_score


def test_argmax_tie_variant_also_fails_the_argmax_check(grade_source):
    old, new, _ = VARIANTS["argmax_ties_always_first_arm"]
    result = by_name(grade_source("bandits", variant("bandits", old, new)))["argmax_breaks_ties_at_random"]
    assert result.status == "failed" and "not uniform" in result.message


def test_failure_message_says_expected_got_and_hint(grade_source):
    old, new, target = VARIANTS["incremental_mean_off_by_one"]
    message = by_name(grade_source("bandits", variant("bandits", old, new)))[target].message
    assert "expected" in message and "got" in message and "Hint:" in message


def _late(reference, class_name, metric, mean=0.0, seed=0, **kwargs):
    import numpy as np

    from graders.bandits.testbed import Testbed

    testbed = Testbed(2000, 10, 1000, np.random.default_rng(seed), mean=mean)
    agent = getattr(reference, class_name)(n_runs=2000, k=10, seed=seed + 1, **kwargs)
    for _ in range(1000):
        actions = agent.act()
        agent.update(actions, testbed.pull(actions))
    return testbed.late_average_reward(100) if metric == "reward" else testbed.late_optimal_fraction(100)


def test_reference_reproduces_sutton_barto_figures():
    import importlib.util

    spec = importlib.util.spec_from_file_location("reference", assignments.solution_path("bandits"))
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    eps_01 = _late(ref, "EpsilonGreedy", "reward", epsilon=0.1)
    assert 1.3 < eps_01 < 1.5  # figure 2.2: about 1.4 at step 1000
    assert eps_01 > _late(ref, "EpsilonGreedy", "reward", epsilon=0.01)
    optimistic = _late(ref, "EpsilonGreedy", "optimal", epsilon=0.0, step_size=0.1, initial_value=5.0)
    assert optimistic > _late(ref, "EpsilonGreedy", "optimal", epsilon=0.1, step_size=0.1)  # figure 2.3
    assert _late(ref, "UCB", "reward", c=2.0) > eps_01  # figure 2.4
    with_baseline = _late(ref, "GradientBandit", "optimal", mean=4.0, step_size=0.1, baseline=True)
    assert with_baseline > _late(ref, "GradientBandit", "optimal", mean=4.0, step_size=0.1, baseline=False)
