"""The worker process the student's code runs in, and its confinement.

- `worker.Worker`: the grader's proxy to one worker (start, call, kill);
- `isolation`: bubblewrap or process limits, and the bubblewrap command line;
- `limits.Limits`: memory, CPU, processes, files, output, import time (instructor config `[limits]`);
- `watchdog`, `procfs`, `capture`: what the grader watches from its side while the worker runs;
- `errors`: what can go wrong in the worker, as a check sees it, and `HostError`: what is the host's fault;
- `probe`: a worker with no student code, which tells the two apart; `pythonenv`: the environment it imports.
"""

from graders.sandbox.errors import (
    CallbackRefused,
    HostError,
    StudentError,
    SubmissionLoadError,
    WorkerDied,
    WorkerError,
    WorkerTimeout,
)
from graders.sandbox.isolation import IsolationUnavailable
from graders.sandbox.limits import Limits
from graders.sandbox.worker import TOKEN_ENV, Worker

__all__ = ["TOKEN_ENV", "CallbackRefused", "HostError", "IsolationUnavailable", "Limits", "StudentError",
           "SubmissionLoadError", "Worker", "WorkerDied", "WorkerError", "WorkerTimeout"]
