"""Bootstrap confidence intervals of a mean, and of a paired mean difference.

Percentile bootstrap: the values (or, paired, the per-item differences) are resampled with
replacement ``n_resamples`` times from a seeded generator, and the interval is the
``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled means. Items with
an undefined (NaN) value are left out (paired: when either value is NaN). Fewer than two
values give no interval (NaN bounds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_RESAMPLES = 5000
LEVEL = 0.95
_CHUNK = 4_000_000  # resampled values drawn at once


@dataclass(frozen=True)
class Interval:
    """A mean with its bootstrap confidence interval.

    Attributes:
        mean: Mean of the defined values.
        low: Lower bound of the interval (NaN with fewer than two values).
        high: Upper bound.
        n: Number of values used.
    """

    mean: float
    low: float
    high: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of 0 (False without an interval)."""
        return bool(self.low > 0 or self.high < 0)

    def as_dict(self) -> dict[str, float | int | bool]:
        """Plain fields for JSON (non-finite values become null there)."""
        return {
            "mean": self.mean,
            "ci_low": self.low,
            "ci_high": self.high,
            "n": self.n,
        }


def bootstrap_mean(
    values: np.ndarray,
    *,
    n_resamples: int = N_RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> Interval:
    """Mean of the finite ``values`` and its percentile bootstrap interval.

    Args:
        values: One value per item; NaN marks an undefined one.
        n_resamples: Bootstrap resamples B.
        level: Confidence level, e.g. 0.95.
        seed: Seed of the resampling.
    """
    if n_resamples < 1 or not 0 < level < 1:
        raise ValueError(f"need n_resamples >= 1 and 0 < level < 1, got {n_resamples}, {level}")
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    n = values.size
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    mean = float(values.mean())
    if n < 2:
        return Interval(mean, float("nan"), float("nan"), n)
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    per_chunk = max(1, _CHUNK // n)
    for start in range(0, n_resamples, per_chunk):
        stop = min(n_resamples, start + per_chunk)
        means[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(mean, float(low), float(high), n)


def paired_difference(
    a: np.ndarray,
    b: np.ndarray,
    *,
    n_resamples: int = N_RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> Interval:
    """Mean of ``a - b`` over items where both are defined, with its bootstrap interval.

    The items are resampled together (paired), which removes the between-item variation
    that ``a`` and ``b`` share.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal shapes, got {a.shape} and {b.shape}")
    both = np.isfinite(a) & np.isfinite(b)
    return bootstrap_mean(a[both] - b[both], n_resamples=n_resamples, level=level, seed=seed)
