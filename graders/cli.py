"""The command line: `python -m graders {list,grade,settings,validate,templates,batch,report,doctor,nbgrader-source,
release,gradescope}`.

In a student kit (graders/release/kit.py) only `list` and `grade` exist.

Exit codes: 0 when the command did its job; 1 when `validate` found a reference
without full marks or a template with points, or `doctor` found this host not fit for
official grading; 2 when grading itself could not be done (bad arguments, unreadable
config, an internal grader error; for `batch`, a layout it cannot tell, a host not fit
for official grading (`doctor`), or a student whose grading process crashed or overran
or whose row is a grader error: see their row); 3 (`batch`) when the class was graded
but some entries of the submissions folder were not graded or some rows are flagged for
review (listed in summary.txt and on the class page; gradebook problems are printed);
130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from graders import assignments, outputs
from graders.config import Config, ConfigError
from graders.contract import GraderContractError
from graders.files import atomic_write
from graders.outputs import gradescope
from graders.outputs.table import ISOLATION_LOGGERS, printable, table
from graders.paths import REPO_ROOT
from graders.progress import TerminalProgress
from graders.release import replay
from graders.results import Record, student_status
from graders.runner import DeviceError, grade
from graders.sandbox import IsolationUnavailable
from graders.selection import SelectionError

USAGE_ERROR = 2
NEEDS_REVIEW = 3  # batch: every student graded, but some rows are flagged for the instructor's review
# What --help says in a student kit (graders/release/kit.py), where only `list` and `grade` exist.
KIT_USAGE = """The course grader's public checks: `python -m graders grade NAME FILE` grades your .py or .ipynb file
(--check CHECK: one check, --unit: those that do not train). Exit codes: 0 graded (whatever the score), 2 it could
not grade (bad arguments, an internal grader error)."""


def _version() -> str:
    if replay.in_kit():
        return replay.kit()["version"]
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("rl-vae-graders")
    except PackageNotFoundError:  # a student kit is not installed
        return "kit" if replay.in_kit() else "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m graders", description=KIT_USAGE if replay.in_kit() else __doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    # -v is also accepted after the subcommand (python -m graders grade -v ...)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="list the assignments", parents=[common])

    g = sub.add_parser("grade", help="grade one submission (.py, .ipynb, or a folder holding one)", parents=[common])
    g.add_argument("assignment")
    g.add_argument("submission", type=Path)
    g.add_argument("--json", metavar="PATH", help="write Gradescope's results.json here ('-': to stdout, "
                   "instead of the table)")
    g.add_argument("--feedback", type=Path, metavar="DIR",
                   help="write the feedback page, results.json and the plots here")
    g.add_argument("--check", action="append", default=[], metavar="CHECK", dest="checks",
                   help="grade only this check (repeatable; with what it needs); the others are skipped")
    g.add_argument("--unit", action="store_true", help="grade only the checks that do not train (seconds)")
    _device_and_config(g)
    if replay.in_kit():
        return parser

    st = sub.add_parser("settings", parents=[common], help="list what an instructor's TOML may set for an "
                        "assignment: every setting with its default and meaning, and each check's points and time")
    st.add_argument("assignment")

    v = sub.add_parser("validate", parents=[common],
                       help="grade every reference (full marks expected) and template (zero expected)")
    v.add_argument("assignments", nargs="*", metavar="ASSIGNMENT", help="default: all")
    _device_and_config(v)

    t = sub.add_parser("templates", parents=[common],
                       help="regenerate assignments/ from solutions/ (or --check they are current)")
    t.add_argument("assignments", nargs="*", metavar="ASSIGNMENT", help="default: all")
    t.add_argument("--check", action="store_true", help="only report templates that are out of date")

    b = sub.add_parser("batch", parents=[common],
                       help="grade a folder of submissions (flat, or nbgrader's submitted/): resumable",
                       description="Grade every submission in SUBMISSIONS (a .py/.ipynb file or a folder per "
                       "student, or nbgrader's submitted/<student>/<assignment>/) into OUT; a re-run skips "
                       "students already graded (same file), so an interrupted batch resumes. See docs/instructor.md.")
    b.add_argument("assignment", help="e.g. bandits (see: python -m graders list)")
    b.add_argument("submissions", type=Path, help="the folder of submissions (flat, or nbgrader's submitted/)")
    b.add_argument("--out", type=Path, required=True, metavar="DIR", help="results folder (created if missing)")
    b.add_argument("-j", "--jobs", type=int, metavar="N",
                   help="gradings at once (default: the number of CPU cores; with --ray: all the cluster has room for)")
    b.add_argument("--gpu-jobs", type=int, default=1, metavar="N",
                   help="gradings sharing each GPU when the device is CUDA (default 1)")
    b.add_argument("--regrade", action="store_true", help="grade everyone again, even students already graded")
    b.add_argument("--layout", choices=["auto", "flat", "nbgrader"], default="auto",
                   help="flat: a file or folder per student; nbgrader: submitted/<student>/ASSIGNMENT/; auto "
                   "(default): nbgrader only when the whole folder has its shape, flat when nothing has it, "
                   "else stop and ask")
    b.add_argument("--ray", metavar="ADDRESS", help="grade on a Ray cluster: ray://HEAD:10001, auto, or local (a Ray "
                   "started on this machine); needs pip install '.[cluster]'. See docs/instructor.md")
    b.add_argument("--gradebook", metavar="DB",
                   help="nbgrader gradebook (path or SQLAlchemy URL) to write the scores into; default with "
                   "the nbgrader layout: COURSE/gradebook.db when it exists")
    b.add_argument("--allow-unsafe-host", action="store_true",
                   help="grade even where the host check (python -m graders doctor) fails; every row records why")
    b.epilog = ("exit status: 0 every entry graded; 2 bad arguments or config, a layout it cannot tell, a host not fit "
                "for official grading (doctor), or some row crashed/grader_error; 3 graded, but some entries were not "
                "graded or some rows need review (see summary.txt); 130 interrupted (run it again to resume)")
    _device_and_config(b)

    c = sub.add_parser("report", parents=[common], help="write a results folder's class report again: item analysis "
                       "(report/) and code similarity (similarity/); instructor only",
                       description="Regenerate RESULTS/report/ (per check: pass rate, points, failures grouped by "
                       "diagnosis, time; scores; students to look at; slowest gradings) and RESULTS/similarity/ "
                       "(pairs of students whose own code is more alike than independent work) from the records "
                       "of a batch. See docs/instructor.md.")
    c.add_argument("results", type=Path, help="the results folder of a batch (its --out)")
    c.add_argument("--config", type=Path, metavar="FILE", help="the instructor TOML the batch used (points)")
    c.add_argument("--template", type=Path, action="append", metavar="FILE",
                   help="starter code every student got (.py or .ipynb; repeat for several); default: the "
                   "assignment's templates")
    c.add_argument("--threshold", type=float, metavar="SHARE",
                   help="flag a pair from this share of one student's own code found in the other's (default: the "
                   "measured one, docs/instructor.md)")
    c.add_argument("--no-similarity", action="store_true", help="the item analysis only")
    d = sub.add_parser("doctor", parents=[common],
                       help="check this host for official grading: isolation, uid, cgroups, the worker's imports, "
                       "datasets, GPU, time limits",
                       description="Start a real worker per assignment and say, in one screen, what a grading here "
                       "will be; exit 1 where official grading would be unsafe or unfair. See docs/instructor.md, "
                       "'Check your host'.")
    d.add_argument("assignments", nargs="*", metavar="ASSIGNMENT", help="default: all")
    d.add_argument("--time", action="store_true",
                   help="also grade each reference here (CPU; GPU when present) and propose time limits that fit")
    d.add_argument("--snippet", type=Path, metavar="TOML",
                   help="with --time: write the proposed limits here, as instructor config to copy into yours")
    _device_and_config(d)

    n = sub.add_parser("nbgrader-source", parents=[common],
                       help="write an assignment's nbgrader source notebook into a course folder")
    n.add_argument("assignment")
    n.add_argument("course", type=Path, help="the nbgrader course folder (holds source/)")

    r = sub.add_parser("release", parents=[common], help="build the student kit: template, public checks, engine "
                       "(no solutions, no instructor-only grader code)")
    r.add_argument("assignment")
    r.add_argument("--out", type=Path, required=True, metavar="DIR", help="the kit's folder (new or empty)")

    z = sub.add_parser("gradescope", parents=[common], help="build Gradescope's autograder.zip for an assignment")
    z.add_argument("assignment")
    z.add_argument("--config", type=Path, metavar="FILE", help="instructor TOML (hidden seeds...), packed inside")
    z.add_argument("--out", type=Path, required=True, metavar="ZIP", help="e.g. autograder.zip")
    z.add_argument("--torch-index", default=None, metavar="URL",
                   help="pip index for torch in setup.sh (default: the CPU wheels; Gradescope has no GPU)")
    z.add_argument("--hidden", default="", metavar="CHECK,...",
                   help="checks whose results students see only after the due date")
    z.add_argument("--stdout-visibility", default="hidden", choices=["hidden", "visible", "after_due_date",
                                                                     "after_published"],
                   help="who sees the autograder's own output (default hidden)")
    z.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="the assignment's autograder timeout on Gradescope (default 2400); gradings end before it")
    z.add_argument("--allow-unsafe-host", action="store_true",
                   help="grade even where the container fails the host check (python -m graders doctor); every "
                   "results.json records why")
    return parser


def _device_and_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where the submission trains: auto = CUDA when available, else CPU")
    p.add_argument("--config", type=Path, metavar="FILE", help="instructor TOML: seeds, thresholds, points, limits")


def _list() -> int:
    for name in assignments.names():
        print(f"{name:20} {assignments.grader(name).title}")
    return 0


def _grade(args) -> int:
    assignments.grader(args.assignment)  # an unknown assignment is a usage error before anything else
    if not args.submission.exists():
        print(f"error: {args.submission} does not exist (give the path of your .py or .ipynb file)", file=sys.stderr)
        return USAGE_ERROR
    if (args.checks or args.unit) and (args.json or args.feedback):
        print("error: --json and --feedback write a whole grading; grade without --check/--unit for them",
              file=sys.stderr)
        return USAGE_ERROR
    grading = grade(args.assignment, args.submission, device=args.device, config=Config.load(args.config),
                    artifacts_dir=args.feedback / "artifacts" if args.feedback else None,
                    listener=TerminalProgress.for_stream(sys.stderr), checks=args.checks, unit=args.unit,
                    unavailable=replay.skipped_in_kit())
    if args.json == "-":
        print(gradescope.render(grading))
    else:
        if args.json:
            atomic_write(args.json, gradescope.render(grading))
        print(table(grading))
    if args.feedback:
        outputs.write_student(Record(args.submission.stem, "", student_status(grading), grading), args.feedback)
    return USAGE_ERROR if grading.internal_error else 0


def _toml(value) -> str:
    """A default as the instructor's TOML writes it."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    return "(measured)" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))


def _settings(args) -> int:
    from graders.contract import COMMON_DEFAULTS

    grader = assignments.grader(args.assignment)
    defaults = {**COMMON_DEFAULTS, **grader.defaults}
    rows = [(name, defaults[name]) for name in defaults if name != "thresholds"]
    rows += [(f"thresholds.{name}", value) for name, value in defaults["thresholds"].items()]
    print(f"{args.assignment}: {grader.title}\n\nsettings ([{args.assignment}] and [{args.assignment}.thresholds] in "
          "the instructor's TOML; a table {cpu = ..., cuda = ...} is per device):")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        device = " (per device)" if isinstance(value, dict) and set(value) <= {"cpu", "cuda"} else ""
        print(f"  {name:{width}}  {_toml(value):24} {grader.help.get(name, '')}{device}")
    print(f"\nchecks ([{args.assignment}.checks.NAME] sets points and timeout; seconds per device):")
    width = max(len(c.name) for c in grader.checks)
    for c in grader.checks:
        timeout = c.timeout if isinstance(c.timeout, (int, float)) else ", ".join(f"{k} {v:g}" for k, v in
                                                                                  c.timeout.items())
        note = f" (one row per seed of {c.family})" if c.per_seed else ""
        needs = f"; needs {', '.join(c.needs)}" if c.needs else ""
        print(f"  {c.name:{width}}  {c.points:g} points, {timeout} s, {c.kind}{note}{needs}")
    return 0


def _validate(args) -> int:
    names = args.assignments or assignments.names()
    config = Config.load(args.config)
    rows, ok = [], True
    for name in names:
        effective = config.effective(name)
        runs = [(assignments.solution_path(name), "full")] + [(p, "zero") for p in assignments.template_paths(name)]
        for path, expected in runs:
            grading = grade(effective, path, device=args.device)
            good = not grading.internal_error and (
                grading.score == grading.max_score if expected == "full" else grading.score == 0)
            ok &= good
            rows.append((name, path.relative_to(REPO_ROOT), grading, expected, good))
            if not good:
                print(table(grading), file=sys.stderr)
    print(f"{'assignment':20} {'submission':58} {'score':>13} {'expected':9} {'seconds':>8}  result")
    for name, path, grading, expected, good in rows:
        print(f"{name:20} {str(path):58} {grading.score:>6g} / {grading.max_score:<4g} {expected:9}"
              f"{grading.seconds:>8.1f}  {'ok' if good else 'WRONG'}")
    print("validate: all references earn full marks and all templates zero" if ok else "validate: FAILED")
    return 0 if ok else 1


def _templates(args) -> int:
    from graders import templates

    stale = []
    for name in args.assignments or assignments.names():
        if args.check:
            stale += [p for p, text in templates.render(name).items() if not p.exists() or p.read_text() != text]
        else:
            for path in templates.write(name):
                print(f"wrote {path.relative_to(REPO_ROOT)}")
    for path in stale:
        print(f"out of date: {path.relative_to(REPO_ROOT)} (run: python -m graders templates)")
    return 1 if stale else 0


def _host_check(assignment: str, args) -> tuple[bool, str]:
    """(go on, what every row records): the host check of `batch` (doctor.examine), printed when it fails."""
    from graders import doctor

    report = doctor.examine([assignment], Config.load(args.config), device=args.device, config_path=args.config)
    if report.fit:
        print("host check: fit for official grading (details: python -m graders doctor)", file=sys.stderr)
        return True, ""
    print(printable(report.render()), file=sys.stderr)
    if not args.allow_unsafe_host:
        print(f"error: this host is not fit for official grading (FAIL above): fix it, or grade anyway with "
              f"{doctor.ALLOW_FLAG} (every row records it)", file=sys.stderr)
        return False, ""
    print(f"grading anyway ({doctor.ALLOW_FLAG}): every row records it", file=sys.stderr)
    return True, report.reason()


def _batch(args) -> int:
    from graders import batch
    from graders.outputs import gradebook

    unsafe = ""
    if args.ray is None:  # on a cluster, the nodes grade: each row records the isolation its node had
        go_on, unsafe = _host_check(args.assignment, args)
        if not go_on:
            return USAGE_ERROR
    try:
        report = batch.run_batch(args.assignment, args.submissions, args.out, jobs=args.jobs, device=args.device,
                                 config_path=args.config, regrade=args.regrade, gpu_jobs=args.gpu_jobs,
                                 layout=args.layout, progress=sys.stderr, ray=args.ray, unsafe_host=unsafe)
    except batch.BatchError as exc:
        print(f"error: {printable(str(exc))}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted: the students graded so far are kept; run the same command again to resume",
              file=sys.stderr)
        return 130
    print(f"graded {len(report.graded)}, skipped {len(report.skipped)} already graded, in {report.seconds:.1f} s "
          f"({report.layout} layout)")
    print(printable((args.out / "summary.txt").read_text(encoding="utf-8", errors="replace")), end="")
    print(f"grades: {args.out / 'grades.csv'}; class page: {args.out / 'index.html'}")
    for note in report.report_notes:
        print(printable(note))
    for error in report.report_errors:
        print(f"error: {printable(error)}", file=sys.stderr)
    review = bool(report.not_graded)
    nbgrader = report.layout == "nbgrader"
    db = args.gradebook or (gradebook.default_gradebook(args.submissions) if nbgrader else None)
    if db:
        try:
            written = gradebook.record(db, args.assignment, report.records, results=args.out,
                                       submitted=args.submissions if nbgrader else None,
                                       course=gradebook.course_of(args.submissions) if nbgrader else None,
                                       review=set(report.refused))
        except gradebook.GradebookError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return USAGE_ERROR
        print(f"gradebook: wrote {len(written.recorded)} students into {db}")
        if written.problems:
            print(f"gradebook: {len(written.problems)} students NEED REVIEW (flagged in formgrader; why: the "
                  f"errors above): {printable(', '.join(written.problems))}")
        review |= bool(written.problems)
    if report.report_errors or any(r.status in ("crashed", "grader_error") for r in report.records):
        return USAGE_ERROR
    review |= any(r.grading.flags for r in report.records)
    return NEEDS_REVIEW if review else 0


def _report(args) -> int:
    from graders.batch.records import read_record
    from graders.outputs import class_report

    students = args.results / "students"
    folders = sorted(d for d in students.iterdir() if d.is_dir() and not d.is_symlink()) if students.is_dir() else []
    records = [r for d in folders if (r := read_record(d)) is not None]
    if not records:
        print(f"error: {args.results} holds no graded student (students/*/grading.json): give a batch's --out folder",
              file=sys.stderr)
        return USAGE_ERROR
    names = sorted({r.grading.assignment for r in records})
    if len(names) > 1:
        print(f"error: {args.results} holds gradings of several assignments ({', '.join(names)})", file=sys.stderr)
        return USAGE_ERROR
    checks = Config.load(args.config).effective(names[0]).checks
    written = class_report.write_all(checks, records, args.results, class_report.read_not_graded(args.results),
                                     compare_code=not args.no_similarity, templates=args.template,
                                     threshold=args.threshold)
    for note in written.notes:
        print(printable(note))
    for error in written.errors:
        print(f"error: {printable(error)}", file=sys.stderr)
    return USAGE_ERROR if written.errors else 0


def _release(args) -> int:
    from graders.release import kit

    try:
        out = kit.build(args.assignment, args.out)
    except kit.ReleaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    print(f"wrote the student kit of {args.assignment} into {out}; hand out the whole folder (see its README.md)")
    return 0


def _gradescope(args) -> int:
    from graders.release import gradescope as autograder

    effective = Config.load(args.config).effective(args.assignment)  # a bad config stops here
    timeout = args.timeout or autograder.GRADESCOPE_TIMEOUT_S
    try:
        out = autograder.build(args.assignment, args.out, config=args.config, torch_index=args.torch_index,
                               hidden=tuple(filter(None, args.hidden.split(","))),
                               stdout_visibility=args.stdout_visibility, timeout_s=timeout,
                               allow_unsafe_host=args.allow_unsafe_host)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    worst = effective.total_seconds("cpu") + autograder.STARTUP_MARGIN_S
    print(f"wrote {out} (self-test passed: inside the zip's layout the reference earns full marks and the template "
          f"zero): upload it as the assignment's autograder (Configure Autograder > Zip file upload).\n"
          f"Set its autograder timeout to {timeout / 60:.0f} minutes or more (the gradings stop "
          f"{autograder.STARTUP_MARGIN_S} s before); the slowest grading here takes up to {worst / 60:.0f} minutes.")
    return 0


def _doctor(args) -> int:
    from graders import doctor, timing

    names = args.assignments or assignments.names()
    for name in names:
        assignments.grader(name)  # an unknown assignment is a usage error
    config = Config.load(args.config)
    report = doctor.examine(names, config, device=args.device, config_path=args.config)
    if args.time:
        measured = timing.measure(names, config, devices=timing.devices(args.device))
        timing.judge(report, measured)
        if args.snippet:
            atomic_write(args.snippet, timing.snippet(measured))
    print(printable(report.render()))
    if args.time and args.snippet:
        print(f"wrote {args.snippet}: time limits for this host; copy its tables into your instructor config")
    return 0 if report.fit else 1


def _nbgrader_source(args) -> int:
    from graders.outputs import gradebook

    print(f"wrote {gradebook.write_source(args.assignment, args.course)}; now run, in {args.course}: "
          f"nbgrader generate_assignment {args.assignment}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if replay.in_kit():  # a laptop's confinement is expected there: the table says it in a plain line
        for name in ISOLATION_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
    try:
        command = {"list": _list, "grade": _grade, "settings": _settings, "validate": _validate, "templates": _templates,
                   "batch": _batch, "report": _report, "doctor": _doctor, "nbgrader-source": _nbgrader_source,
                   "release": _release, "gradescope": _gradescope}[args.command]
        return command(args) if args.command != "list" else command()
    except (ConfigError, DeviceError, IsolationUnavailable, GraderContractError, SelectionError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR


