"""What serving CartPole from the grader's process costs, next to a raw gymnasium loop.

The same training work both ways: the reference `train()` of solutions/reinforce (its
stopping rule switched off, so it trains for the whole time budget) runs
- raw: in this process on gymnasium's own `SyncVectorEnv` (same-step autoreset);
- served: in a grading worker on the grader's `ServedVectorEnv`, one callback per
  vector step, exactly as the grader runs it (graders/cartpole.py).
The measure is training throughput (environment steps per second of wall time and
per CPU second of all processes involved); the ratio raw/served is the overhead
factor. Runs alternate (raw, served, raw, ...) so that load on a shared machine hits
both alike.

    PYTHONPATH=. nice -n 10 .venv/bin/python bench/reinforce_env_overhead.py --seconds 20 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "reinforce" / "reinforce.py"


def bench_source(num_envs: int | None) -> str:
    """The reference with its stopping rule off (and maybe another num_envs)."""
    source = SOLUTION.read_text()
    for old, new in [("target_return: float = 495.0", "target_return: float = float('inf')"),
                     ("num_envs: int = 8", f"num_envs: int = {num_envs or 8}")]:
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    return source


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def raw_run(seconds: float, seed: int, num_envs: int | None) -> dict:
    import torch

    torch.set_num_threads(1)
    ref = types.ModuleType("reference")
    sys.modules["reference"] = ref  # dataclasses look their module up
    exec(compile(bench_source(num_envs), str(SOLUTION), "exec"), ref.__dict__)
    steps = [0]

    def make_envs(n):
        envs = ref.make_gymnasium_envs(n)
        step = envs.step

        def counted(actions):
            steps[0] += n
            return step(actions)

        envs.step = counted
        return envs

    wall, cpu = time.perf_counter(), cpu_seconds()
    ref.train(make_envs, seed=seed, time_budget_s=seconds)
    return {"steps": steps[0], "wall": time.perf_counter() - wall, "cpu": cpu_seconds() - cpu}


def served_run(seconds: float, seed: int, num_envs: int | None) -> dict:
    from graders.cartpole import CartPoleServer
    from graders.sandbox import Worker

    source = bench_source(num_envs)
    server = CartPoleServer(seed)
    with Worker("reinforce", source, threads=1) as worker:
        worker.call("discounted_returns", np.ones(2), 0.5)  # start the worker outside the timing
        wall, cpu = time.perf_counter(), cpu_seconds()
        report = worker.call("train", seed, seconds, "cpu", callbacks=server.callbacks())
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    cpu += report["cpu_seconds"]  # the worker's own CPU time, as its adapter measured it
    return {"steps": server.steps, "wall": wall, "cpu": cpu, "vector_steps": server.vector_steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="training time of each run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-envs", type=int, default=None, help="override Args.num_envs")
    parser.add_argument("--out", default=None, help="append the result as a JSON line here")
    args = parser.parse_args()
    runs = {"raw": [], "served": []}
    for repeat in range(args.repeats):
        for kind, run in (("raw", raw_run), ("served", served_run)):
            r = run(args.seconds, repeat, args.num_envs)
            runs[kind].append(r)
            print(f"{kind:6s} repeat {repeat}: {r['steps']} steps in {r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU "
                  f"-> {r['steps'] / r['wall']:.0f} steps/s wall, {r['steps'] / r['cpu']:.0f} steps/CPU-s", flush=True)
    rate = {k: {m: sum(r["steps"] for r in v) / sum(r[m] for r in v) for m in ("wall", "cpu")} for k, v in runs.items()}
    result = {
        "num_envs": args.num_envs, "seconds": args.seconds, "repeats": args.repeats,
        "raw_steps_per_s": rate["raw"], "served_steps_per_s": rate["served"],
        "overhead_wall": rate["raw"]["wall"] / rate["served"]["wall"],
        "overhead_cpu": rate["raw"]["cpu"] / rate["served"]["cpu"],
        "load_average": Path("/proc/loadavg").read_text().split()[:3],
    }
    print(json.dumps(result, indent=1))
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
