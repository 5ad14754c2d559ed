"""Build an amorphous database from a plan: claim jobs, run them, write rows, fit Arrhenius.

Claims are OS file locks, one per job (``<work>/locks/<job_id>.lock``), held by the build
that runs the job until its row is written: a second build on the same database skips the
jobs another holds, and a killed build's locks vanish with it. Jobs whose row says ``done``
(or ``failed``, unless ``retry_failed``) are skipped; an interrupted job continues from its
last finished segment. Jobs run in this process (``jobs=1``), in a local process pool, or on
an existing Dask distributed cluster; the same seeds give the same rows everywhere.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atomlens.amorphous_db.jobs import run_job, set_threads
from atomlens.amorphous_db.plan import Job, Plan
from atomlens.amorphous_db.store import Store, held
from atomlens.errors import DataError

log = logging.getLogger(__name__)
EXTRAPOLATE_TO_K = 300.0


@dataclass
class BuildReport:
    """What a build did: job ids by outcome."""

    done: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)
    arrhenius: dict[str, dict[str, Any]] = field(default_factory=dict)


def default_work_dir(db: str) -> Path:
    """``<db without suffix>_files`` next to a database file."""
    path = Path(db)
    return path.with_name(path.stem + "_files")


def default_threads(jobs: int) -> int:
    """Threads per job when not given: the cores shared evenly by the parallel jobs."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def build(
    plan: Plan,
    db: str,
    *,
    plan_text: str = "",
    work_dir: Path | None = None,
    jobs: int = 1,
    threads: int | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    extend: bool = False,
    retry_failed: bool = False,
    calculator: Callable[[], Any] | None = None,
    on_result: Callable[[Job, dict[str, Any]], None] | None = None,
) -> BuildReport:
    """Run every unfinished job of ``plan`` into the database ``db``.

    Args:
        plan: The validated plan.
        db: A database file (SQLite) or a ``postgresql://`` URL.
        plan_text: The plan as the user wrote it (kept in the database metadata).
        work_dir: Folder for melts, anneals, trajectories and locks (default: next to a
            database file; required for a URL).
        jobs: Parallel jobs (local executor).
        threads: Compute threads per job (default: cores / jobs).
        executor: ``local`` or ``dask``.
        scheduler: The Dask scheduler address (``tcp://host:8786``) for ``dask``.
        extend: Allow adding this plan's jobs to a database built from another plan.
        retry_failed: Run jobs whose row says ``failed`` again.
        calculator: A picklable callable returning an ASE calculator (instead of the plan's
            potential name; e.g. a module-level function).
        on_result: Called with each job and its result as it is written.

    Raises:
        DataError: For another plan without ``extend``, a job id with other settings, a
            missing work folder for a URL, or a bad executor setting.
    """
    if jobs < 1:
        raise DataError(f"--jobs must be >= 1, got {jobs}")
    if executor not in ("local", "dask"):
        raise DataError(f"--executor must be local or dask, got {executor!r}")
    if executor == "dask" and not scheduler:
        raise DataError("--executor dask needs --scheduler ADDRESS (e.g. tcp://host:8786)")
    store = Store(db)
    recorded = store.work_dir()
    if work_dir is None:
        if recorded is None and "://" in db:
            raise DataError(f"--db '{db}' is a server: give --work-dir (a shared folder)")
        work_dir = recorded or default_work_dir(db)
    work_dir = Path(work_dir)
    threads = threads or default_threads(jobs)
    plan_hash = plan.plan_hash()
    with held(store.lock_file(work_dir), f"database '{db}'"):
        store.check_plan(plan, plan_text, extend, work_dir)
    report = BuildReport()
    potential_name = plan.potential.name
    with ExitStack() as claims:
        rows = store.job_rows()
        candidates = []
        for job in plan.jobs():
            if _finished(rows.get(job.job_id), retry_failed):
                report.skipped.append(job.job_id)
            else:
                candidates.append(job)

        def claim(job: Job) -> bool:
            return _claim(job, store, work_dir, retry_failed, claims, report)

        if candidates:
            log.info(
                "%d job(s) to run (%d done or failed before): %s, %d thread(s) per job",
                len(candidates),
                len(report.skipped),
                f"dask at {scheduler}"
                if executor == "dask"
                else f"{min(jobs, len(candidates))} local worker(s)",
                threads,
            )
        args = (work_dir, threads, calculator, potential_name)
        results = (
            _run_dask([j for j in candidates if claim(j)], *args, scheduler or "")
            if executor == "dask"
            else _run_local(candidates, claim, *args, jobs)
        )
        for job, result in results:
            store.write_job(job, result, plan_hash)
            if result["status"] == "done":
                report.done.append(job.job_id)
            else:
                report.failed.append((job.job_id, result["error"]))
                log.warning("job %s failed: %s", job.job_id, result["error"])
            if on_result is not None:
                on_result(job, result)
    if report.elsewhere:
        log.info("%d job(s) were run by another build", len(report.elsewhere))
    report.arrhenius = update_arrhenius(store, {j.composition for j in plan.jobs()})
    return report


def _claim(
    job: Job,
    store: Store,
    work_dir: Path,
    retry_failed: bool,
    claims: ExitStack,
    report: BuildReport,
) -> bool:
    """Claim ``job`` with a file lock held until ``claims`` closes; False if not ours to run.

    Jobs are claimed one at a time as workers free up, so concurrent builds share the work.
    """
    from filelock import FileLock, Timeout

    lock_file = work_dir / "locks" / f"{job.job_id}.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_file)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        report.elsewhere.append(job.job_id)
        return False
    claims.callback(lock.release)
    # Another build may have finished it since we looked.
    row = next(iter(store.db.select(kind="job", job_id=job.job_id)), None)
    if _finished(row, retry_failed):
        report.elsewhere.append(job.job_id)
        return False
    return True


def _finished(row: Any, retry_failed: bool) -> bool:
    if row is None:
        return False
    return row.status == "done" or (row.status == "failed" and not retry_failed)


def _init_worker(threads: int) -> None:
    set_threads(threads, environment=True)


def _run_local(
    candidates: list[Job],
    claim: Callable[[Job], bool],
    work_dir: Path,
    threads: int,
    calculator: Callable[[], Any] | None,
    potential_name: str,
    jobs: int,
) -> Iterator[tuple[Job, dict[str, Any]]]:
    """Results in completion order: in this process for one job at a time, else a pool.

    A job is claimed only when a worker is free for it.
    """
    if not candidates:
        return
    if jobs == 1 or len(candidates) == 1:
        for job in candidates:
            if claim(job):
                yield job, run_job(job, str(work_dir), threads, calculator, potential_name)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    queue = iter(candidates)
    with ProcessPoolExecutor(
        min(jobs, len(candidates)),
        mp_context=context,
        initializer=_init_worker,
        initargs=(threads,),
    ) as pool:
        futures: dict[Any, Job] = {}

        def submit_next() -> None:
            for job in queue:
                if claim(job):
                    args = (job, str(work_dir), threads, calculator, potential_name)
                    futures[pool.submit(run_job, *args)] = job
                    return

        try:
            for _ in range(min(jobs, len(candidates))):
                submit_next()
            while futures:
                finished, _ = wait(list(futures), return_when=FIRST_COMPLETED)
                for future in finished:
                    job = futures.pop(future)
                    submit_next()
                    yield job, future.result()
        finally:
            for future in futures:
                future.cancel()


def _run_dask(
    todo: list[Job],
    work_dir: Path,
    threads: int,
    calculator: Callable[[], Any] | None,
    potential_name: str,
    scheduler: str,
) -> Iterator[tuple[Job, dict[str, Any]]]:
    """Results in completion order from the Dask cluster at ``scheduler``."""
    if not todo:
        return
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise DataError("--executor dask needs: pip install 'atomlens[cluster]'") from None
    try:
        client = Client(scheduler, timeout="30s", set_as_default=False)
    except OSError as exc:
        raise DataError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
    try:
        futures = {
            client.submit(
                run_job,
                job,
                str(work_dir.resolve()),
                threads,
                calculator,
                potential_name,
                key=f"amorphous-{job.job_id}-{job.job_hash}",
                pure=False,
            ): job
            for job in todo
        }
        try:
            for future in as_completed(list(futures), loop=client.loop):
                yield futures[future], future.result()
        finally:
            client.cancel(list(futures))
    finally:
        client.close()


def update_arrhenius(store: Store, compositions: set[str]) -> dict[str, dict[str, Any]]:
    """Refit each composition over its finished jobs (all seeds) and rewrite its row.

    The fit is weighted by the D errors (see :func:`atomlens.diffusion.arrhenius.fit_arrhenius`);
    a composition with fewer than two temperatures with D > 0 gets no row.
    """
    import numpy as np

    from atomlens.diffusion.arrhenius import fit_arrhenius

    out: dict[str, dict[str, Any]] = {}
    rows = list(store.db.select(kind="job", status="done"))
    for composition in sorted(compositions):
        points = [
            (r.temperature, r.D_cm2_s, r.get("D_std_cm2_s", float("nan")), r.job_id)
            for r in rows
            if r.composition == composition and r.get("D_cm2_s", 0.0) > 0
        ]
        if len({p[0] for p in points}) < 2:
            store.write_arrhenius(composition, None)
            continue
        t, d, err, ids = zip(*sorted(points), strict=True)
        errors = np.array(err, dtype=float)
        fit = fit_arrhenius(np.array(t), np.array(d), errors if np.all(errors > 0) else None)
        summary = fit.summary(EXTRAPOLATE_TO_K)
        low, high = summary["activation_energy_95_eV"]
        values = {
            "Ea_eV": fit.activation_energy,
            "Ea_std_eV": fit.activation_energy_std,
            "Ea_95_low_eV": low,
            "Ea_95_high_eV": high,
            "D0_cm2_s": fit.prefactor,
            "lnD0_std": fit.prefactor_log_std,
            "D300_cm2_s": summary["extrapolated_D_cm2_s"],
            "lnD300_std": summary["extrapolated_lnD_std"],
            "error_source": fit.error_source,
            "chi2": fit.chi2,
            "dof": fit.dof,
            "error_scale": fit.scale,
            "points": len(t),
            "temperatures": ",".join(f"{v:g}" for v in sorted(set(t))),
            "job_ids": ",".join(ids),
        }
        values = {k: v for k, v in values.items() if v is not None}
        store.write_arrhenius(composition, values)
        out[composition] = values
    return out
