"""``atomlens benchmark``: k-fold evaluation of SCANN or SEN on one task, resumable per fold.

Protocol: the folds of :mod:`atomlens.datasets.folds` (MatBench's definition) over the
records whose graphs could be built; in each fold a random share of the training rows is
held out for early stopping (best validation checkpoint); the fold's test MAE is measured
once, on that checkpoint. Every fold lives in ``<out>/fold_<k>/`` as an ordinary training
run; a finished fold writes ``result.json`` and is never recomputed, an unfinished one
resumes from its last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from atomlens.config import TrainConfig, apply_overrides, read_yaml_config, validate_config
from atomlens.datasets import GraphDataset, Split, build_graph_cache, load_source, make_params
from atomlens.datasets.folds import MATBENCH_SEED, inner_validation, kfold_indices
from atomlens.errors import DataError
from atomlens.files import write_json_atomic, write_text_atomic
from atomlens.models import graph_spec, model_spec

log = logging.getLogger(__name__)


def resolve_task(task: str, data: str | None) -> tuple[str, str | None]:
    """(source spec, target) of a task: a MatBench task name, or a label of ``data``.

    ``matbench_<name>`` uses MatBench's data (target: its only label); any other task is
    the name of a label in the ``data`` file.
    """
    if task.startswith("matbench_"):
        if data is not None:
            raise DataError("a MatBench task brings its own data; drop --data")
        return f"matbench:{task}", None
    if data is None:
        raise DataError(
            f"task '{task}' is not a MatBench task: give the structure file with --data "
            "(the task is then the name of a label in it, e.g. formation_energy_per_atom)"
        )
    return data, task


def benchmark_config(
    model: str,
    source: str,
    target: str,
    *,
    config_path: Path | None = None,
    overrides: list[str] | None = None,
) -> TrainConfig:
    """The training config shared by all folds (run_dir is set per fold)."""
    model_spec(model)  # a clear error for an unknown name
    if config_path is None:
        packaged = files("atomlens").joinpath(f"data/benchmark_{model}.yaml")
        if not packaged.is_file():
            raise DataError(f"no packaged benchmark config for model '{model}'; pass --config")
        raw = yaml.safe_load(packaged.read_text())
    else:
        raw = read_yaml_config(config_path)
    raw.setdefault("model", {})
    raw["model"].setdefault("name", model)
    if raw["model"]["name"] != model:
        raise DataError(f"--model {model} but the config describes model '{raw['model']['name']}'")
    raw.setdefault("data", {})
    raw["data"].update({"source": source, "target": target})
    apply_overrides(raw, overrides or [])
    return validate_config(raw, str(config_path or f"benchmark_{model}.yaml"))


def run_benchmark(
    task: str,
    model: str,
    out_dir: Path | str,
    *,
    data: str | None = None,
    n_folds: int = 5,
    seed: int = MATBENCH_SEED,
    val_fraction: float = 0.1,
    config_path: Path | None = None,
    overrides: list[str] | None = None,
    folds: list[int] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train and test one model on every fold; write JSON and a Markdown table.

    Args:
        task: ``matbench_<name>`` or the name of a label of ``data``.
        model: A registered model name (``atomlens.models.MODELS``).
        out_dir: Folder of the benchmark (one sub-folder per fold).
        data: Structure file with labels (for non-MatBench tasks).
        n_folds: Number of folds.
        seed: Shuffle seed of the folds (MatBench: 18012019).
        val_fraction: Share of each fold's training rows used for early stopping.
        config_path: Training config (default: the packaged one for ``model``).
        overrides: ``KEY=VALUE`` changes to the config (e.g. ``training.max_minutes=10``).
        folds: Run only these fold numbers (default: all).
        progress: Show progress bars.

    Returns:
        The summary written to ``<out>/benchmark.json``.
    """
    from atomlens.training.trainer import train

    out_dir = Path(out_dir)
    source_spec, target = resolve_task(task, data)
    if target is None:
        names = load_source(source_spec, limit=1).target_names
        if len(names) != 1:
            raise DataError(f"MatBench task '{task}' has labels {list(names)}, expected one")
        target = names[0]
    config = benchmark_config(
        model, source_spec, target, config_path=config_path, overrides=overrides
    )
    dataset = _dataset(config, progress)
    all_folds = kfold_indices(len(dataset), n_folds, seed)
    chosen = range(n_folds) if folds is None else folds
    bad = [k for k in chosen if not 0 <= k < n_folds]
    if bad:
        raise DataError(f"fold numbers must lie in 0..{n_folds - 1}, got {bad}")
    fingerprint = _fingerprint(config, task, n_folds, seed, val_fraction)
    out_dir.mkdir(parents=True, exist_ok=True)

    for k in chosen:
        fold_dir = out_dir / f"fold_{k}"
        result_file = fold_dir / "result.json"
        if result_file.is_file():
            saved = json.loads(result_file.read_text())
            if saved.get("fingerprint") == fingerprint:
                log.info("fold %d: done before (test MAE %.4g), kept", k, saved["mae"])
                continue
            raise DataError(
                f"'{fold_dir}' holds a fold of a different benchmark (config, task or folds "
                "changed); choose another output folder"
            )
        train_rows, test_rows = all_folds[k]
        fit_rows, val_rows = inner_validation(train_rows, val_fraction, seed + k)
        fold_dir.mkdir(parents=True, exist_ok=True)
        split = Split(fit_rows, val_rows, test_rows, seed=seed, n_total=len(dataset))
        if not (fold_dir / "split.json").is_file():
            split.save(fold_dir / "split.json")
        log.info(
            "fold %d/%d: train %d, validation %d, test %d",
            k + 1,
            n_folds,
            fit_rows.size,
            val_rows.size,
            test_rows.size,
        )
        fold_config = config.model_copy(update={"run_dir": str(fold_dir)})
        train(fold_config, progress=progress)
        result = _score_fold(fold_dir, dataset, test_rows, k, config.training.device)
        result["fingerprint"] = fingerprint
        write_json_atomic(result_file, result)
        log.info("fold %d: test MAE %.4g %s", k, result["mae"], result["unit"])

    summary = _summarise(out_dir, task, model, config, n_folds, seed, val_fraction, dataset)
    write_json_atomic(out_dir / "benchmark.json", summary)
    write_text_atomic(out_dir / "benchmark.md", format_table(summary))
    return summary


def _dataset(config: TrainConfig, progress: bool) -> GraphDataset:
    data = config.data
    source = load_source(
        data.source, targets=[data.target], limit=data.limit, skip_invalid=data.skip_invalid
    )
    kind, params = graph_spec(config.model, data.graph)
    path = build_graph_cache(
        source,
        kind,
        make_params(kind, **params),
        cache_dir=data.cache_dir,
        skip_invalid=data.skip_invalid,
        progress=progress,
    )
    return GraphDataset(path)


def _fingerprint(config: TrainConfig, task: str, n_folds: int, seed: int, val: float) -> str:
    payload = config.model_dump(mode="json") | {"task": task, "folds": [n_folds, seed, val]}
    payload.pop("run_dir")
    budget = ("epochs", "max_minutes", "patience", "threads", "device")
    payload["training"] = {k: v for k, v in payload["training"].items() if k not in budget}
    payload["data"].pop("cache_dir", None)  # where the graphs are cached changes nothing
    if payload["training"].get("precision") == "fp32":  # the only precision of older folds
        payload["training"].pop("precision")
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _score_fold(
    fold_dir: Path, dataset: GraphDataset, test_rows: np.ndarray, fold: int, device: str = "auto"
) -> dict[str, Any]:
    """Test metrics, training cost and crystal-vector separability of a finished fold.

    The fold's model runs on ``device`` (the device it was trained on).
    """
    from atomlens.explain.separability import (
        crystal_vectors,
        plot_projection,
        project_2d,
        separability,
        space_groups,
    )
    from atomlens.inference import load_model
    from atomlens.training.evaluate import evaluate_run

    metrics = evaluate_run(fold_dir, "test", "best", device)
    summary = json.loads((fold_dir / "training_summary.json").read_text())
    rates = _training_rates(fold_dir / "metrics.csv")
    predictor = load_model(fold_dir, "best", device)
    started = time.perf_counter()
    vectors = crystal_vectors(predictor.model, dataset, test_rows)
    groups = space_groups(dataset, test_rows)
    np.savez_compressed(
        fold_dir / "crystal_vectors.npz", vectors=vectors, space_group=groups, rows=test_rows
    )
    try:
        scores: dict[str, Any] | None = separability(vectors, groups)
    except DataError as exc:  # a tiny test fold: report why, keep the MAE
        scores = None
        log.info("fold %d: no separability score (%s)", fold, exc)
    if scores is not None:
        title = (
            f"fold {fold} test crystals: k-NN crystal-system accuracy "
            f"{scores['crystal_system_knn_accuracy']:.2f} "
            f"(chance {scores['crystal_system_chance']:.2f})"
        )
        plot_projection(project_2d(vectors), groups, fold_dir / "crystal_vectors_pca.png", title)
    return {
        "fold": fold,
        "n_test": int(test_rows.size),
        "mae": metrics["mae"],
        "rmse": metrics["rmse"],
        "r2": metrics["r2"],
        "unit": metrics["unit"],
        "epochs": summary["epochs"],
        "best_epoch": summary["best_epoch"],
        "stopped": summary["stopped"],
        "train_seconds": summary["train_seconds"],
        "train_structures_per_s": rates,
        "separability": scores,
        "separability_seconds": time.perf_counter() - started,
    }


def _training_rates(metrics_csv: Path) -> float:
    """Median training throughput (structures/s) over the fold's epochs."""
    import csv

    with metrics_csv.open() as handle:
        rates = [float(row["structures_per_s"]) for row in csv.DictReader(handle)]
    return float(np.median(rates)) if rates else float("nan")


def _summarise(
    out_dir: Path,
    task: str,
    model: str,
    config: TrainConfig,
    n_folds: int,
    seed: int,
    val_fraction: float,
    dataset: GraphDataset,
) -> dict[str, Any]:
    results = []
    for k in range(n_folds):
        file = out_dir / f"fold_{k}" / "result.json"
        if file.is_file():
            results.append(json.loads(file.read_text()))
    maes = np.array([r["mae"] for r in results])
    symmetry = getattr(config.model, "symmetry", None)
    return {
        "task": task,
        "model": model,
        "symmetry_stream": symmetry,
        "source": config.data.source,
        "target": config.data.target,
        "n_structures": len(dataset),
        "skipped": len(dataset.manifest["skipped"]),
        "protocol": {
            "folds": n_folds,
            "fold_seed": seed,
            "fold_definition": "KFold(shuffle=True) over cached records (MatBench's)",
            "inner_validation_fraction": val_fraction,
            "epochs": config.training.epochs,
            "max_minutes_per_fold": config.training.max_minutes,
            "patience": config.training.patience,
            "threads": config.training.threads,
        },
        "config": config.model_dump(mode="json"),
        "folds_done": len(results),
        "mae_per_fold": maes.tolist(),
        "mae_mean": float(maes.mean()) if results else None,
        "mae_std": float(maes.std()) if results else None,
        "unit": results[0]["unit"] if results else "",
        "folds": results,
    }


def format_table(summary: dict[str, Any]) -> str:
    """A Markdown table of the per-fold results and their mean."""
    unit = summary["unit"]
    symmetry = summary["symmetry_stream"]
    label = summary["model"] + (
        "" if symmetry is None else f" (symmetry {'on' if symmetry else 'off'})"
    )
    lines = [
        f"# {summary['task']}: {label}",
        "",
        f"| fold | test MAE ({unit}) | RMSE | R2 | epochs | train s | structures/s | "
        "k-NN crystal system (chance) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["folds"]:
        sep = r["separability"]
        knn = "-"
        if sep is not None:
            knn = f"{sep['crystal_system_knn_accuracy']:.3f} ({sep['crystal_system_chance']:.3f})"
        lines.append(
            f"| {r['fold']} | {r['mae']:.4g} | {r['rmse']:.4g} | {r['r2']:.3f} | {r['epochs']} | "
            f"{r['train_seconds']:.0f} | {r['train_structures_per_s']:.0f} | {knn} |"
        )
    if summary["folds"]:
        lines.append(f"| mean | {summary['mae_mean']:.4g} ± {summary['mae_std']:.2g} | | | | | | |")
    return "\n".join(lines) + "\n"
