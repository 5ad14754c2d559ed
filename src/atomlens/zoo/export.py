"""Export a finished training run as a shipped model (maintainers: ``atomlens models export``).

The export evaluates the run's best checkpoint on its full test split (``atomlens evaluate``,
which also writes ``evaluation_test.json`` and ``parity_test.png`` into the run) and on the
fixed subset of :data:`~atomlens.zoo.SUBSET_SIZE` test structures, writes
the model folder ``src/atomlens/zoo/<name>/`` of a source checkout (staged, then renamed into
place) and the subset's structures with their labels to ``tests/data/zoo/<name>.extxyz``, so
that the tests recompute the card's subset MAE without the data set or the network.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

import atomlens
from atomlens.datasets import GraphDataset, load_source
from atomlens.errors import DataError
from atomlens.files import atomic_path, write_json_atomic
from atomlens.inference import Predictor, load_model
from atomlens.structures.io import to_ase
from atomlens.structures.record import Structure
from atomlens.training.evaluate import evaluate_run
from atomlens.training.trainer import dataset_periodicity
from atomlens.zoo import (
    CARD,
    CONFIG,
    HISTORY,
    METADATA,
    SUBSET_RELATIVE_TOLERANCE,
    SUBSET_RULE,
    SUBSET_SIZE,
    WEIGHTS,
    ShippedModel,
    check_name,
    shipped_models,
)

MODEL_LABELS = {"scann": "SCANN", "scann_plus": "SCANN+", "sen": "SEN"}
# Metadata keys a shipped model keeps (the run's cache_entry is a path on the trainer's machine).
SHIPPED_METADATA = (
    "target",
    "unit",
    "scaling",
    "graph",
    "elements",
    "periodic",
    "parameters",
    "split",
    "trained_on",
    "versions",
)


def default_checkout() -> Path:
    """The source checkout atomlens is installed from (editable install).

    Raises:
        DataError: If atomlens is not installed from a checkout.
    """
    root = Path(atomlens.__file__).resolve().parents[2]
    if not ((root / "pyproject.toml").is_file() and (root / "tests").is_dir()):
        raise DataError(
            f"atomlens runs from '{Path(atomlens.__file__).parent}', not from a source "
            "checkout; pass --checkout (the folder holding src/atomlens and tests)"
        )
    return root


def fixture_path(checkout: Path, name: str) -> Path:
    """The test fixture of model ``name``: its subset structures with their labels."""
    return Path(checkout) / "tests" / "data" / "zoo" / f"{name}.extxyz"


def subset_mae(model: Predictor, fixture: Path) -> tuple[float, int]:
    """MAE of ``model`` on a fixture written by :func:`export_run`, and its size."""
    source = load_source(str(fixture), targets=[model.target])
    predicted = np.array([p.value for p in model.predict(source.structures)])
    return float(np.abs(predicted - source.targets[:, 0]).mean()), len(source)


def export_run(
    run_dir: Path | str,
    name: str,
    *,
    data_description: str | None = None,
    checkout: Path | str | None = None,
    device: str = "auto",
) -> ShippedModel:
    """Export the best checkpoint of a finished run as the shipped model ``name``.

    Args:
        run_dir: The training run (with ``training_summary.json``: training has finished).
        name: The model's name, e.g. ``qm9-homo``.
        data_description: The data as the card states it (default: the config's source).
        checkout: The source checkout to write into (default: the one atomlens runs from).
        device: Where the evaluation runs.

    Returns:
        The shipped model as the registry of ``checkout`` now lists it.

    Raises:
        DataError: If the run is unfinished, its graph cache is gone or its test split empty.
    """
    name = check_name(name)
    run_dir = Path(run_dir)
    checkout = default_checkout() if checkout is None else Path(checkout)
    zoo = checkout / "src" / "atomlens" / "zoo"
    fixture = fixture_path(checkout, name)
    summary_file = run_dir / "training_summary.json"
    if not summary_file.is_file():
        raise DataError(
            f"'{run_dir}' has no training_summary.json: training has not finished; "
            "export a finished run"
        )
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    run = load_model(run_dir, "best", device)
    if run.shipped:
        raise DataError(f"'{run_dir}' is a shipped model already; export a training run")
    test_metrics = evaluate_run(run_dir, "test", "best", device)  # the full test split
    subset = np.sort(run.split_indices("test"))[:SUBSET_SIZE]
    structures, labels = run.records_at(subset, "the test subset")
    metadata = {k: run.metadata[k] for k in SHIPPED_METADATA if k in run.metadata}
    if "periodic" not in metadata:  # runs trained before metadata recorded it
        metadata["periodic"] = dataset_periodicity(GraphDataset(run.metadata["cache_entry"]))

    zoo.mkdir(parents=True, exist_ok=True)
    staging = zoo / f".{name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        weights = _fp32_weights(run.model.state_dict())
        torch.save(weights, staging / WEIGHTS)
        shutil.copyfile(run_dir / "config.yaml", staging / CONFIG)
        has_history = (run_dir / "metrics.csv").is_file()
        if has_history:
            shutil.copyfile(run_dir / "metrics.csv", staging / HISTORY)
        write_json_atomic(staging / METADATA, metadata)
        with atomic_path(fixture) as fixture_tmp:
            _write_fixture(fixture_tmp, structures, labels, run.target)
            model = load_model(staging, device=device)  # the folder as it will ship
            mae, n = subset_mae(model, fixture_tmp)
            card = _card(
                name,
                run,
                metadata,
                summary,
                test_metrics,
                {"n": n, "mae": mae},
                data_description,
                hashlib.sha256((staging / WEIGHTS).read_bytes()).hexdigest(),
                has_history,
            )
            write_json_atomic(staging / CARD, card)
            _replace_folder(staging, zoo / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return shipped_models(zoo)[name]


def _fp32_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict on the CPU with floating tensors in fp32 (others as they are)."""
    return {
        key: value.detach()
        .to("cpu", torch.float32 if value.is_floating_point() else value.dtype)
        .contiguous()
        .clone()
        for key, value in state.items()
    }


def _write_fixture(
    path: Path, structures: list[Structure], labels: np.ndarray, target: str
) -> None:
    """The subset as extxyz: positions, cell, pbc, ``id`` and the label ``target`` only."""
    import ase.io

    frames = []
    for k, (record, label) in enumerate(zip(structures, labels, strict=True)):
        record_id = next(
            (
                str(record.info[key])
                for key in ("id", "material_id", "qm9_id")
                if key in record.info
            ),
            f"{record.source}:{record.frame}" if record.source else str(k),
        )
        frames.append(
            to_ase(replace(record, info={"id": record_id, target: float(label)}, arrays={}))
        )
    ase.io.write(path, frames, format="extxyz")


def _replace_folder(new: Path, final: Path) -> None:
    """Rename ``new`` to ``final``; an existing ``final`` is set aside first, then removed."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(new, final)
    shutil.rmtree(old, ignore_errors=True)


def _card(
    name: str,
    run: Predictor,
    metadata: dict[str, Any],
    summary: dict[str, Any],
    test: dict[str, Any],
    subset: dict[str, Any],
    data_description: str | None,
    weights_sha256: str,
    has_history: bool,
) -> dict[str, Any]:
    """The model card (strict JSON)."""
    from ase.data import chemical_symbols

    config = run.config
    periodic = metadata["periodic"]
    structures = {True: "crystals", False: "molecules"}.get(periodic, "molecules and crystals")
    model = MODEL_LABELS.get(getattr(config.model, "variant", config.model.name), "model")
    unit = run.unit
    t = config.training
    budget = f"{t.max_minutes:g} min wall clock" if t.max_minutes else f"{t.epochs} epochs"
    device = str(metadata.get("trained_on", {}).get("device", "unknown device"))
    threads = f", {t.threads} thread(s)" if t.threads and device == "cpu" else ""
    split = metadata["split"]
    card: dict[str, Any] = {
        "name": name,
        "task": f"{model} predicting {run.target}"
        + (f" ({unit})" if unit else "")
        + f" of {structures}",
        "model": model,
        "target": run.target,
        "unit": unit,
        "structures": structures,
        "elements": [chemical_symbols[z] for z in metadata["elements"]],
        "data": data_description or config.data.source,
        "source": config.data.source,
        "split": {
            "train": split["train"],
            "val": split["val"],
            "test": split["test"],
            "seed": split["seed"],
            "kind": "random (atomlens.datasets.random_split; indices in the run's split.json)",
        },
        "training_budget": f"{budget} on {device}{threads}",
        "training_minutes": round(float(summary["train_seconds"]) / 60, 1),
        "epochs": int(summary["epochs"]),
        "best_epoch": int(summary["best_epoch"]),
        "stopped": summary["stopped"],
        "test": {k: test[k] for k in ("n", "mae", "rmse", "r2")},
        "test_subset": {
            "n": subset["n"],
            "rule": SUBSET_RULE,
            "mae": subset["mae"],
            "mae_tolerance": SUBSET_RELATIVE_TOLERANCE * subset["mae"],
            "fixture": f"tests/data/zoo/{name}.extxyz",
        },
        "parameters": int(metadata["parameters"]),
        "atomlens_version": atomlens.__version__,
        "trained_with": metadata.get("versions", {}),
        "date": datetime.datetime.now(datetime.UTC).date().isoformat(),
        "retrain": f"atomlens train --model {name}",
        "weights_sha256": weights_sha256,
    }
    if has_history:
        card["training_history"] = (
            f"{HISTORY}: per epoch, train loss, validation MAE and RMSE, learning rate, seconds"
        )
    return card
