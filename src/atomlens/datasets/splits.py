"""Train/validation/test splits saved with their seed, and training-split statistics."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atomlens.errors import DataError
from atomlens.files import write_json_atomic


@dataclass(frozen=True)
class Split:
    """Index arrays of a split and how it was made."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    seed: int
    n_total: int

    def save(self, path: Path | str) -> None:
        """Write the split as JSON, atomically."""
        path = Path(path)
        payload = {
            "seed": self.seed,
            "n_total": self.n_total,
            **{name: getattr(self, name).tolist() for name in ("train", "val", "test")},
        }
        write_json_atomic(path, payload, indent=None)

    @classmethod
    def load(cls, path: Path | str) -> Split:
        """Read a split written by ``save``."""
        try:
            payload = json.loads(Path(path).read_text())
            return cls(
                **{k: np.asarray(payload[k], dtype=np.int64) for k in ("train", "val", "test")},
                seed=int(payload["seed"]),
                n_total=int(payload["n_total"]),
            )
        except (OSError, KeyError, ValueError) as exc:
            raise DataError(f"cannot read split file '{path}': {exc}") from None


def random_split(
    n_total: int,
    *,
    val: float | int = 0.1,
    test: float | int = 0.1,
    train: float | int | None = None,
    seed: int = 0,
) -> Split:
    """Shuffle ``range(n_total)`` with ``seed`` and cut it into train/val/test.

    Sizes may be fractions (of ``n_total``) or counts; ``train`` defaults to the rest.
    """

    def count(size: float | int) -> int:
        value = round(size * n_total) if isinstance(size, float) else int(size)
        if value < 0:
            raise DataError(f"split sizes must be >= 0, got {size}")
        return value

    n_val, n_test = count(val), count(test)
    n_train = n_total - n_val - n_test if train is None else count(train)
    if n_train <= 0 or n_train + n_val + n_test > n_total:
        raise DataError(
            f"cannot split {n_total} records into train={n_train}, val={n_val}, test={n_test}"
        )
    order = np.random.default_rng(seed).permutation(n_total)
    return Split(
        train=np.sort(order[:n_train]),
        val=np.sort(order[n_train : n_train + n_val]),
        test=np.sort(order[n_train + n_val : n_train + n_val + n_test]),
        seed=seed,
        n_total=n_total,
    )


def target_statistics(targets: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each target over the training split only."""
    if train.size == 0:
        raise DataError("the training split is empty")
    values = np.asarray(targets[train], dtype=np.float64)
    std = values.std(axis=0)
    return values.mean(axis=0), np.where(std > 0, std, 1.0)
