"""The hostile corpus (tests/hostile/): no attack earns more than its honest score.

Every file there is a bandits submission that attacks the grader in one way, with
its honest score and what it needs from the sandbox in its header:

    # hostile: what it tries
    # honest: the most points its honest part may earn
    # keeps: checks its honest part passes, which the attack must not cost it
    # needs: bubblewrap | confinement | cgroup | seccomp   (only when the guarantee depends on it)
    # known-hole: why the guarantee does not hold yet (the test is an expected failure)

(notebooks carry the same keys in their top-level metadata). Each file is graded in
both isolation modes; in the process-limits mode, files that need bubblewrap, or a
worker that is not root ("confinement": bubblewrap, or the fallback's uid drop),
are skipped rather than run, because there they would really do harm; so are files
that need a cgroup per worker ("cgroup") where the grader cannot make one, and files that
need bubblewrap or the seccomp filter ("seccomp": it cuts the network of the process-limits
mode) where neither is there. For each
grading: it returns normally without an internal error, the score is at most the
honest score, the honest checks keep their points, neither the hidden seed nor a
canary that only the instructor config holds appears anywhere in the results,
nothing says LEAKED, nothing the worker started survives it, the repository
was not written to, and the grader's own peak memory grew by less than GRADER_MB
(the largest reply a worker may send costs the grader about 300 MB:
bench/grader_reply_memory.py).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path

import pytest
from helpers import NEEDS_BUBBLEWRAP

from graders import assignments, runner
from graders.config import Config
from graders.outputs.gradescope import gradescope
from graders.sandbox import TOKEN_ENV, Worker, isolation, seccomp

HOSTILE = Path(__file__).parent / "hostile"
REPO = Path(__file__).resolve().parent.parent
SECRET_SEED = 73914268
CANARY = "SECRET-CANARY-5f1c0a9e7d"
PICKLE_MARKER = Path("/tmp/hostile-pickle-ran")
CHECKS = [c.name for c in assignments.grader("bandits").checks]  # the corpus attacks the bandits grading
MODES = ("bubblewrap", "process")
GRADER_MB = 640


def grader_peak_mb() -> float:
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def reset_grader_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def header(path: Path) -> dict:
    if path.suffix == ".ipynb":
        meta = json.loads(path.read_text())["metadata"]
        return {"hostile": meta["hostile"], "honest": float(meta["honest"]), "keeps": list(meta["keeps"]),
                "needs": meta.get("needs"), "known-hole": meta.get("known-hole")}
    fields = dict(re.findall(r"^# ([a-z-]+): (.*)$", path.read_text(), re.MULTILINE))
    return {"hostile": fields["hostile"], "honest": float(fields["honest"]), "keeps": fields.get("keeps", "").split(),
            "needs": fields.get("needs"), "known-hole": fields.get("known-hole")}


CORPUS = sorted(p for p in HOSTILE.iterdir() if p.suffix in (".py", ".ipynb"))


def config_text(mode: str) -> str:
    # short limits keep the corpus fast; the testbed checks play 1000 steps through the grader, under load too
    timeout = {name: 10 for name in CHECKS if name.startswith("testbed")}
    checks = "".join(f"[bandits.checks.{name}]\ntimeout = {timeout.get(name, 3)}\n" for name in CHECKS)
    return f"""# {CANARY}: only the instructor config holds this line
[limits]
isolation = "{mode}"
memory_mb = 1536
cpu_seconds = 30
processes = 64
file_size_mb = 16
disk_mb = 64
open_files = 128
output_kb = 16
import_seconds = 12

[bandits]
seeds = [{SECRET_SEED}]
testbed_runs = 500
{checks}"""


def _worker_plan(mode: str) -> isolation.Plan:
    try:
        return isolation.plan(mode)
    except isolation.IsolationUnavailable as exc:
        pytest.skip(NEEDS_BUBBLEWRAP if "not installed" in str(exc) else f"bubblewrap does not work here: {exc}")


def _survivors(tokens: list[str]) -> list[int]:
    marks = [f"{TOKEN_ENV}={t}".encode() for t in tokens]
    alive = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                environ = Path(f"/proc/{entry.name}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(m in environ for m in marks):
                alive.append(int(entry.name))
    return alive


def test_corpus_is_complete():
    assert len(CORPUS) >= 30
    for path in CORPUS:
        meta = header(path)
        assert meta["needs"] in (None, "bubblewrap", "confinement", "cgroup", "seccomp"), path.name
        assert set(meta["keeps"]) <= set(CHECKS), path.name


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_hostile_submission(path: Path, mode: str, tmp_path: Path, monkeypatch):
    meta = header(path)
    plan = _worker_plan(mode)
    if meta["needs"] == "bubblewrap" and plan.mode != "bubblewrap":
        pytest.skip(f"{NEEDS_BUBBLEWRAP} (without it this attack works: docs/security.md)")
    if meta["needs"] == "confinement" and plan.mode != "bubblewrap" and plan.uid is None:
        pytest.skip(f"{NEEDS_BUBBLEWRAP} (or a grader run as root, whose workers get uids of their own)")
    if meta["needs"] == "seccomp" and plan.mode != "bubblewrap" and seccomp.missing():
        pytest.skip(f"needs bubblewrap or the seccomp filter: without them this attack works; {seccomp.missing()}")
    if meta["needs"] == "cgroup" and plan.cgroups is None:
        pytest.skip(f"needs a cgroup per worker: without it this attack works (docs/security.md); {plan.no_cgroup}")
    config_file = tmp_path / "instructor.toml"
    config_file.write_text(config_text(mode))
    config_file.chmod(0o600)
    tokens: list[str] = []

    class RecordingWorker(Worker):
        def _start(self, deadline):
            try:
                super()._start(deadline)
            finally:
                tokens.append(self._token)

    monkeypatch.setattr(runner, "Worker", RecordingWorker)
    PICKLE_MARKER.unlink(missing_ok=True)
    before = {p.name for p in (REPO / "graders" / "bandits").iterdir()}
    assert plan.describe().startswith(mode if mode == "bubblewrap" else "process limits")

    with socket.socket() as listener:  # a service on the machine's loopback that no worker may reach
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        reset_grader_peak()
        peak_before = grader_peak_mb()
        grading = runner.grade("bandits", path, device="cpu", config=Config.load(config_file))
        grader_grew = grader_peak_mb() - peak_before

    try:
        _check_guarantees(grading, meta, tokens, before)
        assert grader_grew < GRADER_MB, f"the grader's peak memory grew by {grader_grew:.0f} MB"
    except AssertionError:
        if meta["known-hole"]:
            pytest.xfail(f"known hole: {meta['known-hole']}")
        raise


def _check_guarantees(grading, meta: dict, tokens: list[str], before: set[str]) -> None:
    results = {r.name: r for r in grading.results}
    report = "\n".join(f"{r.name}: {r.status} {r.points}/{r.max_points} {r.message[:300]!r}" for r in grading.results)
    assert grading.internal_error is None, report
    assert [r.name for r in grading.results] == CHECKS
    for name in meta["keeps"]:
        assert results[name].status == "passed", f"{name} lost its points:\n{report}"
    everything = json.dumps(grading.to_dict()) + json.dumps(gradescope(grading))
    assert CANARY not in everything
    assert str(SECRET_SEED) not in everything
    assert "LEAKED" not in everything, report
    assert len(everything) < 2 << 20
    assert not PICKLE_MARKER.exists()
    assert {p.name for p in (REPO / "graders" / "bandits").iterdir()} == before
    assert "PWNED" not in (REPO / "graders" / "bandits" / "grader.py").read_text()
    deadline = time.monotonic() + 5
    while (alive := _survivors(tokens)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive, f"processes {alive} of the worker outlived it"
    assert grading.score <= meta["honest"], report
