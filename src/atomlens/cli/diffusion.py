"""Commands for diffusion: diffusion, arrhenius, amorphous, rdf."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from atomlens.cli.checks import at_least, positive
from atomlens.cli.options import add_device_argument
from atomlens.errors import AtomlensError, DataError


def register(commands: Any) -> None:
    """Add this module's commands to the ``atomlens`` parser."""
    diffusion = commands.add_parser(
        "diffusion",
        help="tracer diffusivity from an MD trajectory (MSD by FFT, drift removed)",
        description="Unwrap a constant-cell trajectory (any format ASE reads), remove the "
        "framework's drift, compute the MSD of one species over all time origins and fit D "
        "in the diffusive regime (automatic window or --fit-range). Prints D with its "
        "standard error (spread of the per-ion D over sqrt(N)), per-axis D and the "
        "Nernst-Einstein conductivity; writes diffusion.json and msd.png.",
    )
    diffusion.add_argument("trajectory", type=Path)
    diffusion.add_argument("--species", default="Li")
    diffusion.add_argument("--temperature", type=float, required=True, help="K")
    diffusion.add_argument("--timestep", type=float, required=True, help="fs between frames")
    diffusion.add_argument("--step", type=int, default=1, help="use every step-th frame")
    diffusion.add_argument(
        "--fit-range",
        type=float,
        nargs=2,
        metavar=("START", "END"),
        help="fit window in ps (default: automatic)",
    )
    diffusion.add_argument("--skip", type=float, default=0.0, help="ps ignored by the auto window")
    diffusion.add_argument(
        "--blocks", type=int, default=5, help="blocks for per-block D (a stationarity check)"
    )
    diffusion.add_argument("--charge", type=float, default=1.0, help="ion charge in e")
    diffusion.add_argument("--keep-drift", action="store_true", help="do not remove drift")
    diffusion.add_argument("--out", type=Path, default=Path("diffusion"))
    diffusion.set_defaults(handler=_diffusion)

    arrhenius = commands.add_parser(
        "arrhenius",
        help="activation energy from diffusivities at several temperatures",
        description="Fit ln D = ln D0 - Ea/(kB T) over diffusion.json files written by "
        "`atomlens diffusion` (weighted by their errors); print Ea, D0 and D extrapolated "
        "to --at; write arrhenius.json and arrhenius.png.",
    )
    arrhenius.add_argument("results", type=Path, nargs="+", help="diffusion.json files")
    arrhenius.add_argument("--at", type=float, default=300.0, help="extrapolate to T (K)")
    arrhenius.add_argument("--out", type=Path, default=Path("arrhenius"))
    arrhenius.set_defaults(handler=_arrhenius)

    amorphous = commands.add_parser(
        "amorphous",
        help="amorphous cells by melt-quench MD with CHGNet (offline); D and Ea optional",
        description="Random packing of COMPOSITION at an estimated density, melt (NVT "
        "Langevin), optional volume equilibration (Birch-Murnaghan P(V) at 0.8/1.0/1.2 V), "
        "then anneal at each --anneal temperature. Segments are checkpointed: rerun the same "
        "command to continue a killed run. The settings are recorded in --out/request.json; "
        "other settings in the same --out are refused unless --overwrite. With --diffusion "
        "Li, D at each anneal temperature and an Arrhenius fit.",
    )
    amorphous.add_argument("composition", help="e.g. Li2Si2O5")
    amorphous.add_argument("--atoms", type=int, default=100, help="approximate atom count")
    amorphous.add_argument("--potential", default="chgnet", choices=["chgnet", "emt"])
    amorphous.add_argument("--melt", type=float, default=5000.0, help="melt temperature (K)")
    amorphous.add_argument("--melt-steps", type=int, default=2000)
    amorphous.add_argument("--anneal", type=float, nargs="*", default=[], help="K")
    amorphous.add_argument("--anneal-steps", type=int, default=2000)
    amorphous.add_argument(
        "--quench",
        type=float,
        nargs="*",
        default=[],
        help="slow quench: chained stages at these temperatures (e.g. 3000 2500 ... 500)",
    )
    amorphous.add_argument("--quench-steps", type=int, default=1000, help="steps per quench stage")
    amorphous.add_argument("--equilibrate-volume", action="store_true")
    amorphous.add_argument("--volume-steps", type=int, default=300)
    amorphous.add_argument("--timestep", type=float, default=2.0, help="fs")
    amorphous.add_argument("--segment-steps", type=int, default=100)
    amorphous.add_argument("--interval", type=int, default=10, help="steps between frames")
    amorphous.add_argument("--diffusion", metavar="SPECIES", help="D of SPECIES per anneal")
    amorphous.add_argument("--seed", type=int, default=0)
    amorphous.add_argument("--out", type=Path, default=Path("amorphous"))
    amorphous.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a run of other settings in --out (its request.json differs)",
    )
    add_device_argument(amorphous)  # where CHGNet runs
    amorphous.set_defaults(handler=_amorphous)

    rdf = commands.add_parser(
        "rdf",
        help="partial and total radial distribution functions (and R^2 between two runs)",
    )
    rdf.add_argument("trajectory", type=Path)
    rdf.add_argument("--compare", type=Path, help="a second trajectory: R^2 of its RDFs")
    rdf.add_argument(
        "--db",
        help="an amorphous database: R^2 of --job's anneal RDFs against TRAJECTORY (the "
        "reference, e.g. AIMD), stored in the job's row as rdf_r2_<pair>",
    )
    rdf.add_argument("--job", help="job id of the --db entry (e.g. Li2Si2O5_1500K_seed0)")
    rdf.add_argument("--r-max", type=float, default=6.0)
    rdf.add_argument("--bins", type=int, default=120)
    rdf.add_argument("--every", type=int, default=1, help="use every n-th frame")
    rdf.add_argument("--out", type=Path, default=Path("rdf"))
    rdf.set_defaults(handler=_rdf)


def _diffusion(args: argparse.Namespace) -> None:
    from atomlens.diffusion.msd import diffusivity, plot_msd, read_trajectory
    from atomlens.files import check_output_dir, write_json_atomic

    positive(args.temperature, "--temperature")
    positive(args.timestep, "--timestep")
    at_least(args.step, 1, "--step")
    at_least(args.skip, 0, "--skip")
    if args.blocks < 2:
        raise DataError(
            f"--blocks must be >= 2 (D per block checks stationarity), got {args.blocks}"
        )
    check_output_dir(args.out, "--out")
    traj = read_trajectory(args.trajectory, args.timestep, args.step)
    if args.fit_range:
        _check_fit_range(args.fit_range, (traj.n_frames - 1) * traj.timestep_fs / 1000.0)
    result = diffusivity(
        traj,
        args.species,
        args.temperature,
        fit_range_ps=tuple(args.fit_range) if args.fit_range else None,
        skip_ps=args.skip,
        blocks=args.blocks,
        charge=args.charge,
        remove_drift=not args.keep_drift,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    summary = result.summary() | {
        "trajectory": str(args.trajectory),
        "frames": traj.n_frames,
        "timestep_fs": traj.timestep_fs,
    }
    write_json_atomic(args.out / "diffusion.json", summary)
    plot_msd(result, args.out / "msd.png")
    lo, hi = result.fit_range_ps
    axes = ", ".join(f"{v:.3g}" for v in result.diffusivity_axes)
    print(
        f"{args.species} at {args.temperature:g} K ({traj.n_frames} frames, fit {lo:.3g}-{hi:.3g}"
        f" ps): D = {result.diffusivity:.4g} ± {result.diffusivity_std:.2g} cm2/s "
        f"(x, y, z: {axes}); sigma = {result.conductivity:.4g} S/cm"
    )
    print(f"wrote {args.out / 'diffusion.json'} and {args.out / 'msd.png'}")


def _arrhenius(args: argparse.Namespace) -> None:
    import numpy as np

    from atomlens.diffusion.arrhenius import fit_arrhenius, format_factor, plot_arrhenius
    from atomlens.files import check_output_dir, write_json_atomic

    positive(args.at, "--at")
    check_output_dir(args.out, "--out")
    rows = []
    for path in args.results:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            std = data.get("diffusivity_std_cm2_s")
            row = (
                float(data["temperature_K"]),
                float(data["diffusivity_cm2_s"]),
                float("nan") if std is None else float(std),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AtomlensError(f"'{path}' is not a diffusion.json: {exc}") from None
        if not (row[0] > 0 and row[1] > 0):
            raise AtomlensError(
                f"'{path}': temperature {row[0]:g} K and D {row[1]:g} cm2/s must both be > 0"
            )
        rows.append(row)
    t, d, err = (np.array(c, dtype=float) for c in zip(*rows, strict=True))
    fit = fit_arrhenius(t, d, err if np.all(np.isfinite(err)) else None)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = fit.summary(args.at)
    write_json_atomic(args.out / "arrhenius.json", summary)
    plot_arrhenius(fit, args.out / "arrhenius.png", args.at)
    factor = format_factor(fit.extrapolate(args.at)[1])  # the summary holds None for NaN
    low, high = (float("nan") if v is None else v for v in summary["activation_energy_95_eV"])
    print(
        f"Ea = {fit.activation_energy:.4f} ± {fit.activation_energy_std:.4f} eV "
        f"(95 %: {low:.4f} to {high:.4f}; errors from the {fit.error_source}"
        + (f", scaled x{fit.scale:.3g} for chi2/dof > 1" if fit.scale > 1 else "")
        + f"), D0 = {fit.prefactor:.4g} cm2/s over {len(t)} temperatures; D({args.at:g} K) = "
        f"{summary['extrapolated_D_cm2_s']:.3g} cm2/s (x/÷ {factor})"
    )
    print(f"wrote {args.out / 'arrhenius.json'} and {args.out / 'arrhenius.png'}")


def _amorphous(args: argparse.Namespace) -> None:
    import time

    from atomlens.diffusion.amorphous import (
        AmorphousRun,
        amorphous_request,
        claim_output,
        make_calculator,
        melt_quench,
        parse_composition,
    )
    from atomlens.files import check_output_dir, write_json_atomic

    _check_amorphous_options(args)
    check_output_dir(args.out, "--out")
    parse_composition(args.composition, args.atoms)  # a bad formula fails before --out changes
    start = time.perf_counter()
    run = AmorphousRun(
        args.out,
        timestep_fs=args.timestep,
        segment_steps=args.segment_steps,
        interval=args.interval,
        seed=args.seed,
        progress=sys.stderr.isatty(),
    )
    settings = {
        "melt_temperature": args.melt,
        "melt_steps": args.melt_steps,
        "anneal_temperatures": tuple(args.anneal),
        "anneal_steps": args.anneal_steps,
        "quench_temperatures": tuple(args.quench),
        "quench_steps": args.quench_steps,
        "equilibrate_volume": args.equilibrate_volume,
        "volume_steps": args.volume_steps,
    }
    request = amorphous_request(args.composition, args.atoms, run, args.potential, **settings)
    resumed = claim_output(args.out, request, args.overwrite)  # before loading the potential
    if resumed:
        print(f"resuming the run in {args.out} (same settings)", file=sys.stderr)
    outputs = melt_quench(
        args.composition,
        args.atoms,
        run,
        make_calculator(args.potential, args.device),
        potential=args.potential,
        **settings,
    )
    summary: dict[str, Any] = {
        "composition": args.composition,
        "trajectories": {k: str(v) for k, v in outputs.items()},
    }
    for name, path in outputs.items():
        print(f"{name}: {path}")
    if args.diffusion and args.anneal:
        from atomlens.diffusion.arrhenius import fit_arrhenius
        from atomlens.diffusion.msd import diffusivity, read_trajectory

        results = []
        for temperature in args.anneal:
            traj = read_trajectory(
                outputs[f"anneal{int(temperature)}"], args.timestep * args.interval
            )
            result = diffusivity(traj, args.diffusion, temperature)
            results.append(result)
            print(
                f"D({args.diffusion}, {temperature:g} K) = {result.diffusivity:.3g} ± "
                f"{result.diffusivity_std:.2g} cm2/s"
            )
        summary["diffusion"] = [r.summary() for r in results]
        if len(results) >= 2:
            fit = fit_arrhenius(
                [r.temperature for r in results],
                [r.diffusivity for r in results],
                [r.diffusivity_std for r in results],
            )
            summary["arrhenius"] = fit.summary(300.0)
            print(f"Ea = {fit.activation_energy:.3f} ± {fit.activation_energy_std:.3f} eV")
    summary["seconds"] = time.perf_counter() - start
    write_json_atomic(args.out / "summary.json", summary)
    print(f"wrote {args.out / 'summary.json'} ({summary['seconds']:.0f} s)")


def _rdf(args: argparse.Namespace) -> None:
    from atomlens.diffusion.msd import read_trajectory
    from atomlens.diffusion.rdf import partial_rdfs, plot_rdfs, rdf_r2
    from atomlens.files import check_output_dir, write_csv, write_json_atomic

    positive(args.r_max, "--r-max")
    if bool(args.db) != bool(args.job):
        raise DataError("rdf --db and --job go together (the database and the job id)")
    if args.db and args.compare:
        raise DataError("rdf takes --compare or --db/--job, not both")
    at_least(args.bins, 1, "--bins")
    at_least(args.every, 1, "--every")
    check_output_dir(args.out, "--out")
    r, rdfs = partial_rdfs(read_trajectory(args.trajectory, 1.0), args.r_max, args.bins, args.every)
    args.out.mkdir(parents=True, exist_ok=True)
    names = list(rdfs)
    write_csv(
        args.out / "rdf.csv",
        ["r", *names],
        [[float(r[k]), *(float(rdfs[n][k]) for n in names)] for k in range(len(r))],
    )
    plot_rdfs(r, rdfs, args.out / "rdf.png")
    print(f"RDFs {', '.join(names)}; wrote {args.out / 'rdf.csv'} and rdf.png")
    if args.db:
        from atomlens.amorphous_db.rdf import store_rdf_r2

        scores = store_rdf_r2(
            args.db, args.job, args.trajectory, rdfs, args.r_max, args.bins, args.every
        )
        write_json_atomic(args.out / "rdf_r2.json", scores)
        print(
            f"R2 of {args.job}'s RDFs against {args.trajectory}: "
            + ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
            + f"; stored in {args.db}"
        )
    if args.compare:
        _, other = partial_rdfs(
            read_trajectory(args.compare, 1.0), args.r_max, args.bins, args.every
        )
        scores = rdf_r2(rdfs, other)
        write_json_atomic(args.out / "rdf_r2.json", scores)
        print(
            "R2 of the second run's RDFs: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
        )


def _check_fit_range(fit_range: list[float], duration_ps: float) -> None:
    """``--fit-range START END`` must lie inside the run, with START < END."""
    start, end = fit_range
    if not (0 <= start < end):
        raise DataError(f"--fit-range needs 0 <= START < END, got {start:g} {end:g} ps")
    if end > duration_ps * (1 + 1e-9):
        raise DataError(
            f"--fit-range end {end:g} ps lies past the end of the run ({duration_ps:.4g} ps)"
        )


def _check_amorphous_options(args: argparse.Namespace) -> None:
    """Counts, steps and temperatures of ``atomlens amorphous`` (before any MD)."""
    at_least(args.atoms, 1, "--atoms")
    for option in ("melt_steps", "anneal_steps", "quench_steps", "volume_steps"):
        at_least(getattr(args, option), 1, "--" + option.replace("_", "-"))
    at_least(args.segment_steps, 1, "--segment-steps")
    at_least(args.interval, 1, "--interval")
    positive(args.timestep, "--timestep")
    positive(args.melt, "--melt")
    for option in ("anneal", "quench"):
        for temperature in getattr(args, option):
            positive(temperature, f"--{option}")
    if args.diffusion and len(args.anneal) != len(set(args.anneal)):
        raise DataError("--anneal temperatures must be distinct")
