"""One job of an amorphous database, run in a worker: melt (shared), anneal, diffusion.

The melt of a (composition, seed) is shared by its temperatures: it runs once, under a file
lock, in ``<work>/melts/<melt_key>`` through :func:`atomlens.diffusion.amorphous.melt_quench`
(its request record, checks and segment resume included). Each anneal runs in
``<work>/jobs/<job_id>`` with the same segment machinery, starting from the melt's exact end
state, so a job gives the same numbers as ``atomlens amorphous`` with the same settings.
The worker returns plain values; only the process that owns the database writes to it.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from atomlens.amorphous_db.plan import Job
from atomlens.errors import AtomlensError
from atomlens.files import atomic_path, write_json_atomic
from atomlens.locks import exclusive
from atomlens.units import AMU_G

_CALCULATORS: dict[str, Any] = {}  # one calculator per worker thread and potential


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def potential_identity(name: str, factory: Callable[[], Any] | None = None) -> tuple[str, str]:
    """(name, version) of a potential: the package version of its code."""
    import importlib.metadata

    if factory is not None:
        name = f"{factory.__module__}:{getattr(factory, '__qualname__', repr(factory))}"
    package = {"chgnet": "chgnet", "emt": "ase"}.get(name, name.partition(":")[0].split(".")[0])
    try:
        return name, importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        pass
    dists = _distributions().get(package, [package])  # an import name unlike its package's
    try:
        return name, importlib.metadata.version(dists[0])
    except importlib.metadata.PackageNotFoundError:
        return name, "unknown"


@functools.cache
def _distributions() -> dict[str, list[str]]:
    import importlib.metadata

    return dict(importlib.metadata.packages_distributions())


def make_potential(potential: dict[str, Any], factory: Callable[[], Any] | None = None) -> Any:
    """The job's ASE calculator, built once per worker process.

    Args:
        potential: The plan's potential section (``name``, ``options``, ``device``).
        factory: A picklable callable returning an ASE calculator (overrides the name).
    """
    import importlib
    import json

    # Per thread: a Dask worker may run jobs in threads, and calculators are not thread-safe.
    key = f"{threading.get_ident()} {json.dumps(potential, sort_keys=True, default=str)}"
    key += repr(factory)
    if key in _CALCULATORS:
        return _CALCULATORS[key]
    name, options = potential["name"], potential.get("options") or {}
    if factory is not None:
        calculator = factory()
    elif name == "emt":  # directly: make_calculator resolves a device (imports torch)
        from ase.calculators.emt import EMT

        calculator = EMT()
    elif name == "chgnet":
        from atomlens.diffusion.amorphous import make_calculator

        calculator = make_calculator(name, potential.get("device", "cpu"))
    else:
        module, _, attribute = name.partition(":")
        try:
            target = importlib.import_module(module)
            for part in attribute.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as exc:
            raise AtomlensError(f"potential.name {name!r} cannot be loaded: {exc}") from None
        calculator = target(**options)
    _CALCULATORS[key] = calculator
    return calculator


def set_threads(threads: int, environment: bool = False) -> None:
    """Use ``threads`` torch threads; with ``environment``, OpenMP/BLAS ones too.

    ``environment`` (for a fresh worker process, before it loads a library) sets
    ``OMP_NUM_THREADS`` and its kin; the build's own process keeps its environment.
    """
    if environment:
        for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[variable] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def run_job(
    job: Job,
    work_dir: str,
    threads: int = 1,
    factory: Callable[[], Any] | None = None,
    potential_name: str | None = None,
) -> dict[str, Any]:
    """Run (or resume) one job; a failure is returned with its reason, never raised.

    Returns:
        ``{"job_id", "status": "done"|"failed", "values": key-value pairs, "atoms":
        final structure (or None), "error": reason}``.
    """
    start = time.perf_counter()
    set_threads(threads)  # torch threads (CHGNet loads torch in the job, if not before)
    work = Path(work_dir)
    job_dir = work / "jobs" / job.job_id
    try:
        # A run lock held by the worker itself: a worker orphaned by a killed build finishes
        # its segment before a new build's worker continues the same job from the files.
        with exclusive(work / "locks" / f"{job.job_id}.run.lock", f"job {job.job_id}", wait=True):
            values, atoms = _run(job, work, job_dir, factory, threads)
        status, error = "done", ""
    except Exception as exc:  # a failed job is recorded, the others go on
        reason = str(exc).splitlines()[0] if str(exc) else ""
        values, atoms = {}, None
        status, error = "failed", f"{type(exc).__name__}: {reason}"
        if not isinstance(exc, AtomlensError):  # a bug or a library error: say where
            where = traceback.extract_tb(exc.__traceback__)[-1]
            error += f" (at {Path(where.filename).name}:{where.lineno})"
    name, version = potential_identity(potential_name or job.settings["potential"]["name"], factory)
    values |= {
        "potential": name,
        "potential_version": version,
        "wall_time_s": time.perf_counter() - start,
        "threads": threads,
    }
    return {
        "job_id": job.job_id,
        "status": status,
        "values": values,
        "atoms": atoms,
        "error": error,
    }


def _run(
    job: Job, work: Path, job_dir: Path, factory: Callable[[], Any] | None, threads: int
) -> tuple[dict[str, Any], Any]:
    import ase.io

    from atomlens.diffusion.amorphous import AmorphousRun, Stage, melt_quench
    from atomlens.diffusion.msd import diffusivity, read_trajectory

    s = job.settings
    md = s["md"]
    calculator = make_potential(s["potential"], factory)
    set_threads(threads)  # again: loading CHGNet may have imported torch just now

    def new_run(folder: Path) -> AmorphousRun:
        return AmorphousRun(
            folder,
            timestep_fs=md["timestep_fs"],
            segment_steps=md["segment_steps"],
            interval=md["interval"],
            friction_per_fs=md["friction_per_fs"],
            seed=job.seed,
            progress=False,
        )

    melt_dir = work / "melts" / job.melt_key
    melt_run = new_run(melt_dir)
    quench = s["quench"]
    with exclusive(work / "locks" / f"{job.melt_key}.melt.lock", f"melt {job.melt_key}", wait=True):
        outputs = melt_quench(
            job.composition,
            s["atoms"],
            melt_run,
            calculator,
            melt_temperature=s["melt"]["temperature"],
            melt_steps=s["melt"]["steps"],
            quench_temperatures=tuple(quench["temperatures"]),
            quench_steps=quench["steps"],
            equilibrate_volume=s["volume"]["enabled"],
            volume_steps=s["volume"]["steps"],
            potential=s["potential"]["name"],
        )
    # The anneal starts where melt_quench starts its anneals: the end of the melt, or of
    # the volume check.
    last_stage, steps = (
        ("volume_check", s["volume"]["steps"])
        if s["volume"]["enabled"]
        else ("melt", s["melt"]["steps"])
    )
    atoms = melt_run.resume_state(last_stage, -(-steps // md["segment_steps"]) - 1)
    job_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(job_dir / "job.json", {"job_id": job.job_id, "job_hash": job.job_hash} | s)
    run = new_run(job_dir)
    name = f"anneal{int(job.temperature)}"
    final = run.run_stage(atoms, Stage(name, job.temperature, s["anneal"]["steps"]), calculator)
    trajectory = run.trajectory(name)
    frames_every_fs = md["timestep_fs"] * md["interval"]
    d = s["diffusion"]
    result = diffusivity(
        read_trajectory(trajectory, frames_every_fs),
        d["species"],
        job.temperature,
        skip_ps=d["skip_ps"],
        charge=d["charge"],
    )
    energy = float(final.get_potential_energy())
    forces = np.array(final.get_forces())
    epot = [float(a.info["epot_eV"]) for a in ase.io.read(trajectory, index=":")]
    # The structure of the row is the file's (read back), so featurizing either is the same.
    saved = final.copy()
    saved.info = {"id": job.job_id, "temperature": job.temperature}
    if result.diffusivity > 0:
        saved.info["lnD"] = math.log(result.diffusivity)
    structure_file = job_dir / "final.extxyz"
    with atomic_path(structure_file) as tmp:
        ase.io.write(tmp, saved, format="extxyz")
    final_atoms = ase.io.read(structure_file)
    from ase.calculators.singlepoint import SinglePointCalculator

    final_atoms.calc = SinglePointCalculator(final_atoms, energy=energy, forces=forces)
    n = len(final_atoms)
    density = float(final_atoms.get_masses().sum() * AMU_G / (final_atoms.get_volume() * 1e-24))
    values: dict[str, Any] = {
        "D_cm2_s": result.diffusivity,
        "D_std_cm2_s": result.diffusivity_std,
        "D_std_dof": result.error_dof,
        "D_x_cm2_s": float(result.diffusivity_axes[0]),
        "D_y_cm2_s": float(result.diffusivity_axes[1]),
        "D_z_cm2_s": float(result.diffusivity_axes[2]),
        "fit_start_ps": result.fit_range_ps[0],
        "fit_end_ps": result.fit_range_ps[1],
        "conductivity_S_cm": result.conductivity,
        "density_g_cm3": density,
        "epot_final_eV": energy,
        "epot_per_atom_eV": energy / n,
        "epot_mean_per_atom_eV": float(np.mean(epot[len(epot) // 2 :])) / n,
        "trajectory": str(trajectory.relative_to(work)),
        "trajectory_sha256": sha256_file(trajectory),
        "structure_file": str(structure_file.relative_to(work)),
        "structure_sha256": sha256_file(structure_file),
        "melt_trajectory": str(outputs["melt"].relative_to(work)),
        "melt_trajectory_sha256": sha256_file(outputs["melt"]),
    }
    if result.diffusivity > 0:
        values["lnD"] = math.log(result.diffusivity)
        if math.isfinite(result.diffusivity_std):
            values["lnD_std"] = result.diffusivity_std / result.diffusivity
    if quench["temperatures"]:
        quenched = melt_dir / "quench_final.extxyz"
        values["quench_structure"] = str(quenched.relative_to(work))
        values["quench_structure_sha256"] = sha256_file(quenched)
    return values, final_atoms
