"""Known buggy variants of the REINFORCE reference (graders/variants.py explains the format)."""

from graders.variants import Variant

VARIANTS = [
    Variant(
        "returns_not_discounted_from_the_end",
        "computes the returns forwards, from the start of the episode",
        edits=[("for t in reversed(range(len(rewards))):", "for t in range(len(rewards)):")],
        loses=("discounted_returns",),
    ),
    Variant(
        "loss_sign_flipped",
        "the loss is +G log pi: gradient ascent on the wrong sign",
        edits=[("return -(returns.detach() * log_probs).mean()", "return (returns.detach() * log_probs).mean()")],
        loses=("loss_gradient_is_reinforce",),
        messages={"loss_gradient_is_reinforce": "less* likely"},
    ),
    Variant(
        "loss_normalizes_the_returns",
        "standardizes the returns inside the loss, although the caller already scaled them",
        edits=[("return -(returns.detach() * log_probs).mean()",
                "returns = (returns - returns.mean()) / (returns.std() + 1e-8)\n"
                "    return -(returns.detach() * log_probs).mean()")],
        loses=("loss_gradient_is_reinforce",),
        messages={"loss_gradient_is_reinforce": "normalizes the returns itself"},
    ),
    Variant(
        "entropy_bonus_in_the_loss",
        "adds an entropy bonus inside reinforce_loss",
        edits=[("return -(returns.detach() * log_probs).mean()",
                "entropy = torch.distributions.Categorical(logits=logits).entropy().mean()\n"
                "    return -(returns.detach() * log_probs).mean() - 0.01 * entropy")],
        loses=("loss_gradient_is_reinforce",),
        messages={"loss_gradient_is_reinforce": "entropy bonus with coefficient 0.01"},
    ),
    Variant(
        "softmax_applied_twice",
        "takes log_softmax of the probabilities instead of the logits",
        edits=[("log_probs = torch.log_softmax(logits, dim=1)", "log_probs = torch.log_softmax(torch.softmax(logits, dim=1), dim=1)")],
        loses=("loss_gradient_is_reinforce",),
        messages={"loss_gradient_is_reinforce": "softmax to probabilities"},
    ),
    Variant(
        "returns_normalized_in_discounted_returns",
        "standardizes the returns inside discounted_returns (as the pytorch example's finish_episode does)",
        edits=[("        returns[t] = running\n    return returns\n",
                "        returns[t] = running\n    return (returns - returns.mean()) / (returns.std() + 1e-8)\n")],
        loses=("discounted_returns",),
        messages={"discounted_returns": "returned the returns normalized"},
    ),
    Variant(
        "log_probs_of_the_wrong_actions",
        "takes the log-probability of the action not taken",
        edits=[(".gather(1, actions.long().unsqueeze(1))", ".gather(1, (1 - actions.long()).unsqueeze(1))")],
        loses=("loss_gradient_is_reinforce",),
    ),
    Variant(
        "greedy_actions_during_training",
        "samples the argmax action during training: no exploration",
        edits=[
            ("return torch.distributions.Categorical(logits=logits, validate_args=False).sample()", "return logits.argmax(dim=1)")
        ],
        loses=("sampled_actions_follow_the_policy",),
        messages={"sampled_actions_follow_the_policy": "chi-squared"},
    ),
]
