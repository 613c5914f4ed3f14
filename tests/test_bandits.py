"""The bandits assignment: reference full marks, named messages, and the reference reproduces
Sutton & Barto's figures (templates and variants: tests/test_assignments.py)."""

from __future__ import annotations

from pathlib import Path

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


PORT = Path(__file__).parent / "ports" / "bandits_sutton_barto.py"


def test_sutton_barto_chapter_2_keeps_every_point_but_the_softmax_overflow(grade_source):
    """Sutton & Barto's own chapter 2 code, ported into the template as a student would (tests/ports): their UCB
    (`sqrt(log(t + 1) / (N + 1e-5))`, no rule for untried arms), their exact-equality ties, their softmax. It loses
    only gradient_bandit_policy, the one real defect: exp(H) without the maximum subtracted is NaN for preferences
    in the thousands, which that check names (their testbed never reaches them)."""
    grading = grade_source("bandits", PORT.read_text())
    assert set(failed(grading)) == {"gradient_bandit_policy"}, failed(grading)
    assert "NaN or inf" in failed(grading)["gradient_bandit_policy"]


def test_float32_estimates_and_ties_taken_with_isclose_keep_every_point(grade_source):
    """Numerical idioms (docs/bandits.md, "Numerical conventions"): estimates in float32, and maxima found with
    np.isclose (rtol 1e-5). They choose arms a rounding away from the grader's float64 best."""
    source = solution_source("bandits")
    for old, new in (("self.Q = np.full((n_runs, k), float(initial_value))",
                      "self.Q = np.full((n_runs, k), initial_value, np.float32)"),
                     ("self.Q = np.zeros((n_runs, k))", "self.Q = np.zeros((n_runs, k), np.float32)"),
                     ("self.H = np.zeros((n_runs, k))", "self.H = np.zeros((n_runs, k), np.float32)"),
                     ("is_max = values == values.max(axis=1, keepdims=True)",
                      "is_max = np.isclose(values, values.max(axis=1, keepdims=True))")):
        assert source.count(old) == 1
        source = source.replace(old, new)
    grading = grade_source("bandits", source)
    assert grading.score == grading.max_score, failed(grading)


def _rule_after_play(agent, rule, runs: int = 500, steps: int = 300):
    import numpy as np

    from graders.bandits.testbed import Testbed

    testbed = Testbed(runs, 10, steps, np.random.default_rng(7), rule=rule)
    for _ in range(steps):
        actions = agent.act()
        agent.update(actions, testbed.pull(actions))
    return rule


def _module(source: str):
    import types

    module = types.ModuleType("submission")
    exec(compile(source, "submission", "exec"), module.__dict__)
    return module


def test_the_testbed_rule_takes_rounding_as_a_tie_and_an_off_by_one_as_another_method():
    """What TIE_TOLERANCE lets through, measured in bench/bandits_idioms.py: Sutton & Barto's stabiliser and float32
    optimistic estimates stay below it; UCB with ln(t + 1) is still another method on hundreds of actions."""
    from graders.bandits.testbed import TIE_TOLERANCE, Rule

    port = _module(PORT.read_text())
    rule = _rule_after_play(port.UCB(500, 10, c=2.0, seed=1), Rule("ucb", c=2.0))
    assert rule.mismatches == 0 and 0 < rule.worst_gap < TIE_TOLERANCE / 5
    assert rule.gap_counts[1] > 0  # above 1e-9, the tolerance that failed it before
    float32 = _module(solution_source("bandits").replace("self.Q = np.full((n_runs, k), float(initial_value))",
                                                         "self.Q = np.full((n_runs, k), initial_value, np.float32)"))
    rule = _rule_after_play(float32.EpsilonGreedy(500, 10, epsilon=0.0, step_size=0.1, initial_value=5.0, seed=2),
                            Rule("epsilon_greedy", epsilon=0.0, step_size=0.1, initial_value=5.0))
    assert rule.mismatches == 0
    off_by_one = _module(solution_source("bandits").replace("np.sqrt(np.log(self.t) / self.N)",
                                                            "np.sqrt(np.log(self.t + 1) / self.N)"))
    rule = _rule_after_play(off_by_one.UCB(500, 10, c=2.0, seed=1), Rule("ucb", c=2.0))
    assert rule.mismatches > 100 and "the first at step" in rule.verdict(1e-6)


def test_a_testbed_the_agent_stopped_playing_fails_by_its_own_guard(grade_source):
    """Issue 31 item 1: a submission that shortens the worker's loop leaves the testbed unplayed; the guard says
    so (without it, the averages of an empty tail are NaN and the check failed only by accident)."""
    source = solution_source("bandits") + (
        "\n\nimport graders_worker.adapters.bandits as _adapter\n_played = _adapter.play_testbed\n"
        "_adapter.play_testbed = lambda submission, agent, steps: _played(submission, agent, 10)\n")
    grading = grade_source("bandits", source, checks=["testbed_ucb"])
    result = {r.name: r for r in grading.results}["testbed_ucb"]
    assert result.status == "failed" and "the agent stopped after 10 of 1000 steps" in result.message, result.message
