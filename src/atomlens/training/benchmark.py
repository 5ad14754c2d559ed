"""``atomlens benchmark``: k-fold evaluation of SCANN or SEN on one task, resumable per fold.

Protocol: the folds of :mod:`atomlens.datasets.folds` (MatBench's definition) over all
records of the task; records skipped on the way (invalid structure, missing label, no
graph) drop out of their fold without moving any other record (listed in
``benchmark.json``). In each fold a random share of the training rows is held out for early
stopping (best validation checkpoint); the fold's test MAE is measured once, on that
checkpoint, and its per-record predictions go to ``fold_<k>/test_predictions.csv`` (id,
reference, prediction). Every fold lives in ``<out>/fold_<k>/`` as an ordinary training
run; a finished fold writes ``result.json`` and is never recomputed, an unfinished one
resumes from its last checkpoint. ``results.json.gz`` (optional) holds the predictions in
MatBench's result-file format.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import json
import logging
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from atomlens.config import (
    SplitConfig,
    TrainConfig,
    apply_overrides,
    read_yaml_config,
    validate_config,
)
from atomlens.datasets import GraphDataset, Split, build_graph_cache, load_source, make_params
from atomlens.datasets.folds import (
    MATBENCH_SEED,
    folds_over_records,
    inner_validation,
    kfold_indices,
)
from atomlens.datasets.sources import Source
from atomlens.errors import DataError
from atomlens.files import (
    atomic_path,
    csv_text,
    write_csv,
    write_json_atomic,
    write_text_atomic,
)
from atomlens.models import graph_spec, model_spec

log = logging.getLogger(__name__)

PREDICTIONS_FILE = "test_predictions.csv"
MATBENCH_FILE = "results.json.gz"
MATBENCH_BENCHMARK = "matbench_v0.1"  # the benchmark name MatBench's result files carry
MATBENCH_VERSION = "0.6"  # matbench package version the file format follows


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
    matbench_results: bool = False,
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
        matbench_results: Also write ``<out>/results.json.gz`` in MatBench's format once
            every fold is done (see :func:`matbench_results_dict`).

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
    source, dataset = _dataset(config, progress)
    chosen = range(n_folds) if folds is None else folds
    bad = [k for k in chosen if not 0 <= k < n_folds]
    if bad:
        raise DataError(f"fold numbers must lie in 0..{n_folds - 1}, got {bad}")
    positions, invalid_positions, all_ids = task_records(source)
    record_of_row = positions[np.asarray(dataset.arrays["record_index"])]
    all_folds = folds_over_records(record_of_row, len(all_ids), n_folds, seed)
    skipped = _skipped_records(dataset, positions, invalid_positions, len(all_ids), n_folds, seed)
    fingerprint = _fingerprint(config, task, n_folds, seed, val_fraction, bool(skipped))
    out_dir.mkdir(parents=True, exist_ok=True)

    for k in chosen:
        fold_dir = out_dir / f"fold_{k}"
        result_file = fold_dir / "result.json"
        if result_file.is_file():
            saved = json.loads(result_file.read_text())
            if saved.get("fingerprint") == fingerprint:
                log.info("fold %d: done before (test MAE %.4g), kept", k, saved["mae"])
                if not (fold_dir / PREDICTIONS_FILE).is_file():  # a fold of an older version
                    _write_test_predictions(
                        fold_dir, dataset, all_folds[k][1], config.training.device
                    )
                continue
            raise DataError(
                f"'{fold_dir}' holds a fold of a different benchmark (config, task or folds "
                "changed); choose another output folder"
            )
        train_rows, test_rows = all_folds[k]
        fit_rows, val_rows = inner_validation(train_rows, val_fraction, seed + k)
        fold_dir.mkdir(parents=True, exist_ok=True)
        records = np.asarray(dataset.records)  # the fold's split file lists source records
        split = Split(
            *(records[rows] for rows in (fit_rows, val_rows, test_rows)),
            seed=seed,
            n_total=len(source),
        )
        split_file = fold_dir / "split.json"
        if not split_file.is_file():
            split.save(split_file)
        elif not Split.load(split_file).same_records(split):
            raise DataError(  # an interrupted fold split by another rule or data
                f"'{fold_dir}' holds a fold with other test records (folds or data changed); "
                "choose another output folder"
            )
        log.info(
            "fold %d/%d: train %d, validation %d, test %d",
            k + 1,
            n_folds,
            fit_rows.size,
            val_rows.size,
            test_rows.size,
        )
        fold_config = config.model_copy(
            update={
                "run_dir": str(fold_dir),
                "data": config.data.model_copy(
                    update={"split": SplitConfig(file=str(split_file), seed=seed)}
                ),
            }
        )
        train(fold_config, progress=progress)
        result = _score_fold(fold_dir, dataset, test_rows, k, config.training.device)
        result["fingerprint"] = fingerprint
        write_json_atomic(result_file, result)
        log.info("fold %d: test MAE %.4g %s", k, result["mae"], result["unit"])

    summary = _summarise(out_dir, task, model, config, n_folds, seed, val_fraction, dataset)
    summary["n_records"] = len(all_ids)
    summary["skipped_records"] = skipped
    summary["matbench_results"] = None
    if matbench_results:
        missing = [
            k for k in range(n_folds) if not (out_dir / f"fold_{k}" / "result.json").is_file()
        ]
        if missing:
            log.warning("%s not written: fold(s) %s not finished yet", MATBENCH_FILE, missing)
        else:
            results = matbench_results_dict(out_dir, task, n_folds, summary)
            write_matbench_results(out_dir / MATBENCH_FILE, results)
            summary["matbench_results"] = MATBENCH_FILE
    write_json_atomic(out_dir / "benchmark.json", summary)
    write_text_atomic(out_dir / "benchmark.md", format_table(summary))
    return summary


def _dataset(config: TrainConfig, progress: bool) -> tuple[Source, GraphDataset]:
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
    return source, GraphDataset(path)


def task_records(source: Source) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Where the records of a source stand among all records of its task.

    All records are the source's plus the frames skipped when it was read
    (``skip_invalid``), in file order; for sources without such frames (QM9, MatBench)
    they are the source's records in their order.

    Returns:
        ``(positions, invalid_positions, ids)``: the position of each source record and of
        each entry of ``source.invalid``, and the ids of all records in order.
    """
    if not source.invalid:
        return np.arange(len(source)), np.empty(0, dtype=np.int64), list(source.ids)
    items = [(int(s.frame or 0), 0, i) for i, s in enumerate(source.structures)]
    items += [(int(e["frame"]), 1, j) for j, e in enumerate(source.invalid)]
    items.sort()
    positions = np.empty(len(source), dtype=np.int64)
    invalid_positions = np.empty(len(source.invalid), dtype=np.int64)
    ids = []
    for position, (_, kind, index) in enumerate(items):
        if kind == 0:
            positions[index] = position
            ids.append(source.ids[index])
        else:
            invalid_positions[index] = position
            ids.append(str(source.invalid[index]["id"]))
    return positions, invalid_positions, ids


def _skipped_records(
    dataset: GraphDataset,
    positions: np.ndarray,
    invalid_positions: np.ndarray,
    n_records: int,
    n_folds: int,
    seed: int,
) -> list[dict[str, Any]]:
    """The task's records without a graph: id, reason and the fold they would be tested in."""
    fold_of_record = np.empty(n_records, dtype=np.int64)
    for k, (_, test) in enumerate(kfold_indices(n_records, n_folds, seed)):
        fold_of_record[test] = k
    invalid = iter(invalid_positions.tolist())  # the manifest lists them in file order
    report = []
    for entry in dataset.manifest["skipped"]:
        record = entry.get("record")
        position = next(invalid) if record is None else int(positions[record])
        report.append(
            {"id": entry["id"], "reason": entry["reason"], "fold": int(fold_of_record[position])}
        )
    return report


def _fingerprint(
    config: TrainConfig, task: str, n_folds: int, seed: int, val: float, skipped: bool = False
) -> str:
    payload = config.model_dump(mode="json") | {"task": task, "folds": [n_folds, seed, val]}
    if skipped:  # folds over all records, skipped ones left out (older runs: over the rest)
        payload["folds"].append("all records")
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
    _write_test_predictions(fold_dir, dataset, test_rows, device, predictor)
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
        "test_predictions": PREDICTIONS_FILE,
    }


def _write_test_predictions(
    fold_dir: Path,
    dataset: GraphDataset,
    test_rows: np.ndarray,
    device: str = "auto",
    predictor: Any = None,
) -> Path:
    """``fold_<k>/test_predictions.csv``: id, reference and prediction of each test record.

    Uses ``predictor`` (the fold's best checkpoint) when given, else loads it on ``device``.
    """
    from atomlens.inference import load_model
    from atomlens.training.trainer import predict_indices

    if predictor is None:
        predictor = load_model(fold_dir, "best", device)
    predicted = predict_indices(predictor.model, dataset, test_rows, predictor.scaling, 256)
    reference = np.asarray(dataset.targets[test_rows, 0])
    ids = dataset.ids[test_rows]
    rows = [[str(i), float(r), float(p)] for i, r, p in zip(ids, reference, predicted, strict=True)]
    return write_csv(fold_dir / PREDICTIONS_FILE, ["id", "reference", "prediction"], rows)


def read_test_predictions(fold_dir: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(ids, reference, prediction)`` of a fold's ``test_predictions.csv``."""
    import csv

    path = Path(fold_dir) / PREDICTIONS_FILE
    if not path.is_file():
        raise DataError(f"'{path}' is missing; rerun the benchmark command to write it")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    ids = [csv_text(r["id"]) for r in rows]
    reference = np.array([float(r["reference"]) for r in rows])
    return ids, reference, np.array([float(r["prediction"]) for r in rows])


def _regression_scores(reference: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MatBench's regression scores of one fold: mae, rmse, mape, max_error."""
    error = predicted - reference
    usable = np.abs(reference) > 1e-5  # MatBench's MAPE leaves out near-zero references
    mape = (
        float(np.mean(np.abs(error[usable] / reference[usable]))) if usable.any() else float("nan")
    )
    return {
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mape": mape,
        "max_error": float(np.max(np.abs(error))),
    }


def _immutified(value: dict[str, Any]) -> dict[str, Any]:
    """A dict as MatBench hashes it: keys sorted at every dict level, lists as tuples."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict):
            out[key] = _immutified(item)
        elif isinstance(item, list):
            out[key] = tuple(item)
        else:
            out[key] = item
    return dict(sorted(out.items()))


def matbench_hash(value: dict[str, Any]) -> str:
    """MatBench's hash of a result dict (without its ``hash`` key): SHA-256 of its JSON."""
    return hashlib.sha256(json.dumps(_immutified(value)).encode("utf-8")).hexdigest()


def matbench_results_dict(
    out_dir: Path, task: str, n_folds: int, summary: dict[str, Any]
) -> dict[str, Any]:
    """The benchmark's test predictions in MatBench's result-file format.

    The layout of ``MatbenchBenchmark.to_file``: ``@module``/``@class``, ``version``,
    ``benchmark_name``, ``datestamp``, ``user_metadata``, ``tasks`` -> task ->
    (``@module``/``@class``, ``benchmark_name``, ``dataset_name``, ``results`` ->
    ``fold_<k>`` -> ``data`` {record id: prediction}, ``parameters``, ``scores`` {mae,
    rmse, mape, max_error}) and ``hash`` (SHA-256 of the rest). Record ids are the data
    source's (``mb-<task>-NNNN`` for MatBench). MatBench's own validation accepts only its
    tasks with every record predicted: a non-MatBench task, or one with skipped records
    (listed in each fold's ``parameters``), gives a file of the same shape it will not load.
    """
    results: dict[str, Any] = {}
    skipped = summary.get("skipped_records", [])
    for k in range(n_folds):
        ids, reference, predicted = read_test_predictions(out_dir / f"fold_{k}")
        results[f"fold_{k}"] = {
            "data": {i: float(p) for i, p in zip(ids, predicted, strict=True)},
            "parameters": {
                "skipped_ids": [s["id"] for s in skipped if s["fold"] == k],
            },
            "scores": _regression_scores(reference, predicted),
        }
    benchmark = MATBENCH_BENCHMARK if task.startswith("matbench_") else "atomlens"
    document: dict[str, Any] = {
        "@module": "matbench.bench",
        "@class": "MatbenchBenchmark",
        "version": MATBENCH_VERSION,
        "tasks": {
            task: {
                "@module": "matbench.task",
                "@class": "MatbenchTask",
                "benchmark_name": benchmark,
                "dataset_name": task,
                "results": results,
            }
        },
        "user_metadata": {
            "algorithm": f"atomlens {summary['model']}",
            "target": summary["target"],
            "unit": summary["unit"],
            "config": summary["config"],
        },
        "benchmark_name": benchmark,
        "datestamp": datetime.datetime.now(datetime.UTC).strftime("%Y.%m.%d %H:%M.%S"),
    }
    document["hash"] = matbench_hash(document)
    return document


def write_matbench_results(path: Path, document: dict[str, Any]) -> Path:
    """Write a MatBench result dict as gzip-compressed JSON (``results.json.gz``), atomically."""
    with atomic_path(path) as tmp, gzip.open(tmp, "wt", encoding="utf-8") as handle:
        json.dump(document, handle)
    return path


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
            "fold_definition": "KFold(shuffle=True) over all records of the task "
            "(MatBench's); skipped records leave their fold",
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
