"""Known buggy variants of the NAS reference (graders/variants.py explains the format).

CONFIG: the unit checks only (the search checks get too little time to start)."""

from graders.variants import Variant

CONFIG = """[nas]
evaluation_seconds = 1
[nas.checks.search_first_seed]
timeout = 2
[nas.checks.search_second_seed]
timeout = 2
"""

VARIANTS = [
    Variant(
        "log_prob_of_the_last_token_only",
        "sequence_log_prob keeps only the last decision's log-probability",
        edits=[("total = total + torch.log_softmax(", "total = torch.log_softmax(")],
        loses=("sequence_log_prob_and_its_gradient", "update_uses_the_baseline_before_the_batch"),
        messages={"sequence_log_prob_and_its_gradient": "last token only"},
    ),
    Variant(
        "log_prob_averaged_over_decisions",
        "sequence_log_prob averages the decisions' log-probabilities instead of summing them",
        edits=[("    return total\n    ### END SOLUTION", "    return total / len(controller.choices)\n    ### END SOLUTION")],
        loses=("sequence_log_prob_and_its_gradient",),
        messages={"sequence_log_prob_and_its_gradient": "averages"},
    ),
    Variant(
        "loss_sign_flipped",
        "the loss is +(R - b) log p: gradient ascent on the wrong sign",
        edits=[("return -((rewards.detach() - baseline) * log_probs).mean()",
                "return ((rewards.detach() - baseline) * log_probs).mean()")],
        loses=("loss_gradient_is_reinforce_with_baseline", "update_uses_the_baseline_before_the_batch"),
        messages={"loss_gradient_is_reinforce_with_baseline": "*less* likely"},
    ),
    Variant(
        "no_baseline",
        "the loss weighs each log-probability by the reward, not the reward less the baseline",
        edits=[("return -((rewards.detach() - baseline) * log_probs).mean()", "return -(rewards.detach() * log_probs).mean()")],
        loses=("loss_gradient_is_reinforce_with_baseline", "update_uses_the_baseline_before_the_batch"),
        messages={"loss_gradient_is_reinforce_with_baseline": "without the baseline"},
    ),
    Variant(
        "update_without_zero_grad",
        "reinforce_update never clears the gradients: each step carries every batch before it",
        edits=[("    optimizer.zero_grad()\n    loss.backward()", "    loss.backward()")],
        loses=("update_uses_the_baseline_before_the_batch",),
        messages={"update_uses_the_baseline_before_the_batch": "not cleared"},
    ),
    Variant(
        "train_drops_the_baseline_between_batches",
        "train() passes baseline=None to every update, so each batch subtracts its own mean",
        edits=[("baseline = reinforce_update(controller, optimizer, tokens, rewards, baseline, args.baseline_decay)",
                "reinforce_update(controller, optimizer, tokens, rewards, None, args.baseline_decay)")],
        loses=("update_uses_the_baseline_before_the_batch",),
        messages={"update_uses_the_baseline_before_the_batch": "not carried from one batch to the next"},
    ),
    Variant(
        "lstm_called_without_its_state",
        "Controller.step runs the LSTM cell from a zero state every time: no longer a recurrent controller",
        edits=[("h, c = self.cell(x, (h, c))", "h, c = self.cell(x)")],
        loses=("controller_emits_one_token_per_decision",),
        messages={"controller_emits_one_token_per_decision": "not recurrent"},
    ),
    Variant(
        "random_initial_state",
        "Controller.initial_state draws a random state on every call",
        edits=[("zeros = torch.zeros(n, self.start.shape[0], device=self.start.device)",
                "zeros = torch.randn(n, self.start.shape[0], device=self.start.device)")],
        loses=("controller_emits_one_token_per_decision",),
        messages={"controller_emits_one_token_per_decision": "different state"},
    ),
    Variant(
        "sampling_at_temperature_1_1",
        "sample_architectures draws from softmax(logits / 1.1) instead of softmax(logits)",
        edits=[("previous = torch.distributions.Categorical(logits=logits).sample()",
                "previous = torch.distributions.Categorical(logits=logits / 1.1).sample()")],
        loses=("sampling_follows_the_controller",),
        messages={"sampling_follows_the_controller": "chi-squared"},
    ),
    Variant(
        "baseline_decay_on_the_wrong_side",
        "the moving average weighs the new batch by decay and the old baseline by 1 - decay",
        edits=[("decay * baseline + (1.0 - decay) * mean", "(1.0 - decay) * baseline + decay * mean")],
        loses=("baseline_moving_average",),
        messages={"baseline_moving_average": "decay weighs the new rewards"},
    ),
    Variant(
        "reward_without_the_flops_term",
        "the reward is the accuracy alone",
        edits=[("return np.asarray(accuracy, dtype=np.float64) * ratio ** np.where(ratio <= 1.0, alpha, beta)",
                "return np.asarray(accuracy, dtype=np.float64)")],
        loses=("reward_formula",),
        messages={"reward_formula": "FLOPs factor is missing"},
    ),
    Variant(
        "reward_exponent_sign_flipped",
        "the FLOPs factor's exponent has the wrong sign",
        edits=[("ratio ** np.where(ratio <= 1.0, alpha, beta)", "ratio ** -np.where(ratio <= 1.0, alpha, beta)")],
        loses=("reward_formula",),
        messages={"reward_formula": "wrong sign"},
    ),
    Variant(
        "reward_alpha_and_beta_swapped",
        "beta below the target and alpha above it",
        edits=[("ratio ** np.where(ratio <= 1.0, alpha, beta)", "ratio ** np.where(ratio <= 1.0, beta, alpha)")],
        loses=("reward_formula",),
        messages={"reward_formula": "swapped"},
    ),
    Variant(
        "greedy_sampling_during_the_search",
        "sample_architectures takes each decision's argmax instead of drawing from its softmax",
        edits=[("previous = torch.distributions.Categorical(logits=logits).sample()", "previous = logits.argmax(dim=1)")],
        loses=("sampling_follows_the_controller",),
        messages={"sampling_follows_the_controller": "chi-squared"},
    ),
    Variant(
        "controller_ignores_the_previous_token",
        "the controller's input at every decision is the start vector, not the previous token's embedding",
        edits=[("x = self.start.expand(len(h), -1) if previous is None else self.embed[decision - 1](previous)",
                "x = self.start.expand(len(h), -1)")],
        loses=("controller_emits_one_token_per_decision",),
        messages={"controller_emits_one_token_per_decision": "do not depend"},
    ),
    Variant(
        "controller_never_learns",
        "train() runs the whole search with a learning rate of 0: every unit check passes, the controller stays "
        "at its initial distribution",
        edits=[("    optimizer = torch.optim.Adam(controller.parameters(), lr=args.learning_rate)",
                "    optimizer = torch.optim.Adam(controller.parameters(), lr=0.0)")],
        loses=("search_first_seed", "search_second_seed"),
        config="[nas]\nseeds = [0, 1]\n",
        slow=True,
    ),
]
