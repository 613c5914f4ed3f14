"""Documentation that runs: the config example of graders/config.py and the grader of docs/writing-a-grader.md."""

from __future__ import annotations

import re
import textwrap
import types

from helpers import ROOT

from graders import config, contract, templates
from graders.config import Config
from graders.runner import grade


def _code_blocks(path) -> dict[str, str]:
    """The python blocks of a page, keyed by the file they are said to be (the backticked path before them)."""
    text = path.read_text()
    blocks = {}
    for match in re.finditer(r"\(`([\w/]+\.py)`\):\n\n```python\n(.*?)```", text, re.S):
        blocks[match.group(1)] = match.group(2)
    return blocks


def test_the_config_example_is_a_valid_config_for_the_real_graders(tmp_path):
    toml = textwrap.dedent(config.__doc__.split("\n\n", 1)[1].split("\nKeep this file")[0])  # the indented example
    assert "[bandits]" in toml
    path = tmp_path / "instructor.toml"
    path.write_text(toml)
    loaded = Config.load(path)
    effective = loaded.effective("bandits")
    assert effective.settings["seeds"] == [8123456789012345, 77777123456789]
    assert effective.settings["thresholds"]["epsilon_greedy_reward"] == 1.3
    assert next(c for c in effective.checks if c.name == "testbed_ucb").timeout_for("cuda") == 30
    assert loaded.sandbox_limits().memory_mb == 4096


def test_the_example_grader_of_writing_a_grader_grades_its_reference_and_template(tmp_path):
    blocks = _code_blocks(ROOT / "docs" / "writing-a-grader.md")
    module = types.ModuleType("running_mean_grader")
    exec(compile(blocks["graders/running_mean/grader.py"], "grader.py", "exec"), module.__dict__)
    grader = contract.from_module("running_mean", module)
    effective = Config().effective_of(grader)
    reference = blocks["solutions/running_mean/running_mean.py"]
    (tmp_path / "reference.py").write_text(reference)
    (tmp_path / "template.py").write_text(templates.template_source(reference))
    assert "raise NotImplementedError()" in (tmp_path / "template.py").read_text()
    full = grade(effective, tmp_path / "reference.py", device="cpu")
    assert full.score == full.max_score == 2, [r.message for r in full.results]
    zero = grade(effective, tmp_path / "template.py", device="cpu")
    assert zero.score == 0 and not zero.internal_error


def test_a_misspelt_fixture_or_hook_is_an_error_when_the_grader_is_loaded():
    from graders.checks import check

    module = types.ModuleType("broken")
    module.TITLE = "broken"

    @check(points=1)
    def typo(wroker, ctx):
        pass

    module.typo = typo
    module.DEFAULT = {}
    try:
        contract.from_module("broken", module)
    except contract.GraderContractError as exc:
        assert "unknown fixtures ['wroker']" in str(exc) and "misspelt 'DEFAULTS'" in str(exc)
    else:
        raise AssertionError("a misspelt fixture was accepted")


PATH_NAMED = re.compile(r"(?<![\w/.-])((?:graders|graders_worker|bench|tests|solutions|assignments|docs|datasets)"
                        r"/[\w./-]*\w\.(?:py|md|jsonl|json|toml|png|ipynb|csv))(?![\w-])")


EXAMPLE = re.compile(r"NAME|\*|running_mean")  # placeholders, and docs/writing-a-grader.md's example assignment


def _named_paths(text: str) -> set[str]:
    return set(PATH_NAMED.findall(text))


def test_every_file_the_docs_and_docstrings_name_exists():
    """Issue 31 item 7: a file named in the README, docs/ or a module's text is in the repository (a bench's output
    path with a placeholder, such as NAME, and the example assignment of docs/writing-a-grader.md are not files)."""
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
             *sorted((ROOT / "graders").rglob("*.py")), *sorted((ROOT / "graders_worker").rglob("*.py"))]
    missing = {}
    for path in texts:
        for name in _named_paths(path.read_text()):
            if not EXAMPLE.search(name) and not (ROOT / name).exists():
                missing.setdefault(str(path.relative_to(ROOT)), []).append(name)
    assert not missing, missing
