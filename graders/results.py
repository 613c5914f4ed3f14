"""Results: of one check, of one grading, of one student in a batch (plain data, JSON-able)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields

# flagged: the check's own test passed, but the grader withheld its points for the instructor to review
STATUSES = ("passed", "failed", "flagged", "error", "timeout")
# A check a student kit cannot run (it needs the instructor's grader): zero points, not a failure.
# Only `python -m graders release` kits produce it; an official grading never does.
SKIPPED = "skipped"
METRIC_ORDERS = ("asc", "desc")  # asc: lower is better (a loss); desc: higher is better (a return)


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
    flag: str = ""  # why the points were withheld (status flagged); an instructor may accept it
    withheld: float = 0.0  # the points an accepted flag restores
    accepted: bool = False  # the instructor accepted the flag: the points are given
    # numbers the check measured and published (ctx.metric): {name: {"value": float, "order": "asc"|"desc"}},
    # e.g. for a leaderboard; never parsed from messages
    metrics: dict = field(default_factory=dict)


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
    selection: list[str] | None = None  # the checks graded when only some were asked for (graders/selection.py)
    unsafe_host: str = ""  # why the host check failed, when the instructor graded anyway (--allow-unsafe-host)

    @property
    def partial(self) -> bool:
        """Only some checks were graded: feedback for the student, never an official grade."""
        return self.selection is not None

    @property
    def score(self) -> float:
        return round(sum(r.points for r in self.results), 6)

    @property
    def max_score(self) -> float:
        """The points at stake: of the graded checks only, when only some were asked for."""
        graded = [r for r in self.results if self.selection is None or r.name in self.selection]
        return round(sum(r.max_points for r in graded), 6)

    @property
    def flags(self) -> list[str]:
        """The flags still waiting for the instructor's review."""
        return [f"{r.name}: {r.flag}" for r in self.results if r.flag and not r.accepted]

    def accept_flags(self, checks: set[str] | None = None) -> bool:
        """Give the withheld points of the flagged checks named (all when None); True when any changed."""
        changed = False
        for r in self.results:
            if r.flag and not r.accepted and (checks is None or r.name in checks):
                r.accepted, r.points, r.status = True, r.withheld, "passed"
                r.message = f"FLAG accepted by the instructor: {r.flag}\n{r.message}"
                changed = True
        return changed

    def to_dict(self) -> dict:
        return {**asdict(self), "score": self.score, "max_score": self.max_score, "flags": self.flags}


@dataclass(frozen=True)
class NotGraded:
    """An entry of a class's submissions folder that the batch did not grade, and why."""

    entry: str  # its name as found, escaped where it is not printable UTF-8
    reason: str


STUDENT_STATUSES = ("passed", *STATUSES[1:], "crashed", "grader_error")  # best to worst


def student_status(grading: Grading) -> str:
    """`passed` for full marks; else the worst check status; `grader_error` for a grader bug."""
    if grading.internal_error:
        return "grader_error"
    worst = max((STUDENT_STATUSES.index(r.status) for r in grading.results if r.status in STATUSES), default=0)
    return STUDENT_STATUSES[worst]


@dataclass
class Record:
    """One student's outcome in a batch, as stored in their grading.json."""

    student: str
    sha256: str
    status: str
    grading: Grading
    graded_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        return {"student": self.student, "sha256": self.sha256, "status": self.status,
                "graded_at": self.graded_at, "grading": self.grading.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> Record:
        g = dict(data["grading"])
        results = [CheckResult(**r) for r in g.pop("results")]
        known = {f.name for f in fields(Grading)}  # (score, max_score, flags are derived)
        grading = Grading(**{k: v for k, v in g.items() if k in known}, results=results)
        return cls(data["student"], data["sha256"], data["status"], grading, data.get("graded_at", 0.0))
