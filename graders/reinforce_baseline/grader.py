"""Grader of REINFORCE with a learned baseline under a 200-episode training budget.

Unit checks run the submission's advantages and losses on the grader's own policy
and value networks and compare values and gradients with the grader's numpy
computations (graders/rl/reinforce.py): the advantages, that each loss reaches
only its own network, that the value loss is the MSE, and that with the grader's
baseline the submission's policy-gradient estimator has a lower variance than
without one. Training runs on CartPole-v1 served by this process, which counts the
episodes and refuses the 201st; the returned policy is evaluated on 100 episodes of
the grader's. Reference performance: docs/reinforce_baseline.md.
"""

from __future__ import annotations

import numpy as np

from graders.checks import CheckFailed, as_array, check, expect, expect_close
from graders.rl import reinforce as common
from graders.rl.training import train_and_evaluate

TITLE = "REINFORCE with baseline on CartPole-v1 (200 episodes)"
DEFAULTS = {
    "seeds": [0, 1],
    "episode_budget": 200,
    "eval_episodes": 100,
    "train_seconds": {"cpu": 240, "cuda": 240},  # the student's own time for train(), margin included
    "evaluation_seconds": 60,
    "min_plausible_steps": 5000,
    "variance_batches": 200,
    "thresholds": {"mean_return": 475.0, "max_variance_ratio": 0.5},
}
# the check's wall limit: the student's own train_seconds, the evaluation's evaluation_seconds, and room for the set-up,
# the grader's serving and a loaded machine's waits, which are not the student's time (graders/rl/training.py)
TRAINING_TIMEOUT = {"cpu": 600, "cuda": 600}
ADVANTAGE_HINT = "A_t = G_t - v(s_t): the return minus the baseline, with the baseline detached (values.detach())"
POLICY_HINT = ("the policy loss is the mean of -A_t log pi(a_t|s_t) with A_t = G_t - value_net(obs) detached; "
               "no normalization unless normalize_advantages=True")


def _batch(rng: np.random.Generator, size: int):
    obs = rng.normal(size=(size, 4)).astype(np.float32)
    return obs, rng.integers(0, 2, size), (rng.normal(size=size) * 2 + 1).astype(np.float32)


def _nets(rng: np.random.Generator):
    return common.random_mlp(rng, 4, 8, 2, scale=2.0), common.random_mlp(rng, 4, 8, 1, scale=1.0)


def _all_zero(grads, what: str, hint: str) -> None:
    expect(isinstance(grads, dict), f"{what} could not be read back")
    largest = max(float(np.max(np.abs(as_array(g, what)))) for g in grads.values())
    expect(largest == 0.0, f"{what} is not zero (largest entry {largest:.3g})", hint)


@check(points=2)
def advantages_on_a_scripted_batch(worker, ctx):
    """compute_advantages: A = G - v, carrying no gradient into the value network."""
    rng = ctx.rng("advantages_on_a_scripted_batch")
    returns = np.array([3.0, 2.0, 1.0, 0.5, -1.0, 4.0], dtype=np.float32)
    values = (rng.normal(size=6) * 2).round(2).astype(np.float32)
    got = worker.call("advantages", returns, values)
    expect(isinstance(got, dict), "compute_advantages could not be called")
    want = returns.astype(np.float64) - values
    array = as_array(got["advantages"], "compute_advantages(returns, values)", (6,))
    if np.allclose(array, -want, rtol=1e-5, atol=1e-6):
        raise CheckFailed(f"compute_advantages returned v - G = {array.tolist()}; the advantage is G - v.\n"
                          f"Hint: {ADVANTAGE_HINT}")
    expect_close(array, want, f"compute_advantages(returns={returns.tolist()}, values={values.tolist()})",
                 rtol=1e-5, atol=1e-6, hint=ADVANTAGE_HINT)
    expect(not got["requires_grad"], "the advantages carry a gradient back into the value network",
           hint="detach the baseline: returns - values.detach()")


@check(points=3)
def policy_loss_gradient_reaches_only_the_policy(worker, ctx):
    """losses(): d policy loss / d policy is the estimator with A = G - v(s); d policy loss / d value = 0."""
    rng = ctx.rng("policy_loss_gradient_reaches_only_the_policy")
    policy_w, value_w = _nets(rng)
    obs, actions, returns = _batch(rng, 16)
    got = worker.call("loss_terms", policy_w, value_w, obs, actions, returns)
    inputs = got["value_inputs"]
    expect(len(inputs) > 0, "losses() never called value_net: where does the baseline come from?",
           hint="values = value_net(obs).squeeze(-1)")
    expect(all(np.shape(x) == obs.shape and np.allclose(x, obs) for x in inputs),
           "value_net was called on something other than the batch's states", hint="a baseline sees the state only")
    _all_zero(got["policy_loss_value_grads"], "the gradient of the policy loss w.r.t. the value network",
              "the advantages must not carry gradient: detach the baseline")
    _, values = common.mlp_forward(value_w, obs)
    advantage = returns - values[:, 0]
    want = {k: -v for k, v in common.reinforce_estimator(policy_w, obs, actions, advantage).items()}
    grads = got["policy_loss_policy_grads"]
    flipped = {k: -v for k, v in want.items()}
    if all(np.allclose(as_array(grads[k], k), flipped[k], rtol=1e-3, atol=1e-6) for k in common.PARAM_NAMES):
        raise CheckFailed("the gradient of the policy loss has the wrong sign: with advantages v - G (or a loss "
                          "of +A log pi) the update makes better-than-expected actions less likely."
                          f"\nHint: {POLICY_HINT}")
    for k in common.PARAM_NAMES:
        expect_close(grads[k], want[k], f"d policy loss / d {k} (the grader's policy network)", rtol=1e-3, atol=1e-6,
                     hint=POLICY_HINT)


@check(points=2)
def value_loss_is_mse_and_reaches_only_the_value_network(worker, ctx):
    """losses(): the value loss is mean((v(s) - G)^2); its gradient reaches the value network only."""
    rng = ctx.rng("value_loss_is_mse_and_reaches_only_the_value_network")
    policy_w, value_w = _nets(rng)
    obs, actions, returns = _batch(rng, 16)
    got = worker.call("loss_terms", policy_w, value_w, obs, actions, returns)
    want_loss, want_grads = common.mse_gradient(value_w, obs, returns)
    expect_close(got["value_loss"], want_loss, "the value loss", rtol=1e-4, atol=1e-6,
                 hint="mean squared error between value_net(obs).squeeze(-1) and the returns")
    _all_zero(got["value_loss_policy_grads"], "the gradient of the value loss w.r.t. the policy network",
              "the value loss depends on the value network only")
    for k in common.PARAM_NAMES:
        expect_close(got["value_loss_value_grads"][k], want_grads[k], f"d value loss / d {k} (the grader's value "
                     "network)", rtol=1e-3, atol=1e-6, hint="mean over the batch of (v(s_t) - G_t)^2")


@check(points=2)
def baseline_reduces_variance(worker, ctx):
    """With the grader's baseline the submission's policy gradient varies less across batches than without."""
    rng = ctx.rng("baseline_reduces_variance")
    policy_w, value_w = _nets(rng)
    value_w["2.bias"] = value_w["2.bias"] + np.float32(20.0)  # returns near 20, as CartPole's early ones
    k, size = int(ctx.option("variance_batches")), 8
    obs = rng.normal(size=(k, size, 4)).astype(np.float32)
    probabilities = common.softmax(common.mlp_forward(policy_w, obs.reshape(-1, 4))[1])[:, 1].reshape(k, size)
    actions = (rng.random((k, size)) < probabilities).astype(np.int64)
    values = common.mlp_forward(value_w, obs.reshape(-1, 4))[1][:, 0].reshape(k, size)
    returns = (values + rng.normal(size=(k, size))).astype(np.float32)  # v(s) is the expected return
    zero = {name: np.zeros_like(w) for name, w in value_w.items()}
    with_baseline = as_array(worker.call("policy_gradients", policy_w, value_w, obs, actions, returns),
                             "policy gradients with the baseline")
    without = as_array(worker.call("policy_gradients", policy_w, zero, obs, actions, returns),
                       "policy gradients without a baseline")
    expect(with_baseline.shape == without.shape and with_baseline.shape[0] == k, "unexpected gradient shapes")
    ratio = float(with_baseline.var(axis=0).sum() / max(without.var(axis=0).sum(), 1e-30))
    ctx.note(f"total variance of the policy gradient with the baseline / without: {ratio:.3g}")
    expect(ratio < float(ctx.threshold("max_variance_ratio")),
           f"the baseline does not reduce the variance of the policy gradient (ratio {ratio:.3g})",
           hint="the policy loss must use A_t = G_t - value_net(s_t), not the returns themselves")


@check(points=4, timeout=TRAINING_TIMEOUT, kind="training")
def trained_policy_first_seed(worker, ctx):
    """Train within the grader's 200-episode budget (first seed); 100 evaluation episodes reach the threshold."""
    train_and_evaluate(worker, ctx, 0, threshold_name="mean_return", title=TITLE,
                       episode_budget=int(ctx.option("episode_budget")))


@check(points=4, timeout=TRAINING_TIMEOUT, kind="training")
def trained_policy_second_seed(worker, ctx):
    """The same on the second seed."""
    train_and_evaluate(worker, ctx, 1, threshold_name="mean_return", title=TITLE,
                       episode_budget=int(ctx.option("episode_budget")))
