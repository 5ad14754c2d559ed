import ase.build
import numpy as np
import pytest
from pymatgen.core import Lattice
from pymatgen.core import Structure as PmgStructure

from atomlens.structures import from_ase, from_pymatgen
from atomlens.structures.symmetry import (
    CRYSTAL_SYSTEMS,
    analyse_symmetry,
    crystal_system_index,
    site_order_index,
)


def test_rocksalt_site_symmetry_is_m3m_at_wyckoff_4a_4b():
    result = analyse_symmetry(from_ase(ase.build.bulk("NaCl", "rocksalt", a=5.64)))
    assert result.space_group == 225
    assert CRYSTAL_SYSTEMS[result.crystal_system] == "cubic"
    assert result.site_order.tolist() == [48, 48]
    assert result.multiplicity.tolist() == [4, 4]


def test_perovskite_and_layered_oxide_wyckoff_multiplicities():
    cubic = PmgStructure.from_spacegroup(
        "Pm-3m", Lattice.cubic(3.9), ["Sr", "Ti", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0]]
    )
    result = analyse_symmetry(from_pymatgen(cubic))
    assert result.space_group == 221
    assert result.multiplicity.tolist() == [1, 1, 3, 3, 3]  # 1a, 1b, 3c
    assert result.site_order.tolist() == [48, 48, 16, 16, 16]  # m-3m, m-3m, 4/mmm
    layered = PmgStructure.from_spacegroup(
        "R-3m",
        Lattice.hexagonal(2.8, 14.0),
        ["Li", "Co", "O"],
        [[0, 0, 0], [0, 0, 0.5], [0, 0, 0.24]],
    ).get_primitive_structure()
    result = analyse_symmetry(from_pymatgen(layered))
    assert result.space_group == 166
    pairs = zip(result.multiplicity.tolist(), result.site_order.tolist(), strict=True)
    assert sorted(pairs) == [
        (3, 12),
        (3, 12),
        (6, 6),
        (6, 6),
    ]  # Li 3a and Co 3b (-3m), O 6c (3m)


def test_site_symmetry_does_not_depend_on_the_cell_chosen():
    primitive = ase.build.bulk("NaCl", "rocksalt", a=5.64)
    reference = analyse_symmetry(from_ase(primitive))
    for cell in (
        ase.build.bulk("NaCl", "rocksalt", a=5.64, cubic=True),
        primitive.repeat((2, 1, 1)),  # its lattice alone is less symmetric than the crystal
        primitive.repeat((1, 2, 3))[::-1],
    ):
        result = analyse_symmetry(from_ase(cell))
        assert result.space_group == reference.space_group
        assert set(result.site_order.tolist()) == {48}
        assert set(result.multiplicity.tolist()) == {4}


def test_molecules_have_unknown_symmetry():
    molecule = analyse_symmetry(from_ase(ase.build.molecule("CH4")))
    assert molecule.space_group == 0 and molecule.crystal_system == -1
    assert molecule.site_order.tolist() == [1] * 5
    assert molecule.multiplicity.tolist() == [1] * 5


@pytest.mark.parametrize(
    ("group", "system"),
    [(1, "triclinic"), (2, "triclinic"), (3, "monoclinic"), (15, "monoclinic"),
     (16, "orthorhombic"), (74, "orthorhombic"), (75, "tetragonal"), (142, "tetragonal"),
     (143, "trigonal"), (167, "trigonal"), (168, "hexagonal"), (194, "hexagonal"),
     (195, "cubic"), (230, "cubic")],
)  # fmt: skip
def test_crystal_system_boundaries(group, system):
    assert CRYSTAL_SYSTEMS[crystal_system_index(group)] == system


def test_unknown_space_group_and_site_order_indices():
    assert crystal_system_index(0) == -1
    assert crystal_system_index(np.array([0, 225])).tolist() == [-1, 6]
    assert site_order_index(np.array([1, 48, 6])).tolist() == [0, 9, 4]
