"""The grader's side of the boundary: starts, limits, calls and kills the worker.

The worker is a separate Python process in its own session, started under
bubblewrap when it works here (see `graders.isolation` and docs/security.md), with
a private scratch directory, a scrubbed environment, resource limits, stdin closed
and its stdout/stderr captured up to a cap. Calls go over two pipes in the
plain-data format of `graders.protocol`; a call that overruns its deadline kills
the worker and everything it started, and the next call starts a fresh worker.
"""

from __future__ import annotations

import ctypes
import logging
import os
import resource
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from graders import isolation, protocol

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = "import sys; sys.path.insert(0, sys.argv[1]); from graders.worker import main; main(sys.argv[1:])"
PASSED_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "LD_LIBRARY_PATH")
TOKEN_ENV = "GRADER_WORKER_TOKEN"  # marks the worker's processes, to find strays in the fallback mode
WATCH_SECONDS = 0.2


@dataclass
class Limits:
    """Resource limits of one worker; every field can be set in the instructor config ([limits])."""

    memory_mb: int | None = 6144  # per process address space (not on CUDA) and resident memory of all its processes
    cpu_seconds: int | None = 3600  # CPU time per process (RLIMIT_CPU)
    processes: int | None = 256  # processes + threads the worker may add (RLIMIT_NPROC, per uid)
    file_size_mb: int = 64  # largest file it may write (RLIMIT_FSIZE)
    disk_mb: int = 512  # size of each private tmpfs (scratch, /tmp, /dev/shm) under bubblewrap; scratch otherwise
    open_files: int = 256  # RLIMIT_NOFILE
    output_kb: int = 64  # captured stdout+stderr kept for feedback
    import_seconds: float = 60.0  # wall clock for importing the submission
    isolation: str = "auto"  # auto: bubblewrap when it works, else process limits; or force one of them


class WorkerError(Exception):
    """Something the student's process did; the check it happened in gets no points."""

    status = "error"


class StudentError(WorkerError):
    """The student's code raised an exception."""


class WorkerTimeout(WorkerError):
    status = "timeout"


class WorkerDied(WorkerError):
    """The process exited or was killed in the middle of a call, or broke the protocol."""


class SubmissionLoadError(WorkerError):
    """The submission could not be imported (syntax error, exception or hang at import)."""


class CallbackRefused(Exception):
    """Raised by a grader callback to refuse a request; the worker sees a RuntimeError."""


def _describe_exit(returncode: int | None, limits: Limits, bubblewrap: bool = False) -> str:
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


class _OutputCapture(threading.Thread):
    """Drains the worker's stdout/stderr, keeping the first `cap` bytes."""

    def __init__(self, stream, cap: int):
        super().__init__(daemon=True)
        self.stream, self.cap = stream, cap
        self.kept = bytearray()
        self.total = 0
        self.lock = threading.Lock()

    def settle(self, timeout: float = 0.5) -> None:
        """Wait until what the worker already wrote has been taken in.

        The worker flushes its output before each reply, so once the pipe reads empty
        (twice, a moment apart) the output of the call just answered is all here.
        """
        end = time.monotonic() + timeout
        empty_once = False
        while self.is_alive() and time.monotonic() < end:
            ready, _, _ = select.select([self.stream], [], [], 0)
            if not ready and empty_once:
                break
            empty_once = not ready
            time.sleep(0.002)
        with self.lock:
            pass

    def run(self) -> None:
        while chunk := self.stream.read1(1 << 16):
            with self.lock:
                self.total += len(chunk)
                if len(self.kept) < self.cap:
                    self.kept += chunk[: self.cap - len(self.kept)]


def _tasks_of_uid(uid: int) -> int:
    """Processes + threads of `uid` on this machine: RLIMIT_NPROC counts them all."""
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            if int(fields["Uid"].split()[0]) == uid:
                count += int(fields["Threads"])
        except (OSError, KeyError, ValueError):
            continue
    return count


def _children(pid: int) -> list[int]:
    found = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return found


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _resident_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / (1 << 20)
    except (OSError, IndexError, ValueError):
        return 0.0


def _directory_mb(path: str, max_entries: int = 20000) -> float:
    """Size of a directory tree; a tree of more than `max_entries` counts as infinite."""
    total, stack, seen = 0, [path], 0
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for e in entries:
            seen += 1
            if seen > max_entries:
                return float("inf")
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                else:
                    total += e.stat(follow_symlinks=False).st_blocks * 512
            except OSError:
                continue
    return total / (1 << 20)


class _Watchdog(threading.Thread):
    """Enforces what rlimits cannot, from the grader's side, while one worker runs.

    - resident memory of the whole process tree (RLIMIT_AS is per process, and CUDA
      needs it off: the driver maps far more address space than it uses);
    - in the fallback mode, the size of the scratch directory (bubblewrap's tmpfs has
      its own size);
    - it remembers every process of the tree it saw, so that `Worker._stop` can kill
      those that left the process group (setsid) when there is no pid namespace.
    """

    def __init__(self, worker: Worker, proc: subprocess.Popen):
        super().__init__(daemon=True)
        self.worker, self.proc = worker, proc
        self.stopped = threading.Event()
        self.seen: dict[int, str] = {}
        self.reason: str | None = None

    def tree(self) -> list[int]:
        pids, stack = [], [self.proc.pid]
        while stack and len(pids) < 100_000:
            pid = stack.pop()
            pids.append(pid)
            stack += _children(pid)
        return pids

    def run(self) -> None:
        limits, scratch_checked = self.worker.limits, 0.0
        while not self.stopped.wait(WATCH_SECONDS):
            pids = self.tree()
            for pid in pids:
                if pid not in self.seen and (start := _start_time(pid)):
                    self.seen[pid] = start
            reason = None
            if limits.memory_mb:
                resident = sum(_resident_mb(pid) for pid in pids)
                if resident > limits.memory_mb:
                    reason = f"the memory limit: {resident:.0f} MB resident, limit {limits.memory_mb} MB"
            if reason is None and self.worker.plan.mode == "process" and time.monotonic() > scratch_checked + 1:
                scratch_checked = time.monotonic()
                used = _directory_mb(self.worker._host_dir)
                if used > limits.disk_mb:
                    reason = f"the disk limit: its scratch directory holds over {limits.disk_mb} MB or too many files"
            if reason:
                self.reason = reason
                self.worker._kill_all()
                return


class Worker:
    """A proxy to the student's process. Use as a context manager."""

    def __init__(self, assignment: str, submission_code: str, *, device: str = "cpu",
                 threads: int = 1, limits: Limits | None = None, readable: list[str | Path] | None = None):
        """`readable`: paths (datasets) the worker may read besides Python and `graders/`."""
        self.assignment = assignment
        self.code = submission_code
        self.device = device
        self.threads = threads
        self.limits = limits or Limits()
        self.readable = [str(Path(p).absolute()) for p in readable or []]
        if missing := [p for p in self.readable if not os.path.exists(p)]:
            raise FileNotFoundError(f"paths the worker should read do not exist: {missing}")
        self.plan = isolation.plan(self.limits.isolation)
        self.deadline: float | None = None  # set by the runner for each check
        self.starts = 0
        self._proc: subprocess.Popen | None = None
        self._load_error: str | None = None
        self._output_parts: list[str] = []
        self._capture: _OutputCapture | None = None
        self._watchdog: _Watchdog | None = None
        self._host_dir: str | None = None
        self._token = ""
        self._uid: int | None = None  # this start's uid, when the grader runs as root

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
        }
        env.update({k: os.environ[k] for k in PASSED_ENV if k in os.environ})
        return env

    def _rlimits(self) -> list[tuple[int, tuple[int, int]]]:
        """Computed in the grader (the child of a fork may not allocate freely)."""
        limits, mb = self.limits, 1 << 20
        chosen = [(resource.RLIMIT_CORE, (0, 0)),
                  (resource.RLIMIT_FSIZE, (limits.file_size_mb * mb,) * 2),
                  (resource.RLIMIT_NOFILE, (limits.open_files,) * 2)]
        if limits.memory_mb and self.device != "cuda":
            chosen.append((resource.RLIMIT_AS, (limits.memory_mb * mb,) * 2))
        if limits.cpu_seconds:
            chosen.append((resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5)))
        if limits.processes:
            uid = self._uid if self._uid is not None else os.geteuid()
            # the limit counts every task of the uid: allow for those running already
            nproc = limits.processes + _tasks_of_uid(uid) + 16
            chosen.append((resource.RLIMIT_NPROC, (nproc, nproc)))
        return chosen

    def _preexec(self, rlimits, uid: int | None):
        libc = ctypes.CDLL(None, use_errno=True)

        def run() -> None:  # in the child, between fork and exec
            for which, values in rlimits:
                resource.setrlimit(which, values)
            if uid is not None:  # the fallback mode's uid drop (bubblewrap mode drops with setpriv)
                os.setgroups([])
                os.setgid(isolation.SANDBOX_GID)
                os.setuid(uid)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the grader (reset by setuid)

        return run

    def _command(self, request_r: int, reply_w: int) -> tuple[list[str], str, str]:
        """(command, cwd, scratch as the worker sees it)."""
        if self.plan.mode == "bubblewrap":
            submission = f"{isolation.SUBMISSION_DIR}/submission.py"
            python = [sys.executable, "-I", "-B", "-c", BOOTSTRAP, str(REPO_ROOT), self.assignment, submission,
                      str(request_r), str(reply_w)]
            command = isolation.bwrap_command(python, submission_dir=self._host_dir, readable=self.readable,
                                              device=self.device, scratch_mb=self.limits.disk_mb,
                                              uid=self._uid if self._uid is not None else isolation.SANDBOX_UID)
            return command, self._host_dir, isolation.SCRATCH
        submission = os.path.join(self._host_dir, "submission.py")
        return ([sys.executable, "-I", "-B", "-c", BOOTSTRAP, str(REPO_ROOT), self.assignment, submission,
                 str(request_r), str(reply_w)], self._host_dir, self._host_dir)

    def _start(self) -> None:
        if self._load_error is not None:
            raise SubmissionLoadError(self._load_error)
        self._host_dir = tempfile.mkdtemp(prefix="grader-worker-")
        Path(self._host_dir, "submission.py").write_text(self.code)
        os.chmod(Path(self._host_dir, "submission.py"), 0o644)
        self._uid = isolation.fresh_uid() if self.plan.uid is not None else None
        drop_uid = self._uid if self.plan.mode == "process" else None
        if self._uid is not None:  # the worker's uid owns its directory; nobody else can read it
            os.chown(self._host_dir, self._uid, isolation.SANDBOX_GID)
        self._token = secrets.token_hex(8)
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        command, cwd, scratch = self._command(request_r, reply_w)
        try:
            self._proc = subprocess.Popen(
                command, cwd=cwd, env=self._environment(scratch), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, pass_fds=(request_r, reply_w),
                start_new_session=True, preexec_fn=self._preexec(self._rlimits(), drop_uid),
            )
        finally:
            os.close(request_r)
            os.close(reply_w)
        os.set_blocking(request_w, False)
        self._request_fd, self._reply_fd = request_w, reply_r
        self._replies = protocol.Reader(reply_r)
        self._capture = _OutputCapture(self._proc.stdout, self.limits.output_kb * 1024)
        self._capture.start()
        self._watchdog = _Watchdog(self, self._proc)
        self._watchdog.start()
        self.starts += 1
        deadline = time.monotonic() + self.limits.import_seconds
        if self.deadline is not None:
            deadline = min(deadline, self.deadline)
        try:
            message = self._receive(deadline, during="importing your submission")
        except WorkerTimeout:
            self._load_error = (f"importing your submission took more than {self.limits.import_seconds:.0f} s; "
                                "put demo and training code under `if __name__ == \"__main__\":`")
            raise SubmissionLoadError(self._load_error) from None
        except WorkerDied as exc:
            self._load_error = f"the submission could not be imported: {exc}"
            raise SubmissionLoadError(self._load_error) from None
        if message.get("op") == "load_error":
            self._load_error = f"could not import your submission: {message.get('message', '')}"
            self._stop()
            raise SubmissionLoadError(self._load_error)
        if message.get("op") != "ready":
            self._stop()
            raise WorkerDied("the worker broke the protocol while starting")

    def _kill_all(self) -> None:
        """SIGKILL the worker's process group (bubblewrap's pid namespace dies with it)."""
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _kill_strays(self) -> None:
        """Without a pid namespace: kill what left the process group (seen by the watchdog, or
        carrying this worker's token in its environment)."""
        candidates = dict(self._watchdog.seen) if self._watchdog else {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and int(entry.name) not in candidates:
                try:
                    with open(f"/proc/{entry.name}/environ", "rb") as f:
                        if f"{TOKEN_ENV}={self._token}".encode() in f.read().split(b"\0"):
                            candidates[int(entry.name)] = _start_time(int(entry.name))
                except OSError:
                    continue
        for pid, start in candidates.items():
            if pid != self._proc.pid and start is not None and _start_time(pid) == start:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    def _stop(self) -> None:
        """Kill the worker and everything it started, and collect what it printed."""
        if self._proc is None:
            return
        self._kill_all()
        self._proc.wait()
        if self._watchdog is not None:
            self._watchdog.stopped.set()
            self._watchdog.join(timeout=5)
        if self.plan.mode == "process":
            self._kill_strays()
        for fd in (self._request_fd, self._reply_fd):
            os.close(fd)
        self._capture.join(timeout=5)
        self._proc.stdout.close()
        self._output_parts.append(self._capture_text())
        self._proc = self._capture = self._watchdog = None
        shutil.rmtree(self._host_dir, ignore_errors=True)

    def _exit_reason(self) -> str:
        if self._watchdog is not None and self._watchdog.reason:
            return f"the worker was killed for {self._watchdog.reason}"
        return _describe_exit(self._proc.returncode, self.limits, self.plan.mode == "bubblewrap")


    def close(self) -> None:
        if self._proc is not None:
            try:
                protocol.send(self._request_fd, {"op": "exit"}, time.monotonic() + 1)
            except (OSError, protocol.ReadTimeout):
                pass
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
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
        """Everything the submission printed so far (capped per worker start)."""
        return "".join(self._output_parts) + self._capture_text()

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
        except (protocol.ProtocolError, RecursionError, MemoryError) as exc:  # deep nesting, absurd sizes
            self._stop()
            raise WorkerDied(f"the worker sent malformed data while {during}: {type(exc).__name__}") from None

    def call(self, name: str, *args, timeout: float | None = None, callbacks: dict | None = None):
        """Call `name` in the worker (adapter first, then the submission) and return its value."""
        if self._proc is None:
            self._start()
        deadline = time.monotonic() + (timeout if timeout is not None else 24 * 3600)
        if self.deadline is not None:
            deadline = min(deadline, self.deadline)
        during = f"running {name}()"
        try:
            protocol.send(self._request_fd, {"op": "call", "name": name, "args": list(args)}, deadline)
        except protocol.ReadTimeout:
            self._stop()
            raise WorkerTimeout(f"time limit reached while sending the arguments of {name}()") from None
        except OSError:
            self._proc.wait()
            reason = self._exit_reason()
            self._stop()
            raise WorkerDied(f"{reason} before {during}") from None
        while True:
            message = self._receive(deadline, during)
            op = message.get("op")
            if op == "result":
                return message.get("value")
            if op == "error":
                raise StudentError(str(message.get("message", "")))
            if op == "callback" and callbacks and message.get("name") in callbacks:
                answer = self._run_callback(callbacks[message["name"]], message.get("args"))
                try:
                    protocol.send(self._request_fd, answer, deadline)
                except (protocol.ReadTimeout, OSError):
                    continue  # the next receive reports the timeout or the death
                continue
            self._stop()
            raise WorkerDied(f"the worker sent an unexpected message while {during}")

    @staticmethod
    def _run_callback(fn, args) -> dict:
        try:
            return {"op": "answer", "value": fn(*(args if isinstance(args, list) else []))}
        except CallbackRefused as exc:
            return {"op": "answer", "refused": str(exc)}
        except (TypeError, ValueError, KeyError, IndexError) as exc:  # malformed request from the worker
            return {"op": "answer", "refused": f"malformed request: {exc}"}
