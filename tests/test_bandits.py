"""The bandits assignment: reference full marks, named messages, and the reference reproduces
Sutton & Barto's figures (templates and variants: tests/test_assignments.py)."""

from __future__ import annotations

from helpers import edited, failed, solution_source

from graders import assignments


def test_reference_earns_full_marks(grade_source):
    grading = grade_source("bandits", solution_source("bandits"))
    failed = {r.name: r.message for r in grading.results if r.status != "passed"}
    assert not failed
    assert grading.score == grading.max_score == 20


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


def test_a_gradient_bandit_that_caches_its_policy_in_act_keeps_every_point(grade_source):
    """Sutton & Barto's own code computes pi in act() and reuses it in update()."""
    source = edited("bandits", "        cumulative = self.policy().cumsum(axis=1)\n",
                    "        self.pi = self.policy()\n        cumulative = self.pi.cumsum(axis=1)\n")
    source = source.replace("        pi = self.policy()\n        self.t += 1\n", "        pi = self.pi\n        self.t += 1\n")
    grading = grade_source("bandits", source)
    assert grading.score == grading.max_score, failed(grading)


def test_a_ucb_that_breaks_ties_in_index_order_keeps_every_point(grade_source):
    """Trying the untried arms in index order is a convention, not an error."""
    source = edited("bandits", "        return argmax_random_ties(scores, self.rng)\n",
                    "        return scores.argmax(axis=1)\n")
    grading = grade_source("bandits", source)
    assert grading.score == grading.max_score, failed(grading)


def test_a_baseline_of_the_preceding_rewards_keeps_every_point(grade_source):
    """Sutton & Barto's baseline read as the mean of the rewards before this one (R_1 at t = 1)."""
    source = edited("bandits", """        if self.use_baseline:
            self.baseline += (rewards - self.baseline) / self.t
        one_hot = np.zeros_like(pi)
        one_hot[np.arange(len(actions)), actions] = 1.0
        self.H += self.step_size * (rewards - self.baseline)[:, None] * (one_hot - pi)
""", """        baseline = (self.baseline if self.t > 1 else rewards) if self.use_baseline else 0.0
        if self.use_baseline:
            self.baseline += (rewards - self.baseline) / self.t
        one_hot = np.zeros_like(pi)
        one_hot[np.arange(len(actions)), actions] = 1.0
        self.H += self.step_size * (rewards - baseline)[:, None] * (one_hot - pi)
""")
    grading = grade_source("bandits", source)
    assert grading.score == grading.max_score, failed(grading)
