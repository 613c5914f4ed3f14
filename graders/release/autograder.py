"""Inside Gradescope's container (run_autograder): grade ROOT/submission, write ROOT/results/results.json.

Before grading, the source folder is made unreadable to other users (the hidden config
above all; the worker runs under a uid of its own and reads only `graders_worker`), and
the host is checked (graders/doctor.py: a real worker, its imports, what it can read):
a host that fails the check grades nothing, unless the zip was built with
`--allow-unsafe-host` (then results.json records why). A grading that cannot start
still writes a results.json that says why, so a student never sees Gradescope's bare
"autograder failed"; an upload without a gradable file is told, first thing, what to
upload.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import traceback
from pathlib import Path

from graders.config import Config
from graders.files import atomic_write
from graders.outputs.gradescope import render
from graders.outputs.table import printable
from graders.paths import REPO_ROOT, WORKER_PACKAGE_DIR
from graders.progress import Listener
from graders.release.gradescope import SELF_TEST_ENV, SETTINGS
from graders.submission import SubmissionFormatError, find_file


class LogLines(Listener):
    """A line per check on stdout: Gradescope keeps it (shown to students only per stdout_visibility)."""

    def check_started(self, check, limit_s: float) -> None:
        print(f"{check.name}: running (limit {limit_s:.0f} s)", flush=True)

    def check_finished(self, result) -> None:
        print(f"{result.name}: {result.status} {result.points:g}/{result.max_points:g} ({result.seconds:.1f} s)",
              flush=True)


def lock_down(source: Path) -> None:
    """Only root reads the grader and the config; the worker package stays readable (the worker imports it)."""
    worker = WORKER_PACKAGE_DIR.resolve()
    for path in [source, *source.rglob("*")]:
        inside = path.resolve() == worker or worker in path.resolve().parents
        mode = path.stat().st_mode & 0o7777
        if path == source:
            mode = (mode & 0o700) | 0o011  # others may pass through, not list
        elif inside:
            mode |= 0o055 if path.is_dir() else 0o044
        else:
            mode &= 0o700
        os.chmod(path, mode)


def _failure(settings: dict, why: str) -> str:
    return json.dumps({"score": 0.0, "output": f"The autograder could not grade this submission (not your fault; "
                                               f"tell your instructor):\n{why}", "visibility": "visible",
                       "stdout_visibility": settings.get("stdout_visibility", "hidden"), "tests": []}, indent=2)


def upload_problem(folder: Path, assignment: str) -> str:
    """'' when `folder` holds a file to grade; else what the student uploaded and what to upload instead."""
    try:
        find_file(folder, assignment)
        return ""
    except SubmissionFormatError:
        names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        shown = ", ".join(printable(n) for n in names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        return (f"YOUR UPLOAD COULD NOT BE GRADED: it holds {shown or 'no file'}. Upload your notebook as "
                f"{assignment}.ipynb (or your code as {assignment}.py), one file of those two, and submit again.")


def main(argv: list[str]) -> int:
    from graders import doctor
    from graders.runner import grade

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    root = Path(argv[0] if argv else "/autograder")
    source, results = REPO_ROOT, root / "results" / "results.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    settings: dict = {}
    try:
        settings = json.loads((source / SETTINGS).read_text())
        if os.geteuid() == 0:
            lock_down(source)
        config_path = source / settings["config"] if settings.get("config") else None
        config = Config.load(config_path)
        effective = config.effective(settings["assignment"])
        cap = float(settings["total_seconds"])
        if effective.total_seconds("cpu") > cap:  # end within Gradescope's timeout, with every result written
            effective = dataclasses.replace(effective, settings={**effective.settings, "total_seconds": cap})
        allowed = bool(settings.get("allow_unsafe_host")) or os.environ.get(SELF_TEST_ENV) == "1"
        report = doctor.examine([effective.name], config, device="auto", config_path=config_path)
        print(report.render(), flush=True)
        if not report.fit and not allowed:
            text = _failure(settings, "this grading machine failed its host check (python -m graders doctor), so "
                            "nothing was graded:\n" + report.reason())
        else:
            grading = grade(effective, root / "submission", device="auto", listener=LogLines())
            grading.unsafe_host = report.reason()
            text = render(grading, visibility=settings.get("visibility", {}),
                          stdout_visibility=settings.get("stdout_visibility"),
                          leaderboard=settings.get("leaderboard", False),
                          message=upload_problem(root / "submission", effective.name))
    except Exception:  # a grader or setup problem: say so in results.json
        traceback.print_exc()
        text = _failure(settings, traceback.format_exc(limit=3))
    atomic_write(results, text)
    print(f"wrote {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
