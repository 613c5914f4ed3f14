"""A student's one-environment REINFORCE under the grader, next to the same code on gymnasium's own env.

The code is what course templates and tutorials write: one `gym.make("CartPole-v1")`,
one episode at a time (`env.reset()`, then `env.step(action.item())` until the episode
ends), a 4-128-2 policy, one Adam step per episode. Here it gets its environment from
`make_envs.make_env()` and plays a fixed number of episodes, twice per seed:
- raw: in this process on `gym.make("CartPole-v1")`, its first reset seeded as the
  grader seeds it;
- served: in a grading worker on the grader's served environment, exactly as the
  training check runs it (adapter, shared-memory fast path, `CartPoleServer`).
The dynamics are gymnasium's bit for bit and torch's generator is seeded alike, so
both runs take the same trajectory: the bench checks that the episode lengths agree.
The overhead is served time / raw time (wall from the start of `train()`, CPU of
every process involved from then on); runs alternate (raw, served, raw, ...) in one
run so that load hits both alike, and the load average is recorded with the commit and settings.

    PYTHONPATH=. nice -n 5 .venv/bin/python bench/reinforce_classic_loop.py --seeds 0-2 --episodes 300
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import types
from pathlib import Path

from served import report, served_train

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import provenance  # noqa: E402

SOURCE = '''
import torch
import torch.nn as nn

EPISODES = {episodes}


def discounted_returns(rewards, gamma):
    return rewards


def train(make_envs, seed, time_budget_s, device="cpu"):
    torch.manual_seed(seed)
    env = make_envs.make_env()
    policy = nn.Sequential(nn.Linear(4, 128), nn.ReLU(), nn.Linear(128, 2))
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
    for _ in range(EPISODES):
        obs, _ = env.reset()
        log_probs, rewards, done = [], [], False
        while not done:
            dist = torch.distributions.Categorical(logits=policy(torch.as_tensor(obs, dtype=torch.float32)))
            action = dist.sample()
            log_probs.append(dist.log_prob(action))
            obs, reward, terminated, truncated, _ = env.step(action.item())
            rewards.append(reward)
            done = terminated or truncated
        returns, running = [], 0.0
        for reward in reversed(rewards):
            running = reward + 0.99 * running
            returns.insert(0, running)
        returns = torch.tensor(returns)
        returns = (returns - returns.mean()) / (returns.std() + 1e-8)
        loss = -(torch.stack(log_probs) * returns).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return policy
'''


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def raw_run(seed: int, episodes: int) -> dict:
    import gymnasium as gym
    import torch
    import torch._dynamo  # noqa: F401 - imported before the clock starts, as the grader's adapter does

    from graders.rl.cartpole import env_seeds

    torch.set_num_threads(1)
    module = types.ModuleType("classic")
    exec(compile(SOURCE.format(episodes=episodes), "classic.py", "exec"), module.__dict__)
    lengths: list[int] = []

    class SeededAsTheGraderSeeds(gym.Wrapper):
        first = True

        def reset(self, *, seed=None, options=None):
            seed, self.first = (env_seeds(run_seed, "train", 1)[0] if self.first else None), False
            lengths.append(0)
            return self.env.reset(seed=seed)

        def step(self, action):
            lengths[-1] += 1
            return self.env.step(action)

    run_seed = seed
    make_envs = types.SimpleNamespace(make_env=lambda: SeededAsTheGraderSeeds(gym.make("CartPole-v1")))
    wall, cpu = time.perf_counter(), cpu_s()
    module.train(make_envs, seed, 600)
    return {"wall": time.perf_counter() - wall, "cpu": cpu_s() - cpu, "lengths": lengths}


def served_run(seed: int, episodes: int) -> dict:
    from graders.rl.server import CartPoleServer

    server = CartPoleServer(seed)
    cost = served_train("reinforce", SOURCE.format(episodes=episodes), server, seed, 600)
    return {**cost, "lengths": server.episode_lengths}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-2", help="a range a-b (inclusive)")
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--out", default=None, help="append the result as a JSON line here")
    args = parser.parse_args()
    first, last = map(int, args.seeds.split("-"))
    runs = {"raw": [], "served": []}
    loads = [Path("/proc/loadavg").read_text().split()[0]]
    for seed in range(first, last + 1):
        for kind, run in (("raw", raw_run), ("served", served_run)):
            r = run(seed, args.episodes)
            runs[kind].append(r)
            steps = sum(r["lengths"])
            print(f"seed {seed} {kind:6s}: {steps} steps in {r['wall']:.2f} s wall, {r['cpu']:.2f} s CPU "
                  f"({1e6 * r['wall'] / steps:.0f} us per step)" +
                  (f"; charged {r['own']:.2f} s, serving {r['serving']:.2f} s, waiting for a CPU {r['cpu_wait']:.2f} s"
                   if kind == "served" else ""), flush=True)
        loads.append(Path("/proc/loadavg").read_text().split()[0])
        if runs["raw"][-1]["lengths"] != runs["served"][-1]["lengths"]:
            sys.exit(f"seed {seed}: the two runs took different trajectories; the comparison is off")
    total = {k: {m: sum(r[m] for r in v) for m in ("wall", "cpu")} for k, v in runs.items()}
    result = {
        **provenance.stamp(args), "bench": "reinforce_classic_loop", "seeds": args.seeds, "episodes": args.episodes,
        "steps": sum(sum(r["lengths"]) for r in runs["raw"]),
        "raw_s": total["raw"], "served_s": total["served"],
        "overhead_wall": total["served"]["wall"] / total["raw"]["wall"],
        "overhead_cpu": total["served"]["cpu"] / total["raw"]["cpu"],
        "charged_over_raw": sum(r["own"] for r in runs["served"]) / total["raw"]["wall"],
        "load_average_1min": loads,
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
