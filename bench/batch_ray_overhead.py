"""The Ray executor's overhead: the same N submissions through the local batch and through `--ray local`.

    python bench/batch_ray_overhead.py                # 20 bandits references, the graded testbed
    python bench/batch_ray_overhead.py -n 6 --fast    # a quick look (small testbed)

Each run is a whole `python -m graders batch bandits ... --device cpu --regrade` command
(start-up and tables included), the local one with `-j` = the cores, the Ray one with
`--ray local` (a Ray started on this machine with as many CPUs: as many gradings at once).
Reports, and appends to --out (bench/results/batch_ray_overhead.jsonl), stamped with the commit and settings:
- wall time and CPU seconds of each command's whole process tree (batch, Ray's processes,
  grading processes, sandboxes, workers; sampled from /proc as bench/batch_throughput.py does),
  and the overhead ratios ray / local (goal: wall <= 1.05x);
- Ray's fixed cost: a command that starts a local Ray, runs one empty task and stops it;
- the per-task overhead: what the Ray run costs beyond the local run and Ray's fixed cost,
  per grading, in CPU seconds (load-independent) and in wall seconds (x the gradings at once).
The machine's load average is recorded with the numbers: on a shared machine wall times are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from batch_throughput import TreeCPU, cli, config_text, write_class  # noqa: E402

from bench import provenance  # noqa: E402
from graders.batch import records  # noqa: E402
from graders.batch.scheduler import available_cpus  # noqa: E402

RAY_FIXED = """
from graders.batch.ray_executor import connected
with connected("local") as ray:
    ray.get(ray.remote(lambda: 1).options(num_cpus=1).remote())
"""


def run(name: str, n: int, root: Path, options: list[str]) -> dict:
    out = root / f"out-{name}"
    wall, cpu = cli(str(root / "submissions"), "--out", str(out), "--device", "cpu", "--regrade", *options)
    graded = [records.read_record(p) for p in sorted((out / "students").iterdir())]
    assert len(graded) == n and all(r is not None for r in graded), name
    gradings = [r.grading.seconds for r in graded]
    return {"executor": name, "n": n, "wall_s": round(wall, 2), "cpu_s": round(cpu, 1),
            "grading_s_median": round(statistics.median(gradings), 2), "rows": {r.student: [
                (c.name, c.points, c.status) for c in r.grading.results] for r in graded}}


def ray_fixed() -> tuple[float, float]:
    """(wall, CPU seconds) of starting a local Ray, one empty task, stopping it."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", RAY_FIXED], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sampler = TreeCPU(proc.pid)
    proc.wait()
    wall, cpu = time.monotonic() - start, sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"starting a local Ray failed ({proc.returncode})")
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=20, help="submissions (default 20)")
    parser.add_argument("--fast", action="store_true", help="a small testbed (not the graded one)")
    parser.add_argument("--config", type=Path, help="an instructor config instead of --fast's")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "batch_ray_overhead.jsonl",
                        help="append the result here (one JSON line)")
    args = parser.parse_args()

    jobs = available_cpus()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ray-bench-") as tmp:
        root = Path(tmp)
        written = write_class(root, args.n, config_text(args))
        config = ["--config", str(written)] if written else []
        local = run("local", args.n, root, ["-j", str(jobs), *config])
        ray = run("ray", args.n, root, ["--ray", "local", *config])
        fixed_wall, fixed_cpu = ray_fixed()
    assert ray.pop("rows") == local.pop("rows"), "the Ray batch graded differently"
    result = {
        **provenance.stamp({**vars(args), "jobs": jobs, "config_text": config_text(args)}),
        "date": time.strftime("%Y-%m-%d %H:%M"), "cpus": jobs, "fast": args.fast, "n": args.n,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "runs": [local, ray],
        "wall_ratio": round(ray["wall_s"] / local["wall_s"], 3),
        "cpu_ratio": round(ray["cpu_s"] / local["cpu_s"], 3),
        "ray_fixed_wall_s": round(fixed_wall, 2), "ray_fixed_cpu_s": round(fixed_cpu, 1),
        # beyond the local run and Ray's fixed cost, per grading
        "per_task_cpu_s": round((ray["cpu_s"] - local["cpu_s"] - fixed_cpu) / args.n, 3),
        "per_task_wall_s": round((ray["wall_s"] - local["wall_s"] - fixed_wall) * jobs / args.n, 3),
        "wall_ratio_without_ray_start": round((ray["wall_s"] - fixed_wall) / local["wall_s"], 3),
    }
    print(json.dumps(result, indent=1))
    with open(args.out, "a") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
