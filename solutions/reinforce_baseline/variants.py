"""Known buggy variants of the REINFORCE-with-baseline reference (graders/variants.py explains the format)."""

from graders.variants import Variant

VARIANTS = [
    Variant(
        "baseline_not_detached",
        "the advantages carry gradient into the value network",
        edits=[("return returns - values.detach()", "return returns - values")],
        loses=("policy_loss_gradient_reaches_only_the_policy", "advantages_on_a_scripted_batch"),
        messages={
            "policy_loss_gradient_reaches_only_the_policy": "w.r.t. the value network is not zero",
            "advantages_on_a_scripted_batch": "carry a gradient",
        },
    ),
    Variant(
        "baseline_sees_the_action",
        "the value network is fed the action as well as the state",
        edits=[
            ("value_net = ValueNetwork(obs_dim, args.hidden_size)", "value_net = ValueNetwork(obs_dim + 1, args.hidden_size)"),
            (
                "values = value_net(obs).squeeze(-1)",
                "values = value_net(torch.cat([obs, actions.float().unsqueeze(1)], dim=1)).squeeze(-1)",
            ),
        ],
        loses=(
            "policy_loss_gradient_reaches_only_the_policy",
            "value_loss_is_mse_and_reaches_only_the_value_network",
            "baseline_reduces_variance",
            "normalized_advantages_are_standardized",
        ),
    ),
    Variant(
        "advantages_sign_flipped",
        "advantages v - G instead of G - v",
        edits=[("return returns - values.detach()", "return values.detach() - returns")],
        loses=("advantages_on_a_scripted_batch", "policy_loss_gradient_reaches_only_the_policy",
               "normalized_advantages_are_standardized"),
        messages={"advantages_on_a_scripted_batch": "the advantage is G - v"},
    ),
    Variant(
        "policy_loss_ignores_the_baseline",
        "the policy loss uses the returns, not the advantages",
        edits=[
            (
                "return policy_loss(policy(obs), actions, advantages), value_loss(values, returns)",
                "return policy_loss(policy(obs), actions, returns), value_loss(values, returns)",
            )
        ],
        loses=("baseline_reduces_variance", "policy_loss_gradient_reaches_only_the_policy",
               "normalized_advantages_are_standardized"),
    ),
    Variant(
        "value_loss_not_squared",
        "the value loss is the absolute error, not the squared error",
        edits=[("return ((values - returns) ** 2).mean()", "return (values - returns).abs().mean()")],
        loses=("value_loss_is_mse_and_reaches_only_the_value_network",),
        messages={"value_loss_is_mse_and_reaches_only_the_value_network": "absolute error"},
    ),
    Variant(
        "advantages_normalized_by_the_variance",
        "normalize_advantages divides by the variance instead of the standard deviation",
        edits=[("advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)",
                "advantages = (advantages - advantages.mean()) / (advantages.var() + 1e-8)")],
        loses=("normalized_advantages_are_standardized",),
        messages={"normalized_advantages_are_standardized": "variance"},
    ),
    Variant(
        "entropy_bonus_in_losses",
        "adds an entropy bonus to the policy loss inside losses()",
        edits=[("    return policy_loss(policy(obs), actions, advantages), value_loss(values, returns)",
                "    entropy = torch.distributions.Categorical(logits=policy(obs)).entropy().mean()\n"
                "    return policy_loss(policy(obs), actions, advantages) - 0.01 * entropy, value_loss(values, returns)")],
        loses=("policy_loss_gradient_reaches_only_the_policy", "normalized_advantages_are_standardized"),
        messages={"policy_loss_gradient_reaches_only_the_policy": "entropy bonus with coefficient 0.01"},
    ),
    Variant(
        "value_loss_huber",
        "the value loss is the Huber loss (F.smooth_l1_loss), as in pytorch's actor-critic example",
        edits=[("return ((values - returns) ** 2).mean()", "return torch.nn.functional.smooth_l1_loss(values, returns)")],
        loses=("value_loss_is_mse_and_reaches_only_the_value_network",),
        messages={"value_loss_is_mse_and_reaches_only_the_value_network": "Huber"},
    ),
    Variant(
        "value_network_never_trained",
        "train() returns a value network that never learned (a fresh one; the policy trains as the reference's)",
        edits=[("    return policy, value_net\n", "    return policy, ValueNetwork(obs_dim, args.hidden_size).to(device)\n")],
        loses=("trained_policy_first_seed", "trained_policy_second_seed"),
        messages={"trained_policy_first_seed": "value network has not learned",
                  "trained_policy_second_seed": "value network has not learned"},
        config="[reinforce_baseline]\nevaluation_seconds = 60\n",
        slow=True,
    ),
]
