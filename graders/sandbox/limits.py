"""The resource limits of one worker, and the rlimits they become."""

from __future__ import annotations

import resource
from dataclasses import dataclass


@dataclass
class Limits:
    """Resource limits of one worker; every field can be set in the instructor config ([limits])."""

    memory_mb: int | None = 6144  # per process address space (not on CUDA), resident memory of all its processes, its cgroup
    cpu_seconds: int | None = 3600  # CPU time per process (RLIMIT_CPU)
    processes: int | None = 256  # processes + threads the worker may add (RLIMIT_NPROC, per uid; its cgroup's pids.max)
    file_size_mb: int = 64  # largest file it may write (RLIMIT_FSIZE)
    disk_mb: int = 512  # size of each private tmpfs (scratch, /tmp, /dev/shm) under bubblewrap; scratch otherwise
    open_files: int = 256  # RLIMIT_NOFILE
    output_kb: int = 64  # captured stdout+stderr kept for feedback; and of each error message
    import_seconds: float = 60.0  # wall clock for importing the submission
    isolation: str = "auto"  # auto: bubblewrap when it works, else process limits; or force one of them
    cgroup: str = "auto"  # a cgroup per worker (memory incl. shared memory, CPU quota, tasks): auto, required, off
    message_kb: int = 1024  # the JSON part of one message from the worker (bulk data travels as arrays)



def rlimits(limits: Limits, *, cuda: bool, tasks_already: int) -> list[tuple[int, tuple[int, int]]]:
    """The rlimits of a worker process, computed in the grader (the child of a fork may not allocate freely).

    `tasks_already`: tasks its uid runs before it starts (RLIMIT_NPROC counts them all).
    """
    mb = 1 << 20
    chosen = [(resource.RLIMIT_CORE, (0, 0)),
              (resource.RLIMIT_FSIZE, (limits.file_size_mb * mb,) * 2),
              (resource.RLIMIT_NOFILE, (limits.open_files,) * 2)]
    if limits.memory_mb and not cuda:
        chosen.append((resource.RLIMIT_AS, (limits.memory_mb * mb,) * 2))
    if limits.cpu_seconds:
        chosen.append((resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5)))
    if limits.processes:
        nproc = limits.processes + tasks_already + 16
        chosen.append((resource.RLIMIT_NPROC, (nproc, nproc)))
    return chosen
