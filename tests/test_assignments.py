"""Every assignment through one harness: templates earn zero without crashing, and each known
buggy variant (solutions/NAME/variants.py, format in graders/variants.py) loses the checks it
names. Each assignment's own tests add what is particular to it (reference full marks under
its settings, messages, the grader's own arithmetic)."""

from __future__ import annotations

import pytest
from helpers import by_name

from graders import assignments, variants

TEMPLATES = [pytest.param(name, path, id=path.name) for name in assignments.names()
             for path in assignments.template_paths(name)]


def _variant_params():
    for name in assignments.names():
        for v in variants.load(name):
            yield pytest.param(v, id=f"{name}-{v.name}", marks=[pytest.mark.slow] if v.slow else [])


VARIANTS = list(_variant_params())


@pytest.mark.parametrize(("name", "template"), TEMPLATES)
def test_template_earns_zero_without_crashing(grade_source, name, template):
    grading = grade_source(name, template.read_text(), suffix=template.suffix)
    assert grading.score == 0 and not grading.internal_error
    assert all(r.status == "error" and "NotImplementedError" in r.message for r in grading.results), \
        {r.name: r.message[:200] for r in grading.results}


@pytest.mark.parametrize("variant", VARIANTS)
def test_buggy_variant_loses_exactly_the_checks_it_names(grade_source, variant):
    # a slow variant (it must lose a long training check) is graded whole; the others on the unit checks and the
    # (short) training checks they name
    selection = {} if variant.slow else {"unit": True, "checks": variant.loses}
    grading = grade_source(variant.assignment, variant.source(), config_toml=variant.config, **selection)
    assert not grading.internal_error
    results = by_name(grading)
    unit = {r.name for r in grading.results if r.kind == "unit"}
    assert {name for name in unit if results[name].status != "passed"} == set(variant.loses) & unit, \
        {name: results[name].message[:300] for name in unit if results[name].status != "passed"}
    for check in variant.loses:
        result = results[check]
        assert result.status in ("failed", "error") and result.points == 0, f"{check}: {result.message}"
        if result.status == "failed":  # every failure message says what was expected and gives a hint
            assert "Hint:" in result.message, result.message
    for check, words in variant.messages.items():
        assert words in results[check].message, results[check].message


def test_every_assignment_has_variants_that_apply():
    for name in assignments.names():
        found = variants.load(name)
        assert found, f"{name} has no buggy variants in solutions/{name}/variants.py"
        checks = {c.name for c in assignments.grader(name).checks}
        for v in found:
            assert set(v.loses) <= checks, f"{name}/{v.name} names unknown checks {set(v.loses) - checks}"
            assert v.source() != assignments.solution_path(name).read_text()
