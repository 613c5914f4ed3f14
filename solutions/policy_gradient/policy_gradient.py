# %% [markdown]
# # The policy gradient theorem, checked step by step
#
# We prove the policy gradient theorem numerically, and exactly, on small finite MDPs.
# Every step of the proof as taught (Sutton & Barto, section 13.2) becomes a function;
# the grader compares each with its own exact answer (autograd and finite
# differences of J) on random MDPs, including states no episode reaches and states
# with a single action.
#
# **Setting.** Finite states S and actions A, no discount (gamma = 1), and episodes
# that end: either after exactly `H` steps (a *horizon*), or because every step ends
# the episode with some probability (*certain termination*, `H = None`).
# The policy is a softmax over the valid actions of each state:
# pi(a|s; theta) = exp(theta[s, a]) / sum_b exp(theta[s, b]).
# The objective is J(theta) = sum_s h(s) v_pi(s), with h the initial distribution.
#
# **An MDP is a dict of numpy arrays** (the grader sends exactly this):
#
# | key | shape | meaning |
# | --- | --- | --- |
# | `P` | [S, A, S] | `P[s, a, s2]` = Pr(next state s2 given s, a); see below |
# | `R` | [S, A] | expected reward of taking a in s (sampled rewards are noisy) |
# | `valid` | [S, A] bool | whether a is available in s; every state has at least one action |
# | `h` | [S] | initial distribution |
# | `H` | int or None | the horizon, or None for certain termination |
#
# Without a horizon a row `P[s, a, :]` may sum to less than 1: the rest is the
# probability that the episode ends after taking a in s.
# `theta` is an [S, A] array; its entries at invalid actions mean nothing.
# All functions take and return plain numpy arrays. Use numpy only (no autograd).

# %%
import numpy as np

# %% [markdown]
# ## 1. The softmax policy and its Jacobian
#
# Writing out the derivative of a softmax by hand:
# d pi(a|s) / d theta[s, b] = pi(a|s) (1[a = b] - pi(b|s)), and 0 for theta of other
# states. As a matrix per state: diag(pi_s) - pi_s pi_s^T. Invalid actions have
# probability 0, so their rows and columns are 0 and need no special case.


# %%
def softmax_policy(theta, valid):
    """pi[s, a]: softmax of theta[s, :] over the valid actions of s (0 for invalid ones)."""
    ### BEGIN SOLUTION
    logits = np.where(valid, theta, -np.inf)
    logits = logits - logits.max(axis=1, keepdims=True)  # stable: exp of at most 0
    weights = np.exp(logits)  # exp(-inf) = 0 for invalid actions
    pi = weights / weights.sum(axis=1, keepdims=True)
    ### END SOLUTION
    return pi


def softmax_jacobian(pi):
    """jac[s, a, b] = d pi(a|s) / d theta[s, b], shape [S, A, A]. No autograd."""
    ### BEGIN SOLUTION
    S, A = pi.shape
    jac = pi[:, :, None] * np.eye(A)[None, :, :] - pi[:, :, None] * pi[:, None, :]
    ### END SOLUTION
    return jac


def action_weighted_gradient(f, pi):
    """sum_a f[..., s, a] * grad pi(a|s), shape [..., S, A].

    Entry [..., s, b] is the derivative with respect to theta[s, b] (the only
    parameters pi(.|s) depends on). This is the inner sum of the theorem with
    f = q_pi, and the baseline term with f = b.
    """
    ### BEGIN SOLUTION
    grad = np.einsum("...sa,sab->...sb", f, softmax_jacobian(pi))
    ### END SOLUTION
    return grad


# %% [markdown]
# ## 2. Exact values v_pi and q_pi
#
# **Horizon H.** Values depend on the number k of steps still to go. Backward
# induction from v_0 = 0: q_k(s, a) = R(s, a) + sum_s2 P(s2|s, a) v_{k-1}(s2) and
# v_k(s) = sum_a pi(a|s) q_k(s, a), for k = 1..H. The episode's value from s is v_H(s).
# At time t of an episode there are H - t steps to go.
#
# **Certain termination.** Values are stationary: v = r_pi + P_pi v, a linear system
# (I - P_pi) v = r_pi with P_pi[s, s2] = sum_a pi(a|s) P[s, a, s2] and
# r_pi(s) = sum_a pi(a|s) R(s, a). Then q = R + P v.


# %%
def finite_horizon_values(P, R, pi, H):
    """v[k, s] and q[k, s, a] with k = 0..H steps to go; v[0] = 0 and q[0] = 0."""
    S, A = R.shape
    v = np.zeros((H + 1, S))
    q = np.zeros((H + 1, S, A))
    ### BEGIN SOLUTION
    for k in range(1, H + 1):
        q[k] = R + P @ v[k - 1]
        v[k] = (pi * q[k]).sum(axis=1)
    ### END SOLUTION
    return v, q


def episodic_values(P, R, pi):
    """v[s], q[s, a] under certain termination (a linear solve; no iteration)."""
    S, A = R.shape
    ### BEGIN SOLUTION
    P_pi = np.einsum("sa,sax->sx", pi, P)
    r_pi = (pi * R).sum(axis=1)
    v = np.linalg.solve(np.eye(S) - P_pi, r_pi)
    q = R + P @ v
    ### END SOLUTION
    return v, q


def policy_values(mdp, pi):
    """(v, q) for either kind of MDP: time-indexed with a horizon, stationary without."""
    if mdp["H"] is None:
        return episodic_values(mdp["P"], mdp["R"], pi)
    return finite_horizon_values(mdp["P"], mdp["R"], pi, mdp["H"])


# %% [markdown]
# ## 3. Where the policy takes us: k-step probabilities and visit counts
#
# Pr(s -> x in k steps | pi) is entry [s, x] of the k-th power of P_pi (the identity
# for k = 0). Without a horizon P_pi is substochastic and its powers vanish.
#
# The expected number of visits eta(s) per episode starts from h:
# eta(s) = sum_t Pr(S_t = s). Without a horizon, eta = h + eta P_pi, a linear system.
# With a horizon the value of a state depends on the time as well, so the state of the
# proof is really the pair (t, s): we keep eta[t, s] = Pr(S_t = s) for t < H
# (eta.sum(0) are the visit counts of s). The on-policy distribution mu is eta
# normalised to sum to 1.


# %%
def k_step_probabilities(P, pi, n_steps):
    """M[k, s, x] = Pr(S_k = x | S_0 = s) under pi, for k = 0..n_steps-1."""
    S = P.shape[0]
    M = np.zeros((n_steps, S, S))
    ### BEGIN SOLUTION
    P_pi = np.einsum("sa,sax->sx", pi, P)
    M[0] = np.eye(S)
    for k in range(1, n_steps):
        M[k] = M[k - 1] @ P_pi
    ### END SOLUTION
    return M


def visit_counts(mdp, pi):
    """eta: eta[t, s] = Pr(S_t = s) for t < H with a horizon; eta[s] = E[visits of s] without."""
    P, h, H = mdp["P"], mdp["h"], mdp["H"]
    ### BEGIN SOLUTION
    P_pi = np.einsum("sa,sax->sx", pi, P)
    if H is None:
        eta = np.linalg.solve((np.eye(len(h)) - P_pi).T, h)  # eta (I - P_pi) = h
    else:
        eta = np.zeros((H, len(h)))
        eta[0] = h
        for t in range(1, H):
            eta[t] = eta[t - 1] @ P_pi
    ### END SOLUTION
    return eta


def on_policy_distribution(eta):
    """mu: the visit counts normalised to a probability distribution."""
    ### BEGIN SOLUTION
    mu = eta / eta.sum()
    ### END SOLUTION
    return mu


# %% [markdown]
# ## 4. The theorem
#
# grad J(theta) = sum_s eta(s) sum_a q_pi(s, a) grad pi(a|s)
#               = (sum_s eta(s)) sum_s mu(s) sum_a q_pi(s, a) grad pi(a|s).
#
# So the gradient is *proportional* to the mu-weighted sum; the constant is the
# expected episode length sum_s eta(s). With a horizon the sum runs over the pairs
# (t, s), with q at H - t steps to go.


# %%
def theorem_gradient(weights, q, pi):
    """sum over (leading axes, s) of weights[..., s] * sum_a q[..., s, a] grad pi(a|s).

    weights [S] with q [S, A], or weights [T, S] with q [T, S, A] (q at each time step).
    """
    ### BEGIN SOLUTION
    local = action_weighted_gradient(q, pi)  # [..., S, A]
    grad = (np.asarray(weights)[..., None] * local).reshape(-1, *pi.shape).sum(axis=0)
    ### END SOLUTION
    return grad


def q_at_each_time(q, H):
    """q_t[t] = q[H - t]: the action values at time t = 0..H-1 of an episode."""
    ### BEGIN SOLUTION
    q_t = q[H - np.arange(H)]
    ### END SOLUTION
    return q_t


def policy_gradient_theorem(mdp, theta):
    """grad J(theta) by the theorem, with eta the visit counts. Shape [S, A]."""
    pi = softmax_policy(theta, mdp["valid"])
    v, q = policy_values(mdp, pi)
    eta = visit_counts(mdp, pi)
    ### BEGIN SOLUTION
    if mdp["H"] is not None:
        q = q_at_each_time(q, mdp["H"])
    grad = theorem_gradient(eta, q, pi)
    ### END SOLUTION
    return grad


# %% [markdown]
# ## 5. The proof, unrolled
#
# The proof differentiates the Bellman equation v(s) = sum_a pi(a|s) q(s, a) and
# unrolls the recursion it gets:
#
# grad v_pi(s) = sum_x sum_{k >= 0} Pr(s -> x in k steps) sum_a q_pi(x, a) grad pi(a|x).
#
# With a horizon, k runs over 0..H-1 and q is the one with H - k steps to go. Without
# one, k runs to infinity; we stop after `n_terms` terms (P_pi^k vanishes
# geometrically). Return the gradient of v_pi(s) for every start state s.


# %%
def unrolled_value_gradient(mdp, theta, n_terms):
    """grad[s, x, b] = d v_pi(s) / d theta[x, b] by the unrolled identity; [S, S, A].

    With a horizon, v_pi(s) is the value of the whole episode from s and n_terms is
    ignored (the sum has exactly H terms).
    """
    pi = softmax_policy(theta, mdp["valid"])
    v, q = policy_values(mdp, pi)
    ### BEGIN SOLUTION
    H = mdp["H"]
    if H is not None:
        M = k_step_probabilities(mdp["P"], pi, H)
        local = action_weighted_gradient(q_at_each_time(q, H), pi)  # [H, S, A]
        grad = np.einsum("ksx,kxb->sxb", M, local)
    else:
        M = k_step_probabilities(mdp["P"], pi, n_terms)
        local = action_weighted_gradient(q, pi)  # [S, A]
        grad = np.einsum("sx,xb->sxb", M.sum(axis=0), local)
    ### END SOLUTION
    return grad


# %% [markdown]
# ## 6. Baselines
#
# For any b(s) that does not depend on the action,
# sum_a b(s) grad pi(a|s) = b(s) grad sum_a pi(a|s) = b(s) grad 1 = 0.
# `action_weighted_gradient` computes this sum for any b[s, a]: check that it vanishes
# when b[s, a] = b(s), and that it does not when b depends on the action.
#
# ## 7. REINFORCE from sampled episodes
#
# Replace the sums over states and actions of the theorem by what an episode visits:
# the per-episode estimate is
#
# g = sum_t (G_t - b_t(S_t)) grad log pi(A_t | S_t),  G_t = R_{t+1} + ... + R_T,
#
# whose expectation is grad J for any baseline b_t(s) of the time and the state.
# For the softmax, grad log pi(a|s) with respect to theta[s, :] is onehot(a) - pi(.|s),
# and zero for the parameters of other states.
#
# **Episodes** come as a dict of padded arrays: `states[n, t]` = S_t, `actions[n, t]` =
# A_t, `rewards[n, t]` = R_{t+1} for t < `lengths[n]`; the entries beyond are padding
# (0) and must not count. `baseline[t, s]` is b_t(s), shape [T, S] with T =
# states.shape[1], or None for no baseline. Return one estimate per episode: the
# grader does the statistics.


# %%
def reinforce_gradients(episodes, theta, valid, baseline=None):
    """Per-episode REINFORCE estimates of grad J, shape [N, S, A]."""
    states, actions = episodes["states"], episodes["actions"]
    rewards, lengths = episodes["rewards"], episodes["lengths"]
    N, T = states.shape
    S, A = theta.shape
    pi = softmax_policy(theta, valid)
    grads = np.zeros((N, S, A))
    ### BEGIN SOLUTION
    alive = np.arange(T)[None, :] < lengths[:, None]  # [N, T]: real steps, not padding
    rewards = np.where(alive, rewards, 0.0)
    returns = np.cumsum(rewards[:, ::-1], axis=1)[:, ::-1]  # G_t
    if baseline is not None:
        returns = returns - baseline[np.arange(T)[None, :], states]  # G_t - b_t(S_t)
    score = np.eye(A)[actions] - pi[states]  # grad log pi(A_t|S_t) wrt theta[S_t, :]
    contribution = np.where(alive[:, :, None], returns[:, :, None] * score, 0.0)  # [N, T, A]
    grads = np.einsum("nts,nta->nsa", np.eye(S)[states], contribution, optimize=True)  # row S_t, sum over t
    ### END SOLUTION
    return grads


# %% [markdown]
# **Question (written answer).** Explain in a few sentences why subtracting a baseline
# b(s) from the return leaves the REINFORCE estimate unbiased, and why the argument
# fails when the baseline depends on the action.

# %% [markdown] {"nbgrader":{"grade":true,"grade_id":"baseline","locked":false,"points":2,"schema_version":3,"solution":true}}
# ### BEGIN SOLUTION
# The baseline adds the term E[b(S_t) grad log pi(A_t|S_t)] to the expectation. Given
# S_t = s, it is b(s) sum_a pi(a|s) grad log pi(a|s) = b(s) sum_a grad pi(a|s)
# = b(s) grad sum_a pi(a|s) = b(s) grad 1 = 0: b(s) comes out of the sum over actions
# because it does not depend on a, and the probabilities always sum to one. Averaging
# over S_t keeps it 0, so the expectation is unchanged (the variance is not).
# If b depends on the action, b(s, a) stays inside the sum, sum_a b(s, a) grad pi(a|s)
# is in general not 0, and the estimate is biased.
# ### END SOLUTION

# %% [markdown]
# ## Demo
#
# A small MDP: the theorem against finite differences of J, and REINFORCE with and
# without a value baseline against the theorem.


# %%
def objective(mdp, theta):
    """J(theta) = sum_s h(s) v_pi(s)."""
    pi = softmax_policy(theta, mdp["valid"])
    v, _ = policy_values(mdp, pi)
    return float(mdp["h"] @ (v[mdp["H"]] if mdp["H"] is not None else v))


def sample_episodes(mdp, theta, n_episodes, rng, reward_sd=0.5):
    """Episodes in the format of `reinforce_gradients` (a plain loop; for the demo)."""
    P, R, H = mdp["P"], mdp["R"], mdp["H"]
    S, A = R.shape
    pi = softmax_policy(theta, mdp["valid"])
    episodes = []
    for _ in range(n_episodes):
        s, steps = rng.choice(S, p=mdp["h"]), []
        while H is None or len(steps) < H:
            a = rng.choice(A, p=pi[s])
            steps.append((s, a, R[s, a] + reward_sd * rng.standard_normal()))
            p_next = np.append(P[s, a], max(0.0, 1.0 - P[s, a].sum()))
            s = rng.choice(S + 1, p=p_next / p_next.sum())
            if s == S:
                break
        episodes.append(steps)
    T = max(len(e) for e in episodes)
    out = {
        "states": np.zeros((n_episodes, T), dtype=int),
        "actions": np.zeros((n_episodes, T), dtype=int),
        "rewards": np.zeros((n_episodes, T)),
        "lengths": np.array([len(e) for e in episodes]),
    }
    for n, steps in enumerate(episodes):
        for t, (s, a, r) in enumerate(steps):
            out["states"][n, t], out["actions"][n, t], out["rewards"][n, t] = s, a, r
    return out


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    S, A = 4, 3
    P = rng.dirichlet(np.ones(S), size=(S, A)) * 0.7  # ends with probability 0.3 per step
    mdp = {"P": P, "R": rng.uniform(0.5, 2.0, (S, A)), "valid": np.ones((S, A), dtype=bool),
           "h": np.array([1.0, 0.0, 0.0, 0.0]), "H": None}
    mdp["valid"][3, 1:] = False  # state 3 has a single action
    theta = rng.standard_normal((S, A))

    grad = policy_gradient_theorem(mdp, theta)
    eps, fd = 1e-5, np.zeros_like(theta)
    for index in np.ndindex(theta.shape):
        step = np.zeros_like(theta)
        step[index] = eps
        fd[index] = (objective(mdp, theta + step) - objective(mdp, theta - step)) / (2 * eps)
    print("theorem:\n", grad.round(5))
    print("max |theorem - finite differences|:", np.abs(grad - fd).max())

    pi = softmax_policy(theta, mdp["valid"])
    v, _ = policy_values(mdp, pi)
    episodes = sample_episodes(mdp, theta, 2000, rng)
    T = episodes["states"].shape[1]
    for name, baseline in [("no baseline", None), ("value baseline", np.tile(v, (T, 1)))]:
        g = reinforce_gradients(episodes, theta, mdp["valid"], baseline)
        se = g.std(axis=0, ddof=1) / np.sqrt(len(g))
        z = np.abs(g.mean(axis=0) - grad)[se > 0] / se[se > 0]
        print(f"REINFORCE, {name}: total variance {g.var(axis=0).sum():.3f}, max |z| {z.max():.2f}")
