"""Reading and writing the grader's files.

Every file the grader writes goes through `atomic_write`. A file given by someone else
(a student's submission, a class's folder, nbgrader's timestamps) is read with
`read_file`: no symbolic link is followed below the folder it is read from, so a
submission that is a link (to a root-only file, to a classmate's) is refused, not read
with the grader's rights (docs/security.md, "The batch and the gradebook").
"""

from __future__ import annotations

import errno
import os
import stat
import unicodedata
from pathlib import Path

MAX_SUBMISSION_BYTES = 5 << 20  # the largest submission file read (graders.submission.MAX_BYTES)
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class Unreadable(OSError):
    """A submission file that is not read: a link, not a regular file, too large, or gone."""


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Write via a temporary file and rename, so a reader (or a resume) never sees half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    tmp.replace(path)


def shown(name: str) -> str:
    """A file name as text that can be shown anywhere: undecodable bytes and control characters escaped."""
    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    return "".join(ascii(c)[1:-1] if unsafe_char(c) else c for c in text)


def unsafe_char(c: str) -> bool:
    return unicodedata.category(c) in ("Cc", "Cs") or c in BIDI_CONTROLS


def open_dir(root: Path, parts: tuple[str, ...]) -> int:
    """A descriptor of root/parts..., each step opened without following a link."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the folder itself is the instructor's
    try:
        for name in parts:
            step = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = step
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_file(root: Path, parts: tuple[str, ...], limit: int = MAX_SUBMISSION_BYTES) -> bytes:
    """The bytes of the regular file root/parts..., no link followed on the way; Unreadable otherwise.

    A missing file raises FileNotFoundError, as open() does.
    """
    where = "/".join(shown(p) for p in parts)
    if not parts or any(p in ("", ".", "..") or "/" in p for p in parts):
        raise Unreadable(f"{where} is not a path below the submissions folder")
    try:
        dir_fd = open_dir(root, parts[:-1])
    except OSError as exc:
        raise Unreadable(f"{where}: {why_unreadable(exc)}") from None
    try:
        before = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)  # missing: FileNotFoundError, as it is
        if not stat.S_ISREG(before.st_mode):
            raise Unreadable(f"{where} is {'a symbolic link' if stat.S_ISLNK(before.st_mode) else 'not a regular file'}"
                             + ("; links are not followed" if stat.S_ISLNK(before.st_mode) else ""))
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        with os.fdopen(fd, "rb") as f:
            now = os.fstat(f.fileno())
            if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino):
                raise Unreadable(f"{where} changed while it was read")
            data = f.read(limit + 1)
    except (Unreadable, FileNotFoundError):
        raise
    except OSError as exc:
        raise Unreadable(f"{where}: {why_unreadable(exc)}") from None
    finally:
        os.close(dir_fd)
    if len(data) > limit:
        raise Unreadable(f"{where} is larger than {limit >> 20} MB" if limit >= 1 << 20 else f"{where} is too large")
    return data


def why_unreadable(exc: OSError) -> str:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return "a symbolic link (or not a folder) on the way; links are not followed"
    return exc.strerror or str(exc)
