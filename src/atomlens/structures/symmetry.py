"""Crystal symmetry per structure and per site, from spglib.

For each crystal: the space group (1-230) and its crystal system; for each atom: the order
of its site-symmetry group and the multiplicity of its Wyckoff position in the conventional
cell. Both per-atom numbers are independent of the cell chosen to describe the crystal
(a supercell or a permuted cell gives the same values), which the tests check.

Molecules, and crystals spglib cannot analyse, get space group 0 ("unknown"), site order 1
and multiplicity 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from atomlens.structures.record import Structure

CRYSTAL_SYSTEMS = (
    "triclinic",
    "monoclinic",
    "orthorhombic",
    "tetragonal",
    "trigonal",
    "hexagonal",
    "cubic",
)
# Last space-group number of each crystal system, in the order of CRYSTAL_SYSTEMS.
SYSTEM_ENDS = (2, 15, 74, 142, 167, 194, 230)
# Orders of the 32 crystallographic point groups (a site-symmetry group is one of them).
SITE_ORDERS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 48)
# Orders of the crystallographic point groups by their Hermann-Mauguin symbol (with the
# alternative orientations spglib may print).
POINT_GROUP_ORDERS = {
    "1": 1, "-1": 2, "2": 2, "m": 2, "2/m": 4, "222": 4, "mm2": 4, "mmm": 8,
    "4": 4, "-4": 4, "4/m": 8, "422": 8, "4mm": 8, "-42m": 8, "-4m2": 8, "4/mmm": 16,
    "3": 3, "-3": 6, "32": 6, "3m": 6, "-3m": 12,
    "6": 6, "-6": 6, "6/m": 12, "622": 12, "6mm": 12, "-6m2": 12, "-62m": 12, "6/mmm": 24,
    "23": 12, "m-3": 24, "432": 24, "-43m": 24, "m-3m": 48,
}  # fmt: skip
DEFAULT_SYMPREC = 0.1


@dataclass(frozen=True)
class SiteSymmetry:
    """Symmetry of one structure.

    Attributes:
        space_group: International number 1-230; 0 when unknown (molecules, failures).
        site_order: Order of each atom's site-symmetry group (N,).
        multiplicity: Wyckoff multiplicity of each atom in the conventional cell (N,).
    """

    space_group: int
    site_order: np.ndarray
    multiplicity: np.ndarray

    @property
    def crystal_system(self) -> int:
        """Index into CRYSTAL_SYSTEMS; -1 when the space group is unknown."""
        return crystal_system_index(self.space_group)


def crystal_system_index(space_group: int | np.ndarray) -> np.ndarray | int:
    """Crystal-system index (0-6) of space-group number(s); -1 for 0 (unknown)."""
    numbers = np.asarray(space_group)
    index = np.searchsorted(np.asarray(SYSTEM_ENDS), numbers, side="left")
    index = np.where((numbers >= 1) & (numbers <= 230), index, -1)
    return int(index) if index.ndim == 0 else index


def site_order_index(orders: np.ndarray) -> np.ndarray:
    """Position of each site order in SITE_ORDERS (for embeddings)."""
    return np.searchsorted(np.asarray(SITE_ORDERS), np.asarray(orders))


def unknown_symmetry(n_atoms: int) -> SiteSymmetry:
    """The symmetry record of a molecule or an unanalysable crystal."""
    ones = np.ones(n_atoms, dtype=np.int64)
    return SiteSymmetry(0, ones, ones.copy())


def analyse_symmetry(structure: Structure, symprec: float = DEFAULT_SYMPREC) -> SiteSymmetry:
    """Space group, site-symmetry orders and Wyckoff multiplicities of a structure.

    Args:
        structure: The structure; only fully periodic ones are analysed.
        symprec: Distance tolerance of spglib in Angstrom (0.1, as the Materials Project).

    Returns:
        The symmetry; :func:`unknown_symmetry` for molecules and when spglib finds none.
    """
    import spglib
    import spglib.error

    spglib.error.OLD_ERROR_HANDLING = False  # raise SpglibError instead of returning None
    n_atoms = len(structure)
    if not bool(np.all(structure.pbc)):
        return unknown_symmetry(n_atoms)
    fractional = np.linalg.solve(structure.cell.T, structure.positions.T).T
    cell = (structure.cell, fractional, structure.numbers)
    try:
        dataset = spglib.get_symmetry_dataset(cell, symprec=symprec)
    except spglib.error.SpglibError:
        return unknown_symmetry(n_atoms)
    if dataset is None:
        return unknown_symmetry(n_atoms)
    # Count each orbit's sites in the standardised conventional cell (which, unlike the
    # input cell, always carries the full symmetry): that is the Wyckoff multiplicity.
    orbits = np.asarray(dataset.crystallographic_orbits)
    to_primitive = np.asarray(dataset.mapping_to_primitive)
    primitive_orbit = np.empty(to_primitive.max() + 1, dtype=np.int64)
    primitive_orbit[to_primitive] = orbits
    conventional_orbits = primitive_orbit[np.asarray(dataset.std_mapping_to_primitive)]
    multiplicity = np.bincount(conventional_orbits, minlength=n_atoms)[orbits]
    lattice_points = len(conventional_orbits) // len(primitive_orbit)
    site_order = POINT_GROUP_ORDERS[dataset.pointgroup] * lattice_points // multiplicity
    return SiteSymmetry(
        space_group=int(dataset.number),
        site_order=site_order.astype(np.int64),
        multiplicity=multiplicity.astype(np.int64),
    )
