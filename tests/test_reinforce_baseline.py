"""REINFORCE with baseline: reference full marks within the episode budget, the 201st episode
is refused, a hanging submission keeps its unit points (templates and buggy variants:
tests/test_assignments.py)."""

from __future__ import annotations

from helpers import by_name, edited, precomputed_relabelling, solution_source

NAME = "reinforce_baseline"
UNIT_CHECKS = ("advantages_on_a_scripted_batch", "policy_loss_gradient_reaches_only_the_policy",
               "value_loss_is_mse_and_reaches_only_the_value_network", "baseline_reduces_variance")


def test_reference_earns_full_marks(grade_source, tmp_path):
    grading = grade_source(NAME, solution_source(NAME), artifacts_dir=tmp_path / "feedback")
    failed = {r.name: r.message for r in grading.results if r.status != "passed"}
    assert not failed
    assert grading.score == grading.max_score == 18
    training = by_name(grading)["trained_policy_first_seed"]
    assert "400 started" in training.message and "FLAG" not in training.message
    assert (tmp_path / "feedback" / "learning_curve_seed1.png").exists()


def _apply(source: str, changes: list[tuple[str, str]]) -> str:
    for old, new in changes:
        assert source.count(old) == 1, f"the change does not apply: {old!r}"
        source = source.replace(old, new)
    return source


def test_an_episode_over_the_budget_is_refused(grade_source):
    source = _apply(solution_source(NAME), [
        ("    while seen < budget:", "    while True:"),
        ("        if not episodes:\n            break\n", "        if not episodes:\n            envs.reset()\n"),
        ("episodes = collector.collect(policy, min(args.episodes_per_update, budget - seen))",
         "episodes = collector.collect(policy, args.episodes_per_update)"),
    ])
    config = """
[reinforce_baseline]
seeds = [0]
episode_budget = 200
"""
    result = by_name(grade_source(NAME, source, config_toml=config))["trained_policy_first_seed"]
    assert result.status == "error" and result.points == 0
    assert "budget is 200 episodes" in result.message and "episode 201 refused" in result.message
    assert "200 episodes finished, 200 started" in result.message


def test_hanging_training_is_stopped_and_keeps_unit_points(grade_source):
    source = edited(NAME, "    ### BEGIN SOLUTION\n    torch.manual_seed(seed)\n",
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


# --- conventions that are not errors, and the bugs that used to pass (issue 21) ------------------------



def test_sums_a_half_mse_and_the_population_std_keep_their_points(grade_source):
    source = _apply(solution_source(NAME), [
        ("    return -(advantages * log_probs).mean()", "    return -(advantages * log_probs).sum()"),
        ("    return ((values - returns) ** 2).mean()", "    return 0.5 * torch.nn.functional.mse_loss(values, returns)"),
        ("(advantages.std() + 1e-8)", "(advantages.std(unbiased=False) + 1e-8)"),
    ])
    results = by_name(grade_source(NAME, source, unit=True))
    for name in UNIT_CHECKS + ("normalized_advantages_are_standardized",):
        assert results[name].status == "passed", (name, results[name].message)
    assert "the policy loss sums over the batch" in results["policy_loss_gradient_reaches_only_the_policy"].message
    assert "the value loss is 0.5 x the expected one" in \
        results["value_loss_is_mse_and_reaches_only_the_value_network"].message


def test_train_must_return_the_value_network(grade_source):
    source = _apply(solution_source(NAME), [("    return policy, value_net\n", "    return policy\n")])
    result = by_name(grade_source(NAME, source, config_toml="[reinforce_baseline]\nseeds = [0]\n"))[
        "trained_policy_first_seed"]
    assert result.status == "error" and result.points == 0
    assert "train() must return the pair (policy, value_net)" in result.message


def test_long_episodes_within_the_budget_are_not_a_time_out(grade_source):
    """A policy that learned early plays 500-step episodes: the whole budget of them one at a time (200k steps
    served, one round trip each) fits the check's time, which charges the student only its own time. (The
    controller here is written for seed 0's relabelling: the test knows it.)"""
    weights, swap = next(iter(precomputed_relabelling([0]).values()))
    source = edited(NAME, "    ### BEGIN SOLUTION\n    torch.manual_seed(seed)\n", f"""    ### BEGIN SOLUTION
    env = make_envs.make_env()
    for _ in range(env.episode_budget):
        obs, _ = env.reset()
        done = False
        while not done:
            action = int(obs @ np.array({weights}) > 0) ^ {swap}
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    return Policy(4, 2, 8), nn.Linear(4, 1)
    torch.manual_seed(seed)
""")
    config = """
[reinforce_baseline]
seeds = [0]
"""
    result = by_name(grade_source(NAME, source, config_toml=config))["trained_policy_first_seed"]
    assert result.status in ("passed", "failed"), result.message
    assert "400 episodes finished, 400 started, 200000 steps in 1 environment(s)" in result.message
