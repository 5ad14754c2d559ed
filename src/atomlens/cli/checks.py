"""Option checks run before any computation: one-line errors that name the option."""

from __future__ import annotations

import math

from atomlens.errors import DataError


def at_least(value: float | None, minimum: float, option: str) -> None:
    """Raise a DataError unless ``value`` (when given) is a number ``>= minimum``."""
    if value is not None and not (math.isfinite(value) and value >= minimum):
        raise DataError(f"{option} must be >= {minimum:g}, got {value:g}")


def positive(value: float | None, option: str) -> None:
    """Raise a DataError unless ``value`` (when given) is a finite number ``> 0``."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise DataError(f"{option} must be > 0, got {value:g}")


def fraction(value: float, option: str) -> None:
    """Raise a DataError unless ``0 < value < 1``."""
    if not (math.isfinite(value) and 0 < value < 1):
        raise DataError(f"{option} must lie strictly between 0 and 1, got {value:g}")
