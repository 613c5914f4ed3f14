"""How the worker process is confined: bubblewrap when it works here, else process limits.

`plan()` decides once per process which mode a worker gets (an instructor can force
either with `[limits] isolation = "bubblewrap" | "process"`), and `bwrap_command()`
builds the bubblewrap command line. What each mode enforces, and what it cannot, is
written down in docs/security.md; keep the two in step.

Under bubblewrap the worker sees: the system (/usr and a few files of /etc) and the
Python installation read-only, the worker package `graders_worker` read-only (and no
other part of the repository: the grader package is hidden even where an installed
copy lies inside the Python installation), the paths its grader allows (datasets)
read-only, its own submission read-only, a fresh
/proc of a new pid namespace, a minimal /dev, and size-capped private tmpfs scratch
directories. It has no network (not even loopback), no view of other processes,
and it dies with the grader. When the grader runs as root, bubblewrap runs
privileged (no user namespace) and the worker drops to an unprivileged uid with
`setpriv` before Python starts, so that RLIMIT_NPROC applies (the kernel exempts
uid 0 from it) and no capability is left.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import logging
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from graders.paths import GRADERS_DIR, WORKER_PACKAGE_DIR
from graders.sandbox import cgroups, pythonenv

log = logging.getLogger(__name__)

MODES = ("auto", "bubblewrap", "process")
CGROUP_MODES = ("auto", "required", "off")
SANDBOX_UID = SANDBOX_GID = 65534  # nobody/nogroup on Debian
# Each worker started by root gets a uid of its own, drawn from this range (no passwd
# entry needed): workers cannot signal each other, and RLIMIT_NPROC, which counts all
# tasks of a uid, counts only the worker's own.
WORKER_UIDS = range(200_000, 300_000)
SCRATCH = "/scratch"  # the worker's cwd, HOME and TMPDIR inside the sandbox
SUBMISSION_DIR = "/submission"
PACKAGE_ROOT = "/grader"  # holds the worker package, the worker's first import path
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64")
# Folders under /usr the worker must not see: Debian's datasets hold the images the VAE grader holds out.
HIDDEN_UNDER_USR = ("/usr/share/datasets",)
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "passwd", "group",
             "nsswitch.conf", "mime.types", "fonts")  # fonts: fontconfig (matplotlib runs fc-list) reads its config there


class IsolationUnavailable(RuntimeError):
    """Bubblewrap was required by the configuration but does not work on this machine."""


@dataclass(frozen=True)
class Plan:
    """The confinement every worker of this process gets."""

    mode: str  # "bubblewrap" or "process"
    uid: int | None  # SANDBOX_UID: each worker drops to a uid of its own (fresh_uid); None: the grader's own
    note: str = ""  # why, when it is weaker than it could be
    cgroups: cgroups.Support | None = None  # a cgroup per worker, where the grader can make one
    no_cgroup: str = ""  # why there is none

    def describe(self) -> str:
        user = "an unprivileged uid per worker" if self.uid is not None else f"the grader's uid {os.geteuid()}"
        if self.mode == "bubblewrap":
            text = f"bubblewrap (no network, read-only system, private scratch, new pid namespace, {user})"
        else:
            text = f"process limits only (no bubblewrap: no filesystem or network isolation; {user})"
        if self.cgroups is not None:
            text += f"; {self.cgroups.describe()}"
        else:
            text += f"; no cgroup ({self.no_cgroup}): shared memory and the CPU of its children are not bounded"
        return f"{text}; {self.note}" if self.note else text


def fresh_uid() -> int:
    return WORKER_UIDS[secrets.randbelow(len(WORKER_UIDS))]


def python_paths() -> list[str]:
    """What the worker's interpreter needs to read: the installation, the venv, site-packages and what .pth files add
    (graders/sandbox/pythonenv.py), at their real paths; /usr is mounted anyway."""
    bound, _ = pythonenv.mounts(pythonenv.current())
    return [p for p in bound if not any(p == d or p.startswith(d + "/") for d in SYSTEM_DIRS)]


def traversable_by_others(path: str) -> bool:
    """Whether a uid with no special rights can reach and read `path` (for the fallback's uid drop)."""
    return _blocking(path) is None


def _blocking(path: str) -> str | None:
    """The first folder (or the file) on the way to `path` that other users cannot pass (or read): along the path as
    given (the folders holding its links) and along its real path; None when there is none."""
    for p in dict.fromkeys((Path(os.path.abspath(path)), Path(path).resolve())):
        for d in [*reversed(p.parents), p]:
            try:
                mode = d.stat().st_mode
            except OSError:
                return str(d)
            if d.is_dir() and not mode & 0o001:
                return str(d)
    return None if Path(path).resolve().stat().st_mode & 0o004 else str(Path(path).resolve())


@functools.cache
def _bwrap_works(bwrap: str, as_root: bool) -> str:
    """'' when a minimal sandbox starts here, else why not (user namespaces off, seccomp, ...)."""
    command = [bwrap, *_namespace_args(as_root), "--ro-bind", "/usr", "/usr", *_system_links(),
               "--proc", "/proc", "--dev", "/dev"]
    command += _drop_uid_args() if as_root else []
    command += ["/usr/bin/true"] if os.path.exists("/usr/bin/true") else ["/bin/true"]
    try:
        done = subprocess.run(command, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return "" if done.returncode == 0 else done.stderr.decode(errors="replace").strip() or f"exit {done.returncode}"


def plan(requested: str = "auto", cgroup: str = "auto") -> Plan:
    """Decide the mode: `auto` takes bubblewrap when it works, else process limits with a warning;
    and a cgroup per worker (`cgroup`: auto, required or off)."""
    if requested not in MODES:
        raise ValueError(f"[limits] isolation must be one of {MODES}, not {requested!r}")
    if cgroup not in CGROUP_MODES:
        raise ValueError(f"[limits] cgroup must be one of {CGROUP_MODES}, not {cgroup!r}")
    return dataclasses.replace(_plan(requested), **_cgroups(cgroup))


def _cgroups(requested: str) -> dict:
    found = cgroups.support() if requested != "off" else "turned off by [limits] cgroup = 'off'"
    if isinstance(found, cgroups.Support):
        return {"cgroups": found}
    if requested == "required":
        raise IsolationUnavailable(f"cgroup = 'required' was configured, but: {found}")
    if requested == "auto":
        _warn_once(f"grading without a cgroup per worker ({found}): shared memory and CPU are bounded per process only")
    return {"no_cgroup": found}


def _plan(requested: str) -> Plan:
    as_root = os.geteuid() == 0
    bwrap = shutil.which("bwrap")
    why_not = "bubblewrap (bwrap) is not installed" if bwrap is None else _bwrap_works(bwrap, as_root)
    if requested == "bubblewrap" and why_not:
        raise IsolationUnavailable(f"isolation = 'bubblewrap' was configured, but: {why_not}")
    if requested != "process" and not why_not:
        return Plan("bubblewrap", SANDBOX_UID if as_root else None)
    if requested == "auto":
        _warn_once(f"grading without bubblewrap ({why_not}): the worker is confined by process limits only")
    if not as_root:
        return Plan("process", None)
    env = pythonenv.current()
    needed = [env.executable, *env.folders(), str(WORKER_PACKAGE_DIR)]
    blocked = [(p, where) for p in needed if (where := _blocking(p)) is not None]
    if blocked:
        path, where = blocked[0]
        note = f"cannot drop root: {where} is not readable by other users" + (f" (on the way to {path})"
                                                                             if where != path else "")
        _warn_once(f"the worker runs as root: {note}")
        return Plan("process", None, note)
    return Plan("process", SANDBOX_UID)


@functools.cache
def _warn_once(message: str) -> None:
    log.warning(message)


def _namespace_args(as_root: bool) -> list[str]:
    common = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
              "--die-with-parent", "--new-session"]
    # As root, bubblewrap runs privileged without a user namespace: a user namespace
    # would map the sandbox to kernel uid 0, which RLIMIT_NPROC does not count.
    return common if as_root else ["--unshare-user", *common]


def _drop_uid_args(uid: int = SANDBOX_UID) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={SANDBOX_GID}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]


def _system_links() -> list[str]:
    args = []
    for d in SYSTEM_DIRS[1:]:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    return args


def _gpu_args() -> list[str]:
    args = []
    for dev in sorted(glob.glob("/dev/nvidia*")) + sorted(glob.glob("/dev/dri")):
        args += ["--dev-bind", dev, dev]
    return args + ["--ro-bind-try", "/sys", "/sys"]


def _hidden_under(mounted: list[str]) -> list[str]:
    """The grader package (and its solutions folder), where they lie inside a folder the worker sees."""
    private = [str(GRADERS_DIR), str(GRADERS_DIR.parent / "solutions")]
    return [p for p in private if os.path.isdir(p) and any(p == m or p.startswith(m + "/") for m in mounted)]


def _parents(target: str, made: set[str]) -> list[str]:
    """Make the parent directories of `target` searchable (bubblewrap's own are 0700)."""
    args = []
    for parent in reversed(Path(target).parents):
        p = str(parent)
        if p != "/" and p not in made:
            made.add(p)
            args += ["--perms", "0755", "--dir", p]
    return args


def _bind(source: str, target: str, made: set[str], flag: str = "--ro-bind") -> list[str]:
    """Bind `source` at `target`, first making its parent directories searchable."""
    args = _parents(target, made)
    made.add(target)
    return args + [flag, source, target]


def bwrap_command(python_command: list[str], *, submission_dir: str, readable: list[str], device: str,
                  scratch_mb: int, uid: int = SANDBOX_UID, as_root: bool | None = None) -> list[str]:
    """The full command line: bubblewrap, then (as root) setpriv, then `python_command`.

    `python_command` must refer to the submission as SUBMISSION_DIR/... and to
    scratch as SCRATCH. Mount order matters: later mounts cover earlier ones.
    """
    as_root = os.geteuid() == 0 if as_root is None else as_root
    size = str(max(1, scratch_mb) << 20)
    args = [shutil.which("bwrap") or "bwrap", *_namespace_args(as_root),
            "--ro-bind", "/usr", "/usr", *_system_links()]
    # first the private, writable tmpfs mounts, then the read-only binds (which may lie under /tmp)
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += [arg for hidden in HIDDEN_UNDER_USR if os.path.isdir(hidden) for arg in ("--tmpfs", hidden)]
    for tmp in ("/tmp", "/dev/shm", SCRATCH):
        args += ["--perms", "1777", "--size", size, "--tmpfs", tmp]
    if device == "cuda":
        args += _gpu_args()
    made = {"/usr", "/tmp", "/dev", "/dev/shm", "/proc", SCRATCH}
    for name in ETC_FILES:
        args += _bind(f"/etc/{name}", f"/etc/{name}", made, "--ro-bind-try")
    python = python_paths()
    links = pythonenv.mounts(pythonenv.current(), tuple(f"/etc/{name}" for name in ETC_FILES))[1]
    for path in python:
        args += _bind(path, path, made)
    for where, target in links:  # a linked venv or project folder resolves inside as it does outside
        args += _parents(where, made) + ["--symlink", target, where]
    args += [arg for hidden in _hidden_under(python) for arg in ("--tmpfs", hidden)]
    args += _bind(str(WORKER_PACKAGE_DIR), f"{PACKAGE_ROOT}/{WORKER_PACKAGE_DIR.name}", made)
    for path in readable:
        real = os.path.realpath(path)
        args += _bind(real, real, made)
        if os.path.abspath(path) != real:
            args += _bind(real, os.path.abspath(path), made)
    args += ["--ro-bind", submission_dir, SUBMISSION_DIR, "--chdir", SCRATCH]
    if as_root:
        args += ["--", *_drop_uid_args(uid)]
    else:
        args += ["--"]
    return args + python_command
