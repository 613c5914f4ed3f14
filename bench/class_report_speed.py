"""What the class report costs per 100 students: the item analysis and the code similarity, as `graders batch` and
`graders report` write them.

    python bench/class_report_speed.py [--students 100] [--repeat 3]

A results folder of `--students` reinforce students (the assignment with the most code of the corpus): the 10
independent implementations of tests/fixtures/similarity, each also cut to one of its places (students who did a
part) and disguised copies, to make up the class; records with every status and a failure message per failed check.
Times (best of `--repeat`, in this process, after one warm-up that pays the imports): the item analysis
(class_report.write), the code similarity (similarity_report.write: reading the copies, fingerprints, pairs, pages),
and the whole `python -m graders report RESULTS` command (a fresh interpreter: imports included). Appends a row,
stamped with the commit and settings, to --out (bench/results/class_report_speed.jsonl).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import similarity_corpus as corpus  # noqa: E402

from bench import provenance  # noqa: E402
from graders import assignments  # noqa: E402
from graders.batch import records as batch_records  # noqa: E402
from graders.outputs import class_report, similarity_report  # noqa: E402
from graders.results import STATUSES, CheckResult, Grading, Record, student_status  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "class_report_speed.jsonl"
ASSIGNMENT = "reinforce"


def sources(n: int) -> list[str]:
    originals = corpus.all_implementations(ASSIGNMENT)
    out = list(originals.values())
    for name in originals:
        written = corpus.bodies(ASSIGNMENT, name)
        out += [corpus.fill(ASSIGNMENT, [b if i == keep else None for i, b in enumerate(written)])
                for keep in range(len(written))]
    seed = 0
    while len(out) < n:
        name = sorted(originals)[seed % len(originals)]
        out.append(corpus.everything(originals[name], ASSIGNMENT, seed))
        seed += 1
    return out[:n]


def record(student: str, rng: random.Random) -> Record:
    results = []
    for c in assignments.grader(ASSIGNMENT).checks:
        status = rng.choice(STATUSES[:1] * 6 + STATUSES[1:])
        message = "" if status == "passed" else rng.choice([
            f"loss gradient: the sign of the loss is reversed (cosine {-rng.random():.3f})",
            f"mean return {rng.uniform(10, 480):.1f} over 100 episodes, expected at least 490",
            f"your code raised ValueError: shapes ({rng.randint(1, 64)},) and (2,) not aligned"])
        results.append(CheckResult(c.name, c.points if status == "passed" else 0.0, c.points, status, message,
                                   seconds=rng.expovariate(1 / (30 if c.kind == "training" else 0.2)), kind=c.kind))
    grading = Grading(ASSIGNMENT, f"{student}.py", "cpu", results=results, seconds=sum(r.seconds for r in results))
    return Record(student, "sha", student_status(grading), grading)


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS, help="append the row here (one JSON line)")
    args = parser.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        records = []
        for i, source in enumerate(sources(args.students)):
            student = f"student{i:03d}"
            folder = out / "students" / student
            folder.mkdir(parents=True)
            batch_records.write_snapshot(folder, ASSIGNMENT, ".py", source.encode())
            records.append(record(student, rng))
            batch_records.write_outputs(folder, records[-1])
        checks = assignments.grader(ASSIGNMENT).checks
        similarity_report.write(out, ASSIGNMENT, records)  # warm-up: imports (copydetect, pygments, matplotlib)
        class_report.write(checks, records, out)
        item = best_of(args.repeat, lambda: class_report.write(checks, records, out))
        found = {}
        code = best_of(args.repeat, lambda: found.setdefault("r", similarity_report.write(out, ASSIGNMENT, records)))
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "graders", "report", str(out)], cwd=ROOT, capture_output=True,
                              text=True)
        command = time.perf_counter() - start
        assert done.returncode == 0, done.stderr
        result = found["r"]
    row = {**provenance.stamp(args), "date": time.strftime("%Y-%m-%d %H:%M"), "load_avg_1min": os.getloadavg()[0],
           "cpus": os.cpu_count(), "students": args.students, "assignment": ASSIGNMENT,
           "pairs_compared_in_full": len(result.pairs), "flagged": len(result.flagged()),
           "item_analysis_s": round(item, 3), "code_similarity_s": round(code, 3),
           "report_command_s": round(command, 3)}
    print(json.dumps(row))
    args.out.parent.mkdir(exist_ok=True)
    with open(args.out, "a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
