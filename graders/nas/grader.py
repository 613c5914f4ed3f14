"""Grader of the NAS assignment: a REINFORCE controller searching a measured space of networks.

Unit checks run the submission's functions on the grader's own LSTM controller, built
in the worker from weights chosen here (graders_worker/adapters/nas.py), and compare with the
grader's float64 computation (graders/nas/controller.py): the sequence log-probability
and its gradient, sampling (chi-squared), greedy decoding, the REINFORCE gradient with
the baseline, and that an update uses the baseline from before its batch; the reward
and the baseline's moving average on scripted numbers. The search checks serve the
space from this process (graders/nas/search.py): every evaluation is a look-up in the
grader's measured table, counted against the budget, under a relabelling of the
choices drawn from the grading seed; the controller's greedy architecture and the
rewards of the search's second half decide. Measurements: docs/nas.md.
"""

from __future__ import annotations

import math

import numpy as np

from graders.checks import CheckFailed, CheckFlagged, as_array, as_dict, check, expect, expect_close
from graders.nas import controller, space
from graders.nas import table as nas_table
from graders.nas.search import SearchServer, draw_permutations, expected_best, plot_search
from graders.rl import gradients, training
from graders.rl.stats import chi_squared_sf_even
from graders.sandbox import StudentError, WorkerDied, WorkerTimeout
from graders.sandbox.student_clock import StudentClock

TITLE = "Neural architecture search with a REINFORCE controller"
GPU = True  # training runs on ctx.device
PRELOAD = ("torch",)  # the expected gradients are computed with torch (contract.py)
INSTRUCTOR_ONLY = ("graders.nas.controller",)  # the expected log-probabilities and gradients: never in a student kit
FALSE_FAIL = 1e-6  # of the chi-squared test of sample_architectures
DEFAULTS = {
    "seeds": [0, 1],
    "evaluation_budget": 800,  # architectures one search may evaluate
    "target_flops": 100_000,  # T of the reward (multiply-adds per image)
    "alpha": 0.07,  # exponent of FLOPs / T at or below the target
    "beta": -0.07,  # ... and above it
    # The student's own time for train(), margin included, as in the REINFORCE graders (graders/rl/training.py):
    # time_budget_s = train_seconds / 1.1, the clock starts with the student's train() and does not count the
    # grader answering evaluations. The reference spends its budget of evaluations in a few seconds.
    "train_seconds": {"cpu": 60, "cuda": 60},
    "evaluation_seconds": 15,  # of each search check's time, kept for the greedy_architecture call after train()
    "thresholds": {
        "top_fraction": 0.08,  # the greedy architecture's rank must be within this fraction of the space
        "late_mean_quantile": 0.80,  # mean reward of the search's second half >= this quantile of the space's
    },
}
# What each setting means (python -m graders settings NAME)
HELP = {
    "evaluation_budget": "architectures one search may evaluate",
    "target_flops": "T of the reward (multiply-adds per image)",
    "alpha": "exponent of FLOPs / T at or below the target",
    "beta": "exponent of FLOPs / T above the target",
    "train_seconds": "the student's own time for train(), margin included",
    "evaluation_seconds": "of each search check's time limit, kept for the greedy architecture's call",
    "thresholds.top_fraction": "the greedy architecture's rank within this fraction of the space",
    "thresholds.late_mean_quantile": "mean reward of the search's second half, at least this quantile of the space's",
}
# the check's wall limit: train_seconds, evaluation_seconds, and room for the set-up (imports before train(): up
# to training.SETUP_S) and the time not charged to the student
SEARCH_TIMEOUT = {"cpu": 180, "cuda": 180}
HIDDEN = 8  # of the grader's controllers
LOSS_BATCHES = (16, 5)  # two sizes: a factor that is the batch size (a sum) is told from a constant
UPDATE_LR = 1.0  # of the plain SGD step in update_uses_the_baseline_before_the_batch
# the short search on which update_uses_the_baseline_before_the_batch reads how train() carries the baseline
PROBE_BUDGET = 48  # evaluations: three batches of the template's 16
PROBE_SECONDS = 20.0  # of the student's own time
LOG_PROB_HINT = ("run the controller over the decisions, feeding each given token to the next step (teacher forcing), "
                 "and sum log_softmax(logits_d) at token d over all D decisions")
LOSS_HINT = ("the loss is the mean over the batch of -(R_k - b) * log p(a_k), with the rewards and the baseline "
             "constants; its gradient is then -(1/m) sum_k (R_k - b) grad log p(a_k)")


def _like_weights(got, weights: dict, what: str) -> dict:
    """The worker's arrays (gradients, or weights) as float arrays of the weights' shapes, or CheckFailed."""
    expect(isinstance(got, dict) and set(weights) <= set(got), f"{what} could not be read back")
    return {k: as_array(got[k], f"{what}: {k}", np.shape(w)) for k, w in weights.items()}


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _flat(grads: dict, names: list[str]) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(grads[k], dtype=np.float64)) for k in names])


# ----------------------------------------------------------------------------- scripted numbers


@check(points=2)
def reward_formula(worker, ctx):
    """efficientnet_reward: accuracy * (flops / T) ** w, w = alpha at or below T, beta above."""
    rng = ctx.rng("reward_formula")
    accuracy = np.array([0.9, 0.8, 0.85, 0.7, 0.95, 0.6])
    flops = np.array([25_000.0, 100_000.0, 400_000.0, 1_600_000.0, 60_000.0, 100_001.0])
    # first the settings that tell the mistakes apart (with alpha = -beta a swap and a flipped sign agree)
    cases = [(accuracy, flops, 100_000.0, 0.0, -1.0), (accuracy, flops, 100_000.0, -0.07, -0.07),
             (accuracy, flops, 100_000.0, 0.07, -0.07),
             (rng.uniform(0.5, 0.95, 7).round(4), rng.uniform(1e4, 1e6, 7).round(), 2e5, 0.07, -0.07)]
    for acc, fl, target, alpha, beta in cases:
        ratio = fl / target
        want = acc * ratio ** np.where(ratio <= 1, alpha, beta)
        got = as_array(worker.call("efficientnet_reward", acc, fl, target, alpha, beta),
                       "efficientnet_reward", (len(acc),))
        what = f"efficientnet_reward(accuracy={acc.tolist()}, flops={fl.tolist()}, target={target:g}, " \
               f"alpha={alpha}, beta={beta})"
        if not np.allclose(got, want, rtol=1e-6) and not np.allclose(acc, want):
            if np.allclose(got, acc, rtol=1e-6):
                raise CheckFailed(f"{what} returned the accuracies themselves: the FLOPs factor is missing.\n"
                                  "Hint: multiply by (flops / target_flops) ** w")
            if np.allclose(got, acc * ratio ** -np.where(ratio <= 1, alpha, beta), rtol=1e-6):
                raise CheckFailed(f"{what}: the exponent has the wrong sign, so the reward rises away from the "
                                  "target.\nHint: (flops / target) ** alpha below the target, ** beta above it")
            if np.allclose(got, acc * ratio ** np.where(ratio <= 1, beta, alpha), rtol=1e-6):
                raise CheckFailed(f"{what}: alpha and beta are swapped.\nHint: w = alpha where flops <= target, "
                                  "beta where flops > target")
        expect_close(got, want, what, rtol=1e-6, atol=1e-9,
                     hint="accuracy * (flops / target_flops) ** w with w = alpha where flops <= target_flops, "
                          "else beta, element by element (np.where)")


@check(points=1)
def baseline_moving_average(worker, ctx):
    """update_baseline: b <- decay b + (1 - decay) mean(R); the batch's mean when there is no baseline yet."""
    rng = ctx.rng("baseline_moving_average")
    cases = [(None, np.array([0.5, 0.7]), 0.9), (0.6, np.array([0.8, 1.0]), 0.9), (0.2, np.array([0.9]), 0.5),
             (float(rng.uniform(0.3, 0.8)), rng.uniform(0.3, 0.9, 5).round(3), 0.95)]
    for baseline, rewards, decay in cases:
        mean = float(rewards.mean())
        want = mean if baseline is None else decay * baseline + (1 - decay) * mean
        got = float(as_array(worker.call("update_baseline", baseline, rewards, decay), "update_baseline", ()))
        what = f"update_baseline({baseline}, {rewards.tolist()}, decay={decay})"
        if baseline is None and not math.isclose(got, want, rel_tol=1e-6) and math.isclose(
                got, (1 - decay) * mean, rel_tol=1e-6):
            raise CheckFailed(f"{what} = {got:.6g}: no baseline was taken as 0. A baseline that starts at 0 makes "
                              "every early advantage positive, so the controller reinforces whatever it sampled first.\n"
                              "Hint: when baseline is None, return the batch's "
                              "mean reward")
        if baseline is not None and not math.isclose(got, want, rel_tol=1e-6) and math.isclose(
                got, (1 - decay) * baseline + decay * mean, rel_tol=1e-6):
            raise CheckFailed(f"{what} = {got:.6g}: the decay weighs the new rewards instead of the old baseline.\n"
                              "Hint: b <- decay * b + (1 - decay) * mean(rewards); with decay near 1 the baseline "
                              "moves slowly")
        expect_close(got, want, what, rtol=1e-6, hint="b <- decay * b + (1 - decay) * mean(rewards); "
                     "when b is None (the first batch) it is mean(rewards)")


# ----------------------------------------------------------------------------- the controller


@check(points=1)
def controller_emits_one_token_per_decision(worker, ctx):
    """Controller: one logits vector of the right size per decision, each depending on the previous token and, through
    the recurrent state, on the tokens before it; the same initial state every time. Measured on the student's own
    Controller with its parameters drawn at random (not its initialisation), not the grader's controller."""
    choices, n = [3, 2, 4, 2], 5
    got = as_dict(worker.call("controller_outputs", choices, 16, n, ctx.worker_seed("controller")),
                  "running your Controller", ("parameters", "shapes", "depends", "remembers", "repeatable", "sampled"))
    parameters = float(as_array(got["parameters"], "the number of your Controller's parameters", ()))
    expect(parameters > 0, "Controller has no parameters: what would REINFORCE train?",
           hint="an nn.LSTMCell, an embedding per decision but the last, and one linear head per decision")
    want = [[n, k] for k in choices]
    shapes = got["shapes"]
    plain = isinstance(shapes, list) and all(isinstance(s, list) and all(type(x) is int for x in s) for s in shapes)
    expect(plain and shapes == want, f"Controller(choices={choices}).step gave logits of shapes "
           f"{shapes if plain else '(unreadable)'} for decisions 0..3 of {n} sequences; expected {want}",
           hint="one linear head per decision, with choices[d] outputs")
    depends = as_array(got["depends"], "whether each decision depends on the previous token", (len(choices) - 1,))
    expect(bool(np.all(depends != 0)), "the logits of a decision do not depend on the token chosen at the decision "
           f"before (per decision 1..3: {(depends != 0).tolist()})", hint="feed the embedding of `previous` to the "
           "LSTM cell")
    remembers = as_array(got["remembers"], "whether each decision depends on the tokens before the previous one",
                         (len(choices) - 2,))
    expect(bool(np.all(remembers != 0)), "with the previous token the same, the logits of decisions 2..3 do not "
           f"depend on the tokens chosen before it ({(remembers != 0).tolist()}): the state passed to step() is not "
           "used, so the controller is not recurrent and each decision sees only the token before it",
           hint="run the cell on the state you were given and return the new one: h, c = self.cell(x, (h, c)); "
                "return logits, (h, c)")
    expect(got["repeatable"] is True, "initial_state(n) returned a different state when called again: the state "
           "before the first decision must be a function of the controller's weights (zeros, or a learned vector), "
           "else the log-probability computed for an update is not that of the sampling",
           hint="return zeros (or a learned parameter expanded to n rows), not random numbers")
    sampled = as_array(got["sampled"], "sample_architectures(your controller, 5)", (n, len(choices)))
    expect(np.all((sampled >= 0) & (sampled < np.array(choices))), f"sample_architectures(your controller) gave "
           f"tokens out of range: {sampled.tolist()}")


@check(points=2)
def sequence_log_prob_and_its_gradient(worker, ctx):
    """sequence_log_prob on the grader's controller: the sum of every decision's log-softmax, and its gradient."""
    rng = ctx.rng("sequence_log_prob_and_its_gradient")
    choices = list(space.CHOICES)
    weights = controller.random_controller(rng, choices, HIDDEN)
    tokens = np.stack([rng.integers(0, k, 12) for k in choices], axis=1)
    coefficients = rng.normal(size=len(tokens))
    got = as_dict(worker.call("log_prob_and_gradient", weights, tokens, coefficients),
                  "sequence_log_prob on the grader's controller", ("log_probs", "grads"))
    per_decision = controller.decision_log_probs(weights, choices, tokens)
    want = per_decision.sum(axis=1)
    values = as_array(got["log_probs"], f"sequence_log_prob(controller, tokens of shape {tokens.shape})",
                      (len(tokens),))
    if not np.allclose(values, want, rtol=1e-4, atol=1e-5):
        if np.allclose(values, per_decision[:, -1], rtol=1e-4, atol=1e-5):
            raise CheckFailed("sequence_log_prob returned the log-probability of the last token only.\n"
                              f"Hint: {LOG_PROB_HINT}")
        if np.allclose(values, want / len(choices), rtol=1e-4, atol=1e-5):
            raise CheckFailed(f"sequence_log_prob averages over the decisions instead of summing.\nHint: {LOG_PROB_HINT}")
    expect_close(values, want, "sequence_log_prob on the grader's controller", rtol=1e-4, atol=1e-5,
                 hint=LOG_PROB_HINT)
    names = controller.param_names(choices)
    grads = _like_weights(got["grads"], weights, "the gradient of sequence_log_prob")
    want_grads = controller.weighted_log_prob_gradient(weights, choices, tokens, coefficients)
    for k in names:
        expect_close(grads[k], want_grads[k], f"d (sum_i c_i log p_i) / d {k} (the grader's controller)", rtol=1e-3,
                     atol=1e-5, hint="the log-probabilities must keep their graph: no .detach(), .item() or numpy")


def _pearson(counts: np.ndarray, probabilities: np.ndarray) -> tuple[float, float]:
    """Pearson's statistic of multinomial counts and its p-value (k - 1 degrees of freedom, k odd)."""
    expected = counts.sum() * probabilities
    statistic = float(np.sum((counts - expected) ** 2 / expected))
    return statistic, chi_squared_sf_even(statistic, len(counts) - 1)


SAMPLING_CHOICES = [3, 5, 3]  # 45 sequences: 44 degrees of freedom
# Draws of sampling_follows_the_controller: against sampling at temperature 1.1 (logits / 1.1) the test's power is
# 0.36 at 20,000 draws and at least 0.99998 at 200,000 on each of 1000 grading seeds, its false-fail rate staying
# 1e-6 (bench/nas_sampling_power.py, docs/nas.md); the reference's sampler takes about a second for them.
SAMPLING_DRAWS = 200_000


def sampling_controller(ctx) -> tuple[dict, np.ndarray, np.ndarray]:
    """The grader's controller of sampling_follows_the_controller (weights, every sequence, its probability): every
    sequence at least 0.4% likely, so that each cell expects hundreds of draws."""
    rng = ctx.rng("sampling_follows_the_controller")
    for _ in range(200):
        weights = controller.random_controller(rng, SAMPLING_CHOICES, HIDDEN)
        sequences, probabilities = controller.sequence_distribution(weights, SAMPLING_CHOICES)
        if probabilities.min() > 0.004:
            break
    return weights, sequences, probabilities


@check(points=2, timeout=30)
def sampling_follows_the_controller(worker, ctx):
    """sample_architectures draws whole sequences with the controller's probabilities (chi-squared, false-fail 1e-6)."""
    choices = SAMPLING_CHOICES
    weights, sequences, probabilities = sampling_controller(ctx)
    draws = SAMPLING_DRAWS
    got = as_array(worker.call("sample_with_weights", weights, draws, ctx.worker_seed("sampling")),
                   f"sample_architectures(controller, {draws})", (draws, len(choices)))
    expect(np.all((got >= 0) & (got < np.array(choices))) and np.all(got == np.round(got)),
           "sample_architectures returned tokens out of range or not integers")
    counts = np.bincount(np.ravel_multi_index(got.astype(np.int64).T, choices), minlength=len(sequences))
    statistic, p_value = _pearson(counts, probabilities)
    worst = np.argsort(-np.abs(counts / draws - probabilities))[:3]
    detail = ", ".join(f"{sequences[i].tolist()}: {counts[i] / draws:.3f} vs {probabilities[i]:.3f}" for i in worst)
    expect(p_value > FALSE_FAIL,
           f"sample_architectures does not follow the controller: over {draws} draws of {len(sequences)} possible "
           f"architectures, Pearson's chi-squared is {statistic:.1f} with {len(sequences) - 1} degrees of freedom "
           f"(p = {p_value:.2g}); most off (drawn vs the controller's probability): {detail}",
           hint="draw each token from Categorical(logits=logits) and feed the *drawn* token to the next step; taking "
                "the argmax during the search never explores")


@check(points=1)
def greedy_architecture_takes_each_argmax(worker, ctx):
    """greedy_architecture on three grader controllers: each decision's argmax, fed to the next step."""
    rng = ctx.rng("greedy_architecture_takes_each_argmax")
    choices = list(space.CHOICES)
    for i in range(3):
        weights = controller.random_controller(rng, choices, HIDDEN)
        want = controller.greedy(weights, choices)
        got = as_array(worker.call("greedy_with_weights", weights), "greedy_architecture(controller)",
                       (len(choices),), dtype=np.int64)
        expect(np.array_equal(got, want), f"greedy_architecture on the grader's controller #{i + 1}: expected "
               f"{want.tolist()}, got {got.tolist()}", hint="at each decision take logits.argmax(dim=1) and feed "
               "that token to the next step")


@check(points=2)
def loss_gradient_is_reinforce_with_baseline(worker, ctx):
    """reinforce_loss: its gradient with respect to the log-probabilities of two batches is a positive multiple of
    -(R_k - b) / m (a constant or the batch size: a sum keeps its points, as in the REINFORCE assignments,
    graders/rl/gradients.py), so that through sequence_log_prob it is the REINFORCE estimator with the baseline."""
    rng = ctx.rng("loss_gradient_is_reinforce_with_baseline")
    scales = []
    for m in LOSS_BATCHES:
        log_probs = rng.uniform(-9.0, -2.0, m).astype(np.float32)  # of whole architectures: sums of 9 log-softmaxes
        rewards = rng.uniform(0.55, 0.85, m).astype(np.float32)
        baseline = float(rng.uniform(0.65, 0.75))
        what = f"the gradient of reinforce_loss(log_probs, rewards, baseline) with respect to log_probs, a batch of {m}"
        g = as_array(worker.call("loss_gradient", log_probs, rewards, baseline), what, (m,))
        advantages = rewards.astype(np.float64) - baseline
        want = -advantages / m
        c, residual = gradients.fit(g, want)
        if c > 0 and residual <= gradients.TOLERANCE:
            scales.append((m, c))
            continue
        c_flip, r_flip = gradients.fit(g, -want)
        if c_flip > 0 and r_flip <= gradients.TOLERANCE:
            raise CheckFailed(f"{what} is a positive multiple of +(R_k - b) / m: minimizing this loss would make "
                              "architectures with rewards above the baseline *less* likely.\nHint: " + LOSS_HINT)
        c_r, r_r = gradients.fit(g, -rewards.astype(np.float64) / m)
        if c_r > 0 and r_r <= gradients.TOLERANCE:
            raise CheckFailed(f"{what} is that of the estimator without the baseline (R_k instead of R_k - b).\n"
                              "Hint: " + LOSS_HINT)
        raise CheckFailed(f"{what} does not match -(R_k - b) / m: even at the best positive factor, "
                          f"{min(residual if c > 0 else 1.0, 9.99):.0%} of its length is off (tolerance "
                          f"{gradients.TOLERANCE:.1%}); expected {np.round(want, 5).tolist()}, "
                          f"got {np.round(g, 5).tolist()}\nHint: {LOSS_HINT}")
    if note := gradients.factor_note(scales, "the gradient of reinforce_loss", LOSS_HINT):
        ctx.note(note)


def _update_order(step: np.ndarray, estimators: dict) -> str | None:
    """Which baseline a measured SGD step used, up to a positive factor: "before" the batch, "updated" with it
    first (ENAS's order), or None (neither). `estimators`: the REINFORCE gradient with each."""
    for order, estimator in estimators.items():
        c, residual = gradients.fit(step, estimator)
        if c > 0 and residual <= gradients.TOLERANCE:
            return order
    return None


def _train_calls(fresh_worker, ctx) -> list[dict] | str:
    """train()'s calls of reinforce_update on a short served search, in a worker of its own (the adapter's
    update_calls), or why there are none."""
    server = SearchServer(nas_table.load(), draw_permutations(ctx.rng("update probe")), PROBE_BUDGET,
                          ctx.option("target_flops"), ctx.option("alpha"), ctx.option("beta"))
    try:
        probe = fresh_worker()
        clock = StudentClock(PROBE_SECONDS, margin=training.TRAIN_MARGIN, setup_s=training.SETUP_S,
                             hard_end=ctx.deadline)
        training.serve_training(probe, server, clock, ctx.worker_seed("update probe"), ctx.device)
        calls = probe.call("update_calls")
    except (StudentError, WorkerTimeout, WorkerDied) as exc:
        return f"train() did not finish a search of {PROBE_BUDGET} evaluations ({str(exc).splitlines()[0][:200]})"
    expect(isinstance(calls, list) and all(isinstance(c, dict) for c in calls),
           "the record of train()'s calls of reinforce_update could not be read back")
    if not calls:
        return f"train() did not call reinforce_update in a search of {PROBE_BUDGET} evaluations"
    return calls


def _dropped_baseline(calls: list[dict]) -> str | None:
    """Where train() did not pass reinforce_update the baseline its previous call returned, or None."""
    for k in range(1, len(calls)):
        given, returned = calls[k].get("baseline"), calls[k - 1].get("returned")
        if not _number(returned):
            continue  # no number came back: the calls above say so
        if not (_number(given) and math.isclose(given, returned, rel_tol=1e-6, abs_tol=1e-9)):
            shown = f"{given:.6g}" if _number(given) else repr(given)
            return (f"train() called reinforce_update for batch {k + 1} with baseline={shown}, but its call for batch "
                    f"{k} had returned {returned:.6g}")
    return None


# its probe's worker starts with the grading (nothing to hide there), with what a first optimizer imports (seconds)
@check(points=1, timeout={"cpu": 60, "cuda": 60}, fresh_ahead=("torch._dynamo",))
def update_uses_the_baseline_before_the_batch(worker, ctx, fresh_worker):
    """reinforce_update, called twice in a row on the grader's controller with plain SGD (as a search calls it): each
    call takes one REINFORCE step on its own batch (measured from the weights it leaves) with the baseline from before
    the batch (or ENAS's, updated with the batch first: the same gradient in expectation, up to a positive factor),
    and returns the updated baseline; and train() passes each call the baseline the previous call returned (read on a
    short search of its own)."""
    rng = ctx.rng("update_uses_the_baseline_before_the_batch")
    choices = list(space.CHOICES)
    names = controller.param_names(choices)
    m, decay = 8, 0.8
    # (weights, tokens, rewards, baseline) of each call: it starts from weights of the grader's (set in place, the
    # gradients left as the call before left them), so that the expected steps do not depend on the submission's
    # first step (a student kit replays them)
    batches = []
    for baseline in (None, float(rng.uniform(0.5, 0.6))):
        weights = controller.random_controller(rng, choices, HIDDEN)
        tokens = np.stack([rng.integers(0, k, m) for k in choices], axis=1)
        batches.append((weights, tokens, rng.uniform(0.55, 0.85, m), baseline))
    got = worker.call("update_steps", batches, decay, UPDATE_LR)
    expect(isinstance(got, list) and len(got) == len(batches), "the weights after each call of reinforce_update "
           "could not be read back")
    previous_step, stale, orders = None, False, set()
    for i, ((start, tokens, rewards, baseline), reply) in enumerate(zip(batches, got), start=1):
        what = f"reinforce_update(..., baseline={baseline}, decay={decay}), call {i} of {len(batches)}"
        reply = as_dict(reply, what, ("weights", "returned"))
        after = _like_weights(reply["weights"], start, f"{what}: the controller's weights after it")
        step = -(_flat(after, names) - _flat(start, names)) / UPDATE_LR  # = c * the loss's gradient under SGD
        mean = float(rewards.mean())
        before = mean if baseline is None else baseline
        updated = decay * before + (1 - decay) * mean
        estimators = {order: _flat(controller.weighted_log_prob_gradient(start, choices, tokens, -(rewards - b) / m),
                                   names) for order, b in (("before", before), ("updated", updated))}
        expect(bool(np.any(step != 0)), f"{what} did not change the controller's weights",
               hint="optimizer.zero_grad(); loss.backward(); optimizer.step()")
        order = _update_order(step, estimators)
        if order is None and previous_step is not None and _update_order(step - previous_step, estimators):
            order, stale = "stale", True
        if order is None:
            c, residual = gradients.fit(step, estimators["before"])
            raise CheckFailed(f"{what}: the weights did not move by one REINFORCE step with the baseline "
                              f"{before:.6g} " + ("(the batch's mean reward: there is no baseline yet)"
                                                  if baseline is None else "(the one passed in)")
                              + f" (off by {min(residual if c > 0 else 1.0, 9.99):.0%} at the best positive factor). "
                              "The step goes through your sequence_log_prob and reinforce_loss: if their checks fail, "
                              "fix those first.\nHint: loss = reinforce_loss(sequence_log_prob(controller, tokens), "
                              "rewards, baseline); optimizer.zero_grad(); loss.backward(); optimizer.step(); once per "
                              "call")
        orders.add(order)
        returned = reply["returned"]
        accepted = [updated]
        if _number(returned) and not math.isclose(returned, updated, rel_tol=1e-6, abs_tol=1e-9):
            try:  # the submission's own moving average: a mistake there loses its points in baseline_moving_average
                own = worker.call("update_baseline", baseline, rewards, decay)
            except StudentError:
                own = None
            accepted += [float(own)] if _number(own) else []
        expect(_number(returned) and any(math.isclose(returned, v, rel_tol=1e-6, abs_tol=1e-9) for v in accepted),
               f"{what} returned {returned if _number(returned) else type(returned).__name__}, not the baseline "
               f"after the batch ({updated:.6g})",
               hint="return update_baseline(baseline, rewards, decay), computed after the loss")
        previous_step = step
    calls = _train_calls(fresh_worker, ctx)
    if stale:
        if not (isinstance(calls, list) and all(c.get("clear") is True for c in calls)):
            raise CheckFailed("reinforce_update's second call on the same controller stepped with the gradient of the "
                              "first call's batch added to its own: the gradients are not cleared between updates, so "
                              "every step carries all the batches before it"
                              + ("" if isinstance(calls, list) else f" ({calls})")
                              + ".\nHint: optimizer.zero_grad() before loss.backward()")
        ctx.note("reinforce_update does not clear the gradients itself; your train() clears them before each call, so "
                 "its steps are right")
    if isinstance(calls, str):
        ctx.note(f"{calls}: how it carries the baseline from one batch to the next is not checked")
    elif dropped := _dropped_baseline(calls):
        raise CheckFailed(f"{dropped}: the baseline is not carried from one batch to the next, so each batch "
                          "subtracts a baseline of its own and the moving average (baseline_decay) is never used.\n"
                          "Hint: baseline = None before the first batch, then baseline = reinforce_update(controller, "
                          "optimizer, tokens, rewards, baseline, decay) for each batch")
    if "updated" in orders:
        ctx.note("your reinforce_update subtracts the baseline already updated with the batch's rewards (ENAS's "
                 "order, Pham et al. 2018) where the template subtracts the one from before the batch (Zoph & Le, "
                 f"2017). In expectation that is (1 - (1 - decay) / m) times the same gradient (here {m} "
                 f"architectures, decay {decay}: a positive factor, as a sum instead of a mean), so it keeps its point")


# ----------------------------------------------------------------------------- the search

# What a search is made of. The grader cannot see inside the search, and a submission that carries a copy of the
# public table can reach the search's thresholds without learning (docs/nas.md, "What the checks certify"): the
# search's points are withheld, with a FLAG, unless these checks also pass on the same submission.
# Their rows ran in the unit checks' worker before any search (each search trains in a worker of its own).
SEARCH_PIECES = ("sampling_follows_the_controller", "sequence_log_prob_and_its_gradient",
                 "loss_gradient_is_reinforce_with_baseline")


def _search(worker, ctx, index: int) -> None:
    label = f"seed #{index + 1}"
    table = nas_table.load()
    budget = int(ctx.option("evaluation_budget"))
    server = SearchServer(table, draw_permutations(ctx.rng("relabelling", index)), budget,
                          ctx.option("target_flops"), ctx.option("alpha"), ctx.option("beta"))
    random_rewards = server.space_rewards[ctx.rng("random search", index).integers(0, space.SIZE, budget)]
    top_fraction = float(ctx.threshold("top_fraction"))
    top_rank = max(1, int(math.floor(top_fraction * space.SIZE)))
    top_reward = float(np.sort(server.space_rewards)[::-1][top_rank - 1])
    late_threshold = float(np.quantile(server.space_rewards, float(ctx.threshold("late_mean_quantile"))))
    # what a message may show of the thresholds: the public ones, never an instructor's override (nor what it implies)
    top_private = "thresholds.top_fraction" in ctx.private
    late_private = "thresholds.late_mean_quantile" in ctx.private
    shown_top = ctx.shown_threshold("top_fraction") if top_private else f"the top {top_fraction:.0%}, rank {top_rank}"
    shown_late = ctx.shown_threshold("late_mean_quantile") if late_private else f"{late_threshold:.4f}"
    greedy_row = None
    try:
        failing = ctx.failed(SEARCH_PIECES)  # their rows ran before, in the unit checks' worker
        training.train(worker, ctx, server, training.Run.of(ctx, index), served="the search's evaluations")
        greedy = as_array(worker.call("greedy", timeout=max(ctx.time_left(), 1.0)),
                          "greedy_architecture(controller) after the search", (len(space.CHOICES),), dtype=np.int64)
        expect(np.all((greedy >= 0) & (greedy < np.array(space.CHOICES))),
               f"greedy_architecture returned tokens out of range: {greedy.tolist()}")
        greedy_row = server.answer = server.decode(greedy)
        rank = int(server.space_ranks[greedy_row])
        ctx.metric(f"rank of the most probable architecture, {label}", rank, order="asc")
        ctx.note(f"{label}: most probable architecture {server.describe(greedy_row)}; random search with the same "
                 f"budget finds {expected_best(server.space_rewards, budget):.4f} on average")
        rewards = server.rewards
        late = float(rewards[len(rewards) // 2:].mean()) if len(rewards) >= 2 else float("nan")
        ctx.note(f"{label}: mean reward of the second half of the search {late:.4f} (threshold {shown_late}; "
                 f"random search's expected mean {server.space_rewards.mean():.4f})")
        expect(rank <= top_rank, f"{label}: the controller's most probable architecture is ranked {rank} of "
               f"{space.SIZE}; it must be within {shown_top}",
               hint="look at the search curve in your feedback: does the reward of the sampled architectures rise? "
                    "Tune the learning rate and the batch size, and use the whole budget")
        expect(len(rewards) >= 2, f"{label}: the search evaluated {len(rewards)} architecture(s); a search evaluates "
               "architectures", hint="evaluate the sampled architectures with search.evaluate(tokens)")
        expect(late >= late_threshold, f"{label}: the architectures evaluated in the second half of the search have a "
               f"mean reward of {late:.4f}, below {shown_late}: the search did not beat random search by enough",
               hint="the controller's samples should concentrate on good architectures as it learns")
        if failing:
            raise CheckFlagged(f"{label}: the search passes, but not its pieces: {', '.join(failing)}",
                               f"{label}: the search reaches the thresholds, but {', '.join(failing)} "
                               f"{'fails' if len(failing) == 1 else 'fail'} on your code; the grader cannot see "
                               "inside a search, so it credits one only with a checked sampler, sequence "
                               "log-probability and REINFORCE loss. Fix those checks; your instructor reviews "
                               "flagged rows")
    finally:
        ctx.note(server.summary())
        path = ctx.artifact(f"search_seed{index + 1}.png")
        if path is not None:
            try:
                plot_search(path, server, random_rewards, None if top_private else top_reward,
                            f"top {top_fraction:.0%} of the space", None if late_private else late_threshold,
                            f"{TITLE}, {label}", greedy_row)
            except Exception as exc:  # noqa: BLE001 - feedback must not change the grade
                ctx.note(f"(no search plot: {exc})")


@check(points=4, timeout=SEARCH_TIMEOUT, kind="training", per_seed=True, needs=SEARCH_PIECES)
def search(worker, ctx, seed_index):
    """Search the grader's space within the budget (one row per seed, each with its own relabelling of the
    choices): the greedy architecture is in the top few percent."""
    _search(worker, ctx, seed_index)
