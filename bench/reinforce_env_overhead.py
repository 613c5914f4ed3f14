"""What serving CartPole from the grader's process costs, next to a raw gymnasium loop.

The same training work both ways: the reference `train()` of solutions/reinforce
trains until it solves CartPole (its own stopping rule), from the same seed and the
same environment reset seeds, so both runs take exactly the same trajectory (the
served CartPoles are gymnasium's dynamics bit for bit; the bench checks that both
runs served the same number of steps):
- raw: in this process on gymnasium's own `SyncVectorEnv` (same-step autoreset);
- served: in a grading worker on the grader's `ServedVectorEnv`, one callback per
  vector step through the shared-memory fast path, exactly as the training check
  runs it (bench/served.py).
The overhead factor is served time / raw time, in wall seconds and in CPU seconds of
all processes involved, from the start of train(). Runs alternate (raw, served, raw,
...) so that load on a shared machine hits both alike. Imports happen before the
clocks start on both sides. The result is stamped with the commit and settings.

    PYTHONPATH=. nice -n 10 .venv/bin/python bench/reinforce_env_overhead.py --seeds 0-4 --num-envs 8

`--set name=value` and `--patch OLD=>NEW` change the reference's source as in
bench/reinforce_sweep.py (both runs get the same source), e.g. a quick look that stops
after two updates: `--patch "    while True:=>    for _ in range(2):"`.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import types
from pathlib import Path

from served import report, served_train

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import provenance  # noqa: E402
from bench.reinforce_sweep import patched_source  # noqa: E402

SOLUTION = ROOT / "solutions" / "reinforce" / "reinforce.py"


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def raw_run(seed: int, source: str) -> dict:
    import torch
    import torch._dynamo  # noqa: F401 - imported before the clock starts, as the grader's adapter does

    from graders.rl.cartpole import env_seeds

    torch.set_num_threads(1)
    ref = types.ModuleType("reference")
    sys.modules["reference"] = ref  # dataclasses look their module up
    exec(compile(source, str(SOLUTION), "exec"), ref.__dict__)
    steps = [0]

    def make_envs(n):
        envs = ref.make_gymnasium_envs(n)
        step, reset = envs.step, envs.reset

        def counted(actions):
            steps[0] += n
            return step(actions)

        envs.step = counted
        envs.reset = lambda seed=None, options=None: reset(seed=env_seeds(run_seed, "train", n))  # as the grader seeds
        return envs

    run_seed = seed
    wall, cpu = time.perf_counter(), cpu_seconds()
    ref.train(make_envs, seed=seed, time_budget_s=600)
    return {"steps": steps[0], "wall": time.perf_counter() - wall, "cpu": cpu_seconds() - cpu}


def served_run(seed: int, source: str) -> dict:
    from graders.rl.server import CartPoleServer

    server = CartPoleServer(seed)
    cost = served_train("reinforce", source, server, seed, 600)
    return {"steps": server.steps, "wall": cost["wall"], "cpu": cost["cpu"], "vector_steps": server.vector_steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-4", help="a range a-b (inclusive)")
    parser.add_argument("--num-envs", type=int, default=None, help="override Args.num_envs")
    parser.add_argument("--set", action="append", default=[], help="Args field override, name=value")
    parser.add_argument("--patch", action="append", default=[], help="source replacement OLD=>NEW")
    parser.add_argument("--out", default=None, help="append the result as a JSON line here")
    args = parser.parse_args()
    sets = args.set + ([f"num_envs={args.num_envs}"] if args.num_envs else [])
    source = patched_source("reinforce", sets, args.patch)
    first, last = map(int, args.seeds.split("-"))
    runs = {"raw": [], "served": []}
    for seed in range(first, last + 1):
        for kind, run in (("raw", raw_run), ("served", served_run)):
            r = run(seed, source)
            runs[kind].append(r)
            print(f"seed {seed} {kind:6s}: {r['steps']} steps in {r['wall']:.2f} s wall, {r['cpu']:.2f} s CPU "
                  f"-> {r['steps'] / r['wall']:.0f} steps/s wall, {r['steps'] / r['cpu']:.0f} steps/CPU-s", flush=True)
        if runs["raw"][-1]["steps"] != runs["served"][-1]["steps"]:
            print(f"seed {seed}: the two runs did different work; the comparison is off")
    rate = {k: {m: sum(r["steps"] for r in v) / sum(r[m] for r in v) for m in ("wall", "cpu")} for k, v in runs.items()}
    result = {
        **provenance.stamp(args), "num_envs": args.num_envs, "seeds": args.seeds,
        "raw_steps_per_s": rate["raw"], "served_steps_per_s": rate["served"],
        "overhead_wall": rate["raw"]["wall"] / rate["served"]["wall"],
        "overhead_cpu": rate["raw"]["cpu"] / rate["served"]["cpu"],
        "load_average": Path("/proc/loadavg").read_text().split()[:3],
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
