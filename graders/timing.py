"""Time limits that fit the host: grade each reference here, and propose per-device limits with a stated margin.

The graders' limits were measured on a 2-core CPU (docs/*.md). On other hardware,
`python -m graders doctor --time [--snippet limits.toml]` grades every reference
solution on this host (on the CPU, and on the GPU when there is one), with the
instructor's config, and proposes limits:

- each check's limit is at least MARGIN (5) times the time the reference's check took
  here, at the grading seeds (wall seconds of the check, the worker's import not
  counted); the graders' own limits leave at least that on the 2-core CPU (REINFORCE's
  240 s of training are 9x its slowest of 100 seeds there, 30x its median); for an assignment
  with `train_seconds` (the student's own time for train()), `train_seconds` is at least
  MARGIN times its slowest training check, and each training check's limit grows by as
  much as `train_seconds` did (it holds train_seconds, the evaluation and the set-up);
- a limit is never lowered: a faster host keeps the limits the course published.

The snippet is instructor config (TOML) to copy into the course's file. The doctor's
report says `fail` where a limit in force is below the margin, or where the reference
does not earn full marks here.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass

from graders import assignments
from graders.checks import Check
from graders.config import Config, Effective
from graders.doctor import Report
from graders.runner import grade, resolve_device
from graders.toml_text import dumps

MARGIN = 5  # a limit is at least this many times the reference's time on the host (docs/instructor.md)
STEP_S = 10  # limits are whole multiples of this


@dataclass
class Timing:
    """One reference graded on one device: each check's seconds, and whether it earned full marks."""

    effective: Effective
    device: str
    seconds: dict[str, float]
    problem: str = ""  # why the reference did not earn full marks here

    @property
    def name(self) -> str:
        return self.effective.name


def devices(requested: str) -> list[str]:
    """The devices to time on: `auto`: the CPU, and the GPU when there is one."""
    if requested == "auto":
        return ["cpu"] + (["cuda"] if resolve_device("auto") == "cuda" else [])
    return [resolve_device(requested)]


def measure(names: Sequence[str], config: Config, devices: Sequence[str]) -> list[Timing]:
    """Grade each assignment's reference on each device, with `config` (its seeds, thresholds and limits)."""
    timings = []
    for name in names:
        effective = config.effective(name)
        for device in devices:
            grading = grade(effective, assignments.solution_path(name), device=device)
            problem = ""
            if grading.internal_error or grading.score < grading.max_score:
                lost = [f"{r.name} ({r.status})" for r in grading.results if r.points < r.max_points]
                problem = grading.internal_error or f"the reference lost points here: {', '.join(lost)}"
            timings.append(Timing(effective, device, {r.name: r.seconds for r in grading.results}, problem))
    return timings


def _up(seconds: float) -> float:
    return float(max(STEP_S, math.ceil(seconds / STEP_S) * STEP_S))


def _train_seconds(e: Effective) -> dict | None:
    train = e.settings.get("train_seconds")
    return dict(train) if isinstance(train, dict) else None


def proposed(t: Timing) -> tuple[dict[str, float] | None, dict[str, float]]:
    """(train_seconds on t's device or None, {check: limit on t's device}) that fit t's measurement."""
    e, d = t.effective, t.device
    train = _train_seconds(e)
    training = [c for c in e.checks if c.kind == "training" and c.name in t.seconds]
    new_train, raise_by = None, 0.0
    if train is not None and training:
        need = max(MARGIN * t.seconds[c.name] for c in training)
        current = float(train.get(d, train.get("cpu")))
        new_train = max(current, _up(need))
        raise_by = new_train - current
    limits = {}
    for c in e.checks:
        current = c.timeout_for(d)
        if c.name not in t.seconds:
            limits[c.name] = current
        elif new_train is not None and c.kind == "training":
            limits[c.name] = current + raise_by
        else:
            limits[c.name] = max(current, _up(MARGIN * t.seconds[c.name]))
    return ({d: new_train} if new_train is not None else None), limits


def judge(report: Report, timings: Sequence[Timing]) -> None:
    """Add to the doctor's report: for each reference and device, its time here against the limits in force."""
    for t in timings:
        if t.problem:
            report.add("time", "fail", f"{t.name} on {t.device}: {t.problem}")
            continue
        train, limits = proposed(t)
        short = [c.name for c in t.effective.checks if limits[c.name] > c.timeout_for(t.device)]
        current_train = _train_seconds(t.effective)
        if train and current_train and train[t.device] > float(current_train.get(t.device, current_train["cpu"])):
            short.insert(0, "train_seconds")
        spent = sum(t.seconds.values())
        if short:
            report.add("time", "fail", f"{t.name} on {t.device}: the reference took {spent:.1f} s here; the limits of "
                       f"{', '.join(short)} leave less than {MARGIN}x its time: use the --snippet limits")
        else:
            report.add("time", "ok", f"{t.name} on {t.device}: the reference took {spent:.1f} s here; every limit "
                       f"leaves at least {MARGIN}x its time")


def _per_device(current: dict[str, float], new: dict[str, float]) -> dict[str, float]:
    merged = {"cpu": current.get("cpu"), "cuda": current.get("cuda", current.get("cpu")), **new}
    return {k: (int(v) if float(v).is_integer() else v) for k, v in merged.items() if v is not None}


def _check_timeouts(c: Check) -> dict[str, float]:
    return {"cpu": c.timeout_for("cpu"), "cuda": c.timeout_for("cuda")}


def snippet(timings: Sequence[Timing]) -> str:
    """Instructor config (TOML) with the limits that fit this host, per device; what was measured in comments."""
    data: dict[str, dict] = {}
    comments: dict[str, str] = {}
    for name in dict.fromkeys(t.name for t in timings):
        mine = [t for t in timings if t.name == name and not t.problem]
        if not mine:
            continue
        e = mine[0].effective
        table: dict = {}
        measured = "; ".join(f"{t.device} {sum(t.seconds.values()):.1f} s" for t in mine)
        comments[name] = f"{name}: the reference took {measured} here (all checks)"
        new_train: dict[str, float] = {}
        new_limits: dict[str, dict[str, float]] = {}
        for t in mine:
            train, limits = proposed(t)
            new_train.update(train or {})
            for check, limit in limits.items():
                new_limits.setdefault(check, {})[t.device] = limit
        if new_train:
            table["train_seconds"] = _per_device(_train_seconds(e) or {}, new_train)
        checks = {}
        for c in e.checks:
            timeouts = _per_device(_check_timeouts(c), new_limits.get(c.name, {}))
            if c.kind == "training" or timeouts != _per_device(_check_timeouts(c), {}):
                checks[c.name] = {"timeout": timeouts}
                took = ", ".join(f"{t.device} {t.seconds[c.name]:.1f} s" for t in mine if c.name in t.seconds)
                comments[f"{name}.checks.{c.name}"] = f"the reference's check took {took} here"
        if checks:
            table["checks"] = checks
        if table:
            data[name] = table
    header = (f"Time limits for this host, by `python -m graders doctor --time` on {platform.node()} "
              f"({os.cpu_count()} CPU cores{_gpu_name()}), {time.strftime('%Y-%m-%d %H:%M')}.\n"
              f"Each limit is at least {MARGIN}x the reference's time measured here, and never below the limit in "
              "force\n(docs/instructor.md, 'Check your host'). Copy these tables into your instructor config.")
    return dumps(data, header, comments)


def _gpu_name() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f", GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return ""
