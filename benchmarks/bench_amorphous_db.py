"""amorphous-db build: time per job for a ~100-atom CHGNet cell, and 1 -> 2 worker scaling.

    python benchmarks/bench_amorphous_db.py                 # CHGNet, Li2Si2O5 (99 atoms)
    python benchmarks/bench_amorphous_db.py --smoke         # EMT, 16 atoms: checks it works

Each worker count builds a fresh database from the same plan: one composition, two seeds
(two melts) and two anneal temperatures, so four jobs; the cores are shared evenly (1 worker
x all threads, 2 workers x half). It reports the wall time of the build, the time per job
(mean of the rows' wall_time_s, the first job of each seed including its melt), MD steps per
second and the speed-up from 1 to 2 workers, and checks that both builds gave the same D.
Results go to benchmarks/results/amorphous_db.json (``--smoke``: a temporary file unless
``--out``).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from atomlens.amorphous_db.build import build
from atomlens.amorphous_db.plan import Plan
from atomlens.amorphous_db.store import Store
from atomlens.files import write_json_atomic

RESULTS = Path(__file__).parent / "results"


def plan_for(args: argparse.Namespace) -> Plan:
    return Plan.model_validate(
        {
            "compositions": [args.composition],
            "atoms": args.atoms,
            "temperatures": args.temperatures,
            "seeds": [0, 1],
            "melt": {"temperature": args.melt_temperature, "steps": args.melt_steps},
            "anneal": {"steps": args.anneal_steps},
            "md": {"timestep_fs": 2.0, "segment_steps": args.segment_steps, "interval": 5},
            "potential": {"name": args.potential, "device": "cpu"},
            "diffusion": {"species": args.species},
        }
    )


def measure(plan: Plan, workers: int, cores: int, folder: Path) -> dict:
    db = folder / f"workers{workers}.db"
    threads = max(1, cores // workers)
    start = time.perf_counter()
    report = build(plan, str(db), jobs=workers, threads=threads)
    seconds = time.perf_counter() - start
    if report.failed:
        raise SystemExit(f"jobs failed: {report.failed}")
    rows = list(Store(db).db.select(kind="job"))
    per_job = [r.wall_time_s for r in rows]
    steps = len(rows) * plan.anneal.steps + len(plan.seeds) * plan.melt.steps
    return {
        "workers": workers,
        "threads_per_job": threads,
        "jobs": len(rows),
        "build_seconds": seconds,
        "seconds_per_job_mean": float(np.mean(per_job)),
        "seconds_per_job": sorted(per_job),
        "jobs_per_hour": 3600 * len(rows) / seconds,
        "md_steps_per_second": steps / seconds,
        "diffusivities_cm2_s": {r.job_id: r.D_cm2_s for r in rows},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny EMT setting (seconds)")
    parser.add_argument("--potential", default="chgnet")
    parser.add_argument("--composition", default="Li2Si2O5")
    parser.add_argument("--species", default="Li")
    parser.add_argument("--atoms", type=int, default=100)
    parser.add_argument("--melt-temperature", type=float, default=3000.0)
    parser.add_argument("--melt-steps", type=int, default=100)
    parser.add_argument("--anneal-steps", type=int, default=300)
    parser.add_argument("--segment-steps", type=int, default=50)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1500.0, 2500.0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cores", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.smoke:
        args.potential, args.composition, args.species, args.atoms = "emt", "CuAu", "Cu", 16
        args.melt_steps, args.anneal_steps, args.segment_steps = 20, 100, 20
    out = args.out or (
        Path(tempfile.mkdtemp()) / "amorphous_db.json"
        if args.smoke
        else RESULTS / "amorphous_db.json"
    )
    plan = plan_for(args)
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in args.workers:
            result = measure(plan, workers, args.cores, Path(tmp))
            runs[str(workers)] = result
            print(
                f"{workers} worker(s) x {result['threads_per_job']} thread(s): "
                f"{result['jobs']} jobs in {result['build_seconds']:.1f} s, "
                f"{result['seconds_per_job_mean']:.1f} s per job (mean of the rows), "
                f"{result['md_steps_per_second']:.2f} MD steps/s"
            )
    same = len({tuple(sorted(r["diffusivities_cm2_s"].items())) for r in runs.values()}) == 1
    summary: dict = {
        "setting": {
            "potential": args.potential,
            "composition": args.composition,
            "atoms_requested": args.atoms,
            "melt_steps": args.melt_steps,
            "anneal_steps": args.anneal_steps,
            "temperatures_K": args.temperatures,
            "seeds": [0, 1],
            "cores": args.cores,
            "machine": platform.processor() or platform.machine(),
            "load_average_at_start": os.getloadavg()[0],
            "smoke": args.smoke,
        },
        "runs": runs,
        "same_results_for_all_worker_counts": same,
    }
    if "1" in runs and "2" in runs:
        summary["speedup_1_to_2_workers"] = runs["1"]["build_seconds"] / runs["2"]["build_seconds"]
        print(f"speed-up from 1 to 2 workers: {summary['speedup_1_to_2_workers']:.2f}x")
    print(f"same D for every worker count: {same}")
    write_json_atomic(out, summary)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
