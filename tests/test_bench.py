"""Every bench script runs with tiny arguments and stamps what it writes with the commit and settings (issue 31.6).

The bench scripts (bench/*.py) import grader internals; run nowhere else, they would rot silently. SMOKE maps
each script to the runs that make it finish in seconds (one seed, tiny budgets, a temporary --out) and says
where its rows go; each run must exit 0, and every row it writes must carry `provenance.stamp`: this commit,
settings that name every option given, the machine. A summary written from rows names their commits
(`row_commits`). `test_every_bench_file_is_smoke_tested` keeps SMOKE complete.

A new bench script: start every row (JSONL line, summary, printed table that is saved) with
`provenance.stamp(args)` (bench/provenance.py), give it options that make it tiny, and add its runs to SMOKE.

Each script runs as `PYTHONPATH=. python bench/NAME.py ARGS` would, in a child forked from one interpreter (per
test process) that imported numpy, torch, gymnasium and the graders first: a script pays for its own work, not
for those imports (seconds of CPU each on CI's 2 cores). The scripts whose smallest run is whole grading commands
(`graders batch`, `graders grade`: fresh interpreters, workers, Ray) cost more than the suite can spend on them:
BENCH_SMOKE_HEAVY=1 runs them too (docs/benchmarks.md gives the cost of each).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import FAST_BANDITS, NEEDS_FASHION_MNIST, OPT_IN_HEAVY_BENCH, ROOT

from graders import datasets
from graders.nas import space

BENCH = ROOT / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


provenance = _load("provenance")
COMMIT = provenance.commit()


@dataclass(frozen=True)
class Run:
    """One command of a smoke test: `python bench/SCRIPT ARGS` ("{tmp}" in ARGS: the test's temporary folder)."""

    script: str
    args: tuple[str, ...]
    rows: tuple[str, ...] = ()  # files under {tmp} of stamped rows: JSON lines, or one JSON object (.json)
    printed: bool = False  # the printed output is the record (a table or report copied into docs): it holds a stamp
    summary: str | None = None  # where a summary of rows is ("printed" or a file under {tmp}): it names their commits
    inputs: dict[str, str] = field(default_factory=dict)  # files written under {tmp} first
    needs: str | None = None  # the skip reason when what it needs is missing (tests/helpers.py)
    check: Callable[[Path], None] | None = None  # more to check, given {tmp}
    timeout: int = 300


def _nas_table_rebuilt(tmp: Path) -> None:
    """--write on the recorded runs rebuilds the shipped table (and names the runs' commits: none recorded then)."""
    written, shipped = (json.loads(p.read_text()) for p in (tmp / "table.json", ROOT / "graders" / "nas" / "table.json"))
    assert written["accuracy"] == shipped["accuracy"]
    assert written["protocol"]["row_commits"] == [provenance.UNRECORDED]


FASHION = None if datasets.available("fashion-mnist") else NEEDS_FASHION_MNIST
HEAVY = None if os.environ.get("BENCH_SMOKE_HEAVY") == "1" else OPT_IN_HEAVY_BENCH
CHEAPEST_ARCHITECTURE = str(space.index_of([1, 0, 0] * 3))  # tests/test_nas.py recomputes it too
TWO_UPDATES = "    while True:=>    for _ in range(2):"  # the REINFORCE reference trains until solved otherwise

SMOKE: dict[str, tuple[Run, ...]] = {
    "bandits_idioms": (Run("bandits_idioms.py", ("--seeds", "1", "--only", "reference", "--no-testbed",
                                                 "--out", "{tmp}/rows.jsonl"), rows=("rows.jsonl",)),),
    "bandits_speed": (Run("bandits_speed.py", ("--repeat", "1", "--config", "{tmp}/fast.toml"), printed=True,
                          inputs={"fast.toml": FAST_BANDITS}),),
    "bandits_thresholds": (Run("bandits_thresholds.py", ("--seeds", "1", "--runs", "50", "--steps", "100"), printed=True),),
    "batch_ray_overhead": (Run("batch_ray_overhead.py", ("-n", "1", "--config", "{tmp}/fast.toml", "--out", "{tmp}/rows.jsonl"),
                               rows=("rows.jsonl",), inputs={"fast.toml": FAST_BANDITS}, needs=HEAVY, timeout=500),),
    "batch_throughput": (Run("batch_throughput.py", ("-n", "1", "--config", "{tmp}/fast.toml", "--jobs", "1", "--repeats", "1",
                                                     "--out", "{tmp}/rows.jsonl"), rows=("rows.jsonl",),
                             inputs={"fast.toml": FAST_BANDITS}, needs=HEAVY),),
    "callback_round_trip": (Run("callback_round_trip.py", ("--envs", "single", "--seconds", "0.2",
                                                           "--out", "{tmp}/rows.jsonl"), rows=("rows.jsonl",)),),
    "class_of_30": (Run("class_of_30.py", ("{tmp}/class", "--only", "ben.py", "ana.py"),
                        rows=("class/provenance.json",), printed=True, needs=HEAVY),),
    "class_report_speed": (Run("class_report_speed.py", ("--students", "4", "--repeat", "1", "--out", "{tmp}/rows.jsonl"),
                               rows=("rows.jsonl",)),),
    "grader_reply_memory": (Run("grader_reply_memory.py", ("--array-mb", "1", "--out", "{tmp}/rows.jsonl"),
                                rows=("rows.jsonl",)),),
    "kit_install": (Run("kit_install.py", ("bandits", "--pip-args", "--retries 0", "--out", "{tmp}/rows.jsonl"),
                        rows=("rows.jsonl",), needs=HEAVY, timeout=900),),
    "loss_idioms": (Run("loss_idioms.py", ("--seeds", "1"), printed=True),),
    "nas_reference": (Run("nas_reference.py", ("--seeds", "0", "--budget", "64", "--out", "{tmp}/rows.jsonl"),
                          rows=("rows.jsonl",)),
                      Run("nas_reference.py", ("--summarize", "{tmp}/rows.jsonl"), summary="printed")),
    "nas_sampling_power": (Run("nas_sampling_power.py", ("--seeds", "1", "--reps", "2", "--out", "{tmp}/rows.jsonl"),
                               rows=("rows.jsonl",)),),
    "nas_table": (Run("nas_table.py", ("--index", CHEAPEST_ARCHITECTURE, "--runs", "{tmp}/runs.jsonl"),
                      rows=("runs.jsonl",), needs=FASHION),),
    "nas_table_write": (Run("nas_table.py", ("--write", "--runs", "bench/results/nas_table_runs.jsonl",
                                             "--table", "{tmp}/table.json"), check=_nas_table_rebuilt),),
    "nas_table_copy": (Run("nas_table_copy.py", ("--seeds", "0", "--out", "{tmp}/rows.jsonl"), rows=("rows.jsonl",),
                           printed=True),),
    "policy_gradient_stats": (
        Run("policy_gradient_stats.py", ("--seeds", "2", "--power-seeds", "1", "--jobs", "1", "--out", "{tmp}/rows.jsonl"),
            rows=("rows.jsonl",), summary="printed"),
        Run("policy_gradient_stats.py", ("--summarize", "bench/results/policy_gradient_power.jsonl"), summary="printed")),
    "reinforce_baseline_summary": (Run("reinforce_baseline_summary.py", ("bench/results/reinforce_baseline_ideas.jsonl",
                                                                         "--ideas"), summary="printed"),),
    "reinforce_baseline_gradings": (
        Run("reinforce_baseline_gradings.py", ("--gradings", "0", "--episode-budget", "32", "--rows", "{tmp}/rows.jsonl"),
            rows=("rows.jsonl",), needs=HEAVY),
        Run("reinforce_baseline_gradings.py", ("--summarize", "--rows", "{tmp}/rows.jsonl", "--out", "{tmp}/summary.json"),
            rows=("summary.json",), summary="summary.json")),
    "reinforce_baseline_untrained": (Run("reinforce_baseline_untrained.py", (
        "--seeds", "0-0", "--episodes", "2", "--out", "{tmp}/rows.jsonl", "--summary", "{tmp}/summary.json"),
        rows=("rows.jsonl", "summary.json"), summary="summary.json"),),
    "reinforce_baseline_value": (Run("reinforce_baseline_value.py", (
        "--seeds", "2000", "--variants", "reference", "--episode-budget", "10", "--out", "{tmp}/rows.jsonl"),
        rows=("rows.jsonl",)),
        Run("reinforce_baseline_value.py", ("--table", "--out", "{tmp}/rows.jsonl"), summary="printed")),
    "reinforce_chi_squared": (Run("reinforce_chi_squared.py", ("--trials", "1000", "--power-trials", "100"), printed=True),),
    "reinforce_classic_loop": (Run("reinforce_classic_loop.py", ("--seeds", "0-0", "--episodes", "2",
                                                                 "--out", "{tmp}/rows.jsonl"), rows=("rows.jsonl",)),),
    "reinforce_env_overhead": (Run("reinforce_env_overhead.py", ("--seeds", "0-0", "--num-envs", "4", "--patch", TWO_UPDATES,
                                                                 "--out", "{tmp}/rows.jsonl"), rows=("rows.jsonl",)),),
    "reinforce_reference": (Run("reinforce_reference.py", ("reinforce", "--seeds", "0", "--episode-budget", "32",
                                                           "--out", "{tmp}/rows.jsonl"), rows=("rows.jsonl",), summary="printed"),
                            Run("reinforce_reference.py", ("reinforce", "--summarize", "{tmp}/rows.jsonl"), summary="printed")),
    "reinforce_sweep": (
        Run("reinforce_sweep.py", ("reinforce_baseline", "--seeds", "0", "--jobs", "1", "--budgets", "6,10", "--label",
                                   "smoke", "--rows", "{tmp}/rows.jsonl", "--out", "{tmp}/summary.jsonl"),
            rows=("rows.jsonl", "summary.jsonl"), summary="summary.jsonl"),
        Run("reinforce_baseline_summary.py", ("{tmp}/rows.jsonl", "--label", "smoke", "--budget", "10",
                                              "--write", "{tmp}/written.json"), rows=("written.json",), summary="written.json")),
    "similarity_threshold": (Run("similarity_threshold.py", ("--seeds", "1", "--assignments", "bandits",
                                                             "--out", "{tmp}/rows.jsonl"), rows=("rows.jsonl",)),),
    "vae_idioms": (Run("vae_idioms.py", ("--seeds", "1"), printed=True),),
    "vae_reference": (Run("vae_reference.py", ("--dataset", "mnist-tiny", "--seeds", "0", "--epochs", "1", "--threads", "1",
                                               "--iw-images", "8", "--iw-samples", "2", "--out", "{tmp}/rows.jsonl"),
                          rows=("rows.jsonl",), summary="rows.jsonl"),),
    "vae_tolerances": (Run("vae_tolerances.py", ("--seeds", "1"), printed=True),),
    "unit_checks": (Run("unit_checks.py", ("bandits", "--repeats", "1", "--out", "{tmp}/rows.jsonl"), rows=("rows.jsonl",),
                        needs=HEAVY),),
    "worker_start": (Run("worker_start.py", ("--repeat", "1", "--rounds", "1", "--out", "{tmp}/rows.jsonl"),
                         rows=("rows.jsonl",)),),
    "worker_teardown": (Run("worker_teardown.py", ("--repeats", "1", "--out", "{tmp}/rows.jsonl"), rows=("rows.jsonl",)),),
}
# The files of bench/ that are no script, and what runs them.
HELPERS = {
    "provenance.py": "every run above (the stamp it checks)",
    "served.py": "callback_round_trip, reinforce_classic_loop, reinforce_env_overhead, reinforce_reference",
    "reinforce_baseline_ideas.py": "test_every_idea_applies_to_the_reference",
}

# A fork server: it imports what the scripts share once, then runs each request in a forked child, as
# `python bench/SCRIPT ARGS` would run (bench/ first on sys.path, the repository on PYTHONPATH), output to files.
SERVER = r"""
import json, os, runpy, signal, sys, time, traceback
import gymnasium, matplotlib, numpy, scipy, torch
import graders.runner, graders.rl.server, graders.sandbox, graders_worker.protocol

for line in sys.stdin:
    request = json.loads(line)
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setpgid(0, 0)
            null = os.open(os.devnull, os.O_RDONLY)
            out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            for fd, target in ((null, 0), (out, 1), (err, 2)):
                os.dup2(fd, target)
            sys.argv = [request["script"], *request["args"]]
            sys.path.insert(0, os.path.dirname(request["script"]))
            runpy.run_path(request["script"], run_name="__main__")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if not isinstance(exc.code, (int, type(None))):
                print(exc.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    deadline = time.monotonic() + request["timeout"]
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if not done and time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            done, status, usage = os.wait4(pid, 0)
        if done:  # the CPU seconds of the script and of the processes it waited for
            reply = {"code": os.waitstatus_to_exitcode(status), "cpu_s": usage.ru_utime + usage.ru_stime,
                     "timed_out": time.monotonic() > deadline}
            break
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)  # what the script left running
    except ProcessLookupError:
        pass
    print(json.dumps(reply), flush=True)
"""


@pytest.fixture(scope="module")
def bench_server():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    server = subprocess.Popen([sys.executable, "-c", SERVER], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)

    def run(script: Path, args: list[str], tmp: Path, timeout: int) -> tuple[dict, str, str]:
        stdout, stderr = tmp / f"{script.stem}.stdout", tmp / f"{script.stem}.stderr"
        request = {"script": str(script), "args": args, "stdout": str(stdout), "stderr": str(stderr), "timeout": timeout}
        server.stdin.write(json.dumps(request) + "\n")
        server.stdin.flush()
        reply = server.stdout.readline()
        assert reply, "the bench fork server died"
        return json.loads(reply), stdout.read_text(), stderr.read_text()

    yield run
    server.stdin.close()
    server.wait(timeout=60)


def json_objects(text: str) -> list[dict]:
    """The JSON objects in printed output: each starts a line (one line, or indented over several)."""
    decoder, found = json.JSONDecoder(), []
    for match in re.finditer(r"^\{", text, re.M):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        found.append(value)
    return found


def options(args: tuple[str, ...]) -> set[str]:
    """The settings keys a run's options must appear under: --episode-budget -> episode_budget, -n -> n."""
    return {a.lstrip("-").replace("-", "_") for a in args if re.fullmatch(r"--?[a-z][a-z0-9-]*", a)}


def assert_stamped(row: dict, run: Run, where: str) -> None:
    assert row.get("commit") == COMMIT, f"{where}: a row without this commit: {str(row)[:300]}"
    assert row.get("machine") and isinstance(row.get("settings"), dict), f"{where}: a row without settings or machine"
    missing = options(run.args) - set(row["settings"])
    assert not missing, f"{where}: the settings lack the options {sorted(missing)}: {row['settings']}"


def rows_in(path: Path) -> list[dict]:
    text = path.read_text()
    if path.suffix == ".json":
        return [json.loads(text)]
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("name", SMOKE)
def test_bench_script_runs_and_stamps_its_rows(name, bench_server, tmp_path):
    for run in SMOKE[name]:
        if run.needs:
            pytest.skip(run.needs)
        for file, content in run.inputs.items():
            (tmp_path / file).write_text(content)
        args = [a.replace("{tmp}", str(tmp_path)) for a in run.args]
        reply, out, err = bench_server(BENCH / run.script, args, tmp_path, run.timeout)
        print(f"{run.script}: {reply}")  # its CPU seconds, shown by pytest -rP
        assert reply["code"] == 0 and not reply["timed_out"], \
            f"{run.script} {' '.join(args)}: {reply}\n{out[-3000:]}\n{err[-3000:]}"
        for file in run.rows:
            rows = rows_in(tmp_path / file)
            assert rows, f"{run.script} wrote no rows to {file}"
            for row in rows:
                assert_stamped(row, run, f"{run.script} -> {file}")
        printed = json_objects(out)
        if run.printed:
            stamps = [o for o in printed if isinstance(o, dict) and "commit" in o]
            assert stamps, f"{run.script} printed no stamp:\n{out[-2000:]}"
            for stamp in stamps:
                assert_stamped(stamp, run, f"{run.script} (printed)")
        if run.summary:
            summaries = printed if run.summary == "printed" else rows_in(tmp_path / run.summary)
            named = [o.get("row_commits") for o in summaries if isinstance(o, dict) and "row_commits" in o]
            assert named, f"{run.script}: no summary naming its rows' commits in {run.summary}"
            for commits in named:
                assert commits and set(commits) <= {COMMIT, provenance.UNRECORDED}, commits
                assert_stamped(next(o for o in summaries if o.get("row_commits") is commits), run, f"{run.script} summary")
        if run.check:
            run.check(tmp_path)


def test_every_bench_file_is_smoke_tested():
    """A bench script added without a smoke run (or a helper without a caller) fails here, as does a stale entry."""
    files = {p.name for p in BENCH.glob("*.py")}
    run = {r.script for runs in SMOKE.values() for r in runs}
    assert files - run - set(HELPERS) == set(), "bench scripts without a smoke run in tests/test_bench.py SMOKE"
    assert (run | set(HELPERS)) - files == set(), "SMOKE or HELPERS name files that are not in bench/"
    assert not run & set(HELPERS)


def test_every_idea_applies_to_the_reference():
    """bench/reinforce_sweep.py --idea NAME: each idea still applies to the reference and compiles."""
    ideas = _load("reinforce_baseline_ideas")
    source = (ROOT / "solutions" / "reinforce_baseline" / "reinforce_baseline.py").read_text()
    for idea in ideas.IDEAS:
        compile(ideas.apply_idea(source, idea), f"{idea}.py", "exec")


def test_a_stamp_is_plain_json_and_names_the_commits_of_rows():
    import argparse

    stamp = provenance.stamp(argparse.Namespace(out=Path("/tmp/x.jsonl"), seeds=(1, 2), sets={"b", "a"}))
    assert json.loads(json.dumps(stamp))["settings"] == {"out": "/tmp/x.jsonl", "seeds": [1, 2], "sets": ["a", "b"]}
    assert stamp["commit"] == COMMIT and re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", COMMIT)
    rows = [{"commit": "a"}, {"seed": 1}, {"commit": "b"}, {"commit": "a"}, [{"case": "old list line"}]]
    assert provenance.commits(rows) == ["a", provenance.UNRECORDED, "b"]
