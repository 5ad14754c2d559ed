"""Figures of table models: out-of-fold parity with uncertainty, feature importances."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from atomlens.plotting import LITERAL, save_figure, subplots

TOP_FEATURES = 20


def plot_parity(
    y: np.ndarray, predicted: np.ndarray, spread: np.ndarray, title: str, path: Path
) -> Path:
    """Out-of-fold predictions against the target, with one-sigma bars."""
    figure, axis = subplots(figsize=(4.5, 4.5))
    axis.errorbar(y, predicted, yerr=spread, fmt="o", markersize=3, alpha=0.6, elinewidth=0.6)
    low, high = float(min(y.min(), predicted.min())), float(max(y.max(), predicted.max()))
    axis.plot([low, high], [low, high], color="black", linewidth=0.8)
    axis.set_xlabel("target")
    axis.set_ylabel("predicted (held out)")
    axis.set_title(title, fontsize=9, **LITERAL)
    return save_figure(figure, path)


def plot_importances(
    names: list[str], impurity: np.ndarray, permutation: np.ndarray, path: Path
) -> Path:
    """The most important features by impurity and by permutation, side by side."""
    order = np.argsort(-permutation)[:TOP_FEATURES][::-1]
    figure, axes = subplots(1, 2, figsize=(9, 0.3 * len(order) + 1.5), sharey=True)
    axes[0].barh(np.arange(len(order)), permutation[order], color="tab:blue")
    axes[0].set_title("permutation (increase of MSE)", fontsize=9)
    axes[1].barh(np.arange(len(order)), impurity[order], color="tab:orange")
    axes[1].set_title("impurity", fontsize=9)
    axes[0].set_yticks(np.arange(len(order)), [names[k] for k in order], fontsize=8, **LITERAL)
    return save_figure(figure, path)
