"""Figures as ``matplotlib.figure.Figure`` objects, saved atomically.

No pyplot: nothing here selects a backend or keeps figures in a global registry, so
atomlens never changes a notebook's backend and needs no display. A returned figure shows
in Jupyter as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atomlens.files import atomic_path


def subplots(
    nrows: int = 1,
    ncols: int = 1,
    *,
    figsize: tuple[float, float],
    dpi: float | None = None,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """A new ``Figure`` and its axes, as ``pyplot.subplots`` returns them (``kwargs`` too)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, dpi=dpi)
    return figure, figure.subplots(nrows, ncols, **kwargs)


def colormap(name: str) -> Any:
    """The registered matplotlib colormap ``name``."""
    import matplotlib

    return matplotlib.colormaps[name]


def save_figure(figure: Any, path: Path, dpi: int = 120) -> Path:
    """Write a figure (format from the suffix) atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=dpi, bbox_inches="tight")
    return path
