"""The measured accuracy of every architecture of the space (grader side), checked by sha256.

graders/nas/table.json is made by bench/nas_table.py (protocol: graders/nas/measure.py);
its sha256 is pinned here, so a table that was edited, truncated or replaced is
refused instead of silently grading against other numbers. The grader looks rewards
up here: grading never trains a network and never needs the dataset.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graders.nas import space

PATH = Path(__file__).with_name("table.json")
SHA256 = "f314241160e3a4ffc104102677f6e33a5eb32a6cb2e52b33095c6233b2b74898"


class TableError(RuntimeError):
    """The shipped table is missing or is not the measured one."""


@dataclass(frozen=True)
class Table:
    accuracy: np.ndarray  # (SIZE,) mean validation accuracy over the measured seeds, row i = space.tokens_of(i)
    per_seed: np.ndarray  # (SIZE, seeds)
    flops: np.ndarray  # (SIZE,) multiply-adds, computed by space.flops
    protocol: dict

    def rewards(self, target_flops: float, alpha: float, beta: float) -> np.ndarray:
        """The reward of every architecture (row order)."""
        return space.reward(self.accuracy, self.flops, target_flops, alpha, beta)


def ranks(rewards: np.ndarray) -> np.ndarray:
    """1 + the number of architectures with a strictly higher reward (ties share the better rank)."""
    ordered = np.sort(rewards)
    return len(rewards) - np.searchsorted(ordered, rewards, side="right") + 1


@functools.lru_cache(maxsize=1)
def load(path: Path = PATH, sha256: str | None = None) -> Table:
    """The table, after checking its bytes against the pinned sha256."""
    want = sha256 or SHA256
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TableError(f"{path} is missing; it ships with the grader (bench/nas_table.py makes it)") from None
    got = hashlib.sha256(raw).hexdigest()
    if got != want:
        raise TableError(f"{path} has sha256 {got}, not the measured table's {want}: restore it from the repository")
    content = json.loads(raw)
    per_seed = np.asarray(content["accuracy"], dtype=np.float64)
    if tuple(content["choices"]) != space.CHOICES or per_seed.shape[0] != space.SIZE:
        raise TableError(f"{path} describes another search space (choices {content['choices']})")
    return Table(per_seed.mean(axis=1), per_seed, space.all_flops(), content["protocol"])
