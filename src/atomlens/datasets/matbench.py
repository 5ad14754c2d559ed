"""MatBench tasks through matminer (needs network access the first time)."""

from __future__ import annotations

import numpy as np

from atomlens.errors import DataError
from atomlens.structures.io import from_pymatgen


def load_matbench(task: str, *, limit: int | None = None):  # -> Source
    """Load a MatBench task (e.g. ``matbench_mp_e_form``) as a Source.

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
    if limit is not None:
        frame = frame.iloc[:limit]
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
        ids=[f"{task}:{i}" for i in frame.index],
        fingerprint=f"matbench:{task}:{len(frame)}",
    )
