"""Instructor configuration: one TOML file that overrides the graders' public defaults.

    [limits]                     # graders.sandbox.limits.Limits, for every assignment
    memory_mb = 4096

    [bandits]                    # one table per assignment (python -m graders list)
    seeds = [8123456789012345, 77777123456789]  # hidden grading seeds: large random numbers
                                 # (python -c "import secrets; print(secrets.randbits(62))"),
                                 # since a small seed could be found by trying them all
    threads = 1                  # CPU threads of the worker
    total_seconds = 600          # wall clock of the whole grading (default: sum of the checks' limits)
    [bandits.thresholds]
    epsilon_greedy_reward = 1.3
    [bandits.checks.testbed_ucb]
    points = 2
    timeout = {cpu = 60, cuda = 30}

    [flags]                      # rows the grader flagged for review, that the instructor accepts (batch)
    accept = ["alice", "bob:trained_policy_first_seed"]   # a student, or student:check

Keep this file outside `assignments/` (and outside anything students can read).
Unknown tables, keys and checks are errors, so a typo never silently keeps a default.
A check declared per seed (the training checks of reinforce, reinforce_baseline and
nas) has one row per seed of `seeds`, named NAME_first_seed, NAME_second_seed, ...:
three seeds give three rows, and an override names the row.

`Config.effective(name)` is the one place where defaults and overrides meet: the
settings and the checks that `grade`, `validate` and `batch` all use.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from graders import assignments, contract
from graders.checks import Check
from graders.sandbox import Limits

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CHECK_KEYS = {"points", "timeout"}
LIMITS_TABLE = "limits"
FLAGS_TABLE = "flags"


class ConfigError(ValueError):
    """The instructor configuration is malformed."""


@dataclass(frozen=True)
class Effective:
    """One assignment as a configuration grades it: the grader, its settings and its checks."""

    grader: contract.Grader
    settings: dict
    checks: tuple[Check, ...]
    limits: Limits
    private: frozenset[str] = frozenset()  # the seeds and thresholds this config overrides: never shown to students

    @property
    def name(self) -> str:
        return self.grader.name

    @property
    def max_score(self) -> float:
        return sum(c.points for c in self.checks)

    def total_seconds(self, device: str, selected: frozenset[str] | None = None) -> float:
        """Wall-clock limit of one grading: `total_seconds` if set, else the checks' limits plus the import (of the
        `selected` checks only, when only those are graded)."""
        chosen = [c for c in self.checks if selected is None or c.name in selected]
        return self.settings["total_seconds"] or (sum(c.timeout_for(device) for c in chosen)
                                                   + self.limits.import_seconds)


def _number(value, positive: bool = False) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and (value > 0 if positive else value >= 0)


def _check_values(assignment: str, settings: dict) -> None:
    """The common settings and the check overrides have the types the engine needs."""
    seeds = settings["seeds"]
    if not (isinstance(seeds, list) and seeds and all(type(s) is int and s >= 0 for s in seeds)):
        raise ConfigError(f"[{assignment}] seeds must be a list of non-negative integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"[{assignment}] seeds must be different from each other, got {seeds!r}")
    if not (type(settings["threads"]) is int and settings["threads"] >= 1):
        raise ConfigError(f"[{assignment}] threads must be a positive integer")
    if not _number(settings["total_seconds"]):
        raise ConfigError(f"[{assignment}] total_seconds must be a number of seconds (0: the checks' sum)")
    for name, override in settings["checks"].items():
        where = f"[{assignment}.checks.{name}]"
        if not isinstance(override, dict) or set(override) - CHECK_KEYS:
            raise ConfigError(f"{where} may set only {sorted(CHECK_KEYS)}")
        if "points" in override and not _number(override["points"]):
            raise ConfigError(f"{where} points must be a number >= 0")
        timeout = override.get("timeout", 1)
        per_device = timeout.values() if isinstance(timeout, dict) else [timeout]
        if (isinstance(timeout, dict) and (set(timeout) - {"cpu", "cuda"} or "cpu" not in timeout)) or not all(
                _number(t, positive=True) for t in per_device):
            raise ConfigError(f"{where} timeout must be seconds, or a table with cpu (and cuda) seconds")


@dataclass
class Config:
    limits: dict = field(default_factory=dict)
    assignments: dict[str, dict] = field(default_factory=dict)
    accepted_flags: list[str] = field(default_factory=list)  # "student" or "student:check"

    @classmethod
    def load(cls, path: str | Path | None) -> Config:
        if path is None:
            return cls()
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from None
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, source: str = "the config") -> Config:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"cannot read {source}: {exc}") from None
        limits = data.pop(LIMITS_TABLE, {})
        flags = data.pop(FLAGS_TABLE, {})
        accepted = flags.get("accept", []) if isinstance(flags, dict) else None
        if (not isinstance(flags, dict) or set(flags) - {"accept"} or not isinstance(accepted, list)
                or not all(isinstance(a, str) and a for a in accepted)):
            raise ConfigError(f"{source}: [flags] holds one key, accept: a list of \"student\" or \"student:check\"")
        known = {f.name for f in fields(Limits)}
        if unknown := set(limits) - known:
            raise ConfigError(f"unknown [limits] keys {sorted(unknown)}; known: {sorted(known)}")
        if unknown := set(data) - set(assignments.names()):
            raise ConfigError(f"{source}: unknown tables {sorted('[' + t + ']' for t in unknown)}; a table is "
                              f"[limits], [flags] or an assignment: {', '.join(assignments.names())}")
        return cls(limits=limits, assignments=data, accepted_flags=accepted)

    def accepted_checks(self, student: str) -> set[str] | None:
        """The flagged checks of `student` the instructor accepts: None for all of them, else their names."""
        if student in self.accepted_flags:
            return None
        return {a.split(":", 1)[1] for a in self.accepted_flags if a.startswith(student + ":")}

    def sandbox_limits(self) -> Limits:
        return Limits(**self.limits)

    def settings(self, assignment: str, defaults: dict) -> dict:
        """The grader's defaults with this assignment's overrides merged in."""
        merged = copy.deepcopy({**contract.COMMON_DEFAULTS, **defaults, "checks": {}})
        for key, value in self.assignments.get(assignment, {}).items():
            if key not in merged:
                raise ConfigError(f"[{assignment}] has unknown key '{key}'; known: {sorted(merged)}")
            per_device = isinstance(merged[key], dict) and set(merged[key]) <= {"cpu", "cuda"}
            if per_device and isinstance(value, (int, float)) and not isinstance(value, bool):
                merged[key] = dict.fromkeys(merged[key], value)  # one value for every device
            elif isinstance(merged[key], dict) and key != "checks":
                if not isinstance(value, dict):
                    raise ConfigError(f"[{assignment}] {key} must be a table")
                if unknown := set(value) - set(merged[key]):
                    raise ConfigError(f"[{assignment}.{key}] has unknown keys {sorted(unknown)}")
                merged[key].update(value)
            else:
                merged[key] = value
        _check_values(assignment, merged)
        return merged

    def effective(self, name: str) -> Effective:
        """The assignment's settings and checks with this configuration's overrides applied.

        The grader module's own Check objects are never changed: each grading gets copies.
        """
        return self.effective_of(assignments.grader(name))

    def effective_of(self, grader: contract.Grader) -> Effective:
        """`effective` for a grader given as such (one outside graders/, say)."""
        name = grader.name
        settings = self.settings(name, grader.defaults)
        overrides = settings["checks"]
        rows = grader.rows(len(settings["seeds"]))  # a per-seed check has a row per seed: NAME_first_seed, ...
        if unknown := set(overrides) - {c.name for c in rows}:
            raise ConfigError(f"[{name}.checks] names unknown checks {sorted(unknown)}; "
                              f"known with {len(settings['seeds'])} seed(s): {[c.name for c in rows]}")
        checks = tuple(dataclasses.replace(c, **overrides.get(c.name, {})) for c in rows)
        table = self.assignments.get(name, {})
        private = {"seeds"} & set(table) | {f"thresholds.{t}" for t in table.get("thresholds", {})}
        return Effective(grader, settings, checks, self.sandbox_limits(), frozenset(private))
