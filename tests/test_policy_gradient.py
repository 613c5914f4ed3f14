"""The policy-gradient assignment: reference full marks, templates zero, each buggy variant
loses the check that targets it; and the grader's own witnesses, generator and
statistical test behave (no worker needed for those)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from helpers import by_name, edited, solution_source

from graders import assignments, templates
from graders.policy_gradient import exact, mdps, stats
from graders.policy_gradient.grader import DEFAULTS, MC_CASES, value_baseline


@pytest.fixture(scope="module")
def reference():
    spec = importlib.util.spec_from_file_location("pg_reference", assignments.solution_path("policy_gradient"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- graded end to end, through the sandboxed worker ------------------------------------------


def test_reference_earns_full_marks(grade_source):
    grading = grade_source("policy_gradient", solution_source("policy_gradient"))
    failed = {r.name: r.message for r in grading.results if r.status != "passed"}
    assert not failed
    assert grading.score == grading.max_score == 28


LOOP_ESTIMATOR = """
    for n in range(N):
        L = int(lengths[n])
        G = 0.0
        for t in reversed(range(L)):  # G_t = R_{t+1} + G_{t+1}
            G += rewards[n, t]
            s, a = states[n, t], actions[n, t]
            b = 0.0 if baseline is None else baseline[t, s]
            grad_log_pi = -pi[s].astype(np.float32)
            grad_log_pi[a] += 1.0
            grads[n, s] += (G - b) * grad_log_pi
    grads = grads.tolist()
"""


def test_a_plain_loop_estimator_earns_full_marks(grade_source):
    """Another correct implementation (loops, float32 pieces, a list returned) passes too."""
    source = solution_source("policy_gradient")
    start = source.index("    alive = np.arange(T)[None, :] < lengths[:, None]")
    end = source.index("    ### END SOLUTION\n    return grads")
    grading = grade_source("policy_gradient", source[:start] + LOOP_ESTIMATOR.lstrip("\n") + source[end:])
    failed = {r.name: r.message for r in grading.results if r.status != "passed"}
    assert not failed


def test_reference_as_a_notebook_earns_full_marks(grade_source):
    """The notebook path: code cells only, demo and answer cells dropped."""
    notebook = templates.to_notebook(solution_source("policy_gradient"))
    grading = grade_source("policy_gradient", json.dumps(notebook), suffix=".ipynb")
    assert grading.score == grading.max_score, {r.name: r.message for r in grading.results if r.status != "passed"}


def test_written_answer_is_a_manually_graded_markdown_cell():
    notebook = json.loads(assignments.template_paths("policy_gradient")[1].read_text())
    graded = [c for c in notebook["cells"] if c["metadata"].get("nbgrader", {}).get("grade")]
    assert len(graded) == 1 and graded[0]["cell_type"] == "markdown"
    meta = graded[0]["metadata"]["nbgrader"]
    assert meta["solution"] and meta["points"] == 2 and meta["grade_id"] == "baseline"
    assert "".join(graded[0]["source"]).strip() == "YOUR ANSWER HERE"


# --- the grader's witnesses and data, directly --------------------------------------------------


@pytest.mark.parametrize("spec", mdps.CASES, ids=lambda s: s.name)
def test_witnesses_agree_with_each_other_and_the_reference(reference, spec):
    case = mdps.random_case(spec, seed=7)
    facts = exact.exact_quantities(case.mdp, case.theta)
    scale = np.abs(facts["grad"]).max()
    fd = exact.finite_difference_gradient(case.mdp, case.theta)
    assert np.abs(fd - facts["grad"]).max() <= 1e-8 * scale
    assert np.isclose(exact.objective_numpy(case.mdp, case.theta), facts["J"], rtol=1e-12)
    theorem = reference.policy_gradient_theorem(case.mdp, case.theta)
    assert np.abs(theorem - facts["grad"]).max() <= 1e-12 * scale
    eta = reference.visit_counts(case.mdp, facts["pi"])
    np.testing.assert_allclose(eta, facts["eta"], atol=1e-12)
    jac = exact.value_jacobian(case.mdp, case.theta)
    unrolled = reference.unrolled_value_gradient(case.mdp, case.theta, 200)
    assert np.abs(unrolled - jac).max() <= 1e-12 * np.abs(jac).max()
    fd_jac = exact.finite_difference_value_jacobian(case.mdp, case.theta)
    assert np.abs(fd_jac - jac).max() <= 1e-8 * np.abs(jac).max()


@pytest.mark.parametrize("spec", mdps.CASES, ids=lambda s: s.name)
def test_generator_builds_the_awkward_cases(spec):
    case = mdps.random_case(spec, seed=3)
    mdp, S = case.mdp, spec.n_states
    assert mdp["P"].shape == (S, spec.n_actions, S) and mdp["H"] == spec.horizon
    assert (mdp["valid"].sum(axis=1) == 1).sum() == spec.n_single_action
    assert len(case.unreachable) == spec.n_unreachable
    eta = exact.exact_quantities(mdp, case.theta)["eta"].reshape(-1, S).sum(axis=0)
    assert np.all(eta[case.unreachable] == 0)
    assert np.all(np.delete(eta, case.unreachable) >= mdps.MIN_REACHABLE_VISITS)
    if spec.horizon is None:
        assert np.all(mdp["P"].sum(axis=2) <= 1 - mdps.MIN_TERMINATION + 1e-12)
    else:
        np.testing.assert_allclose(mdp["P"].sum(axis=2), 1.0)
    again = mdps.random_case(spec, seed=3)
    assert np.array_equal(again.theta, case.theta) and np.array_equal(again.mdp["P"], mdp["P"])


def test_sampled_episodes_follow_the_mdp():
    case = mdps.random_case(mdps.CASE_BY_NAME["episodic-8x4"], seed=0)
    episodes = mdps.sample_episodes(case, 20000, np.random.default_rng(0))
    lengths, states = episodes["lengths"], episodes["states"]
    facts = exact.exact_quantities(case.mdp, case.theta)
    assert abs(lengths.mean() - facts["eta"].sum()) < 5 * lengths.std() / np.sqrt(len(lengths))
    alive = np.arange(states.shape[1])[None, :] < lengths[:, None]
    visits = np.array([((states == s) & alive).sum() for s in range(8)]) / len(lengths)
    np.testing.assert_allclose(visits, facts["eta"], atol=0.05)
    assert not np.isin(states[alive], case.unreachable).any()
    assert np.all(episodes["rewards"][~alive] == 0)


def test_unbiasedness_test_accepts_the_reference_and_rejects_a_bias(reference):
    case = mdps.random_case(mdps.CASE_BY_NAME[MC_CASES[0]], seed=0)
    episodes = mdps.sample_episodes(case, DEFAULTS["episodes"], np.random.default_rng(1))
    grad = exact.exact_gradient(case.mdp, case.theta)
    samples = reference.reinforce_gradients(episodes, case.theta, case.mdp["valid"], None)
    assert stats.unbiasedness_test(samples, grad, 1e-5).passed
    shifted = stats.unbiasedness_test(samples + 0.2 * np.abs(grad).max(), grad, 1e-5)
    assert not shifted.passed and "exact gradient" in shifted.describe()
    based = reference.reinforce_gradients(episodes, case.theta, case.mdp["valid"],
                                          value_baseline(case, episodes["states"].shape[1]))
    assert stats.total_variance(based) < stats.total_variance(samples)


def test_the_limit_is_bonferroni_corrected_over_the_coordinates_tested():
    """The false-fail rate of the unbiasedness test is alpha for the whole gradient, not per coordinate: the limit
    on |z| grows with the number of coordinates tested (alpha / 2m per tail)."""
    assert stats.z_critical(0.05, 1) == pytest.approx(1.95996, abs=1e-4)
    assert stats.z_critical(0.05, 10) == pytest.approx(2.80703, abs=1e-4)  # inv_cdf(1 - 0.05 / 20)
    rng = np.random.default_rng(3)  # 40 unbiased coordinates: the largest |z| of 40 often passes 1.96, not 3.2
    samples = rng.standard_normal((400, 8, 5))
    result = stats.unbiasedness_test(samples, np.zeros((8, 5)), 0.05)
    assert result.n_tested == 40 and result.passed and result.max_abs_z > 1.96
    assert stats.bonferroni_p_value(result) == pytest.approx(
        min(1.0, 40 * 2 * (1 - stats.NormalDist().cdf(result.max_abs_z))))


def test_constant_coordinates_must_match_exactly():
    samples = np.zeros((100, 2, 2))
    samples[:, 0, 0] = np.random.default_rng(0).standard_normal(100)
    assert stats.unbiasedness_test(samples, np.zeros((2, 2)), 1e-5).passed
    result = stats.unbiasedness_test(samples, np.array([[0.0, 0.0], [0.0, 0.3]]), 1e-5)
    assert not result.passed and result.constant_mismatch and result.worst == (1, 1)


def test_constant_or_replayed_estimates_earn_nothing(grade_source):
    """The mean of the correct estimates, returned for every episode, is unbiased and has no variance."""
    source = edited("policy_gradient", "    ### END SOLUTION\n    return grads\n",
                    "    ### END SOLUTION\n    return np.broadcast_to(grads.mean(axis=0), grads.shape).copy()\n")
    results = by_name(grade_source("policy_gradient", source))
    for name in ("reinforce_unbiased", "reinforce_baseline_unbiased", "baseline_lowers_variance"):
        assert results[name].status == "failed" and results[name].points == 0, results[name].message
        assert "differ from the grader's" in results[name].message
    assert sum(r.points for r in results.values()) == 20
