"""How long a student waits for the unit checks (`--unit`: every check that does not train) of each assignment.

    PYTHONPATH=. .venv/bin/python bench/unit_checks.py --repeats 3 --out bench/results/unit_checks.jsonl

For each assignment and repeat, fresh processes grade the reference solution:
- `cli`: the student's command, `python -m graders grade NAME solutions/NAME/NAME.py --unit`, timed from outside
  (wall clock: Python's start, the imports, the grading, the table); `cli_one_check`: the same with
  `--check FIRST` (the assignment's first unit check) instead of `--unit`;
- `after_imports`: a process that imports the grader and the modules its checks import (its PRELOAD: torch),
  as a notebook's kernel has after its first check(), then times `graders.runner.grade(..., unit=True)` alone
  (the workers' starts, each importing torch and the submission in a fresh process, included), with each
  check's own seconds;
- `cpu`: the CPU seconds (user + system) of the same command and its worker processes, and of the grader's
  imports alone, its PRELOAD included (`python -c "import graders.cli ..."`): what the grading costs whatever else
  runs on the machine.
  Counted with the workers confined by process limits (`[limits] isolation = "process"`): bubblewrap's pid
  namespace hides its processes' CPU time from the grader.
Each row notes the machine's load average: the machine may be shared, and wall-clock times grow with its load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import provenance

ROOT = provenance.ROOT
AFTER_IMPORTS = """
import importlib, json, sys, time
from graders import assignments
from graders.runner import grade
name, path = sys.argv[1], sys.argv[2]
for module in assignments.grader(name).preload:  # as in a notebook's kernel after its first check()
    importlib.import_module(module)
start = time.monotonic()
grading = grade(name, path, device="cpu", unit=True)
seconds = time.monotonic() - start
print(json.dumps({"seconds": seconds, "score": grading.score, "max_score": grading.max_score,
                  "checks": {r.name: round(r.seconds, 3) for r in grading.results if r.status != "skipped"},
                  "statuses": sorted({r.status for r in grading.results})}))
"""


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(name: str) -> list[dict]:
    from graders import assignments

    solution = ROOT / "solutions" / name / f"{name}.py"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "graders", "grade", name, str(solution), "--unit", "--device", "cpu"],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    cli = {"how": "cli", "seconds": round(time.monotonic() - start, 3), "returncode": done.returncode}
    done = subprocess.run([sys.executable, "-c", AFTER_IMPORTS, name, str(solution)], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"{name}: {done.stderr[-2000:]}")
    after = {"how": "after_imports", **json.loads(done.stdout.splitlines()[-1])}
    after["seconds"] = round(after["seconds"], 3)
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as config:
        config.write('[limits]\nisolation = "process"\n')
        config.flush()
        cpu = _cpu()
        subprocess.run([sys.executable, "-m", "graders", "grade", name, str(solution), "--unit", "--device", "cpu",
                        "--config", config.name], cwd=ROOT, capture_output=True, env=env, timeout=900, check=True)
        total = _cpu() - cpu
    cpu = _cpu()
    subprocess.run([sys.executable, "-c", f"import graders.cli, importlib; from graders import assignments; "
                    f"[importlib.import_module(m) for m in assignments.grader({name!r}).preload]"],
                   cwd=ROOT, env=env, timeout=900, check=True)
    imports = _cpu() - cpu
    first = next(c.name for c in assignments.grader(name).checks if c.kind == "unit")
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "graders", "grade", name, str(solution), "--check", first, "--device",
                           "cpu"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    one = {"how": "cli_one_check", "check": first, "seconds": round(time.monotonic() - start, 3),
           "returncode": done.returncode}
    return [cli, one, after, {"how": "cpu", "cpu_seconds": round(total, 3), "imports_cpu_seconds": round(imports, 3),
                         "after_imports_cpu_seconds": round(total - imports, 3)}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("assignments", nargs="*", help="default: all")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="append rows (JSON lines) here")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from graders import assignments

    names = args.assignments or assignments.names()
    stamp = provenance.stamp({**vars(args), "device": "cpu", "submission": "solutions/NAME/NAME.py"})
    rows = []
    for name in names:
        for repeat in range(args.repeats):
            for row in measure(name):
                row = {**stamp, "assignment": name, "repeat": repeat, **row,
                       "load_average_1min": round(os.getloadavg()[0], 2)}
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.out:
                    with args.out.open("a") as f:
                        f.write(json.dumps(row) + "\n")
    print(f"\n{'assignment':20} {'cli wall s':>10} {'after imports wall s':>21} {'cpu s after imports':>20}  "
          "slowest check (wall s)")
    for name in names:
        def median(how: str, key: str, name=name) -> float:
            return statistics.median(r[key] for r in rows if r["assignment"] == name and r["how"] == how)

        after = [r for r in rows if r["assignment"] == name and r["how"] == "after_imports"]
        slowest = max(after[-1]["checks"].items(), key=lambda kv: kv[1])
        print(f"{name:20} {median('cli', 'seconds'):>10.2f} {median('after_imports', 'seconds'):>21.2f} "
              f"{median('cpu', 'after_imports_cpu_seconds'):>20.2f}  {slowest[0]} {slowest[1]:.2f}")


if __name__ == "__main__":
    main()
