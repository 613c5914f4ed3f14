"""The single-grading path (`python -m graders grade NAME FILE`, what Gradescope's run_autograder runs on
/autograder/submission) refuses links as a batch does (issue 29, item 5): before, a submission that was a link
to a root-only file had the root grader read it, and a line of it appeared in results.json."""

from __future__ import annotations

import json

import pytest
from helpers import solution_source

from graders import cli, runner
from graders.submission import SubmissionFormatError, load

SECRET = "ROOT-ONLY-LINE-3f9a1c"


@pytest.fixture
def root_only(tmp_path):
    path = tmp_path / "private" / "shadow.py"
    path.parent.mkdir()
    path.write_text(f"{SECRET} = 1\n")
    path.chmod(0o600)
    return path


def test_a_linked_file_is_refused_and_its_target_never_shown(tmp_path, root_only, capsys):
    link = tmp_path / "bandits.py"
    link.symlink_to(root_only)
    out = tmp_path / "results.json"
    assert cli.main(["grade", "bandits", str(link), "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    everything = out.read_text() + "".join(capsys.readouterr())
    assert SECRET not in everything
    assert results["score"] == 0 and "symbolic link; links are not followed" in results["tests"][0]["output"]


@pytest.mark.parametrize("name", ["bandits.py", "other.py"])
def test_a_link_in_the_submission_folder_is_refused(tmp_path, root_only, name):
    """Gradescope grades the folder /autograder/submission: a link there, under the preferred name or as
    the only candidate, is refused."""
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / name).symlink_to(root_only)
    grading = runner.grade("bandits", folder, device="cpu")
    text = json.dumps(grading.to_dict())
    assert SECRET not in text and grading.score == 0
    assert f"{name} is a symbolic link; links are not followed" in grading.results[0].message


def test_a_dangling_link_is_refused_too(tmp_path):
    (tmp_path / "bandits.py").symlink_to(tmp_path / "gone.py")
    with pytest.raises(SubmissionFormatError, match="symbolic link"):
        load(tmp_path / "bandits.py", "bandits")


def test_a_file_reached_through_a_linked_folder_is_graded(tmp_path):
    """Correct but different: the folders on the way are the caller's (a project folder that is a link, a
    home on another disk); only the file itself and what lies in a submission folder must not be links."""
    real = tmp_path / "real"
    real.mkdir()
    (real / "bandits.py").write_text(solution_source("bandits"))
    (real / "notes.py").symlink_to(real / "bandits.py")  # a link beside the preferred file is not picked
    (tmp_path / "linked").symlink_to(real)
    for path in (tmp_path / "linked" / "bandits.py", tmp_path / "linked"):
        assert load(path, "bandits").code == solution_source("bandits")
