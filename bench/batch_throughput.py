"""Batch throughput: N copies of the bandits reference graded with -j1 and -j2, and the fixed costs.

    python bench/batch_throughput.py                 # 20 submissions, -j1 then -j2
    python bench/batch_throughput.py -n 6 --fast     # a quick look (small testbed)
    python bench/batch_throughput.py --config TOML   # an instructor config of your own

Reports, and appends to --out (bench/results/batch_throughput.jsonl), stamped with the commit and settings:
- wall time and throughput (submissions per minute) of each -j, and the speed-up, each
  -j timed as a whole `python -m graders batch` command (start-up and tables included);
- the batch's fixed costs (interpreter, imports, tables, summary plot: a re-run that skips everyone),
  and its per-submission overhead: (-j1 wall time - fixed costs) / n - the mean
  grading's own time (fork of the preloaded grading process, writing the outputs);
- the worker's start-up (process, sandbox, imports) until its first call returns, for a
  submission importing numpy (bandits) and one importing torch.
- the CPU seconds of each run's whole process tree (batch, grading processes, sandboxes,
  workers), sampled from /proc: unlike wall time, it does not depend on what else the
  machine runs, so it shows whether -j2 costs more CPU per submission than -j1.
The machine's load average is recorded with the numbers: on a shared machine they are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import provenance  # noqa: E402
from graders.batch import records  # noqa: E402
from graders.sandbox import Worker  # noqa: E402

FAST = "[bandits]\ntestbed_runs = 200\ntestbed_steps = 300\n"


def config_text(args: argparse.Namespace) -> str:
    """The instructor config the batches run with: --config's, --fast's small testbed, or none (the graded one)."""
    return args.config.read_text() if args.config else FAST if args.fast else ""


def write_class(root: Path, n: int, config: str) -> Path | None:
    """n copies of the bandits reference in root/submissions (each a different file); the config, if any."""
    solution = (REPO / "solutions" / "bandits" / "bandits.py").read_text()
    (root / "submissions").mkdir()
    for i in range(n):
        (root / "submissions" / f"student{i:02d}.py").write_text(solution + f"\n# copy {i}\n")
    if not config:
        return None
    (root / "config.toml").write_text(config)
    return root / "config.toml"


class TreeCPU:
    """CPU seconds used by a process and all its descendants, sampled from /proc.

    rusage cannot see them all: a worker's CPU time is lost when its sandbox is killed
    with it. Sampling every 50 ms misses at most 50 ms per short-lived process.
    """

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, root_pid: int):
        self.root = root_pid
        self.seen: dict[tuple[int, str], float] = {}  # (pid, start time) -> last CPU seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        stats = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    text = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
                stats[int(entry)] = (int(fields[1]), fields[19], (int(fields[11]) + int(fields[12])) / self.TICK)
        family, frontier = {self.root}, {self.root}
        while frontier:
            frontier = {pid for pid, (ppid, _, _) in stats.items() if ppid in frontier} - family
            family |= frontier
        for pid in family:
            if pid in stats:
                _, started, cpu = stats[pid]
                self.seen[(pid, started)] = max(cpu, self.seen.get((pid, started), 0.0))

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return sum(self.seen.values())


def cli(*args: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of its whole process tree) of one `python -m graders batch ...`,
    run as an instructor would: a fresh process."""
    start = time.monotonic()
    with tempfile.TemporaryFile() as output:
        proc = subprocess.Popen([sys.executable, "-m", "graders", "batch", "bandits", *args], cwd=REPO,
                                stdout=output, stderr=subprocess.STDOUT)
        sampler = TreeCPU(proc.pid)
        proc.wait()
        wall = time.monotonic() - start
        cpu = sampler.stop()
        if proc.returncode != 0:
            output.seek(0)
            raise RuntimeError(f"batch {args} exited with {proc.returncode}:\n{output.read()[-3000:].decode()}")
    return wall, cpu


def run(n: int, jobs: int, root: Path, config: Path | None) -> dict:
    out = root / f"out-j{jobs}"
    options = ["--device", "cpu", "--regrade", "-j", str(jobs)] + (["--config", str(config)] if config else [])
    wall, cpu = cli(str(root / "submissions"), "--out", str(out), *options)
    graded = [records.read_record(p) for p in sorted((out / "students").iterdir())]
    assert len(graded) == n and all(r is not None for r in graded)
    gradings = [r.grading.seconds for r in graded]
    return {"jobs": jobs, "n": n, "wall_s": round(wall, 2), "per_minute": round(60 * n / wall, 2),
            "cpu_s": round(cpu, 1), "cores_used": round(cpu / wall, 2),
            "grading_s_median": round(statistics.median(gradings), 2),
            "grading_s_mean": round(statistics.mean(gradings), 2),
            "scores": sorted({r.grading.score for r in graded})}


def worker_startup(code: str, repeats: int) -> float:
    """Median seconds from creating a worker to the return of its first (trivial) call."""
    times = []
    for _ in range(repeats):
        start = time.monotonic()
        with Worker("bandits", code + "\n\ndef bench_ping():\n    return 1\n") as worker:
            assert worker.call("bench_ping", timeout=120) == 1
            times.append(time.monotonic() - start)
    return round(statistics.median(times), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=20, help="submissions (default 20)")
    parser.add_argument("--fast", action="store_true", help="a small testbed (not the graded one)")
    parser.add_argument("--config", type=Path, help="an instructor config instead of --fast's")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=5, help="worker start-ups measured")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "batch_throughput.jsonl",
                        help="append the result here (one JSON line)")
    args = parser.parse_args()

    solution = (REPO / "solutions" / "bandits" / "bandits.py").read_text()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        root = Path(tmp)
        config = write_class(root, args.n, config_text(args))
        runs = [run(args.n, jobs, root, config) for jobs in args.jobs]
        # A re-run that skips everyone: the batch's fixed costs (interpreter, imports, tables, summary plot).
        fixed, fixed_cpu = cli(str(root / "submissions"), "--out", str(root / f"out-j{args.jobs[0]}"),
                               "--device", "cpu", *(["--config", str(config)] if config else []))
    startup = {"numpy (bandits reference)": worker_startup(solution, args.repeats),
               "torch": worker_startup("import torch\nimport numpy as np\n", args.repeats)}
    # Overhead of the batch per student: -j1's wall time less the fixed costs, over n, less a grading's own time.
    j1 = next((r for r in runs if r["jobs"] == 1), None)
    batch_overhead = round((j1["wall_s"] - fixed) / args.n - j1["grading_s_mean"], 3) if j1 else None
    result = {
        **provenance.stamp({**vars(args), "config_text": config_text(args)}),
        "date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(), "fast": args.fast,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "runs": runs, "batch_fixed_s": round(fixed, 2), "batch_fixed_cpu_s": round(fixed_cpu, 2),
        "worker_startup_s": startup,
        "batch_overhead_per_student_s": batch_overhead,
    }
    if len(runs) >= 2:
        result["speedup"] = round(runs[0]["wall_s"] / runs[-1]["wall_s"], 2)
        # An estimate for an idle machine, from CPU seconds, which other tenants do not inflate:
        # the fixed costs (CPU-bound imports) run alone, then the gradings' CPU spreads over
        # min(jobs, cores) cores. It assumes one grading keeps one core busy, as it does when
        # nothing else runs (grader and worker take turns; neither waits on I/O).
        cpus = len(os.sched_getaffinity(0))
        idle = [fixed_cpu + (r["cpu_s"] - fixed_cpu) / min(r["jobs"], cpus) for r in runs]
        result["speedup_idle_estimate"] = round(idle[0] / idle[-1], 2)
    print(json.dumps(result, indent=1))
    with open(args.out, "a") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
