"""The driver's check of a Ray node's reply (graders/batch/ray_executor.py): only what a local grading of the same
Job could have written is ever recorded.

`read_reply` takes the node's JSON bytes, the Job the driver sent and the driver's own
effective checks, and rebuilds the Record field by field: the student, the digest, the
checks' names, kinds and points, statuses and the points they allow, flags only as a
grading raises them, scores that follow from the checks, PNG plots of bounded size. A
reply that breaks any of it raises `Refused`, and the student gets a crashed row.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from graders.batch.scheduler import Job
from graders.checks import Check
from graders.results import METRIC_ORDERS, STATUSES, CheckResult, Grading, Record, student_status

MAX_LOG_CHARS = 1 << 20  # the end of a node's grading.log that comes back
MAX_ARTIFACTS = 16
MAX_ARTIFACT_BYTES = 8 << 20
MAX_METRICS = 64
MAX_REPLY_BYTES = 4 * MAX_ARTIFACTS * MAX_ARTIFACT_BYTES
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ARTIFACT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.png")
# The fields of a reply, a record (Record.to_dict), a grading (Grading.to_dict) and a check's result
# (CheckResult): each is checked by name below; tests/test_batch_ray.py fails when the dataclasses grow.
REPLY_KEYS = {"record", "reason", "log", "artifacts", "node", "seconds"}
RECORD_KEYS = {"student", "sha256", "status", "graded_at", "grading"}
GRADING_KEYS = {"assignment", "submission", "device", "results", "seconds", "isolation", "artifacts",
                "internal_error", "unsafe_host", "selection", "score", "max_score", "flags"}
RESULT_KEYS = {"name", "points", "max_points", "status", "message", "seconds", "output", "kind", "flag", "withheld",
               "accepted", "metrics"}


class Refused(ValueError):
    """A node's reply that breaks the contract: it is never written as anyone's grade."""


@dataclass
class Reply:
    """What a grading task sent back, once checked."""

    record: Record | None  # None: the grading process died or overran on the node (`reason` says which)
    reason: str
    log: str
    artifacts: dict[str, bytes]
    node: str
    seconds: float


def read_reply(raw: object, job: Job, checks: Sequence[Check]) -> Reply:
    """A node's reply, checked against the Job sent and the driver's own checks; Refused when it does not hold."""
    if not isinstance(raw, bytes) or len(raw) > MAX_REPLY_BYTES:
        raise Refused("the reply is not JSON bytes of a bounded size")
    try:
        data = json.loads(raw)
    except ValueError:
        raise Refused("the reply is not JSON") from None
    _expect(isinstance(data, dict) and set(data) == REPLY_KEYS, "the reply has other fields than a grading's")
    reason, text, node = data["reason"], data["log"], data["node"]
    _expect(all(isinstance(v, str) for v in (reason, text, node)), "reason, log and node must be text")
    _expect(_number(data["seconds"]), "seconds must be a number")
    _expect(isinstance(data["artifacts"], dict) and len(data["artifacts"]) <= MAX_ARTIFACTS, "too many plots")
    artifacts = {name: _png(name, b64) for name, b64 in data["artifacts"].items()}
    if data["record"] is None:
        _expect(bool(reason) and not artifacts, "no record and no reason")
        return Reply(None, reason[:1000], text[-MAX_LOG_CHARS:], {}, node[:100], data["seconds"])
    record = _record(data["record"], job, checks)
    _expect(set(artifacts) <= set(record.grading.artifacts), "a plot the grading did not list")
    return Reply(record, "", text[-MAX_LOG_CHARS:], artifacts, node[:100], data["seconds"])


def _record(data: object, job: Job, checks: Sequence[Check]) -> Record:
    """The record, rebuilt field by field: only what a local grading of this Job could have written."""
    _expect(isinstance(data, dict) and set(data) == RECORD_KEYS, "the record has other fields")
    _expect(data["student"] == job.student and data["sha256"] == job.sha256,
            "the record is for another student or another file")
    _expect(_number(data["graded_at"]), "graded_at must be a number")
    g = data["grading"]
    _expect(isinstance(g, dict) and set(g) == GRADING_KEYS, "the grading has other fields")
    _expect(g["assignment"] == job.assignment and g["device"] == job.device and g["submission"] == job.source,
            "another assignment, device or submission")
    _expect(isinstance(g["isolation"], str), "isolation is text")
    _expect(g["selection"] is None, "a batch grades every check")
    _expect(g["internal_error"] is None or isinstance(g["internal_error"], str), "internal_error is text or null")
    _expect(g["unsafe_host"] == job.unsafe_host, "unsafe_host is not the driver's")
    _expect(_number(g["seconds"]), "the grading's seconds must be a number")
    _expect(isinstance(g["artifacts"], list) and len(g["artifacts"]) <= MAX_ARTIFACTS
            and all(isinstance(a, str) and ARTIFACT_NAME.fullmatch(a) for a in g["artifacts"]), "bad plot names")
    results = g["results"]
    _expect(isinstance(results, list) and [r.get("name") if isinstance(r, dict) else None for r in results]
            == [c.name for c in checks], "the checks are not this assignment's checks, in its order")
    grading = Grading(job.assignment, job.source, job.device, seconds=g["seconds"],
                      isolation=g["isolation"], artifacts=list(g["artifacts"]), internal_error=g["internal_error"],
                      unsafe_host=job.unsafe_host, results=[_result(r, c) for r, c in zip(results, checks)])
    _expect(g["score"] == grading.score and g["max_score"] == grading.max_score and g["flags"] == grading.flags,
            "score, max_score or flags do not follow from the checks")
    _expect(data["status"] == student_status(grading), "the status does not follow from the checks")
    return Record(job.student, job.sha256, data["status"], grading, data["graded_at"])


def _result(r: dict, check: Check) -> CheckResult:
    _expect(set(r) == RESULT_KEYS, f"check {check.name}: other fields")
    _expect(r["kind"] == check.kind and r["max_points"] == check.points and _number(r["max_points"]),
            f"check {check.name}: its kind or points are not the driver's")
    _expect(r["status"] in STATUSES, f"check {check.name}: unknown status")
    _expect(_number(r["points"]) and r["points"] == (check.points if r["status"] == "passed" else 0),
            f"check {check.name}: {r['points']!r} points for a {r['status']!r} check worth {check.points}")
    # A flag withholds the check's points until the instructor accepts it, which only the driver does.
    flagged = r["status"] == "flagged"
    _expect(r["accepted"] is False and isinstance(r["flag"], str) and bool(r["flag"]) == flagged
            and _number(r["withheld"]) and r["withheld"] == (check.points if flagged else 0),
            f"check {check.name}: a flag that a grading does not raise")
    _expect(_number(r["seconds"]) and isinstance(r["message"], str) and isinstance(r["output"], str),
            f"check {check.name}: seconds, message or output of the wrong type")
    return CheckResult(check.name, r["points"], check.points, r["status"], r["message"], r["seconds"], r["output"],
                       check.kind, r["flag"], r["withheld"], False, _metrics(r["metrics"], check))


def _metrics(metrics: object, check: Check) -> dict:
    """{name: {"value": number, "order": "asc" | "desc"}}, as graders.contract's `metric` publishes them."""
    _expect(isinstance(metrics, dict) and len(metrics) <= MAX_METRICS, f"check {check.name}: bad metrics")
    for name, m in metrics.items():
        _expect(len(name) <= 100 and isinstance(m, dict) and set(m) == {"value", "order"}
                and isinstance(m["value"], (int, float)) and not isinstance(m["value"], bool)
                and m["order"] in METRIC_ORDERS, f"check {check.name}: bad metric {name[:100]!r}")
    return {name: {"value": float(m["value"]), "order": m["order"]} for name, m in metrics.items()}

def _png(name: object, b64: object) -> bytes:
    _expect(isinstance(name, str) and ARTIFACT_NAME.fullmatch(name) is not None, "a plot's name is not a PNG file name")
    _expect(isinstance(b64, str) and len(b64) <= MAX_ARTIFACT_BYTES * 4 // 3 + 4, f"plot {name} is too large")
    try:
        data = base64.b64decode(b64, validate=True)
    except ValueError:
        raise Refused(f"plot {name} is not base64") from None
    _expect(data.startswith(PNG_SIGNATURE), f"plot {name} is not a PNG")
    return data


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0


def _expect(condition: bool, why: str) -> None:
    if not condition:
        raise Refused(why)
