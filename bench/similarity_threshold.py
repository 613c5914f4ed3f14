"""The separation that sets graders/similarity.py's THRESHOLD and MIN_OVERLAP, measured.

    python bench/similarity_threshold.py [--seeds 5] [--assignments bandits]

For each assignment of the corpus (tests/fixtures/similarity: independent implementations written for this suite):
- independent pairs: every pair of implementations, and every pair of *partial* ones (each implementation cut to
  one of the places students fill, the others left as the template: students who did a part);
- copies: each implementation against each of its disguises (renamed, reordered, re-commented, re-spaced, all of
  them, and all of them handed in as a notebook), over `--seeds` seeds of the disguises.
Everything is compared in one class per assignment, as the batch compares a class. Prints, per assignment, the
highest independent score and the lowest copy score (and the same for the shared characters), and appends a row
(commit, settings, figures) to --out (bench/results/similarity_threshold.jsonl).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import similarity_corpus as corpus  # noqa: E402

from bench import provenance  # noqa: E402
from graders import similarity  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "similarity_threshold.jsonl"


def partials(assignment: str, name: str) -> dict[str, str]:
    """The implementation with only one of its places filled, one version per place."""
    written = corpus.bodies(assignment, name)
    return {f"{name}/{keep}": corpus.fill(assignment, [b if i == keep else None for i, b in enumerate(written)])
            for keep in range(len(written))}


def measure(assignment: str, seeds: int) -> dict:
    templates = similarity.template_texts([ROOT / "assignments" / assignment / f"{assignment}{s}"
                                           for s in (".py", ".ipynb")])
    originals = corpus.all_implementations(assignment)
    codes: dict[str, str | similarity.Code] = {f"{n} original": s for n, s in originals.items()}
    for name in originals:
        for part, text in partials(assignment, name).items():
            codes[f"{name} partial {part}"] = text
    for name, source in originals.items():
        for seed in range(seeds):
            for disguise, make in corpus.DISGUISES.items():
                codes[f"{name} copy {disguise} {seed}"] = make(source, assignment, seed)
            codes[f"{name} copy notebook {seed}"] = similarity.Code("", similarity.notebook_code(
                corpus.as_notebook(corpus.everything(source, assignment, seed))))
    start = time.monotonic()
    result = similarity.compare(codes, templates, prefilter=0.0)  # every pair sharing a fingerprint, in full
    seconds = time.monotonic() - start
    by_pair = {(p.a, p.b): p for p in result.pairs} | {(p.b, p.a): p for p in result.pairs}
    independent = [p for p in result.pairs if p.a.split()[0] != p.b.split()[0]]
    copies = [by_pair.get((f"{n} original", c)) for n in originals for c in codes if c.startswith(f"{n} copy ")]
    missing = sum(p is None for p in copies)
    copies = [p for p in copies if p is not None]
    worst_copy = min(copies, key=lambda p: p.score)
    best_independent = max(independent, key=lambda p: p.score)
    return {
        "assignment": assignment, "implementations": len(originals), "codes": len(codes),
        "independent_pairs": len(codes) * (len(codes) - 1) // 2 - sum(m * (m - 1) // 2 for m in Counter(
            c.split()[0] for c in codes).values()),
        "independent_pairs_sharing_code": len(independent), "copy_pairs": len(copies) + missing,
        "copies_sharing_nothing": missing,
        "independent_max_score": round(best_independent.score, 4),
        "independent_max_pair": [best_independent.a, best_independent.b],
        "independent_max_overlap": max(p.overlap for p in independent),
        "independent_flagged": sum(similarity.flags(p) for p in independent),
        "independent_max_score_sharing_min_overlap": round(max((p.score for p in independent
                                                                if p.overlap >= similarity.MIN_OVERLAP), default=0), 4),
        "copy_min_score": round(worst_copy.score, 4), "copy_min_pair": [worst_copy.a, worst_copy.b],
        "copy_min_overlap": min(p.overlap for p in copies),
        "copies_missed": missing + sum(not similarity.flags(p) for p in copies),
        "independent_flagged_pairs": [[p.a, p.b, round(p.score, 3), p.overlap] for p in independent
                                      if similarity.flags(p)][:10],
        "independent_max_overlap_at_threshold": max((p.overlap for p in independent
                                                     if p.score >= similarity.THRESHOLD), default=0),
        "min_fingerprint_share_at_threshold": round(min(
            p.fingerprints for p in result.pairs if p.score >= similarity.THRESHOLD), 4),
        "pairs_at_threshold_below_prefilter": sum(p.score >= similarity.THRESHOLD and
                                                  p.fingerprints < similarity.PREFILTER for p in result.pairs),
        "compare_seconds_all_pairs": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--assignments", nargs="+", default=corpus.known_assignments(), choices=corpus.known_assignments(),
                        help="the corpus's assignments to measure (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="append the record here (one JSON line)")
    args = parser.parse_args()
    rows = []
    for assignment in args.assignments:
        row = measure(assignment, args.seeds)
        rows.append(row)
        print(json.dumps(row))
    constants = {"threshold": similarity.THRESHOLD, "min_overlap": similarity.MIN_OVERLAP,
                 "noise_chars": similarity.NOISE_CHARS, "guarantee_chars": similarity.GUARANTEE_CHARS,
                 "prefilter": similarity.PREFILTER}
    record = {**provenance.stamp({**vars(args), **constants}), "date": time.strftime("%Y-%m-%d %H:%M"),
              "seeds": args.seeds, **constants, "rows": rows}
    args.out.parent.mkdir(exist_ok=True)
    with open(args.out, "a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
