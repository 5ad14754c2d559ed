"""Trained models shipped inside the package: one folder per model, discovered, never listed.

A shipped model is a folder ``atomlens/zoo/<name>/`` holding

- ``weights.pt``: the model's state dict (fp32 tensors only; read with ``weights_only=True``),
- ``config.yaml``: the resolved training config (builds the model; ``atomlens train --model
  <name>`` retrains it),
- ``metadata.json``: what prediction needs (target, unit, scaling, graph kind and parameters,
  elements seen in training, molecules or crystals),
- ``card.json``: the model card (task, data, split, budget, test metrics, ...).

``atomlens models export RUN --name NAME`` writes such a folder from a finished run. The
registry is whatever folders hold a ``card.json``; there is no second list. The environment
variable ``ATOMLENS_ZOO`` points the registry at another folder (used by the tests).

This module is light (no torch): ``atomlens models`` lists the cards without loading weights.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atomlens.errors import DataError

ZOO_ENV = "ATOMLENS_ZOO"
# The files of one shipped model (pyproject.toml's package-data names the same four).
WEIGHTS, CONFIG, METADATA, CARD = "weights.pt", "config.yaml", "metadata.json", "card.json"
MODEL_FILES = (WEIGHTS, CONFIG, METADATA, CARD)
# The run's per-epoch log (its metrics.csv), shipped beside them by exports that have one.
HISTORY = "training_history.csv"
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]*")
# The fixed test subset whose MAE the card records and the tests recompute.
SUBSET_SIZE = 200
SUBSET_RULE = "the first 200 indices of the test split in sorted order"
SUBSET_RELATIVE_TOLERANCE = 0.01  # of the card's subset MAE


@dataclass(frozen=True)
class ShippedModel:
    """One model of the zoo.

    Attributes:
        name: Its name, e.g. ``qm9-homo`` (the folder's name).
        path: Its folder.
        card: The parsed ``card.json``.
    """

    name: str
    path: Path
    card: dict[str, Any]

    @property
    def size_bytes(self) -> int:
        """Bytes of its files."""
        files = [self.path / f for f in (*MODEL_FILES, HISTORY)]
        return sum(f.stat().st_size for f in files if f.is_file())


def zoo_dir() -> Path:
    """The folder of shipped models: ``$ATOMLENS_ZOO`` if set, else this package's folder."""
    override = os.environ.get(ZOO_ENV)
    return Path(override) if override else Path(__file__).resolve().parent


def check_name(name: str) -> str:
    """A model name: lower-case letters, digits and hyphens, e.g. ``qm9-homo``."""
    if not NAME_PATTERN.fullmatch(name):
        raise DataError(
            f"model name {name!r} must be lower-case letters, digits and hyphens (e.g. qm9-homo)"
        )
    return name


def shipped_models(folder: Path | None = None) -> dict[str, ShippedModel]:
    """The shipped models by name (sorted): every folder of the zoo that holds a card.

    Raises:
        DataError: If a model folder is incomplete or its card is unreadable.
    """
    folder = zoo_dir() if folder is None else Path(folder)
    models: dict[str, ShippedModel] = {}
    if not folder.is_dir():
        return models
    for path in sorted(folder.iterdir()):
        if not path.is_dir() or not NAME_PATTERN.fullmatch(path.name):
            continue  # __pycache__, hidden staging folders of an export
        if not (path / CARD).is_file():
            continue
        missing = [f for f in MODEL_FILES if not (path / f).is_file()]
        if missing:
            raise DataError(f"shipped model '{path}' lacks {', '.join(missing)}; export it again")
        try:
            card = json.loads((path / CARD).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read the model card '{path / CARD}': {exc}") from None
        if not isinstance(card, dict) or card.get("name") != path.name:
            raise DataError(f"the model card '{path / CARD}' does not name '{path.name}'")
        models[path.name] = ShippedModel(path.name, path, card)
    return models


def shipped_model(name: str) -> ShippedModel:
    """The shipped model ``name``; a one-line error lists the names when there is none."""
    models = shipped_models()
    if name not in models:
        raise DataError(f"no shipped model {name!r}; {_available(models)}")
    return models[name]


def resolve_model(spec: Path | str) -> tuple[Path, str | None]:
    """Where a model lives: an existing directory is a run; else a shipped model's name.

    A directory holding ``weights.pt`` is a shipped model's folder (a run keeps its weights
    in ``checkpoints/``); its name is the folder's.

    Returns:
        ``(folder, name)``: ``name`` is the shipped model's name, None for a run directory.

    Raises:
        DataError: One line listing the shipped models when ``spec`` is neither.
    """
    path = Path(spec)
    if path.is_dir():
        return path, (path.name if (path / WEIGHTS).is_file() else None)
    models = shipped_models()
    if str(spec) in models:
        return models[str(spec)].path, str(spec)
    what = "is a file: neither" if path.exists() else "is neither"
    raise DataError(f"'{spec}' {what} a run directory nor a shipped model; {_available(models)}")


def zoo_size_bytes(folder: Path | None = None) -> int:
    """Total bytes of the shipped models' files."""
    return sum(m.size_bytes for m in shipped_models(folder).values())


def _available(models: dict[str, ShippedModel]) -> str:
    if not models:
        return "this installation ships no models (see `atomlens models`)"
    return f"shipped models: {', '.join(models)}"
