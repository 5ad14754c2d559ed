"""MatBench tasks through matminer (needs network access the first time)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from atomlens.errors import DataError
from atomlens.structures.io import from_pymatgen


def matbench_ids(task: str, index: Any) -> list[str]:
    """MatBench's record ids (``mb-<task>-NNNN``) for the index of a task's table.

    MatBench names record ``i`` of the table matminer loads ``mb-<name>-<i + 1>``, zero
    padded to ``floor(log10(n)) + 1`` digits for ``n`` records, ``<name>`` being the task
    name with ``matbench`` shortened to ``mb`` and ``_`` as ``-`` (``matbench_mp_gap`` ->
    ``mb-mp-gap-000001``). An index that is not a plain integer range (already named
    records) is kept as it is.
    """
    labels = list(index)
    if not labels:
        return []
    if not all(isinstance(i, int | np.integer) for i in labels):
        return [str(i) for i in labels]
    digits = math.floor(math.log(len(labels), 10)) + 1  # MatBench's own expression
    prefix = task.replace("matbench", "mb").replace("_", "-")
    return [f"{prefix}-{int(i) + 1:0{digits}d}" for i in labels]


def load_matbench(task: str, *, limit: int | None = None):  # -> Source
    """Load a MatBench task (e.g. ``matbench_mp_e_form``) as a Source.

    Record ids are MatBench's (see :func:`matbench_ids`), so predictions can be matched
    with MatBench's folds and result files.

    Raises:
        DataError: If matminer is not installed or the data cannot be downloaded.
    """
    from atomlens.datasets.sources import Source

    try:
        from matminer.datasets import load_dataset
    except ImportError:
        raise DataError("MatBench needs matminer: pip install 'atomlens[matbench]'") from None
    try:
        frame = load_dataset(task)
    except Exception as exc:  # network and HTTP errors come in many types
        raise DataError(
            f"could not load MatBench task '{task}' through matminer ({type(exc).__name__}: "
            f"{exc}). MatBench data are downloaded on first use: this machine may be offline."
        ) from None
    ids = matbench_ids(task, frame.index)  # numbered over the whole task
    if limit is not None:
        frame = frame.iloc[:limit]
        ids = ids[:limit]
    structure_column = "structure"
    target_columns = [c for c in frame.columns if c != structure_column]
    structures = [
        from_pymatgen(obj, source=f"matbench:{task}", frame=k)
        for k, obj in enumerate(frame[structure_column])
    ]
    return Source(
        name=task if limit is None else f"{task}_first{limit}",
        structures=structures,
        targets=frame[target_columns].to_numpy(dtype=np.float64),
        target_names=tuple(target_columns),
        ids=ids,
        fingerprint=f"matbench:{task}:{len(frame)}",
    )
