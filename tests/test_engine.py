"""The engine's parts: protocol, submission loading, templates, config, results, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT

from graders import assignments, templates
from graders.config import Config, ConfigError
from graders.outputs.gradescope import gradescope
from graders.results import CheckResult, Grading
from graders.submission import SubmissionFormatError, load_notebook
from graders_worker import protocol


def roundtrip(message):
    read, write = os.pipe()
    data = protocol.encode(message)
    os.write(write, data)
    os.close(write)
    try:
        return protocol.Reader(read).receive()
    finally:
        os.close(read)


def test_protocol_roundtrips_plain_data_and_arrays():
    message = {"op": "x", "value": [1, 2.5, None, True, "s", {"a": np.arange(6, dtype=np.float32).reshape(2, 3)}]}
    got = roundtrip(message)
    array = got["value"][5]["a"]
    assert type(array) is np.ndarray and array.dtype == np.float32 and array.shape == (2, 3)
    assert got["value"][:5] == [1, 2.5, None, True, "s"]


def test_protocol_sends_other_byte_orders_and_scalars_as_native_values():
    big = np.arange(4, dtype=">f8")
    got = roundtrip({"v": big, "t": (np.int64(3), np.float32(0.5), np.bool_(True))})
    assert got["v"].dtype == np.float64 and got["v"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert got["t"] == [3, 0.5, True]


class AlwaysEqual(np.ndarray):
    def __eq__(self, other):
        return True


def test_protocol_strips_subclasses_and_refuses_objects():
    sneaky = np.zeros(3).view(AlwaysEqual)
    assert type(roundtrip({"v": sneaky})["v"]) is np.ndarray
    for bad in (object(), np.array([object()]), {1: 2}, lambda: 0):
        with pytest.raises(protocol.ProtocolError):
            protocol.encode({"v": bad})


def test_protocol_rejects_forged_headers():
    for header in ({"body": {"__array__": 0, "dtype": "object", "shape": [1]}, "sizes": [8]},
                   {"body": {"__array__": 0, "dtype": "float64", "shape": [3]}, "sizes": [8]},
                   {"body": [1], "sizes": []}):
        raw = json.dumps(header).encode()
        data = protocol._LENGTH.pack(len(raw)) + raw + b"".join(
            protocol._LENGTH.pack(n) + b"\0" * n for n in header["sizes"])
        read, write = os.pipe()
        os.write(write, data)
        os.close(write)
        with pytest.raises(protocol.ProtocolError):
            protocol.Reader(read).receive()
        os.close(read)


def test_notebook_loader_keeps_definitions_and_plain_assignments():
    cells = ["import numpy as np\nLEARNING_RATE = 0.1\nscratch = 3\nprint('hi')",
             "@staticmethod\ndef f(x):\n    return x\nf(2)",
             "%%bash\nls -la", "!pip install x\nclass A:\n    pass\nif __name__ == '__main__':\n    A()"]
    notebook = {"cells": [{"cell_type": "code", "source": c} for c in cells] + [{"cell_type": "markdown", "source": "x"}]}
    code = load_notebook(json.dumps(notebook), Path("n.ipynb")).code
    assert "LEARNING_RATE = 0.1" in code and "scratch = 3" in code and "@staticmethod\ndef f" in code and "class A" in code
    for dropped in ("print", "f(2)", "pip", "__main__", "ls -la"):
        assert dropped not in code


def test_notebook_loader_errors_are_clear():
    cells = [{"cell_type": "code", "source": s} for s in ("def f(:", "x = 1", "import numpy as np, os.path\nclass C(:")]
    sub = load_notebook(json.dumps({"cells": cells}), Path("n.ipynb"))  # a cell with a syntax error: only it is lost
    assert [(d.cell, d.syntax_error, d.names) for d in sub.dropped] == [(1, True, {"f"}), (3, True, {"np", "os", "C"})]
    assert "syntax error at line 1" in sub.dropped[0].reason and "x = 1" in sub.code
    with pytest.raises(SubmissionFormatError, match="no list of cells"):
        load_notebook("[]", Path("n.ipynb"))


def test_strip_solutions_keeps_indentation_and_rejects_unbalanced_markers():
    source = "def f():\n    x = 1\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n"
    assert templates.strip_solutions(source) == "def f():\n    x = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    with pytest.raises(ValueError):
        templates.strip_solutions("### BEGIN SOLUTION\n")
    with pytest.raises(ValueError):
        templates.strip_solutions("### END SOLUTION\n")


def test_percent_format_becomes_a_valid_notebook():
    import nbformat

    source = '# %% [markdown]\n# # Title\n\n# %% {"tags": ["x"]}\nimport numpy\n\n# %%\nA = 1\n'
    notebook = templates.to_notebook(source)
    nbformat.validate(nbformat.reads(json.dumps(notebook), as_version=4))
    assert [c["cell_type"] for c in notebook["cells"]] == ["markdown", "code", "code"]
    assert notebook["cells"][0]["source"] == ["# Title"] and notebook["cells"][1]["metadata"] == {"tags": ["x"]}


def test_config_merges_overrides_and_rejects_unknown_keys(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[limits]\nmemory_mb = 1000\n[bandits]\nseeds = [7]\n[bandits.thresholds]\nucb_reward = 2.0\n"
                    "[bandits.checks.ucb_selection]\npoints = 3\n")
    config = Config.load(path)
    settings = config.settings("bandits", {"thresholds": {"ucb_reward": 1.0, "u": 5.0}})
    assert settings["seeds"] == [7] and settings["thresholds"] == {"ucb_reward": 2.0, "u": 5.0}
    assert config.sandbox_limits().memory_mb == 1000 and settings["checks"] == {"ucb_selection": {"points": 3}}
    for bad in ("[limits]\nmemroy_mb = 1\n", "[bandits]\nseed = [1]\n", "[bandits.thresholds]\nzz = 1\n",
                "[bandits.checks.ucb_selection]\npts = 1\n", "[bandit]\nseeds = [1]\n"):
        path.write_text(bad)
        with pytest.raises(ConfigError):
            Config.load(path).settings("bandits", {"thresholds": {"ucb_reward": 1.0}})


def test_gradescope_json_schema():
    grading = Grading("a", "s.py", "cpu", [CheckResult("c1", 2, 2, "passed"), CheckResult("c2", 0, 3, "timeout", "slow")])
    data = gradescope(grading)
    assert data["score"] == 2 and data["extra_data"]["max_score"] == 5 and "execution_time" in data
    assert [t["status"] for t in data["tests"]] == ["passed", "failed"]
    assert set(data["tests"][1]) >= {"name", "score", "max_score", "status", "output", "visibility"}
    assert data["tests"][1]["output"].startswith("[timeout]")


def cli(*args):
    return subprocess.run([sys.executable, "-m", "graders", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_cli_help_list_and_usage_errors(tmp_path):
    for command in ([], ["grade"], ["validate"], ["templates"], ["list"]):
        assert cli(*command, "--help").returncode == 0
    assert "bandits" in cli("list").stdout
    unknown = cli("grade", "no_such_assignment", "x.py")
    assert unknown.returncode == 2 and "unknown assignment" in unknown.stderr
    bad_config = tmp_path / "c.toml"
    bad_config.write_text("[bandits]\nnope = 1\n")
    assert cli("grade", "bandits", "x.py", "--config", str(bad_config)).returncode == 2


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cli_device_cuda_without_cuda_is_a_clear_error():
    result = cli("grade", "bandits", "assignments/bandits/bandits.py", "--device", "cuda")
    assert result.returncode == 2 and "no CUDA device" in result.stderr


def test_cli_grade_writes_gradescope_json_and_exits_zero_for_a_failing_student(tmp_path):
    result = cli("grade", "bandits", "assignments/bandits/bandits.py", "--device", "cpu", "--json", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["score"] == 0 and data["extra_data"]["max_score"] == 20
    assert len(data["tests"]) == len(assignments.grader("bandits").checks)


def test_config_overrides_do_not_leak_into_later_gradings(tmp_path):
    from graders import assignments

    path = tmp_path / "c.toml"
    path.write_text("[bandits.checks.ucb_selection]\npoints = 9\ntimeout = 1\n")
    changed = Config.load(path).effective("bandits").checks
    assert next(c for c in changed if c.name == "ucb_selection").points == 9
    assert next(c for c in assignments.grader("bandits").checks if c.name == "ucb_selection").points == 2
    assert next(c for c in Config().effective("bandits").checks if c.name == "ucb_selection").points == 2
