"""The amorphous database: an ASE database (SQLite file, or a ``postgresql://`` URL).

Rows of ``kind=job`` hold a job's final structure (with its energy and forces) and its
results as key-value pairs; rows of ``kind=arrhenius`` (no atoms) hold one Arrhenius fit per
composition. The plans the database was built from and its work folder are in the
database metadata. Every row is written in one transaction with the removal of the row it
replaces, so a killed build never leaves a half-written or duplicated row.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atomlens.errors import DataError

if TYPE_CHECKING:
    from atomlens.amorphous_db.plan import Job, Plan

META_KEY = "atomlens_amorphous_db"
FORMAT = 1


def is_url(db: str) -> bool:
    """True for a server URL such as ``postgresql://user@host/name``."""
    return "://" in str(db)


def connect(db: str | Path, *, create: bool = True) -> Any:
    """The ASE database at ``db`` (a file path is SQLite whatever its suffix)."""
    from ase.db import connect as ase_connect

    if not is_url(str(db)):
        path = Path(db)
        if not create and not path.is_file():
            raise DataError(f"--db '{db}': no such database")
        if path.is_dir():
            raise DataError(f"--db '{db}' is a folder, not a database file")
        path.parent.mkdir(parents=True, exist_ok=True)
        # No ASE lock file: it is created exclusively and removed on release, so a killed
        # build would leave it behind and every later write would wait for ever. SQLite's
        # own transactions serialise the writers.
        return ase_connect(str(path), type="db", use_lock_file=False)
    return ase_connect(str(db), use_lock_file=False)


def clean(values: dict[str, Any]) -> dict[str, Any]:
    """Key-value pairs ASE accepts: plain numbers and strings; non-finite numbers dropped."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            continue  # absent means unknown (ASE would store NaN as null anyway)
        out[key] = value
    return out


class Store:
    """An amorphous database and the metadata atomlens keeps in it."""

    def __init__(self, db: str | Path, *, create: bool = True) -> None:
        self.name = str(db)
        self.db = connect(db, create=create)

    @property
    def meta(self) -> dict[str, Any]:
        """This database's atomlens metadata (plans, work folder); empty when new."""
        return dict(self.db.metadata.get(META_KEY, {}))

    def set_meta(self, meta: dict[str, Any]) -> None:
        """Replace the atomlens metadata (other metadata is kept)."""
        metadata = self.db.metadata
        metadata[META_KEY] = meta
        self.db.metadata = metadata

    def lock_file(self, work_dir: Path) -> Path:
        """The lock serialising metadata updates of concurrent builds."""
        if is_url(self.name):
            return work_dir / "locks" / "database.lock"
        return Path(self.name).with_name(Path(self.name).name + ".atomlens-lock")

    def work_dir(self) -> Path | None:
        """The work folder recorded at the first build (trajectories live there)."""
        value = self.meta.get("work_dir")
        return Path(value) if value else None

    def job_rows(self) -> dict[str, Any]:
        """``job_id -> row`` of every job row."""
        return {row.job_id: row for row in self.db.select(kind="job")}

    def arrhenius_rows(self) -> dict[str, Any]:
        """``composition -> row`` of every Arrhenius row."""
        return {row.composition: row for row in self.db.select(kind="arrhenius")}

    def check_plan(self, plan: Plan, plan_text: str, extend: bool, work_dir: Path) -> None:
        """Record the plan, or refuse another plan (unless ``extend``) and changed job ids.

        Raises:
            DataError: When the database was built from another plan and ``extend`` is
                False, when one of this plan's job ids holds a job of other settings, or
                when the database's work folder differs from ``work_dir``.
        """
        meta = self.meta
        plans = dict(meta.get("plans", {}))
        plan_hash = plan.plan_hash()
        if meta.get("format", FORMAT) != FORMAT:
            raise DataError(f"--db '{self.name}' has amorphous-db format {meta.get('format')}")
        recorded = meta.get("work_dir")
        if recorded and Path(recorded).resolve() != work_dir.resolve():
            raise DataError(
                f"--db '{self.name}' keeps its files in '{recorded}', not '{work_dir}'; "
                "pass --work-dir with that folder"
            )
        rows = self.job_rows()
        for job in plan.jobs():
            row = rows.get(job.job_id)
            if row is not None and row.job_hash != job.job_hash:
                raise DataError(
                    f"--db '{self.name}' holds job {job.job_id} with other settings (plan "
                    f"{row.plan_hash}); a job id is one set of settings: change the seeds or "
                    "use another --db"
                )
        if plans and plan_hash not in plans and not extend:
            raise DataError(
                f"--db '{self.name}' was built from another plan ({', '.join(plans)}; this "
                f"one is {plan_hash}); pass --extend to add this plan's jobs to it"
            )
        if plan_hash not in plans or not recorded:
            plans[plan_hash] = plan_text
            self.set_meta(
                meta | {"format": FORMAT, "plans": plans, "work_dir": str(work_dir.resolve())}
            )

    def write_job(self, job: Job, result: dict[str, Any], plan_hash: str) -> int:
        """Write a job's row, replacing its earlier (failed) row in the same transaction."""
        import ase

        from atomlens import __version__

        values = {
            "kind": "job",
            "job_id": job.job_id,
            "composition": job.composition,
            "temperature": job.temperature,
            "seed": job.seed,
            "species": job.settings["diffusion"]["species"],
            "status": result["status"],
            "plan_hash": plan_hash,
            "job_hash": job.job_hash,
            "atomlens_version": __version__,
        } | result["values"]
        if result["error"]:
            values["error"] = result["error"]
        atoms = result["atoms"] if result["atoms"] is not None else ase.Atoms()
        with self.db:
            old = [row.id for row in self.db.select(kind="job", job_id=job.job_id)]
            row_id = self.db.write(
                atoms, key_value_pairs=clean(values), data={"settings": job.settings}
            )
            if old:  # ASE's delete commits (then vacuums): the new row and the removal at once
                self.db.delete(old)
        return row_id

    def write_arrhenius(self, composition: str, values: dict[str, Any] | None) -> None:
        """Replace a composition's Arrhenius row (``None``: remove it) in one transaction."""
        import ase

        with self.db:
            old = [row.id for row in self.db.select(kind="arrhenius", composition=composition)]
            if values is not None:
                pairs = {"kind": "arrhenius", "composition": composition} | values
                self.db.write(ase.Atoms(), key_value_pairs=clean(pairs))
            if old:  # committed together with the new row (see write_job)
                self.db.delete(old)


@contextmanager
def held(lock_file: Path, what: str) -> Iterator[None]:
    """Wait for and hold the lock serialising metadata updates."""
    from atomlens.locks import exclusive

    with exclusive(lock_file, what, wait=True):
        yield
