"""``atomlens coercivity``: F(M; T) by REWL per temperature, then barriers and H_c(T).

Each temperature is sampled once; the Zeeman term is applied analytically afterwards, so one
run per temperature gives every field. Finished temperatures are kept on disk and skipped
when the command runs again; an unfinished one resumes from its checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from atomlens.files import write_csv, write_json_atomic
from atomlens.spins import kernels
from atomlens.spins.config import CoercivityConfig, SamplingConfig, SpinModelConfig
from atomlens.spins.landscape import (
    DEFAULT_SMOOTHING,
    FreeEnergyCurve,
    barrier_curve,
    coercivity,
    coercivity_row,
    downward_convexity,
    smooth_curve,
)
from atomlens.spins.parallel import Communicator, LocalCommunicator, start_threads
from atomlens.spins.rng import seed_states
from atomlens.spins.system import SpinModelError, SpinSystem
from atomlens.spins.wanglandau import (
    Binning,
    ReplicaExchangeWangLandau,
    WangLandauSettings,
)
from atomlens.units import MU_B_OVER_KB


def build_model(config: SpinModelConfig) -> SpinSystem:
    """Build the configured spin model; bad parameters raise SpinModelError naming them."""
    from atomlens.spins import lattice, nd2fe14b

    builders = {
        "simple_cubic": lattice.simple_cubic_grain,
        "two_sublattice": lattice.two_sublattice_grain,
        "nd2fe14b": nd2fe14b.nd2fe14b_grain,
    }
    try:
        return builders[config.kind](**config.params)
    except SpinModelError:
        raise
    except (TypeError, ValueError) as exc:  # unknown names, or e.g. L: abc
        raise SpinModelError(f"model '{config.kind}': bad parameters ({exc})") from None


def wang_landau_settings(sampling: SamplingConfig) -> WangLandauSettings:
    """The sampler settings of a config section."""
    return WangLandauSettings(
        **sampling.model_dump(exclude={"bins", "mirror", "m_max", "extend_range"})
    )


def magnetisation_range(
    system: SpinSystem, temperature: float, seed: int = 0, sweeps: int = 2000
) -> float:
    """Upper end of the sampled ``|m|``: the largest ``|m|`` of a zero-field Metropolis run.

    Two walkers start saturated along +z; the second half of ``sweeps`` is recorded (2,000
    correlated values). The upper tail of ``P(m)`` is thin (``|m| <= 1``): beyond the largest
    value seen, ``F`` lies many ``k_B T`` above the minimum, which does not matter for the
    barriers, and there the density of states falls so steeply that single-spin moves would
    take very long to flatten it.
    """
    if system.ising:
        return 1.0
    start_threads()
    walkers = 2
    spins = np.zeros((walkers, system.n_sites, 3))
    spins[:, :, 2] = 1.0
    energy = np.zeros(walkers)  # only differences matter here
    magnet = np.full(walkers, system.saturation_moment)
    rng = seed_states(seed + 104729, walkers)
    accepted = np.zeros(walkers, dtype=np.int64)
    args = system.kernel_arrays()
    samples = []
    for sweep in range(sweeps):
        kernels.heisenberg_metropolis(
            spins, energy, magnet, rng, system.n_sites, 1.0 / temperature, 0.0, *args, 0.5,
            accepted,
        )  # fmt: skip
        if sweep >= sweeps // 2:
            samples.append(np.abs(magnet) / system.saturation_moment)
    return float(min(1.0, np.max(samples)))


def sample_free_energy(
    system: SpinSystem,
    temperature: float,
    sampling: SamplingConfig,
    directory: Path,
    comm: Communicator | None = None,
    progress: bool = True,
) -> tuple[FreeEnergyCurve, dict[str, Any]] | None:
    """F(M) at one temperature by REWL in M; cached in ``directory`` and resumable.

    Returns:
        The curve and the run record (trials, seconds, exchange acceptance, schedule), or None
        when the run stopped at its time limit (run again to continue).
    """
    comm = comm or LocalCommunicator()
    if sampling.m_max == "auto":
        m_max = saturate(magnetisation_range(system, temperature, seed=sampling.seed), sampling)
    else:
        m_max = float(sampling.m_max)
    record_path = directory / "sampling.json"
    table_path = directory / "free_energy.csv"
    attempts: list[dict[str, Any]] = []
    previous: tuple[Any, Binning, float] | None = None
    fingerprint = ""
    for attempt in range(sampling.extend_range + 1):
        binning = Binning.magnetisation(
            system, temperature, sampling.bins, mirror=sampling.mirror, m_max=m_max
        )
        sampler = ReplicaExchangeWangLandau(
            system,
            binning,
            wang_landau_settings(sampling),
            comm=comm,
            checkpoint=directory / f"range{attempt}",
        )
        if attempt == 0:
            fingerprint = sampler.fingerprint()
            if record_path.exists() and table_path.exists():
                record = _read_record(record_path)
                if record.get("fingerprint") == fingerprint:
                    return _read_curve(table_path, temperature, system.saturation_moment), record
        budget = 4 * attempts[0]["trials"] if attempts else None  # for a wider range
        result = sampler.run(progress=progress, monitor=_over_budget(budget))
        if result is None:
            return None
        if previous is not None and not sampler.finished():
            # the wider range does not flatten in 4x the first run's trials (its top bins are
            # too rarely reached): keep the previous range, whose edge stays masked
            attempts.append(
                {"m_max": m_max, "trials": result.trials, "seconds": result.seconds,
                 "abandoned": True}
            )  # fmt: skip
            result, binning, m_max = previous
            break
        previous = (result, binning, m_max)
        attempts.append({"m_max": m_max, "trials": result.trials, "seconds": result.seconds})
        positive = result.free_energy()[binning.centres > 0]
        lowest = int(np.nanargmin(positive))
        if m_max >= 1.0 or lowest < len(positive) - 2:
            break
        # F still falls at the sampled edge: the minimum lies beyond m_max; widen the range
        m_max = saturate(min(1.0, m_max + (1.0 - m_max) / 3.0), sampling)
    free = result.free_energy()
    m = binning.centres / system.saturation_moment
    if sampling.mirror:  # F(-M) = F(M): the Hamiltonian without Zeeman term is even in s
        free = np.concatenate([free[::-1], free])
        m = np.concatenate([-m[::-1], m])
    if m_max < 1.0:
        # the states beyond m_max were not sampled: one masked bin at each end says so, so a
        # free energy still falling at the range end is no minimum (the analysis reports it
        # as unresolved instead of a spinodal pinned to the cut)
        edge = min(1.0, m[-1] + binning.m_width / system.saturation_moment)
        m = np.concatenate([[-edge], m, [edge]])
        free = np.concatenate([[np.nan], free, [np.nan]])
    curve = FreeEnergyCurve(temperature, m, free, system.saturation_moment)
    record = {
        "fingerprint": fingerprint,
        "temperature": temperature,
        "trials": sum(a["trials"] for a in attempts),
        "seconds": sum(a["seconds"] for a in attempts),
        "ns_per_trial": 1e9 * result.seconds / max(result.trials, 1),
        "ranges_tried": [a["m_max"] for a in attempts],
        "ranges_abandoned": [a["m_max"] for a in attempts if a.get("abandoned")],
        "exchange_acceptance": result.exchange_acceptance,
        "joins": result.joins,
        "visited_bins": int(np.isfinite(free).sum()),
        "bins": len(free),
        "mirrored": sampling.mirror,
        "m_max": m_max,
        "history": result.history,
    }
    if comm.rank == 0:
        rows = [
            [
                f"{mi:.6f}",
                f"{mi * system.saturation_moment:.6f}",
                _cell(fi, digits=8),
                int(np.isfinite(fi)),
            ]
            for mi, fi in zip(m, free, strict=True)
        ]
        write_csv(table_path, ["m", "M", "F", "visited"], rows)
        write_json_atomic(record_path, record)
    return curve, record


def saturate(m_max: float, sampling: SamplingConfig) -> float:
    """``m_max`` itself, or 1 when it lies within one bin of saturation.

    A zero-field state that reaches to within one bin of ``|m| = 1`` is saturated (a single
    uniaxial spin, or a strongly coupled grain at low ``T``): its minimum lies in the top bin,
    so the range must include ``m = 1``, where an end of the range may be a minimum. Widening
    by a third of the remaining gap would never get there.
    """
    return 1.0 if 1.0 - m_max <= 2.0 / sampling.bins else m_max


def _read_record(path: Path) -> dict[str, Any]:
    """A temperature's ``sampling.json``; a corrupt one is a clear error naming it."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SpinModelError(
            f"'{path}' is corrupt ({exc}); delete it and free_energy.csv next to it to sample "
            "this temperature again"
        ) from None
    if not isinstance(record, dict):
        raise SpinModelError(f"'{path}' is corrupt (not a JSON object); delete it to resample")
    return record


def _over_budget(trials: int | None):
    """A REWL monitor that stops a run once it has spent ``trials`` (None: never)."""
    if trials is None:
        return None
    return lambda sampler: int(sampler.trials.sum()) > trials


def _read_curve(path: Path, temperature: float, saturation: float) -> FreeEnergyCurve:
    try:
        data = np.genfromtxt(path, delimiter=",", names=True)
        return FreeEnergyCurve(
            temperature, np.asarray(data["m"]), np.asarray(data["F"]), saturation
        )
    except (OSError, ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SpinModelError(
            f"'{path}' is corrupt ({reason}); delete it to sample this temperature again"
        ) from None


def run_coercivity(
    config: CoercivityConfig, comm: Communicator | None = None, progress: bool = True
) -> dict[str, Any]:
    """Sample every temperature, analyse the barriers and write tables, JSON and figures.

    Returns:
        The summary written to ``<out>/coercivity.json`` (``{"complete": False}`` and the
        finished temperatures when a time limit stopped the run).
    """
    from atomlens.spins import figures

    comm = comm or LocalCommunicator()
    out = Path(config.out)
    system = build_model(config.model)
    curves: list[FreeEnergyCurve] = []
    records: list[dict[str, Any]] = []
    for temperature in config.temperatures:
        directory = out / f"T_{temperature:g}"
        sampled = sample_free_energy(
            system, temperature, config.sampling, directory, comm=comm, progress=progress
        )
        if sampled is None:
            return {"complete": False, "finished_temperatures": [c.temperature for c in curves]}
        curves.append(sampled[0])
        records.append(sampled[1])
    smoothing = DEFAULT_SMOOTHING if config.smoothing is None else config.smoothing
    landscapes = [smooth_curve(curve, smoothing=smoothing) for curve in curves]
    analyses = [coercivity(land, c=config.criterion_c) for land in landscapes]
    rows = [coercivity_row(a) for a in analyses]
    kelvin = system.energy_unit == "K" and system.moment_unit == "mu_B"
    for row in rows:
        for key in ("hc_spinodal", "hc_thermal"):
            value = row[key]
            row[f"{key}_tesla"] = value / MU_B_OVER_KB if kelvin and value is not None else None
    # convexity of the thermal H_c(T) where it is positive (a clipped zero is not a value)
    positive = [row for row in rows if row["hc_thermal"] is not None and row["hc_thermal"] > 0]
    temperatures = np.array([row["temperature"] for row in positive])
    thermal = np.array([row["hc_thermal"] for row in positive])
    summary: dict[str, Any] = {
        "complete": True,
        "out": str(out),
        "model": {
            "name": system.name,
            "kind": config.model.kind,
            "sites": system.n_sites,
            "saturation_moment": system.saturation_moment,
            "energy_unit": system.energy_unit,
            "moment_unit": system.moment_unit,
            "field_unit": f"{system.energy_unit} per {system.moment_unit}",
        },
        "criterion_c": config.criterion_c,
        "coercivity": rows,
        "downward_convex": (
            downward_convexity(temperatures, thermal) if len(positive) >= 3 else None
        ),
        "activation_volume": [
            {
                "temperature": a.temperature,
                "fields": a.va_fields.tolist(),
                "va": a.va_values.tolist(),
            }
            for a in analyses
        ],
        "cost": {
            "trials": int(sum(r["trials"] for r in records)),
            "seconds": float(sum(r["seconds"] for r in records)),
            "per_temperature": [
                {k: r[k] for k in ("temperature", "trials", "seconds", "exchange_acceptance")}
                for r in records
            ],
        },
        "sampling": config.sampling.model_dump(),
    }
    _check_resolved(analyses, out)
    if comm.rank != 0:
        return summary
    header = list(rows[0])
    write_csv(out / "coercivity.csv", header, [[_cell(row[k]) for k in header] for row in rows])
    write_json_atomic(out / "coercivity.json", summary)
    for curve, analysis in zip(curves, analyses, strict=True):
        top = _top_field(analysis)
        fields = np.linspace(0.0, top, config.plot_fields) if np.isfinite(top) else [0.0]
        figures.plot_free_energy_family(
            curve, list(fields), out / "figures" / f"free_energy_T{curve.temperature:g}.png"
        )
    barriers = [
        barrier_curve(land, _field_grid(a)) for land, a in zip(landscapes, analyses, strict=True)
    ]
    figures.plot_barrier(barriers, out / "figures" / "barrier.png", config.criterion_c)
    figures.plot_coercivity(rows, out / "figures" / "coercivity.png")
    return summary


def _check_resolved(analyses: list[Any], out: Path) -> None:
    """Raise when no temperature gave any coercive field (every H_c is NaN).

    Nothing is written then (no table of NaN, no empty figure); the sampled free energies
    stay in ``<out>/T_*/free_energy.csv``.
    """
    if any(np.isfinite(a.hc_spinodal) or np.isfinite(a.hc_thermal) for a in analyses):
        return
    first = analyses[0]
    reason = (first.at_hc.reason if first.at_hc is not None else "") or (
        "the metastable minimum survives every field searched"
    )
    raise SpinModelError(
        f"no coercive field at any temperature: the metastable state is not resolved by the "
        f"sampled F(M) (T = {first.temperature:g}: {reason}); widen sampling.m_max or "
        f"sampling.extend_range (free energies kept in {out}/T_*/free_energy.csv)"
    )


def _top_field(analysis: Any) -> float:
    """The largest field worth plotting: the spinodal, else the end of the field search."""
    return analysis.hc_spinodal if np.isfinite(analysis.hc_spinodal) else analysis.field_max


def _field_grid(analysis: Any) -> np.ndarray:
    top = _top_field(analysis)
    return np.linspace(0.0, top if np.isfinite(top) else 1.0, 41)


def _cell(value: Any, digits: int = 6) -> Any:
    if isinstance(value, float):
        return "nan" if not np.isfinite(value) else f"{value:.{digits}g}"
    return value
