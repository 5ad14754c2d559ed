"""Surrogate quality: partial RDFs of a database entry against a reference, stored in its row."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from atomlens.errors import DataError


def store_rdf_r2(
    db: str,
    job_id: str,
    reference: Path,
    reference_rdfs: dict[str, np.ndarray],
    r_max: float,
    bins: int,
    every: int = 1,
) -> dict[str, float]:
    """R² of a job's anneal RDFs against ``reference_rdfs``; written to the job's row.

    The row gains ``rdf_r2_<A>_<B>`` per shared element pair and ``rdf_r2_total``, plus
    ``rdf_reference`` (the path) and ``rdf_reference_sha256``.

    Raises:
        DataError: For an unknown or unfinished job, or a trajectory file that is missing
            or no longer the one the row's checksum names.
    """
    from atomlens.amorphous_db.jobs import sha256_file
    from atomlens.amorphous_db.store import Store, clean
    from atomlens.diffusion.msd import read_trajectory
    from atomlens.diffusion.rdf import partial_rdfs, rdf_r2

    store = Store(db, create=False)
    row = next(iter(store.db.select(kind="job", job_id=job_id)), None)
    if row is None:
        raise DataError(f"--db '{db}' has no job '{job_id}'")
    if row.status != "done":
        raise DataError(f"--db '{db}': job '{job_id}' is {row.status}, not done")
    work_dir = store.work_dir()
    path = (work_dir or Path(".")) / row.trajectory
    if not path.is_file():
        raise DataError(f"job '{job_id}': its trajectory '{path}' is missing")
    if sha256_file(path) != row.trajectory_sha256:
        raise DataError(f"job '{job_id}': '{path}' changed since the row was written (sha256)")
    _, rdfs = partial_rdfs(read_trajectory(path, 1.0), r_max, bins, every)
    scores = rdf_r2(reference_rdfs, rdfs)
    if not scores:
        raise DataError(f"'{reference}' and job '{job_id}' share no element pair")
    values = {f"rdf_r2_{k.replace('-', '_')}": v for k, v in scores.items()}
    values |= {
        "rdf_reference": str(Path(reference).resolve()),
        "rdf_reference_sha256": sha256_file(reference),
        "rdf_r_max": float(r_max),
        "rdf_bins": int(bins),
    }
    store.db.update(row.id, **clean({k: v for k, v in values.items() if _finite(v)}))
    return scores


def _finite(value: object) -> bool:
    return not isinstance(value, float) or math.isfinite(value)
