"""A summary table of an amorphous database and an Arrhenius plot of all its compositions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from atomlens.amorphous_db.store import Store
from atomlens.units import KB_EV


def summary_lines(store: Store) -> list[str]:
    """The job table (one line per job) and the Arrhenius table (one per composition)."""
    jobs = sorted(store.job_rows().values(), key=lambda r: (r.composition, r.temperature, r.seed))
    lines = [
        f"{'composition':<14} {'T (K)':>7} {'seed':>4} {'status':<7} {'D (cm2/s)':>10} "
        f"{'± sigma':>9} {'cond. (S/cm)':>12} {'rho (g/cm3)':>11} {'wall (s)':>8}"
    ]
    for row in jobs:
        d, err = row.get("D_cm2_s"), row.get("D_std_cm2_s")
        lines.append(
            f"{row.composition:<14} {row.temperature:>7g} {row.seed:>4} {row.status:<7} "
            + (f"{d:>10.3e} {_text(err, '9.1e')} " if d is not None else f"{'-':>10} {'-':>9} ")
            + f"{_text(row.get('conductivity_S_cm'), '12.3e')} "
            + f"{_text(row.get('density_g_cm3'), '11.3f')} "
            + f"{_text(row.get('wall_time_s'), '8.1f')}"
            + (f"  {row.error}" if row.get("error") else "")
        )
    fits = store.arrhenius_rows()
    if fits:
        lines.append("")
        lines.append(
            f"{'composition':<14} {'Ea (eV)':>8} {'± sigma':>8} {'D0 (cm2/s)':>11} "
            f"{'D(300 K)':>10} {'x/÷':>7} {'points':>6}"
        )
        for composition, row in sorted(fits.items()):
            factor = float(np.exp(row.get("lnD300_std", float("nan"))))
            lines.append(
                f"{composition:<14} {row.Ea_eV:>8.3f} {_text(row.get('Ea_std_eV'), '8.3f')} "
                f"{row.D0_cm2_s:>11.3e} {row.D300_cm2_s:>10.3e} {factor:>7.3g} {row.points:>6}"
            )
    return lines


def _text(value: Any, spec: str) -> str:
    width = int(spec.split(".")[0])
    return f"{value:{spec}}" if value is not None else f"{'-':>{width}}"


def plot_database(store: Store, path: Path) -> Path:
    """D ± sigma against 1000/T for every composition, with each Arrhenius fit."""
    from atomlens.plotting import colormap, literal, save_figure, subplots

    rows = [r for r in store.job_rows().values() if r.status == "done" and r.D_cm2_s > 0]
    fits = store.arrhenius_rows()
    compositions = sorted({r.composition for r in rows})
    colors = colormap("tab10")
    figure, axis = subplots(figsize=(5.6, 4.0))
    for k, composition in enumerate(compositions):
        color = colors(k % 10)
        mine = [r for r in rows if r.composition == composition]
        t = np.array([r.temperature for r in mine])
        d = np.array([r.D_cm2_s for r in mine])
        err = np.array([r.get("D_std_cm2_s", np.nan) for r in mine])
        axis.errorbar(
            1000 / t,
            d,
            yerr=np.nan_to_num(err),
            fmt="o",
            color=color,
            ms=4,
            capsize=2,
            label=composition,
        )
        fit = fits.get(composition)
        if fit is not None:
            line_t = np.linspace(t.min(), t.max(), 30)
            axis.plot(
                1000 / line_t,
                fit.D0_cm2_s * np.exp(-fit.Ea_eV / (KB_EV * line_t)),
                "--",
                color=color,
                label=f"{composition}: Ea = {fit.Ea_eV:.3f} ± {fit.get('Ea_std_eV', np.nan):.3f}"
                " eV",
            )
    axis.set_yscale("log")
    axis.set_xlabel("1000 / T (1/K)")
    axis.set_ylabel("D (cm²/s)")
    if compositions:
        literal(axis.legend(fontsize=7).get_texts())
    return save_figure(figure, path)
