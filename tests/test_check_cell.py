"""The notebook's check cell (issue 30, items 2 and 4): it grades what the student ran, or refuses in one line when
the saved notebook does not hold a cell they ran; a correct run writes nothing on stderr (red in Jupyter), and a
laptop's confinement is one plain line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import solution_source

from graders.notebook import unsaved_cell

IMPORT = "import numpy as np"
ARGMAX = "def argmax_random_ties" + solution_source("bandits").split("def argmax_random_ties")[1].split("\n\n\n")[0]
WRONG_ARGMAX = "def argmax_random_ties(values, rng):\n    return values.argmax(axis=1)"
CHECK = "from graders.notebook import check\ncheck('bandits', 'argmax_breaks_ties_at_random', device='cpu')"


def saved(*cells: tuple[int | None, str]) -> str:
    """A notebook as Jupyter saves it: each code cell with the execution count it showed when saved."""
    return json.dumps({"cells": [{"cell_type": "code", "source": text, "execution_count": count, "metadata": {},
                                  "outputs": []} for count, text in cells], "metadata": {}, "nbformat": 4,
                       "nbformat_minor": 5})


# ----------------------------------------------------------------------------- which runs the saved file must hold


def test_a_notebook_saved_after_its_runs_is_graded():
    history = ["", IMPORT, ARGMAX, CHECK]
    assert unsaved_cell(saved((1, IMPORT), (2, ARGMAX + "\n"), (None, CHECK)), history) is None


def test_a_cell_edited_and_run_but_not_saved_is_named():
    history = ["", IMPORT, ARGMAX, WRONG_ARGMAX, CHECK]
    assert unsaved_cell(saved((1, IMPORT), (2, ARGMAX), (None, CHECK)), history) == "def argmax_random_ties(values, rng):"
    # saved afterwards (Ctrl-S, or Jupyter's autosave): graded
    assert unsaved_cell(saved((1, IMPORT), (3, WRONG_ARGMAX), (None, CHECK)), history) is None


def test_a_deleted_helper_that_was_run_is_named_and_a_deleted_print_is_not():
    helper = "def helper(x):\n    return 2 * x"
    assert unsaved_cell(saved((1, IMPORT), (None, CHECK)), ["", IMPORT, helper, CHECK]) == "def helper(x):"
    scratch = ["print(np.ones(3))", "np.ones(3).shape", "plt.plot([1, 2])", "%timeit np.ones(3)", "x = train(args)"]
    assert unsaved_cell(saved((1, IMPORT), (None, CHECK)), ["", IMPORT, *scratch, CHECK]) is None


def test_run_all_after_opening_a_notebook_saved_in_another_session_is_graded():
    """Execution counts of the saved file come from an older kernel; the texts are what counts."""
    history = ["", IMPORT, ARGMAX, CHECK]
    assert unsaved_cell(saved((41, IMPORT), (42, ARGMAX), (43, CHECK)), history) is None
    assert unsaved_cell(saved((2, IMPORT), (1, ARGMAX), (None, CHECK)), history) is None


def test_runs_before_the_last_save_do_not_count():
    """An old version of a cell, run before the save the file shows (its count and text match a later run)."""
    history = ["", IMPORT, WRONG_ARGMAX, ARGMAX, CHECK, CHECK]
    assert unsaved_cell(saved((1, IMPORT), (3, ARGMAX), (4, CHECK)), history) is None


def test_an_unreadable_file_is_left_to_the_grading():
    assert unsaved_cell("{not json", ["", IMPORT, CHECK]) is None


# ----------------------------------------------------------------------------- in a real kernel


@pytest.fixture
def kernel(tmp_path):
    """An IPython kernel that believes it runs tmp_path/bandits.ipynb, as Jupyter's server starts one, on a machine
    without bubblewrap (a laptop): `run(code)` -> (stdout, stderr, HTML shown)."""
    jupyter_client = pytest.importorskip("jupyter_client")
    notebook = tmp_path / "bandits.ipynb"
    env = {**os.environ, "JPY_SESSION_NAME": str(notebook), "PATH": str(tmp_path)}  # no bwrap on this PATH
    manager = jupyter_client.KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(tmp_path), env=env)
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=120)

    def run(code: str) -> tuple[str, str, str]:
        out, err, shown = [], [], []

        def collect(message):
            content = message["content"]
            if message["msg_type"] == "stream":
                (out if content["name"] == "stdout" else err).append(content["text"])
            elif message["msg_type"] in ("display_data", "execute_result"):
                shown.append(content["data"].get("text/html", ""))
            elif message["msg_type"] == "error":
                err.append("\n".join(content["traceback"]))

        reply = client.execute_interactive(code, timeout=600, output_hook=collect)
        assert reply["content"]["status"] == "ok", err
        return "".join(out), "".join(err), "".join(shown)

    try:
        yield notebook, run
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def _save(notebook: Path, *cells: tuple[int, str]) -> None:
    notebook.write_text(saved(*cells, (None, CHECK)))


def test_the_check_cell_grades_a_saved_notebook_and_refuses_an_unsaved_edit(kernel):
    notebook, run = kernel
    run(IMPORT)
    run(ARGMAX)
    _save(notebook, (1, IMPORT), (2, ARGMAX))
    out, err, shown = run(CHECK)
    assert "saved: it holds every cell you ran" in out and "argmax_breaks_ties_at_random" in shown
    assert ">passed<" in shown and "1 / 1" in shown
    assert err == "", err  # nothing red: no warning about the missing bubblewrap
    assert "sandbox (not installed here): expected on a laptop" in shown

    run(WRONG_ARGMAX)  # edited and run, not saved
    out, err, shown = run(CHECK)
    assert out.startswith("Not graded: bandits.ipynb on disk does not hold the cell you ran starting "
                          "`def argmax_random_ties(values, rng):`") and out.count("\n") == 1
    assert shown == "" and err == ""

    _save(notebook, (1, IMPORT), (4, WRONG_ARGMAX))  # saved (it ran as In [4]): graded, and the wrong code fails
    out, err, shown = run(CHECK)
    assert ">failed<" in shown and err == ""

