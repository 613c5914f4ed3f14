"""How the bandits checks treat real students' numerical idioms, correct and buggy.

Each idiom is the reference (solutions/bandits/bandits.py) with a few lines changed the way
public solutions write them, or a whole port (Sutton & Barto's chapter 2 code,
tests/ports/bandits_sutton_barto.py); the bugs are solutions/bandits/variants.py and a few more.
The grader's own check functions run in this process on the worker's adapter (no sandbox: the
numbers are the same), over many grading seeds, and this records per idiom: how often each check
passes, the first line of each failure, and for the testbed checks of the methods without chance
(UCB, optimistic greedy) how far the chosen arms lay below the best score: the largest gap
(relative to 1 + |best|, graders/bandits/testbed.py) and how many actions lay above each edge of
GAP_EDGES, which is what sets TIE_TOLERANCE.

    .venv/bin/python bench/bandits_idioms.py --seeds 20 --out bench/results/bandits_idioms.jsonl
    .venv/bin/python bench/bandits_idioms.py --summarize bench/results/bandits_idioms.jsonl

One JSON row per idiom and seed (commit and settings in each). docs/bandits.md records the figures.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
import types
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import provenance  # noqa: E402

from graders import assignments, variants  # noqa: E402
from graders.bandits import grader as bandits  # noqa: E402
from graders.bandits import testbed as testbeds  # noqa: E402
from graders.checks import CheckFailed  # noqa: E402
from graders.contract import Context  # noqa: E402
from graders_worker.adapters import bandits as adapter  # noqa: E402

REFERENCE = assignments.solution_path("bandits").read_text()
PORT = (ROOT / "tests/ports/bandits_sutton_barto.py").read_text()

# name -> (checks it must lose: the named bug it carries, or none; edits of the reference, or a whole source)
IDIOMS: dict[str, tuple[tuple[str, ...], list[tuple[str, str]] | str]] = {
    "reference": ((), []),
    "sutton_barto_port": (("gradient_bandit_policy",), PORT),
    "float32_estimates": ((), [
        ("self.Q = np.full((n_runs, k), float(initial_value))", "self.Q = np.full((n_runs, k), initial_value, np.float32)"),
        ("self.Q = np.zeros((n_runs, k))", "self.Q = np.zeros((n_runs, k), np.float32)"),
        ("self.H = np.zeros((n_runs, k))", "self.H = np.zeros((n_runs, k), np.float32)"),
    ]),
    "ucb_float32_scores": ((), [("return argmax_random_ties(scores, self.rng)",
                                 "return argmax_random_ties(scores.astype(np.float32), self.rng)")]),
    "ucb_count_plus_1e-5_no_inf": ((), [  # Sutton & Barto's stabiliser in the reference's structure
        ("np.sqrt(np.log(self.t) / self.N)", "np.sqrt(np.log(self.t) / (self.N + 1e-5))"),
        ("scores = np.where(self.N == 0, np.inf, self.Q + bonus)", "scores = self.Q + bonus"),
    ]),
    "ucb_count_plus_1e-8": ((), [("np.sqrt(np.log(self.t) / self.N)", "np.sqrt(np.log(self.t) / (self.N + 1e-8))")]),
    "ucb_count_plus_1e-6_and_log_stabiliser": ((), [
        ("np.sqrt(np.log(self.t) / self.N)", "np.sqrt(np.log(self.t + 1e-8) / (self.N + 1e-6) + 1e-12)")]),
    "ucb_index_order_ties": ((), [("        return argmax_random_ties(scores, self.rng)\n",
                                   "        return scores.argmax(axis=1)\n")]),
    "ties_by_np_isclose": ((), [("is_max = values == values.max(axis=1, keepdims=True)",
                                 "is_max = np.isclose(values, values.max(axis=1, keepdims=True))")]),
    "ties_by_tiny_noise": ((), [("    keys = np.where(is_max, rng.random(values.shape), -1.0)\n    return keys.argmax(axis=1)",
                                 "    return np.argmax(values + 1e-9 * rng.random(values.shape), axis=1)")]),
    "sample_average_from_sums": ((), [
        ("        self.N = np.zeros((n_runs, k), dtype=np.int64)  # times each arm was chosen\n\n    def act",
         "        self.N = np.zeros((n_runs, k), dtype=np.int64)  # times each arm was chosen\n"
         "        self.S = np.zeros((n_runs, k))\n\n    def act"),
        ("        step = 1.0 / self.N[runs, actions] if self.step_size is None else self.step_size\n"
         "        self.Q[runs, actions] += step * (rewards - self.Q[runs, actions])",
         "        if self.step_size is None:\n            self.S[runs, actions] += rewards\n"
         "            self.Q[runs, actions] = self.S[runs, actions] / self.N[runs, actions]\n"
         "        else:\n            self.Q[runs, actions] += self.step_size * (rewards - self.Q[runs, actions])"),
    ]),
    "gradient_gumbel_max_sampling": ((), [
        ("        cumulative = self.policy().cumsum(axis=1)\n        u = self.rng.random((len(cumulative), 1))\n"
         "        return np.minimum((u > cumulative).sum(axis=1), cumulative.shape[1] - 1)",
         "        return np.argmax(np.log(self.policy()) + self.rng.gumbel(size=self.H.shape), axis=1)")]),
}
# bugs beyond solutions/bandits/variants.py: (checks it must lose, edits)
EXTRA_BUGS: dict[str, tuple[tuple[str, ...], list[tuple[str, str]]]] = {
    "ucb_count_plus_one": (("ucb_selection",), [("np.sqrt(np.log(self.t) / self.N)", "np.sqrt(np.log(self.t) / (self.N + 1))")]),
    "ucb_log_base_10": (("ucb_selection",), [("np.sqrt(np.log(self.t) / self.N)", "np.sqrt(np.log10(self.t) / self.N)")]),
    "ucb_without_sqrt": (("ucb_selection",), [("np.sqrt(np.log(self.t) / self.N)", "(np.log(self.t) / self.N)")]),
}


def _apply(edits, reference: str = REFERENCE) -> str:
    if isinstance(edits, str):
        return edits
    text = reference
    for old, new in edits:
        if text.count(old) != 1:
            raise ValueError(f"edit does not apply once: {old!r}")
        text = text.replace(old, new)
    return text


def cases() -> dict[str, tuple[bool, tuple[str, ...], str]]:
    """name -> (correct, the checks it must lose, source)."""
    found = {name: (True, loses, _apply(edits)) for name, (loses, edits) in IDIOMS.items()}
    for v in variants.load("bandits"):
        found[f"bug/{v.name}"] = (False, v.loses, v.source())
    for name, (loses, edits) in EXTRA_BUGS.items():
        found[f"bug/{name}"] = (False, loses, _apply(edits))
    return found


def module_of(source: str) -> types.ModuleType:
    module = types.ModuleType("submission")
    exec(compile(source, "submission", "exec"), module.__dict__)  # noqa: S102 - the bench's own idioms
    return module


class InProcessWorker:
    """The adapter called in this process; callbacks answered directly (what the pipes would carry)."""

    def __init__(self, module):
        self.module = module

    def call(self, name, *args, timeout=None, callbacks=None, clock=None):
        fn = getattr(adapter, name, None)
        saved = adapter.callback
        if callbacks:
            adapter.callback = lambda cb, *a: callbacks[cb](*a)
        try:
            return fn(self.module, *args) if fn is not None else getattr(self.module, name)(*args)
        finally:
            adapter.callback = saved


class Recording(testbeds.Testbed):
    """The grader's testbed, remembering the rule it held the player to."""

    rules: list = []

    def __init__(self, *args, rule=None, **kwargs):
        super().__init__(*args, rule=rule, **kwargs)
        Recording.rules.append(rule)


# the testbed checks that play what each top-level definition of the template decides
PLAYED_BY = {"argmax_random_ties": ("testbed_epsilon_greedy", "testbed_optimistic_greedy", "testbed_ucb"),
             "EpsilonGreedy": ("testbed_epsilon_greedy", "testbed_optimistic_greedy"), "UCB": ("testbed_ucb",),
             "GradientBandit": ("testbed_gradient_with_baseline", "testbed_gradient_without_baseline")}


def _definitions(source: str) -> dict[str, str]:
    tree = ast.parse(source)
    return {node.name: ast.dump(node) for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}


def touched_testbeds(source: str) -> set[str]:
    """The testbed checks whose players differ from the reference's (the others play the reference's code)."""
    mine, reference = _definitions(source), _definitions(REFERENCE)
    return {check for name, checks in PLAYED_BY.items() if mine.get(name) != reference.get(name) for check in checks}


def run_case(name: str, source: str, seed: int, testbed: bool) -> dict:
    touched = touched_testbeds(source) if name != "reference" else set(sum(PLAYED_BY.values(), ()))
    checks = [c for c in assignments.grader("bandits").checks if c.kind == "unit" or (testbed and c.name in touched)]
    module = module_of(source)
    row = {"checks": {}, "gaps": {}}
    for c in checks:
        ctx = Context("bandits", "cpu", {**bandits.DEFAULTS, "seeds": [seed]}, None)
        fixtures = {"worker": InProcessWorker(module), "ctx": ctx, "fresh_worker": lambda: InProcessWorker(module)}
        Recording.rules = []
        try:
            c.fn(**{p: fixtures[p] for p in c.fn.__code__.co_varnames[:c.fn.__code__.co_argcount]})
            row["checks"][c.name] = "passed"
        except CheckFailed as exc:
            row["checks"][c.name] = "failed: " + str(exc).split("\n")[0][:300]
        except Exception as exc:  # noqa: BLE001 - the student's code raised: the check's error
            row["checks"][c.name] = f"error: {type(exc).__name__}: {str(exc)[:200]}"
        for rule in Recording.rules:
            for r in getattr(rule, "rules", [rule]):
                if r.kind == "ucb" or (r.kind == "epsilon_greedy" and r.epsilon == 0.0):
                    row["gaps"][c.name] = {"worst": r.worst_gap, "above": dict(zip(map(str, testbeds.GAP_EDGES),
                                                                                    r.gap_counts))}
    return row


def summarize(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    by_case = defaultdict(list)
    for r in rows:
        by_case[r["case"]].append(r)
    print(f"tolerance {rows[0]['settings']['tie_tolerance']:g}; commit {rows[0]['commit']}")
    for name, found in by_case.items():
        correct, loses = found[0]["correct"], set(found[0]["loses"])
        counts = defaultdict(int)
        for r in found:
            for check, outcome in r["checks"].items():
                counts[check] += outcome == "passed"
        lost = {c: len(found) - n for c, n in counts.items() if n < len(found)}
        # a correct idiom loses nothing but the named check it carries; a bug loses its named unit checks on every
        # seed and no other unit check (losing the testbeds it plays as well is what they are for)
        unexpected = {c: n for c, n in lost.items() if c not in loses and (correct or not c.startswith("testbed_"))}
        missing = [c for c in loses if counts.get(c, 0) > 0]
        worst = max((g["worst"] for r in found for g in r["gaps"].values()), default=0.0)
        above = defaultdict(int)
        for r in found:
            for check, g in r["gaps"].items():
                for edge, n in g["above"].items():
                    above[(check, edge)] += n
        tb = {c.replace("testbed_", ""): {e: n for (cc, e), n in above.items() if cc == c and n}
              for c in {cc for cc, _ in above}}
        status = "ok" if not unexpected and not missing else "UNEXPECTED"
        print(f"{name:45} {'correct' if correct else 'bug':7} seeds {len(found):3}  {status}  lost "
              f"{dict(sorted(lost.items())) or '-'}  worst gap {worst:.2e}  actions above each gap {tb or '-'}")




def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="grading seeds 0..N-1 (unit checks and testbeds)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--only", default="", help="comma-separated case names (default: all)")
    parser.add_argument("--no-testbed", action="store_true", help="unit checks only")
    parser.add_argument("--out", type=Path, help="append JSON rows here")
    parser.add_argument("--summarize", type=Path, help="print the table of a rows file and stop")
    args = parser.parse_args(argv)
    if args.summarize:
        summarize(args.summarize)
        return 0
    bandits.Testbed = Recording
    settings = {"tie_tolerance": testbeds.TIE_TOLERANCE, "runs": bandits.DEFAULTS["testbed_runs"],
                "steps": bandits.DEFAULTS["testbed_steps"], "testbed": not args.no_testbed}
    stamp = provenance.stamp({**vars(args), **settings})
    chosen = cases()
    if args.only:
        chosen = {k: v for k, v in chosen.items() if k in args.only.split(",")}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for name, (correct, loses, source) in chosen.items():
            start = time.perf_counter()
            row = {**stamp, "case": name, "correct": correct, "loses": list(loses), "seed": seed,
                   **run_case(name, source, seed, not args.no_testbed)}
            row["seconds"] = round(time.perf_counter() - start, 2)
            line = json.dumps(row)
            print(line if args.out is None else f"{name} seed {seed}: {row['seconds']} s", flush=True)
            if args.out is not None:
                with args.out.open("a") as f:
                    f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
