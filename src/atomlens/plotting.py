"""Figures as ``matplotlib.figure.Figure`` objects, saved atomically.

No pyplot: nothing here selects a backend or keeps figures in a global registry, so
atomlens never changes a notebook's backend and needs no display. A returned figure shows
in Jupyter as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from atomlens.files import atomic_path

LITERAL: dict[str, bool] = {"parse_math": False, "usetex": False}
"""Text properties that draw a string exactly as given: no mathtext, no LaTeX.

Pass them (``axis.set_title(name, **LITERAL)``) wherever user text (structure names, file
names, ids, column names, units) reaches a title, label or annotation: a ``$`` in a name
then neither starts mathtext (``$x^2$`` would render as math, ``$\\frac$`` would fail)
nor goes through LaTeX when ``text.usetex`` is set.
"""


def literal(texts: Iterable[Any]) -> None:
    """Make existing matplotlib ``Text`` objects (legend entries, tick labels) literal."""
    for text in texts:
        text.set(**LITERAL)


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
