"""Checkpoints: tensors and plain values only, written atomically, read with weights_only.

Checkpoints are device-independent: state dicts are saved as they are (CUDA tensors
included) and every load maps them to an explicit device (CPU unless asked otherwise).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from atomlens.errors import DataError
from atomlens.files import atomic_path


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (temporary file + rename)."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``: no arbitrary code).

    Args:
        path: The checkpoint file.
        map_location: Device every tensor is loaded onto (default: CPU).

    Raises:
        DataError: If the file is missing, corrupt, or holds more than tensors and values.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint not found: '{path}'")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt or foreign file
        raise DataError(f"cannot read checkpoint '{path}': {exc}") from None
