"""What one served-environment step costs next to a gymnasium step: a loop that only steps.

For each environment shape: a grading worker's `train()` steps the grader's served
environment in a loop for a few seconds (actions all 0, so episodes end after about
10 steps and reset often), exactly as a submission would (the adapter, the shared-memory
fast path, `CartPoleServer`); then this process runs the same loop on gymnasium's own
environment. Per round trip (one `step`, or one `reset` of the single environment):
served wall time, the grader's and the worker's CPU time; per step of gymnasium: wall
and CPU time. Raw and served run side by side, alternating, in one run; the load
average is recorded with each line.

    PYTHONPATH=. nice -n 5 .venv/bin/python bench/callback_round_trip.py --envs single 1 8 32 --repeat 3

`single` is `make_envs.make_env()` (a gymnasium Env, the classic loop) against
`gym.make("CartPole-v1")`; a number n is `make_envs(n)` against gymnasium's
`SyncVectorEnv(autoreset_mode=SAME_STEP)` of n environments.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from served import served_train

SOURCE = """
import time
import numpy as np

def discounted_returns(rewards, gamma):
    return rewards

def train(make_envs, seed, time_budget_s, device="cpu"):
    shape = {shape!r}
    start = time.monotonic()
    if shape == "single":
        env = make_envs.make_env()
        env.reset()
        while time.monotonic() - start < time_budget_s:
            _, _, terminated, truncated, _ = env.step(0)
            if terminated or truncated:
                env.reset()
    else:
        envs = make_envs(shape)
        envs.reset()
        actions = np.zeros(shape, dtype=np.int64)
        while time.monotonic() - start < time_budget_s:
            envs.step(actions)
    return "a policy"
"""


def served(shape, seconds: float) -> dict:
    from graders.rl.server import CartPoleServer

    server = CartPoleServer(0)
    cost = served_train("reinforce", SOURCE.format(shape=shape), server, 0, seconds)
    trips = server.vector_steps + (server.started if shape == "single" else 1)
    return {"round_trips": trips, "served_wall_us": 1e6 * cost["wall"] / trips,
            "grader_cpu_us": 1e6 * cost["grader_cpu"] / trips, "worker_cpu_us": 1e6 * cost["worker_cpu"] / trips}


def raw(shape, seconds: float) -> dict:
    import gymnasium as gym

    trips, start, cpu = 0, time.perf_counter(), time.process_time()
    if shape == "single":
        env = gym.make("CartPole-v1")
        env.reset(seed=0)
        while time.perf_counter() - start < seconds:
            _, _, terminated, truncated, _ = env.step(0)
            trips += 1
            if terminated or truncated:
                env.reset()
                trips += 1
    else:
        envs = gym.make_vec("CartPole-v1", num_envs=shape, vectorization_mode="sync",
                            vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
        envs.reset(seed=0)
        actions = np.zeros(shape, dtype=np.int64)
        while time.perf_counter() - start < seconds:
            envs.step(actions)
            trips += 1
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"raw_wall_us": 1e6 * wall / trips, "raw_cpu_us": 1e6 * cpu / trips}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["single", "1", "8", "32"])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", default=None, help="append the results as JSON lines here")
    args = parser.parse_args()
    for _ in range(args.repeat):
        for shape in args.envs:
            shape = shape if shape == "single" else int(shape)
            load = Path("/proc/loadavg").read_text().split()[:3]
            row = {"envs": shape, **served(shape, args.seconds), **raw(shape, args.seconds), "load_average": load}
            row["served_over_raw_wall"] = row["served_wall_us"] / row["raw_wall_us"]
            line = json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()})
            print(line, flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(line + "\n")


if __name__ == "__main__":
    main()
