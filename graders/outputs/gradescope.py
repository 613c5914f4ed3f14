"""Gradescope's results.json (https://gradescope-autograders.readthedocs.io/en/latest/specs/)."""

from __future__ import annotations

import json

from graders.results import Grading


def gradescope(grading: Grading) -> dict:
    """Gradescope's results.json schema (score, execution_time, tests[])."""
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
            "output": output, "visibility": "visible",
            "extra_data": {"status": r.status, "seconds": r.seconds, **({"flag": r.flag} if r.flag else {})},
        })
    return {
        "score": grading.score, "max_score": grading.max_score, "execution_time": round(grading.seconds, 3),
        "output": f"{grading.assignment} graded on {grading.device}; isolation: {grading.isolation}",
        "visibility": "visible", "tests": tests,
    }


def render(grading: Grading) -> str:
    return json.dumps(gradescope(grading), indent=2)
