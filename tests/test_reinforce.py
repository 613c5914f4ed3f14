"""The REINFORCE assignment: reference full marks, a hanging submission keeps its unit-check
points, and the grader-served CartPole behaves like gymnasium's own vector environment
(templates and buggy variants: tests/test_assignments.py)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from helpers import by_name, controller_source, edited, solution_source

from graders.rl.cartpole import env_seeds
from graders.rl.evaluation import evaluate
from graders.rl.server import CartPoleServer
from graders.sandbox import CallbackRefused
from graders_worker.rl.wire import unpack_step

UNIT_CHECKS = ("discounted_returns", "loss_gradient_is_reinforce", "sampled_actions_follow_the_policy")
TRAINING_CHECKS = ("trained_policy_first_seed", "trained_policy_second_seed")


def test_reference_earns_full_marks(grade_source, tmp_path):
    grading = grade_source("reinforce", solution_source("reinforce"), artifacts_dir=tmp_path / "feedback")
    failed = {r.name: r.message for r in grading.results if r.status != "passed"}
    assert not failed
    assert grading.score == grading.max_score == 15
    training = by_name(grading)["trained_policy_first_seed"]
    assert "evaluation mean return" in training.message and "FLAG" not in training.message
    assert (tmp_path / "feedback" / "learning_curve_seed1.png").stat().st_size > 1000


def test_hanging_training_is_stopped_and_keeps_unit_points(grade_source):
    source = edited("reinforce", "    ### BEGIN SOLUTION\n    torch.manual_seed(seed)\n",
                     "    ### BEGIN SOLUTION\n    envs = make_envs(2)\n    while True:\n        pass\n")
    config = """
[reinforce]
evaluation_seconds = 3
[reinforce.checks.trained_policy_first_seed]
timeout = 12
[reinforce.checks.trained_policy_second_seed]
timeout = 12
"""
    results = by_name(grade_source("reinforce", source, config_toml=config))
    for name in TRAINING_CHECKS:
        assert results[name].status == "timeout" and results[name].points == 0, results[name].message
        assert "0 episodes finished" in results[name].message
    assert all(results[name].status == "passed" for name in UNIT_CHECKS)


def test_a_hand_written_controller_is_flagged_and_not_credited(grade_source):
    """train() returns a controller that balances from the first episode: the evaluation passes, the
    grader's curve shows no learning, so the training points are withheld with a FLAG."""
    results = by_name(grade_source("reinforce", controller_source("reinforce", shown=30)))
    assert sum(results[name].points for name in UNIT_CHECKS) == 7
    for name in TRAINING_CHECKS:
        result = results[name]
        assert result.status == "flagged" and result.points == 0 and result.withheld == 4, result.message
        assert "evaluation mean return 500.0" in result.message
        assert "good before it trained" in result.flag


def test_learning_flags_need_a_start_like_an_untrained_policy_and_a_curve_near_the_threshold():
    from graders.rl.certify import learning_flags

    untrained, learned = [15.0] * 30, [15.0] * 20 + [480.0] * 20
    limits = {"start_episodes": 10, "start_limit": 100.0, "window": 10, "reach": 400.0}
    assert learning_flags(untrained + learned, **limits) == []
    assert "good before it trained" in learning_flags([500.0] * 40, **limits)[0]
    assert "far better than anything" in learning_flags(untrained, **limits)[0]
    assert "too few" in learning_flags([15.0] * 5, **limits)[0]


# --- the served environment, without a worker ------------------------------------------------------


def _gymnasium_same_step(n: int, seed: int):
    envs = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1") for _ in range(n)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    return envs, envs.reset(seed=env_seeds(seed, "train", n))[0]


def _balancing_actions(obs: np.ndarray) -> np.ndarray:
    """A linear controller that keeps CartPole up for the full 500 steps."""
    return (obs @ np.array([0.05, 0.2, 1.0, 0.3]) > 0).astype(np.int64)


def _mixed_actions(obs: np.ndarray, rng) -> np.ndarray:
    """The balancing controller in the first half of the environments (episodes run to the
    500-step limit), random actions in the second half (episodes end by termination)."""
    random = rng.integers(0, 2, len(obs))
    return np.where(np.arange(len(obs)) < len(obs) // 2, _balancing_actions(obs), random)


def test_served_env_matches_gymnasium_same_step_autoreset():
    n = 6
    server = CartPoleServer(seed=5)
    assert server.make(n)["num_envs"] == n
    obs = server.reset()
    reference, ref_obs = _gymnasium_same_step(n, 5)
    np.testing.assert_array_equal(obs, ref_obs)
    rng = np.random.default_rng(0)
    ended = truncations = 0
    for _ in range(1200):
        actions = _mixed_actions(obs, rng)
        got = unpack_step(server.step(actions))
        obs, rewards, terminated, truncated, infos = reference.step(actions)
        np.testing.assert_array_equal(got["obs"], obs)  # bit for bit, float32
        np.testing.assert_array_equal(got["rewards"], rewards)
        np.testing.assert_array_equal(got["terminated"], terminated)
        np.testing.assert_array_equal(got["truncated"], truncated)
        final_mask = infos.get("_final_obs", np.zeros(n, dtype=bool))
        np.testing.assert_array_equal(got["final_mask"], final_mask)
        if final_mask.any():
            np.testing.assert_array_equal(got["final_obs"][final_mask], np.stack(infos["final_obs"][final_mask]))
        ended += int((terminated | truncated).sum())
        truncations += int(truncated.sum())
    assert truncations >= 6 and ended > 50
    assert len(server.episode_returns) == ended and server.steps == n * 1200
    assert server.started == n + ended


class _ControllerWorker:
    """Stands in for a worker in `evaluate`: act() is the balancing controller with a fifth of its actions flipped."""

    def __init__(self):
        self.rng = np.random.default_rng(1)

    def call(self, name, obs, timeout=None):
        assert name == "act"
        balanced = _balancing_actions(obs)
        return np.where(self.rng.random(len(obs)) < 0.2, 1 - balanced, balanced)


def test_evaluation_matches_gymnasium():
    returns = evaluate(_ControllerWorker(), seed=11, episodes=20)
    worker = _ControllerWorker()
    envs = [gym.make("CartPole-v1") for _ in range(20)]
    obs = np.stack([env.reset(seed=s)[0] for env, s in zip(envs, env_seeds(11, "evaluate", 20), strict=True)])
    expected, running = np.zeros(20), np.ones(20, dtype=bool)
    while running.any():
        index = np.flatnonzero(running)
        for j, a in zip(index, worker.call("act", obs[index]), strict=True):
            obs[j], reward, terminated, truncated, _ = envs[j].step(int(a))
            expected[j] += reward
            running[j] = not (terminated or truncated)
    np.testing.assert_array_equal(returns, expected)
    assert (returns == 500).any() and (returns < 500).any()


def test_budget_retires_environments_then_refuses_the_next_episode():
    server = CartPoleServer(seed=1, episode_budget=5)
    server.make(2)
    server.reset()
    while not server._retired.all():
        reply = unpack_step(server.step(np.zeros(2, dtype=np.int64)))  # always left: episodes of about 10 steps
        assert reply["rewards"][reply["retired"] & ~reply["terminated"]].sum() == 0
    assert server.started == 5 and len(server.episode_returns) == 5
    with pytest.raises(CallbackRefused, match="budget is 5 episodes .* episode 6 refused"):
        server.step(np.zeros(2, dtype=np.int64))
    with pytest.raises(CallbackRefused, match="episode 6 refused"):
        server.reset()


@pytest.mark.parametrize("bad", [np.array([0, 2]), np.zeros(3, dtype=np.int64), np.array([0.5, 1.0]), [0, 1]])
def test_malformed_actions_are_refused(bad):
    server = CartPoleServer(seed=0)
    server.make(2)
    server.reset()
    with pytest.raises(CallbackRefused):
        server.step(bad)


def test_make_envs_validates_and_happens_once():
    server = CartPoleServer(seed=0)
    for bad in (0, 65, 2.0, "4"):
        with pytest.raises(CallbackRefused):
            server.make(bad)
    server.make(4)
    with pytest.raises(CallbackRefused, match="once"):
        server.make(4)


# --- conventions that are not errors (issue 21) ------------------------------------------------------

UNIT_ONLY = """
[reinforce]
evaluation_seconds = 1
[reinforce.checks.trained_policy_first_seed]
timeout = 2
[reinforce.checks.trained_policy_second_seed]
timeout = 2
"""


def test_a_loss_summed_over_the_batch_keeps_its_points_with_a_note(grade_source):
    """Correct but different: Categorical's log_prob, summed over the batch (the pytorch example's idiom)."""
    reference = ("    log_probs = torch.log_softmax(logits, dim=1).gather(1, actions.long().unsqueeze(1)).squeeze(1)\n"
                 "    return -(returns.detach() * log_probs).mean()")
    source = edited("reinforce", reference,
                    "    log_probs = torch.distributions.Categorical(logits=logits).log_prob(actions)\n"
                    "    return torch.stack([-r * lp for r, lp in zip(returns, log_probs)]).sum()")
    result = by_name(grade_source("reinforce", source, config_toml=UNIT_ONLY))["loss_gradient_is_reinforce"]
    assert result.status == "passed" and result.points == 3, result.message
    assert "sums over the batch instead of averaging" in result.message and "16 x the mean" in result.message


def test_a_factor_that_depends_on_the_batch_is_not_a_convention(grade_source):
    """Dividing by the returns' spread is a positive multiple on each batch, but not a constant one."""
    source = edited("reinforce", "    return -(returns.detach() * log_probs).mean()",
                    "    return -(returns.detach() / (returns.std() + 1e-8) * log_probs).mean()")
    result = by_name(grade_source("reinforce", source, config_toml=UNIT_ONLY))["loss_gradient_is_reinforce"]
    assert result.status == "failed" and "changes with the batch" in result.message, result.message
