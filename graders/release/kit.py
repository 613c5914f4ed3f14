"""`python -m graders release NAME --out DIR`: the folder an instructor hands to students.

    DIR/README.md                  how to use it
    DIR/requirements.txt           what to pip install: a CPU build of torch on Linux, macOS and Windows
    DIR/requirements-gpu.txt       the same with PyPI's CUDA build of torch (Linux with an NVIDIA GPU)
    DIR/NAME.ipynb, DIR/NAME.py    the template to fill in (assignments/NAME/ keeps an untouched copy)
    DIR/graders/, DIR/graders_worker/   the engine and this assignment's grader (with its data files, e.g.
                                   the NAS table), public seeds only
    DIR/datasets/                  the data the grader trains on (the VAE's Fashion-MNIST), with its licence

`python -m graders grade NAME NAME.ipynb` (or the notebook's last cell) grades there as in
the repository, with two differences: each module the grader declares INSTRUCTOR_ONLY is a
stand-in that replays its answers for the public seeds (graders/release/replay.py), and
the checks it cannot run are skipped (zero points, said so). The kit's engine is the set
of `graders` and `graders_worker` modules its entry points import (read from their import
statements), so a new engine module travels without a list to keep; the instructor's side
(INSTRUCTOR_SIDE: batch grading, Gradescope, nbgrader's gradebook, templates, this builder)
never travels, and the kit's CLI offers only `list` and `grade`. The requirements are the
packages the kit's code imports, pinned as pyproject.toml pins them (graders/release/packages.py). The build refuses a kit
that holds any line of a solution region.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from graders import assignments, contract, datasets
from graders.paths import DATASETS_DIR, GRADERS_DIR, REPO_ROOT
from graders.release import packages, recorder, replay
from graders.templates import BEGIN, END

ENTRY_POINTS = ("graders.__main__", "graders.cli", "graders.notebook", "graders.release.replay")
WORKER_ENTRY_POINT = "graders_worker.main"
WORKER_ADAPTERS = "graders_worker.adapters"  # the worker imports NAME's adapter from there by name, when there is one
# The instructor's side: never in a kit, and the crawl does not follow into it (graders/cli.py reaches these only
# from commands a kit does not offer). A shipped module that imports one at its top stops the build.
# Engine modules for the instructor's eyes only (the class report: other students' scores, names and code): never
# in a kit or Gradescope's zip, not even as a stand-in, and not followed into (neither writes a class's outputs).
INSTRUCTOR_TOOLS = ("graders.outputs.class_report", "graders.outputs.similarity_report", "graders.similarity")
INSTRUCTOR_SIDE = (*INSTRUCTOR_TOOLS, "graders.batch", "graders.outputs.gradebook", "graders.release.autograder",
                   "graders.release.gradescope", "graders.release.kit", "graders.release.recorder",
                   "graders.templates", "graders.variants")
LICENCE_TEXTS = {"MIT": """\
Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
documentation files (the "Software"), to deal in the Software without restriction, including without limitation the
rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and to
permit persons to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial portions of the
Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE
WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""}  # the licences of the datasets a kit may ship (datasets/manifest.json), whose text must travel with the data
DATA_FILES = "*.json"  # files beside a shipped module that travel with it (a grader's measured table)
MIN_SOLUTION_LINE = 24  # shorter lines of a solution region ("optimizer.step()") are idioms found anywhere
LEAK_LINES = 3  # telling lines of one solution region that make a file a leak (all of them, for a region of 2)


class ReleaseError(RuntimeError):
    """The kit cannot be built (the reference does not earn full marks, a solution line would leak)."""


def module_file(name: str) -> Path | None:
    """The source file of a `graders` or `graders_worker` module, or None when there is none."""
    base = REPO_ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(name: str, path: Path, top_only: bool = False) -> set[str]:
    """The modules a file imports (absolute names), anywhere in it (function-local imports too), or only in its
    module body (`top_only`: what importing it runs)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    nodes = _module_body(tree) if top_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def _module_body(tree: ast.Module):
    """The statements a module runs when imported: its body, into `if` and `try` blocks, not into functions."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, (ast.If, ast.Try)):
            todo += [*node.body, *node.orelse, *getattr(node, "handlers", []), *getattr(node, "finalbody", [])]
        elif isinstance(node, ast.ExceptHandler):
            todo += node.body


def _ours(names: set[str]) -> set[str]:
    return {m for m in names if m.split(".")[0] in packages.PACKAGES
            and (module_file(m) is not None or REPO_ROOT.joinpath(*m.split(".")).is_dir())}


def _crawl(roots: list[str], stop: set[str], leave_out: tuple[str, ...] = ()) -> set[str]:
    """The modules of this project that `roots` import, transitively; `stop` modules are not followed into, and
    `leave_out` modules (and their submodules) are neither kept nor followed."""
    todo, seen = list(roots), set()
    while todo:
        name = todo.pop()
        if name in seen or _within(name, leave_out):
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages
        if name not in stop and (path := module_file(name)) is not None:  # (a namespace package has none)
            todo += sorted(_ours(_imports(name, path)))
    return seen


def _within(name: str, modules) -> bool:
    return any(name == m or name.startswith(m + ".") for m in modules)


def engine_modules(assignment: str, stand_ins: set[str], entry_points: tuple[str, ...] = ENTRY_POINTS) -> set[str]:
    """Every `graders` module the entry points need (all of it: the official grader, as Gradescope's zip holds it);
    stand-ins are not followed into."""
    seen = _crawl([*entry_points, f"graders.{assignment}.grader"], stand_ins, INSTRUCTOR_TOOLS)
    others = {f"graders.{n}" for n in assignments.names() if n != assignment}
    return {m for m in seen if m.split(".")[0] == "graders" and not _within(m, others)}


def kit_modules(assignment: str, stand_ins: set[str]) -> set[str]:
    """The `graders` and `graders_worker` modules a student's kit needs to grade `assignment`: the instructor's
    side left out, stand-ins not followed into."""
    roots = [*ENTRY_POINTS, f"graders.{assignment}.grader", WORKER_ENTRY_POINT, WORKER_ADAPTERS]
    if module_file(adapter := f"{WORKER_ADAPTERS}.{assignment}") is not None:
        roots.append(adapter)
    seen = _crawl(roots, stand_ins, INSTRUCTOR_SIDE)
    others = {f"graders.{n}" for n in assignments.names() if n != assignment}
    kept = {m for m in seen if not _within(m, others)}
    for name in sorted(kept - stand_ins):
        if (path := module_file(name)) is not None and (bad := _ours(_imports(name, path, top_only=True)) - kept):
            raise ReleaseError(f"{name} imports {sorted(bad)} when it is imported, which a student kit leaves out "
                               "(the instructor's side): import it inside the function that needs it")
    return kept


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


def _version() -> str:
    """The project's version, and the commit when the repository is a git checkout."""
    import tomllib

    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
    return f"{version} (kit of {done.stdout.strip()})" if done.returncode == 0 else f"{version} (kit)"


def readme(assignment: str, skipped: dict[str, str], gpu_file: bool, data: str | None) -> str:
    title = assignments.grader(assignment).title
    lines = [f"# {assignment}: {title}", "",
             "Your starter kit: the template, and the course grader's public checks to try your work.", "",
             "```", "python -m venv .venv && .venv/bin/pip install -r requirements.txt",
             f".venv/bin/python -m graders grade {assignment} {assignment}.ipynb --unit    # the quick checks, seconds",
             f".venv/bin/python -m graders grade {assignment} {assignment}.ipynb           # all of them (or {assignment}.py)",
             "```", ""]
    if gpu_file:
        lines += ["That installs a CPU build of torch (Linux, macOS, Windows). With an NVIDIA GPU on Linux, run "
                  "`.venv/bin/pip install -r requirements-gpu.txt` instead.", ""]
    lines += [f"Fill in `{assignment}.ipynb` (or `{assignment}.py`): the `# YOUR CODE HERE` places. In the notebook, "
              f"the last cell grades the notebook and shows the table inline; `check(\"{assignment}\", \"CHECK\")` "
              f"grades one check, `check(\"{assignment}\", unit=True)` those that do not train.",
              f"`assignments/{assignment}/` keeps an untouched copy of the template."]
    if data:
        lines += ["", f"`datasets/cache/{data}/` holds the data the grader trains on, as the official grading does "
                  f"(see its LICENCE file)."]
    lines += ["", "**This is not your grade.** The official grading uses the instructor's own seeds and runs every "
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
    modules = kit_modules(assignment, private)
    stand_ins = private & modules
    for name in sorted(modules):
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
    data = None
    if "graders.datasets" in modules:
        (out / "datasets").mkdir()
        shutil.copy(DATASETS_DIR / "manifest.json", out / "datasets" / "manifest.json")
        shutil.copytree(DATASETS_DIR / "fixtures", out / "datasets" / "fixtures")
        data = _ship_dataset(grader, out / "datasets" / "cache")
    for template in assignments.template_paths(assignment):
        (out / "assignments" / assignment).mkdir(parents=True, exist_ok=True)
        shutil.copy(template, out / "assignments" / assignment / template.name)
        shutil.copy(template, out / template.name)
    try:
        needed = packages.kit_packages(assignment, out)
        cpu, gpu = packages.requirements(needed), packages.requirements(needed, gpu=True)
    except packages.PackagesError as exc:
        raise ReleaseError(str(exc)) from None
    install = "python -m venv .venv && .venv/bin/pip install -r"
    (out / "requirements.txt").write_text(
        f"# The course grader's kit for {assignment}: {install} requirements.txt\n"
        + ("# A CPU build of torch (Linux, macOS, Windows). With an NVIDIA GPU on Linux, install requirements-gpu.txt "
           "instead.\n" if "torch" in needed else "") + cpu)
    if "torch" in needed:
        (out / "requirements-gpu.txt").write_text(
            f"# The course grader's kit for {assignment}, with PyPI's CUDA build of torch (Linux with an NVIDIA GPU; "
            f"a few GB): {install} requirements-gpu.txt\n" + gpu)
    (out / "README.md").write_text(readme(assignment, skipped, "torch" in needed, data))
    assert GRADERS_DIR.name == "graders"


def _ship_dataset(grader: contract.Grader, cache: Path) -> str | None:
    """Copy the dataset the grader trains on by default (its `dataset` option) into the kit's data cache, with its
    licence, so that the kit grades the official task; None when the grader names no dataset."""
    name = grader.defaults.get("dataset")
    if name is None:
        return None
    spec = datasets.spec(name)
    if spec["licence"] not in LICENCE_TEXTS:
        raise ReleaseError(f"dataset {name!r} is licensed {spec['licence']}: the kit has no licence text to ship "
                           "with it")
    (cache / name).mkdir(parents=True)
    for filename in sorted(spec["files"]):
        try:
            path, _ = datasets.locate(name, filename, download=False)
        except (datasets.DatasetNotFound, datasets.ChecksumMismatch) as exc:
            raise ReleaseError(f"the kit ships {name}, which this machine does not hold: {exc}") from None
        shutil.copy(path, cache / name / filename)
    (cache / name / "LICENCE").write_text(
        f"{spec['description']}\n{spec['homepage']}\n\nCopyright (c) {spec['copyright']}\n\n"
        f"{LICENCE_TEXTS[spec['licence']]}\nCite: {spec['citation']}\n")
    return name
