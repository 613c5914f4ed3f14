"""What every measurement row records about where it came from: the commit and the settings.

    row = {**provenance.stamp(args), "seed": 3, ...}                 # args: the script's argparse namespace
    row = {**provenance.stamp({**vars(args), "budget": 300}), ...}   # with what the script resolved or patched
    summary = {**provenance.stamp(args), "row_commits": provenance.commits(rows), ...}

`commit` is the checked-out commit (with "-dirty" when tracked files differ from it: the
row was measured on uncommitted code), `settings` the options that shaped the row (a
script's effective arguments and what it patched), `machine` the host it ran on. A summary
written from rows names the commits of those rows (`commits`): rows of a file may come from
several runs. Printed tables that are copied into docs start with the stamp as one JSON line.
Rows written before issue 31 have no stamp; `commits` names them "unrecorded".
"""

from __future__ import annotations

import argparse
import functools
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UNRECORDED = "unrecorded"


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


def plain(value):
    """`value` as JSON can write it: namespaces and dicts as dicts, paths as strings, tuples and sets as lists."""
    if isinstance(value, argparse.Namespace):
        value = vars(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(plain(v) for v in value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # a numpy scalar
        return value.item()
    return value


def stamp(settings: dict | argparse.Namespace) -> dict:
    """The fields a row starts with: commit, settings (made plain), and the machine it ran on."""
    return {"commit": commit(), "settings": plain(settings), "machine": platform.node() or "unknown"}


def commits(rows) -> list[str]:
    """The distinct commits of `rows`, in the order they first appear ("unrecorded" for rows without a stamp)."""
    return list(dict.fromkeys(row.get("commit", UNRECORDED) if isinstance(row, dict) else UNRECORDED for row in rows))
