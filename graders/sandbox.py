"""The grader's side of the boundary: starts, limits, calls and kills the worker.

The worker is a separate Python process in its own process group, with a scratch
working directory, a scrubbed environment, resource limits, stdin closed and its
stdout/stderr captured up to a cap. Calls go over two pipes in the plain-data
format of `graders.protocol`; a call that overruns its deadline kills the whole
process group, and the next call starts a fresh worker.
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from graders import protocol

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = "import sys; sys.path.insert(0, sys.argv[1]); from graders.worker import main; main(sys.argv[1:])"
PASSED_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "LD_LIBRARY_PATH")


@dataclass
class Limits:
    """Resource limits of one worker; every field can be set in the instructor config."""

    memory_mb: int | None = 6144  # address space; not applied on CUDA, which maps far more
    cpu_seconds: int | None = 3600
    file_size_mb: int = 64
    open_files: int = 256
    output_kb: int = 64  # captured stdout+stderr kept for feedback
    import_seconds: float = 60.0


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


def _describe_exit(returncode: int | None, limits: Limits) -> str:
    if returncode is None:
        return "the worker stopped answering"
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

    def run(self) -> None:
        while chunk := self.stream.read1(1 << 16):
            self.total += len(chunk)
            if len(self.kept) < self.cap:
                self.kept += chunk[: self.cap - len(self.kept)]


class Worker:
    """A proxy to the student's process. Use as a context manager."""

    def __init__(self, assignment: str, submission_code: str, *, device: str = "cpu",
                 threads: int = 1, limits: Limits | None = None):
        self.assignment = assignment
        self.code = submission_code
        self.device = device
        self.threads = threads
        self.limits = limits or Limits()
        self.deadline: float | None = None  # set by the runner for each check
        self.starts = 0
        self._proc: subprocess.Popen | None = None
        self._load_error: str | None = None
        self._output_parts: list[str] = []
        self._capture: _OutputCapture | None = None
        self._scratch: str | None = None

    # -- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _environment(self) -> dict[str, str]:
        threads = str(self.threads)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": self._scratch,
            "TMPDIR": self._scratch,
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONHASHSEED": "0",
            "MPLBACKEND": "Agg",
            "OMP_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
            "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "0") if self.device == "cuda" else "",
        }
        env.update({k: os.environ[k] for k in PASSED_ENV if k in os.environ})
        return env

    def _set_limits(self) -> None:  # runs in the child, before exec
        limits = self.limits
        mb = 1 << 20
        if limits.memory_mb and self.device != "cuda":
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb,) * 2)
        if limits.cpu_seconds:
            resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_mb * mb,) * 2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    def _start(self) -> None:
        if self._load_error is not None:
            raise SubmissionLoadError(self._load_error)
        self._scratch = tempfile.mkdtemp(prefix="grader-worker-")
        submission_file = os.path.join(self._scratch, "submission.py")
        Path(submission_file).write_text(self.code)
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        command = [sys.executable, "-I", "-c", BOOTSTRAP, str(REPO_ROOT), self.assignment,
                   submission_file, str(request_r), str(reply_w)]
        self._proc = subprocess.Popen(
            command, cwd=self._scratch, env=self._environment(), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, pass_fds=(request_r, reply_w),
            start_new_session=True, preexec_fn=self._set_limits,
        )
        os.close(request_r)
        os.close(reply_w)
        os.set_blocking(request_w, False)
        self._request_fd, self._reply_fd = request_w, reply_r
        self._capture = _OutputCapture(self._proc.stdout, self.limits.output_kb * 1024)
        self._capture.start()
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

    def _stop(self) -> None:
        """Kill the whole process group and collect what it printed."""
        if self._proc is None:
            return
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._proc.wait()
        for fd in (self._request_fd, self._reply_fd):
            os.close(fd)
        self._capture.join(timeout=5)
        self._proc.stdout.close()
        self._output_parts.append(self._capture_text())
        self._proc = self._capture = None
        shutil.rmtree(self._scratch, ignore_errors=True)

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
            return protocol.receive(self._reply_fd, deadline)
        except protocol.ReadTimeout:
            self._stop()
            raise WorkerTimeout(f"time limit reached while {during}") from None
        except (EOFError, OSError):
            self._proc.wait()
            reason = _describe_exit(self._proc.returncode, self.limits)
            self._stop()
            raise WorkerDied(f"{reason} while {during}") from None
        except protocol.ProtocolError as exc:
            self._stop()
            raise WorkerDied(f"the worker sent malformed data while {during}: {exc}") from None

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
            reason = _describe_exit(self._proc.returncode, self.limits)
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
