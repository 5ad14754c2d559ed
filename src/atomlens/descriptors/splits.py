"""Cross-validation folds for tables: grouped by composition, or plain rows."""

from __future__ import annotations

import numpy as np

from atomlens.errors import DataError


def kfold(
    n_rows: int, n_folds: int, seed: int, groups: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) row indices of each fold; rows of one group never straddle folds.

    Args:
        n_rows: Rows in the table.
        n_folds: Number of folds (>= 2).
        seed: Shuffling seed.
        groups: Group label per row (e.g. the composition), or None for plain shuffled rows.
    """
    from sklearn.model_selection import GroupKFold, KFold

    if n_folds < 2:
        raise DataError(f"need at least 2 folds, got {n_folds}")
    if groups is None:
        if n_rows < n_folds:
            raise DataError(f"{n_rows} rows cannot make {n_folds} folds")
        splitter = KFold(n_folds, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(n_rows)))
    n_groups = len(np.unique(groups))
    if n_groups < n_folds:
        raise DataError(f"{n_groups} groups cannot make {n_folds} grouped folds")
    splitter = GroupKFold(n_folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(n_rows), groups=groups))


def row_split(n_rows: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random (train, test) split of rows, as in the paper (85/15, groups ignored)."""
    if not 0 < test_fraction < 1:
        raise DataError(f"test fraction must be in (0, 1), got {test_fraction}")
    order = np.random.default_rng(seed).permutation(n_rows)
    n_test = max(1, round(test_fraction * n_rows))
    return np.sort(order[n_test:]), np.sort(order[:n_test])
