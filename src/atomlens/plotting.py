"""Matplotlib without a display, and figures saved atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atomlens.files import atomic_path


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (works on machines with no screen)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: Path, dpi: int = 120) -> Path:
    """Write a figure (format from the suffix) atomically and close it."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=dpi, bbox_inches="tight")
    pyplot().close(figure)
    return path
