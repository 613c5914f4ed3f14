"""REINFORCE with baseline: reference full marks within the 200-episode budget, templates
zero, buggy variants lose the check that targets them, the 201st episode is refused."""

from __future__ import annotations

import pytest
from conftest import by_name, solution_source, variant

from graders import assignments

NAME = "reinforce_baseline"
UNIT_CHECKS = ("advantages_on_a_scripted_batch", "policy_loss_gradient_reaches_only_the_policy",
               "value_loss_is_mse_and_reaches_only_the_value_network", "baseline_reduces_variance")
UNIT_ONLY = """
[reinforce_baseline]
evaluation_seconds = 1
[reinforce_baseline.checks.trained_policy_first_seed]
timeout = 2
[reinforce_baseline.checks.trained_policy_second_seed]
timeout = 2
"""


def test_reference_earns_full_marks(grade_source, tmp_path):
    grading = grade_source(NAME, solution_source(NAME), artifacts_dir=tmp_path / "feedback")
    failed = {r.name: r.message for r in grading.results if r.status != "passed"}
    assert not failed
    assert grading.score == grading.max_score == 17
    training = by_name(grading)["trained_policy_first_seed"]
    assert "200 started" in training.message and "FLAG" not in training.message
    assert (tmp_path / "feedback" / "learning_curve_seed1.png").exists()


@pytest.mark.parametrize("template", assignments.template_paths(NAME), ids=lambda p: p.suffix)
def test_template_earns_zero_without_crashing(grade_source, template):
    grading = grade_source(NAME, template.read_text(), suffix=template.suffix)
    assert grading.score == 0 and not grading.internal_error
    assert all(r.status == "error" and "NotImplementedError" in r.message for r in grading.results)


def _apply(source: str, changes: list[tuple[str, str]]) -> str:
    for old, new in changes:
        assert source.count(old) == 1, f"variant does not apply: {old!r}"
        source = source.replace(old, new)
    return source


# name: (changes, the check that must fail)
VARIANTS = {
    "baseline_not_detached": (
        [("return returns - values.detach()", "return returns - values")],
        "policy_loss_gradient_reaches_only_the_policy"),
    "baseline_sees_the_action": (
        [("value_net = ValueNetwork(obs_dim, args.hidden_size)",
          "value_net = ValueNetwork(obs_dim + 1, args.hidden_size)"),
         ("values = value_net(obs).squeeze(-1)",
          "values = value_net(torch.cat([obs, actions.float().unsqueeze(1)], dim=1)).squeeze(-1)")],
        "policy_loss_gradient_reaches_only_the_policy"),
    "advantages_sign_flipped": (
        [("return returns - values.detach()", "return values.detach() - returns")],
        "advantages_on_a_scripted_batch"),
    "policy_loss_ignores_the_baseline": (
        [("return policy_loss(policy(obs), actions, advantages), value_loss(values, returns)",
          "return policy_loss(policy(obs), actions, returns), value_loss(values, returns)")],
        "baseline_reduces_variance"),
    "value_loss_not_squared": (
        [("return ((values - returns) ** 2).mean()", "return (values - returns).abs().mean()")],
        "value_loss_is_mse_and_reaches_only_the_value_network"),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_buggy_variant_loses_the_targeted_check(grade_source, name):
    changes, target = VARIANTS[name]
    grading = grade_source(NAME, _apply(solution_source(NAME), changes), config_toml=UNIT_ONLY)
    result = by_name(grading)[target]
    assert result.status in ("failed", "error") and result.points == 0, result.message
    assert grading.score < grading.max_score


def test_sign_flip_and_undetached_baseline_are_named(grade_source):
    results = by_name(grade_source(NAME, _apply(solution_source(NAME), VARIANTS["advantages_sign_flipped"][0]),
                                   config_toml=UNIT_ONLY))
    assert "the advantage is G - v" in results["advantages_on_a_scripted_batch"].message
    results = by_name(grade_source(NAME, _apply(solution_source(NAME), VARIANTS["baseline_not_detached"][0]),
                                   config_toml=UNIT_ONLY))
    assert "w.r.t. the value network is not zero" in results["policy_loss_gradient_reaches_only_the_policy"].message
    assert "carry a gradient" in results["advantages_on_a_scripted_batch"].message


def test_the_201st_episode_is_refused(grade_source):
    source = _apply(solution_source(NAME), [
        ("    while seen < budget and time.monotonic() - start < time_budget_s:",
         "    while time.monotonic() - start < time_budget_s:"),
        ("        if not episodes:\n            break\n", "        if not episodes:\n            envs.reset()\n"),
        ("episodes = collector.collect(policy, min(args.episodes_per_update, budget - seen))",
         "episodes = collector.collect(policy, args.episodes_per_update)"),
    ])
    config = """
[reinforce_baseline]
seeds = [0]
"""
    result = by_name(grade_source(NAME, source, config_toml=config))["trained_policy_first_seed"]
    assert result.status == "error" and result.points == 0
    assert "budget is 200 episodes" in result.message and "episode 201 refused" in result.message
    assert "200 episodes finished, 200 started" in result.message


def test_hanging_training_is_stopped_and_keeps_unit_points(grade_source):
    source = variant(NAME, "    ### BEGIN SOLUTION\n    torch.manual_seed(seed)\n",
                     "    ### BEGIN SOLUTION\n    while True:\n        pass\n")
    config = """
[reinforce_baseline]
seeds = [0]
evaluation_seconds = 3
[reinforce_baseline.checks.trained_policy_first_seed]
timeout = 12
"""
    results = by_name(grade_source(NAME, source, config_toml=config))
    assert results["trained_policy_first_seed"].status == "timeout"
    assert results["trained_policy_first_seed"].points == 0
    assert all(results[name].status == "passed" for name in UNIT_CHECKS)
