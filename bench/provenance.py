"""What every measurement row records about where it came from: the commit and the settings.

    row = {**provenance.stamp({"seeds": "0-99", "jobs": 2}), "seed": 3, ...}

`commit` is the checked-out commit (with "-dirty" when tracked files differ from it: the
row was measured on uncommitted code), `settings` the options that shaped the row (a
script's arguments and what it patched). A summary written from rows names the same.
"""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def commit() -> str:
    """The checked-out commit's hash, "-dirty" when tracked files changed; "unknown" outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=30,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                               text=True, timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def stamp(settings: dict) -> dict:
    """The fields a row starts with: commit, settings, and the machine it ran on."""
    return {"commit": commit(), "settings": settings, "machine": platform.node() or "unknown"}
