"""The grader's side of the boundary: starts, limits, calls and kills the worker.

The worker is a separate Python process in its own session, started under
bubblewrap when it works here (`graders.sandbox.isolation`, docs/security.md), with a
private scratch directory, a scrubbed environment, resource limits, stdin closed and
its stdout/stderr captured up to a cap. It can import the worker package
(`graders_worker`) and its submission, nothing of the grader. Calls go over two pipes
in the plain-data format of `graders_worker.protocol`; a call that overruns its
deadline kills the worker and everything it started, and the next call starts a
fresh worker.
"""

from __future__ import annotations

import ctypes
import logging
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from graders.paths import WORKER_PACKAGE_DIR
from graders.sandbox import cgroups, fastpath, isolation, procfs, pythonenv, seccomp, teardown
from graders.sandbox.capture import OutputCapture
from graders.sandbox.errors import CallbackRefused, HostError, StudentError, SubmissionLoadError, WorkerDied, WorkerTimeout
from graders.sandbox.limits import Limits, rlimits
from graders.sandbox.watchdog import Watchdog, oom_reason
from graders_worker import protocol
from graders_worker.cells import MAX_FAILED_CELLS

log = logging.getLogger(__name__)

PASSED_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "LD_LIBRARY_PATH")
TOKEN_ENV = "GRADER_WORKER_TOKEN"  # marks the worker's processes, to find strays in the fallback mode
NO_DEADLINE_S = 24 * 3600
# Run by `Worker.can_read` in a sandbox like the worker's: prints each path it can open for reading.
PROBE_READABLE = """import sys
for path in sys.argv[1:]:
    try:
        open(path, "rb").close()
        print(path)
    except OSError:
        pass
"""


def describe_exit(returncode: int | None, limits: Limits, bubblewrap: bool = False) -> str:
    if returncode is None:
        return "the worker stopped answering"
    if bubblewrap and returncode > 128 and returncode - 128 in signal.valid_signals():
        returncode = 128 - returncode  # bubblewrap reports a signal as 128 + its number
    if returncode < 0:
        name = signal.Signals(-returncode).name
        hint = {
            "SIGKILL": f"killed: the memory limit ({limits.memory_mb} MB) or a signal",
            "SIGXCPU": f"the CPU-time limit ({limits.cpu_seconds} s)",
            "SIGXFSZ": f"the file-size limit ({limits.file_size_mb} MB)",
            "SIGSEGV": "a crash in native code (often out of memory)",
        }.get(name, "a signal")
        return f"the worker process died by {name} ({hint})"
    return f"the worker process exited with code {returncode} (os._exit or a crash in native code?)"


def _preexec(limits: list, uid: int | None, cgroup_procs: list[int], filter_syscalls=None):
    """What the child does between fork and exec; `filter_syscalls` installs the seccomp filter, last."""
    libc = ctypes.CDLL(None, use_errno=True)

    linux = sys.platform.startswith("linux")

    def run() -> None:  # in the child, between fork and exec
        for fd in cgroup_procs:  # enter the worker's cgroup: all it starts is inside from the start
            os.write(fd, b"0")
        for which, values in limits:
            try:
                resource.setrlimit(which, values)
            except (ValueError, OSError):
                if linux:
                    raise  # elsewhere (a student's Mac) some limits do not exist: check what can be checked
        if uid is not None:  # the fallback mode's uid drop (bubblewrap mode drops with setpriv)
            os.setgroups([])
            os.setgid(isolation.SANDBOX_GID)
            os.setuid(uid)
        if linux:
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the grader (reset by setuid)
        if filter_syscalls is not None:
            filter_syscalls()

    return run


_UIDS_GIVEN: set[int] = set()  # to workers of this process not yet stopped (their processes may not hold them yet)
_UIDS_LOCK = threading.Lock()


def _unused_uid() -> int:
    """A worker uid no process holds now and no running worker was given: a stop kills every process of its uid
    (teardown.reap_uid), which must never be another worker's. Given back with `_release_uid`."""
    with _UIDS_LOCK:
        while (uid := isolation.fresh_uid()) in _UIDS_GIVEN or procfs.running_as(uid):
            pass
        _UIDS_GIVEN.add(uid)
        return uid


def _release_uid(uid: int | None) -> None:
    with _UIDS_LOCK:
        _UIDS_GIVEN.discard(uid)


class Worker:
    """A proxy to the student's process. Use as a context manager."""

    probes_host = True  # a failed import asks a probe whether the host is at fault (graders/sandbox/probe.py)

    def __init__(self, assignment: str, submission_code: str, *, device: str = "cpu",
                 threads: int = 1, limits: Limits | None = None, readable: list[str | Path] | None = None,
                 warm: tuple[str, ...] = ()):
        """`readable`: paths (datasets) the worker may read besides Python and the worker package; `warm`: modules
        it imports after the submission, as part of its start (what its calls would import)."""
        self.assignment = assignment
        self.code = submission_code
        self.device = device
        self.threads = threads
        self.limits = limits or Limits()
        self.readable = [str(Path(p).absolute()) for p in readable or []]
        self.warm = tuple(warm)
        if missing := [p for p in self.readable if not os.path.exists(p)]:
            raise FileNotFoundError(f"paths the worker should read do not exist: {missing}")
        self.plan = isolation.plan(self.limits.isolation, self.limits.cgroup)
        self.starts = 0
        self._proc: subprocess.Popen | None = None
        self._ready = False  # the launched process has imported the submission
        self._import_deadline = 0.0
        self._load_error: str | None = None
        self.load_failures: list[str] = []  # the worker's report of the notebook cells that raised while loading
        self._host_error: str | None = None  # the host cannot run a worker (HostError): every start says so
        self._output_parts: list[str] = []
        self._capture: OutputCapture | None = None
        self._watchdog: Watchdog | None = None
        self._host_dir: str | None = None
        self._package_root: str | None = None
        self._token = ""
        self._uid: int | None = None  # this start's uid, when the grader runs as root
        self._cgroup: cgroups.Group | None = None  # this start's cgroup, where the plan has them
        self._fast: fastpath.FastChannel | None = None  # shared-memory callbacks (graders/sandbox/fastpath.py)
        self._left: list[str] = []  # what a stop could not prove gone (graders/sandbox/teardown.py)
        self._withheld: str | None = None  # why what it prints or raises is no longer shown (withhold_output)
        self._shown_chars = 0  # of its output, what was printed before withhold_output

    @property
    def failed_to_load(self) -> bool:
        """Whether this worker's import of the submission failed (SubmissionLoadError)."""
        return self._load_error is not None

    @property
    def host_error(self) -> str | None:
        """Why this host cannot run a worker, once a start found out (HostError); else None."""
        return self._host_error

    @property
    def isolation(self) -> str:
        """How this worker is confined, in words (shown with the result)."""
        return self.plan.describe()

    # -- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _environment(self, scratch: str) -> dict[str, str]:
        threads = str(self.threads)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": scratch,
            "TMPDIR": scratch,
            "USER": "student",
            "LOGNAME": "student",
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONHASHSEED": "0",
            "MPLBACKEND": "Agg",
            "OMP_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
            "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "0") if self.device == "cuda" else "",
            TOKEN_ENV: self._token,
            protocol.MAX_JSON_ENV: str(self.limits.message_kb << 10),
            protocol.WARM_ENV: ",".join(self.warm),
        }
        env.update({k: os.environ[k] for k in PASSED_ENV if k in os.environ})
        return env

    def _command(self, request_r: int, reply_w: int, seccomp_fd: int | None) -> tuple[list[str], str]:
        """(command, scratch as the worker sees it). The interpreter and its import path are the grader's own
        (graders/sandbox/pythonenv.py), in both modes."""
        env = pythonenv.current()
        interpreter = [env.executable, "-I", "-S", "-B", "-c", pythonenv.bootstrap(env)]
        if self.plan.mode == "bubblewrap":
            python = [*interpreter, isolation.PACKAGE_ROOT, self.assignment,
                      f"{isolation.SUBMISSION_DIR}/submission.py", str(request_r), str(reply_w)]
            return self._bwrap(python, self._host_dir, self._uid, seccomp_fd), isolation.SCRATCH
        # Without bubblewrap: a folder that holds the worker package and nothing else is its import root.
        self._package_root = tempfile.mkdtemp(prefix="grader-worker-package-")
        os.chmod(self._package_root, 0o755)
        os.symlink(WORKER_PACKAGE_DIR, os.path.join(self._package_root, WORKER_PACKAGE_DIR.name))
        submission = os.path.join(self._host_dir, "submission.py")
        return ([*interpreter, self._package_root, self.assignment, submission, str(request_r), str(reply_w)],
                self._host_dir)

    def _bwrap(self, python: list[str], submission_dir: str, uid: int | None, seccomp_fd: int | None) -> list[str]:
        command = isolation.bwrap_command(python, submission_dir=submission_dir, readable=self.readable,
                                          device=self.device, scratch_mb=self.limits.disk_mb,
                                          uid=uid if uid is not None else isolation.SANDBOX_UID)
        if seccomp_fd is None:
            return command
        return [command[0], "--seccomp", str(seccomp_fd), *command[1:]]

    def start(self) -> None:
        """Start the worker if it is not running: import the submission, within `import_seconds`.

        The runner calls it before each check, so a check's time never pays for the import.
        """
        self._ensure_started(None)

    def _ensure_started(self, deadline: float | None) -> None:
        """Start the worker (by `deadline`) if it is not running; wait for the import of one launched."""
        if self._proc is None:
            self._start(deadline)
        elif not self._ready:
            self._await_ready()

    def launch(self) -> None:
        """Start the worker's process and return at once: `start` (or a call) then waits for its import.

        A worker started ahead of its check (graders/runner.py). The thread that launches it must outlive
        it: the worker dies with that thread (PR_SET_PDEATHSIG, bubblewrap's --die-with-parent).
        """
        if self._proc is None:
            self._launch(None)

    def _start(self, deadline: float | None) -> None:
        self._launch(deadline)
        self._await_ready()

    def _launch(self, deadline: float | None) -> None:
        if self._host_error is not None:
            raise HostError(self._host_error)
        if self._load_error is not None:
            raise SubmissionLoadError(self._load_error)
        self._host_dir = tempfile.mkdtemp(prefix="grader-worker-")
        Path(self._host_dir, "submission.py").write_text(self.code)
        os.chmod(Path(self._host_dir, "submission.py"), 0o644)
        self._uid = _unused_uid() if self.plan.uid is not None else None
        drop_uid = self._uid if self.plan.mode == "process" else None
        if self._uid is not None:  # the worker's uid owns its directory; nobody else can read it
            os.chown(self._host_dir, self._uid, isolation.SANDBOX_GID)
        self._token = secrets.token_hex(8)
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        seccomp_fd = seccomp.memfd() if self.plan.mode == "bubblewrap" else None
        command, scratch = self._command(request_r, reply_w, seccomp_fd)
        uid = self._uid if self._uid is not None else os.geteuid()
        chosen = rlimits(self.limits, cuda=self.device == "cuda", tasks_already=procfs.tasks_of_uid(uid))
        self._cgroup = self._make_cgroup()
        cgroup_procs = self._cgroup.open_procs() if self._cgroup else []
        self._fast = fastpath.FastChannel.create()
        fast_fds, fast_env = (self._fast.fds(), self._fast.environment()) if self._fast else ((), {})
        extra_fds = (seccomp_fd,) if seccomp_fd is not None else ()
        installer = seccomp.installer() if self.plan.mode == "process" else None
        try:
            self._proc = subprocess.Popen(
                command, cwd=self._host_dir, env={**self._environment(scratch), **fast_env},
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                pass_fds=(request_r, reply_w, *fast_fds, *extra_fds), start_new_session=True,
                preexec_fn=_preexec(chosen, drop_uid, cgroup_procs, installer),
            )
        except BaseException as exc:
            _release_uid(self._uid)
            if self._cgroup:
                self._cgroup.remove()
            if self._fast is not None:
                self._fast.close()
                self._fast = None
            if isinstance(exc, OSError):  # no process at all: the host (fork refused, sandbox missing)
                self._host_error = f"a worker process could not be started: {exc}"
                raise HostError(self._host_error) from exc
            raise
        finally:
            for fd in (request_r, reply_w, *cgroup_procs, *extra_fds):
                os.close(fd)
        os.set_blocking(request_w, False)
        self._request_fd, self._reply_fd = request_w, reply_r
        self._replies = protocol.Reader(reply_r, max_json=self.limits.message_kb << 10)
        self._capture = OutputCapture(self._proc.stdout, self.limits.output_kb * 1024)
        self._capture.start()
        scratch_watched = self._host_dir if self.plan.mode == "process" else None
        self._watchdog = Watchdog(self._proc.pid, self.limits, self._kill_all, scratch_watched, self._cgroup)
        self._watchdog.start()
        self.starts += 1
        self._import_deadline = time.monotonic() + self.limits.import_seconds
        if deadline is not None:
            self._import_deadline = min(self._import_deadline, deadline)

    def _await_ready(self) -> None:
        """Wait for the launched worker's import, until the import deadline."""
        try:
            message = self._receive(self._import_deadline, during="importing your submission")
        except WorkerTimeout:
            self._load_error = (f"importing your submission took more than {self.limits.import_seconds:.0f} s; "
                                "put demo and training code under `if __name__ == \"__main__\":`")
            raise self._load_failure() from None
        except WorkerDied as exc:
            self._load_error = f"the submission could not be imported: {exc}"
            raise self._load_failure() from None
        if message.get("op") == "load_error":
            self._load_error = f"could not import your submission: {self._student_text(message.get('message'))}"
            self._stop()
            raise self._load_failure()
        if message.get("op") != "ready":
            self._stop()
            raise WorkerDied("the worker broke the protocol while starting")
        failed = message.get("cells_failed")  # untrusted text, for messages only (graders/submission.py)
        self.load_failures = [self._shortened(m) for m in failed[:MAX_FAILED_CELLS]] if isinstance(failed, list) else []
        self._ready = True

    def _load_failure(self) -> SubmissionLoadError | HostError:
        """The student's SubmissionLoadError; or HostError, when a worker without student code fails here too."""
        if self.probes_host:
            from graders.sandbox import probe  # (it imports this module)

            modules = tuple(m for m in probe.modules_imported(self.code) if probe.environment_has(m))
            cause = probe.failure(self.assignment, device=self.device, limits=self.limits,
                                  readable=tuple(self.readable), modules=modules)
            if cause:
                self._host_error, self._load_error = cause, None
                return HostError(cause)
        return SubmissionLoadError(self._load_error)

    def _make_cgroup(self) -> cgroups.Group | None:
        if self.plan.cgroups is None:
            return None
        return cgroups.Group(self.plan.cgroups, memory_mb=self.limits.memory_mb, cpus=self.threads,
                             tasks=self.limits.processes)

    def _kill_all(self) -> None:
        """SIGKILL the worker's process group (bubblewrap's pid namespace dies with it) and its cgroup."""
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self._cgroup is not None:
            self._cgroup.kill()

    def _kill_strays(self) -> None:
        """Without a pid namespace: kill what left the process group (seen by the watchdog, or
        carrying this worker's token in its environment)."""
        candidates = dict(self._watchdog.seen) if self._watchdog else {}
        for entry in os.scandir("/proc") if os.path.isdir("/proc") else ():  # no /proc: not Linux
            if entry.name.isdigit() and int(entry.name) not in candidates:
                if procfs.has_environment_entry(int(entry.name), f"{TOKEN_ENV}={self._token}"):
                    candidates[int(entry.name)] = procfs.start_time(int(entry.name))
        for pid, start in candidates.items():
            if pid != self._proc.pid and start is not None and procfs.start_time(pid) == start:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    def _sandbox_init(self) -> tuple[int, str | None] | None:
        """Bubblewrap's first process in the sandbox (its pid namespace's init), while bubblewrap runs."""
        if self.plan.mode != "bubblewrap" or self._proc.poll() is not None:
            return None  # bubblewrap returns only once its sandbox is empty
        kids = procfs.children(self._proc.pid)
        return (kids[0], procfs.start_time(kids[0])) if kids else None

    def _stop(self) -> None:
        """Kill the worker and everything it started, see it all gone (teardown.py), and collect what it printed.

        Never waits for a process that escaped: each wait is bounded, and what is left is recorded (`residue`).
        """
        if self._proc is None:
            return
        init = self._sandbox_init()
        self._kill_all()
        self._proc.wait()
        if self._watchdog is not None:
            self._watchdog.stopped.set()
            self._watchdog.join(timeout=5)
        left = [teardown.wait_exited(*init)] if init else []
        if self.plan.mode == "process":
            self._kill_strays()
        if self._uid is not None:
            left.append(teardown.reap_uid(self._uid))
        if self._cgroup is not None:
            left.append(self._cgroup.remove())
            self._cgroup = None
        if self._uid is not None and self.plan.mode == "process":
            left.append(teardown.remove_left_by(self._uid, isolation.SANDBOX_GID))
        _release_uid(self._uid)  # (a process of it that escaped the reaping still keeps it from the next)
        for message in filter(None, left):
            log.warning("worker teardown: %s", message)
            self._left.append(message)
        for fd in (self._request_fd, self._reply_fd):
            os.close(fd)
        if self._fast is not None:
            self._fast.close()
            self._fast = None
        self._capture.stop()
        self._proc.stdout.close()
        self._output_parts.append(self._capture_text())
        self._proc = self._capture = self._watchdog = None
        self._ready = False
        shutil.rmtree(self._host_dir, ignore_errors=True)
        if self._package_root is not None:
            shutil.rmtree(self._package_root, ignore_errors=True)
            self._package_root = None

    def _exit_reason(self) -> str:
        if self._watchdog is not None and self._watchdog.reason:
            return f"the worker was killed for {self._watchdog.reason}"
        if self._cgroup is not None and self._cgroup.oom_killed():
            return f"the worker was killed for {oom_reason(self.limits)}"
        return describe_exit(self._proc.returncode, self.limits, self.plan.mode == "bubblewrap")

    def close(self) -> None:
        """Stop the worker at once: an interpreter's orderly exit (torch's takes about a second) decides nothing,
        and no student code runs at exit. What a call printed is in the output (the worker flushes Python's and
        C's buffers before each reply); what a thread of the student's prints after the last reply may not be."""
        self._stop()

    # -- output --------------------------------------------------------------------
    def _capture_text(self) -> str:
        if self._capture is None:
            return ""
        self._capture.settle()
        text = self._capture.kept.decode("utf-8", "replace")
        dropped = self._capture.total - len(self._capture.kept)
        if dropped > 0:
            text += f"\n[... {dropped} more bytes of output dropped]\n"
        return text

    @property
    def output(self) -> str:
        """Everything the submission printed so far (capped per worker start); after `withhold_output`,
        what it printed before, and one fixed line if it printed more."""
        text = "".join(self._output_parts) + self._capture_text()
        if self._withheld is not None and len(text) > self._shown_chars:
            return text[: self._shown_chars] + f"\n[the rest of what your code printed is not shown: {self._withheld}]\n"
        return text

    def withhold_output(self, why: str) -> None:
        """From now on nothing this worker prints or raises reaches a result but one fixed line saying `why`.

        For a worker about to be sent data the student must not see (the VAE's held-out images): its
        printed output is cut here, and an exception's message, or a failed import's, becomes a fixed text.
        """
        self._shown_chars = len(self.output)
        self._withheld = why

    def _student_text(self, message) -> str:
        """A message the student's code wrote (an exception), as a result may show it."""
        if self._withheld is not None:
            return f"your code raised an exception (its message is not shown: {self._withheld})"
        return self._shortened(message)

    # -- what a stopped worker leaves ------------------------------------------------
    def residue(self) -> str:
        """'' when this worker, stopped, left nothing a later worker could reach (no process, file, lock,
        key, IPC object or socket: graders/sandbox/teardown.py); else why that is not certain here."""
        reasons = [teardown.guarantee(self.plan.mode, self.plan.uid is not None), *self._left]
        return "; ".join(dict.fromkeys(r for r in reasons if r))

    def can_read(self, paths: list[str | Path]) -> list[str]:
        """Those of `paths` a process confined like this worker can open: asked of such a process (the
        same mode, binds, uid rule and seccomp filter), running the grader's code, not the submission's."""
        paths = [str(Path(p).absolute()) for p in paths]
        probe = [sys.executable, "-I", "-S", "-c", PROBE_READABLE, *paths]
        host_dir = tempfile.mkdtemp(prefix="grader-probe-")
        uid = _unused_uid() if self.plan.uid is not None else None
        seccomp_fd = seccomp.memfd() if self.plan.mode == "bubblewrap" else None
        try:
            if self.plan.mode == "bubblewrap":
                command, preexec = self._bwrap(probe, host_dir, uid, seccomp_fd), None
            else:
                command, preexec = probe, _preexec([], uid, [], seccomp.installer())
            done = subprocess.run(command, cwd="/", env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
                                  pass_fds=(seccomp_fd,) if seccomp_fd is not None else (), preexec_fn=preexec)
        finally:
            _release_uid(uid)
            if seccomp_fd is not None:
                os.close(seccomp_fd)
            shutil.rmtree(host_dir, ignore_errors=True)
        if done.returncode != 0:
            raise RuntimeError(f"the sandbox probe failed: {done.stderr.decode(errors='replace')[-500:]}")
        opened = set(done.stdout.decode().splitlines())
        return [p for p in paths if p in opened]

    # -- calls ---------------------------------------------------------------------
    def _receive(self, deadline: float, during: str) -> dict:
        try:
            return self._replies.receive(deadline)
        except protocol.ReadTimeout:
            self._stop()
            raise WorkerTimeout(f"time limit reached while {during}") from None
        except (EOFError, OSError):
            self._proc.wait()
            reason = self._exit_reason()
            self._stop()
            raise WorkerDied(f"{reason} while {during}") from None
        except protocol.MessageTooLarge as exc:
            self._stop()
            raise WorkerDied(f"the worker sent a message over the size limit while {during}: {exc}") from None
        except (protocol.ProtocolError, RecursionError, MemoryError) as exc:  # forged arrays, deep nesting
            self._stop()
            raise WorkerDied(f"the worker sent malformed data while {during}: {type(exc).__name__} {exc}") from None

    def call(self, name: str, *args, timeout: float | None = None, deadline: float | None = None,
             callbacks: dict | None = None, clock=None):
        """Call `name` in the worker (adapter first, then the submission) and return its value.

        The call must end within `timeout` seconds and before `deadline` (a
        `time.monotonic()` value, e.g. the end of the current check), and before
        `clock.deadline()` when a clock is given (graders/sandbox/student_clock.py).
        Callbacks are served over the pipes and, for small arrays, the shared-memory
        fast path (graders/sandbox/fastpath.py).
        """
        end = time.monotonic() + (timeout if timeout is not None else NO_DEADLINE_S)
        if deadline is not None:
            end = min(end, deadline)
        self._ensure_started(end)
        if clock is not None:
            clock.watch(self._proc.pid)
        during = f"running {name}()"
        try:
            protocol.send(self._request_fd, {"op": "call", "name": name, "args": list(args)}, end)
        except protocol.ReadTimeout:
            self._stop()
            raise WorkerTimeout(f"time limit reached while sending the arguments of {name}()") from None
        except OSError:
            self._proc.wait()
            reason = self._exit_reason()
            self._stop()
            raise WorkerDied(f"{reason} before {during}") from None
        while True:
            until = end
            if self._fast is not None or clock is not None:  # serve the fast path until a pipe message is ready
                until = fastpath.wait_for_message(self._fast, self._replies, callbacks, end, clock)
            message = self._receive(until, during)
            op = message.get("op")
            if op == "result":
                return message.get("value")
            if op == "error":
                raise StudentError(self._student_text(message.get("message")))
            if op == "callback" and callbacks and message.get("name") in callbacks:
                answer = self._run_callback(callbacks[message["name"]], message.get("args"))
                try:
                    protocol.send(self._request_fd, answer, end)
                except (protocol.ReadTimeout, OSError):
                    continue  # the next receive reports the timeout or the death
                continue
            self._stop()
            raise WorkerDied(f"the worker sent an unexpected message while {during}")

    def _shortened(self, message) -> str:
        """A message of the worker, cut to the output cap (`output_kb`) on receipt."""
        text = message if isinstance(message, str) else "" if message is None else str(message)
        cap = self.limits.output_kb << 10
        return text if len(text) <= cap else text[:cap] + f"\n[... {len(text) - cap} more characters dropped]"

    @staticmethod
    def _run_callback(fn, args) -> dict:
        try:
            return {"op": "answer", "value": fn(*(args if isinstance(args, list) else []))}
        except CallbackRefused as exc:
            return {"op": "answer", "refused": str(exc)}
        except (TypeError, ValueError, KeyError, IndexError) as exc:  # malformed request from the worker
            return {"op": "answer", "refused": f"malformed request: {exc}"}
