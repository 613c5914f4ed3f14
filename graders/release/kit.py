"""`python -m graders release NAME --out DIR`: the folder an instructor hands to students.

    DIR/README.md                  how to use it
    DIR/requirements.txt           what to pip install (nothing else is needed)
    DIR/NAME.ipynb, DIR/NAME.py    the template to fill in (assignments/NAME/ keeps an untouched copy)
    DIR/graders/, DIR/graders_worker/   the engine and this assignment's grader (with its data files, e.g.
                                   the NAS table), public seeds only

`python -m graders grade NAME NAME.ipynb` (or the notebook's last cell) grades there as in
the repository, with two differences: each module the grader declares INSTRUCTOR_ONLY is a
stand-in that replays its answers for the public seeds (graders/release/replay.py), and
the checks it cannot run are skipped (zero points, said so). The kit's engine is the set
of `graders` modules its entry points import (read from their import statements), so a
new engine module travels without a list to keep. The build refuses a kit that holds any
line of a solution region.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from graders import assignments, contract
from graders.paths import DATASETS_DIR, GRADERS_DIR, REPO_ROOT, WORKER_PACKAGE_DIR
from graders.release import recorder, replay
from graders.templates import BEGIN, END

ENTRY_POINTS = ("graders.__main__", "graders.cli", "graders.notebook", "graders.release.replay")
NOT_FOR_STUDENTS = ("nbgrader", "pytest", "pytest-timeout")  # requirements of the instructor's side only
DATA_FILES = "*.json"  # files beside a shipped module that travel with it (a grader's measured table)
MIN_SOLUTION_LINE = 24  # shorter lines of a solution region ("optimizer.step()") are idioms found anywhere
LEAK_LINES = 3  # telling lines of one solution region that make a file a leak (all of them, for a region of 2)


class ReleaseError(RuntimeError):
    """The kit cannot be built (the reference does not earn full marks, a solution line would leak)."""


def module_file(name: str) -> Path | None:
    """The source file of a `graders` module, or None when there is none."""
    base = REPO_ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imported(name: str, path: Path) -> set[str]:
    """The `graders` modules a file imports, anywhere in it (function-local imports too)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {m for m in found if m.split(".")[0] == "graders"
            and (module_file(m) is not None or REPO_ROOT.joinpath(*m.split(".")).is_dir())}


def engine_modules(assignment: str, stand_ins: set[str], entry_points: tuple[str, ...] = ENTRY_POINTS) -> set[str]:
    """Every `graders` module the entry points need; stand-ins are not followed into."""
    todo = [*entry_points, f"graders.{assignment}.grader"]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name in INSTRUCTOR_TOOLS:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages
        if name not in stand_ins and (path := module_file(name)) is not None:  # (a namespace package has none)
            todo += sorted(_imported(name, path))
    others = {f"graders.{n}" for n in assignments.names() if n != assignment}
    return {m for m in seen if not any(m == o or m.startswith(o + ".") for o in others)}


# Engine modules for the instructor's eyes only (the class report: other students' scores, names and code): never
# in a kit, not even as a stand-in, and not followed into (a kit never writes a class's outputs).
INSTRUCTOR_TOOLS = ("graders.outputs.class_report", "graders.outputs.similarity_report", "graders.similarity")


def instructor_only_everywhere() -> set[str]:
    """Modules any assignment declares INSTRUCTOR_ONLY: never shipped as they are."""
    return {m for n in assignments.names() for m in assignments.grader(n).instructor_only}


def stand_in_source(module_name: str) -> str:
    import importlib

    module = importlib.import_module(module_name)
    names = recorder.module_functions(module)
    constants = {k: v for k, v in vars(module).items() if k.isupper() and _simple(v)}
    path = module_file(module_name).relative_to(REPO_ROOT)
    lines = [f'"""Stand-in for the instructor\'s {path}: a student kit holds none of its code.',
             "",
             "Its functions replay what the real ones returned when the kit was built, for the public",
             "seeds (graders/release/replay.py); any other call skips its check.",
             '"""', "", "from graders.release.replay import stand_in", "",
             *(f"{k} = {v!r}" for k, v in sorted(constants.items())),
             "", f"globals().update(stand_in(__name__, {names!r}))", ""]
    return "\n".join(lines)


def _simple(value) -> bool:
    if isinstance(value, (tuple, list)):
        return all(_simple(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def solution_regions(assignment: str) -> list[set[str]]:
    """The lines students write, region by region of the reference: those long enough to be telling and that the
    template does not already hold (`with torch.no_grad():` is given elsewhere in it)."""
    regions, current = [], None
    given = assignments.template_paths(assignment)[0].read_text()
    for line in assignments.solution_path(assignment).read_text().splitlines():
        marker = line.strip()
        if marker == BEGIN:
            current = set()
        elif marker == END:
            regions.append(current or set())
            current = None
        elif current is not None and len(marker) >= MIN_SOLUTION_LINE and marker not in given:
            current.add(marker)
    return regions


def leaked_lines(folder: Path, assignment: str) -> dict[str, list[str]]:
    """{file: the solution lines it holds} over every text file of `folder`, for files that hold LEAK_LINES or more
    telling lines of one solution region, or all of a region of two (a solution's body; one line alone may be a
    hint or an idiom)."""
    regions = [r for r in solution_regions(assignment) if r]
    leaks = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix not in (".npz", ".gz", ".png"):
            text = path.read_text(errors="replace")
            for region in regions:
                held = sorted(line for line in region if line in text)
                if len(held) >= LEAK_LINES or len(held) == len(region) >= 2:
                    leaks.setdefault(str(path.relative_to(folder)), []).extend(held)
    return leaks


def requirements() -> str:
    import tomllib

    deps = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    kept = [d for d in deps if d.split("=")[0].split(">")[0].split("<")[0].split(";")[0].strip() not in NOT_FOR_STUDENTS]
    return "# pip install -r requirements.txt  (then: python -m graders grade NAME NAME.ipynb)\n" + "\n".join(kept) + "\n"


def _version() -> str:
    """The project's version, and the commit when the repository is a git checkout."""
    import tomllib

    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
    return f"{version} (kit of {done.stdout.strip()})" if done.returncode == 0 else f"{version} (kit)"


def readme(assignment: str, skipped: dict[str, str]) -> str:
    title = assignments.grader(assignment).title
    lines = [f"# {assignment}: {title}", "",
             "Your starter kit: the template, and the course grader's public checks to try your work.", "",
             "```", "python -m venv .venv && .venv/bin/pip install -r requirements.txt",
             f".venv/bin/python -m graders grade {assignment} {assignment}.ipynb    # or {assignment}.py", "```", "",
             f"Fill in `{assignment}.ipynb` (or `{assignment}.py`): the `# YOUR CODE HERE` places. In the notebook, "
             "the last cell grades the saved notebook and shows the table inline.",
             f"`assignments/{assignment}/` keeps an untouched copy of the template.", "",
             "**This is not your grade.** The official grading uses the instructor's own seeds and runs every "
             "check; here the checks run with the public seeds, and those that need the instructor's grader are "
             "skipped (zero points, marked `skipped`)."]
    if skipped:
        lines += ["", "Checks this kit skips:", ""] + [f"- `{c}`: {why}" for c, why in sorted(skipped.items())]
    return "\n".join(lines) + "\n"


def build(assignment: str, out: str | Path) -> Path:
    """Write the student kit of `assignment` into `out` (which must not exist or be empty)."""
    grader = assignments.grader(assignment)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ReleaseError(f"{out} is not empty; give a new folder")
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if grader.instructor_only:  # a fresh interpreter, so that no cache hides a call
            done = subprocess.run([sys.executable, "-m", "graders.release.recorder", assignment, tmp], cwd=REPO_ROOT,
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise ReleaseError(f"recording the reference's answers failed:\n{done.stderr[-3000:]}")
            skipped = json.loads((Path(tmp) / recorder.SKIPPED_JSON).read_text())
        _write(assignment, grader, out, Path(tmp), skipped)
    if leaks := leaked_lines(out, assignment):
        shutil.rmtree(out)
        raise ReleaseError(f"the kit would hold solution lines: {leaks}")
    return out


def _write(assignment: str, grader: contract.Grader, out: Path, recording: Path, skipped: dict) -> None:
    private = instructor_only_everywhere()
    stand_ins = private & {m for m in engine_modules(assignment, private)}
    for name in sorted(engine_modules(assignment, private)):
        if (source := module_file(name)) is None:
            continue
        target = out / source.relative_to(REPO_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(stand_in_source(name) if name in stand_ins else source.read_text())
        if name not in stand_ins:  # its data (graders/nas/table.json, which NAS's LocalSearchSpace and checks read)
            for data in sorted(source.parent.glob(DATA_FILES)):
                shutil.copy(data, target.parent / data.name)
    release = out / replay.HERE.relative_to(REPO_ROOT)
    for name in (recorder.RECORDING_JSON, recorder.RECORDING_NPZ):
        if (recording / name).is_file():
            shutil.copy(recording / name, release / name)
    (release / replay.KIT_FILE.name).write_text(json.dumps(
        {"assignment": assignment, "version": _version(), "skipped_checks": skipped, "stand_ins": sorted(stand_ins)},
        indent=1) + "\n")
    others = {f"{n}.py" for n in assignments.names() if n != assignment}
    shutil.copytree(WORKER_PACKAGE_DIR, out / WORKER_PACKAGE_DIR.name,
                    ignore=lambda d, names: [n for n in names if n == "__pycache__"
                                             or (Path(d).name == "adapters" and n in others)])
    if "graders.datasets" in engine_modules(assignment, private):
        (out / "datasets").mkdir()
        shutil.copy(DATASETS_DIR / "manifest.json", out / "datasets" / "manifest.json")
        shutil.copytree(DATASETS_DIR / "fixtures", out / "datasets" / "fixtures")
    for template in assignments.template_paths(assignment):
        (out / "assignments" / assignment).mkdir(parents=True, exist_ok=True)
        shutil.copy(template, out / "assignments" / assignment / template.name)
        shutil.copy(template, out / template.name)
    (out / "requirements.txt").write_text(requirements())
    (out / "README.md").write_text(readme(assignment, skipped))
    assert GRADERS_DIR.name == "graders"
