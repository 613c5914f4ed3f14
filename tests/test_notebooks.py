"""Notebooks and the messages about them (issues 13 and 21): what the loader keeps, how the
worker's line numbers are mapped back to the student's cells, one message for a submission
that does not load, and notebooks that once crashed the grader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, by_name, solution_source

from graders.runner import NOT_LOADED
from graders.sandbox import StudentError, Worker
from graders.submission import NOTEBOOK_RULE, SubmissionFormatError, load, load_notebook


def notebook(*cells: str, markdown_first: bool = False) -> str:
    code = [{"cell_type": "code", "source": c, "metadata": {}, "outputs": [], "execution_count": None} for c in cells]
    head = [{"cell_type": "markdown", "source": "# Title", "metadata": {}}] if markdown_first else []
    return json.dumps({"cells": head + code, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def loaded(*cells: str, markdown_first: bool = False):
    return load_notebook(notebook(*cells, markdown_first=markdown_first), Path("work.ipynb"))


def run(submission, name: str, *args):
    """Call a top-level function of the graded code in a real worker (the bandits adapter is harmless)."""
    with Worker("bandits", submission.code) as worker:
        return worker.call(name, *args, timeout=60)


# ----------------------------------------------------------------------------- what is kept


def test_helper_constants_and_functions_in_their_own_cells_are_kept():
    sub = loaded("import numpy as np", "AXIS = 1", "def helper(x):\n    return x.sum(axis=AXIS)",
                 "SCALE = np.float32(2.0) * len([1, 2])\nTABLE = {'a': [i * i for i in range(3)]}",
                 "def total(values):\n    return float(helper(np.asarray(values)).sum() * SCALE + TABLE['a'][2])")
    assert run(sub, "total", [[1.0, 2.0], [3.0, 4.0]]) == 10.0 * 4 + 4
    assert not sub.dropped


def test_code_under_a_python_cell_magic_is_kept_and_other_magics_are_not():
    sub = loaded("%%time\nclass UCB:\n    def act(self):\n        return 7\ndemo = UCB().act()",
                 "%%bash\necho hi", "%%capture\ndef f():\n    return UCB().act()")
    assert "class UCB" in sub.code and "def f" in sub.code and "echo" not in sub.code and "demo" not in sub.code
    assert run(sub, "f") == 7
    assert {d.reason for d in sub.dropped} == {"it calls UCB().act(), which runs only in the notebook",
                                               "a %%bash cell is not Python"}


def test_demo_and_training_statements_are_dropped():
    sub = loaded("import numpy as np\nimport gymnasium as gym\nfrom dataclasses import dataclass",
                 "@dataclass\nclass Args:\n    lr: float = 0.1\nargs = Args(lr=0.2)",
                 "def train(args):\n    while True:\n        pass",
                 "policy = train(args)\nprint(policy)\nfor i in range(3):\n    train(args)",
                 "env = gym.make('CartPole-v1')\nobs_dim = env.observation_space.shape[0]",
                 "with open('x') as f:\n    text = f.read()\nx = 1; y = train(args)",
                 "if __name__ == '__main__':\n    train(args)",
                 "%matplotlib inline\n!pip install gymnasium\nfiles = !ls\nnp.array?\nLR = args.lr * 2",
                 "def lr():\n    return LR + x")
    code = sub.code
    assert "args = Args(lr=0.2)" in code and "LR = args.lr * 2" in code and "x = 1\n" in code
    for gone in ("policy", "print", "range(3)", "gym.make", "obs_dim", "open(", "y = ", "__main__", "matplotlib"):
        assert gone not in code, gone
    compile(code, "submission.py", "exec")
    reasons = {next(iter(d.names)) if d.names else d.text: d.reason for d in sub.dropped}
    assert reasons["policy"] == "it calls train(), which runs only in the notebook"
    assert reasons["obs_dim"] == "it uses `env`, which the graded code does not define"
    assert reasons["i"] == "a loop runs only in the notebook"
    assert run(sub, "lr") == pytest.approx(1.4)  # the graded code imports, without training


def test_if_and_try_of_plain_statements_are_kept_whole():
    sub = loaded("import torch\ntry:\n    import wandb\nexcept ImportError:\n    wandb = None",
                 "if torch.cuda.is_available():\n    DEVICE = 'cuda'\nelse:\n    DEVICE = 'cpu'",
                 "if True:\n    model = make_model()")
    assert "wandb = None" in sub.code and "DEVICE = 'cpu'" in sub.code and "make_model" not in sub.code


def test_the_rule_is_written_where_students_read_it():
    template = json.loads((ROOT / "assignments" / "reinforce" / "reinforce.ipynb").read_text())
    assert NOTEBOOK_RULE in "".join(template["cells"][0]["source"])
    assert "How a notebook is graded" in (ROOT / "README.md").read_text()


# ----------------------------------------------------------------------------- messages


def test_a_missing_name_names_the_cell_that_was_not_graded_and_why():
    sub = loaded("import numpy as np", "def make_table():\n    return np.ones(3)", "TABLE = make_table()",
                 "def lookup(i):\n    return float(TABLE[i])", markdown_first=True)
    with pytest.raises(StudentError) as caught:
        run(sub, "lookup", 1)
    message = sub.explain(str(caught.value))
    assert "NameError: name 'TABLE' is not defined" in message
    assert "`TABLE` is defined in notebook cell 4 (`TABLE = make_table()`), line 1" in message
    assert "it calls make_table(), which runs only in the notebook" in message


def test_tracebacks_point_at_the_notebook_cell_and_line():
    sub = loaded("import numpy as np", "X = 3\n\n\ndef f(values):\n    y = 1\n    return values[X]",
                 markdown_first=True)
    with pytest.raises(StudentError) as caught:
        run(sub, "f", [1, 2])
    message = sub.explain(str(caught.value))
    assert 'File "work.ipynb, cell 3 (`X = 3`), line 6", in f' in message, message
    assert "submission.py" not in message


def test_tracebacks_of_a_py_file_point_at_its_own_lines(tmp_path):
    path = tmp_path / "bandits.py"
    path.write_text("import numpy as np\n\n\ndef f(values):\n    return values[3]\n")
    sub = load(path, "bandits")
    with pytest.raises(StudentError) as caught:
        run(sub, "f", [1, 2])
    assert 'File "bandits.py, line 5", in f' in sub.explain(str(caught.value))


@pytest.mark.parametrize("forged", ["0", "-1", "99999999", "123456789012345678901234567890", "4x"])
def test_forged_line_numbers_do_not_crash_the_mapping(forged):
    sub = loaded("x = 1")
    text = sub.explain(f'File "submission.py", line {forged}, in f\nNameError: name \'x\' is not defined')
    assert "in f" in text


def test_a_submission_that_does_not_load_says_so_once(grade_source):
    grading = grade_source("bandits", "import numpy as np\n\n\ndef f(:\n    pass\n")
    first, *rest = grading.results
    assert first.status == "error" and "SyntaxError" in first.message and 'File "bandits.py, line 4"' in first.message
    assert rest and all(r.message == NOT_LOADED.format(first=first.name) and r.points == 0 for r in rest)
    assert grading.score == 0 and not grading.internal_error


def test_a_py_syntax_error_still_costs_the_whole_file(grade_source):
    """A .py file is one module, as Python runs it; only a notebook's cells run one by one."""
    grading = grade_source("bandits", solution_source("bandits").replace("class UCB:", "class UCB"))
    assert grading.score == 0 and all(r.status == "error" for r in grading.results[:1])


# ----------------------------------------------------------------------------- one broken cell (issue 26, item 6)


def student_notebook(ucb_cell: str, helper_cell: str) -> str:
    """The bandits reference as a student writes it in Jupyter: markdown between cells, a cell per class, a
    helper with its constant in a cell of its own (the gradient bandit calls it)."""
    source = solution_source("bandits")
    cells = {name: "class " + source.split("\nclass ")[i].split("\n\n\n")[0]
             for i, name in enumerate(["", "EpsilonGreedy", "UCB", "GradientBandit"]) if name}
    gradient = cells["GradientBandit"].replace(
        "z = np.exp(self.H - self.H.max(axis=1, keepdims=True))\n        return z / z.sum(axis=1, keepdims=True)",
        "return softmax(self.H)")
    assert gradient != cells["GradientBandit"]
    argmax = "def argmax_random_ties" + source.split("def argmax_random_ties")[1].split("\n\n\n")[0]
    markdown = [{"cell_type": "markdown", "source": "## Part " + str(i), "metadata": {}} for i in range(6)]
    code = ["import numpy as np", argmax, cells["EpsilonGreedy"], ucb_cell.replace("UCB_CELL", cells["UCB"]),
            helper_cell, gradient, "from graders.notebook import check\ncheck('bandits')"]
    cells_json = [c for pair in zip(markdown, [{"cell_type": "code", "source": c, "metadata": {}, "outputs": [],
                                                 "execution_count": None} for c in code]) for c in pair]
    return json.dumps({"cells": cells_json, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


SOFTMAX = ("def softmax(h):\n    z = np.exp(h - h.max(axis=1, keepdims=True))\n"
           "    return z / z.sum(axis=1, keepdims=True)")


def test_a_broken_cell_in_the_middle_costs_only_the_checks_that_need_it(grade_source):
    """A syntax error in the UCB cell and a helper cell that raises while loading (its constant divides by zero
    before the helper is defined): the checks of UCB and of the gradient bandit name the cell and why; the
    others keep their points, as nbgrader's autograding would give them."""
    ucb = "UCB_CELL\n\n    def reset(self)\n        self.t = 0"  # the colon forgotten
    helper = "N_ARMS = 10\nTEMPERATURE = 1 / (N_ARMS - 10)\n" + SOFTMAX
    grading = grade_source("bandits", student_notebook(ucb, helper), suffix=".ipynb", unit=True)
    rows = by_name(grading)
    for name in ("argmax_breaks_ties_at_random", "sample_average_update", "constant_step_size_and_optimistic_start",
                 "exploration_frequency", "greedy_ties_are_uniform"):
        assert rows[name].status == "passed", rows[name].message
    for name in ("ucb_tries_every_arm_first", "ucb_selection"):
        assert rows[name].points == 0
        assert "`UCB` is defined in notebook cell 8 (`class UCB:`), which is not graded: it has a syntax error at " \
               "line" in rows[name].message, rows[name].message
    for name in ("gradient_bandit_policy", "gradient_bandit_update_without_baseline"):
        assert rows[name].points == 0
        assert "NameError: name 'softmax' is not defined" in rows[name].message
        assert ("`softmax` is defined in notebook cell 10 (`N_ARMS = 10`), which raised ZeroDivisionError: "
                "division by zero at line 2 while loading") in rows[name].message, rows[name].message
    assert "does not load" not in "".join(r.message for r in grading.results)


def test_the_same_notebook_fixed_earns_every_unit_point(grade_source):
    """The control: the same cells without the two mistakes (so the test above sees the mistakes, not the layout)."""
    grading = grade_source("bandits", student_notebook("UCB_CELL", "N_ARMS = 10\n" + SOFTMAX), suffix=".ipynb",
                           unit=True)
    graded = [r for r in grading.results if r.status != "skipped"]
    assert graded and all(r.status == "passed" for r in graded), [(r.name, r.message) for r in graded]


def test_a_cell_that_raises_stops_only_itself_like_jupyter():
    """The cells after a raising one run; the raising cell keeps what it defined before the error; `from
    __future__` imports apply to every cell; line numbers of every cell stay the graded code's."""
    sub = loaded("from __future__ import annotations\nimport numpy as np", "A = 1\nB = 1 / 0\nC = 3",
                 "def f(x: NotDefinedAnywhere) -> int:\n    return A + x", "def g():\n    return missing_name")
    with Worker("bandits", sub.code) as worker:
        worker.start()
        assert len(worker.load_failures) == 1 and "ZeroDivisionError" in worker.load_failures[0]
        assert worker.call("f", 1, timeout=60) == 2
        with pytest.raises(StudentError) as caught:
            worker.call("g", timeout=60)
    assert "cell 4 (`def g():`), line 2" in sub.explain(str(caught.value))
    assert "cell 2" in sub.place(next(i for i, o in enumerate(sub.origins, 1) if o and o.cell == 2 and o.line == 2))


# ----------------------------------------------------------------------------- notebooks that crashed the grader

HOSTILE_NOTEBOOKS = {
    "deep_json": ("[" * 100_000 + "]" * 100_000, "nested too deeply to be a Jupyter notebook"),
    "long_expression": (notebook("x = " + "+".join(["1"] * 150_000)), "nested too deeply (or too long)"),
    "deep_expression": (notebook("x = " + "-" * 100_000 + "1"), "nested too deeply (or too long)"),
    "lone_surrogate": ('{"cells": [{"cell_type": "code", "source": "s = \\"\\ud800\\"", "metadata": {}}]}',
                       "not valid Unicode"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_NOTEBOOKS))
def test_notebooks_that_crashed_the_grader_get_a_clear_message_and_results_json(tmp_path, case):
    text, words = HOSTILE_NOTEBOOKS[case]
    path, out = tmp_path / "bandits.ipynb", tmp_path / "out.json"
    path.write_text(text)
    with pytest.raises(SubmissionFormatError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load(path, "bandits")
    done = subprocess.run([sys.executable, "-m", "graders", "grade", "bandits", str(path), "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert words in done.stdout
    results = json.loads(out.read_text())
    assert results["score"] == 0 and words in json.dumps(results)
