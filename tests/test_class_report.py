"""The class report (graders/outputs/class_report.py): item analysis from the records, written by the batch and by
`python -m graders report`, instructor-only, safe with whatever the students' code wrote."""

from __future__ import annotations

import csv
import io
import shutil

import similarity_corpus as corpus
from helpers import FAST_BANDITS, ROOT, solution_source

from graders import assignments
from graders.batch import records as batch_records
from graders.cli import main
from graders.outputs import class_report
from graders.results import CheckResult, Grading, NotGraded, Record, student_status

CHECKS = assignments.grader("bandits").checks
FIRST, SECOND = CHECKS[0], CHECKS[1]


def _record(student: str, outcomes: dict | None = None, seconds: float = 1.0) -> Record:
    """A bandits record: every check passed, but those in `outcomes` ({check: (status, points, message)})."""
    results = []
    for c in CHECKS:
        status, points, message = (outcomes or {}).get(c.name, ("passed", c.points, ""))
        results.append(CheckResult(c.name, points, c.points, status, message, seconds=seconds / len(CHECKS),
                                   kind=c.kind))
    grading = Grading("bandits", f"{student}.py", "cpu", results=results, seconds=seconds)
    return Record(student, "sha", student_status(grading), grading)


def _csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_messages_differing_only_in_numbers_are_one_diagnosis():
    d = class_report.diagnosis
    assert d("loss gradient: the sign of the loss is reversed (cosine -0.998)\nHint: x") == \
        d("loss gradient: the sign of the loss is reversed (cosine -0.971)\nHint: y")
    assert d("rows [3, 4, 5]: counts [10 12 13] p = 1e-05") == d("rows [7]: counts [1 2] p = 0.2") == \
        "rows [#]: counts [#] p = #"
    assert d("weighted by G_0 in fc1, not UTF-8") == "weighted by G_0 in fc1, not UTF-8"  # names keep their digits
    assert d("Hint: only a hint") == ""
    assert d("x\x1b[2Jy") == "x\\x1b[2Jy"  # a terminal escape is shown, never kept raw


def test_per_check_pass_rates_points_diagnoses_and_time():
    records = [
        _record("a"),
        _record("b", {FIRST.name: ("failed", 0.0, "counts [1 2] are not uniform (p = 0.01)")}),
        _record("c", {FIRST.name: ("failed", 0.0, "counts [5 9] are not uniform (p = 0.002)"),
                      SECOND.name: ("failed", 1.0, "off by one")}, seconds=30.0),
        _record("d", {FIRST.name: ("error", 0.0, "your code raised ValueError: 7")}),
    ]
    stats = {s.check.name: s for s in class_report.check_stats(CHECKS, records)}
    first = stats[FIRST.name]
    assert first.pass_rate == 0.25 and first.statuses["failed"] == 2 and first.statuses["error"] == 1
    assert first.diagnoses == {"counts [#] are not uniform (p = #)": 2, "your code raised ValueError: #": 1}
    assert stats[SECOND.name].shares() == {"full": 3, "partial": 1, "zero": 0}

    rows = {r["check"]: r for r in _csv(class_report.checks_csv(list(stats.values())))}
    assert rows[FIRST.name]["pass_rate"] == "0.25" and rows[FIRST.name]["failed"] == "2"
    assert rows[SECOND.name]["partial_points"] == "1"
    points = [r for r in _csv(class_report.points_csv(list(stats.values()))) if r["check"] == SECOND.name]
    assert [(r["points"], r["students"]) for r in points] == [("1", "1"), (f"{SECOND.points:g}", "3")]
    diagnoses = _csv(class_report.diagnoses_csv(list(stats.values())))
    assert diagnoses[0] == {"check": FIRST.name, "diagnosis": "counts [#] are not uniform (p = #)", "students": "2",
                            "example_student": "b"}
    assert _csv(class_report.slowest_csv(records))[0]["student"] == "c"
    scores = _csv(class_report.scores_csv(records))
    assert sum(int(r["students"]) for r in scores) == 4


def test_flagged_crashed_and_not_graded_students_are_listed():
    flagged = _record("fay", {FIRST.name: ("flagged", 0.0, "ok")})
    flagged.grading.results[0].flag = "no learning seen"
    crashed = _record("cy")
    crashed.status = "crashed"
    rows = _csv(class_report.students_csv([_record("a"), flagged, crashed], [NotGraded("b\\xe9.py", "not UTF-8")]))
    assert [(r["student"], r["why"]) for r in rows] == [("fay", "flagged"), ("cy", "crashed"),
                                                       ("b\\xe9.py", "not graded")]
    assert rows[0]["detail"] == f"{FIRST.name}: no learning seen"


def test_what_students_wrote_is_escaped_in_the_page_and_made_safe_in_the_tables(tmp_path):
    hostile = _record("=HYPERLINK(\"x\")", {FIRST.name: ("failed", 0.0, "<script>alert(1)</script> =cmd")})
    folder = class_report.write(CHECKS, [hostile, _record("<b>bob</b>")], tmp_path, [NotGraded("<i>x</i>", "<img>")])
    page = (folder / "index.html").read_text()
    assert "<script>" not in page and "<b>bob</b>" not in page and "<i>x</i>" not in page
    assert "&lt;script&gt;" in page
    assert "'=HYPERLINK" in (folder / "slowest.csv").read_text()
    assert (folder / "diagnoses.csv").read_text().count("'=HYPERLINK") == 1
    for png in ("checks.png", "seconds.png", "scores.png"):
        assert (folder / png).read_bytes().startswith(b"\x89PNG")
    assert class_report.read_not_graded(tmp_path) == [NotGraded("<i>x</i>", "<img>")]


def test_an_empty_class_still_has_a_report(tmp_path):
    folder = class_report.write(CHECKS, [], tmp_path)
    assert "0 students" in (folder / "index.html").read_text()


def test_report_regenerates_from_a_results_folder(tmp_path, capsys):
    out = tmp_path / "results"
    reference = solution_source("bandits")
    sources = {"alice": reference, "bob": corpus.rename(reference, "bandits"),  # a copy, renamed
               "carol": (ROOT / "assignments" / "bandits" / "bandits.py").read_text()}
    for student, source in sources.items():
        folder = out / "students" / student
        folder.mkdir(parents=True)
        batch_records.write_snapshot(folder, "bandits", ".py", source.encode())
        batch_records.write_outputs(folder, _record(student, {} if student != "carol" else {
            c.name: ("error", 0.0, "your code raised NotImplementedError") for c in CHECKS}))
    (out / "students" / "dave").mkdir()  # no grading.json: not a row
    assert main(["report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "code similarity: 1 pairs flagged, 1 students not compared" in printed
    assert "item analysis:" in printed
    assert (out / "report" / "index.html").is_file()
    pairs = _csv((out / "similarity" / "pairs.csv").read_text())
    assert [(p["student_a"], p["student_b"], p["flagged"]) for p in pairs] == [("alice", "bob", "yes")]
    page = (out / "similarity" / "pair-1.html").read_text()
    assert "<mark>" in page and "alice" in page and "bob" in page
    assert "nothing beyond the template" in (out / "similarity" / "index.html").read_text()
    # the students' own outputs hold nothing of the class report
    for student in sources:
        for name in ("feedback.html", "results.json"):
            text = (out / "students" / student / name).read_text()
            assert not any(other in text for other in sources if other != student)
            assert "similarity" not in text and "item analysis" not in text

    assert main(["report", str(out), "--no-similarity", "--threshold", "0.99"]) == 0
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "holds no graded student" in capsys.readouterr().err


def test_a_batch_writes_the_report_and_the_class_page_shows_it(tmp_path):
    subs = tmp_path / "submissions"
    subs.mkdir()
    reference = solution_source("bandits")
    (subs / "alice.py").write_text(reference)
    (subs / "bob.ipynb").write_text(corpus.as_notebook(corpus.rename(reference, "bandits")))  # a copy, renamed
    shutil.copy(ROOT / "assignments" / "bandits" / "bandits.ipynb", subs / "carol.ipynb")
    (subs / "notes.txt").write_text("not code")
    config = tmp_path / "config.toml"
    config.write_text(FAST_BANDITS + '[limits]\nisolation = "process"\nimport_seconds = 4\nmemory_mb = 2048\n')
    out = tmp_path / "out"
    assert main(["batch", "bandits", str(subs), "--out", str(out), "-j", "2", "--device", "cpu",
                 "--config", str(config), "--allow-unsafe-host"]) == 3  # notes.txt is not graded (process mode: the
    # host check would stop the batch)
    pairs = _csv((out / "similarity" / "pairs.csv").read_text())
    assert [(p["student_a"], p["student_b"], p["flagged"]) for p in pairs] == [("alice", "bob", "yes")]
    checks = {r["check"]: r for r in _csv((out / "report" / "checks.csv").read_text())}
    assert set(checks) == {c.name for c in CHECKS}
    assert all(r["students"] == "3" and r["passed"] == "2" for r in checks.values())
    assert "notes.txt" in (out / "report" / "students.csv").read_text()
    index = (out / "index.html").read_text()
    assert 'href="report/index.html"' in index and 'href="similarity/index.html"' in index
    assert 'src="report/checks.png"' in index


def test_the_report_command_uses_the_config_points(tmp_path):
    out = tmp_path / "results"
    folder = out / "students" / "alice"
    folder.mkdir(parents=True)
    batch_records.write_outputs(folder, _record("alice"))
    config = tmp_path / "config.toml"
    config.write_text(f"[bandits.checks.{FIRST.name}]\npoints = 5\n")
    assert main(["report", str(out), "--config", str(config), "--no-similarity"]) == 0
    rows = {r["check"]: r for r in _csv((out / "report" / "checks.csv").read_text())}
    assert rows[FIRST.name]["points"] == "5"
