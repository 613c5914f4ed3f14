"""Known buggy variants of the policy-gradient reference (graders/variants.py explains the format)."""

from graders.variants import Variant

VARIANTS = [
    Variant(
        "q_wrong_horizon",
        "uses q with the full horizon H at every time step instead of q with H - t steps to go",
        edits=[("    q_t = q[H - np.arange(H)]\n", "    q_t = np.broadcast_to(q[H], (H, *q.shape[1:]))\n")],
        loses=("theorem_with_visit_counts", "unrolled_identity"),
    ),
    Variant(
        "values_one_step_short",
        "finite-horizon backward induction that stops one step short (v and q for H - 1 steps)",
        edits=[
            (
                "    for k in range(1, H + 1):\n        q[k] = R + P @ v[k - 1]\n",
                "    for k in range(1, H):\n        q[k] = R + P @ v[k - 1]\n",
            )
        ],
        loses=("finite_horizon_values", "theorem_with_visit_counts", "unrolled_identity"),
        messages={"theorem_with_visit_counts": "the check finite_horizon_values (finite_horizon_values:",
                  "unrolled_identity": "Probably not this check's own fault"},
    ),
    Variant(
        "mu_instead_of_eta",
        "weights the theorem by the normalised on-policy distribution mu instead of the visit counts eta",
        edits=[
            ("    grad = theorem_gradient(eta, q, pi)\n", "    grad = theorem_gradient(on_policy_distribution(eta), q, pi)\n")
        ],
        loses=("theorem_with_visit_counts",),
        messages={"theorem_with_visit_counts": "sum(eta)"},
    ),
    Variant(
        "jacobian_no_outer",
        "softmax Jacobian without its -pi pi^T term (only diag(pi))",
        edits=[
            (
                "    jac = pi[:, :, None] * np.eye(A)[None, :, :] - pi[:, :, None] * pi[:, None, :]\n",
                "    jac = pi[:, :, None] * np.eye(A)[None, :, :]\n",
            )
        ],
        loses=(
            "softmax_jacobian",
            "theorem_with_visit_counts",
            "theorem_up_to_normalisation",
            "unrolled_identity",
            "baseline_term_vanishes",
        ),
        messages={"baseline_term_vanishes": "the check softmax_jacobian (softmax_jacobian: d pi(a|s)",
                  "theorem_up_to_normalisation": "Probably not this check's own fault"},
    ),
    Variant(
        "action_dependent_baseline",
        "subtracts b_t(S_{t+1}), the baseline of the next state, which depends on the action A_t",
        edits=[
            (
                "        returns = returns - baseline[np.arange(T)[None, :], states]  # G_t - b_t(S_t)\n",
                "        next_states = np.concatenate([states[:, 1:], states[:, -1:]], axis=1)\n        returns = returns - baseline[np.arange(T)[None, :], next_states]  # b_t(S_{t+1})\n",
            )
        ],
        loses=("reinforce_baseline_unbiased", "baseline_lowers_variance"),
    ),
    Variant(
        "whole_return_at_every_step",
        "weights every step by the whole-episode return G_0 instead of G_t",
        edits=[
            (
                "    returns = np.cumsum(rewards[:, ::-1], axis=1)[:, ::-1]  # G_t\n",
                "    returns = np.repeat(rewards.sum(axis=1, keepdims=True), T, axis=1)  # G_0 at every t\n",
            )
        ],
        loses=("reinforce_unbiased", "reinforce_baseline_unbiased", "baseline_lowers_variance"),
        messages={"reinforce_unbiased": "whole episode's return G_0"},
    ),
    Variant(
        "time_zero_baseline_at_every_step",
        "subtracts the time-0 baseline b_0(S_t) at every step instead of b_t(S_t)",
        edits=[
            (
                "        returns = returns - baseline[np.arange(T)[None, :], states]  # G_t - b_t(S_t)\n",
                "        returns = returns - baseline[0][states]  # b_0(S_t)\n",
            )
        ],
        loses=("reinforce_baseline_unbiased", "baseline_lowers_variance"),
        messages={"reinforce_baseline_unbiased": "baseline of time 0"},
    ),
]
