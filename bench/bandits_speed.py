"""Wall time of one whole bandits grading of the reference, pinned to one CPU core.

Run: .venv/bin/python bench/bandits_speed.py [--repeat 3] [--config TOML]
Pins this process (and so the worker it starts) to CPU 0, grades the reference
solution and prints the provenance stamp (one JSON line: commit, settings), the total
and the per-check seconds. Target: under 10 s (the graded testbed: no --config).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import provenance  # noqa: E402
from graders import assignments  # noqa: E402
from graders.config import Config  # noqa: E402
from graders.runner import grade  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--config", type=Path, help="an instructor config (e.g. a smaller testbed); default: none")
    args = parser.parse_args()
    config_text = args.config.read_text() if args.config else ""
    print(json.dumps(provenance.stamp({**vars(args), "config_text": config_text})))
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    totals = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        grading = grade("bandits", assignments.solution_path("bandits"), device="cpu", config=Config.load(args.config))
        totals.append(time.perf_counter() - start)
        assert grading.score == grading.max_score
    print(f"whole grading on one core: best {min(totals):.2f} s, median {sorted(totals)[len(totals) // 2]:.2f} s "
          f"over {args.repeat} runs (load average {os.getloadavg()[0]:.1f})")
    for r in grading.results:
        print(f"  {r.name:40} {r.seconds:6.2f} s")


if __name__ == "__main__":
    main()
