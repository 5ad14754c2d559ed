"""Evaluate a run on its saved split: MAE/RMSE/R^2 and a parity plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from atomlens.datasets import GraphDataset, Split
from atomlens.errors import DataError
from atomlens.files import write_json_atomic
from atomlens.inference import load_model
from atomlens.training.metrics import regression_metrics
from atomlens.training.trainer import predict_indices


def evaluate_run(
    run_dir: Path | str,
    split_name: str = "test",
    checkpoint: str = "best",
    device: str = "auto",
) -> dict[str, Any]:
    """Metrics of a trained run on one of its saved splits; writes JSON and a parity PNG.

    The model runs on ``device`` in fp32 (whatever precision it was trained in).
    """
    run_dir = Path(run_dir)
    predictor = load_model(run_dir, checkpoint, device)
    entry = Path(predictor.metadata["cache_entry"])
    if not (entry / "manifest.json").is_file():
        raise DataError(
            f"the run's graph cache '{entry}' is gone; rebuild it with "
            f"`atomlens train {run_dir / 'config.yaml'}` (it resumes) or "
            "`atomlens graphs build`"
        )
    dataset = GraphDataset(entry)
    split = Split.load(run_dir / "split.json")
    indices = getattr(split, split_name)
    if indices.size == 0:
        raise DataError(f"the {split_name} split of '{run_dir}' is empty")
    predicted = predict_indices(predictor.model, dataset, indices, predictor.scaling, 256)
    target = np.asarray(dataset.targets[indices, 0])
    metrics = regression_metrics(target, predicted)
    metrics.update(
        {
            "split": split_name,
            "checkpoint": checkpoint,
            "target": predictor.target,
            "unit": predictor.unit,
        }
    )
    write_json_atomic(run_dir / f"evaluation_{split_name}.json", metrics)
    _parity_plot(run_dir / f"parity_{split_name}.png", target, predicted, metrics)
    return metrics


def _parity_plot(path: Path, target: np.ndarray, predicted: np.ndarray, metrics: dict) -> None:
    from atomlens.plotting import LITERAL, save_figure, subplots

    unit = f" ({metrics['unit']})" if metrics["unit"] else ""
    fig, ax = subplots(figsize=(4.5, 4.5), dpi=120)
    ax.scatter(target, predicted, s=6, alpha=0.5, edgecolors="none")
    low = float(min(target.min(), predicted.min()))
    high = float(max(target.max(), predicted.max()))
    ax.plot([low, high], [low, high], color="black", linewidth=0.8)
    ax.set_xlabel(f"reference {metrics['target']}{unit}", **LITERAL)
    ax.set_ylabel(f"predicted {metrics['target']}{unit}", **LITERAL)
    ax.set_title(
        f"{metrics['split']}: MAE {metrics['mae']:.3g}, R² {metrics['r2']:.3f}",
        fontsize=10,
        **LITERAL,
    )
    fig.tight_layout()
    save_figure(fig, path)
