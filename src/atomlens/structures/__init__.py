"""Structures: read, validate and convert atomic structures into one internal record."""

from atomlens.structures.io import as_structure, from_ase, from_pymatgen, read_structures, to_ase
from atomlens.structures.record import Structure, make_structure

__all__ = [
    "Structure",
    "as_structure",
    "from_ase",
    "from_pymatgen",
    "make_structure",
    "read_structures",
    "to_ase",
]
