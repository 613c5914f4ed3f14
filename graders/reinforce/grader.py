"""Grader of the REINFORCE assignment on CartPole-v1.

Unit checks compare the submission's discounted returns, the gradient of its loss
(on the grader's network and batch) and its action sampling with the grader's own
numpy computations. The training checks serve CartPole-v1 from this process
(graders/rl/server.py), so every episode and step is counted here, then evaluate the
returned policy on 100 episodes of the grader's from its own seeds. Thresholds and
the reference's measured performance: docs/reinforce.md (bench/reinforce_reference.py).
"""

from __future__ import annotations

import numpy as np

from graders.checks import CheckFailed, as_array, check, expect, expect_close
from graders.rl import reinforce as common
from graders.rl.training import train_and_evaluate

TITLE = "REINFORCE on CartPole-v1"
FALSE_FAIL = 1e-6  # of the chi-squared test of sample_actions (exact: the p-value is exact)
DEFAULTS = {
    "seeds": [0, 1],
    "eval_episodes": 100,
    "train_seconds": {"cpu": 240, "cuda": 240},  # the student's own time for train(), margin included
    "evaluation_seconds": 60,  # of each training check's time, kept for the evaluation
    "min_plausible_steps": 5000,  # a pass after fewer served steps is flagged for the instructor
    "thresholds": {"mean_return": 490.0},
}
# the check's wall limit: the student's own train_seconds, the evaluation's evaluation_seconds, and room for the set-up,
# the grader's serving and a loaded machine's waits, which are not the student's time (graders/rl/training.py)
TRAINING_TIMEOUT = {"cpu": 600, "cuda": 600}
LOSS_HINT = ("the loss is the mean over the batch of -G_t * log pi(a_t|s_t), where log pi(a_t|s_t) is "
             "log_softmax(logits) at the action actually taken (gather), and the returns are constants")


@check(points=2)
def discounted_returns(worker, ctx):
    """discounted_returns: G_t = r_t + gamma G_{t+1}, backwards from the end of the episode."""
    rng = ctx.rng("discounted_returns")
    cases = [(np.ones(4), 0.9), (np.array([0.0, 0.0, 1.0]), 0.5), (np.array([2.5]), 0.99),
             (rng.normal(size=9).round(2), 0.95), (rng.normal(size=6).round(2), 1.0)]
    for rewards, gamma in cases:
        want, running = np.zeros(len(rewards)), 0.0
        for t in reversed(range(len(rewards))):
            running = rewards[t] + gamma * running
            want[t] = running
        got = worker.call("discounted_returns", rewards, gamma)
        expect_close(got, want, f"discounted_returns({rewards.tolist()}, gamma={gamma})", rtol=1e-5, atol=1e-6,
                     hint="G_t = r_t + gamma * G_{t+1}, computed backwards from the last step (G_T = 0); "
                          "the first return is the largest sum, the last one is just the last reward")


def _compare_gradient(got: dict, want: dict, batch: int) -> None:
    """Compare per parameter, naming the two classic mistakes when they are what happened."""
    expect(isinstance(got, dict) and set(common.PARAM_NAMES) <= set(got),
           "the gradient of reinforce_loss could not be read back")
    arrays = {k: as_array(got[k], f"gradient of {k}", np.shape(want[k])) for k in common.PARAM_NAMES}

    def matches(scale: float) -> bool:
        return all(np.allclose(arrays[k], scale * want[k], rtol=1e-3, atol=1e-6) for k in common.PARAM_NAMES)

    if matches(-1.0):
        raise CheckFailed("the gradient of reinforce_loss is +g, the REINFORCE estimator itself: minimizing this "
                          "loss would make the returned actions *less* likely.\nHint: " + LOSS_HINT)
    if matches(float(batch)):
        raise CheckFailed(f"the gradient of reinforce_loss is {batch} x the expected one: the loss sums over the "
                          "batch instead of averaging.\nHint: " + LOSS_HINT)
    for k in common.PARAM_NAMES:
        expect_close(arrays[k], want[k], f"d reinforce_loss / d {k} (the grader's network)", rtol=1e-3, atol=1e-6,
                     hint=LOSS_HINT)


@check(points=3)
def loss_gradient_is_reinforce(worker, ctx):
    """The gradient of reinforce_loss on the grader's network and batch is -(1/B) sum_t G_t grad log pi(a_t|s_t)."""
    rng = ctx.rng("loss_gradient_is_reinforce")
    weights = common.random_mlp(rng, 4, 8, 2, scale=2.0)
    batch = 16
    obs = rng.normal(size=(batch, 4)).astype(np.float32)
    actions = rng.integers(0, 2, batch)
    returns = (rng.normal(size=batch) * 3 + 1).astype(np.float32)
    reply = worker.call("loss_gradient", weights, obs, actions, returns)
    want = {k: -v for k, v in common.reinforce_estimator(weights, obs, actions, returns).items()}
    _compare_gradient(reply.get("grads") if isinstance(reply, dict) else None, want, batch)


@check(points=2)
def sampled_actions_follow_the_policy(worker, ctx):
    """sample_actions draws each action with probability softmax(logits) (chi-squared test, false-fail 1e-6)."""
    rng = ctx.rng("sampled_actions_follow_the_policy")
    weights = common.random_mlp(rng, 4, 8, 2, scale=2.0)
    candidates = rng.normal(size=(2000, 4))
    p_right = common.softmax(common.mlp_forward(weights, candidates)[1])[:, 1]
    chosen = [int(np.argmin(np.abs(p_right - target))) for target in np.linspace(0.1, 0.9, 8)]
    states, probabilities = candidates[chosen].astype(np.float32), p_right[chosen]
    draws = 2500
    obs = np.repeat(states, draws, axis=0)
    got = as_array(worker.call("sample_with_weights", weights, obs, int(rng.integers(2**31))),
                   "sample_actions on a batch", (len(obs),))
    expect(np.all((got == 0) | (got == 1)), f"sample_actions returned values other than 0 and 1: "
           f"{sorted(set(np.unique(got).tolist()))[:6]}")
    counts = got.reshape(len(states), draws).sum(axis=1)
    statistic, p_value = common.binomial_chi_squared(counts, draws, probabilities)
    expect(p_value > FALSE_FAIL,
           f"sample_actions does not follow the policy: over {draws} draws per state, action 1 was chosen "
           f"{(counts / draws).round(3).tolist()} of the time where the policy's probabilities are "
           f"{probabilities.round(3).tolist()} (chi-squared {statistic:.1f} with {len(states)} degrees of freedom, "
           f"p = {p_value:.2g})",
           hint="sample from torch.distributions.Categorical(logits=policy(obs)); taking the argmax during training "
                "never explores")


@check(points=4, timeout=TRAINING_TIMEOUT, kind="training")
def trained_policy_first_seed(worker, ctx):
    """Train on the grader's environments (first seed), then 100 evaluation episodes reach the threshold."""
    train_and_evaluate(worker, ctx, 0, threshold_name="mean_return", title=TITLE)


@check(points=4, timeout=TRAINING_TIMEOUT, kind="training")
def trained_policy_second_seed(worker, ctx):
    """The same on the second seed."""
    train_and_evaluate(worker, ctx, 1, threshold_name="mean_return", title=TITLE)
