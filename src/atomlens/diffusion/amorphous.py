"""Amorphous cells by melt-quench MD with a machine-learned potential (CHGNet by default).

Workflow (after the MPMorph recipe of the paper, shortened): random packing in a cubic box
at an estimated density, melt (NVT Langevin), optional volume equilibration by a
Birch-Murnaghan fit of P(V) from runs at 0.8, 1.0 and 1.2 V, then anneal at each requested
temperature. Every stage runs in segments; each finished segment is written atomically
(extxyz with momenta), so a killed run continues from the last finished segment. Every
segment is checked: finite energy and no two atoms closer than ``min_distance``.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from atomlens.errors import DataError
from atomlens.files import atomic_path, dumps_json, write_json_atomic
from atomlens.units import AMU_G

GPA_PER_EV_A3 = 160.21766208
KBAR_PER_GPA = 10.0


def parse_composition(formula: str, n_atoms: int) -> list[str]:
    """Element symbols of ``n_atoms`` (rounded to whole formula units) of ``formula``."""
    from pymatgen.core import Composition

    try:
        composition = Composition(formula)
    except (ValueError, KeyError) as exc:
        raise DataError(f"cannot parse composition {formula!r}: {exc}") from None
    from pymatgen.core import Element

    unknown = [str(el) for el in composition if not isinstance(el, Element)]
    if unknown:
        raise DataError(f"cannot parse composition {formula!r}: unknown element(s) {unknown}")
    per_unit = composition.num_atoms
    if per_unit != int(per_unit):
        raise DataError(f"composition {formula!r} has fractional amounts")
    units = max(1, round(n_atoms / per_unit))
    return [str(el) for el, amount in composition.items() for _ in range(int(amount) * units)]


def estimate_volume(symbols: list[str], packing: float = 0.45) -> float:
    """Box volume (Å^3) at which atomic-radius spheres fill ``packing`` of the space."""
    from pymatgen.core import Element

    # pymatgen's atomic radii (the md extra's own dependency, not the descriptors domain's)
    radii = np.array([Element(s).atomic_radius or np.nan for s in symbols], dtype=float)
    radii = np.nan_to_num(radii, nan=1.5)
    return float(np.sum(4.0 / 3.0 * np.pi * radii**3) / packing)


def random_pack(
    symbols: list[str],
    volume: float,
    min_distance: float = 2.0,
    seed: int = 0,
    attempts: int = 2000,
) -> Any:
    """Atoms placed at random in a cubic periodic box, no pair closer than ``min_distance``.

    The tolerance is lowered by 10 % whenever an atom cannot be placed (down to 1.2 Å).
    """
    import ase

    rng = np.random.default_rng(seed)
    side = volume ** (1 / 3)
    placed = np.empty((0, 3))
    tolerance = min_distance
    for _ in symbols:
        while True:
            for _ in range(attempts):
                trial = rng.uniform(0, side, 3)
                delta = placed - trial
                delta -= side * np.round(delta / side)
                if placed.size == 0 or np.min(np.linalg.norm(delta, axis=1)) >= tolerance:
                    break
            else:
                tolerance *= 0.9
                if tolerance < 1.2:
                    raise DataError(f"cannot pack {len(symbols)} atoms into {volume:.0f} Å^3")
                continue
            break
        placed = np.vstack([placed, trial])
    return ase.Atoms(symbols, positions=placed, cell=np.eye(3) * side, pbc=True)


DENSITY_RANGE = (0.2, 25.0)  # g/cm^3: outside this a cell has exploded or collapsed


def check_structure(atoms: Any, min_distance: float, where: str) -> None:
    """Raise a DataError naming ``where`` for a diverged or unphysical MD state.

    Checked in this order: finite positions and momenta (NaN or inf means the integration
    diverged), a finite potential energy, a density within ``DENSITY_RANGE`` and no two atoms
    closer than ``min_distance``.
    """
    for name, values in (("positions", atoms.positions), ("momenta", atoms.get_momenta())):
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            raise DataError(
                f"{where}: {name} of {int(bad.sum())} of {len(atoms)} atoms are not finite "
                "(the MD diverged)"
            )
    energy = atoms.get_potential_energy()
    if not np.isfinite(energy):
        raise DataError(f"{where}: the potential energy is not finite (the MD diverged)")
    density = float(atoms.get_masses().sum() * AMU_G / (atoms.get_volume() * 1e-24))
    if not DENSITY_RANGE[0] <= density <= DENSITY_RANGE[1]:
        raise DataError(f"{where}: density {density:.3g} g/cm^3 is outside {DENSITY_RANGE}")
    distances = atoms.get_all_distances(mic=True)
    np.fill_diagonal(distances, np.inf)
    shortest = float(distances.min())
    if shortest < min_distance:
        raise DataError(f"{where}: atoms {shortest:.2f} Å apart (< {min_distance} Å)")


def pressure_gpa(atoms: Any) -> float:
    """Pressure including the kinetic part, GPa."""
    stress = atoms.get_stress(include_ideal_gas=True, voigt=True)
    return float(-np.mean(stress[:3]) * GPA_PER_EV_A3)


def birch_murnaghan_v0(volumes: np.ndarray, pressures: np.ndarray) -> float:
    """Zero-pressure volume from a 3rd-order Birch-Murnaghan P(V) fit with B' = 4."""
    from scipy.optimize import curve_fit

    def p_of_v(v, v0, b0):
        x = (v0 / v) ** (1 / 3)
        return 1.5 * b0 * (x**7 - x**5)

    guess = (float(np.median(volumes)), 50.0)
    (v0, _), _ = curve_fit(p_of_v, volumes, pressures, p0=guess, maxfev=20000)
    return float(v0)


@dataclass
class Stage:
    """One MD stage: name, temperature (K), steps, and optional cell scale."""

    name: str
    temperature: float
    steps: int


@dataclass
class AmorphousRun:
    """Settings of a melt-quench run."""

    out_dir: Path
    timestep_fs: float = 2.0
    segment_steps: int = 100
    interval: int = 10
    friction_per_fs: float = 0.01
    min_distance: float = 0.7
    seed: int = 0
    progress: bool = True
    files: list[Path] = field(default_factory=list)

    def segment_file(self, stage: str, k: int) -> Path:
        """The file of segment ``k`` of a stage."""
        return self.out_dir / f"{stage}_segment{k:04d}.extxyz"

    def state_file(self, stage: str, k: int) -> Path:
        """The exact (float64) end state of segment ``k`` of a stage."""
        return self.out_dir / f"{stage}_segment{k:04d}.npz"

    def resume_state(self, stage: str, k: int) -> Any:
        """The atoms at the end of finished segment ``k``, bit for bit where the state exists.

        Segments written before the exact state was kept resume from the extxyz frame.
        """
        import ase.io

        atoms = ase.io.read(self.segment_file(stage, k), index=-1)
        state = self.state_file(stage, k)
        if state.is_file():
            with np.load(state) as saved:
                if saved["positions"].shape == atoms.positions.shape:
                    atoms.set_cell(saved["cell"])
                    atoms.positions = saved["positions"]
                    atoms.set_momenta(saved["momenta"])
        return atoms

    def run_stage(self, atoms: Any, stage: Stage, calculator: Any) -> Any:
        """Run (or resume) one stage; returns the atoms at its end."""
        import ase.io
        from ase import units
        from ase.md.langevin import Langevin
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

        n_segments = max(1, -(-stage.steps // self.segment_steps))
        done = [k for k in range(n_segments) if self.segment_file(stage.name, k).is_file()]
        start = len(done)
        if start and done != list(range(start)):
            raise DataError(f"{self.out_dir}: segments of '{stage.name}' are not contiguous")
        if start:
            atoms = self.resume_state(stage.name, start - 1)
        else:
            MaxwellBoltzmannDistribution(
                atoms, temperature_K=stage.temperature, rng=np.random.default_rng(self.seed)
            )
        atoms.calc = calculator
        bar = tqdm(
            total=n_segments,
            initial=start,
            desc=f"{stage.name} {stage.temperature:g} K",
            disable=not self.progress,
        )
        for k in range(start, n_segments):
            # Each segment starts from a fresh calculator state (no cached results or
            # neighbour lists), as a resumed one does: deterministic potentials then give
            # a resumed run bit for bit the same as an uninterrupted one.
            if callable(getattr(calculator, "reset", None)):
                calculator.reset()
            dyn = Langevin(
                atoms,
                self.timestep_fs * units.fs,
                temperature_K=stage.temperature,
                friction=self.friction_per_fs / units.fs,
                rng=np.random.default_rng([self.seed, k, zlib.crc32(stage.name.encode())]),
                fixcm=False,
            )
            frames: list[Any] = []

            def keep(atoms=atoms, frames=frames, dyn=dyn) -> None:
                if dyn.nsteps == 0:  # the segment's start is the previous segment's end
                    return
                snapshot = atoms.copy()
                snapshot.info = {
                    "stage": stage.name,
                    "temperature_K": stage.temperature,
                    "epot_eV": float(atoms.get_potential_energy()),
                }
                frames.append(snapshot)

            dyn.attach(keep, interval=self.interval)
            steps = min(self.segment_steps, stage.steps - k * self.segment_steps)
            dyn.run(steps)
            check_structure(
                atoms,
                self.min_distance,
                f"{self.out_dir}: stage '{stage.name}' ({stage.temperature:g} K), segment {k} "
                f"({self.segment_file(stage.name, k).name} not written; earlier segments kept)",
            )
            last = atoms.copy()
            last.info = {"stage": stage.name, "temperature_K": stage.temperature, "final": True}
            frames.append(last)
            # The exact end state first (extxyz rounds to 1e-8, which chaotic MD amplifies),
            # then the segment file whose presence marks the segment finished.
            with atomic_path(self.state_file(stage.name, k)) as tmp:
                np.savez(
                    tmp,
                    positions=atoms.positions,
                    momenta=atoms.get_momenta(),
                    cell=atoms.cell.array,
                )
            with atomic_path(self.segment_file(stage.name, k)) as tmp:
                ase.io.write(tmp, frames, format="extxyz")
            bar.update()
        bar.close()
        return atoms

    def trajectory(self, stage: str) -> Path:
        """Join a stage's segments (without the repeated end frames) into one extxyz."""
        import ase.io

        frames = []
        for path in sorted(self.out_dir.glob(f"{stage}_segment*.extxyz")):
            frames.extend(a for a in ase.io.read(path, index=":") if not a.info.get("final"))
        target = self.out_dir / f"{stage}.extxyz"
        with atomic_path(target) as tmp:
            ase.io.write(tmp, frames, format="extxyz")
        return target


REQUEST_FILE = "request.json"
# Files a run writes into its folder (removed by ``overwrite``; their presence without a
# request record means a run of unknown settings).
_RUN_FILE = re.compile(
    r"^(packed|(melt|volume\d\.\d|volume_check|quench\d+|anneal\d+)(_segment\d{4})?"
    r"|(quench|anneal\d+)_final)\.extxyz$|^(request|summary|volume)\.json$"
    r"|^(melt|volume\d\.\d|volume_check|quench\d+|anneal\d+)_segment\d{4}\.npz$"
)


def amorphous_request(
    formula: str,
    n_atoms: int,
    run: AmorphousRun,
    potential: str,
    *,
    melt_temperature: float,
    melt_steps: int,
    anneal_temperatures: tuple[float, ...],
    anneal_steps: int,
    quench_temperatures: tuple[float, ...],
    quench_steps: int,
    equilibrate_volume: bool,
    volume_steps: int,
) -> dict[str, Any]:
    """Everything that determines a melt-quench run's files, as plain JSON values.

    Settings of stages that do not run (e.g. ``anneal_steps`` without anneal temperatures)
    are left out, so changing them does not count as another request.
    """
    return {
        "format": 1,
        "composition": formula,
        "atoms": int(n_atoms),
        "potential": potential,
        "seed": int(run.seed),
        "timestep_fs": float(run.timestep_fs),
        "segment_steps": int(run.segment_steps),
        "interval": int(run.interval),
        "friction_per_fs": float(run.friction_per_fs),
        "melt": {"temperature_K": float(melt_temperature), "steps": int(melt_steps)},
        "volume": {"steps": int(volume_steps)} if equilibrate_volume else None,
        "quench": {
            "temperatures_K": [float(t) for t in quench_temperatures],
            "steps": int(quench_steps),
        }
        if quench_temperatures
        else None,
        "anneal": {
            "temperatures_K": [float(t) for t in anneal_temperatures],
            "steps": int(anneal_steps),
        }
        if anneal_temperatures
        else None,
    }


def claim_output(out_dir: Path, request: dict[str, Any], overwrite: bool = False) -> bool:
    """Make ``out_dir`` hold ``request``'s run; True when an earlier run of it is resumed.

    The request is recorded in ``request.json``. A folder holding the same request is
    resumed. A folder holding another request, a corrupt record, or run files without a
    record (an older atomlens) is refused, unless ``overwrite``: then that run's files are
    deleted (other files in the folder are left alone) and the new request is recorded.

    Raises:
        DataError: One line naming the folder and the first differing settings.
    """
    out_dir = Path(out_dir)
    record = out_dir / REQUEST_FILE
    wanted = json.loads(dumps_json(request))
    found = [p for p in out_dir.iterdir() if _RUN_FILE.match(p.name)] if out_dir.is_dir() else []
    if record.is_file() and any(p.name != REQUEST_FILE for p in found):  # a record alone: no run
        try:
            saved = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            saved, problem = None, f"its record '{record}' is unreadable ({exc})"
        else:
            if saved == wanted:
                return True
            problem = "another request: " + _differences(saved, wanted)
    elif found and not record.is_file():
        problem = f"files of a run without a record of its settings ({REQUEST_FILE})"
    else:
        problem = ""
    if problem and not overwrite:
        raise DataError(
            f"--out '{out_dir}' holds an amorphous run with {problem}; choose another --out "
            "or pass --overwrite to replace it"
        )
    record.unlink(missing_ok=True)  # first: an interrupted clean-up is never taken for a run
    for path in found:
        path.unlink(missing_ok=True)
    write_json_atomic(record, wanted)
    return False


def _differences(saved: Any, wanted: dict[str, Any], limit: int = 3) -> str:
    """The first ``limit`` settings that differ, as ``name saved -> requested``."""
    saved = saved if isinstance(saved, dict) else {}
    changed = [k for k in wanted.keys() | saved.keys() if saved.get(k) != wanted.get(k)]
    order = list(wanted)
    changed.sort(key=lambda k: order.index(k) if k in order else len(order))
    text = "; ".join(
        f"{k} {dumps_json(saved.get(k), indent=None)} -> {dumps_json(wanted.get(k), indent=None)}"
        for k in changed[:limit]
    )
    return text + (f" (and {len(changed) - limit} more)" if len(changed) > limit else "")


def check_settings(
    n_atoms: int,
    run: AmorphousRun,
    temperatures: dict[str, tuple[float, ...]],
    steps: dict[str, int],
) -> None:
    """Raise a DataError naming the setting when a count or temperature is out of range.

    Temperatures must be finite and > 0 (a negative one makes Langevin MD produce NaN),
    counts and steps >= 1, the time step > 0.
    """
    counts = {"n_atoms": n_atoms, "segment_steps": run.segment_steps, "interval": run.interval}
    for name, value in (counts | steps).items():
        if not value >= 1:
            raise DataError(f"{name} must be >= 1, got {value}")
    if not (np.isfinite(run.timestep_fs) and run.timestep_fs > 0):
        raise DataError(f"timestep_fs must be > 0, got {run.timestep_fs:g}")
    for name, values in temperatures.items():
        for value in values:
            if not (np.isfinite(value) and value > 0):
                raise DataError(f"{name} must be > 0 K, got {value:g}")


def make_calculator(potential: str, device: str = "auto") -> Any:
    """An ASE calculator by name: ``chgnet`` (weights ship with the wheel) or ``emt``.

    Args:
        potential: ``chgnet`` or ``emt``.
        device: Where CHGNet runs: ``auto`` (CUDA if available, else CPU), ``cpu``,
            ``cuda``, ``cuda:N`` or ``mps`` (EMT always runs on the CPU).

    Raises:
        DataError: For an unknown potential, a missing chgnet, or an unavailable device.
    """
    from atomlens.device import resolve_device

    where = str(resolve_device(device))
    if potential == "chgnet":
        try:
            from chgnet.model import CHGNet
            from chgnet.model.dynamics import CHGNetCalculator
        except ImportError:
            raise DataError("the chgnet potential needs: pip install 'atomlens[md]'") from None
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = CHGNet.load(use_device=where, verbose=False)
        return CHGNetCalculator(model, use_device=where)
    if potential == "emt":
        from ase.calculators.emt import EMT

        return EMT()
    raise DataError(f"unknown potential {potential!r}; use chgnet or emt (or pass a calculator)")


def melt_quench(
    formula: str,
    n_atoms: int,
    run: AmorphousRun,
    calculator: Any,
    *,
    melt_temperature: float = 5000.0,
    melt_steps: int = 1000,
    anneal_temperatures: tuple[float, ...] = (),
    anneal_steps: int = 1000,
    quench_temperatures: tuple[float, ...] = (),
    quench_steps: int = 1000,
    equilibrate_volume: bool = False,
    volume_steps: int = 200,
    on_stage: Callable[[str], None] | None = None,
    potential: str | None = None,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Melt a random packing of ``formula`` and anneal it; returns trajectory files by stage.

    Each anneal starts from the melt. ``quench_temperatures`` (e.g. 3000, 2500, ..., 500)
    instead chains stages, each starting where the previous one ended (a slow quench); its
    final structure is ``quench_final.extxyz``. The request (composition, atoms, stages,
    seed, MD settings and ``potential``, by default the calculator's class name) is recorded
    in ``request.json``: the same request resumes, another one is refused (see
    :func:`claim_output`) unless ``overwrite``.

    Raises:
        DataError: For a bad setting, a folder holding another request, or a segment whose
            MD diverged or became unphysical (finished segments are kept).
    """
    import ase.io

    settings = {
        "melt_temperature": melt_temperature,
        "melt_steps": melt_steps,
        "anneal_temperatures": tuple(anneal_temperatures),
        "anneal_steps": anneal_steps,
        "quench_temperatures": tuple(quench_temperatures),
        "quench_steps": quench_steps,
        "equilibrate_volume": equilibrate_volume,
        "volume_steps": volume_steps,
    }
    check_settings(
        n_atoms,
        run,
        {
            "melt_temperature": (melt_temperature,),
            "anneal_temperatures": settings["anneal_temperatures"],
            "quench_temperatures": settings["quench_temperatures"],
        },
        {k: v for k, v in settings.items() if k.endswith("_steps")},
    )
    potential = potential or type(calculator).__name__
    request = amorphous_request(formula, n_atoms, run, potential, **settings)
    run.out_dir.mkdir(parents=True, exist_ok=True)
    claim_output(run.out_dir, request, overwrite)
    start_file = run.out_dir / "packed.extxyz"
    if start_file.is_file():
        atoms = ase.io.read(start_file)
    else:
        symbols = parse_composition(formula, n_atoms)
        atoms = random_pack(symbols, estimate_volume(symbols), seed=run.seed)
        with atomic_path(start_file) as tmp:
            ase.io.write(tmp, atoms)
    outputs: dict[str, Path] = {}
    atoms = run.run_stage(atoms, Stage("melt", melt_temperature, melt_steps), calculator)
    outputs["melt"] = run.trajectory("melt")
    if equilibrate_volume:
        volumes, pressures = [], []
        base = atoms.copy()
        for scale in (0.8, 1.0, 1.2):
            trial = base.copy()
            trial.set_cell(base.cell * scale ** (1 / 3), scale_atoms=True)
            name = f"volume{scale:.1f}"
            trial = run.run_stage(trial, Stage(name, melt_temperature, volume_steps), calculator)
            volumes.append(trial.get_volume())
            pressures.append(_mean_pressure(run.trajectory(name), calculator))
        v0 = birch_murnaghan_v0(np.array(volumes), np.array(pressures))
        atoms = base.copy()
        atoms.set_cell(base.cell * (v0 / base.get_volume()) ** (1 / 3), scale_atoms=True)
        atoms = run.run_stage(
            atoms, Stage("volume_check", melt_temperature, volume_steps), calculator
        )
        check = _mean_pressure(run.trajectory("volume_check"), calculator)
        report = {
            "volumes_A3": volumes,
            "pressures_GPa": pressures,
            "v0_A3": v0,
            "pressure_at_v0_GPa": check,
            "converged_5kbar": abs(check) < 0.5,
        }
        write_json_atomic(run.out_dir / "volume.json", report)
    if quench_temperatures:
        quenched = atoms.copy()
        for temperature in quench_temperatures:
            name = f"quench{int(temperature)}"
            quenched = run.run_stage(quenched, Stage(name, temperature, quench_steps), calculator)
            outputs[name] = run.trajectory(name)
        with atomic_path(run.out_dir / "quench_final.extxyz") as tmp:
            ase.io.write(tmp, quenched)
    for temperature in anneal_temperatures:
        name = f"anneal{int(temperature)}"
        final = run.run_stage(atoms.copy(), Stage(name, temperature, anneal_steps), calculator)
        outputs[name] = run.trajectory(name)
        with atomic_path(run.out_dir / f"{name}_final.extxyz") as tmp:
            ase.io.write(tmp, final)
        if on_stage:
            on_stage(name)
    return outputs


def _mean_pressure(trajectory: Path, calculator: Any) -> float:
    """Mean pressure (GPa) over the second half of a stage's frames."""
    import ase.io

    frames = ase.io.read(trajectory, index=":")
    values = []
    for atoms in frames[len(frames) // 2 :]:
        atoms.calc = calculator
        values.append(pressure_gpa(atoms))
    return float(np.mean(values))
