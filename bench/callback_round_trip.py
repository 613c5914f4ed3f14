"""What one served-environment step costs: a worker that only steps, nothing else.

A submission whose `train()` calls `envs.step` in a loop for a few seconds (actions
all 0, so episodes end and reset often) on the grader's `CartPoleServer`. Per round
trip: wall time, and the grader's CPU time (user and system) from getrusage.

    PYTHONPATH=. .venv/bin/python bench/callback_round_trip.py --num-envs 8 32
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

SOURCE = """
import time
import numpy as np

def discounted_returns(rewards, gamma):
    return rewards

def train(make_envs, seed, time_budget_s, device="cpu"):
    envs = make_envs({num_envs})
    envs.reset()
    actions = np.zeros(envs.num_envs, dtype=np.int64)
    start = time.monotonic()
    while time.monotonic() - start < time_budget_s:
        envs.step(actions)
    return None
"""


def measure(num_envs: int, seconds: float) -> dict:
    from graders.rl.server import CartPoleServer
    from graders.sandbox import StudentError, Worker

    server = CartPoleServer(0)
    with Worker("reinforce", SOURCE.format(num_envs=num_envs), threads=1) as worker:
        worker.call("discounted_returns", np.ones(2), 0.5)  # start the worker outside the timing
        before, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        try:
            worker.call("train", 0, seconds, "cpu", callbacks=server.callbacks())
        except StudentError:
            pass  # "train() must return the trained policy": expected, it returns None
        wall, after = time.perf_counter() - wall, resource.getrusage(resource.RUSAGE_SELF)
    n = server.vector_steps
    return {"num_envs": num_envs, "round_trips": n, "wall_us": 1e6 * seconds / n,
            "grader_user_us": 1e6 * (after.ru_utime - before.ru_utime) / n,
            "grader_sys_us": 1e6 * (after.ru_stime - before.ru_stime) / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    for n in args.num_envs:
        print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in measure(n, args.seconds).items()}))


if __name__ == "__main__":
    main()
