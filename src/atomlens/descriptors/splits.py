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
    """The paper's random (train, test) row split; groups are ignored.

    The rows are exactly those of scikit-learn's
    ``train_test_split(rows, test_size=test_fraction, random_state=seed)``, in its order
    (the paper: ``test_size=0.15, random_state=62``), so a forest sees its training rows
    in the same order as the paper's.

    Args:
        n_rows: Rows in the table.
        test_fraction: Fraction of rows held out, in (0, 1); the test set has
            ceil(test_fraction * n_rows) rows, as in scikit-learn.
        seed: ``random_state`` of the split.

    Raises:
        DataError: For a fraction outside (0, 1) or a split that leaves a side empty.
    """
    from sklearn.model_selection import train_test_split

    if not 0 < test_fraction < 1:
        raise DataError(f"test fraction must be in (0, 1), got {test_fraction}")
    if n_rows < 2:
        raise DataError(f"{n_rows} row(s) cannot be split into train and test")
    try:
        train, test = train_test_split(
            np.arange(n_rows), test_size=test_fraction, random_state=seed
        )
    except ValueError as exc:  # a side would be empty
        raise DataError(
            f"cannot split {n_rows} rows with test fraction {test_fraction}: {exc}"
        ) from None
    return np.asarray(train), np.asarray(test)
