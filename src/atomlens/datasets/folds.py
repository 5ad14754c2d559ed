"""K-fold splits: MatBench's definition, usable on any data set.

MatBench v0.1 defines its folds as scikit-learn's ``KFold(n_splits=5, shuffle=True,
random_state=18012019)`` over the records of each task, in their stored order. This module
computes the same index sets with numpy alone (the tests check them against scikit-learn),
so a MatBench task and any extxyz data set are split by one rule. Records skipped later
(no graph, no label) do not shift the folds: see :func:`folds_over_records`.
"""

from __future__ import annotations

import numpy as np

from atomlens.errors import DataError

MATBENCH_SEED = 18012019


def kfold_indices(
    n_records: int, n_folds: int = 5, seed: int = MATBENCH_SEED
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) row indices of each fold, identical to shuffled scikit-learn KFold.

    Args:
        n_records: Number of records.
        n_folds: Number of folds (at least 2, at most ``n_records``).
        seed: Shuffle seed (MatBench: 18012019).

    Returns:
        One (sorted train indices, sorted test indices) pair per fold.
    """
    if n_folds < 2:
        raise DataError(f"k-fold needs at least 2 folds, got {n_folds}")
    if n_folds > n_records:
        raise DataError(f"cannot make {n_folds} folds from {n_records} records")
    order = np.arange(n_records)
    np.random.RandomState(seed).shuffle(order)
    sizes = np.full(n_folds, n_records // n_folds)
    sizes[: n_records % n_folds] += 1
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    folds = []
    for k in range(n_folds):
        test = np.sort(order[bounds[k] : bounds[k + 1]])
        train = np.sort(np.concatenate([order[: bounds[k]], order[bounds[k + 1] :]]))
        folds.append((train, test))
    return folds


def folds_over_records(
    record_of_row: np.ndarray, n_records: int, n_folds: int = 5, seed: int = MATBENCH_SEED
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) rows of each fold, the folds computed over all records of a task.

    Rows are the records that made it into the data set (row ``r`` holds record
    ``record_of_row[r]``, a position among all ``n_records``). The folds are
    :func:`kfold_indices` over all records; a record without a row (skipped: invalid
    structure, missing label, no graph) just drops out of its fold, so every other
    record's fold is the one it has in MatBench's split of the whole task.

    Raises:
        DataError: For rows outside ``0..n_records - 1`` or repeated, or a fold left
            without test rows.
    """
    record_of_row = np.asarray(record_of_row, dtype=np.int64)
    if record_of_row.size and (record_of_row.min() < 0 or record_of_row.max() >= n_records):
        raise DataError(f"record positions must lie in 0..{n_records - 1}")
    if np.unique(record_of_row).size != record_of_row.size:
        raise DataError("two rows hold the same record")
    fold_of_record = np.empty(n_records, dtype=np.int64)
    for k, (_, test) in enumerate(kfold_indices(n_records, n_folds, seed)):
        fold_of_record[test] = k
    fold_of_row = fold_of_record[record_of_row]
    folds = []
    for k in range(n_folds):
        test = np.flatnonzero(fold_of_row == k)
        if test.size == 0:
            raise DataError(f"fold {k} has no test records left after skipping")
        folds.append((np.flatnonzero(fold_of_row != k), test))
    return folds


def inner_validation(
    train: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split a fold's training rows into (train, validation) for early stopping."""
    if not 0 < fraction < 1:
        raise DataError(f"the validation fraction must lie in (0, 1), got {fraction}")
    n_val = max(1, round(fraction * len(train)))
    if n_val >= len(train):
        raise DataError(f"{len(train)} training records are too few for a validation split")
    order = np.random.default_rng(seed).permutation(train)
    return np.sort(order[n_val:]), np.sort(order[:n_val])
