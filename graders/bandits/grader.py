"""Grader of the bandits assignment (Sutton & Barto, chapter 2).

Unit checks feed scripted actions and rewards and compare every estimate with the
grader's own arithmetic; statistical checks test exploration and tie-breaking with
false-fail rates of about 1e-6 each; the testbed checks play each method on a testbed of
its own (a stream named by the check, a fresh worker), hold every step's actions to the
method the check names (testbed.Rule: the grader keeps that method's estimates from what
it served), and compare what the grader measured with thresholds set from the
reference's distribution over 100 seeds (bench/bandits_thresholds.py, docs/bandits.md).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from graders.bandits.testbed import TIE_TOLERANCE, AnyRule, Rule, Testbed, gradient_states, maximal
from graders.checks import CheckFailed, as_array, check, expect, expect_close

TITLE = "Multi-armed bandits: epsilon-greedy, optimistic values, UCB, gradient bandit"
K = 10
FALSE_FAIL = 1e-6  # per statistical test
DEFAULTS = {
    "seeds": [0],
    "testbed_runs": 2000,
    "testbed_steps": 1000,
    "late_steps": 100,  # metrics average over the last 100 steps
    # Reference mean - 4 std over 100 seeds, rounded down (bench/bandits_thresholds.py, docs/bandits.md).
    "thresholds": {
        "epsilon_greedy_reward": 1.31,
        "epsilon_greedy_optimal": 0.77,
        "optimistic_optimal": 0.82,
        "ucb_reward": 1.43,
        "gradient_baseline_optimal": 0.82,
        "gradient_no_baseline_optimal": 0.44,
    },
}
# What each setting means (python -m graders settings NAME)
HELP = {
    "testbed_runs": "runs of each testbed check (the figures average over them)",
    "testbed_steps": "steps of each testbed run",
    "late_steps": "the last steps of a run whose average reward or optimal-action fraction is compared",
    "thresholds.epsilon_greedy_reward": "testbed_epsilon_greedy: average reward over the late steps, at least",
    "thresholds.epsilon_greedy_optimal": "testbed_epsilon_greedy: fraction of optimal actions over the late steps",
    "thresholds.optimistic_optimal": "testbed_optimistic_greedy: fraction of optimal actions over the late steps",
    "thresholds.ucb_reward": "testbed_ucb: average reward over the late steps, at least",
    "thresholds.gradient_baseline_optimal": "testbed_gradient_with_baseline: fraction of optimal actions",
    "thresholds.gradient_no_baseline_optimal": "testbed_gradient_without_baseline: fraction of optimal actions",
}
TESTBED_TIMEOUT = {"cpu": 60, "cuda": 60}


def _agent(worker, class_name: str, **kwargs) -> int:
    return worker.call("make_agent", class_name, kwargs)


def _scripted_steps(rng: np.random.Generator, n_runs: int, k: int, steps: int, mean: float = 0.0):
    actions = rng.integers(0, k, (steps, n_runs))
    rewards = rng.normal(mean, 1.0, (steps, n_runs))
    return actions, rewards


STATE_RTOL = 1e-5  # of the largest estimate: float32 estimates are off by about 1e-7 of it (bench/bandits_idioms.py)


def _compare_states(states, expected, what: str, hint: str) -> None:
    """Each state against the grader's arithmetic, to STATE_RTOL of the largest value of the array (float32
    estimates, or another order of the same operations, differ in the last bits of the largest terms; the bugs
    the unit checks name are off by 1e-3 and more)."""
    expect(isinstance(states, list) and len(states) == len(expected),
           f"{what}: expected {len(expected)} states after the scripted steps, got {type(states).__name__}")
    for step, (got, want) in enumerate(zip(states, expected), start=1):
        for name, value in want.items():
            expect(isinstance(got, dict) and name in got, f"{what}: the agent has no attribute '{name}'")
            expect_close(got[name], value, f"{what}, {name} after scripted step {step}", rtol=STATE_RTOL,
                         atol=STATE_RTOL * float(np.max(np.abs(value))) + 1e-8, hint=hint)


def _chi_squared(counts: np.ndarray, what: str, hint: str) -> None:
    expected = np.full(len(counts), counts.sum() / len(counts))
    statistic, p = stats.chisquare(counts, expected)
    expect(p > FALSE_FAIL, f"{what}: counts per arm {counts.tolist()} are not uniform "
           f"(chi-squared {statistic:.1f}, p = {p:.2g})", hint)


@check(points=1)
def argmax_breaks_ties_at_random(worker, ctx):
    """argmax_random_ties: exact on unique maxima, uniform over tied maxima."""
    values = ctx.rng("argmax").normal(size=(50, K))
    got = as_array(worker.call("argmax_random_ties", values, ctx.worker_seed("argmax")), "argmax of unique maxima", (50,))
    expect_close(got, values.argmax(axis=1), "argmax of rows with one maximum")
    tied = np.tile([1.0, 0.0, 1.0, 1.0], (30000, 1))
    got = as_array(worker.call("argmax_random_ties", tied, ctx.worker_seed("ties")), "argmax of tied rows", (30000,),
                   dtype=np.int64)
    expect(set(np.unique(got)) <= {0, 2, 3}, f"rows [1, 0, 1, 1] gave arms {sorted(set(got.tolist()))}",
           "only maximal arms may be chosen")
    _chi_squared(np.bincount(got, minlength=4)[[0, 2, 3]], "rows [1, 0, 1, 1]",
                 "np.argmax always takes the first maximum; choose uniformly among all maxima")


@check(points=2)
def sample_average_update(worker, ctx):
    """EpsilonGreedy.update with step_size=None: Q += (R - Q) / N."""
    actions, rewards = _scripted_steps(ctx.rng("sample average"), n_runs=3, k=4, steps=12)
    agent = _agent(worker, "EpsilonGreedy", n_runs=3, k=4, epsilon=0.1, seed=ctx.worker_seed("sample average"))
    Q, N, expected = np.zeros((3, 4)), np.zeros((3, 4)), []
    for a, r in zip(actions, rewards):
        N[np.arange(3), a] += 1
        Q[np.arange(3), a] += (r - Q[np.arange(3), a]) / N[np.arange(3), a]
        expected.append({"Q": Q.copy(), "N": N.copy()})
    _compare_states(worker.call("scripted_run", agent, actions, rewards), expected, "sample averages",
                    "increment N first, then Q += (R - Q) / N (the average of all rewards of that arm)")


@check(points=2)
def constant_step_size_and_optimistic_start(worker, ctx):
    """EpsilonGreedy with step_size=0.1 and initial_value=5: Q1 = 5, Q += 0.1 (R - Q)."""
    actions, rewards = _scripted_steps(ctx.rng("constant step"), n_runs=3, k=4, steps=12)
    agent = _agent(worker, "EpsilonGreedy", n_runs=3, k=4, epsilon=0.0, step_size=0.1, initial_value=5.0,
                   seed=ctx.worker_seed("constant step"))
    _compare_states([worker.call("agent_state", agent)], [{"Q": np.full((3, 4), 5.0)}], "before any step",
                    "initial_value sets Q_1 for every arm")
    Q, expected = np.full((3, 4), 5.0), []
    for a, r in zip(actions, rewards):
        Q[np.arange(3), a] += 0.1 * (r - Q[np.arange(3), a])
        expected.append({"Q": Q.copy()})
    _compare_states(worker.call("scripted_run", agent, actions, rewards), expected, "constant step size",
                    "with a step_size, Q += step_size * (R - Q), whatever N is")


@check(points=2)
def exploration_frequency(worker, ctx):
    """A non-greedy arm is chosen with probability epsilon (k - 1) / k; never with epsilon = 0. Greedy arms are those
    the testbed counts as maximal (within its TIE_TOLERANCE: ties taken with np.isclose are greedy too)."""
    n_runs, rng = 200_000, ctx.rng("exploration")
    Q = rng.normal(size=(n_runs, K))
    top = maximal(Q)
    for epsilon in (0.1, 0.0):
        agent = _agent(worker, "EpsilonGreedy", n_runs=n_runs, k=K, epsilon=epsilon,
                       seed=ctx.worker_seed(f"exploration {epsilon}"))
        worker.call("set_agent_state", agent, {"Q": Q})
        actions = as_array(worker.call("agent_act", agent), f"actions with epsilon={epsilon}", (n_runs,),
                           dtype=np.int64)
        expect(actions.min() >= 0 and actions.max() < K, f"actions outside 0..{K - 1}")
        away = ~top[np.arange(n_runs), actions]
        rate, want = float(np.mean(away)), float(np.mean(epsilon * (K - top.sum(axis=1)) / K))
        tolerance = stats.norm.isf(FALSE_FAIL / 2) * np.sqrt(max(want * (1 - want), 1e-12) / n_runs)
        expect(abs(rate - want) <= tolerance,
               f"epsilon={epsilon}: non-greedy actions in {rate:.4f} of runs, expected {want:.4f} +- {tolerance:.4f}",
               "explore with probability epsilon, choosing uniformly among all k arms (the greedy one included)")
        if epsilon > 0:  # each exploring run draws its own arm, any of the k
            counts = np.bincount(actions[away], minlength=K)
            others = ~top[away]  # where a run that left its greedy arms may go, uniformly
            expected = (others / others.sum(axis=1, keepdims=True)).sum(axis=0)
            statistic = float(np.sum((counts - expected) ** 2 / expected))
            p = stats.chi2.sf(statistic, K - 1)
            expect(p > FALSE_FAIL, f"epsilon={epsilon}: the non-greedy arms chosen, {counts.tolist()}, are not uniform "
                   f"over the arms (chi-squared {statistic:.0f}, p = {p:.2g})",
                   "each exploring run draws its own arm uniformly from all k (rng.integers(0, k, n_runs)); not one "
                   "arm for every run, and not a range that leaves out the last arm")


@check(points=1)
def greedy_ties_are_uniform(worker, ctx):
    """With equal estimates, the greedy choice is uniform over the arms (not always arm 0)."""
    n_runs = 50_000
    agent = _agent(worker, "EpsilonGreedy", n_runs=n_runs, k=K, epsilon=0.0, seed=ctx.worker_seed("greedy ties"))
    actions = as_array(worker.call("agent_act", agent), "first actions", (n_runs,), dtype=np.int64)
    expect(actions.min() >= 0 and actions.max() < K, f"actions outside 0..{K - 1}")
    _chi_squared(np.bincount(actions, minlength=K), "first greedy actions with all Q equal",
                 "break ties among maximal estimates at random (argmax_random_ties)")


@check(points=1)
def ucb_tries_every_arm_first(worker, ctx):
    """UCB: an untried arm counts as maximising, so the first k steps try every arm once (in any order)."""
    n_runs, rng = 5000, ctx.rng("ucb untried")
    agent = _agent(worker, "UCB", n_runs=n_runs, k=K, c=2.0, seed=ctx.worker_seed("ucb untried"))
    chosen = []
    for _ in range(K):
        actions = as_array(worker.call("agent_act", agent), "UCB actions", (n_runs,), dtype=np.int64)
        worker.call("agent_update", agent, actions, rng.normal(size=n_runs))
        chosen.append(actions)
    chosen = np.sort(np.array(chosen).T, axis=1)
    broken = int(np.sum(np.any(chosen != np.arange(K), axis=1)))
    expect(broken == 0, f"in {broken} of {n_runs} runs the first {K} actions did not try every arm",
           "treat N(a) = 0 as maximising: untried arms first")
    state = worker.call("agent_state", agent)
    t = state.get("t") if isinstance(state, dict) else None
    expect(t == K, f"after {K} calls of act() and update(), self.t is {t!r}, expected {K}",
           "count the steps in act() only: t is the number of the step being chosen")


def _discriminating_states(rng: np.random.Generator, n_runs: int, t: int, c: float) -> tuple[np.ndarray, np.ndarray]:
    """States a run can reach after t - 1 steps (every arm tried, the N summing to t - 1) whose UCB choice
    at step t differs from the choice with t - 1 (even runs) or t + 1 (odd runs): an off-by-one in t
    fails half of them.

    Two arms i, j with N_i != N_j decide: with their scores Q + c sqrt(ln u / N) differing by D_u,
    Q_i - Q_j is set so that D_t = eps and D_u = -eps at the other u; the other arms lie far below.
    """
    runs = np.arange(n_runs)
    N = 1 + rng.multinomial(t - 1 - K, np.ones(K) / K, size=n_runs)
    i, j = N.argmax(axis=1), N.argmin(axis=1)

    def gap(u):  # bonus of arm i minus bonus of arm j at step u
        return c * (np.sqrt(np.log(u) / N[runs, i]) - np.sqrt(np.log(u) / N[runs, j]))

    other = np.where(runs % 2 == 0, t - 1, t + 1)
    eps = (gap(t) - gap(other)) / 2
    Q = np.zeros((n_runs, K))
    Q[runs, j] = rng.normal(size=n_runs)
    Q[runs, i] = Q[runs, j] - gap(t) + eps
    low = np.minimum(Q[runs, i], Q[runs, j]) - 10.0
    keep = np.zeros((n_runs, K), dtype=bool)
    keep[runs, i] = keep[runs, j] = True
    return np.where(keep, Q, low[:, None] + rng.normal(size=(n_runs, K))), N


@check(points=2)
def ucb_selection(worker, ctx):
    """UCB: argmax Q + c sqrt(ln t / N), with t the number of the step being chosen, on states a run can reach."""
    n_runs, c, rng = 300, 1.5, ctx.rng("ucb selection")
    for steps_so_far in (K + 1, K + 3, 2 * K, 3 * K):
        Q, N = _discriminating_states(rng, n_runs, steps_so_far + 1, c)
        agent = _agent(worker, "UCB", n_runs=n_runs, k=K, c=c, seed=ctx.worker_seed(f"ucb selection {steps_so_far}"))
        worker.call("set_agent_state", agent, {"Q": Q, "N": N, "t": steps_so_far})
        got = as_array(worker.call("agent_act", agent), "UCB actions", (n_runs,))
        want = (Q + c * np.sqrt(np.log(steps_so_far + 1) / N)).argmax(axis=1)
        wrong = int(np.sum(got != want))
        expect(wrong == 0, f"after {steps_so_far} steps (self.t = {steps_so_far}, the N of each run summing to "
               f"{steps_so_far}), UCB chose another arm than argmax Q + c sqrt(ln t / N) with t = {steps_so_far + 1} "
               f"in {wrong} of {n_runs} runs", "act() increments self.t first, then uses ln(self.t) with the natural "
               "log; update() changes Q and N only")


@check(points=1)
def gradient_bandit_policy(worker, ctx):
    """GradientBandit.policy is softmax(H), finite even for large preferences."""
    H = ctx.rng("softmax").normal(scale=1000.0, size=(20, K))
    agent = _agent(worker, "GradientBandit", n_runs=20, k=K, step_size=0.1)
    worker.call("set_agent_state", agent, {"H": H})
    z = np.exp(H - H.max(axis=1, keepdims=True))
    expect_close(worker.call("agent_policy", agent), z / z.sum(axis=1, keepdims=True), "softmax(H)",
                 rtol=1e-6, atol=1e-9, hint="subtract each row's maximum before np.exp")


def _gradient_update(worker, ctx, baseline: bool) -> None:
    actions, rewards = _scripted_steps(ctx.rng(f"gradient update {baseline}"), n_runs=3, k=4, steps=10, mean=4.0)
    agent = _agent(worker, "GradientBandit", n_runs=3, k=4, step_size=0.1, baseline=baseline,
                   seed=ctx.worker_seed(f"gradient update {baseline}"))
    states = worker.call("scripted_run", agent, actions, rewards)
    hint = ("update every arm: H(a) += alpha (R - baseline)(1{a = A} - pi(a)), with pi the policy before this "
            "update" + ("; the baseline is the average of the rewards so far (this one included) or of the "
                        "preceding ones (R_1 at the first step)" if baseline else "; without a baseline, R itself "
                                                                                  "scales the step"))
    what = f"gradient bandit (baseline={baseline})"
    try:
        _compare_states(states, gradient_states(actions, rewards, 4, 0.1, baseline, preceding=False), what, hint)
    except CheckFailed:
        if not baseline:
            raise
        _compare_states(states, gradient_states(actions, rewards, 4, 0.1, baseline, preceding=True), what, hint)


@check(points=1)
def gradient_bandit_update_without_baseline(worker, ctx):
    """Every arm's preference moves: H += alpha R (1{a = A} - pi), act() then update() at each step."""
    _gradient_update(worker, ctx, baseline=False)


@check(points=1)
def gradient_bandit_update_with_baseline(worker, ctx):
    """With the average-reward baseline: H += alpha (R - mean R) (1{a = A} - pi)."""
    _gradient_update(worker, ctx, baseline=True)


def _play(worker, ctx, check_name: str, class_name: str, rule: Rule | AnyRule, mean: float = 0.0, **kwargs) -> Testbed:
    """Play the named class on a testbed of this check's own (its own random stream), in a fresh
    worker, holding every step's actions to the rule of the method the check names."""
    runs, steps = ctx.option("testbed_runs"), ctx.option("testbed_steps")
    testbed = Testbed(runs, K, steps, ctx.rng(f"testbed {check_name}"), mean=mean, rule=rule)
    agent = _agent(worker, class_name, n_runs=runs, k=K, seed=ctx.worker_seed(f"testbed {check_name}"), **kwargs)
    worker.call("play_testbed", agent, steps, callbacks={"pull": testbed.pull})
    expect(testbed.finished(), f"the agent stopped after {len(testbed.average_reward)} of {steps} steps")
    verdict = rule.verdict(FALSE_FAIL)
    expect(verdict is None, f"{class_name} did not play as {rule.describe()}: {verdict}",
           "the testbed checks credit the method they name; the unit checks above say which part is off. Rounding "
           f"is not an error: a score within {TIE_TOLERANCE:g} of the best (relative to 1 + |best|) counts as a tie, "
           "so an action further below is one the method would not take; compare your scores at the step named")
    return testbed


def _expect_at_least(ctx, value: float, threshold: str, what: str, hint: str) -> None:
    limit, shown = ctx.threshold(threshold), ctx.shown_threshold(threshold, ".3f")
    ctx.note(f"{what}: {value:.3f} (threshold {shown})")
    expect(value >= limit, f"{what} is {value:.3f}, below the threshold {shown}", hint)


@check(points=2, kind="training", timeout=TESTBED_TIMEOUT,
       needs=("argmax_breaks_ties_at_random", "sample_average_update", "exploration_frequency"))
def testbed_epsilon_greedy(worker, ctx):
    """Epsilon = 0.1, sample averages, on the grader's 10-armed testbed (figure 2.2)."""
    testbed = _play(worker, ctx, "testbed_epsilon_greedy", "EpsilonGreedy", Rule("epsilon_greedy", epsilon=0.1),
                    epsilon=0.1)
    late = ctx.option("late_steps")
    _expect_at_least(ctx, testbed.late_average_reward(late), "epsilon_greedy_reward",
                     f"average reward over the last {late} steps", "compare with Sutton & Barto figure 2.2")
    _expect_at_least(ctx, testbed.late_optimal_fraction(late), "epsilon_greedy_optimal",
                     f"fraction of optimal actions over the last {late} steps", "compare with figure 2.2")


@check(points=1, kind="training", timeout=TESTBED_TIMEOUT,
       needs=("argmax_breaks_ties_at_random", "constant_step_size_and_optimistic_start", "greedy_ties_are_uniform"))
def testbed_optimistic_greedy(worker, ctx):
    """Q1 = 5, epsilon = 0, step size 0.1 (figure 2.3)."""
    rule = Rule("epsilon_greedy", epsilon=0.0, step_size=0.1, initial_value=5.0)
    testbed = _play(worker, ctx, "testbed_optimistic_greedy", "EpsilonGreedy", rule, epsilon=0.0, step_size=0.1,
                    initial_value=5.0)
    late = ctx.option("late_steps")
    _expect_at_least(ctx, testbed.late_optimal_fraction(late), "optimistic_optimal",
                     f"fraction of optimal actions over the last {late} steps", "compare with figure 2.3")


@check(points=1, kind="training", timeout=TESTBED_TIMEOUT,
       needs=("ucb_tries_every_arm_first", "ucb_selection"))
def testbed_ucb(worker, ctx):
    """UCB with c = 2 (figure 2.4)."""
    testbed = _play(worker, ctx, "testbed_ucb", "UCB", Rule("ucb", c=2.0), c=2.0)
    late = ctx.option("late_steps")
    _expect_at_least(ctx, testbed.late_average_reward(late), "ucb_reward",
                     f"average reward over the last {late} steps", "compare with figure 2.4")


@check(points=1, kind="training", timeout=TESTBED_TIMEOUT,
       needs=("gradient_bandit_policy", "gradient_bandit_update_with_baseline"))
def testbed_gradient_with_baseline(worker, ctx):
    """Gradient bandit, alpha = 0.1, with baseline, q* mean +4 (figure 2.5)."""
    testbed = _play(worker, ctx, "testbed_gradient_with_baseline", "GradientBandit",
                    AnyRule((Rule("gradient", step_size=0.1), Rule("gradient", step_size=0.1, preceding_baseline=True))),
                    mean=4.0, step_size=0.1, baseline=True)
    late = ctx.option("late_steps")
    _expect_at_least(ctx, testbed.late_optimal_fraction(late), "gradient_baseline_optimal",
                     f"fraction of optimal actions over the last {late} steps", "compare with figure 2.5")


@check(points=1, kind="training", timeout=TESTBED_TIMEOUT,
       needs=("gradient_bandit_policy", "gradient_bandit_update_without_baseline"))
def testbed_gradient_without_baseline(worker, ctx):
    """Gradient bandit, alpha = 0.1, without baseline, q* mean +4 (figure 2.5)."""
    testbed = _play(worker, ctx, "testbed_gradient_without_baseline", "GradientBandit",
                    Rule("gradient", step_size=0.1, baseline=False), mean=4.0, step_size=0.1, baseline=False)
    late = ctx.option("late_steps")
    _expect_at_least(ctx, testbed.late_optimal_fraction(late), "gradient_no_baseline_optimal",
                     f"fraction of optimal actions over the last {late} steps", "compare with figure 2.5")
