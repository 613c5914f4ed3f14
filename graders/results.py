"""Results of one grading, and their outputs: a terminal table and Gradescope JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATUSES = ("passed", "failed", "error", "timeout")


@dataclass
class CheckResult:
    name: str
    points: float
    max_points: float
    status: str
    message: str = ""
    seconds: float = 0.0
    output: str = ""  # what the submission printed during this check
    kind: str = "unit"


@dataclass
class Grading:
    assignment: str
    submission: str
    device: str
    results: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0
    isolation: str = ""
    artifacts: list[str] = field(default_factory=list)
    internal_error: str | None = None  # a bug of the grader, not of the submission

    @property
    def score(self) -> float:
        return round(sum(r.points for r in self.results), 6)

    @property
    def max_score(self) -> float:
        return round(sum(r.max_points for r in self.results), 6)

    def to_dict(self) -> dict:
        return {**asdict(self), "score": self.score, "max_score": self.max_score}


def _cell(text: str, width: int) -> str:
    text = text.splitlines()[0] if text else ""
    return text if len(text) <= width else text[: width - 1] + "…"


def table(grading: Grading, *, details: bool = True) -> str:
    """A plain-text report: one row per check, then the messages of those that lost points."""
    rows = [f"{grading.assignment}: {grading.submission} (device {grading.device})",
            f"{'check':40} {'status':8} {'points':>11} {'seconds':>8}  message"]
    for r in grading.results:
        rows.append(f"{r.name:40} {r.status:8} {r.points:>5g} / {r.max_points:<4g}"
                    f"{r.seconds:>8.1f}  {_cell(r.message, 60)}")
    rows.append(f"{'total':40} {'':8} {grading.score:>5g} / {grading.max_score:<4g}{grading.seconds:>8.1f}")
    if details:
        for r in grading.results:
            if r.message and (r.status != "passed" or "\n" in r.message):
                rows += ["", f"--- {r.name} ({r.status})", r.message.rstrip()]
            if r.output and r.status != "passed":
                rows += ["  your code printed:", r.output.rstrip()[-2000:]]
    if grading.internal_error:
        rows += ["", f"INTERNAL GRADER ERROR: {grading.internal_error}"]
    return "\n".join(rows)


def gradescope(grading: Grading) -> dict:
    """Gradescope's results.json schema (score, execution_time, tests[])."""
    tests = []
    for r in grading.results:
        output = r.message
        if r.status in ("error", "timeout"):
            output = f"[{r.status}] {output}"
        if r.output:
            output += f"\n\nYour code printed:\n{r.output}"
        tests.append({
            "name": r.name, "score": r.points, "max_score": r.max_points,
            "status": "passed" if r.status == "passed" else "failed",
            "output": output, "visibility": "visible", "extra_data": {"status": r.status, "seconds": r.seconds},
        })
    return {
        "score": grading.score, "max_score": grading.max_score, "execution_time": round(grading.seconds, 3),
        "output": f"{grading.assignment} graded on {grading.device}; isolation: {grading.isolation}",
        "visibility": "visible", "tests": tests,
    }


def write_json(grading: Grading, path: str | Path) -> None:
    """Write Gradescope JSON atomically (a reader never sees half a file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(gradescope(grading), indent=2))
    tmp.replace(path)
