"""Grader of the policy-gradient proof-check assignment (Sutton & Barto, section 13.2).

Every step of the proof the student writes is compared with the grader's own exact
answer on random finite MDPs drawn from the grading seeds (mdps.py: several sizes,
horizons and certain termination, unreachable states, single-action states, noisy
rewards). Gradients are checked against two witnesses (exact.py): autograd of the exact
J(theta) and central finite differences of J computed another way, to a relative 1e-6.
The REINFORCE estimators are tested for unbiasedness on episodes the grader samples
itself (stats.py); the test's false-fail rate and power are measured by
bench/policy_gradient_stats.py and recorded in docs/policy_gradient.md.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from graders.checks import CheckFailed, as_array, check, expect, expect_close
from graders.policy_gradient import exact, mdps, stats

TITLE = "The policy gradient theorem, checked step by step"
INSTRUCTOR_ONLY = ("graders.policy_gradient.exact",)  # the exact answers: never in a student kit
MC_CASES = ["horizon-7x3", "episodic-8x4"]  # the Monte-Carlo checks run on these
# Every student function here runs in well under a second; a call gets CALL_TIMEOUT
# seconds. A check's own limit is longer because it includes the grader's exact
# computations (torch), which are slow on a loaded machine.
CALL_TIMEOUT = 15
CHECK_TIMEOUT = 60
N_TERMS = 200  # terms of the unrolled series without a horizon: P_pi^200 < 0.85^200 < 1e-14
DEFAULTS = {
    "seeds": [0, 1],
    "episodes": 4000,  # sampled per Monte-Carlo case and seed
    "thresholds": {
        "relative_tolerance": 1e-6,  # for every exact quantity, relative to its largest entry
        # Nominal false-fail rate per unbiasedness test; a grading runs 2 tests x
        # len(MC_CASES) x len(seeds). The normal approximation is optimistic in the far
        # tail (skewed estimates), hence the margin: docs/policy_gradient.md.
        "unbiased_alpha": 1e-6,
        "max_variance_ratio": 1.0,  # total variance with the value baseline / without
    },
}
# What each setting means (python -m graders settings NAME)
HELP = {
    "episodes": "episodes sampled per Monte-Carlo case and seed (the REINFORCE checks)",
    "thresholds.relative_tolerance": "every exact quantity: tolerance relative to its largest entry",
    "thresholds.unbiased_alpha": "nominal false-fail rate of each unbiasedness test (docs/policy_gradient.md)",
    "thresholds.max_variance_ratio": "baseline_lowers_variance: variance with the value baseline over without, below",
}


# --- the grader's data, drawn once per seed ------------------------------------------------


@lru_cache(maxsize=64)
def _case(seed: int, name: str) -> mdps.Case:
    return mdps.random_case(mdps.CASE_BY_NAME[name], seed)


@lru_cache(maxsize=64)
def _exact(seed: int, name: str) -> dict:
    case = _case(seed, name)
    return exact.exact_quantities(case.mdp, case.theta)


@lru_cache(maxsize=16)
def _episodes(seed: int, name: str, n_episodes: int) -> dict:
    case = _case(seed, name)
    rng = np.random.default_rng([seed, mdps.CASES.index(case.spec), 1])
    return mdps.sample_episodes(case, n_episodes, rng)


def _cases(ctx, kind: str = "all") -> list[mdps.Case]:
    """The grading cases of every seed: all, only those with a horizon, or without."""
    names = [spec.name for spec in mdps.CASES
             if kind == "all" or (kind == "horizon") == (spec.horizon is not None)]
    return [_case(seed, name) for seed in ctx.seeds for name in names]


def _facts(case: mdps.Case) -> dict:
    return _exact(case.seed, case.spec.name)


def q_at_each_time(q: np.ndarray, H: int | None) -> np.ndarray:
    """q with H - t steps to go at time t (horizon), or q itself (stationary)."""
    return q if H is None else q[H - np.arange(H)]


def value_baseline(case: mdps.Case, T: int) -> np.ndarray:
    """b_t(s) = v_pi at time t (H - t steps to go), shape [T, S]: the grader's exact values."""
    v, H = _facts(case)["v"], case.mdp["H"]
    return v[H - np.arange(T)] if H is not None else np.tile(v, (T, 1))


def _call(worker, name: str, *args):
    return worker.call(name, *args, timeout=CALL_TIMEOUT)


def _close(got, want, what: str, ctx, hint: str = "", mask=None) -> np.ndarray:
    """Equal to a relative `relative_tolerance` of the largest entry of `want`."""
    want = np.asarray(want, dtype=np.float64)
    array = as_array(got, what, want.shape)
    if mask is not None:
        array, want = np.where(mask, array, 0.0), np.where(mask, want, 0.0)
    rtol = ctx.threshold("relative_tolerance")
    return expect_close(array, want, what, rtol=rtol, atol=rtol * max(np.abs(want).max(), 1e-12), hint=hint,
                        shown_tolerance=f"{ctx.shown_threshold('relative_tolerance')} x (|expected| + the largest "
                                        "|expected|)")


# The checks of the functions a student's later function calls (the reference's do): a later check that fails
# names them when they failed too (its own figure cannot be right then; docs/policy_gradient.md).
VALUES = ("softmax_policy", "softmax_jacobian", "finite_horizon_values", "episodic_values")


# --- 1. the softmax policy and its Jacobian --------------------------------------------------


@check(points=1, timeout=CHECK_TIMEOUT)
def softmax_policy(worker, ctx):
    """softmax_policy: a softmax over the valid actions, stable for large theta."""
    for case in _cases(ctx):
        valid = case.mdp["valid"]
        _close(_call(worker, "softmax_policy", case.theta, valid), _facts(case)["pi"], f"pi on {case.name}", ctx,
               hint="pi[s, a] = exp(theta[s, a]) / sum over the VALID actions b of s of exp(theta[s, b]); "
                    "invalid actions get probability 0")
    case = _cases(ctx)[0]
    big = 400.0 * case.theta
    want = exact.policy(torch.as_tensor(big), case.mdp["valid"]).numpy()
    _close(_call(worker, "softmax_policy", big, case.mdp["valid"]), want, "pi for theta with entries in the hundreds",
           ctx, hint="exp overflows beyond 709: subtract the largest logit of each state before exp")


@check(points=2, timeout=CHECK_TIMEOUT)
def softmax_jacobian(worker, ctx):
    """softmax_jacobian: d pi(a|s) / d theta[s, b] = pi(a|s) (1[a = b] - pi(b|s))."""
    for case in _cases(ctx):
        theta, valid = torch.as_tensor(case.theta), case.mdp["valid"]
        full = torch.autograd.functional.jacobian(lambda th, valid=valid: exact.policy(th, valid), theta).numpy()
        S = case.theta.shape[0]
        want = full[np.arange(S), :, np.arange(S), :]  # [S, A, A]: the block of each state
        _close(_call(worker, "softmax_jacobian", _facts(case)["pi"]), want, f"Jacobian on {case.name}", ctx,
               hint="per state the Jacobian is diag(pi_s) - pi_s pi_s^T; do not forget the outer product term")


# --- 2. exact values ---------------------------------------------------------------------------


@check(points=2, timeout=CHECK_TIMEOUT)
def finite_horizon_values(worker, ctx):
    """finite_horizon_values: backward induction, v[k] and q[k] with k steps to go."""
    for case in _cases(ctx, "horizon"):
        mdp, facts = case.mdp, _facts(case)
        got = _call(worker, "finite_horizon_values", mdp["P"], mdp["R"], facts["pi"], mdp["H"])
        expect(isinstance(got, list) and len(got) == 2, f"expected a pair (v, q), got {type(got).__name__}")
        hint = "v[0] = 0; for k = 1..H: q[k] = R + P v[k-1] and v[k] = sum_a pi q[k]"
        _close(got[0], facts["v"], f"v on {case.name}", ctx, hint=hint)
        _close(got[1], facts["q"], f"q on {case.name} (valid actions)", ctx, hint=hint, mask=mdp["valid"])


@check(points=2, timeout=CHECK_TIMEOUT)
def episodic_values(worker, ctx):
    """episodic_values: v from the linear system (I - P_pi) v = r_pi, then q = R + P v."""
    for case in _cases(ctx, "episodic"):
        mdp, facts = case.mdp, _facts(case)
        got = _call(worker, "episodic_values", mdp["P"], mdp["R"], facts["pi"])
        expect(isinstance(got, list) and len(got) == 2, f"expected a pair (v, q), got {type(got).__name__}")
        hint = "the rows of P sum to less than 1 (the rest is termination); solve (I - P_pi) v = r_pi"
        _close(got[0], facts["v"], f"v on {case.name}", ctx, hint=hint)
        _close(got[1], facts["q"], f"q on {case.name} (valid actions)", ctx, hint=hint, mask=mdp["valid"])


# --- 3. k-step probabilities and visit counts ------------------------------------------------------


@check(points=1, timeout=CHECK_TIMEOUT)
def k_step_probabilities(worker, ctx):
    """k_step_probabilities: M[k] = P_pi^k, from the identity at k = 0."""
    for case in _cases(ctx):
        n_steps = case.mdp["H"] or 6
        want = exact.k_step_probabilities(case.mdp, case.theta, n_steps)
        got = _call(worker, "k_step_probabilities", case.mdp["P"], _facts(case)["pi"], n_steps)
        _close(got, want, f"k-step probabilities on {case.name}", ctx,
               hint="M[0] is the identity; M[k] = M[k-1] @ P_pi with P_pi[s, x] = sum_a pi(a|s) P[s, a, x]")


@check(points=2, timeout=CHECK_TIMEOUT)
def visit_counts(worker, ctx):
    """visit_counts: eta[t, s] = Pr(S_t = s) with a horizon, expected visits eta[s] without."""
    for case in _cases(ctx):
        facts = _facts(case)
        got = as_array(_call(worker, "visit_counts", case.mdp, facts["pi"]), f"eta on {case.name}", facts["eta"].shape)
        hint = ("eta counts visits and is not normalised: its sum is the expected episode length"
                if np.allclose(got, facts["mu"], atol=1e-9) and not np.isclose(facts["eta"].sum(), 1.0)
                else "start from h; eta[t] = eta[t-1] @ P_pi with a horizon; solve eta (I - P_pi) = h without")
        _close(got, facts["eta"], f"eta on {case.name}", ctx, hint=hint)


# --- 4. the theorem ------------------------------------------------------------------------------------


@check(points=3, timeout=CHECK_TIMEOUT, needs=(*VALUES, "visit_counts"))
def theorem_with_visit_counts(worker, ctx):
    """policy_gradient_theorem equals grad J (autograd and finite differences)."""
    for case in _cases(ctx):
        facts = _facts(case)
        got = as_array(_call(worker, "policy_gradient_theorem", case.mdp, case.theta),
                       f"gradient on {case.name}", facts["grad"].shape)
        hint = "grad J = sum over (t,) s of eta * sum_a q grad pi(a|s), with the visit counts eta"
        if not np.isclose(facts["eta"].sum(), 1.0) and np.allclose(got * facts["eta"].sum(), facts["grad"],
                                                                    rtol=1e-6, atol=1e-9):
            hint = "your gradient is grad J / sum(eta): the theorem holds with eta; mu only gives the direction"
        elif case.mdp["H"] is not None:
            hint += "; at time t there are H - t steps to go, so use q[H - t]"
        _close(got, facts["grad"], f"gradient on {case.name} vs autograd of J", ctx, hint=hint)
        fd = exact.finite_difference_gradient(case.mdp, case.theta)
        _close(got, fd, f"gradient on {case.name} vs finite differences of J", ctx, hint=hint)


@check(points=2, timeout=CHECK_TIMEOUT, needs=("softmax_jacobian",))
def theorem_up_to_normalisation(worker, ctx):
    """With mu = eta / sum(eta) the theorem's sum is grad J / sum(eta): proportional, not equal."""
    factors = []
    for case in _cases(ctx):
        facts = _facts(case)
        q = q_at_each_time(facts["q"], case.mdp["H"])
        _close(_call(worker, "on_policy_distribution", facts["eta"]), facts["mu"], f"mu on {case.name}", ctx,
               hint="mu = eta / eta.sum()")
        _close(_call(worker, "theorem_gradient", facts["eta"], q, facts["pi"]), facts["grad"],
               f"theorem_gradient(eta, q, pi) on {case.name}", ctx,
               hint="sum over the leading axes and s of weights * sum_a q grad pi(a|s)")
        total = facts["eta"].sum()
        got = as_array(_call(worker, "theorem_gradient", facts["mu"], q, facts["pi"]),
                       f"theorem_gradient(mu, q, pi) on {case.name}", facts["grad"].shape)
        _close(got * total, facts["grad"], f"sum(eta) * theorem_gradient(mu, q, pi) on {case.name}", ctx,
               hint="theorem_gradient must be linear in the weights")
        factors.append(f"{case.spec.name}: {total:.3f}")
    ctx.note("sum(eta) (expected episode length) per case: " + ", ".join(factors))


@check(points=3, timeout=CHECK_TIMEOUT, needs=(*VALUES, "k_step_probabilities"))
def unrolled_identity(worker, ctx):
    """unrolled_value_gradient: grad v(s) = sum_x sum_k Pr(s -> x in k) sum_a q grad pi, per start s."""
    for case in _cases(ctx):
        got = _call(worker, "unrolled_value_gradient", case.mdp, case.theta, N_TERMS)
        hint = "sum over k of M[k] (k-step probabilities) times sum_a q grad pi"
        if case.mdp["H"] is not None:
            hint += "; after k steps there are H - k steps to go: q[H - k]"
        _close(got, exact.value_jacobian(case.mdp, case.theta),
               f"grad v(s) for every start state s on {case.name} vs autograd", ctx, hint=hint)
        _close(got, exact.finite_difference_value_jacobian(case.mdp, case.theta),
               f"grad v(s) for every start state s on {case.name} vs finite differences", ctx, hint=hint)


# --- 6. baselines -------------------------------------------------------------------------------------------


@check(points=2, timeout=CHECK_TIMEOUT, needs=("softmax_jacobian",))
def baseline_term_vanishes(worker, ctx):
    """action_weighted_gradient: sum_a b(s) grad pi(a|s) = 0; not so for b(s, a)."""
    for case in _cases(ctx):
        rng = np.random.default_rng([case.seed, mdps.CASES.index(case.spec), 2])
        pi, (S, A) = _facts(case)["pi"], case.theta.shape
        b_state = np.repeat(10.0 + 5.0 * rng.standard_normal((S, 1)), A, axis=1)
        got = as_array(_call(worker, "action_weighted_gradient", b_state, pi), f"baseline term on {case.name}", (S, A))
        expect_close(got, np.zeros((S, A)), f"sum_a b(s) grad pi(a|s) on {case.name} (b independent of a)",
                     rtol=0.0, atol=1e-9 * np.abs(b_state).max(),
                     hint="the Jacobian's rows sum to 0 over a: sum_a grad pi(a|s) = grad 1 = 0")
        b_action = 10.0 + 5.0 * rng.standard_normal((S, A))
        theta = torch.as_tensor(case.theta).requires_grad_(True)
        (want,) = torch.autograd.grad((torch.as_tensor(b_action) * exact.policy(theta, case.mdp["valid"])).sum(),
                                      theta)
        _close(_call(worker, "action_weighted_gradient", b_action, pi), want.numpy(),
               f"sum_a b(s, a) grad pi(a|s) on {case.name} (b depends on a)", ctx,
               hint="entry [s, b] is sum_a f[s, a] * d pi(a|s) / d theta[s, b]")


# --- 7. REINFORCE -----------------------------------------------------------------------------------------------


def _estimates(worker, ctx, case: mdps.Case, with_baseline: bool) -> tuple[np.ndarray, dict, np.ndarray | None]:
    n = int(ctx.option("episodes"))
    episodes = _episodes(case.seed, case.spec.name, n)
    baseline = value_baseline(case, episodes["states"].shape[1]) if with_baseline else None
    got = _call(worker, "reinforce_gradients", episodes, case.theta, case.mdp["valid"], baseline)
    return as_array(got, f"per-episode estimates on {case.name}", (n, *case.theta.shape)), episodes, baseline


ESTIMATE_MISTAKES = {
    "whole_return": "every step is weighted by the whole episode's return G_0 instead of the return from that "
                    "step on, G_t",
    "first_baseline": "the baseline of time 0, b_0(S_t), is subtracted at every step instead of b_t(S_t)",
}


def _per_episode(ctx, case: mdps.Case, samples: np.ndarray, episodes: dict, baseline, hint: str) -> None:
    """Each episode's estimate is a deterministic function of the episode: compare it with the grader's own."""
    want = exact.per_episode_estimates(episodes, case.theta, case.mdp["valid"], baseline)
    rtol = ctx.threshold("relative_tolerance")
    scale = rtol * max(float(np.abs(want).max()), 1e-12)
    wrong = np.flatnonzero(np.any(np.abs(samples - want) > scale, axis=(1, 2)))
    if not len(wrong):
        return
    for mistake, words in ESTIMATE_MISTAKES.items():
        if mistake == "first_baseline" and baseline is None:
            continue
        other = exact.per_episode_estimates(episodes, case.theta, case.mdp["valid"], baseline, weights=mistake)
        if np.allclose(samples, other, rtol=0, atol=scale):
            hint = f"{words}. {hint}"
    n = int(wrong[0])
    j = np.unravel_index(int(np.argmax(np.abs(samples[n] - want[n]))), want[n].shape)
    raise CheckFailed(f"on {case.name}, the estimates of {len(wrong)} of {len(samples)} episodes differ from the "
                      f"grader's. Episode {n} (length {int(episodes['lengths'][n])}): at theta[{j[0]}, {j[1]}] "
                      f"expected {want[n][j]:.6g}, got {samples[n][j]:.6g}; largest difference "
                      f"{float(np.abs(samples[n] - want[n]).max()):.3g}\nHint: {hint}")


def _unbiased(worker, ctx, with_baseline: bool, hint: str) -> None:
    """Per episode, exactly the grader's estimate; over episodes, unbiased (a second, statistical witness)."""
    alpha = ctx.threshold("unbiased_alpha")
    notes = []
    for seed in ctx.seeds:
        for name in MC_CASES:
            case = _case(seed, name)
            samples, episodes, baseline = _estimates(worker, ctx, case, with_baseline)
            _per_episode(ctx, case, samples, episodes, baseline, hint)
            result = stats.unbiasedness_test(samples, _facts(case)["grad"], alpha)
            if not result.passed:
                raise CheckFailed(f"on {case.name}, the estimates are biased: {result.describe()}\nHint: {hint}")
            notes.append(f"{case.name}: max |z| {result.max_abs_z:.2f} (limit {result.z_critical:.2f})")
    ctx.note("; ".join(notes))


@check(points=3, timeout=CHECK_TIMEOUT, needs=("softmax_policy",))
def reinforce_unbiased(worker, ctx):
    """reinforce_gradients without a baseline: each episode's estimate is the grader's, and their mean is grad J."""
    _unbiased(worker, ctx, False, "g = sum over the episode's real steps t of G_t (onehot(A_t) - pi(.|S_t)) in row "
                                  "S_t, with G_t = R_{t+1} + ... + R_T; padding steps (t >= length) do not count")


@check(points=3, timeout=CHECK_TIMEOUT, needs=("softmax_policy",))
def reinforce_baseline_unbiased(worker, ctx):
    """reinforce_gradients with a value baseline b_t(s): each episode's estimate is the grader's; still unbiased."""
    _unbiased(worker, ctx, True, "subtract baseline[t, S_t], the baseline of the state the action was taken in, at "
                                 "the same time t; a baseline that depends on the action (or on what follows it) "
                                 "adds bias")


@check(points=2, timeout=CHECK_TIMEOUT, needs=("softmax_policy", "reinforce_unbiased", "reinforce_baseline_unbiased"))
def baseline_lowers_variance(worker, ctx):
    """The value baseline lowers the total variance of the estimates, on the same episodes."""
    limit = ctx.threshold("max_variance_ratio")
    notes = []
    for seed in ctx.seeds:
        for name in MC_CASES:
            case = _case(seed, name)
            plain, episodes, _ = _estimates(worker, ctx, case, False)
            based, _, baseline = _estimates(worker, ctx, case, True)
            hint = "the variance is measured on your estimates, which must first be the REINFORCE estimates"
            _per_episode(ctx, case, plain, episodes, None, hint)
            _per_episode(ctx, case, based, episodes, baseline, hint)
            ratio = stats.total_variance(based) / max(stats.total_variance(plain), 1e-300)
            expect(ratio < limit, f"on {case.name}, total variance with the value baseline is {ratio:.3f} times "
                                  f"the variance without (should be below {ctx.shown_threshold('max_variance_ratio')})",
                   "subtract baseline[t, S_t] from G_t for every step t of the episode")
            notes.append(f"{case.name}: variance ratio {ratio:.3f}")
    ctx.note("; ".join(notes))
