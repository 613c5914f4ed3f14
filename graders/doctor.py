"""`python -m graders doctor`: what a grading on this host will be, in one screen; is it fit for official grading?

Each finding is `ok`, `info`, `warn` (weaker than it could be, still safe and fair) or
`fail`: official grading here would be unsafe (a submission could read what decides
grades, or run as the grader) or unfair (no worker starts, a worker lacks what the
grader's environment has, a GPU the grader would train on is not the worker's).
Nothing is inferred where it can be measured: a real worker is started for each
assignment, in the sandbox its gradings get, and asked to import what its template
imports (numpy, torch, gymnasium) and the worker package needs, to open the files that decide grades (the
instructor config, the reference solution, the grader and the data it holds out) and,
on a GPU host, to see the GPU.

`batch` and Gradescope's `run_autograder` examine their assignment first and stop on a
`fail`, unless the instructor passes `--allow-unsafe-host`; then every row records why
(`Grading.unsafe_host`). `--time` (graders/timing.py) also times the references here.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from graders import assignments, datasets
from graders.config import Config, Effective
from graders.contract import Context
from graders.paths import GRADERS_DIR
from graders.runner import DeviceError, resolve_device
from graders.sandbox import HostError, IsolationUnavailable, WorkerError, isolation, probe

log = logging.getLogger(__name__)

LEVELS = ("ok", "info", "warn", "fail")
WORKER_NEEDS = ("numpy",)  # the worker package's own
ALLOW_FLAG = "--allow-unsafe-host"

# The worker side of the examination: our own file, no student code, so its answers can be believed.
WORKER_FILE = '''
import importlib


def examine(modules, files, cuda):
    found = {}
    for name in modules:
        try:
            module = importlib.import_module(name)
            found[name] = "ok " + str(getattr(module, "__version__", ""))
        except BaseException as exc:
            found[name] = "FAILED " + type(exc).__name__ + ": " + str(exc)[:300]
    readable = []
    for path in files:
        try:
            with open(path, "rb") as f:
                f.read(1)
            readable.append(path)
        except OSError:
            pass
    gpu = None
    if cuda:
        try:
            import torch
            gpu = bool(torch.cuda.is_available())
        except BaseException as exc:
            gpu = "FAILED " + type(exc).__name__ + ": " + str(exc)[:300]
    return {"modules": found, "readable": readable, "cuda": gpu}
'''


@dataclass(frozen=True)
class Finding:
    topic: str
    level: str  # one of LEVELS
    text: str


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    def add(self, topic: str, level: str, text: str) -> None:
        assert level in LEVELS
        self.findings.append(Finding(topic, level, text))

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "fail"]

    @property
    def fit(self) -> bool:
        return not self.problems

    def reason(self) -> str:
        """What a row graded anyway records: the failed findings, one line."""
        return "; ".join(f"{f.topic}: {f.text}" for f in self.problems)

    def render(self) -> str:
        lines = ["host check (python -m graders doctor): what a grading here will be"]
        for f in self.findings:
            text = f.text.replace("\n", "\n" + " " * 20)
            lines.append(f"  {f.level.upper():5} {f.topic:12} {text}")
        if self.fit:
            lines.append("verdict: fit for official grading")
        else:
            lines.append(f"verdict: NOT fit for official grading ({len(self.problems)} FAIL above): fix them, or grade "
                         f"anyway with {ALLOW_FLAG} (every row records it)")
        return "\n".join(lines)


def examine(names: Sequence[str] | None = None, config: Config | None = None, *, device: str = "auto",
            config_path: str | Path | None = None) -> Report:
    """Examine this host for grading `names` (default: every assignment) with `config`."""
    names = list(names or assignments.names())
    config = config or Config()
    report = Report()
    effective = [config.effective(n) for n in names]
    try:
        device = resolve_device(device)
    except DeviceError as exc:
        report.add("device", "fail", str(exc))
        return report
    limits = effective[0].limits
    try:
        plan = isolation.plan(limits.isolation, limits.cgroup)
    except (IsolationUnavailable, ValueError) as exc:
        report.add("isolation", "fail", str(exc))
        return report
    _isolation(report, plan)
    _gpu(report, device)
    _workers(report, effective, device, config_path)
    _datasets(report, effective)
    _time_limits(report, effective, device)
    return report


def _isolation(report: Report, plan: isolation.Plan) -> None:
    if plan.mode == "bubblewrap":
        report.add("isolation", "ok", "bubblewrap: no network, read-only system, private scratch and /tmp, a pid "
                   "namespace; the worker sees Python, the worker package, its file and what its grader allows")
    else:
        report.add("isolation", "warn", "process limits only (no bubblewrap): a submission can reach the network and "
                   "read every file its uid can read (see `files` below); rlimits, wall clock, scratch folder")
    root = os.geteuid() == 0
    if plan.uid is not None:
        report.add("uid", "ok", "each worker runs as an unprivileged uid of its own (the grader is root)")
    elif plan.mode == "bubblewrap":
        report.add("uid", "ok", f"a user namespace: the worker has the grader's uid {os.geteuid()} outside and sees "
                   "only what is mounted")
    else:
        why = f" ({plan.note})" if plan.note else "" if root else " (the grader is not root: it cannot drop to another)"
        report.add("uid", "fail", f"the worker runs as the grader's own uid {os.geteuid()}{why}: it can read what the "
                   "grader reads and signal the grader")
    if plan.cgroups is not None:
        report.add("cgroups", "ok", plan.cgroups.describe())
    else:
        report.add("cgroups", "warn", f"no cgroup per worker ({plan.no_cgroup}): shared memory and the CPU of a "
                   "worker's children are not bounded; one submission can slow the gradings beside it")


def _gpu(report: Report, device: str) -> None:
    try:
        import torch
    except ImportError as exc:
        report.add("gpu", "fail", f"the grader cannot import torch: {exc}")
        return
    if not torch.cuda.is_available():
        report.add("gpu", "info", f"no GPU: gradings train on the CPU ({os.cpu_count()} cores here)")
        return
    props = torch.cuda.get_device_properties(0)
    count = torch.cuda.device_count()
    report.add("gpu", "ok" if device == "cuda" else "info",
               f"{count} x {props.name}, {props.total_memory / 2**30:.1f} GiB each; gradings train on "
               f"{'the GPU' if device == 'cuda' else 'the CPU (--device cpu)'}")


def _private_files(e: Effective, config_path: str | Path | None) -> dict[str, str]:
    """{path: what it is}: what decides grades, which no worker may read."""
    files = {}
    if config_path:
        files[str(Path(config_path).resolve())] = "the instructor config"
    solution = assignments.solution_path(e.name)
    if solution.is_file():
        files[str(solution)] = "the reference solution"
    for path in sorted((GRADERS_DIR / e.name).iterdir()):
        if path.is_file() and (path.name == "grader.py" or path.suffix not in (".py", ".pyc")):
            files[str(path)] = "the grader" if path.name == "grader.py" else "the grader's data"
    for name, path in _dataset_files(e).items():
        files[str(path)] = f"dataset {name.split('/')[0]}, whose images the grader holds out"
    return files


def _dataset_files(e: Effective) -> dict[str, Path]:
    """{dataset/file: the copy the grader reads} for the dataset the assignment's settings name."""
    name = e.settings.get("dataset")
    if not isinstance(name, str) or name not in datasets.names():
        return {}
    found = {}
    for filename in datasets.spec(name)["files"]:
        path = next((d / filename for d in datasets.candidate_dirs(name) if (d / filename).is_file()), None)
        if path is not None:
            found[f"{name}/{filename}"] = path
    return found


def _worker_answers(e: Effective, device: str, modules: list[str], files: list[str]) -> dict | str:
    """The examination's answers from a real worker of the assignment; a string: why none started."""
    ctx = Context(e.name, device, e.settings)
    readable = e.grader.worker_readable(ctx) if e.grader.worker_readable else []
    worker = probe.ProbeWorker(e.name, WORKER_FILE, device=device, limits=e.limits, readable=readable)
    try:
        reply = worker.call("examine", modules, files, device == "cuda", timeout=e.limits.import_seconds + 120)
    except (WorkerError, HostError) as exc:
        output = worker.output.strip()
        return f"{exc}" + (f"\nits output: {output[-800:]}" if output else "")
    finally:
        worker.close()
    if not isinstance(reply, dict) or not isinstance(reply.get("modules"), dict):
        return f"the worker answered {reply!r:.200}"
    return reply


def _needed(e: Effective) -> list[str]:
    """The modules a worker of `e` must import: the worker package's, and what the template imports beyond Python's
    own (torch, gymnasium...); not `graders`, which a template imports only outside a grading (a kit's local run)."""
    template = assignments.template_paths(e.name)[0]
    wanted = probe.modules_imported(template.read_text()) if template.is_file() else []
    own = (*sys.stdlib_module_names, probe.GRADER_PACKAGE)
    return list(dict.fromkeys([*WORKER_NEEDS, *(m for m in wanted if m not in own)]))


def _workers(report: Report, effective: list[Effective], device: str, config_path) -> None:
    needed = {e.name: _needed(e) for e in effective}
    missing = [m for m in dict.fromkeys(m for ms in needed.values() for m in ms) if not probe.environment_has(m)]
    if missing:
        report.add("imports", "fail", f"the grader's environment lacks {', '.join(missing)}, which the templates "
                   "import: pip install -e . in it")
    versions: dict[str, str] = {}
    failures, readable, no_gpu, started = [], [], [], []
    for e in effective:
        modules = [m for m in needed[e.name] if m not in missing]
        private = _private_files(e, config_path)
        began = time.monotonic()
        answers = _worker_answers(e, device, modules, list(private))
        if isinstance(answers, str):
            failures.append(f"no {e.name} worker starts here: {answers}")
            continue
        started.append(time.monotonic() - began)
        for name, result in answers["modules"].items():
            if str(result).startswith("ok"):
                versions[name] = str(result)[3:] or "?"
            else:
                failures.append(f"a {e.name} worker cannot import {name} (the grader can): {result}")
        readable += [(private[path], path) for path in answers.get("readable", []) if path in private]
        if device == "cuda" and answers.get("cuda") is not True:
            no_gpu.append(f"{e.name}: {answers.get('cuda')}")
    if failures:
        report.add("imports", "fail", "\n".join(failures))
    if versions:
        report.add("imports", "ok", "a worker imports " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
                   + (", all that each template imports" if not failures else "")
                   + f" (a worker started and imported them in {max(started):.1f} s at most)")
    if readable:
        report.add("files", "fail", "a submission could read what decides grades:\n" + _grouped(readable))
    elif started:
        report.add("files", "ok", "a worker can read neither the instructor config, the reference solutions, the "
                   "graders nor the data they hold out (tried: " + ", ".join(e.name for e in effective) + ")")
    if no_gpu:
        report.add("gpu", "fail", "gradings would train on the GPU, but a worker does not see it: " + "; ".join(no_gpu))


def _grouped(found: list[tuple[str, str]]) -> str:
    """One line per kind of file: its path, or the folders of several."""
    lines = []
    for label in dict.fromkeys(label for label, _ in found):
        paths = sorted({p for lbl, p in found if lbl == label})
        where = paths[0] if len(paths) == 1 else f"{os.path.commonpath(paths)}/... ({len(paths)} files)"
        lines.append(f"{label}: {where}")
    return "\n".join(lines)


def _datasets(report: Report, effective: list[Effective]) -> None:
    parts = []
    for e in effective:
        data = [p.name for p in sorted((GRADERS_DIR / e.name).iterdir()) if p.is_file()
                and p.suffix not in (".py", ".pyc")]
        name = e.settings.get("dataset")
        if isinstance(name, str):
            files = _dataset_files(e)
            folders = sorted({str(p.parent) for p in files.values()})
            complete = len(files) == len(datasets.spec(name)["files"]) if name in datasets.names() else False
            parts.append(f"{e.name}: {name} from {', '.join(folders)}" if complete else
                         f"{e.name}: {name} is NOT installed here (the grader falls back or stops; docs/datasets.md)")
        if data:
            parts.append(f"{e.name}: {', '.join(data)} (in the grader)")
    if parts:
        level = "warn" if any("NOT installed" in p for p in parts) else "info"
        report.add("datasets", level, "the graders read " + "; ".join(parts) + "; the worker gets what it needs "
                   "from the grader, never the files")


def _time_limits(report: Report, effective: list[Effective], device: str) -> None:
    longest = ", ".join(f"{e.name} {e.total_seconds(device) / 60:.0f}" for e in effective)
    train = [(e.name, t) for e in effective if isinstance(t := e.settings.get("train_seconds"), dict)]
    per_device = ", ".join(f"{name} {t.get('cpu'):g}/{t.get('cuda', t.get('cpu')):g}" for name, t in train)
    report.add("time", "info", f"longest grading on {device}, minutes: {longest}"
               + (f"; train_seconds cpu/cuda: {per_device}" if per_device else "")
               + " (set on a 2-core CPU; --time measures this host)")
