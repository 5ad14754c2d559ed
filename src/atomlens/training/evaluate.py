"""Evaluate a run on its saved split or on any labelled file: MAE/RMSE/R^2, a parity plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from atomlens.batching import batch_from_graphs
from atomlens.datasets.cache import graphs_of
from atomlens.datasets.run_data import open_run_data
from atomlens.datasets.sources import load_source
from atomlens.errors import DataError, StructureError
from atomlens.files import write_csv, write_json_atomic
from atomlens.inference import Predictor, load_model
from atomlens.structures.record import Structure
from atomlens.training.metrics import regression_metrics
from atomlens.training.trainer import predict_indices

BATCH_SIZE = 256  # structures per forward pass


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
    run = open_run_data(run_dir, predictor.metadata)
    dataset, indices = run.dataset, run.rows.part(split_name)
    if indices.size == 0:
        raise DataError(
            f"the {split_name} split of '{run_dir}' is empty (see its split.json); score a "
            f"labelled file instead: atomlens evaluate {run_dir} --data FILE"
        )
    predicted = predict_indices(predictor.model, dataset, indices, predictor.scaling, BATCH_SIZE)
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
    _parity_plot(run_dir / f"parity_{split_name}.png", target, predicted, metrics, split_name)
    return metrics


def default_output(run_dir: Path | str, data: Path | str) -> Path:
    """Where :func:`evaluate_file` writes by default: ``<run>/evaluations/<file stem>``."""
    return Path(run_dir) / "evaluations" / Path(data).stem


def evaluate_file(
    run_dir: Path | str,
    data: Path | str,
    *,
    out: Path | str | None = None,
    checkpoint: str = "best",
    device: str = "auto",
    skip_invalid: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Score a run's model on a labelled structure file, without retraining.

    Each frame's label is its ``info[<the run's target>]``; graphs are built with the run's
    graph parameters, the model runs on ``device`` in fp32. Writes into ``out`` (default:
    :func:`default_output`) ``evaluation.json`` (metrics, unit, skipped frames),
    ``parity.png`` and ``predictions.csv`` (reference and prediction of each frame).

    Args:
        run_dir: A training run directory.
        data: Any structure file ASE reads, with the label in each frame's ``info``.
        out: Output folder.
        checkpoint: ``best`` or ``last``.
        device: Where the model runs (see :func:`atomlens.inference.load_model`).
        skip_invalid: Leave out (and list) frames that are invalid, lack a finite label,
            have no graph or that the model refuses (elements it never saw, a crystal for
            a molecule model or the reverse), instead of raising.
        progress: Show a progress bar (only on a terminal).

    Returns:
        The metrics (``mae``, ``rmse``, ``r2``, ``n``) with ``data``, ``checkpoint``,
        ``target``, ``unit`` and ``skipped`` (file, frame, id and reason of each).

    Raises:
        DataError: If the file has no frame with the label, or none is left to score.
        StructureError: Naming the file and frame of the first unusable frame (unless
            ``skip_invalid``).
    """
    data = Path(data)
    out = default_output(run_dir, data) if out is None else Path(out)
    if not data.is_file():
        raise DataError(f"data file '{data}' not found")
    predictor = load_model(run_dir, checkpoint, device)
    spec = str(data)
    if spec == "qm9" or spec.startswith("matbench:"):  # a file, not the named source
        spec = f"./{spec}"
    source = load_source(spec, targets=[predictor.target], skip_invalid=skip_invalid)
    skipped = [{k: item[k] for k in ("file", "frame", "id", "reason")} for item in source.invalid]
    usable: list[int] = []
    for k, structure in enumerate(source.structures):
        reason = _unusable(predictor, structure, float(source.targets[k, 0]))
        if reason is None:
            usable.append(k)
        elif skip_invalid:
            skipped.append(_skip_entry(structure, source.ids[k], reason))
        else:
            raise structure.fail(f"{reason}; pass --skip-invalid to leave such frames out")
    kept, predicted = _predict(predictor, source.structures, usable, skip_invalid, progress)
    skipped += [_skip_entry(source.structures[k], source.ids[k], r) for k, r in kept.items() if r]
    rows = [k for k, reason in kept.items() if not reason]
    if not rows:
        raise DataError(f"'{data}': no frame left to evaluate ({len(skipped)} skipped)")
    target = source.targets[rows, 0]
    metrics: dict[str, Any] = regression_metrics(target, predicted)
    metrics.update(
        {
            "data": str(data),
            "checkpoint": checkpoint,
            "target": predictor.target,
            "unit": predictor.unit,
            "skipped": sorted(skipped, key=lambda e: -1 if e["frame"] is None else e["frame"]),
        }
    )
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "evaluation.json", metrics)
    _parity_plot(out / "parity.png", target, predicted, metrics, data.name)
    header, unit = ["file", "frame", "id", "reference", "prediction", "unit"], predictor.unit
    table = [
        [source.structures[k].source, source.structures[k].frame, source.ids[k], t, p, unit]
        for k, t, p in zip(rows, target.tolist(), predicted.tolist(), strict=True)
    ]
    write_csv(out / "predictions.csv", header, table)
    return metrics


def _unusable(predictor: Predictor, structure: Structure, label: float) -> str | None:
    """Why a frame cannot be scored (no label, or the model refuses it), else None."""
    if not np.isfinite(label):
        return f"no finite label '{predictor.target}' (the run's target) in its info"
    try:
        predictor.check_structures([structure])
    except StructureError as exc:
        return exc.reason
    return None


def _skip_entry(structure: Structure, record_id: str, reason: str) -> dict[str, Any]:
    return {"file": structure.source, "frame": structure.frame, "id": record_id, "reason": reason}


@torch.no_grad()
def _predict(
    predictor: Predictor,
    structures: list[Structure],
    rows: list[int],
    skip_invalid: bool,
    progress: bool,
) -> tuple[dict[int, str], np.ndarray]:
    """Predictions (physical units) for ``structures[rows]``, in batches.

    Returns:
        Each row with "" when it was predicted or the reason its graph failed (only with
        ``skip_invalid``; else that StructureError is raised), and the predictions of the
        predicted rows in order.
    """
    from tqdm.auto import tqdm

    outcome: dict[int, str] = {}
    values: list[np.ndarray] = []
    starts = range(0, len(rows), BATCH_SIZE)
    for start in tqdm(starts, desc="evaluate", unit="batch", disable=None if progress else True):
        chunk = rows[start : start + BATCH_SIZE]
        graphs = []
        for k, graph in zip(
            chunk,
            graphs_of([structures[k] for k in chunk], predictor.graph_kind, predictor.graph_params),
            strict=True,
        ):
            if isinstance(graph, StructureError):
                if not skip_invalid:
                    raise graph
                outcome[k] = graph.reason
            else:
                outcome[k] = ""
                graphs.append(graph)
        if graphs:
            output = predictor.model(batch_from_graphs(graphs))["prediction"]
            values.append(predictor.scaling.to_physical(output.float()).cpu().numpy())
    return outcome, np.concatenate(values) if values else np.empty(0)


def _parity_plot(
    path: Path, target: np.ndarray, predicted: np.ndarray, metrics: dict, title: str
) -> None:
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
        f"{title}: MAE {metrics['mae']:.3g}, R² {metrics['r2']:.3f}",
        fontsize=10,
        **LITERAL,
    )
    fig.tight_layout()
    save_figure(fig, path)
