"""Feedback plots: matplotlib figures without pyplot, so no display and no global state."""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure


def figure(width: float, height: float, dpi: int = 90) -> Figure:
    return Figure(figsize=(width, height), dpi=dpi)


def save_png(fig: Figure, path: str | Path | None = None) -> bytes:
    """Write `fig` as a PNG to `path` (when given) and return its bytes."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    data = buffer.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data
