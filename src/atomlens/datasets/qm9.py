"""QM9 (130,831 molecules) from the ``qm9pack`` package, with targets in documented units.

Targets and units (Hartree energies are converted to eV with CODATA 2018):

| name  | meaning                               | unit         |
|-------|---------------------------------------|--------------|
| mu    | dipole moment                         | Debye        |
| alpha | isotropic polarizability              | Bohr^3       |
| homo  | HOMO energy                           | eV           |
| lumo  | LUMO energy                           | eV           |
| gap   | HOMO-LUMO gap                         | eV           |
| r2    | electronic spatial extent <R^2>       | Bohr^2       |
| zpve  | zero-point vibrational energy         | eV           |
| u0    | internal energy at 0 K                | eV           |
| u298  | internal energy at 298.15 K           | eV           |
| h298  | enthalpy at 298.15 K                  | eV           |
| g298  | free energy at 298.15 K               | eV           |
| cv    | heat capacity at 298.15 K             | cal/(mol K)  |
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atomlens.errors import DataError, StructureError
from atomlens.structures.record import Structure, make_structure
from atomlens.units import HARTREE_TO_EV

# name -> (qm9pack column, factor to the documented unit, unit)
QM9_TARGETS: dict[str, tuple[str, float, str]] = {
    "mu": ("Dipole_debye", 1.0, "Debye"),
    "alpha": ("Polarizability_bohr3", 1.0, "Bohr^3"),
    "homo": ("HOMO_au", HARTREE_TO_EV, "eV"),
    "lumo": ("LUMO_au", HARTREE_TO_EV, "eV"),
    "gap": ("HOMO_LUMO_gap_au", HARTREE_TO_EV, "eV"),
    "r2": ("R2_bohr2", 1.0, "Bohr^2"),
    "zpve": ("ZPVE_au", HARTREE_TO_EV, "eV"),
    "u0": ("InternalEnergy_0K_au", HARTREE_TO_EV, "eV"),
    "u298": ("InternalEnergy_298K_au", HARTREE_TO_EV, "eV"),
    "h298": ("Enthalphy_298K_au", HARTREE_TO_EV, "eV"),
    "g298": ("GibbsFreeEnergy_298K_au", HARTREE_TO_EV, "eV"),
    "cv": ("Heatcapacity_Cv_cal_mol_K", 1.0, "cal/(mol K)"),
}
QM9_PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_ELEMENT = re.compile(r"[A-Z][a-z]?")
_SYMBOL_TO_Z = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}


@dataclass(frozen=True)
class QM9Table:
    """QM9 molecules as parsed from qm9pack.

    Attributes:
        ids: QM9 index of each molecule (1-133885, gaps where uncharacterised).
        structures: The molecules.
        targets: (M, 12) array in the units of ``QM9_TARGETS``.
        target_names: Names of the target columns.
        source_hash: Content hash of the source CSV files.
    """

    ids: np.ndarray
    structures: list[Structure]
    targets: np.ndarray
    target_names: tuple[str, ...]
    source_hash: str


def qm9pack_data_dir() -> Path:
    """Locate qm9pack's data folder without importing it (its import needs pkg_resources)."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "QM9 needs the 'qm9pack' package: pip install 'atomlens[qm9]' (or `make demo`)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    missing = [name for name in QM9_PARTS if not (folder / name).is_file()]
    if missing:
        raise DataError(f"qm9pack data files missing in '{folder}': {missing}")
    return folder


def parse_coordinates(text: str, n_atoms: int, where: str) -> np.ndarray:
    """Parse a qm9pack ``XYZ_Ang`` string (not strict JSON: ``0.``, ``1.`` and ``*^``)."""
    values = _NUMBER.findall(text.replace("*^", "e"))
    if len(values) != 3 * n_atoms:
        raise StructureError(
            f"expected {3 * n_atoms} coordinates for {n_atoms} atoms, found {len(values)}", where
        )
    return np.asarray(values, dtype=np.float64).reshape(n_atoms, 3)


def parse_elements(text: str, where: str) -> np.ndarray:
    """Parse a qm9pack ``Elements`` string such as ``['C','H','H','H','H']``."""
    symbols = _ELEMENT.findall(text)
    unknown = [s for s in symbols if s not in _SYMBOL_TO_Z]
    if unknown or not symbols:
        raise StructureError(f"unknown element(s) {unknown or text!r}", where)
    return np.array([_SYMBOL_TO_Z[s] for s in symbols], dtype=np.int64)


def load_qm9(limit: int | None = None, *, data_dir: Path | None = None) -> QM9Table:
    """Load QM9 from qm9pack.

    Args:
        limit: Read only the first ``limit`` molecules (in QM9 index order).
        data_dir: Folder holding the qm9pack CSV files (default: the installed package).

    Returns:
        The parsed table with all 12 targets in documented units.

    Raises:
        DataError: If qm9pack is missing or its files are malformed.
        StructureError: Naming the molecule when a geometry cannot be parsed.
    """
    try:
        import pandas as pd
    except ImportError:
        raise DataError("QM9 needs pandas: pip install 'atomlens[qm9]' (or `make demo`)") from None

    folder = data_dir or qm9pack_data_dir()
    columns = ["Index", "N_atoms", "Elements", "XYZ_Ang"] + [c for c, _, _ in QM9_TARGETS.values()]
    frames = []
    remaining = limit
    for name in QM9_PARTS:
        if remaining is not None and remaining <= 0:
            break
        try:
            frame = pd.read_csv(folder / name, usecols=columns, nrows=remaining)
        except ValueError as exc:
            raise DataError(f"'{folder / name}': unexpected columns ({exc})") from None
        frames.append(frame)
        if remaining is not None:
            remaining -= len(frame)
    table = pd.concat(frames, ignore_index=True)
    structures = []
    for row in table.itertuples(index=False):
        where = f"qm9pack molecule {row.Index}"
        numbers = parse_elements(row.Elements, where)
        if numbers.size != row.N_atoms:
            raise StructureError(f"N_atoms={row.N_atoms} but {numbers.size} elements", where)
        positions = parse_coordinates(row.XYZ_Ang, numbers.size, where)
        structures.append(
            make_structure(numbers, positions, source=where, info={"qm9_id": int(row.Index)})
        )
    targets = np.column_stack(
        [
            table[column].to_numpy(dtype=np.float64) * factor
            for column, factor, _ in QM9_TARGETS.values()
        ]
    )
    return QM9Table(
        ids=table["Index"].to_numpy(dtype=np.int64),
        structures=structures,
        targets=targets,
        target_names=tuple(QM9_TARGETS),
        source_hash=_hash_files([folder / name for name in QM9_PARTS]),
    )


def _hash_files(paths: list[Path]) -> str:
    """Cheap content fingerprint: size plus SHA-256 of the first and last MiB of each file."""
    digest = hashlib.sha256()
    for path in paths:
        size = path.stat().st_size
        digest.update(f"{path.name}:{size}".encode())
        with path.open("rb") as handle:
            digest.update(handle.read(1 << 20))
            handle.seek(max(size - (1 << 20), 0))
            digest.update(handle.read())
    return digest.hexdigest()[:16]
