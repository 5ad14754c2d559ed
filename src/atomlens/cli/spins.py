"""Commands for spin models: coercivity (REWL free energies) and the Ising check."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def register(commands: Any) -> None:
    """Add this module's commands to the ``atomlens`` parser."""
    coercivity = commands.add_parser(
        "coercivity",
        help="F(M; T) by replica-exchange Wang-Landau, barriers and H_c(T) of a spin model",
        description="Build the spin model of CONFIG (simple-cubic Heisenberg grain, "
        "two-sublattice TM+RE grain or an Nd2Fe14B grain), sample the free energy F(M) at "
        "each temperature by REWL in M, apply the Zeeman term analytically, and find the "
        "metastable minimum, saddle, barrier dF(H), H_c by the spinodal and dF = c kB T "
        "criteria, the activation volume and a power-law fit. Writes coercivity.csv/json, "
        "per-temperature free_energy.csv and figures under the config's `out`. Finished "
        "temperatures are kept; a killed run resumes from its checkpoint. With --mpi, start "
        "it under `mpiexec -n RANKS`: the windows are split over the ranks.",
    )
    coercivity.add_argument("config", type=Path, help="YAML file (see configs/coercivity_*.yaml)")
    coercivity.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config entry, e.g. sampling.lnf_final=1e-4",
    )  # fmt: skip
    coercivity.add_argument("--threads", type=int, help="numba threads per process")
    coercivity.add_argument("--mpi", action="store_true", help="split windows over MPI ranks")
    coercivity.add_argument("--no-progress", action="store_true")
    coercivity.set_defaults(handler=_coercivity)


def _coercivity(args: Any) -> None:
    from atomlens.cli.checks import at_least
    from atomlens.files import check_output_dir, dumps_json
    from atomlens.spins.config import load_coercivity_config
    from atomlens.spins.parallel import get_communicator
    from atomlens.spins.workflow import run_coercivity

    at_least(args.threads, 1, "--threads")
    overrides = list(args.overrides)
    if args.threads is not None:
        overrides.append(f"sampling.threads={args.threads}")
    config = load_coercivity_config(args.config, overrides)
    check_output_dir(config.out, f"'{args.config}': out")
    comm = get_communicator(args.mpi)
    summary = run_coercivity(config, comm=comm, progress=not args.no_progress)
    if comm.rank != 0:
        return
    if not summary["complete"]:
        print(
            "stopped at sampling.max_seconds; run the same command again to continue "
            f"(finished temperatures: {summary['finished_temperatures']})",
            file=sys.stderr,
        )
        return
    unit = summary["model"]["field_unit"]
    print(f"{summary['model']['name']}: {summary['model']['sites']} spins; fields in {unit}")
    print(f"{'T':>8} {'Hc spinodal':>12} {'Hc (dF=cT)':>12} {'dF(0)/T':>9} {'v_a(Hc)':>8}")
    for row in summary["coercivity"]:
        ratio = _number(row["barrier_zero_field"]) / row["temperature"]
        print(
            f"{row['temperature']:8.4g} {_number(row['hc_spinodal']):12.5g} "
            f"{_number(row['hc_thermal']):12.5g} {ratio:9.3g} {_number(row['va_at_hc']):8.3g}"
        )
    if summary["downward_convex"] is not None:
        print("H_c(T) downward convex:", dumps_json(summary["downward_convex"], indent=None))
    cost = summary["cost"]
    print(f"cost: {cost['trials']:.3g} spin trials in {cost['seconds']:.1f} s")
    out = Path(summary["out"])
    print(f"wrote {out / 'coercivity.csv'}, {out / 'coercivity.json'} and {out / 'figures'}")


def _number(value: float | None) -> float:
    return float("nan") if value is None else float(value)
