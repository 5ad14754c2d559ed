"""Feature tables (CSV): numeric feature columns, a target, optional group labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from atomlens.errors import DataError
from atomlens.files import csv_text


def read_csv_frame(path: Path | str) -> Any:
    """``pandas.read_csv(path)`` with the neutralising of ``files.write_csv`` undone.

    Column names and text cells get back their original text, so ids written as ``'-cmd``
    read as ``-cmd``. Pandas errors propagate.
    """
    import pandas as pd

    frame = pd.read_csv(path)
    frame.columns = [csv_text(c) if isinstance(c, str) else c for c in frame.columns]
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].map(lambda v: csv_text(v) if isinstance(v, str) else v)
    return frame


@dataclass(frozen=True)
class Table:
    """A learning table read from CSV.

    Attributes:
        path: The file.
        x: Feature matrix (n_rows, n_features).
        y: Target (n_rows,).
        feature_names: Names of the feature columns.
        target: Name of the target column.
        groups: Group label of each row (for grouped CV), or None.
        ids: Row identifiers (the ``id`` column when present, else row numbers).
    """

    path: Path
    x: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    target: str
    groups: np.ndarray | None
    ids: np.ndarray


def read_table(
    path: Path | str,
    target: str,
    *,
    group_by: str | None = None,
    exclude: tuple[str, ...] = (),
    features: tuple[str, ...] | None = None,
) -> Table:
    """Read a CSV table; every numeric column other than the target is a feature.

    Args:
        path: CSV file with a header row.
        target: Column to predict.
        group_by: Column whose values group rows (e.g. ``composition``), or None.
        exclude: Columns that are not features.
        features: Use only these columns as features (default: all numeric ones).

    Raises:
        DataError: Naming the file, row and column for missing columns, NaN targets or
            NaN features, and for tables with no rows or no feature.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"'{path}': no such file")
    try:
        frame = read_csv_frame(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"'{path}' is not a readable CSV table: {exc}") from None
    if frame.empty:
        raise DataError(f"'{path}' has no rows")
    for column in [target, *([group_by] if group_by else []), *(features or ())]:
        if column not in frame.columns:
            raise DataError(
                f"'{path}' has no column {column!r}; columns: {', '.join(map(str, frame.columns))}"
            )
    ids = (
        frame["id"].astype(str).to_numpy()
        if "id" in frame.columns
        else np.array([str(i) for i in range(len(frame))])
    )
    y = pd.to_numeric(frame[target], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        raise DataError(
            f"'{path}' row {bad[0] + 2} (id {ids[bad[0]]}): target {target!r} is "
            f"{frame[target].iloc[bad[0]]!r}, not a finite number ({bad.size} such rows)"
        )
    skip = {target, "id", *(exclude or ()), *([group_by] if group_by else [])}
    if features is None:
        names = [
            str(c)
            for c in frame.columns
            if c not in skip and pd.api.types.is_numeric_dtype(frame[c])
        ]
    else:
        names = list(features)
    if not names:
        raise DataError(f"'{path}' has no numeric feature column besides {target!r}")
    x = frame[names].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    rows, cols = np.nonzero(~np.isfinite(x))
    if rows.size:
        raise DataError(
            f"'{path}' row {rows[0] + 2} (id {ids[rows[0]]}): feature {names[cols[0]]!r} is "
            f"not a finite number ({rows.size} such cells); fix or drop those rows"
        )
    groups = frame[group_by].astype(str).to_numpy() if group_by else None
    return Table(path, x, y, names, target, groups, ids)
