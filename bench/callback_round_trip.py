"""What one served-environment step costs next to a gymnasium step: a loop that only steps.

For each environment shape: a grading worker's `train()` steps the grader's served
environment in a loop for a few seconds (actions all 0, so episodes end after about
10 steps and reset often), exactly as a submission would (the adapter, the shared-memory
fast path, `CartPoleServer`); then this process runs the same loop on gymnasium's own
environment. The loop times each step itself (`step`, and the `reset` that follows an
episode's end): percentiles 50/90/99 of those, served and raw; and per round trip
(one `step` or `reset` callback) the served wall time and the grader's and the
worker's CPU time. Raw and served run side by side, alternating, in one run; the load
average, the commit and the settings are recorded with each line.

    PYTHONPATH=. nice -n 5 .venv/bin/python bench/callback_round_trip.py --envs single 1 8 32 --repeat 3

`single` is `make_envs.make_env()` (a gymnasium Env, the classic loop) against
`gym.make("CartPole-v1")`; a number n is `make_envs(n)` against gymnasium's
`SyncVectorEnv(autoreset_mode=SAME_STEP)` of n environments. `--pipes` adds, in the same
run, the served loop with the grader's shared-memory channel switched off: every step over
the pipes, as before the fast path (`pipes_*` columns).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path

from served import served_train

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import provenance  # noqa: E402

LOOP = """
import json
import time
import numpy as np

def discounted_returns(rewards, gamma):
    return rewards

def train(make_envs, seed, time_budget_s, device="cpu"):
    shape, clock = {shape!r}, time.perf_counter
    took, n = np.zeros(10**7), 0
    start = time.monotonic()
    if shape == "single":
        env = make_envs.make_env()
        env.reset()
        while time.monotonic() - start < time_budget_s:
            t = clock()
            _, _, terminated, truncated, _ = env.step(0)
            if terminated or truncated:
                env.reset()
            took[n], n = clock() - t, n + 1
    else:
        envs = make_envs(shape)
        envs.reset()
        actions = np.zeros(shape, dtype=np.int64)
        while time.monotonic() - start < time_budget_s:
            t = clock()
            envs.step(actions)
            took[n], n = clock() - t, n + 1
    print("STEP_US", json.dumps((1e6 * np.percentile(took[:n], [50, 90, 99])).round(1).tolist()))
    return "a policy"
"""
SOURCE = LOOP  # the grader's worker runs it on make_envs; `raw` below runs it on gymnasium's


def served(shape, seconds: float, pipes: bool = False) -> dict:
    from unittest import mock

    from graders.rl.server import CartPoleServer
    from graders.sandbox import fastpath

    server = CartPoleServer(0)
    with mock.patch.object(fastpath.FastChannel, "create", staticmethod(lambda: None)) if pipes else nullcontext():
        cost = served_train("reinforce", SOURCE.format(shape=shape), server, 0, seconds)
    trips = server.vector_steps + (server.started if shape == "single" else 1)
    p50, p90, p99 = json.loads(cost["output"].split("STEP_US", 1)[1].splitlines()[0])
    return {"round_trips": trips, "served_wall_us": 1e6 * cost["wall"] / trips, "served_step_p50_us": p50,
            "served_step_p90_us": p90, "served_step_p99_us": p99,
            "grader_cpu_us": 1e6 * cost["grader_cpu"] / trips, "worker_cpu_us": 1e6 * cost["worker_cpu"] / trips}


def raw(shape, seconds: float) -> dict:
    """The same loop in this process, on gymnasium's own environments."""
    import contextlib
    import io
    import types

    import gymnasium as gym

    def make_envs(n):
        return gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="sync",
                            vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})

    make_envs.make_env = lambda: gym.make("CartPole-v1")
    module = types.ModuleType("loop")
    exec(compile(LOOP.format(shape=shape), "loop.py", "exec"), module.__dict__)
    printed = io.StringIO()
    wall, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(printed):
        module.train(make_envs, 0, seconds)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    p50, p90, p99 = json.loads(printed.getvalue().split("STEP_US", 1)[1].splitlines()[0])
    return {"raw_step_p50_us": p50, "raw_step_p90_us": p90, "raw_step_p99_us": p99}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["single", "1", "8", "32"])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--pipes", action="store_true", help="also serve over the pipes alone (no fast path)")
    parser.add_argument("--out", default=None, help="append the results as JSON lines here")
    args = parser.parse_args()
    for _ in range(args.repeat):
        for shape in args.envs:
            shape = shape if shape == "single" else int(shape)
            load = Path("/proc/loadavg").read_text().split()[:3]
            row = {**provenance.stamp(args), "envs": shape, **served(shape, args.seconds), **raw(shape, args.seconds)}
            if args.pipes:
                row.update({f"pipes_{k}": v for k, v in served(shape, args.seconds, pipes=True).items()})
            row["load_average"] = load
            row["served_over_raw_p50"] = row["served_step_p50_us"] / row["raw_step_p50_us"]
            line = json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()})
            print(line, flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(line + "\n")


if __name__ == "__main__":
    main()
