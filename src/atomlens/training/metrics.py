"""Regression metrics."""

from __future__ import annotations

import numpy as np


def regression_metrics(target: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R^2 of predictions."""
    target = np.asarray(target, dtype=np.float64)
    error = np.asarray(prediction, dtype=np.float64) - target
    variance = float(((target - target.mean()) ** 2).sum())
    return {
        "mae": float(np.abs(error).mean()),
        "rmse": float(np.sqrt((error**2).mean())),
        "r2": float(1.0 - (error**2).sum() / variance) if variance > 0 else float("nan"),
        "n": int(target.size),
    }
