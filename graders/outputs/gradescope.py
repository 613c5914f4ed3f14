"""Gradescope's results.json (https://gradescope-autograders.readthedocs.io/en/latest/specs/).

Only the keys of Gradescope's specification are written (tests/schemas/gradescope_results.json
holds them as a JSON schema); what Gradescope has no key for goes into `extra_data`.
"""

from __future__ import annotations

import json

from graders.results import Grading

VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")


def gradescope(grading: Grading, *, visibility: dict[str, str] | None = None, stdout_visibility: str | None = None,
               leaderboard: bool = False, message: str = "") -> dict:
    """Gradescope's results.json: score, execution_time, tests[] (and optionally a leaderboard).

    `visibility`: {check: one of VISIBILITIES} (default visible); `leaderboard`: list the
    metrics the checks published (ctx.metric); `message`: shown first, above the tests
    (an upload that holds no gradable file, say).
    """
    if grading.partial:
        raise ValueError("a grading of some checks only (--check/--unit) is not a grade: results.json is written "
                         "for whole gradings")
    visibility = visibility or {}
    tests = []
    for r in grading.results:
        output = r.message
        if r.status in ("error", "timeout"):
            output = f"[{r.status}] {output}"
        elif r.status == "flagged":
            output = f"[flagged for your instructor's review: {r.withheld:g} points withheld] {output}"
        if r.output:
            output += f"\n\nYour code printed:\n{r.output}"
        tests.append({
            "name": r.name, "score": r.points, "max_score": r.max_points,
            "status": "passed" if r.status == "passed" else "failed",
            "output": output, "visibility": visibility.get(r.name, "visible"),
            "extra_data": {"status": r.status, "seconds": r.seconds, **({"metrics": r.metrics} if r.metrics else {}),
                           **({"flag": r.flag} if r.flag else {})},
        })
    data = {
        "score": grading.score, "execution_time": round(grading.seconds, 3),
        "output": (f"{message}\n\n" if message else "")
        + f"{grading.assignment} graded on {grading.device}; isolation: {grading.isolation}",
        "visibility": "visible", "tests": tests,
        "extra_data": {"max_score": grading.max_score, "internal_error": grading.internal_error,
                       **({"unsafe_host": grading.unsafe_host} if grading.unsafe_host else {})},
    }
    if stdout_visibility:
        data["stdout_visibility"] = stdout_visibility
    if leaderboard:
        data["leaderboard"] = [{"name": name, "value": m["value"], "order": m["order"]}
                               for r in grading.results for name, m in r.metrics.items()]
    return data


def render(grading: Grading, **options) -> str:
    return json.dumps(gradescope(grading, **options), indent=2)
