"""Named changes to the REINFORCE-with-baseline reference, for bench/reinforce_sweep.py --idea NAME.

Each idea is a list of (old, new) replacements of the reference's source
(solutions/reinforce_baseline/reinforce_baseline.py); every `old` must occur exactly
once, so an idea that no longer applies fails loudly instead of measuring the reference.
All of them leave `compute_advantages`, `policy_loss`, `value_loss` and `losses` as they
are (the grader's unit checks call them); what changes is `train()`, `Args` or, for
`shared_trunk` only, the networks `train()` builds (a bench experiment: a shared trunk
is not what the assignment asks the student to write).

    PYTHONPATH=. nice -n 15 .venv/bin/python bench/reinforce_sweep.py reinforce_baseline \\
        --idea obs_norm --seeds 200-299 --jobs 1 --label obs_norm \\
        --rows bench/results/reinforce_baseline_ideas.jsonl --out bench/results/reinforce_sweeps.jsonl

Ideas (the issue's list, one setting each):
- obs_norm: running mean/std of the observations seen so far (all batches), applied in
  front of both networks (inputs clipped to +-5); the returned policy carries it.
- per_step_adv: advantages centred per time index t over the batch's episodes (a
  time-dependent baseline on top of v(s)), then divided by their std.
- clip_lr2e-2: policy gradient norm clipped at 0.1 (about the median norm of the
  reference's policy gradients; 0.5 would almost never bind) with a larger step (policy lr 2e-2).
- lambda_value: value target = lambda-return (lambda 0.95) computed with the value
  network before the batch's update; the policy's advantage stays G - v(s).
- shared_trunk: one 4-32-32 tanh trunk, a policy head and a value head; the trunk is
  trained by the policy optimizer on policy + value loss.
- warmup_lr2e-2: policy lr warmed up linearly over the first 10 updates to 2e-2.
"""

from __future__ import annotations

LOOP_LOSSES = "            p_loss, v_loss = losses(policy, value_net, obs, actions, returns, args.normalize_advantages)\n"
BEFORE_UPDATES = "        for step in range(max(args.policy_steps, args.value_epochs)):  # several gradient steps per batch\n"
POLICY_STEP = "            if step < args.policy_steps:\n                policy_optimizer.step()\n"
MAKE_NETS = ("    policy = Policy(obs_dim, envs.single_action_space.n, args.hidden_size).to(device)\n"
             "    value_net = ValueNetwork(obs_dim, args.hidden_size).to(device)\n")
OPTIMIZERS = "    value_optimizer = torch.optim.Adam(value_net.parameters(), lr=args.value_learning_rate)\n"
TRAIN_DEF = "def train(make_envs, seed: int, time_budget_s: float"
RETURNS = ("        returns = torch.as_tensor(returns / args.return_scale, dtype=torch.float32, device=device)\n")
END_OF_LOOP = ("                value_optimizer.step()\n"
               "    if best_state is not None:")


def _set(name: str, value: str) -> tuple[str, str, bool]:
    """A marker the applier turns into a regex replacement of an Args default (as --set does)."""
    return (name, value, True)


OBS_NORMALIZER = '''class ObservationNormalizer(nn.Module):
    """(obs - running mean) / running std, clipped; the statistics are buffers, not parameters."""

    def __init__(self, obs_dim: int, clip: float = 5.0):
        super().__init__()
        self.register_buffer("mean", torch.zeros(obs_dim))
        self.register_buffer("var", torch.ones(obs_dim))
        self.register_buffer("count", torch.zeros(()))
        self.clip = clip

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        n, mean, var = x.shape[0], x.mean(0), x.var(0, unbiased=False)
        total = self.count + n
        delta = mean - self.mean
        self.var.copy_((self.var * self.count + var * n + delta**2 * self.count * n / total) / total)
        self.mean.add_(delta * n / total)
        self.count.fill_(float(total))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return ((obs - self.mean) / torch.sqrt(self.var + 1e-8)).clamp(-self.clip, self.clip)


'''

PER_STEP = '''def per_step_normalized(advantages: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Centre each advantage on the mean of the batch's advantages at the same time index t, then scale."""
    counts = torch.bincount(t).to(advantages.dtype)
    sums = torch.zeros(len(counts), dtype=advantages.dtype).index_add_(0, t, advantages)
    centred = advantages - (sums / counts)[t]
    return centred / (centred.std() + 1e-8)


'''

LAMBDA = '''def lambda_returns(episodes: list[dict], values: np.ndarray, gamma: float, lam: float, scale: float) -> np.ndarray:
    """G^lambda_t = r_t + gamma ((1 - lam) v(s_t+1) + lam G^lambda_t+1) per episode, 0 after its last step."""
    out, start = np.zeros(len(values)), 0
    for e in episodes:
        rewards, v = e["rewards"] / scale, values[start:start + len(e["rewards"])]
        running, next_value = 0.0, 0.0
        for t in reversed(range(len(rewards))):
            running = rewards[t] + gamma * ((1 - lam) * next_value + lam * running)
            out[start + t], next_value = running, v[t]
        start += len(rewards)
    return out


'''

IDEAS: dict[str, list[tuple]] = {
    "reference": [],
    "obs_norm": [
        (TRAIN_DEF, OBS_NORMALIZER + TRAIN_DEF),
        (MAKE_NETS,
         "    normalizer = ObservationNormalizer(obs_dim).to(device)\n"
         "    policy = nn.Sequential(normalizer, Policy(obs_dim, envs.single_action_space.n, args.hidden_size)).to(device)\n"
         "    value_net = nn.Sequential(normalizer, ValueNetwork(obs_dim, args.hidden_size)).to(device)\n"),
        (BEFORE_UPDATES, "        normalizer.update(obs)  # after the best policy's state (with its statistics) was kept\n"
         + BEFORE_UPDATES),
    ],
    "per_step_adv": [
        (TRAIN_DEF, PER_STEP + TRAIN_DEF),
        (RETURNS, RETURNS +
         "        t_index = torch.as_tensor(np.concatenate([np.arange(len(e['rewards'])) for e in episodes]))\n"),
        (LOOP_LOSSES,
         "            values = value_net(obs).squeeze(-1)\n"
         "            advantages = per_step_normalized(compute_advantages(returns, values), t_index)\n"
         "            p_loss, v_loss = policy_loss(policy(obs), actions, advantages), value_loss(values, returns)\n"),
    ],
    "clip_lr2e-2": [
        _set("policy_learning_rate", "2e-2"),
        (POLICY_STEP, "            if step < args.policy_steps:\n"
                      "                torch.nn.utils.clip_grad_norm_(policy.parameters(), 0.1)\n"
                      "                policy_optimizer.step()\n"),
    ],
    "lambda_value": [
        (TRAIN_DEF, LAMBDA + TRAIN_DEF),
        (RETURNS, RETURNS +
         "        with torch.no_grad():\n"
         "            old_values = value_net(obs).squeeze(-1).cpu().numpy().astype(np.float64)\n"
         "        targets = torch.as_tensor(lambda_returns(episodes, old_values, args.gamma, 0.95, args.return_scale),\n"
         "                                  dtype=torch.float32, device=device)\n"),
        (LOOP_LOSSES,
         "            p_loss, _ = losses(policy, value_net, obs, actions, returns, args.normalize_advantages)\n"
         "            v_loss = value_loss(value_net(obs).squeeze(-1), targets)\n"),
    ],
    "shared_trunk": [
        (MAKE_NETS,
         "    policy = Policy(obs_dim, envs.single_action_space.n, args.hidden_size).to(device)\n"
         "    value_net = nn.Sequential(policy.net[:4], nn.Linear(args.hidden_size, 1)).to(device)  # trunk shared\n"),
        (OPTIMIZERS, "    value_optimizer = torch.optim.Adam(value_net[1].parameters(), lr=args.value_learning_rate)\n"),
    ],
    "warmup_lr2e-2": [
        _set("policy_learning_rate", "2e-2"),
        (OPTIMIZERS, OPTIMIZERS +
         "    warmup = torch.optim.lr_scheduler.LambdaLR(policy_optimizer, lambda u: min(1.0, (u + 1) / 10))\n"),
        (END_OF_LOOP, "                value_optimizer.step()\n"
                      "        warmup.step()\n"
                      "    if best_state is not None:"),
    ],
}


def apply_idea(source: str, idea: str) -> str:
    import re

    for change in IDEAS[idea]:
        if len(change) == 3:  # an Args default
            name, value, _ = change
            pattern = re.compile(rf"^(    {name}: \w+ = ).*$", re.M)
            if len(pattern.findall(source)) != 1:
                raise SystemExit(f"idea {idea}: no single Args field {name}")
            source = pattern.sub(lambda m, value=value: m.group(1) + value, source)
            continue
        old, new = change
        if source.count(old) != 1:
            raise SystemExit(f"idea {idea}: {old!r} occurs {source.count(old)} times")
        source = source.replace(old, new)
    return source
