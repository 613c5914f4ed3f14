"""What can go wrong in the worker, as the checks see it; a callback's refusal; and a failure of the host."""

from __future__ import annotations


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


class HostError(RuntimeError):
    """The grading host failed, not the student: the sandbox cannot start, or the worker cannot import what the
    grader's environment has (graders/sandbox/probe.py tells the two apart). The row is a grader error with this
    cause."""
