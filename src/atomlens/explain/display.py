"""Per-atom scores as the viewer, the figures and the 2-D depictions show them.

Scores of methods that share the attention's normalisation (non-negative, summing to 1
over a structure: ``attention``, ``rollout``) are shown times the number of atoms N, so
that 1 means "a uniform share"; signed methods (gradients, occlusion, Shapley) are shown
as they are, in the target's unit, around 0. Either way one diverging colour scale,
centred at that neutral value, spans a range shared by all structures of a page (it is
never stretched to one structure's minimum and maximum).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from atomlens.explain.attention import Explanation

RELATIVE_METHODS = frozenset({"attention", "rollout"})
"""Methods whose scores are non-negative and sum to 1 per structure (shown × N)."""

UNIFORM_SPREAD = 0.05
"""A structure whose relative scores (× N) all lie within this spread is called uniform."""

MIN_HALF_RANGE = 0.05
"""A relative colour scale spans at least 1 ± this (small differences stay pale)."""

RANGE_QUANTILE = 0.99
"""The shared half-range is this quantile of |score - centre| over the page's atoms."""

# ColorBrewer RdBu, reversed: blue below the neutral value, red above; the middle is neutral.
DIVERGING: tuple[tuple[int, int, int], ...] = (
    (33, 102, 172),
    (67, 147, 195),
    (146, 197, 222),
    (209, 229, 240),
    (247, 247, 247),
    (253, 219, 199),
    (244, 165, 130),
    (214, 96, 77),
    (178, 24, 43),
)
NEUTRAL = DIVERGING[len(DIVERGING) // 2]


def is_relative(method: str) -> bool:
    """True if ``method``'s scores are shown × N around 1 (else as they are, around 0)."""
    return method in RELATIVE_METHODS


def method_scores(item: Explanation) -> np.ndarray:
    """The per-atom scores of ``item.method`` (the attention itself for ``attention``)."""
    scores = item.attention if item.method == "attention" else item.scores
    return np.asarray(scores, dtype=np.float64)


def shown_scores(item: Explanation) -> np.ndarray:
    """The scores of ``item.method`` as shown: × N for relative methods (N,)."""
    scores = method_scores(item)
    return scores * len(scores) if is_relative(item.method) else scores


def score_label(method: str, unit: str) -> str:
    """What the shown scores of ``method`` are, e.g. ``attention × N (1 = uniform)``."""
    if is_relative(method):
        return f"{method} × N (1 = uniform)"
    return f"{method} ({unit})" if unit else method


@dataclass(frozen=True)
class ColourScale:
    """A diverging colour scale: ``centre`` is neutral, ``centre ± half`` full colour.

    Attributes:
        label: What the values are.
        centre: The neutral value (1 for relative scores, 0 for signed ones).
        half: Half the range; values beyond ``centre ± half`` get the end colours.
        relative: True for scores × N (a uniform structure is all neutral).
        clipped: True if some values of the page lie beyond the range.
    """

    label: str
    centre: float
    half: float
    relative: bool
    clipped: bool

    def position(self, values: Any) -> np.ndarray:
        """Where ``values`` lie on the scale, from -1 (low end) to 1 (high end)."""
        return np.clip((np.asarray(values, dtype=np.float64) - self.centre) / self.half, -1, 1)

    def colours(self, values: Any) -> np.ndarray:
        """RGB colours (0-255 integers) of ``values``, shape (N, 3)."""
        return np.array([diverging_colour(t) for t in self.position(values)], dtype=np.int64)

    def to_json(self) -> dict[str, Any]:
        """The scale as the viewer reads it."""
        return {
            "label": self.label,
            "centre": self.centre,
            "half": float(f"{self.half:.4g}"),
            "relative": self.relative,
            "clipped": self.clipped,
        }


def diverging_colour(t: float) -> tuple[int, int, int]:
    """The colour at ``t`` in [-1, 1] of :data:`DIVERGING` (linear between its stops).

    The viewer's script interpolates the same stops the same way (rounding halves up).
    """
    x = (min(max(float(t), -1.0), 1.0) + 1) / 2 * (len(DIVERGING) - 1)
    i = min(math.floor(x), len(DIVERGING) - 2)
    f = x - i
    low, high = DIVERGING[i], DIVERGING[i + 1]
    return tuple(math.floor(a + f * (b - a) + 0.5) for a, b in zip(low, high, strict=True))  # type: ignore[return-value]


def shared_scale(values: Iterable[np.ndarray], *, relative: bool, label: str) -> ColourScale:
    """One scale for all ``values`` (per-structure arrays of shown scores).

    The half-range is the :data:`RANGE_QUANTILE` quantile of the distances from the
    centre, at least :data:`MIN_HALF_RANGE` for relative scores.
    """
    centre = 1.0 if relative else 0.0
    arrays = [np.asarray(v, dtype=np.float64).ravel() for v in values]
    distance = np.abs(np.concatenate([*arrays, np.zeros(0)]) - centre)
    half = float(np.quantile(distance, RANGE_QUANTILE)) if distance.size else 0.0
    if relative:
        half = max(half, MIN_HALF_RANGE)
    elif not half > 0:  # all zero (or nothing): any range draws them neutral
        half = float(distance.max()) if distance.size and distance.max() > 0 else 1.0
    half = float(f"{half:.4g}")
    return ColourScale(label, centre, half, relative, bool(np.any(distance > half * (1 + 1e-9))))


def page_scales(explanations: Sequence[Explanation]) -> dict[str, ColourScale]:
    """The colour scales of a page: ``attention``, ``local`` (if any) and each method."""
    unit = explanations[0].unit if explanations else ""
    scales = {
        "attention": shared_scale(
            (e.attention * len(e.attention) for e in explanations),
            relative=True,
            label=score_label("attention", unit),
        )
    }
    local = [e.local_attention for e in explanations if e.local_attention is not None]
    if local:  # received local attention already averages 1 over a structure's atoms
        scales["local"] = shared_scale(local, relative=True, label="local attention")
    for method in sorted({e.method for e in explanations} - {"attention"}):
        scales[method] = shared_scale(
            (shown_scores(e) for e in explanations if e.method == method),
            relative=is_relative(method),
            label=score_label(method, unit),
        )
    return scales


def top_atom(item: Explanation) -> int:
    """The atom with the largest score (by magnitude for signed methods)."""
    scores = method_scores(item)
    return int(np.argmax(scores if is_relative(item.method) else np.abs(scores)))


def reference_values(
    explanations: Sequence[Explanation], references: Sequence[float | None] | None = None
) -> list[float | None]:
    """The reference (label) value of each structure, or None where there is none.

    Args:
        explanations: The explanations.
        references: Labels given by the caller (e.g. of a run's split), one per
            explanation; when None, a finite number under the target's name in the
            structure's info (an extxyz comment ``homo=-10.5``) is used.
    """
    if references is not None:
        if len(references) != len(explanations):
            raise ValueError(f"{len(references)} references for {len(explanations)} structures")
        return [_finite(r) for r in references]
    return [_finite(e.structure.info.get(e.target)) for e in explanations]


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
