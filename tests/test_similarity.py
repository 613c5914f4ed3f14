"""Code similarity (graders/similarity.py): independent work is never flagged, disguised copies always are, the
template makes no pairs, and hostile files cost nothing but their own comparison.

The corpus (tests/fixtures/similarity/, tests/similarity_corpus.py): independent implementations of bandits and
reinforce written for this suite, and the disguises a copier uses. The measured separation: bench/similarity_threshold.py
and docs/instructor.md.
"""

from __future__ import annotations

import json

import pytest
import similarity_corpus as corpus
from helpers import ROOT, solution_source

from graders import similarity
from graders.outputs import similarity_report
from graders.release import kit

pytest.importorskip("copydetect", reason="needs copydetect: pip install -e '.[similarity]'")

ASSIGNMENTS = ("bandits", "reinforce")


def _templates(assignment: str) -> list[str]:
    return similarity.template_texts([ROOT / "assignments" / assignment / f"{assignment}{s}" for s in (".py", ".ipynb")])


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_corpus_holds_ten_independent_implementations_or_more(assignment):
    implementations = corpus.all_implementations(assignment)  # each fills every place of the current template
    assert len(implementations) >= 10
    assert len(set(implementations.values())) == len(implementations)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_independent_work_is_not_flagged_and_every_disguised_copy_is(assignment):
    originals = corpus.all_implementations(assignment)
    codes = dict(originals)
    for name, source in originals.items():
        for disguise, make in corpus.DISGUISES.items():
            codes[f"{name} {disguise}"] = make(source, assignment, int(name))
        codes[f"{name} notebook"] = similarity.Code(f"{name} notebook", similarity.notebook_code(
            corpus.as_notebook(corpus.everything(source, assignment, 7))))
    result = similarity.compare(codes, _templates(assignment), prefilter=0.0)  # every pair in full
    flagged = {frozenset((p.a.split()[0], p.b.split()[0])) for p in result.flagged()}
    assert all(len(pair) == 1 for pair in flagged), sorted(map(sorted, flagged))  # only copies of one author
    found = {(p.a, p.b) for p in result.flagged()} | {(p.b, p.a) for p in result.flagged()}
    missed = [(name, copy) for name in originals for copy in codes
              if copy.startswith(f"{name} ") and (name, copy) not in found]
    assert not missed
    independent = [p.score for p in result.pairs if p.a.split()[0] != p.b.split()[0]]
    assert 0 < max(independent) < similarity.THRESHOLD
    assert min(p.fingerprints for p in result.pairs if p.score >= similarity.THRESHOLD) > similarity.PREFILTER


def test_the_template_makes_no_pairs(tmp_path):
    template_py = (ROOT / "assignments" / "bandits" / "bandits.py").read_text()
    template_nb = (ROOT / "assignments" / "bandits" / "bandits.ipynb")
    notebook = similarity.read_code("nb", template_nb)
    codes = {"a": template_py, "b": template_py, "c": notebook,
             "d": template_py.replace("import numpy as np", "import numpy as np  # my comment\n\n", 1)}
    result = similarity.compare(codes, _templates("bandits"))
    assert result.pairs == []
    assert {c.student: c.problem for c in result.not_compared} == dict.fromkeys("abcd", "nothing beyond the template")


def test_the_reference_and_its_notebook_are_one_code():
    source = solution_source("bandits")
    result = similarity.compare({"py": source, "nb": similarity.notebook_code(corpus.as_notebook(source))},
                                _templates("bandits"))
    assert [(p.a, p.b) for p in result.flagged()] == [("nb", "py")]


def test_without_the_template_as_boilerplate_every_untouched_template_would_pair():
    """The control of test_the_template_makes_no_pairs: the exclusion is what keeps these apart."""
    template_py = (ROOT / "assignments" / "bandits" / "bandits.py").read_text()
    assert similarity.compare({"a": template_py, "b": template_py}).flagged()


def test_two_students_who_wrote_one_line_each_are_not_a_pair():
    """Short own code matches by idiom (the same one-liner): the minimum of shared characters keeps it apart."""
    base = (ROOT / "assignments" / "bandits" / "bandits.py").read_text()
    place = "    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    line = "    return np.argmax(values + rng.random(values.shape) * 1e-9, axis=1)\n"
    codes = {"a": base.replace(place, line, 1), "b": base.replace(place, line, 1)}
    result = similarity.compare(codes, _templates("bandits"))
    assert result.pairs and not result.flagged()


def test_hostile_files_are_listed_not_compared(tmp_path):
    files = {
        "binary.py": b"\x00\x01\x02" * 50,
        "latin1.py": "caf\xe9 = 1\n".encode("latin-1"),
        "deep.ipynb": b'{"cells": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "broken.ipynb": b'{"cells": [',
        "nocells.ipynb": b'{"cells": {"a": 1}}',
        "oddcells.ipynb": json.dumps({"cells": [7, {"cell_type": "code", "source": 5},
                                                {"cell_type": "code", "source": ["x = 1\n", 3]}]}).encode(),
    }
    codes = {}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        codes[name] = similarity.read_code(name, tmp_path / name)
    codes["missing"] = similarity.read_code("missing", None)
    problems = {name: code.problem for name, code in codes.items()}
    assert problems["binary.py"] == "a binary file (it holds NUL bytes)"
    assert problems["latin1.py"] == "not UTF-8 text"
    assert problems["deep.ipynb"] == "a notebook whose JSON is nested too deeply"
    assert problems["broken.ipynb"].startswith("not a notebook")
    assert problems["nocells.ipynb"] == "not a notebook (no list of cells)"
    assert problems["oddcells.ipynb"] == "" and "x = 1" in codes["oddcells.ipynb"].text
    assert problems["missing"] == "no copy of the file graded"
    result = similarity.compare({**codes, "ref": solution_source("bandits")}, _templates("bandits"))
    assert result.pairs == []


def test_a_huge_file_is_cut_and_says_so():
    own = "\n".join(f"v{i} = {i} * w{i}" for i in range(20_000))
    result = similarity.compare({"big": own, "copy": own}, [])
    assert "only the first" in result.codes["big"].note
    assert len(result.codes["big"].text) <= similarity.MAX_CODE_CHARS
    assert result.flagged()


def test_the_pair_page_escapes_what_students_wrote():
    source = solution_source("bandits").replace("import numpy as np", "import numpy as np\nX = '</pre><script>alert(1)</script>'")
    result = similarity.compare({"<b>eve</b>": source, "mallory": source}, _templates("bandits"))
    (pair,) = result.flagged()
    page = similarity_report.pair_page(1, pair, result, "bandits")
    assert "<script>" not in page and "<b>eve</b>" not in page and "&lt;script&gt;" in page
    assert "<mark>" in page
    index = similarity_report.index_page(result, "bandits", [], 2)
    assert "<b>eve</b>" not in index and "&lt;b&gt;eve&lt;/b&gt;" in index
    assert similarity_report.pairs_csv(result).splitlines()[1].startswith("<b>eve</b>,mallory,")


def test_no_student_kit_holds_the_class_report():
    for name in ("bandits", "reinforce"):
        shipped = kit.engine_modules(name, kit.instructor_only_everywhere())
        assert "graders.outputs" in shipped  # the package the report lives in is shipped...
        assert not shipped & set(kit.INSTRUCTOR_TOOLS)  # ...but not the report's modules


def test_without_copydetect_the_batch_says_the_similarity_was_not_computed(tmp_path, monkeypatch):
    from graders.outputs import class_report

    def missing():
        raise similarity.SimilarityUnavailable("code similarity needs copydetect")

    monkeypatch.setattr(similarity, "_copydetect", missing)
    written = class_report.write_all([], [_record("a")], tmp_path)
    assert written.errors == [] and any("not computed" in n for n in written.notes)
    assert (tmp_path / "report" / "index.html").is_file()


def _record(student: str):
    from graders.results import Grading, Record

    return Record(student, "", "passed", Grading("bandits", "x.py", "cpu"))


def test_the_scores_are_the_same_in_every_process():
    """copydetect's own hash() is salted per interpreter; ours is not: a local and a Ray batch report the same."""
    import subprocess
    import sys

    script = ("import sys; sys.path[:0] = ['tests']; import similarity_corpus as c; from graders import similarity as s;"
              "r = s.compare(c.all_implementations('bandits')); print([(p.a, p.b, p.overlap, round(p.score, 6)) "
              "for p in r.pairs])")
    runs = {subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True,
                           env={**__import__("os").environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(runs) == 1 and "01" in runs.pop()
