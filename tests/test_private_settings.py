"""No hidden seed and no threshold the instructor overrode appears in anything a student sees.

Every assignment is graded with a config that holds recognisable hidden seeds and overrides
every threshold with a recognisable value, with a submission that passes and one that fails
some checks; then every student-facing output (the terminal table, results.json, the
feedback page) is searched for them. Budgets and time limits are shown on purpose: a
student needs them to do the work (docs/security.md).
"""

from __future__ import annotations

import json

import pytest
from helpers import controller_source, solution_source

from graders import assignments, outputs, variants
from graders.outputs import gradescope
from graders.outputs.table import table
from graders.results import Record, student_status

SEEDS = [918273645546372819, 564738291029384756]
# A recognisable override for every threshold (each keeps the check's meaning or loosens it).
OVERRIDES = {"epsilon_greedy_reward": -3.2109876, "epsilon_greedy_optimal": -3.2109876,
             "optimistic_optimal": -3.2109876, "ucb_reward": -3.2109876, "gradient_baseline_optimal": -3.2109876,
             "gradient_no_baseline_optimal": -3.2109876, "relative_tolerance": 1.0000777e-6,
             "unbiased_alpha": 1.0000777e-6, "max_variance_ratio": 0.987654321, "mean_return": -44.4444,
             "test_nelbo": 9999.3333, "untrained_start": 777.777, "learning_seen": -55.5555,
             "max_value_error_ratio": 88.8888, "top_fraction": 0.3333777, "late_mean_quantile": 0.0123456}
EXTRA = {
    "bandits": "testbed_runs = 200\ntestbed_steps = 200\n",
    "reinforce": "eval_episodes = 10\n",
    "reinforce_baseline": "eval_episodes = 10\n",
    "vae": 'dataset = "mnist-tiny"\nepochs = 1\n',
}


def _config(name: str) -> tuple[str, list[str]]:
    defaults = assignments.grader(name).defaults
    seeds = SEEDS[:len(defaults.get("seeds", [0, 1]))]
    lines = [f"[{name}]", f"seeds = {seeds}", EXTRA.get(name, ""), f"[{name}.thresholds]"]
    secrets = [str(s) for s in seeds]
    for key in defaults.get("thresholds", {}):
        value = OVERRIDES[key]
        lines.append(f"{key} = {value!r}")
        secrets += [f"{value:g}"] + ([f"{value:.3f}", f"{value:.2f}"] if abs(value) > 1 else [])
    return "\n".join(lines) + "\n", secrets


def _submissions(name: str) -> list[str]:
    if name in ("reinforce", "reinforce_baseline"):  # trains in no time; the evaluation prints the threshold
        return [controller_source(name)]
    return [solution_source(name), variants.load(name)[0].source()]


@pytest.mark.parametrize("name", assignments.names())
def test_hidden_seeds_and_overridden_thresholds_never_reach_a_student(grade_source, tmp_path, name):
    config, secrets = _config(name)
    for index, source in enumerate(_submissions(name)):
        plots = tmp_path / f"plots{index}"
        grading = grade_source(name, source, config_toml=config, artifacts_dir=plots)
        assert not grading.internal_error, grading.internal_error
        folder = tmp_path / f"student{index}"
        outputs.write_student(Record("student", "", student_status(grading), grading), folder, plots)
        seen = {"table": table(grading), "results.json": gradescope.render(grading),
                "feedback.html": (folder / "feedback.html").read_text()}
        assert json.loads(seen["results.json"])["tests"]
        for where, text in seen.items():
            for secret in secrets:
                assert secret not in text, f"{secret} appears in {where}"
        if index == 0 and name != "policy_gradient":  # the first submission reaches every threshold
            assert "(set by your instructor)" in seen["table"], seen["table"]
