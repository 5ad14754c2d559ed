"""The validated internal structure record every other module consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from atomlens.errors import StructureError

MAX_ATOMIC_NUMBER = 118
DEFAULT_MIN_DISTANCE = 0.5  # Angstrom
ID_KEYS = ("id", "name", "material_id", "mp_id", "qm9_id")  # info keys that name a structure
_MIN_CELL_VOLUME = 1e-6  # Angstrom^3


@dataclass(frozen=True)
class Structure:
    """An atomic structure: a molecule (no periodic direction) or a crystal.

    Attributes:
        numbers: Atomic numbers, shape (N,), int64.
        positions: Cartesian coordinates in Angstrom, shape (N, 3), float64.
        cell: Cell vectors as rows in Angstrom, shape (3, 3) (zeros for molecules).
        pbc: Periodicity along each cell vector, shape (3,), bool.
        source: File name or description of where the structure came from.
        frame: Index of the structure inside ``source``.
        info: Free-form per-structure metadata (labels, ids).
        arrays: Other per-atom arrays of the input (forces, tags, charges, ...), each with
            first dimension N; kept so that output files carry them on.
    """

    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    source: str | None = None
    frame: int | None = None
    info: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.numbers.shape[0])

    @property
    def is_periodic(self) -> bool:
        """True if any direction is periodic."""
        return bool(np.any(self.pbc))

    @property
    def formula(self) -> str:
        """Hill-ordered chemical formula, e.g. ``CH4``."""
        from ase.formula import Formula
        from ase.symbols import Symbols

        return Formula(str(Symbols(self.numbers))).format("hill")

    def fail(self, message: str) -> StructureError:
        """Return a StructureError located at this structure's source and frame."""
        return StructureError(message, self.source, self.frame)


def make_structure(
    numbers: Any,
    positions: Any,
    cell: Any = None,
    pbc: Any = False,
    *,
    source: str | None = None,
    frame: int | None = None,
    info: dict[str, Any] | None = None,
    arrays: dict[str, Any] | None = None,
    min_distance: float = DEFAULT_MIN_DISTANCE,
) -> Structure:
    """Build and validate a Structure.

    Args:
        numbers: Atomic numbers, length N.
        positions: Cartesian coordinates (N, 3) in Angstrom.
        cell: Cell vectors as rows (3, 3); required where ``pbc`` is set.
        pbc: Periodicity, a bool or three bools.
        source: Where the structure came from (used in error messages).
        frame: Index of the structure inside ``source``.
        info: Metadata to keep with the structure.
        arrays: Other per-atom arrays to keep (first dimension N).
        min_distance: Smallest allowed interatomic distance in Angstrom.

    Returns:
        A validated, immutable Structure.

    Raises:
        StructureError: If the structure is empty, has unknown elements, non-finite
            coordinates, a degenerate periodic cell or overlapping atoms.
    """

    def fail(message: str) -> StructureError:
        return StructureError(message, source, frame)

    try:
        numbers_arr = np.asarray(numbers, dtype=np.int64).reshape(-1)
        positions_arr = np.asarray(positions, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise fail(f"cannot interpret atomic numbers/positions: {exc}") from None
    if numbers_arr.size == 0:
        raise fail("empty structure (no atoms)")
    if positions_arr.shape != (numbers_arr.size, 3):
        raise fail(f"positions have shape {positions_arr.shape}, expected ({numbers_arr.size}, 3)")
    bad = np.nonzero((numbers_arr < 1) | (numbers_arr > MAX_ATOMIC_NUMBER))[0]
    if bad.size:
        raise fail(
            f"unknown element (atomic number {numbers_arr[bad[0]]}) at atom {bad[0]}; "
            f"atomic numbers must be 1-{MAX_ATOMIC_NUMBER}"
        )
    nonfinite = np.nonzero(~np.isfinite(positions_arr).all(axis=1))[0]
    if nonfinite.size:
        raise fail(f"non-finite (NaN/inf) coordinates at atom {nonfinite[0]}")

    pbc_arr = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)).copy()
    cell_arr = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=np.float64)
    if cell_arr.shape != (3, 3):
        raise fail(f"cell has shape {cell_arr.shape}, expected (3, 3)")
    if not np.isfinite(cell_arr).all():
        raise fail("cell contains non-finite values")
    if pbc_arr.any():
        if not pbc_arr.all():
            raise fail(
                f"mixed periodicity pbc={pbc_arr.tolist()} is not supported; "
                "use fully periodic crystals or fully open molecules"
            )
        volume = abs(float(np.linalg.det(cell_arr)))
        if volume < _MIN_CELL_VOLUME:
            raise fail(f"periodic cell has zero volume ({volume:.3g} A^3)")
    else:
        cell_arr = np.zeros((3, 3))
    extra = {name: np.array(values) for name, values in (arrays or {}).items()}
    for name, values in extra.items():
        if values.shape[:1] != (numbers_arr.size,):
            raise fail(
                f"per-atom array '{name}' has shape {values.shape}, "
                f"expected ({numbers_arr.size}, ...)"
            )

    structure = Structure(
        numbers=numbers_arr,
        positions=positions_arr,
        cell=cell_arr,
        pbc=pbc_arr,
        source=source,
        frame=frame,
        info=dict(info or {}),
        arrays=extra,
    )
    check_min_distance(structure, min_distance)
    return structure


def check_min_distance(structure: Structure, min_distance: float) -> None:
    """Raise StructureError if two atoms (or an atom and an image) are too close.

    Args:
        structure: The structure to check.
        min_distance: Threshold in Angstrom; ``0`` disables the check.
    """
    if min_distance <= 0:
        return
    if structure.is_periodic:
        from vesin import NeighborList

        i, j, shifts, dist = NeighborList(cutoff=min_distance, full_list=False).compute(
            structure.positions, structure.cell, True, quantities="ijSd"
        )
    else:
        pairs = cKDTree(structure.positions).query_pairs(min_distance, output_type="ndarray")
        i, j = pairs[:, 0], pairs[:, 1]
        shifts = np.zeros((len(pairs), 3), dtype=np.int64)
        dist = np.linalg.norm(structure.positions[i] - structure.positions[j], axis=1)
    if len(dist):
        k = int(np.argmin(dist))
        if i[k] == j[k]:
            raise structure.fail(
                f"atom {i[k]} is {dist[k]:.3f} A from its own periodic image "
                f"(minimum {min_distance} A): the cell is too small"
            )
        raise structure.fail(
            f"atoms {i[k]} and {j[k]} are {dist[k]:.3f} A apart (minimum {min_distance} A)"
            + (f", image {shifts[k].tolist()}" if structure.is_periodic else "")
        )


def structure_name(structure: Structure) -> str:
    """A readable identifier: an id from the structure's info, else ``file#frame``."""
    for key in ID_KEYS:
        if key in structure.info:
            return f"{key}={structure.info[key]}"
    source = Path(structure.source).name if structure.source else "structure"
    return f"{source}#{structure.frame}" if structure.frame is not None else source
