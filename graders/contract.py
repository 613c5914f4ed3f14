"""The contract between the engine and a grader module, checked when the module is loaded.

Like pytest's hook specifications, this module says everything a grader
(`graders/NAME/grader.py`) may define and everything a check may ask for:

    TITLE: str                          required: one line, shown in listings and results
    DEFAULTS: dict                      optional: public settings an instructor's TOML may override:
                                        COMMON_DEFAULTS' keys (seeds, thresholds, threads, total_seconds)
                                        and the grader's own options (read with ctx.option)
    HELP: dict[str, str]                required when DEFAULTS has options or thresholds: one line per
                                        option and per threshold ("thresholds.NAME"), what it means
                                        (python -m graders settings NAME prints them)
    @check functions                    at least one (graders.checks.check); each parameter is a
                                        fixture named in FIXTURES
    worker_readable(ctx) -> list[Path]  optional: files the worker may read (datasets)
    GPU: bool                           optional, default False: the grader's training uses ctx.device
                                        (--device auto then picks CUDA when there is one); without it a
                                        grading runs on the CPU and never imports torch to find out
    INSTRUCTOR_ONLY: tuple[str, ...]    optional: dotted names of grader-side modules that compute the
                                        answers (e.g. "graders.policy_gradient.exact"): a student kit
                                        (`python -m graders release`, graders/release/) never ships them,
                                        only a recording of their answers for the public seeds
    PRELOAD: tuple[str, ...]            optional: modules the checks import that take seconds (e.g.
                                        "torch"): a grading imports them while its first worker starts,
                                        so no check's time includes them

A check's fixtures are injected by parameter name:

    worker: CheckWorker                 calls into the student's process; every call ends with the check
    ctx: Context                        seeds, options, thresholds, notes, artifacts, the check's deadline
    fresh_worker: () -> CheckWorker     a new process with the same submission, for this check alone
                                        (closed when it ends): nothing another call left behind can reach it;
                                        with `@check(fresh_ahead=MODULES)` the first one is started when
                                        the grading starts (its import, then MODULES', overlap the earlier
                                        checks), beside the other workers: only for a check whose fresh
                                        worker holds nothing the others must not reach
    seed_index: int                     a per-seed check's (`@check(per_seed=True)`) row: which of the
                                        grading's seeds it runs (ctx.seeds[seed_index]); one row per seed

A training check's `worker` is a new process of its own, where no other check has
called anything: a training run starts from the submission as imported, never from
what a unit check's calls left behind (module-level lists, torch's global state).
A check that reads other checks' results names them in `needs` (`ctx.result(name)`);
the engine runs them first, and a selection (`--check`) that holds the check holds
them too. `ctx.shared` carries what a check leaves for later checks of the same
grading (reinforce_baseline's spare seed: which row used it).

`load(name)` imports `graders.NAME.grader` and raises `GraderContractError` for a
module that breaks the contract (a misspelt fixture or hook, a missing TITLE), so a
grader's mistake is a clear error when it is loaded, not a KeyError mid-grading.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np

from graders.checks import KINDS, Check
from graders.progress import Listener
from graders.results import METRIC_ORDERS, CheckResult
from graders.sandbox import Worker

# Settings every assignment has; a grader's DEFAULTS may change their values and add its own.
# total_seconds: wall-clock limit of one whole grading (0 = the sum of the checks' limits).
COMMON_DEFAULTS = {"seeds": [0, 1], "thresholds": {}, "threads": 1, "total_seconds": 0}
COMMON_HELP = {
    "seeds": "the grading seeds (hidden ones: large random numbers); a per-seed check has a row per seed",
    "threads": "CPU threads of the worker",
    "total_seconds": "wall-clock limit of a whole grading (0: the sum of the checks' limits)",
}
HOOKS = ("TITLE", "DEFAULTS", "HELP", "worker_readable", "INSTRUCTOR_ONLY", "GPU", "PRELOAD")


class GraderContractError(TypeError):
    """A grader module does not follow the contract (a bug of the grader, found at load time)."""


@dataclass
class Context:
    """What a check knows about this grading besides the worker: the `ctx` fixture."""

    assignment: str
    device: str
    settings: dict
    artifacts_dir: Path | None = None
    private: frozenset[str] = frozenset()  # settings the instructor overrode (seeds, thresholds.NAME): never shown
    deadline: float | None = None  # time.monotonic() at which the running check's time is up
    notes: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    internal_errors: list[str] = field(default_factory=list)
    metrics: dict[str, dict] = field(default_factory=dict)  # the running check's (see `metric`)
    listener: Listener | None = None  # who watches the grading (a progress display); never decides anything
    checks: tuple[Check, ...] = ()  # the grading's rows
    shared: dict = field(default_factory=dict)  # what a check leaves for the later checks of the same grading
    results: dict[str, CheckResult] = field(default_factory=dict)  # the rows graded so far, by name

    @property
    def seeds(self) -> list[int]:
        return list(self.settings["seeds"])

    @property
    def threads(self) -> int:
        return int(self.settings["threads"])

    def result(self, name: str) -> CheckResult:
        """The result of a check the running check `needs` (graded before it)."""
        return self.results[name]

    def failed(self, names) -> list[str]:
        """Of the checks `names` (declared names: a per-seed one means all its rows) graded so far, the rows that did
        not pass."""
        return [c.name for c in self.checks
                if c.family in names and c.name in self.results and self.results[c.name].status != "passed"]

    def blame(self, names) -> str:
        """'' when the checks `names` passed, else a sentence that names those that failed and what each checks: a
        failure that comes from an earlier function says so, and where."""
        docs = {c.name: c.doc.rstrip(".") for c in self.checks}
        failed = [f"{name} ({docs[name]})" if docs.get(name) else name for name in self.failed(names)]
        if not failed:
            return ""
        if len(failed) == 1:
            return f"it uses what the check {failed[0]} checks, and that check failed. Fix it first"
        return f"it uses what the checks {'; '.join(failed)} check, and they failed. Fix them first"

    def time_left(self) -> float:
        """Seconds until the running check's deadline."""
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()

    def rng(self, purpose: str, seed_index: int = 0) -> np.random.Generator:
        """A random stream for one purpose, derived one-way from a grading seed.

        Streams of different purposes are independent, so a value a student sees (a
        scripted input, the seed of their agent) reveals nothing about another stream
        (the testbed, the evaluation episodes) unless the seed itself can be guessed:
        hidden seeds should be large random numbers (see graders/config.py).
        """
        key = zlib.crc32(purpose.encode())
        return np.random.default_rng(np.random.SeedSequence(self.seeds[seed_index], spawn_key=(key,)))

    def worker_seed(self, purpose: str, seed_index: int = 0) -> int:
        """A seed to hand to the student's code (their own RNG), from its own stream."""
        return int(self.rng(f"worker:{purpose}", seed_index).integers(2**31))

    def threshold(self, name: str) -> float:
        return self.settings["thresholds"][name]

    def shown_threshold(self, name: str, spec: str = "g", value: float | None = None) -> str:
        """A threshold as a message may show it: the public value, never an instructor's override.

        `value`: the threshold in force when the setting itself is not a number (a measured default).
        """
        if f"thresholds.{name}" in self.private:
            return "(set by your instructor)"
        return format(self.threshold(name) if value is None else value, spec)

    def option(self, name: str):
        return self.settings[name]

    def note(self, text: str) -> None:
        self.notes.append(text)

    def metric(self, name: str, value: float, order: str = "desc") -> None:
        """Publish a number this check measured (a test-set loss, a mean return), e.g. for Gradescope's
        leaderboard. `order`: "asc" when lower is better, "desc" when higher is better. It never
        changes the score; it is stored with the check's result."""
        if order not in METRIC_ORDERS:
            raise ValueError(f"metric order must be one of {METRIC_ORDERS}, not {order!r}")
        self.metrics[name] = {"value": float(value), "order": order}

    def progress(self, text: str) -> None:
        """Tell whoever watches (a terminal's progress line) how the running check is doing, e.g.
        "episode 120, return 87". For display only: nothing is stored."""
        if self.listener is not None:
            self.listener.progress(text)

    def artifact(self, filename: str) -> Path | None:
        """A path for a feedback file (a PNG), or None when no feedback folder was asked for."""
        if self.artifacts_dir is None:
            return None
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        self.artifacts.append(filename)
        return self.artifacts_dir / filename


class CheckWorker:
    """The worker as a check sees it (the `worker` fixture): every call ends by the check's deadline."""

    def __init__(self, worker: Worker, ctx: Context):
        self._worker, self._ctx = worker, ctx

    def call(self, name: str, *args, timeout: float | None = None, callbacks: dict | None = None, clock=None):
        """Call `name` in the worker; see `graders.sandbox.Worker.call`."""
        return self._worker.call(name, *args, timeout=timeout, deadline=self._ctx.deadline, callbacks=callbacks,
                                 clock=clock)

    @property
    def output(self) -> str:
        return self._worker.output

    # For checks that send a worker what the student must not see (graders/sandbox/worker.py says how).
    def close(self) -> None:
        """Stop the worker and everything it started (a later call starts a new one)."""
        self._worker.close()

    def withhold_output(self, why: str) -> None:
        self._worker.withhold_output(why)

    def residue(self) -> str:
        return self._worker.residue()

    def can_read(self, paths: list) -> list[str]:
        return self._worker.can_read(paths)


FIXTURES: dict[str, object] = {"worker": CheckWorker, "ctx": Context, "fresh_worker": "Callable[[], CheckWorker]",
                                "seed_index": int}


@dataclass(frozen=True)
class Grader:
    """A grader module that follows the contract, with its checks in running order."""

    name: str
    module: ModuleType
    title: str
    defaults: dict
    declared: tuple[Check, ...]  # as written; a per-seed check is one
    worker_readable: Callable[[Context], list] | None = None
    instructor_only: tuple[str, ...] = ()
    gpu: bool = False  # the GPU hook
    preload: tuple[str, ...] = ()  # the PRELOAD hook
    help: dict = field(default_factory=dict)  # the HELP hook and COMMON_HELP: {setting: what it means}

    def rows(self, seeds: int) -> tuple[Check, ...]:
        """The checks of a grading with `seeds` seeds, in running order (a per-seed check gives one row per seed)."""
        return tuple(row for c in self.declared for row in c.rows(seeds))

    @property
    def checks(self) -> tuple[Check, ...]:
        """The checks of a grading with the default seeds."""
        return self.rows(len({**COMMON_DEFAULTS, **self.defaults}["seeds"]))


def collect(module: ModuleType) -> tuple[Check, ...]:
    """The checks of a grader module: unit checks in file order, then training checks."""
    found = [v.__check__ for v in vars(module).values() if isinstance(getattr(v, "__check__", None), Check)]
    found.sort(key=lambda c: (KINDS.index(c.kind), c.fn.__code__.co_firstlineno))
    return tuple(found)


def _problems(module: ModuleType, checks: tuple[Check, ...]) -> list[str]:
    problems = []
    title = getattr(module, "TITLE", None)
    if not isinstance(title, str) or not title.strip():
        problems.append("TITLE must be a non-empty string")
    defaults = getattr(module, "DEFAULTS", {})
    if not isinstance(defaults, dict):
        problems.append("DEFAULTS must be a dict")
    elif not isinstance(defaults.get("thresholds", {}), dict):
        problems.append("DEFAULTS['thresholds'] must be a dict")
    readable = getattr(module, "worker_readable", None)
    if readable is not None and (not callable(readable) or len(inspect.signature(readable).parameters) != 1):
        problems.append("worker_readable must be a function of one argument, ctx")
    problems += _instructor_only_problems(module)
    if not isinstance(getattr(module, "GPU", False), bool):
        problems.append("GPU must be True or False")
    preload = getattr(module, "PRELOAD", ())
    if not (isinstance(preload, tuple) and all(isinstance(m, str) for m in preload)):
        problems.append("PRELOAD must be a tuple of module names")
    if isinstance(defaults, dict):
        problems += _help_problems(defaults, getattr(module, "HELP", {}))
    if not checks:
        problems.append("it defines no @check function")
    for c in checks:
        parameters = inspect.signature(c.fn).parameters
        if unknown := [p for p in parameters if p not in FIXTURES]:
            problems.append(f"check {c.name} asks for unknown fixtures {unknown}; fixtures are {sorted(FIXTURES)}")
        if c.per_seed != ("seed_index" in parameters):
            problems.append(f"check {c.name}: a check takes seed_index exactly when it is declared per_seed=True")
    problems += _needs_problems(checks)
    for name in vars(module):
        if name not in HOOKS and (close := difflib.get_close_matches(name, HOOKS, n=1, cutoff=0.85)):
            problems.append(f"{name!r} looks like a misspelt {close[0]!r}")
    return problems


def setting_names(defaults: dict) -> list[str]:
    """The grader's own settings: its options and its thresholds as "thresholds.NAME"."""
    options = [k for k in defaults if k not in COMMON_DEFAULTS]
    return options + [f"thresholds.{t}" for t in defaults.get("thresholds", {})]


def _help_problems(defaults: dict, help_: object) -> list[str]:
    """Every setting of the grader says what it means, and HELP names no other."""
    if not isinstance(help_, dict) or not all(isinstance(v, str) and v.strip() for v in help_.values()):
        return ["HELP must map setting names to one line of text each"]
    names = setting_names(defaults)
    problems = [f"setting {n!r} has no HELP line" for n in names if n not in help_]
    return problems + [f"HELP describes {n!r}, which is no setting of DEFAULTS" for n in help_ if n not in names]


def _needs_problems(checks: tuple[Check, ...]) -> list[str]:
    """Each check needs only checks that run before it; only a check with fresh workers has one ahead."""
    problems, before = [], set()
    for c in checks:
        if not isinstance(c.needs, tuple) or not all(isinstance(n, str) for n in c.needs):
            problems.append(f"check {c.name}: needs must be a tuple of check names")
        elif missing := [n for n in c.needs if n not in before]:
            problems.append(f"check {c.name} needs {missing}, which are not checks that run before it")
        before.add(c.name)
        if c.fresh_ahead is not None and "fresh_worker" not in inspect.signature(c.fn).parameters:
            problems.append(f"check {c.name}: fresh_ahead starts a fresh worker for a check without the fixture "
                            "fresh_worker")
        if c.fresh_ahead is not None and c.kind == "training":
            problems.append(f"check {c.name}: a training check's workers start when it does (fresh_ahead is for "
                            "unit checks, whose workers may run beside each other)")
    return problems


def _instructor_only_problems(module: ModuleType) -> list[str]:
    names = getattr(module, "INSTRUCTOR_ONLY", ())
    if not isinstance(names, (tuple, list)) or not all(isinstance(n, str) for n in names):
        return ["INSTRUCTOR_ONLY must be a tuple of dotted module names"]
    problems = []
    for name in names:
        if name == module.__name__ or not name.startswith("graders.") or name.count(".") < 2:
            problems.append(f"INSTRUCTOR_ONLY names {name!r}: it must be a grader-side module graders.PACKAGE.MODULE, "
                            "not the grader itself")
        elif importlib.util.find_spec(name) is None:
            problems.append(f"INSTRUCTOR_ONLY names {name!r}, which does not exist")
    return problems


def load(name: str) -> Grader:
    """Import `graders.NAME.grader` and check it against the contract."""
    return from_module(name, importlib.import_module(f"graders.{name}.grader"))


def from_module(name: str, module: ModuleType) -> Grader:
    """A grader module, checked against the contract."""
    checks = collect(module)
    if problems := _problems(module, checks):
        raise GraderContractError(f"graders/{name}/grader.py breaks the grader contract (graders/contract.py): "
                                  + "; ".join(problems))
    return Grader(name, module, module.TITLE, dict(getattr(module, "DEFAULTS", {})), checks,
                  getattr(module, "worker_readable", None), tuple(getattr(module, "INSTRUCTOR_ONLY", ())),
                  getattr(module, "GPU", False), tuple(getattr(module, "PRELOAD", ())),
                  {**COMMON_HELP, **getattr(module, "HELP", {})})
