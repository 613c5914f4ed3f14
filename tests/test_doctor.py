"""The host check (`python -m graders doctor`), the batch's gate on it, and time limits that fit the host (issue 28).

Nothing here depends on this machine's speed: the timing tests give the limit rule its
measurements, and the one run that times a reference checks only that the snippet it
writes is instructor config that keeps every limit at least the one in force.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from helpers import FAST_BANDITS, NEEDS_BUBBLEWRAP, solution_source

from graders import batch, doctor, timing
from graders.cli import main
from graders.config import Config
from graders.sandbox import isolation

FAST = FAST_BANDITS.replace("[bandits]\n", "[bandits]\nseeds = [8123456789012345]\n", 1)


def _needs(mode: str) -> None:
    try:
        isolation.plan(mode)
    except isolation.IsolationUnavailable as exc:
        pytest.skip(NEEDS_BUBBLEWRAP if "not installed" in str(exc) else f"bubblewrap does not work here: {exc}")


def _config(folder: Path, text: str, mode: int = 0o600) -> Path:
    path = folder / "instructor.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def open_folder():
    """A folder every user can pass through (pytest's own are 0700): what a careless instructor keeps a config in."""
    folder = Path(tempfile.mkdtemp(prefix="doctor-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _findings(report: doctor.Report) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for f in report.findings:
        found.setdefault(f.topic, []).append(f.level)
    return found


def test_a_bubblewrap_host_is_fit_and_says_what_it_protects(tmp_path, capsys):
    _needs("bubblewrap")
    config = _config(tmp_path, '[limits]\nisolation = "bubblewrap"\n' + FAST)
    assert main(["doctor", "bandits", "--config", str(config)]) == 0
    shown = capsys.readouterr().out
    for line in ("OK    isolation    bubblewrap", "OK    imports      a worker imports numpy", "OK    files",
                 "verdict: fit for official grading"):
        assert line in shown, shown
    assert len(shown.splitlines()) <= 15  # one screen


def test_a_worker_that_could_read_the_instructor_config_makes_the_host_unfit(open_folder, capsys):
    """Process limits cannot hide a world-readable file: the doctor opens it from a real worker and says so."""
    _needs("process")
    config = _config(open_folder, '[limits]\nisolation = "process"\n' + FAST, mode=0o644)
    report = doctor.examine(["bandits"], Config.load(config), device="cpu", config_path=config)
    assert "fail" in _findings(report)["files"] and not report.fit
    assert f"the instructor config: {config}" in report.render()
    assert "--allow-unsafe-host" in report.render()
    assert main(["doctor", "bandits", "--config", str(config)]) == 1
    assert "NOT fit for official grading" in capsys.readouterr().out


def test_a_host_where_no_worker_starts_is_unfit(tmp_path):
    config = _config(tmp_path, "[limits]\nmemory_mb = 40\n" + FAST)
    report = doctor.examine(["bandits"], Config.load(config), device="cpu", config_path=config)
    assert _findings(report)["imports"] == ["fail"], report.render()
    assert "no bandits worker starts here" in report.render()


def _class(tmp_path: Path) -> Path:
    subs = tmp_path / "submissions"
    subs.mkdir()
    (subs / "alice.py").write_text(solution_source("bandits"))
    (subs / "bob.py").write_text("")
    return subs


def test_batch_stops_on_an_unfit_host_unless_told_and_then_every_row_records_it(open_folder, tmp_path, capsys):
    _needs("process")
    config = _config(open_folder, '[limits]\nisolation = "process"\n' + FAST, mode=0o644)
    subs, out = _class(tmp_path), tmp_path / "out"
    command = ["batch", "bandits", str(subs), "--out", str(out), "--device", "cpu", "--config", str(config)]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "not fit for official grading" in err and "FAIL  files" in err
    assert not (out / "students").exists()  # nothing was graded

    assert main([*command, "--allow-unsafe-host"]) == 0
    with open(out / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all("the instructor config" in row["unsafe_host"] for row in rows)
    assert "UNSAFE HOST: 2 rows" in (out / "summary.txt").read_text()
    results = json.loads((out / "students" / "alice" / "results.json").read_text())
    assert "the instructor config" in results["extra_data"]["unsafe_host"] and results["score"] == 20


def test_grader_error_rows_are_regraded_on_resume_and_listed(tmp_path):
    """No worker starts (a memory limit too small for Python): every row is the grader's, graded again next run."""
    config = _config(tmp_path, "[limits]\nmemory_mb = 40\n" + FAST)
    subs, out = _class(tmp_path), tmp_path / "out"
    first = batch.run_batch("bandits", subs, out, jobs=1, device="cpu", config_path=config)
    assert {r.student: r.status for r in first.records} == {"alice": "grader_error", "bob": "grader_error"}
    summary = (out / "summary.txt").read_text()
    assert "GRADER ERRORS (2)" in summary and "alice: grader_error: the grading host failed" in summary
    again = batch.run_batch("bandits", subs, out, jobs=1, device="cpu", config_path=config)
    assert sorted(again.graded) == ["alice", "bob"] and again.skipped == []
    config.write_text(FAST)
    fixed = batch.run_batch("bandits", subs, out, jobs=1, device="cpu", config_path=config)
    assert {r.student: r.status for r in fixed.records} == {"alice": "passed", "bob": "error"}


# ----------------------------------------------------------------------------- time limits that fit the host

def _timing(name: str, device: str, seconds: float, config: Config | None = None) -> timing.Timing:
    effective = (config or Config()).effective(name)
    return timing.Timing(effective, device, {c.name: seconds for c in effective.checks})


M = timing.MARGIN


def test_limits_follow_the_margin_on_a_slow_host_and_never_drop_on_a_fast_one():
    slow = _timing("reinforce", "cpu", 100.0)  # each check took 100 s here: a host far slower than the 2-core CPU
    train, limits = timing.proposed(slow)
    assert train == {"cpu": M * 100.0}  # the margin times the slowest training check
    assert limits["trained_policy_first_seed"] == 600 + (M * 100 - 240)  # grows as much as train_seconds did
    assert limits["discounted_returns"] == M * 100.0  # a unit check: the margin times its own time
    fast = _timing("reinforce", "cpu", 0.5)
    train, limits = timing.proposed(fast)
    assert train == {"cpu": 240.0} and limits["trained_policy_first_seed"] == 600  # never lowered

    report = doctor.Report()
    timing.judge(report, [slow, fast])
    assert [f.level for f in report.findings] == ["fail", "ok"]
    assert "train_seconds" in report.findings[0].text and "--snippet" in report.findings[0].text


def test_the_snippet_is_instructor_config_with_per_device_limits():
    text = timing.snippet([_timing("reinforce", "cpu", 100.0), _timing("reinforce", "cuda", 10.0)])
    assert text.startswith("# Time limits for this host")
    reinforce = Config.parse(text).effective("reinforce")
    assert reinforce.settings["train_seconds"] == {"cpu": M * 100, "cuda": 240}  # 10 s x M on cuda: below 240
    by_name = {c.name: c for c in reinforce.checks}
    assert by_name["trained_policy_first_seed"].timeout_for("cpu") == 600 + M * 100 - 240
    assert by_name["trained_policy_first_seed"].timeout_for("cuda") == 600
    assert by_name["discounted_returns"].timeout_for("cpu") == M * 100
    assert by_name["discounted_returns"].timeout_for("cuda") == max(10, M * 10)
    # an instructor's own limits are the floor: a snippet never lowers them
    mine = Config.parse("[reinforce]\ntrain_seconds = {cpu = 5000, cuda = 240}\n")
    assert Config.parse(timing.snippet([_timing("reinforce", "cpu", 100.0, mine)])).effective(
        "reinforce").settings["train_seconds"]["cpu"] == 5000


def test_doctor_times_a_reference_here_and_writes_limits_one_can_grade_with(tmp_path, capsys):
    config = _config(tmp_path, FAST)
    snippet = tmp_path / "limits.toml"
    assert main(["doctor", "bandits", "--time", "--device", "cpu", "--config", str(config),
                 "--snippet", str(snippet)]) in (0, 1)
    shown = capsys.readouterr().out
    assert "time         bandits on cpu: the reference took" in shown
    combined = Config.parse(FAST + "\n" + snippet.read_text())  # copied into the course's config, it loads
    before = Config.parse(FAST).effective("bandits")
    after = {c.name: c for c in combined.effective("bandits").checks}
    for c in before.checks:
        assert after[c.name].timeout_for("cpu") >= c.timeout_for("cpu")
        assert after[c.name].timeout_for("cuda") == c.timeout_for("cuda")  # not measured here: kept
    assert os.path.getsize(snippet) > 0


def test_a_gpu_the_grader_sees_but_a_worker_does_not_is_unfair(monkeypatch):
    """The GPU line says which GPU and its memory; a worker that cannot see the GPU the gradings would train on (here:
    none is passed into the sandbox, as on a host whose driver files the sandbox lacks) makes the host unfit."""
    import torch

    class Props:
        name, total_memory = "Test GPU", 80 * 2**30

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: Props())
    report = doctor.Report()
    doctor._gpu(report, "cuda")
    assert report.findings[-1].level == "ok" and "1 x Test GPU, 80.0 GiB each" in report.findings[-1].text
    doctor._workers(report, [Config().effective("vae")], "cuda", None)  # a real worker: its torch sees no GPU
    assert any(f.topic == "gpu" and f.level == "fail" and "a worker does not see it" in f.text
               for f in report.findings), report.render()
