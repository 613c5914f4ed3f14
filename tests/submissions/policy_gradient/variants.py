"""The known buggy variants of the policy-gradient reference, one bug each.

Each variant is the reference with one textual replacement (which must apply exactly
once), so the variants follow the reference when it changes. Used by
tests/test_policy_gradient.py (each loses the check that targets it) and by
bench/policy_gradient_stats.py (power of the unbiasedness test). To grade one by hand:

    python tests/submissions/policy_gradient/variants.py jacobian_no_outer > /tmp/bug.py
    python -m graders grade policy_gradient /tmp/bug.py
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
REFERENCE = HERE.parents[2] / "solutions" / "policy_gradient" / "policy_gradient.py"

# name -> (the bug in words, reference text, buggy text, the check that must fail)
VARIANTS: dict[str, tuple[str, str, str, str]] = {
    "q_wrong_horizon": (
        "uses q with the full horizon H at every time step instead of q with H - t steps to go",
        "    q_t = q[H - np.arange(H)]\n",
        "    q_t = np.broadcast_to(q[H], (H, *q.shape[1:]))\n",
        "theorem_with_visit_counts",
    ),
    "values_one_step_short": (
        "finite-horizon backward induction that stops one step short (v and q for H - 1 steps)",
        "    for k in range(1, H + 1):\n        q[k] = R + P @ v[k - 1]\n",
        "    for k in range(1, H):\n        q[k] = R + P @ v[k - 1]\n",
        "finite_horizon_values",
    ),
    "mu_instead_of_eta": (
        "weights the theorem by the normalised on-policy distribution mu instead of the visit counts eta",
        "    grad = theorem_gradient(eta, q, pi)\n",
        "    grad = theorem_gradient(on_policy_distribution(eta), q, pi)\n",
        "theorem_with_visit_counts",
    ),
    "jacobian_no_outer": (
        "softmax Jacobian without its -pi pi^T term (only diag(pi))",
        "    jac = pi[:, :, None] * np.eye(A)[None, :, :] - pi[:, :, None] * pi[:, None, :]\n",
        "    jac = pi[:, :, None] * np.eye(A)[None, :, :]\n",
        "softmax_jacobian",
    ),
    "action_dependent_baseline": (
        "subtracts b_t(S_{t+1}), the baseline of the next state, which depends on the action A_t",
        "        returns = returns - baseline[np.arange(T)[None, :], states]  # G_t - b_t(S_t)\n",
        "        next_states = np.concatenate([states[:, 1:], states[:, -1:]], axis=1)\n"
        "        returns = returns - baseline[np.arange(T)[None, :], next_states]  # b_t(S_{t+1})\n",
        "reinforce_baseline_unbiased",
    ),
}


def variant_source(name: str) -> str:
    """The reference's source with the variant's bug in it."""
    _words, old, new, _target = VARIANTS[name]
    source = REFERENCE.read_text()
    if source.count(old) != 1:
        raise ValueError(f"variant {name}: the reference text to replace occurs {source.count(old)} times")
    return source.replace(old, new)


if __name__ == "__main__":
    import sys

    print(variant_source(sys.argv[1]), end="")
