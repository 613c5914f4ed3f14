"""Random small finite MDPs and the episodes sampled on them (grader side, trusted).

An MDP crosses to the student as a plain dict of arrays, the same in the template:

- ``P[s, a, s']``: transition probabilities. With a horizon ``H`` every row sums to 1.
  Without one (``H is None``) a row may sum to less than 1: the missing mass is the
  probability that the episode terminates after (s, a). Every episode terminates.
- ``R[s, a]``: expected reward of taking a in s (the sampled reward adds noise).
- ``valid[s, a]``: whether action a is available in s (every state has at least one).
- ``h[s]``: the initial distribution.
- ``H``: the horizon (episodes last exactly H steps), or None (certain termination).

The generator builds the awkward cases on purpose: states no episode can reach (h = 0
and no transition into them), states with a single action, stochastic rewards.
Everything is drawn from ``numpy.random.default_rng([seed, case index, ...])`` so a
grading seed fixes every MDP, parameter vector and episode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Episodes of certain termination are sampled until all end; this cap is never reached
# with termination probability >= MIN_TERMINATION per step (0.85**400 < 1e-28).
MAX_EPISODE_STEPS = 400
MIN_TERMINATION = 0.15
MAX_TERMINATION = 0.5
# Every reachable state is visited at least this often in expectation (rejection
# sampling), so Monte-Carlo estimates of its gradient are not built from a handful
# of episodes.
MIN_REACHABLE_VISITS = 0.1


@dataclass(frozen=True)
class CaseSpec:
    """The shape of one random case; the seed picks the numbers."""

    name: str
    n_states: int
    n_actions: int
    horizon: int | None  # None: certain termination
    n_single_action: int = 0
    n_unreachable: int = 0
    reward_sd: float = 0.0  # sd of the Gaussian noise added to the expected reward
    theta_scale: float = 1.0
    concentration: float = 0.7  # Dirichlet concentration of P[s, a, :]; small = sparse
    state_reward_spread: float = 0.0  # R[s, a] += spread * U(0, 1) per state: values differ by state
    # Every valid action of a state with several gets at least this probability (rejection
    # sampling). Rare actions make the REINFORCE estimate of their parameter very skewed
    # (a large value with small probability), and the normal approximation of the
    # unbiasedness test then fails far more often than its nominal rate.
    min_policy_prob: float = 0.0


CASES: tuple[CaseSpec, ...] = (
    CaseSpec("horizon-3x2", 3, 2, horizon=4),
    CaseSpec("horizon-1", 4, 3, horizon=1, n_single_action=1),
    CaseSpec("horizon-7x3", 7, 3, horizon=6, n_single_action=1, n_unreachable=2, reward_sd=0.5,
             concentration=0.2, state_reward_spread=3.0, theta_scale=0.5, min_policy_prob=0.1),
    CaseSpec("episodic-4x2", 4, 2, horizon=None, reward_sd=0.5),
    CaseSpec("episodic-8x4", 8, 4, horizon=None, n_single_action=2, n_unreachable=2, reward_sd=0.5,
             concentration=0.2, state_reward_spread=3.0, theta_scale=0.5, min_policy_prob=0.1),
)
CASE_BY_NAME = {spec.name: spec for spec in CASES}


@dataclass
class Case:
    """One random MDP, a parameter vector theta, and what the grader keeps to itself."""

    spec: CaseSpec
    seed: int
    mdp: dict  # P, R, valid, h, H: what the student receives
    theta: np.ndarray
    reward_sd: np.ndarray  # [S, A]; grader only (sampling)
    unreachable: np.ndarray  # indices of the unreachable states

    @property
    def name(self) -> str:
        """The case as shown to students: its shape, never the grading seed (which may be hidden)."""
        return self.spec.name


def softmax_policy(theta: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """pi(a|s) proportional to exp(theta[s, a]) over the valid actions of s."""
    logits = np.where(valid, theta, -np.inf)
    logits = logits - logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


def state_transition_matrix(mdp: dict, pi: np.ndarray) -> np.ndarray:
    """P_pi[s, s'] = sum_a pi(a|s) P[s, a, s'] (substochastic without a horizon)."""
    return np.einsum("sa,sax->sx", pi, mdp["P"])


def visit_counts(mdp: dict, pi: np.ndarray) -> np.ndarray:
    """Expected visits eta(s) per episode, summed over time (sampling-free, by iteration)."""
    P_pi = state_transition_matrix(mdp, pi)
    d = np.array(mdp["h"], dtype=np.float64)
    eta = np.zeros_like(d)
    steps = mdp["H"] if mdp["H"] is not None else MAX_EPISODE_STEPS
    for _ in range(steps):
        eta += d
        d = d @ P_pi
    return eta


def random_case(spec: CaseSpec, seed: int) -> Case:
    """A random MDP of the given shape; rejection-sampled until reachable states are visited."""
    index = CASES.index(spec) if spec in CASES else 999
    rng = np.random.default_rng([seed, index])
    for _ in range(1000):
        case = _draw_case(spec, seed, rng)
        pi = softmax_policy(case.theta, case.mdp["valid"])
        eta = visit_counts(case.mdp, pi)
        reachable = np.setdiff1d(np.arange(spec.n_states), case.unreachable)
        several = case.mdp["valid"].sum(axis=1) > 1
        rare = np.where(case.mdp["valid"][several], pi[several], 1.0).min(initial=1.0) < spec.min_policy_prob
        if np.all(eta[reachable] >= MIN_REACHABLE_VISITS) and not rare:
            return case
    raise RuntimeError(f"could not draw case {spec.name} for seed {seed}")


def _draw_case(spec: CaseSpec, seed: int, rng: np.random.Generator) -> Case:
    S, A = spec.n_states, spec.n_actions
    order = rng.permutation(S)
    unreachable = np.sort(order[: spec.n_unreachable])
    reachable = np.sort(order[spec.n_unreachable :])

    valid = np.ones((S, A), dtype=bool)
    for s in rng.choice(S, size=spec.n_single_action, replace=False):
        valid[s] = False
        valid[s, rng.integers(A)] = True

    # Sparse-ish transitions into reachable states only: nothing ever enters an
    # unreachable state, but unreachable states themselves lead somewhere.
    P = np.zeros((S, A, S))
    P[:, :, reachable] = rng.dirichlet(np.full(len(reachable), spec.concentration), size=(S, A))
    if spec.horizon is None:
        stay = 1.0 - rng.uniform(MIN_TERMINATION, MAX_TERMINATION, size=(S, A))
        P *= stay[:, :, None]

    h = np.zeros(S)
    h[reachable] = rng.dirichlet(np.full(len(reachable), 1.0))
    # Positive expected rewards: a constant offset is what a value baseline removes.
    R = rng.uniform(0.5, 2.0, size=(S, A)) + spec.state_reward_spread * rng.uniform(0.0, 1.0, size=(S, 1))
    reward_sd = np.full((S, A), spec.reward_sd)
    theta = spec.theta_scale * rng.standard_normal((S, A))
    mdp = {"P": P, "R": R, "valid": valid, "h": h, "H": spec.horizon}
    return Case(spec, seed, mdp, theta, reward_sd, unreachable)


def cases_for_seed(seed: int, names: list[str] | None = None) -> list[Case]:
    """The cases a grading seed draws (all of them, or the named ones)."""
    specs = CASES if names is None else [CASE_BY_NAME[n] for n in names]
    return [random_case(spec, seed) for spec in specs]


def sample_episodes(case: Case, n_episodes: int, rng: np.random.Generator) -> dict:
    """Episodes under the softmax policy of case.theta, as padded arrays.

    states[n, t] = S_t, actions[n, t] = A_t, rewards[n, t] = R_{t+1} for t < lengths[n];
    entries at t >= lengths[n] are 0 (padding). Sampling is vectorised over episodes.
    """
    mdp = case.mdp
    P, R, h, H = mdp["P"], mdp["R"], mdp["h"], mdp["H"]
    S, A = R.shape
    pi = softmax_policy(case.theta, mdp["valid"])
    # Successor distribution with an extra column: index S means "terminated".
    termination = np.clip(1.0 - P.sum(axis=2, keepdims=True), 0.0, None) if H is None else np.zeros((S, A, 1))
    successor = np.concatenate([P, termination], axis=2)
    successor_cdf = np.cumsum(successor, axis=2)
    policy_cdf = np.cumsum(pi, axis=1)
    max_steps = H if H is not None else MAX_EPISODE_STEPS

    states = np.zeros((n_episodes, max_steps), dtype=np.int64)
    actions = np.zeros((n_episodes, max_steps), dtype=np.int64)
    rewards = np.zeros((n_episodes, max_steps))
    lengths = np.zeros(n_episodes, dtype=np.int64)

    s = _draw(np.cumsum(h)[None, :].repeat(n_episodes, axis=0), rng)
    alive = np.ones(n_episodes, dtype=bool)
    for t in range(max_steps):
        idx = np.flatnonzero(alive)
        if idx.size == 0:
            break
        st = s[idx]
        at = np.minimum(_draw(policy_cdf[st], rng), A - 1)
        states[idx, t] = st
        actions[idx, t] = at
        rewards[idx, t] = R[st, at] + case.reward_sd[st, at] * rng.standard_normal(idx.size)
        lengths[idx] += 1
        nxt = np.minimum(_draw(successor_cdf[st, at], rng), S)
        s[idx] = np.minimum(nxt, S - 1)
        alive[idx[nxt == S]] = False
    else:
        if H is None and alive.any():  # pragma: no cover - probability < 1e-28
            raise RuntimeError("an episode did not terminate")
    T = max(int(lengths.max()), 1)
    return {
        "states": states[:, :T].copy(),
        "actions": actions[:, :T].copy(),
        "rewards": rewards[:, :T].copy(),
        "lengths": lengths,
    }


def _draw(cdf: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row of cumulative probabilities (inverse-CDF sampling)."""
    u = rng.random(cdf.shape[0]) * cdf[:, -1]
    return (u[:, None] >= cdf).sum(axis=1)
