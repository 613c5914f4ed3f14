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

from graders.checks import as_array, check, expect, expect_close
from graders.rl import gradients
from graders.rl import reinforce as common
from graders.rl.training import Run, train_and_evaluate

TITLE = "REINFORCE on CartPole-v1"
GPU = True  # training runs on ctx.device
PRELOAD = ("torch",)  # the expected gradients are computed with torch (contract.py)
INSTRUCTOR_ONLY = ("graders.rl.reinforce",)  # the expected gradients: never in a student kit
FALSE_FAIL = 1e-6  # of the chi-squared test of sample_actions (exact: the p-value is exact)
DEFAULTS = {
    "seeds": [0, 1],
    "eval_episodes": 100,
    "train_seconds": {"cpu": 240, "cuda": 240},  # the student's own time for train(), margin included
    "evaluation_seconds": 60,  # of each training check's time, kept for the evaluation
    # Learning the grader must see (graders/rl/certify.py): the mean of the first start_episodes served
    # episodes at most thresholds.untrained_start, the best learning_window of them at least learning_seen.
    "start_episodes": 10,
    "learning_window": 10,
    "thresholds": {"mean_return": 490.0, "untrained_start": 100.0, "learning_seen": 400.0},
}
# What each setting means (python -m graders settings NAME)
HELP = {
    "eval_episodes": "evaluation episodes of the grader's own, per seed",
    "train_seconds": "the student's own time for train(), margin included (docs/reinforce.md, Time)",
    "evaluation_seconds": "of each training check's time limit, kept for the evaluation",
    "start_episodes": "learning the grader must see: the first this-many served episodes ...",
    "learning_window": "... and the best this-many in a row (graders/rl/certify.py)",
    "thresholds.mean_return": "evaluation mean return of a seed, at least",
    "thresholds.untrained_start": "the first start_episodes served episodes average at most this (else a FLAG)",
    "thresholds.learning_seen": "the best learning_window served episodes average at least this (else a FLAG)",
}
# the check's wall limit: the student's own train_seconds, the evaluation's evaluation_seconds, and room for the set-up,
# the grader's serving and a loaded machine's waits, which are not the student's time (graders/rl/training.py)
TRAINING_TIMEOUT = {"cpu": 600, "cuda": 600}
# the functions a training run uses: a training check that fails names these checks when they failed too
UNIT_CHECKS = ("discounted_returns", "loss_gradient_is_reinforce", "sampled_actions_follow_the_policy")
LOSS_HINT = ("the loss is the mean over the batch of -G_t * log pi(a_t|s_t), where log pi(a_t|s_t) is "
             "log_softmax(logits) at the action actually taken (gather), and the returns are used as given "
             "(constants, already scaled by the caller)")
NORMALIZED = ("the loss normalizes the returns itself (subtracts their mean, divides by their spread): "
              "reinforce_loss must use the returns exactly as given; train() already scaled them "
              "(Args.normalize_returns)")
ZERO_HINT = ("every return of this batch is 0, so the loss and its gradient are 0; a division by the returns' "
             "spread or sum gives NaN: reinforce_loss uses the returns as the caller scaled them")
ENTROPY = ("the loss adds another term, an entropy bonus with coefficient {ratio:.3g}: keep reinforce_loss the "
           "policy-gradient term alone and add regularisers in train()")
# (steps, mean return): two sizes, returns mostly positive then negative; last, every return 0 (another term shows)
BATCHES = ((16, 1.0), (5, -2.0), (8, None))


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
        got = as_array(worker.call("discounted_returns", rewards, gamma), f"discounted_returns({rewards.tolist()}, "
                       f"gamma={gamma})", want.shape)
        normalized = len(want) > 1 and any(np.allclose(got, common.standardized(want, ddof), rtol=1e-4, atol=1e-4)
                                           for ddof in (0, 1))
        expect(not normalized, f"discounted_returns({rewards.tolist()}, gamma={gamma}) returned the returns normalized "
               f"(zero mean, unit spread): {np.round(got, 4).tolist()}; it must return G_t itself, "
               f"{np.round(want, 4).tolist()}", hint="normalizing is a training choice, made in train() "
               "(Args.normalize_returns), not part of the discounted return")
        expect_close(got, want, f"discounted_returns({rewards.tolist()}, gamma={gamma})", rtol=1e-5, atol=1e-6,
                     hint="G_t = r_t + gamma * G_{t+1}, computed backwards from the last step (G_T = 0); "
                          "the first return is the largest sum, the last one is just the last reward")


@check(points=3)
def loss_gradient_is_reinforce(worker, ctx):
    """The gradient of reinforce_loss on the grader's network and batches is a positive multiple of
    -(1/B) sum_t G_t grad log pi(a_t|s_t) (a constant or the batch size: a sum keeps its points), and 0
    when every return is 0."""
    rng = ctx.rng("loss_gradient_is_reinforce")
    weights = common.random_mlp(rng, 4, 8, 2, scale=2.0)
    scales = []
    for size, shift in BATCHES:
        obs = rng.normal(size=(size, 4)).astype(np.float32)
        actions = rng.integers(0, 2, size)
        returns = np.zeros(size, np.float32) if shift is None else (rng.normal(size=size) * 3 + shift).astype(np.float32)
        reply = worker.call("loss_gradient", weights, obs, actions, returns)
        want = gradients.negated(common.reinforce_estimator(weights, obs, actions, returns))
        what = f"the gradient of reinforce_loss on the grader's batch of {size} steps"
        if shift is None:
            what += ", all of whose returns are 0"
        got = gradients.read(reply.get("grads") if isinstance(reply, dict) else None, want, what,
                             ZERO_HINT if shift is None else LOSS_HINT)
        if shift is None:
            entropy = gradients.negated(common.entropy_gradient(weights, obs))
            gradients.expect_zero(got, [gradients.Mistake(entropy, ENTROPY)], what, LOSS_HINT)
            continue
        mistakes = gradients.policy_loss_mistakes(weights, obs, actions, returns, normalized=NORMALIZED)
        scales.append((size, gradients.match(got, want, mistakes, what, LOSS_HINT)))
    if note := gradients.factor_note(scales, "reinforce_loss", LOSS_HINT):
        ctx.note(note)


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


@check(points=4, timeout=TRAINING_TIMEOUT, kind="training", per_seed=True, needs=UNIT_CHECKS)
def trained_policy(worker, ctx, seed_index):
    """Train on the grader's environments (one row per seed), then 100 evaluation episodes reach the threshold."""
    train_and_evaluate(worker, ctx, Run.of(ctx, seed_index), threshold_name="mean_return", title=TITLE)
