"""What a student sees: the CLI's conventions, the table, the progress line, the notebook's check cell."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from helpers import ROOT

from graders import notebook, templates
from graders.checks import check
from graders.config import Config
from graders.contract import from_module
from graders.outputs.table import table
from graders.progress import Listener, TerminalProgress
from graders.results import CheckResult, Grading
from graders.runner import grade
from graders.submission import load_notebook


def cli(*args):
    return subprocess.run([sys.executable, "-m", "graders", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_missing_file_version_verbose_after_the_subcommand_and_json_to_stdout(tmp_path):
    missing = cli("grade", "bandits", "no_such_file.ipynb")
    assert missing.returncode == 2 and "no_such_file.ipynb does not exist" in missing.stderr
    assert cli("--version").stdout.startswith("python -m graders ")
    (tmp_path / "x.py").write_text("x = 1\n")
    done = cli("grade", "-v", "bandits", str(tmp_path / "x.py"), "--device", "cpu", "--json", "-")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["score"] == 0  # stdout is the JSON alone
    assert "INFO" in done.stderr  # -v after the subcommand logs


def test_table_keeps_passing_checks_thresholds_and_aligns_long_names():
    long = "a_check_name_much_longer_than_the_forty_characters_of_the_column"
    note = "test-set negative ELBO on fashion-mnist: 250.12 +- 0.40 nats/image (threshold 255.00)"
    text = table(Grading("vae", "s.py", "cpu", [CheckResult(long, 6, 6, "passed", note),
                                                 CheckResult("short", 0, 1, "failed", "expected 1, got 2")]))
    rows = text.splitlines()
    assert rows[2].index("passed") == rows[3].index("failed")  # the columns stay aligned
    assert "(threshold 255.00)" in text  # a passing check's cut message is shown whole below


@check(points=1)
def reports_progress(worker, ctx):
    """Tells how it goes and publishes a number."""
    for episode in range(3):
        ctx.progress(f"episode {episode}")
    ctx.metric("mean_return", 490.5)


TITLE = "progress"


class Recording(Listener):
    def __init__(self):
        self.events = []

    def grading_started(self, assignment, checks, limit_s):
        self.events.append(("started", assignment, len(checks)))

    def check_started(self, check, limit_s):
        self.events.append(("check", check.name))

    def progress(self, text):
        self.events.append(("progress", text))

    def check_finished(self, result):
        self.events.append(("finished", result.name, result.status))

    def grading_finished(self, grading):
        self.events.append(("done", grading.score))


def test_the_listener_hears_every_step_and_metrics_are_stored(tmp_path):
    grader = from_module("bandits", sys.modules[__name__])
    (tmp_path / "s.py").write_text("x = 1\n")
    listener = Recording()
    grading = grade(Config().effective_of(grader), tmp_path / "s.py", device="cpu", listener=listener)
    assert listener.events == [("started", "bandits", 1), ("check", "reports_progress"),
                               ("progress", "episode 0"), ("progress", "episode 1"), ("progress", "episode 2"),
                               ("finished", "reports_progress", "passed"), ("done", 1.0)]
    assert grading.results[0].metrics == {"mean_return": {"value": 490.5, "order": "desc"}}


def test_terminal_progress_draws_on_a_terminal_and_stays_quiet_otherwise():
    assert TerminalProgress.for_stream(io.StringIO()) is None

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    bar = TerminalProgress.for_stream(stream)
    grader = from_module("bandits", sys.modules[__name__])
    bar.grading_started("bandits", grader.checks, 10)
    bar.check_started(grader.checks[0], 10)
    bar.progress("episode 12, return 87")
    bar._draw()
    bar.check_finished(CheckResult("reports_progress", 1, 1, "passed"))
    bar.grading_finished(None)
    assert "reports_progress" in stream.getvalue() and "episode 12, return 87" in stream.getvalue()


def test_notebooks_end_with_the_check_cell_and_guard_the_try_it_cell():
    for name in ("bandits", "reinforce"):
        cells = json.loads((ROOT / "assignments" / name / f"{name}.ipynb").read_text())["cells"]
        assert "".join(cells[-1]["source"]) == f"from graders.notebook import check\n\ncheck({name!r})"
        code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        assert 'if __name__ == "__main__":' not in code and "TRY_IT = False" in code
        graded = load_notebook(json.dumps({"cells": cells}), Path(f"{name}.ipynb")).code
        assert "check(" not in graded and "graders" not in graded  # never graded, never imported
    text = "".join("".join(c["source"]) for c in json.loads(
        (ROOT / "assignments" / "reinforce" / "reinforce.ipynb").read_text())["cells"])
    assert "Run this file" not in text and "TRY_IT = True" in text
    py = (ROOT / "assignments" / "reinforce" / "reinforce.py").read_text()
    assert "Run this file (`python reinforce.py`)" in py and "TRY_IT" not in py and "[ipynb]" not in py
    assert templates.for_format("# [py] a\n# [ipynb] b\n", "ipynb") == "# b\n"


def test_the_check_cell_finds_its_notebook(tmp_path, monkeypatch):
    (tmp_path / "bandits.ipynb").write_text("{}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "bandits.ipynb"))
    assert notebook.notebook_path("bandits") == tmp_path / "bandits.ipynb"
    monkeypatch.setenv("JPY_SESSION_NAME", "elsewhere/bandits.ipynb")  # relative to the server's root
    assert notebook.notebook_path("bandits") == tmp_path / "bandits.ipynb"
    html = notebook.html_table(Grading("bandits", "b.ipynb", "cpu", [CheckResult("c", 0, 1, "failed", "<script>")]))
    assert "&lt;script&gt;" in html and "Not the official grading" in html
