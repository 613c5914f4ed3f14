"""What a worker's start costs: start (sandbox, interpreter, the grader's environment), one call, close.

Issue 28 changed how the worker finds its packages (graders/sandbox/pythonenv.py: `-S`,
the grader's site directories processed by the worker, links made again under
bubblewrap). This bench times `Worker(...)` start + one call + close for a submission
importing numpy, in each isolation mode, alternating with the same loop under another
checkout's grader code (`--other DIR`, e.g. `git archive main | tar -x -C /tmp/main`),
so both see the same load. Each row of bench/results/worker_start.jsonl names the commit
of this checkout and the settings.

    PYTHONDONTWRITEBYTECODE=1 .venv/bin/python bench/worker_start.py --repeat 5 --other /tmp/main
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import provenance

ROOT = Path(__file__).resolve().parent.parent
LOOP = """
import json, sys, time
from graders.sandbox import Limits, Worker
mode, repeat = sys.argv[1], int(sys.argv[2])
times = []
for _ in range(repeat):
    began = time.perf_counter()
    with Worker("bandits", "import numpy\\ndef f():\\n    return 1\\n", limits=Limits(isolation=mode)) as worker:
        assert worker.call("f", timeout=120) == 1
    times.append(time.perf_counter() - began)
print(json.dumps(times))
"""


def _run(code_dir: Path, mode: str, repeat: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(code_dir), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-c", LOOP, mode, str(repeat)], env=env, cwd=code_dir,
                          capture_output=True, text=True, timeout=600, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="starts per mode and round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, each code alternating")
    parser.add_argument("--other", type=Path, help="another checkout to time the same way (the code before)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "worker_start.jsonl",
                        help="append the row here")
    args = parser.parse_args()
    codes = {"this": ROOT, **({"other": args.other.resolve()} if args.other else {})}
    times: dict[tuple[str, str], list[float]] = {}
    loads = []
    for _ in range(args.rounds):
        for mode in ("bubblewrap", "process"):
            for name, folder in codes.items():
                loads.append(os.getloadavg()[0])
                times.setdefault((name, mode), []).extend(_run(folder, mode, args.repeat))
    row = {**provenance.stamp(args), "when": time.strftime("%Y-%m-%d %H:%M"), "load_min": min(loads),
           "load_max": max(loads),
           **{f"{name}_{mode}_median_s": round(statistics.median(t), 3) for (name, mode), t in times.items()}}
    print(json.dumps(row))
    with open(args.out, "a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
