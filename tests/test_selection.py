"""Check selection (--check, --unit), per-seed rows, declared needs, and a worker of its own per training check."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest
from helpers import ROOT, by_name

from graders import contract
from graders.checks import check
from graders.config import Config, ConfigError
from graders.outputs.gradescope import gradescope
from graders.results import SKIPPED
from graders.runner import grade
from graders.sandbox import Worker
from graders.selection import NOT_SELECTED, SelectionError

SUBMISSION = '''
CALLS = []

def bump():
    CALLS.append(1)
    return len(CALLS)

def double(x):
    return 2 * x
'''


def toy_module() -> types.ModuleType:
    module = types.ModuleType("toy_grader")
    module.TITLE = "toy"
    module.DEFAULTS = {"seeds": [5, 6]}

    @check(points=1)
    def counts_calls(worker, ctx):
        """bump() counts its calls."""
        assert worker.call("bump") == 1 and worker.call("bump") == 2

    @check(points=2)
    def doubles(worker, ctx):
        """double(x) = 2x."""
        assert worker.call("double", 3) == 6, "double(3) is not 6"

    @check(points=4, kind="training", per_seed=True, needs=("doubles",))
    def trained(worker, ctx, seed_index):
        """Trains on one seed."""
        assert worker.call("double", 2) == 4, "training diverged"  # a training that uses double()
        calls = worker.call("bump")
        ctx.note(f"seed {ctx.seeds[seed_index]}")
        assert calls == 1, f"the training worker had seen {calls - 1} earlier calls"

    for fn in (counts_calls, doubles, trained):
        setattr(module, fn.__name__, fn)
    return module


@pytest.fixture
def toy(tmp_path):
    grader = contract.from_module("toy", toy_module())
    path = tmp_path / "toy.py"
    path.write_text(SUBMISSION)
    return grader, path


def test_a_per_seed_check_has_a_row_per_seed_and_each_training_row_a_worker_of_its_own(toy):
    grader, path = toy
    grading = grade(Config().effective_of(grader), path, device="cpu")
    rows = by_name(grading)
    assert list(rows) == ["counts_calls", "doubles", "trained_first_seed", "trained_second_seed"]
    assert all(r.status == "passed" for r in grading.results), [r.message for r in grading.results]
    assert "seed 5" in rows["trained_first_seed"].message and "seed 6" in rows["trained_second_seed"].message
    assert grading.score == grading.max_score == 11 and not grading.partial


def test_three_seeds_give_three_rows_and_overrides_name_rows(toy):
    grader, path = toy
    config = Config(assignments={"toy": {"seeds": [1, 2, 3], "checks": {"trained_third_seed": {"points": 1}}}})
    effective = config.effective_of(grader)
    assert [c.name for c in effective.checks][-3:] == ["trained_first_seed", "trained_second_seed",
                                                       "trained_third_seed"]
    assert [c.seed_index for c in effective.checks][-3:] == [0, 1, 2] and effective.max_score == 12
    for bad in ({"checks": {"trained_fourth_seed": {"points": 1}}}, {"seeds": [4, 4]}):
        with pytest.raises(ConfigError):
            Config(assignments={"toy": bad}).effective_of(grader)


def test_selecting_a_check_grades_it_and_what_it_needs_and_skips_the_rest(toy):
    grader, path = toy
    effective = Config().effective_of(grader)
    grading = grade(effective, path, device="cpu", checks=["trained_second_seed"])
    rows = by_name(grading)
    assert [n for n, r in rows.items() if r.status != SKIPPED] == ["doubles", "trained_second_seed"]
    assert rows["counts_calls"].message == NOT_SELECTED and rows["counts_calls"].points == 0
    assert grading.partial and grading.score == grading.max_score == 6
    with pytest.raises(ValueError, match="not a grade"):
        gradescope(grading)
    family = grade(effective, path, device="cpu", checks=["trained"])
    assert [r.name for r in family.results if r.status == "passed"] == ["doubles", "trained_first_seed",
                                                                          "trained_second_seed"]
    unit = grade(effective, path, device="cpu", unit=True)
    assert [r.status for r in unit.results] == ["passed", "passed", SKIPPED, SKIPPED] and unit.max_score == 3
    with pytest.raises(SelectionError, match="did you mean 'doubles'"):
        grade(effective, path, device="cpu", checks=["double"])


def test_a_check_that_needs_a_failed_one_names_it(toy):
    grader, path = toy
    path.write_text(SUBMISSION.replace("return 2 * x", "return 3 * x"))
    rows = by_name(grade(Config().effective_of(grader), path, device="cpu"))
    assert rows["doubles"].status == "failed"
    for name in ("trained_first_seed", "trained_second_seed"):  # their own message, after the one that explains it
        message = rows[name].message
        assert rows[name].status == "failed" and message.startswith("Probably not this check's own fault")
        assert "the check doubles (double(x) = 2x)" in message and "training diverged" in message


def test_the_contract_refuses_needs_of_later_checks_and_a_per_seed_check_without_its_seed():
    module = toy_module()

    @check(points=1, needs=("trained",))
    def early(worker, ctx):
        pass

    @check(points=1, kind="training", per_seed=True)
    def no_seed(worker, ctx):
        pass

    @check(points=1, fresh_ahead=())
    def ahead_of_nothing(worker, ctx):
        pass

    @check(points=1, kind="training", fresh_ahead=())
    def trained_ahead(worker, ctx, fresh_worker):
        pass

    module.early, module.no_seed, module.ahead_of_nothing = early, no_seed, ahead_of_nothing
    module.trained_ahead = trained_ahead
    with pytest.raises(contract.GraderContractError) as error:
        contract.from_module("toy", module)
    assert "early needs ['trained']" in str(error.value)
    assert "no_seed: a check takes seed_index exactly when it is declared per_seed=True" in str(error.value)
    assert "ahead_of_nothing: fresh_ahead starts a fresh worker for a check without the fixture" in str(error.value)
    assert "trained_ahead: a training check's workers start when it does" in str(error.value)


AHEAD_SUBMISSION = SUBMISSION + '''
import os, sys, time
IMPORTED_AT = time.time()

def nap(seconds):
    time.sleep(seconds)
    return time.time()

def imported_at():
    return IMPORTED_AT

def has(module):
    return module in sys.modules

WARM_SEEN = os.environ.get("GRADER_WORKER_WARM")

def warm_seen():
    return WARM_SEEN
'''


def test_a_fresh_worker_declared_ahead_starts_with_the_grading_untouched_and_warmed(tmp_path, monkeypatch):
    from graders import runner

    module = toy_module()

    @check(points=1)
    def naps(worker, ctx):
        """Takes a while."""
        ctx.shared["nap ended"] = worker.call("nap", 3.0)

    @check(points=1, fresh_ahead=("colorsys",))
    def reads_a_fresh_worker(worker, ctx, fresh_worker):
        """Reads a fresh worker started ahead."""
        fresh = fresh_worker()
        assert fresh.call("bump") == 1, "a call reached the fresh worker before its check"
        assert fresh.call("has", "colorsys") and not worker.call("has", "colorsys"), "not warmed as declared"
        assert fresh.call("imported_at") < ctx.shared["nap ended"], "not started before the earlier check ended"
        assert fresh.call("warm_seen") is None, "the submission saw that it was started ahead"
        assert fresh_worker().call("has", "colorsys") is False, "a second fresh worker is started on demand, cold"

    module.naps, module.reads_a_fresh_worker = naps, reads_a_fresh_worker
    effective = Config().effective_of(contract.from_module("toy", module))
    path = tmp_path / "toy.py"
    path.write_text(AHEAD_SUBMISSION)
    started = []
    monkeypatch.setattr(runner, "Worker", lambda *a, **k: started.append(k["warm"]) or Worker(*a, **k))
    rows = by_name(grade(effective, path, device="cpu", unit=True))
    assert rows["reads_a_fresh_worker"].status == "passed", rows["reads_a_fresh_worker"].message
    assert started == [(), ("colorsys",), ()]
    started.clear()
    assert by_name(grade(effective, path, device="cpu", checks=["naps"]))["naps"].status == "passed"
    assert started == [()], "a worker was started ahead for a check that does not run"


def test_cli_grades_the_unit_checks_alone_and_refuses_a_partial_results_json(tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "graders", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)

    unit = cli("grade", "reinforce", "solutions/reinforce/reinforce.py", "--unit", "--device", "cpu")
    assert unit.returncode == 0, unit.stderr
    assert "trained_policy_first_seed" in unit.stdout and "skipped" in unit.stdout and "Only 3 of 5" in unit.stdout
    assert " 7 / 7" in unit.stdout
    partial = cli("grade", "reinforce", "solutions/reinforce/reinforce.py", "--check", "discounted_returns", "--json",
                  str(tmp_path / "r.json"))
    assert partial.returncode == 2 and "whole grading" in partial.stderr and not (tmp_path / "r.json").exists()
    unknown = cli("grade", "reinforce", "solutions/reinforce/reinforce.py", "--check", "nope")
    assert unknown.returncode == 2 and "no check named 'nope'" in unknown.stderr


def test_a_grader_that_uses_no_gpu_grades_on_the_cpu_without_importing_torch():
    script = ("import sys; from graders.runner import grade; "
              "g = grade('bandits', 'solutions/bandits/bandits.py', device='auto', checks=['sample_average_update']); "
              "print(g.device, g.score, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["cpu", "2.0", "False"], done.stderr[-2000:]


def test_every_setting_says_what_it_means_and_the_settings_command_lists_them():
    from graders import assignments
    from graders.contract import setting_names

    for name in assignments.names():
        grader = assignments.grader(name)
        listed = subprocess.run([sys.executable, "-m", "graders", "settings", name], cwd=ROOT, capture_output=True,
                                text=True, timeout=120)
        assert listed.returncode == 0, listed.stderr
        for setting in ["seeds", "threads", "total_seconds", *setting_names(grader.defaults)]:
            line = next(line for line in listed.stdout.splitlines() if line.split()[:1] == [setting])
            assert grader.help[setting] in line
        assert all(c.name in listed.stdout for c in grader.checks)
    module = toy_module()
    module.DEFAULTS = {"seeds": [5, 6], "episodes": 3, "thresholds": {"reward": 1.0}}
    module.HELP = {"episodes": "how many"}
    with pytest.raises(contract.GraderContractError, match="'thresholds.reward' has no HELP line"):
        contract.from_module("toy", module)


def test_a_worker_launched_ahead_is_stopped_with_its_check_and_its_failed_import_costs_only_that_check(tmp_path,
                                                                                                      monkeypatch):
    from graders import runner

    events = []
    module = toy_module()

    @check(points=1, fresh_ahead=())
    def fails_before_its_fresh_worker(worker, ctx, fresh_worker):
        """Fails on the first worker's answer."""
        assert worker.call("double", 1) == 3, "double(1) is not 3"

    @check(points=1, fresh_ahead=())
    def reads_a_fresh_worker(worker, ctx, fresh_worker):
        """Reads a fresh worker."""
        events.append("reads_a_fresh_worker starts")
        assert fresh_worker().call("double", 2) == 4

    @check(points=1)
    def after(worker, ctx):
        """Runs after them."""
        events.append("after starts")
        assert worker.call("double", 5) == 10

    module.fails_before_its_fresh_worker, module.reads_a_fresh_worker, module.after = (
        fails_before_its_fresh_worker, reads_a_fresh_worker, after)
    effective = Config().effective_of(contract.from_module("toy", module))
    path = tmp_path / "toy.py"
    path.write_text(SUBMISSION)
    launched = []

    class Recorded(Worker):
        def __init__(self, *args, **kwargs):
            launched.append(self)
            if len(launched) == 3:  # the second check's worker launched ahead: a file that does not import
                args = (args[0], "raise ImportError('only here')", *args[2:])
            super().__init__(*args, **kwargs)

        def close(self):
            if self._proc is not None or self.failed_to_load:
                events.append(f"worker {launched.index(self) + 1} closed")
            super().close()

    monkeypatch.setattr(runner, "Worker", Recorded)
    rows = by_name(grade(effective, path, device="cpu", unit=True))
    assert rows["fails_before_its_fresh_worker"].status == "failed"
    assert events.index("worker 2 closed") < events.index("reads_a_fresh_worker starts"), events
    assert rows["reads_a_fresh_worker"].status == "error" and "only here" in rows["reads_a_fresh_worker"].message
    assert rows["after"].status == "passed", rows["after"].message
    assert [r.name for r in rows.values() if r.status == "passed"] == ["counts_calls", "doubles", "after"]
