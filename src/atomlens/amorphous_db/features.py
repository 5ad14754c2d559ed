"""The structures ``atomlens featurize --db`` reads from an amorphous database.

One structure per finished job: its final structure, with the labels its ``final.extxyz``
file carries (``id`` = job id, ``temperature`` in K, ``lnD`` when D > 0). Featurizing them
gives the same table as featurizing those files: id, composition, temperature, lnD, the
inverse thermal energy ``inv_kBT`` = 1/(kB T) that featurize adds, and the features.
"""

from __future__ import annotations

from pathlib import Path

from atomlens.errors import DataError
from atomlens.structures.io import from_ase
from atomlens.structures.record import Structure

LABELS = ("id", "temperature", "lnD")


def database_structures(db: str | Path) -> list[Structure]:
    """The final structures of the finished jobs, in row order, with their labels.

    Raises:
        DataError: When the database is missing or holds no finished job.
    """
    from atomlens.amorphous_db.store import Store

    store = Store(db, create=False)
    structures = []
    for row in store.db.select(kind="job", status="done"):
        atoms = row.toatoms()
        atoms.calc = None  # the file carries no energy either
        values = {"id": row.job_id} | dict(row.key_value_pairs)
        atoms.info = {k: values[k] for k in LABELS if k in values}
        if "temperature" in atoms.info:
            atoms.info["temperature"] = float(atoms.info["temperature"])
        structures.append(from_ase(atoms, source=str(db)))
    if not structures:
        raise DataError(f"--db '{db}' holds no finished job (kind=job, status=done)")
    return structures
