"""Instructor configuration: one TOML file that overrides a grader's public defaults.

    [limits]                     # graders.sandbox.Limits, for every assignment
    memory_mb = 4096

    [bandits]                    # one table per assignment
    seeds = [8123456789012345, 77777123456789]  # hidden grading seeds: large random numbers
                                 # (python -c "import secrets; print(secrets.randbits(62))"),
                                 # since a small seed could be found by trying them all
    threads = 1                  # CPU threads of the worker
    total_seconds = 600          # wall clock of the whole grading (default: sum of the checks' limits)
    [bandits.thresholds]
    eps_greedy_mean_reward = 1.3
    [bandits.checks.testbed_performance]
    points = 5
    timeout = {cpu = 60, cuda = 30}

Keep this file outside `assignments/` (and outside anything students can read).
Unknown keys are errors, so a typo never silently keeps a default.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from graders.sandbox import Limits

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# total_seconds: wall-clock limit of one whole grading (0 = the sum of the checks' limits).
COMMON_DEFAULTS = {"seeds": [0, 1], "thresholds": {}, "threads": 1, "total_seconds": 0}
CHECK_KEYS = {"points", "timeout"}


class ConfigError(ValueError):
    """The instructor configuration is malformed."""


@dataclass
class Config:
    limits: dict = field(default_factory=dict)
    assignments: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None) -> Config:
        if path is None:
            return cls()
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from None
        limits = data.pop("limits", {})
        known = {f.name for f in fields(Limits)}
        if unknown := set(limits) - known:
            raise ConfigError(f"unknown [limits] keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(limits=limits, assignments=data)

    def sandbox_limits(self) -> Limits:
        return Limits(**self.limits)

    def settings(self, assignment: str, defaults: dict) -> dict:
        """The grader's defaults with this assignment's overrides merged in."""
        merged = copy.deepcopy({**COMMON_DEFAULTS, **defaults, "checks": {}})
        for key, value in self.assignments.get(assignment, {}).items():
            if key not in merged:
                raise ConfigError(f"[{assignment}] has unknown key '{key}'; known: {sorted(merged)}")
            if isinstance(merged[key], dict) and key != "checks":
                if unknown := set(value) - set(merged[key]):
                    raise ConfigError(f"[{assignment}.{key}] has unknown keys {sorted(unknown)}")
                merged[key].update(value)
            else:
                merged[key] = value
        for name, override in merged["checks"].items():
            if unknown := set(override) - CHECK_KEYS:
                raise ConfigError(f"[{assignment}.checks.{name}] has unknown keys {sorted(unknown)}")
        return merged
