"""Wall time of one whole bandits grading of the reference, pinned to one CPU core.

Run: .venv/bin/python bench/bandits_speed.py [--repeat 3]
Pins this process (and so the worker it starts) to CPU 0, grades the reference
solution and prints the total and the per-check seconds. Target: under 10 s.
"""

from __future__ import annotations

import argparse
import os
import time

from graders import assignments
from graders.runner import grade


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    totals = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        grading = grade("bandits", assignments.solution_path("bandits"), device="cpu")
        totals.append(time.perf_counter() - start)
        assert grading.score == grading.max_score
    print(f"whole grading on one core: best {min(totals):.2f} s, median {sorted(totals)[len(totals) // 2]:.2f} s "
          f"over {args.repeat} runs (load average {os.getloadavg()[0]:.1f})")
    for r in grading.results:
        print(f"  {r.name:40} {r.seconds:6.2f} s")


if __name__ == "__main__":
    main()
