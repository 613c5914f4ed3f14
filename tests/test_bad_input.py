"""Bad input (issue 2): each gets zero for what it broke and a clear message; the
grader returns normally and the other checks keep their points. The host is the
bandits assignment, whose checks take a fraction of a second each."""

from __future__ import annotations

import json

from helpers import by_name, edited, solution_source

FAST = """
[limits]
import_seconds = 5
[bandits.checks.ucb_tries_every_arm_first]
timeout = 3
[bandits.checks.ucb_selection]
timeout = 3
[bandits.checks.testbed_ucb]
timeout = 15
"""
UCB_CHECKS = {"ucb_tries_every_arm_first", "ucb_selection", "testbed_ucb"}
UCB_ACT = "    def act(self) -> np.ndarray:\n        ### BEGIN SOLUTION\n        self.t += 1\n"


def break_ucb_act(code: str) -> str:
    """The reference with `code` run at the start of UCB.act."""
    return edited("bandits", UCB_ACT, UCB_ACT.replace("self.t += 1\n", f"self.t += 1\n        {code}\n"))


def assert_only_ucb_lost(grading, status: str, words: str):
    results = by_name(grading)
    assert not grading.internal_error
    for name, result in results.items():
        if name in UCB_CHECKS:
            assert result.status == status and result.points == 0, (name, result.status, result.message)
            assert words in result.message, result.message
        else:
            assert result.status == "passed", (name, result.message)


def assert_all_lost(grading, words: str):
    """Zero everywhere; the reason once, in the first row (issue 21: not repeated in every row)."""
    assert grading.score == 0 and not grading.internal_error
    first, *rest = grading.results
    assert first.status == "error" and words in first.message, first.message
    assert all(r.status == "error" and r.message.startswith("not graded: the submission does not load") for r in rest)


def test_syntax_error(grade_source):
    assert_all_lost(grade_source("bandits", "import numpy as np\ndef f(:\n    pass\n"), "SyntaxError")


def test_exception_at_import(grade_source):
    assert_all_lost(grade_source("bandits", solution_source("bandits") + "\nraise ValueError('boom')\n"),
                    "ValueError: boom")


def test_infinite_loop_at_import(grade_source):
    grading = grade_source("bandits", "while True:\n    pass\n", config_toml=FAST)
    assert_all_lost(grading, "importing your submission took more than 5 s")
    assert grading.seconds < 30  # the import is tried once, not once per check


def test_missing_function(grade_source):
    source = solution_source("bandits")
    source = source[: source.index("class GradientBandit")]  # everything after it is gone
    results = by_name(grade_source("bandits", source))
    for name, result in results.items():
        if "gradient" in name:
            assert result.status == "error" and "GradientBandit" in result.message
        else:
            assert result.status == "passed", (name, result.message)


def test_infinite_loop_inside_a_call(grade_source):
    # each UCB check is stopped by its own limit (3 or 15 s), not by the grading's (90 s here): issue 31 item 1
    config = FAST + "[bandits]\ntotal_seconds = 90\n"
    grading = grade_source("bandits", break_ucb_act("while True: pass"), config_toml=config)
    assert_only_ucb_lost(grading, "timeout", "time limit reached")
    limits = {"ucb_tries_every_arm_first": 3, "ucb_selection": 3, "testbed_ucb": 15}
    for result in grading.results:
        if result.name in limits:
            assert result.seconds < limits[result.name] + 5, (result.name, result.seconds)


def test_memory_hog_inside_a_call(grade_source):
    grading = grade_source("bandits", break_ucb_act("hog = bytearray(64 << 30)"), config_toml=FAST)
    assert_only_ucb_lost(grading, "error", "MemoryError")


def test_sys_exit_inside_a_call(grade_source):
    grading = grade_source("bandits", break_ucb_act("import sys; sys.exit(0)"), config_toml=FAST)
    assert_only_ucb_lost(grading, "error", "sys.exit(0)")


def test_os_exit_inside_a_call(grade_source):
    grading = grade_source("bandits", break_ucb_act("import os; os._exit(0)"), config_toml=FAST)
    assert_only_ucb_lost(grading, "error", "exited with code 0")


def test_output_flood_is_capped_and_grading_goes_on(grade_source):
    flood = "import sys; [sys.stdout.write('x' * 1000 + chr(10)) for _ in range(20000)] if self.t == 1 else None"
    grading = grade_source("bandits", break_ucb_act(flood), config_toml=FAST)
    # printing is allowed; it is only cut
    assert grading.score == grading.max_score, [r.message for r in grading.results if r.status != "passed"]
    printed = "".join(r.output for r in grading.results)
    assert "more bytes of output dropped" in printed
    assert len(printed) < 200_000


def test_notebook_that_is_not_json(grade_source):
    assert_all_lost(grade_source("bandits", '{"cells": [', suffix=".ipynb"), "not valid JSON")


def test_notebook_keeps_definitions_and_drops_demo_cells(grade_source):
    cells = [solution_source("bandits"), "EpsilonGreedy(3, 4, 0.1).act()\nwhile True:\n    pass",
             "%matplotlib inline\nimport os\nos._exit(3)"]
    notebook = {"cells": [{"cell_type": "code", "source": c, "metadata": {}, "outputs": []} for c in cells],
                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    grading = grade_source("bandits", json.dumps(notebook), suffix=".ipynb")
    assert grading.score == grading.max_score, [(r.name, r.message) for r in grading.results if r.status != "passed"]


def test_total_time_limit_stops_the_remaining_checks(grade_source):
    config = FAST + "[bandits]\ntotal_seconds = 4\n"
    grading = grade_source("bandits", break_ucb_act("import time; time.sleep(60)"), config_toml=config)
    results = by_name(grading)
    assert results["argmax_breaks_ties_at_random"].status == "passed"
    assert results["testbed_gradient_without_baseline"].status == "timeout"
    assert "total time limit" in results["testbed_gradient_without_baseline"].message
    assert grading.seconds < 20
