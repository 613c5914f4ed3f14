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
        loses=("reinforce_baseline_unbiased",),
    ),
]
