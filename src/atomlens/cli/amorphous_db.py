"""Commands for the amorphous database: ``amorphous-db build`` and ``amorphous-db show``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from atomlens.cli.checks import at_least
from atomlens.errors import DataError


def register(commands: Any) -> None:
    """Add this module's commands to the ``atomlens`` parser."""
    group = commands.add_parser(
        "amorphous-db",
        help="many compositions x temperatures of melt-quench MD into one ASE database",
        description="Run a plan of amorphous melt-quench + anneal jobs (with D, Ea) into an "
        "ASE database (`ase db` reads it), resumably, on local cores or a Dask cluster.",
    )
    actions = group.add_subparsers(title="actions", metavar="ACTION")
    build = actions.add_parser(
        "build",
        help="run the plan's unfinished jobs into the database",
        description="Each (composition, temperature, seed) of PLAN is one job: melt (shared "
        "by the temperatures of a composition and seed), anneal, D of the plan's species. "
        "Finished jobs are skipped, interrupted ones continue from their last segment, "
        "failures are recorded with their reason. A database built from another plan is "
        "refused unless --extend. Concurrent builds on one database share the work.",
    )
    build.add_argument("plan", type=Path, help="plan YAML (see the README)")
    build.add_argument("--db", required=True, help="database file, or a postgresql:// URL")
    build.add_argument(
        "--work-dir",
        type=Path,
        help="melts, anneals, trajectories and locks (default: <db>_files next to the file)",
    )
    build.add_argument("--jobs", type=int, default=1, help="parallel jobs (local executor)")
    build.add_argument(
        "--threads", type=int, help="compute threads per job (default: cores / --jobs)"
    )
    build.add_argument("--executor", choices=["local", "dask"], default="local")
    build.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786")
    build.add_argument(
        "--extend", action="store_true", help="add this plan's jobs to a database of another plan"
    )
    build.add_argument("--retry-failed", action="store_true", help="rerun failed jobs")
    build.set_defaults(handler=_build)

    show = actions.add_parser(
        "show",
        help="summary table and an Arrhenius plot of all compositions",
        description="Print every job (D ± sigma, conductivity, density, status) and every "
        "composition's Arrhenius fit (Ea ± sigma, D0, D(300 K)); write the plot.",
    )
    show.add_argument("--db", required=True, help="database file, or a postgresql:// URL")
    show.add_argument("--plot", type=Path, default=Path("arrhenius_all.png"))
    show.set_defaults(handler=_show)
    group.set_defaults(handler=lambda args: group.print_help())


def _build(args: argparse.Namespace) -> None:
    from atomlens.amorphous_db.build import build
    from atomlens.amorphous_db.plan import read_plan

    at_least(args.jobs, 1, "--jobs")
    if args.threads is not None:
        at_least(args.threads, 1, "--threads")
    if args.executor == "dask" and not args.scheduler:
        raise DataError("--executor dask needs --scheduler ADDRESS (e.g. tcp://host:8786)")
    plan = read_plan(args.plan)
    text = args.plan.read_text(encoding="utf-8")

    def progress(job: Any, result: dict[str, Any]) -> None:
        values = result["values"]
        if result["status"] == "done":
            d, err = values["D_cm2_s"], values.get("D_std_cm2_s", float("nan"))
            print(
                f"{job.job_id}: D = {d:.3e} ± {err:.1e} cm2/s "
                f"({values['wall_time_s']:.0f} s, {values['threads']} thread(s))",
                flush=True,
            )
        else:
            print(f"{job.job_id}: failed: {result['error']}", flush=True)

    report = build(
        plan,
        args.db,
        plan_text=text,
        work_dir=args.work_dir,
        jobs=args.jobs,
        threads=args.threads,
        executor=args.executor,
        scheduler=args.scheduler,
        extend=args.extend,
        retry_failed=args.retry_failed,
        on_result=progress,
    )
    for composition, fit in report.arrhenius.items():
        print(
            f"{composition}: Ea = {fit['Ea_eV']:.3f} ± {fit.get('Ea_std_eV', float('nan')):.3f}"
            f" eV, D(300 K) = {fit['D300_cm2_s']:.3g} cm2/s ({fit['points']} points)"
        )
    print(
        f"{len(report.done)} job(s) done, {len(report.failed)} failed, {len(report.skipped)} "
        f"already in the database, {len(report.elsewhere)} run by another build; "
        f"database {args.db}"
    )
    if report.failed:
        print(
            f"failed jobs keep their reason in the row's 'error' (e.g. {report.failed[0][1]})",
            file=sys.stderr,
        )


def _show(args: argparse.Namespace) -> None:
    from atomlens.amorphous_db.show import plot_database, summary_lines
    from atomlens.amorphous_db.store import Store
    from atomlens.files import check_output_file

    check_output_file(args.plot, "--plot")
    store = Store(args.db, create=False)
    for line in summary_lines(store):
        print(line)
    plot_database(store, args.plot)
    print(f"wrote {args.plot}")
